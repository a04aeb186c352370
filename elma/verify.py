"""Check the signature of an SMP answer, and return only what it covers.

An SMP signs its answers with one enveloped XMLDSig signature over the whole document
(``Reference URI=""``, enveloped-signature transform): Peppol and BDXR 1.0 as the last child of
``SignedServiceMetadata``, SMP 2.0 as the last child of ``ServiceMetadata`` (or
``ServiceGroup``). Verification follows the discipline of :mod:`sbdh.signing`:

* the shape is fixed before any cryptography runs: exactly one ``ds:Signature``, in its place,
  one reference to the whole document, only the enveloped transform and a c14n (exclusive or
  inclusive: real SMPs use both), RSA with SHA-256/384/512;
* RSA-SHA1 and SHA-1 digests, which Peppol SMPs used before the SMP specification moved to
  SHA-256, are refused unless :attr:`VerifyPolicy.allow_sha1` is set;
* the signer's certificate (``KeyInfo/X509Data``) must chain to the trust anchors given, at the
  time given (:func:`sbdh.trust.verify_certificate`): pass the Peppol SMP CA, or the SMP's own
  certificate to pin it;
* the model is parsed from the element signxml verified, serialised again, never from the bytes
  received; route on :attr:`VerifiedServiceMetadata.metadata` only.

A redirect names the SMP that must have signed the next answer: :func:`check_redirect_signer`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import (  # type: ignore[attr-defined]
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
    XMLVerifier,
)
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration

from elma.errors import SmpSignatureError
from elma.model import Redirect, ServiceGroup, ServiceMetadata
from elma.parse import detect_format, service_group_from_element, service_metadata_from_element
from elma.spec import NS, SmpFormat
from sbdh.errors import UntrustedSigner
from sbdh.trust import KeyPurpose, TrustStore, verify_certificate
from sbdh.xmlsafe import DEFAULT_LIMITS, XmlLimits, parse_xml

__all__ = [
    "VerifiedServiceGroup",
    "VerifiedServiceMetadata",
    "VerifyPolicy",
    "check_redirect_signer",
    "verify_service_group",
    "verify_service_metadata",
]

_NSMAP = {"ds": NS.DS}
_SIGNATURE = f"{{{NS.DS}}}Signature"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_C14N = frozenset(
    {
        CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value,
        CanonicalizationMethod.CANONICAL_XML_1_0.value,
    }
)
_STRONG_SIGNATURES = frozenset(
    {SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384, SignatureMethod.RSA_SHA512}
)
_STRONG_DIGESTS = frozenset(
    {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
)


@dataclass(frozen=True)
class VerifyPolicy:
    """What a signature may use beyond the safe defaults."""

    #: accept RSA-SHA1 signatures and SHA-1 digests (SMP answers signed before the move to
    #: SHA-256; off by default)
    allow_sha1: bool = False

    def signature_methods(self) -> frozenset[SignatureMethod]:
        return _STRONG_SIGNATURES | ({SignatureMethod.RSA_SHA1} if self.allow_sha1 else set())

    def digest_algorithms(self) -> frozenset[DigestAlgorithm]:
        return _STRONG_DIGESTS | ({DigestAlgorithm.SHA1} if self.allow_sha1 else set())


DEFAULT_POLICY = VerifyPolicy()


@dataclass(frozen=True)
class VerifiedServiceMetadata:
    """A service metadata whose signature verified, and who signed it."""

    #: parsed from :attr:`document`, i.e. from what was verified
    metadata: ServiceMetadata
    #: the signed element without its signature, serialised from what was verified
    document: bytes = field(repr=False)
    signer: x509.Certificate
    #: the signer's path to the trust anchor, leaf first
    chain: tuple[x509.Certificate, ...] = field(repr=False)


@dataclass(frozen=True)
class VerifiedServiceGroup:
    """An SMP 2.0 service group whose signature verified."""

    group: ServiceGroup
    document: bytes = field(repr=False)
    signer: x509.Certificate
    chain: tuple[x509.Certificate, ...] = field(repr=False)


def _profile_error(message: str) -> SmpSignatureError:
    return SmpSignatureError(message, rule="smp-signature-profile")


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [c for c in parent if isinstance(c.tag, str)]


def _require_shape(root: etree._Element, smp_format: SmpFormat, kind: str) -> etree._Element:
    """The one ``ds:Signature``, checked to sit where the format puts it."""
    signatures = root.findall(f".//{_SIGNATURE}")
    if not signatures:
        raise SmpSignatureError("the SMP answer is not signed", rule="smp-signature-missing")
    if len(signatures) > 1:
        raise SmpSignatureError(
            f"the SMP answer holds {len(signatures)} signatures; exactly one is allowed",
            rule="smp-signature-wrapping",
        )
    signature = signatures[0]
    children = _elements(root)
    local = etree.QName(root).localname
    if smp_format is SmpFormat.SMP2:
        if children[-1] is not signature:
            raise SmpSignatureError(
                f"the signature must be the last child of {local}", rule="smp-signature-wrapping"
            )
        return signature
    if kind != "ServiceMetadata" or local != "SignedServiceMetadata":
        raise SmpSignatureError(
            f"a {smp_format.value} {kind} is signed only as a SignedServiceMetadata, "
            f"not as {local}",
            rule="smp-signature-missing",
        )
    ns = etree.QName(root).namespace
    if (
        len(children) != 2
        or children[0].tag != f"{{{ns}}}ServiceMetadata"
        or children[1] is not signature
    ):
        raise SmpSignatureError(
            "SignedServiceMetadata must hold exactly ServiceMetadata and then ds:Signature",
            rule="smp-signature-wrapping",
        )
    return signature


def _one(signature: etree._Element, path: str) -> etree._Element:
    found = signature.findall(path, _NSMAP)
    if len(found) != 1:
        raise _profile_error(f"expected exactly one {path} in the signature, found {len(found)}")
    return found[0]


def _require_profile(signature: etree._Element, policy: VerifyPolicy) -> None:
    c14n = _one(signature, "ds:SignedInfo/ds:CanonicalizationMethod").get("Algorithm")
    if c14n not in _C14N:
        raise _profile_error(f"canonicalization {c14n} is not allowed; use (exclusive) c14n 1.0")
    method = _one(signature, "ds:SignedInfo/ds:SignatureMethod").get("Algorithm")
    allowed_methods = {m.value for m in policy.signature_methods()}
    if method not in allowed_methods:
        raise _profile_error(
            f"signature method {method} is not allowed; use one of {sorted(allowed_methods)}"
        )
    reference = _one(signature, "ds:SignedInfo/ds:Reference")
    if reference.get("URI") != "":
        raise SmpSignatureError(
            f"reference URI {reference.get('URI')!r} is not allowed: the signature must cover "
            'the whole document (URI="")',
            rule="smp-signature-wrapping",
        )
    transforms = [
        t.get("Algorithm") for t in reference.findall("ds:Transforms/ds:Transform", _NSMAP)
    ]
    if (
        not transforms
        or transforms[0] != _ENVELOPED
        or len(transforms) > 2
        or (len(transforms) == 2 and transforms[1] not in _C14N)
    ):
        raise _profile_error(
            f"reference transforms {transforms} are not allowed: enveloped-signature, "
            "optionally followed by (exclusive) c14n 1.0"
        )
    digest = _one(signature, "ds:SignedInfo/ds:Reference/ds:DigestMethod").get("Algorithm")
    allowed_digests = {d.value for d in policy.digest_algorithms()}
    if digest not in allowed_digests:
        raise _profile_error(
            f"digest method {digest} is not allowed; use one of {sorted(allowed_digests)}"
        )


def _key_info_certificates(
    signature: etree._Element,
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The signer's certificate and any issuers sent along, from ``KeyInfo/X509Data``."""
    certs: list[x509.Certificate] = []
    for node in signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NSMAP):
        text = "".join((node.text or "").split())
        try:
            certs.append(x509.load_der_x509_certificate(base64.b64decode(text, validate=True)))
        except (binascii.Error, ValueError) as exc:
            raise SmpSignatureError(
                f"KeyInfo holds a malformed certificate: {exc}", rule="smp-signature-keyinfo"
            ) from exc
    if not certs:
        raise SmpSignatureError("KeyInfo carries no X509Certificate", rule="smp-signature-keyinfo")
    issuers = {c.issuer for c in certs}
    leaves = [c for c in certs if c.subject != c.issuer and c.subject not in issuers]
    if len(certs) == 1:
        leaves = certs
    if len(leaves) != 1:
        raise SmpSignatureError(
            "KeyInfo certificates do not form one chain with one signer",
            rule="smp-signature-keyinfo",
        )
    leaf = leaves[0]
    return leaf, [c for c in certs if c is not leaf]


