"""Signed Standard Business Documents (XMLDSig, enveloped).

Signing puts one ``ds:Signature`` as the last child of ``StandardBusinessDocument``: RSA-SHA256,
exclusive c14n, one reference with ``URI=""`` (the whole document, enveloped-signature
transform) and the signer's certificate and issuers in ``KeyInfo``. signxml does the XMLDSig
work; this module adds what an access point needs around it:

* the profile is fixed, not negotiated: any other algorithm, more than one reference, a
  reference by id, more than one signature, or a signature anywhere but as the last child of the
  root is refused before any cryptography runs;
* the signer's certificate must chain to the configured trust anchors at the verification
  time, with a key usage for signatures (:mod:`sbdh.trust`);
* exactly one header and one business message may be present: an unsigned second copy of the
  header (the classic signature-wrapping attack) is refused;
* :func:`verify_sbd` returns the bytes that were signed, serialised from what signxml verified,
  and callers parse and route on those only, never on the input.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from lxml import etree
from signxml import (  # type: ignore[attr-defined]
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
)
from signxml.exceptions import InvalidInput as SignxmlInvalidInput
from signxml.exceptions import InvalidSignature as SignxmlInvalidSignature
from signxml.verifier import SignatureConfiguration

from sbdh.errors import SignatureError
from sbdh.model import StandardBusinessDocument
from sbdh.pki import Credential
from sbdh.rules import Profile, check_sbd
from sbdh.trust import KeyPurpose, TrustStore, load_certificates, verify_certificate
from sbdh.xmlsafe import DEFAULT_LIMITS, XmlLimits, parse_xml

__all__ = ["VerifiedSbd", "sign_sbd", "verify_sbd"]

SBDH_NS = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
_SBD = f"{{{SBDH_NS}}}StandardBusinessDocument"
_HEADER = f"{{{SBDH_NS}}}StandardBusinessDocumentHeader"
_SIGNATURE = f"{{{DS_NS}}}Signature"
_NS = {"ds": DS_NS}
_EXPECTED_TRANSFORMS = (
    SignatureConstructionMethod.enveloped.value,
    CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value,
)


@dataclass(frozen=True)
class VerifiedSbd:
    """What a verified signature covers, and who made it."""

    #: the signed document, without its signature, serialised from what was verified
    document: bytes
    signer: x509.Certificate
    #: the signer's path to the trust anchor, leaf first
    chain: tuple[x509.Certificate, ...]

    def sbd(self, profile: Profile = Profile.AUTO) -> StandardBusinessDocument:
        """The signed document as a model, after the envelope rules of ``profile``.

        Parsed from :attr:`document` (what was verified), never from the received bytes.
        """
        return check_sbd(self.document, profile)


def sign_sbd(sbd_xml: bytes, signer: Credential) -> bytes:
    """Sign a Standard Business Document; returns the signed document's bytes."""
    root = parse_xml(sbd_xml)
    _require_sbd_shape(root, signed=False)
    xml_signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = xml_signer.sign(root, key=signer.key, cert=[signer.certificate, *signer.chain])
    out: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    return out


def verify_sbd(
    data: bytes, trust: TrustStore, *, at: datetime, limits: XmlLimits = DEFAULT_LIMITS
) -> VerifiedSbd:
    """Verify a signed SBD and return what was signed.

    Raises :class:`SignatureError` (rules ``sbd-signature-*``) when the signature is missing,
    not of the profile, wrapped, or does not verify, and
    :class:`~sbdh.errors.UntrustedSigner` when the signer does not chain to ``trust`` at ``at``.
    """
    root = parse_xml(data, limits)
    signature = _require_sbd_shape(root, signed=True)
    assert signature is not None
    _require_profile(signature)
    leaf, others = _key_info_certificates(signature)
    chain = verify_certificate(leaf, trust, at=at, purpose=KeyPurpose.SIGNING, extra_chain=others)
    config = SignatureConfiguration(
        require_x509=True,
        expect_references=1,
        signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
        ignore_ambiguous_key_info=True,
        verification_time=at,
    )
    try:
        result = XMLVerifier().verify(root, x509_cert=leaf, expect_config=config)
    except (SignxmlInvalidSignature, SignxmlInvalidInput) as exc:
        raise SignatureError(
            f"signature does not verify: {exc}", rule="sbd-signature-invalid"
        ) from exc
    results = result if isinstance(result, list) else [result]
    if len(results) != 1:
        raise SignatureError("expected exactly one signed reference", rule="sbd-signature-profile")
    signed = results[0].signed_xml
    if signed is None or signed.tag != _SBD:
        raise SignatureError(
            "the signature does not cover the StandardBusinessDocument",
            rule="sbd-signature-wrapping",
        )
    # re-check the shape of what was verified, not of what was received
    _require_sbd_shape(signed, signed=False)
    document: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    return VerifiedSbd(document=document, signer=leaf, chain=chain)


