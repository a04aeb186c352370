"""XAdES baseline-B signatures (ETSI EN 319 132-1) for ASiC-E containers, built and verified.

:func:`build_signature` makes the ``asic:XAdESSignatures`` document that an ASiC-E holds as
``META-INF/signatures.xml``: RSA-SHA256 over SignedInfo canonicalised with exclusive c14n, one
``ds:Reference`` per container entry (URI = the entry name, SHA-256 of its bytes, no transforms)
and one to ``xades:SignedProperties`` (SigningTime, SigningCertificateV2, a DataObjectFormat per
file). It is written by hand with lxml c14n and cryptography rather than with signxml because
signxml resolves detached references by taking their bytes in memory; a package may hold files
of hundreds of MB whose digests are computed while they stream into the ZIP, so only the
digests reach this module.

:func:`verify_signature` is the matching verifier: the profile is fixed, anything else is
refused before any cryptography runs, and it returns the signed (name, digest) pairs for the
caller to check against the entries.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar
from urllib.parse import quote, unquote

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from sbdh.errors import InvalidInput, PackageError, SignatureError
from sbdh.pki import Credential
from sbdh.trust import KeyPurpose, TrustStore, verify_certificate
from sbdh.xmlsafe import XmlLimits, parse_xml
from sbdh.ziparchive import check_entry_name, entry_key

__all__ = [
    "ASIC_NS",
    "DS_NS",
    "XADES_NS",
    "Canonicalization",
    "DataObject",
    "DigestMethod",
    "SignatureMethod",
    "SignedReference",
    "VerifiedSignature",
    "build_signature",
    "verify_signature",
]

#: the namespace of the ``asic:XAdESSignatures`` element that wraps the signature (EN 319 162-1)
ASIC_NS: Final = "http://uri.etsi.org/02918/v1.2.1#"
DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS: Final = "http://uri.etsi.org/01903/v1.3.2#"
SIGNED_PROPERTIES_TYPE: Final = "http://uri.etsi.org/01903#SignedProperties"


class DigestMethod(enum.Enum):
    """Digest algorithms accepted in references (XMLDSig 1.1 / RFC 6931 URIs)."""

    SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
    SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
    SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

    def new(self) -> hashlib._Hash:
        return hashlib.new(self.name.lower())

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.name.lower(), data).digest()


class SignatureMethod(enum.Enum):
    """Signature algorithms accepted (RFC 6931 URIs). SHA-1 is not among them."""

    RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    RSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
    RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"

    def hash(self) -> hashes.HashAlgorithm:
        if self is SignatureMethod.RSA_SHA384:
            return hashes.SHA384()
        if self is SignatureMethod.RSA_SHA512:
            return hashes.SHA512()
        return hashes.SHA256()


class Canonicalization(enum.Enum):
    """Canonicalisation methods accepted for SignedInfo and the SignedProperties reference."""

    EXCLUSIVE = "http://www.w3.org/2001/10/xml-exc-c14n#"
    EXCLUSIVE_WITH_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
    INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    INCLUSIVE_WITH_COMMENTS = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"

    def apply(self, element: etree._Element) -> bytes:
        return etree.tostring(
            element,
            method="c14n",
            exclusive=self
            in (Canonicalization.EXCLUSIVE, Canonicalization.EXCLUSIVE_WITH_COMMENTS),
            with_comments=self
            in (Canonicalization.EXCLUSIVE_WITH_COMMENTS, Canonicalization.INCLUSIVE_WITH_COMMENTS),
        )


@dataclass(frozen=True)
class DataObject:
    """A container entry to sign: its name, its SHA-256 and its media type."""

    name: str
    sha256: bytes
    mime_type: str


@dataclass(frozen=True)
class SignedReference:
    """A container entry as the verified signature covers it."""

    name: str
    digest_method: DigestMethod
    digest: bytes
    mime_type: str | None


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature that verified, by a signer that chains to a trust anchor."""

    references: tuple[SignedReference, ...]
    signer: x509.Certificate
    #: the signer's path, leaf first, trust anchor last
    chain: tuple[x509.Certificate, ...]
    signing_time: datetime


def _ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


def _xades(tag: str) -> str:
    return f"{{{XADES_NS}}}{tag}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _issuer_serial_v2(certificate: x509.Certificate) -> bytes:
    """RFC 5035 IssuerSerial, DER, as XAdES SigningCertificateV2/IssuerSerialV2 holds it."""
    asn1_cert = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
    value = asn1_cms.IssuerSerial(
        {
            "issuer": [asn1_x509.GeneralName(name="directory_name", value=asn1_cert.issuer)],
            "serial": asn1_cert.serial_number,
        }
    )
    return bytes(value.dump())