def _verify(
    data: bytes,
    trust: TrustStore,
    *,
    at: datetime,
    policy: VerifyPolicy,
    limits: XmlLimits,
    kind: str,
) -> tuple[etree._Element, bytes, x509.Certificate, tuple[x509.Certificate, ...]]:
    if at.tzinfo is None:
        raise ValueError("verification time must be timezone-aware")
    root = parse_xml(data, limits)
    smp_format, holds = detect_format(root)
    if holds != kind:
        raise SmpSignatureError(
            f"expected a signed {kind}, got a {holds}", rule="smp-signature-wrapping"
        )
    signature = _require_shape(root, smp_format, kind)
    _require_profile(signature, policy)
    leaf, others = _key_info_certificates(signature)
    chain = verify_certificate(leaf, trust, at=at, purpose=KeyPurpose.SIGNING, extra_chain=others)
    config = SignatureConfiguration(
        require_x509=True,
        expect_references=1,
        signature_methods=policy.signature_methods(),
        digest_algorithms=policy.digest_algorithms(),
        ignore_ambiguous_key_info=True,
        verification_time=at,
    )
    try:
        result = XMLVerifier().verify(root, x509_cert=leaf, expect_config=config)
    except (SignXMLException, ValueError) as exc:
        raise SmpSignatureError(
            f"signature does not verify: {exc}", rule="smp-signature-invalid"
        ) from exc
    results = result if isinstance(result, list) else [result]
    signed = results[0].signed_xml if len(results) == 1 else None
    if signed is None or signed.tag != root.tag:
        raise SmpSignatureError(
            f"the signature does not cover the {etree.QName(root).localname} element",
            rule="smp-signature-wrapping",
        )
    if signed.findall(f".//{_SIGNATURE}"):
        raise SmpSignatureError(
            "the signed content holds a signature of its own", rule="smp-signature-wrapping"
        )
    document: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    return parse_xml(document, limits), document, leaf, chain