def _require_sbd_shape(root: etree._Element, *, signed: bool) -> etree._Element | None:
    if root.tag != _SBD:
        raise SignatureError(
            f"root element is {root.tag!r}, expected StandardBusinessDocument",
            rule="sbd-signature-wrapping",
        )
    headers = root.findall(f".//{_HEADER}")
    if len(headers) != 1 or headers[0].getparent() is not root:
        raise SignatureError(
            f"document has {len(headers)} StandardBusinessDocumentHeader elements; exactly one, "
            "as the first child of the root, is allowed",
            rule="sbd-signature-wrapping",
        )
    signatures = root.findall(f".//{_SIGNATURE}")
    elements = [c for c in root if isinstance(c.tag, str)]
    if not signed:
        if signatures:
            raise SignatureError("document is already signed", rule="sbd-signature-wrapping")
        return None
    if not signatures:
        raise SignatureError("document is not signed", rule="sbd-signature-missing")
    if len(signatures) != 1 or elements[-1] is not signatures[0]:
        raise SignatureError(
            "exactly one ds:Signature is allowed, as the last child of StandardBusinessDocument",
            rule="sbd-signature-wrapping",
        )
    if len(elements) != 3 or elements[0] is not headers[0]:
        raise SignatureError(
            "a signed SBD holds exactly a header, one business message and the signature",
            rule="sbd-signature-wrapping",
        )
    return signatures[0]


def _require_profile(signature: etree._Element) -> None:
    def one(path: str) -> etree._Element:
        found = signature.findall(path, _NS)
        if len(found) != 1:
            raise SignatureError(
                f"expected exactly one {path} in the signature, found {len(found)}",
                rule="sbd-signature-profile",
            )
        return found[0]

    c14n = one("ds:SignedInfo/ds:CanonicalizationMethod").get("Algorithm")
    if c14n != CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value:
        raise SignatureError(
            f"canonicalization {c14n} is not allowed; use exclusive c14n",
            rule="sbd-signature-profile",
        )
    method = one("ds:SignedInfo/ds:SignatureMethod").get("Algorithm")
    if method != SignatureMethod.RSA_SHA256.value:
        raise SignatureError(
            f"signature method {method} is not allowed; use RSA-SHA256",
            rule="sbd-signature-profile",
        )
    reference = one("ds:SignedInfo/ds:Reference")
    if reference.get("URI") != "":
        raise SignatureError(
            f"reference URI {reference.get('URI')!r} is not allowed: the signature must cover "
            'the whole document (URI="")',
            rule="sbd-signature-wrapping",
        )
    transforms = tuple(
        t.get("Algorithm") for t in reference.findall("ds:Transforms/ds:Transform", _NS)
    )
    if transforms != _EXPECTED_TRANSFORMS:
        raise SignatureError(
            "reference transforms must be enveloped-signature then exclusive c14n",
            rule="sbd-signature-profile",
        )
    digest = one("ds:SignedInfo/ds:Reference/ds:DigestMethod").get("Algorithm")
    if digest != DigestAlgorithm.SHA256.value:
        raise SignatureError(
            f"digest method {digest} is not allowed; use SHA-256", rule="sbd-signature-profile"
        )


def _key_info_certificates(
    signature: etree._Element,
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    texts = signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS)
    certs: list[x509.Certificate] = []
    for node in texts:
        der = "".join((node.text or "").split())
        try:
            certs.extend(load_certificates(base64.b64decode(der, validate=True)))
        except Exception as exc:
            raise SignatureError(
                f"KeyInfo holds a malformed certificate: {exc}", rule="sbd-signature-keyinfo"
            ) from exc
    if not certs:
        raise SignatureError("KeyInfo carries no X.509 certificate", rule="sbd-signature-keyinfo")
    issuers = {c.issuer for c in certs}
    leaves = [c for c in certs if c.subject not in issuers or c.subject == c.issuer]
    leaves = [c for c in leaves if c.subject != c.issuer] or certs[:1]
    if len(leaves) != 1:
        raise SignatureError(
            "KeyInfo certificates do not form one chain", rule="sbd-signature-keyinfo"
        )
    leaf = leaves[0]
    return leaf, [c for c in certs if c is not leaf]