def _is_self_signed(certificate: x509.Certificate) -> bool:
    return certificate.issuer == certificate.subject


def build_signature(
    objects: Sequence[DataObject], signer: Credential, *, signing_time: datetime
) -> bytes:
    """``META-INF/signatures.xml`` signing ``objects`` as ``signer`` at ``signing_time``."""
    if signing_time.tzinfo is None:
        raise ValueError("signing time must be timezone-aware")
    sub = etree.SubElement
    root = etree.Element(
        f"{{{ASIC_NS}}}XAdESSignatures", nsmap={"asic": ASIC_NS, "ds": DS_NS, "xades": XADES_NS}
    )
    signature = sub(root, _ds("Signature"), Id="Signature")
    signed_info = sub(signature, _ds("SignedInfo"))
    sub(signed_info, _ds("CanonicalizationMethod"), Algorithm=Canonicalization.EXCLUSIVE.value)
    sub(signed_info, _ds("SignatureMethod"), Algorithm=SignatureMethod.RSA_SHA256.value)
    for index, obj in enumerate(objects):
        reference = sub(
            signed_info, _ds("Reference"), Id=f"ref-{index}", URI=quote(obj.name, safe="/")
        )
        sub(reference, _ds("DigestMethod"), Algorithm=DigestMethod.SHA256.value)
        sub(reference, _ds("DigestValue")).text = _b64(obj.sha256)
    sp_reference = sub(
        signed_info, _ds("Reference"), Type=SIGNED_PROPERTIES_TYPE, URI="#SignedProperties"
    )
    transforms = sub(sp_reference, _ds("Transforms"))
    sub(transforms, _ds("Transform"), Algorithm=Canonicalization.EXCLUSIVE.value)
    sub(sp_reference, _ds("DigestMethod"), Algorithm=DigestMethod.SHA256.value)
    sp_digest = sub(sp_reference, _ds("DigestValue"))
    signature_value = sub(signature, _ds("SignatureValue"), Id="SignatureValue")
    x509_data = sub(sub(signature, _ds("KeyInfo")), _ds("X509Data"))
    for certificate in (signer.certificate, *(c for c in signer.chain if not _is_self_signed(c))):
        sub(x509_data, _ds("X509Certificate")).text = _b64(certificate.public_bytes(Encoding.DER))
    qualifying = sub(sub(signature, _ds("Object")), _xades("QualifyingProperties"))
    qualifying.set("Target", "#Signature")
    signed_properties = sub(qualifying, _xades("SignedProperties"), Id="SignedProperties")
    ssp = sub(signed_properties, _xades("SignedSignatureProperties"))
    sub(ssp, _xades("SigningTime")).text = signing_time.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    cert = sub(sub(ssp, _xades("SigningCertificateV2")), _xades("Cert"))
    cert_digest = sub(cert, _xades("CertDigest"))
    sub(cert_digest, _ds("DigestMethod"), Algorithm=DigestMethod.SHA256.value)
    sub(cert_digest, _ds("DigestValue")).text = _b64(
        DigestMethod.SHA256.digest(signer.certificate.public_bytes(Encoding.DER))
    )
    sub(cert, _xades("IssuerSerialV2")).text = _b64(_issuer_serial_v2(signer.certificate))
    sdop = sub(signed_properties, _xades("SignedDataObjectProperties"))
    for index, obj in enumerate(objects):
        data_object_format = sub(sdop, _xades("DataObjectFormat"), ObjectReference=f"#ref-{index}")
        sub(data_object_format, _xades("MimeType")).text = obj.mime_type

    sp_digest.text = _b64(
        DigestMethod.SHA256.digest(Canonicalization.EXCLUSIVE.apply(signed_properties))
    )
    signature_value.text = _b64(
        signer.key.sign(
            Canonicalization.EXCLUSIVE.apply(signed_info), padding.PKCS1v15(), hashes.SHA256()
        )
    )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _refuse(message: str, rule: str) -> SignatureError:
    return SignatureError(message, rule=rule)


