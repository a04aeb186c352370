"""XAdES signatures for ASiC-E: build, verify, and the ways a signature can be wrong."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from sbdh.errors import SignatureError, UntrustedSigner
from sbdh.pki import Credential, generate_root_ca, issue_end_entity, issue_intermediate_ca
from sbdh.trust import TrustStore
from sbdh.xades import DataObject, VerifiedSignature, build_signature, verify_signature
from sbdh.xmlsafe import XmlLimits

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMITS = XmlLimits()
DS = "{http://www.w3.org/2000/09/xmldsig#}"
XADES = "{http://uri.etsi.org/01903/v1.3.2#}"


@pytest.fixture(scope="module")
def pki() -> dict[str, Credential]:
    root = generate_root_ca("XAdES test root", now=NOW, key_size=2048)
    ca = issue_intermediate_ca(root, "XAdES test CA", now=NOW, key_size=2048)
    signer = issue_end_entity(ca, "Signer", now=NOW, organisation_number="991825827")
    stranger_root = generate_root_ca("Stranger root", now=NOW, key_size=2048)
    stranger = issue_end_entity(stranger_root, "Stranger", now=NOW)
    return {"root": root, "ca": ca, "signer": signer, "stranger": stranger}


@pytest.fixture(scope="module")
def trust(pki: dict[str, Credential]) -> TrustStore:
    return TrustStore((pki["root"].certificate,))


OBJECTS = [
    DataObject("doc.pdf", hashlib.sha256(b"pdf").digest(), "application/pdf"),
    DataObject("vedlegg/b c.txt", hashlib.sha256(b"txt").digest(), "text/plain"),
]


def _verify(data: bytes, trust: TrustStore, now: datetime = NOW) -> VerifiedSignature:
    return verify_signature(data, trust=trust, now=now, limits=LIMITS)


def _edit(data: bytes, change: object) -> bytes:
    root = etree.fromstring(data)
    change(root)  # type: ignore[operator]
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def test_signature_round_trip(pki: dict[str, Credential], trust: TrustStore) -> None:
    xml = build_signature(OBJECTS, pki["signer"], signing_time=NOW)
    verified = _verify(xml, trust)
    assert [(r.name, r.digest, r.mime_type) for r in verified.references] == [
        (o.name, o.sha256, o.mime_type) for o in OBJECTS
    ]
    assert verified.signer == pki["signer"].certificate
    assert verified.chain[-1] == pki["root"].certificate
    assert verified.signing_time == NOW


def test_signature_layout(pki: dict[str, Credential]) -> None:
    root = etree.fromstring(build_signature(OBJECTS, pki["signer"], signing_time=NOW))
    assert root.tag == "{http://uri.etsi.org/02918/v1.2.1#}XAdESSignatures"
    refs = root.findall(f".//{DS}Reference")
    assert [r.get("URI") for r in refs] == ["doc.pdf", "vedlegg/b%20c.txt", "#SignedProperties"]
    assert refs[-1].get("Type") == "http://uri.etsi.org/01903#SignedProperties"
    cert_digest = root.find(f".//{XADES}SigningCertificateV2/{XADES}Cert/{XADES}CertDigest")
    assert cert_digest is not None
    expected = pki["signer"].certificate.fingerprint(hashes.SHA256())
    assert base64.b64decode(cert_digest.findtext(f"{DS}DigestValue") or "") == expected
    # the intermediate travels in KeyInfo, the self-signed root does not
    assert len(root.findall(f".//{DS}X509Certificate")) == 2


def test_a_changed_digest_breaks_the_signature(
    pki: dict[str, Credential], trust: TrustStore
) -> None:
    def change(root: etree._Element) -> None:
        value = root.find(f".//{DS}Reference/{DS}DigestValue")
        assert value is not None
        value.text = base64.b64encode(b"\x00" * 32).decode()

    xml = _edit(build_signature(OBJECTS, pki["signer"], signing_time=NOW), change)
    with pytest.raises(SignatureError) as err:
        _verify(xml, trust)
    assert err.value.rule == "xades-signature-value"


def test_changed_signed_properties(pki: dict[str, Credential], trust: TrustStore) -> None:
    def change(root: etree._Element) -> None:
        time = root.find(f".//{XADES}SigningTime")
        assert time is not None
        time.text = "2020-01-01T00:00:00Z"

    xml = _edit(build_signature(OBJECTS, pki["signer"], signing_time=NOW), change)
    with pytest.raises(SignatureError) as err:
        _verify(xml, trust)
    assert err.value.rule == "xades-signed-properties"


def test_untrusted_and_expired_signers(pki: dict[str, Credential], trust: TrustStore) -> None:
    stranger = build_signature(OBJECTS, pki["stranger"], signing_time=NOW)
    with pytest.raises(UntrustedSigner):
        _verify(stranger, trust)
    ours = build_signature(OBJECTS, pki["signer"], signing_time=NOW)
    with pytest.raises(UntrustedSigner) as err:
        _verify(ours, trust, now=NOW + timedelta(days=800))
    assert err.value.rule == "cert-expired"


def test_substituted_certificate_with_the_same_key(
    pki: dict[str, Credential], trust: TrustStore
) -> None:
    """A second certificate for the signer's key must not pass for the one that was signed."""
    signer, ca = pki["signer"], pki["ca"]
    twin = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=Twin,O=Other,C=NO"))
        .issuer_name(ca.certificate.subject)
        .public_key(signer.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(
            signer.certificate.extensions.get_extension_for_class(x509.KeyUsage).value, True
        )
        .sign(ca.key, hashes.SHA256())
    )
    xml = build_signature(OBJECTS, signer, signing_time=NOW)

    def swap(root: etree._Element) -> None:
        first = root.find(f".//{DS}X509Certificate")
        assert first is not None
        first.text = base64.b64encode(twin.public_bytes(Encoding.DER)).decode()

    with pytest.raises(SignatureError) as err:
        _verify(_edit(xml, swap), trust)
    assert err.value.rule == "xades-signing-certificate"