def verify_service_metadata(
    data: bytes,
    trust: TrustStore,
    *,
    at: datetime,
    policy: VerifyPolicy = DEFAULT_POLICY,
    limits: XmlLimits = DEFAULT_LIMITS,
) -> VerifiedServiceMetadata:
    """Verify a signed service metadata of any format, and read what it covers.

    Raises :class:`SmpSignatureError` (rules ``smp-signature-missing``, ``-profile``,
    ``-wrapping``, ``-keyinfo``, ``-invalid``), :class:`~sbdh.errors.UntrustedSigner` when the
    signer does not chain to ``trust`` at ``at``, and the parser's errors.
    """
    element, document, leaf, chain = _verify(
        data, trust, at=at, policy=policy, limits=limits, kind="ServiceMetadata"
    )
    return VerifiedServiceMetadata(service_metadata_from_element(element), document, leaf, chain)


def verify_service_group(
    data: bytes,
    trust: TrustStore,
    *,
    at: datetime,
    policy: VerifyPolicy = DEFAULT_POLICY,
    limits: XmlLimits = DEFAULT_LIMITS,
) -> VerifiedServiceGroup:
    """Verify a signed SMP 2.0 service group (Peppol and BDXR 1.0 groups are never signed)."""
    element, document, leaf, chain = _verify(
        data, trust, at=at, policy=policy, limits=limits, kind="ServiceGroup"
    )
    return VerifiedServiceGroup(service_group_from_element(element), document, leaf, chain)


# --------------------------------------------------------------------------- redirects

_SHORT_NAMES = {
    "C": NameOID.COUNTRY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "E": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "STREET": NameOID.STREET_ADDRESS,
}


def _split_dn(text: str) -> list[str]:
    """Split ``C=NO,O=A\\, B,CN=X`` at unescaped commas (or semicolons)."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char in ",;":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        out.append(next(chars, "") if char == "\\" else char)
    return "".join(out)


def _dn_set(text: str) -> frozenset[tuple[str, str]] | None:
    pairs: set[tuple[str, str]] = set()
    for part in _split_dn(text):
        name, sep, value = part.partition("=")
        if not sep:
            return None
        oid = _SHORT_NAMES.get(name.strip().upper())
        key = oid.dotted_string if oid is not None else name.strip().upper()
        pairs.add((key, _unescape(value.strip()).casefold()))
    return frozenset(pairs)


def _subject_set(cert: x509.Certificate) -> frozenset[tuple[str, str]]:
    return frozenset(
        (attr.oid.dotted_string, str(attr.value).strip().casefold()) for attr in cert.subject
    )


def check_redirect_signer(redirect: Redirect, signer: x509.Certificate) -> None:
    """Check that the answer fetched by following ``redirect`` was signed by the SMP it named.

    Peppol and BDXR 1.0 name it by ``CertificateUID`` (a subject name such as
    ``C=NO,O=…,OU=PEPPOL TEST SMP,CN=PNO000179``; compared attribute by attribute, in any order
    and case); SMP 2.0 publishes the certificates themselves. Raises
    :class:`~sbdh.errors.UntrustedSigner` (rule ``smp-redirect-signer``) on a mismatch.
    """
    if redirect.certificates:
        if signer.fingerprint(hashes.SHA256()) in _fingerprints(redirect.certificates):
            return
        raise UntrustedSigner(
            f"the redirected answer is signed by {signer.subject.rfc4514_string()}, not by one of "
            "the certificates the redirect published",
            rule="smp-redirect-signer",
        )
    if redirect.certificate_uid is None:
        raise UntrustedSigner(
            "the redirect names no certificate, so its target cannot be trusted",
            rule="smp-redirect-signer",
        )
    expected = _dn_set(redirect.certificate_uid)
    if expected is None or expected != _subject_set(signer):
        raise UntrustedSigner(
            f"the redirected answer is signed by {signer.subject.rfc4514_string()}, but the "
            f"redirect named {redirect.certificate_uid!r}",
            rule="smp-redirect-signer",
        )


def _fingerprints(certificates: tuple[bytes, ...]) -> set[bytes]:
    found: set[bytes] = set()
    for der in certificates:
        try:
            found.add(x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256()))
        except ValueError:
            continue  # a malformed published certificate can match no signer
    return found