def _one(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = [child for child in parent if child.tag == tag]
    if len(found) != 1:
        raise _refuse(f"expected exactly one {what}, found {len(found)}", "xades-structure")
    return found[0]


def _decode_b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _refuse(f"{what} is not valid base64", "xades-structure") from exc


_E = TypeVar("_E", bound=enum.Enum)


def _enum(cls: type[_E], value: str | None, what: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        raise _refuse(f"{what} {value!r} is not accepted", "xades-algorithm") from None


def _digest_of(parent: etree._Element, what: str) -> tuple[DigestMethod, bytes]:
    method = _enum(
        DigestMethod, _one(parent, _ds("DigestMethod"), what).get("Algorithm"), "digest method"
    )
    return method, _decode_b64(_one(parent, _ds("DigestValue"), what).text, f"{what} DigestValue")


def _parse_time(text: str | None) -> datetime:
    try:
        moment = datetime.fromisoformat((text or "").strip())
    except ValueError as exc:
        raise _refuse(f"SigningTime {text!r} is not an xsd:dateTime", "xades-signing-time") from exc
    if moment.tzinfo is None:
        raise _refuse("SigningTime has no time zone", "xades-signing-time")
    return moment


def verify_signature(
    data: bytes,
    *,
    trust: TrustStore,
    now: datetime,
    limits: XmlLimits,
    clock_skew: timedelta = timedelta(minutes=5),
) -> VerifiedSignature:
    """Verify ``META-INF/signatures.xml`` and return what it signs, and by whom.

    Checks, in order: the structure and algorithms (rule ``xades-structure`` /
    ``xades-algorithm``), the signature value over SignedInfo (``xades-signature-value``), the
    signer's chain to ``trust`` at ``now`` for signing (:class:`UntrustedSigner`), the
    SignedProperties digest (``xades-signed-properties``), SigningCertificateV2 against the
    KeyInfo certificate (``xades-signing-certificate``) and a SigningTime not in the future
    (``xades-signing-time``). File digests are the caller's to check.
    """
    try:
        root = parse_xml(data, limits)
    except InvalidInput as exc:
        raise _refuse(f"signatures.xml cannot be parsed: {exc}", "xades-structure") from exc
    if root.tag != f"{{{ASIC_NS}}}XAdESSignatures":
        raise _refuse("signatures.xml is not an asic:XAdESSignatures document", "xades-structure")
    if sum(1 for _ in root.iter(_ds("Signature"))) != 1:
        raise _refuse("exactly one ds:Signature is supported", "xades-structure")
    signature = _one(root, _ds("Signature"), "ds:Signature")
    signed_info = _one(signature, _ds("SignedInfo"), "ds:SignedInfo")
    c14n = _enum(
        Canonicalization,
        _one(signed_info, _ds("CanonicalizationMethod"), "CanonicalizationMethod").get("Algorithm"),
        "canonicalization",
    )
    method = _enum(
        SignatureMethod,
        _one(signed_info, _ds("SignatureMethod"), "SignatureMethod").get("Algorithm"),
        "signature method",
    )
    allowed = {_ds("CanonicalizationMethod"), _ds("SignatureMethod"), _ds("Reference")}
    if any(child.tag not in allowed for child in signed_info):
        raise _refuse("unexpected element in SignedInfo", "xades-structure")
    signature_value = _decode_b64(
        _one(signature, _ds("SignatureValue"), "SignatureValue").text, "SignatureValue"
    )
    x509_data = _one(_one(signature, _ds("KeyInfo"), "KeyInfo"), _ds("X509Data"), "X509Data")
    try:
        certificates = [
            x509.load_der_x509_certificate(_decode_b64(el.text, "X509Certificate"))
            for el in x509_data
            if el.tag == _ds("X509Certificate")
        ]
    except ValueError as exc:
        raise _refuse(f"KeyInfo holds a malformed certificate: {exc}", "xades-structure") from exc
    if not certificates:
        raise _refuse("KeyInfo holds no X509Certificate", "xades-structure")
    signer = certificates[0]

    # the signature value, before anything else is believed
    public_key = signer.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise _refuse("the signing certificate does not hold an RSA key", "xades-algorithm")
    try:
        public_key.verify(
            signature_value, c14n.apply(signed_info), padding.PKCS1v15(), method.hash()
        )
    except InvalidSignature as exc:
        raise _refuse("the signature value does not verify", "xades-signature-value") from exc
    chain = verify_certificate(
        signer, trust, at=now, purpose=KeyPurpose.SIGNING, extra_chain=certificates[1:]
    )

    signed_properties = _signed_properties(root, signature)
    references = _check_references(signed_info, signed_properties)
    ssp = _one(signed_properties, _xades("SignedSignatureProperties"), "SignedSignatureProperties")
    signing_time = _parse_time(_one(ssp, _xades("SigningTime"), "SigningTime").text)
    if signing_time > now + clock_skew:
        raise _refuse(
            f"SigningTime {signing_time.isoformat()} is in the future", "xades-signing-time"
        )
    _check_signing_certificate(ssp, signer)
    return VerifiedSignature(references, signer, chain, signing_time)


def _signed_properties(root: etree._Element, signature: etree._Element) -> etree._Element:
    signature_id = signature.get("Id")
    qualifying = [
        qp
        for obj in signature
        if obj.tag == _ds("Object")
        for qp in obj
        if qp.tag == _xades("QualifyingProperties")
    ]
    if len(qualifying) != 1:
        raise _refuse("expected exactly one xades:QualifyingProperties", "xades-structure")
    if signature_id is None or qualifying[0].get("Target") != f"#{signature_id}":
        raise _refuse("QualifyingProperties does not target this signature", "xades-structure")
    signed_properties = _one(qualifying[0], _xades("SignedProperties"), "SignedProperties")
    identifier = signed_properties.get("Id")
    if not identifier:
        raise _refuse("SignedProperties has no Id", "xades-structure")
    if len(root.xpath("//*[@Id=$id]", id=identifier)) != 1:
        raise _refuse(f"Id {identifier!r} is not unique", "xades-structure")
    return signed_properties


def _check_references(
    signed_info: etree._Element, signed_properties: etree._Element
) -> tuple[SignedReference, ...]:
    mime_types: dict[str, str] = {}
    sdop = [c for c in signed_properties if c.tag == _xades("SignedDataObjectProperties")]
    for dof in sdop[0] if sdop else ():
        if dof.tag == _xades("DataObjectFormat"):
            mime = dof.find(_xades("MimeType"))
            if mime is not None and mime.text:
                mime_types[dof.get("ObjectReference", "")] = mime.text.strip()
    files: list[SignedReference] = []
    names: set[str] = set()
    signed_properties_seen = False
    for reference in signed_info:
        if reference.tag != _ds("Reference"):
            continue
        uri = reference.get("URI")
        digest_method, digest = _digest_of(reference, "Reference")
        transforms = [
            t.get("Algorithm")
            for container in reference
            if container.tag == _ds("Transforms")
            for t in container
        ]
        if reference.get("Type") == SIGNED_PROPERTIES_TYPE:
            if signed_properties_seen:
                raise _refuse("two SignedProperties references", "xades-structure")
            signed_properties_seen = True
            if uri != f"#{signed_properties.get('Id')}":
                raise _refuse("SignedProperties reference points elsewhere", "xades-structure")
            if len(transforms) > 1:
                raise _refuse(
                    "SignedProperties reference has several transforms", "xades-structure"
                )
            method = (
                _enum(Canonicalization, transforms[0], "transform")
                if transforms
                else Canonicalization.INCLUSIVE
            )
            if digest_method.digest(method.apply(signed_properties)) != digest:
                raise _refuse(
                    "SignedProperties do not match their digest", "xades-signed-properties"
                )
            continue
        if transforms or not uri or uri.startswith("#") or "://" in uri:
            raise _refuse(
                f"reference {uri!r} is not a plain reference to a container entry",
                "xades-reference",
            )
        name = unquote(uri, errors="strict")
        try:
            check_entry_name(name)
        except PackageError as exc:
            raise _refuse(str(exc), "xades-reference") from exc
        if entry_key(name) in names:
            raise _refuse(f"entry {name!r} is referenced twice", "xades-reference")
        names.add(entry_key(name))
        mime_type = mime_types.get(f"#{reference.get('Id')}") if reference.get("Id") else None
        files.append(SignedReference(name, digest_method, digest, mime_type))
    if not signed_properties_seen:
        raise _refuse("SignedProperties are not signed", "xades-signed-properties")
    return tuple(files)


def _check_signing_certificate(ssp: etree._Element, signer: x509.Certificate) -> None:
    v2 = [c for c in ssp if c.tag == _xades("SigningCertificateV2")]
    if len(v2) != 1:
        raise _refuse("SigningCertificateV2 is missing", "xades-signing-certificate")
    der = signer.public_bytes(Encoding.DER)
    for cert in v2[0]:
        if cert.tag != _xades("Cert"):
            continue
        method, digest = _digest_of(_one(cert, _xades("CertDigest"), "CertDigest"), "CertDigest")
        if method.digest(der) != digest:
            continue
        issuer_serial = cert.find(_xades("IssuerSerialV2"))
        if issuer_serial is not None and not _names_certificate(
            _decode_b64(issuer_serial.text, "IssuerSerialV2"), signer
        ):
            raise _refuse(
                "IssuerSerialV2 does not name the signing certificate", "xades-signing-certificate"
            )
        return
    raise _refuse(
        "SigningCertificateV2 does not match the certificate in KeyInfo",
        "xades-signing-certificate",
    )


def _names_certificate(issuer_serial_der: bytes, certificate: x509.Certificate) -> bool:
    """Does an RFC 5035 IssuerSerial name ``certificate``? Compared by value, not encoding."""
    asn1_cert = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
    try:
        value = asn1_cms.IssuerSerial.load(issuer_serial_der)
        names = [g.chosen for g in value["issuer"] if g.name == "directory_name"]
        serial = value["serial"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise _refuse(f"IssuerSerialV2 is malformed: {exc}", "xades-signing-certificate") from exc
    return bool(serial == asn1_cert.serial_number and names and names[0] == asn1_cert.issuer)