def test_signing_time_in_the_future(pki: dict[str, Credential], trust: TrustStore) -> None:
    xml = build_signature(OBJECTS, pki["signer"], signing_time=NOW + timedelta(hours=1))
    with pytest.raises(SignatureError) as err:
        _verify(xml, trust)
    assert err.value.rule == "xades-signing-time"


def test_sha1_is_refused_before_any_cryptography(
    pki: dict[str, Credential], trust: TrustStore
) -> None:
    def change(root: etree._Element) -> None:
        method = root.find(f".//{DS}SignatureMethod")
        assert method is not None
        method.set("Algorithm", "http://www.w3.org/2000/09/xmldsig#rsa-sha1")

    xml = _edit(build_signature(OBJECTS, pki["signer"], signing_time=NOW), change)
    with pytest.raises(SignatureError) as err:
        _verify(xml, trust)
    assert err.value.rule == "xades-algorithm"


def test_second_signature_is_refused(pki: dict[str, Credential], trust: TrustStore) -> None:
    xml = build_signature(OBJECTS, pki["signer"], signing_time=NOW)

    def duplicate(root: etree._Element) -> None:
        root.append(etree.fromstring(etree.tostring(root[0])))

    with pytest.raises(SignatureError) as err:
        _verify(_edit(xml, duplicate), trust)
    assert err.value.rule == "xades-structure"


def test_wrapped_signed_properties_id_is_refused(
    pki: dict[str, Credential], trust: TrustStore
) -> None:
    xml = build_signature(OBJECTS, pki["signer"], signing_time=NOW)

    def wrap(root: etree._Element) -> None:
        decoy = etree.SubElement(root, "decoy", Id="SignedProperties")
        decoy.text = "evil"

    with pytest.raises(SignatureError) as err:
        _verify(_edit(xml, wrap), trust)
    assert err.value.rule == "xades-structure"


def test_a_dtd_is_refused(pki: dict[str, Credential], trust: TrustStore) -> None:
    xml = build_signature(OBJECTS, pki["signer"], signing_time=NOW)
    evil = xml.replace(b"?>", b'?><!DOCTYPE x [<!ENTITY e "boom">]>', 1)
    with pytest.raises(SignatureError) as err:
        _verify(evil, trust)
    assert err.value.rule == "xades-structure"


def test_not_an_xades_document(trust: TrustStore) -> None:
    with pytest.raises(SignatureError):
        _verify(b"<x/>", trust)
    with pytest.raises(SignatureError):
        _verify(b"not xml", trust)
