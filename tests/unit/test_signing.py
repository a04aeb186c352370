"""Signed SBDs: round trips, tampering, signature wrapping and untrusted signers."""

from __future__ import annotations

import base64
import copy
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from sbdh.errors import SignatureError, UntrustedSigner
from sbdh.pki import DevPki, generate_root_ca, issue_end_entity
from sbdh.signing import DS_NS, SBDH_NS, sign_sbd, verify_sbd
from sbdh.trust import TrustStore

NS = {"ds": DS_NS, "sbdh": SBDH_NS}


def _c14n(data: bytes | etree._Element) -> bytes:
    root = etree.fromstring(data) if isinstance(data, bytes) else data
    return etree.tostring(root, method="c14n", exclusive=True, with_comments=False)


@pytest.fixture(scope="module")
def unsigned(testdata: Path) -> bytes:
    return (testdata / "sbdh/samples/good/good-bis3.xml").read_bytes()


@pytest.fixture(scope="module")
def signed(unsigned: bytes, dev_pki: DevPki) -> bytes:
    return sign_sbd(unsigned, dev_pki.organisations["991825827"])


def test_every_good_sample_signs_and_verifies(
    testdata: Path, dev_pki: DevPki, trust: TrustStore, now: datetime
) -> None:
    signer = dev_pki.organisations["974760673"]
    for path in sorted((testdata / "sbdh/samples/good").glob("*.xml")):
        original = path.read_bytes()
        verified = verify_sbd(sign_sbd(original, signer), trust, at=now)
        assert verified.signer == signer.certificate, path.name
        assert _c14n(verified.document) == _c14n(original), path.name
        assert verified.chain[-1] == dev_pki.root.certificate


def test_signature_follows_the_profile(signed: bytes) -> None:
    root = etree.fromstring(signed)
    sig = root[-1]
    assert sig.tag == f"{{{DS_NS}}}Signature"
    assert sig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm").endswith("rsa-sha256")
    assert sig.find("ds:SignedInfo/ds:CanonicalizationMethod", NS).get("Algorithm") == (
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    )
    refs = sig.findall("ds:SignedInfo/ds:Reference", NS)
    assert [r.get("URI") for r in refs] == [""]
    assert len(sig.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)) == 3


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<Type>Invoice</Type>", b"<Type>CreditNote</Type>"),  # header
        (b"<ubl:Invoice>", b"<ubl:Invoice><ubl:Note>pay elsewhere</ubl:Note>"),  # payload
    ],
)
def test_tampering_breaks_the_signature(
    signed: bytes, trust: TrustStore, now: datetime, old: bytes, new: bytes
) -> None:
    assert old in signed
    with pytest.raises(SignatureError) as info:
        verify_sbd(signed.replace(old, new, 1), trust, at=now)
    assert info.value.rule == "sbd-signature-invalid"


def test_second_unsigned_header_is_refused(signed: bytes, trust: TrustStore, now: datetime) -> None:
    root = etree.fromstring(signed)
    forged = copy.deepcopy(root[0])
    forged.find("sbdh:Receiver/sbdh:Identifier", NS).text = "0192:974760673"
    root.insert(0, forged)
    with pytest.raises(SignatureError) as info:
        verify_sbd(etree.tostring(root), trust, at=now)
    assert info.value.rule == "sbd-signature-wrapping"


def test_signed_document_hidden_in_an_object_is_refused(
    signed: bytes, trust: TrustStore, now: datetime
) -> None:
    # Classic wrapping: forge a new document, tuck the genuinely signed one inside the
    # signature's ds:Object and point the reference at it by id.
    original = etree.fromstring(signed)
    forged = copy.deepcopy(original)
    sig = forged[-1]
    obj = etree.SubElement(sig, f"{{{DS_NS}}}Object", Id="orig")
    obj.append(copy.deepcopy(original))
    sig.find("ds:SignedInfo/ds:Reference", NS).set("URI", "#orig")
    forged.find(
        "sbdh:StandardBusinessDocumentHeader/sbdh:Receiver/sbdh:Identifier", NS
    ).text = "0192:974760673"
    with pytest.raises(SignatureError) as info:
        verify_sbd(etree.tostring(forged), trust, at=now)
    assert info.value.rule == "sbd-signature-wrapping"


def test_signature_must_be_the_last_child(signed: bytes, trust: TrustStore, now: datetime) -> None:
    root = etree.fromstring(signed)
    sig = root[-1]
    root.remove(sig)
    root.insert(1, sig)
    with pytest.raises(SignatureError) as info:
        verify_sbd(etree.tostring(root), trust, at=now)
    assert info.value.rule == "sbd-signature-wrapping"


def test_unsigned_document_is_refused(unsigned: bytes, trust: TrustStore, now: datetime) -> None:
    with pytest.raises(SignatureError) as info:
        verify_sbd(unsigned, trust, at=now)
    assert info.value.rule == "sbd-signature-missing"


def test_signing_twice_is_refused(signed: bytes, dev_pki: DevPki) -> None:
    with pytest.raises(SignatureError):
        sign_sbd(signed, dev_pki.organisations["991825827"])


def test_weaker_algorithm_is_refused_before_verifying(
    signed: bytes, trust: TrustStore, now: datetime
) -> None:
    downgraded = signed.replace(
        b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        b"http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    )
    with pytest.raises(SignatureError) as info:
        verify_sbd(downgraded, trust, at=now)
    assert info.value.rule == "sbd-signature-profile"


def test_swapping_in_another_trusted_certificate_does_not_verify(
    signed: bytes, dev_pki: DevPki, trust: TrustStore, now: datetime
) -> None:
    root = etree.fromstring(signed)
    leaf = root[-1].find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
    other = dev_pki.organisations["974760673"].certificate.public_bytes(Encoding.DER)
    leaf.text = base64.b64encode(other).decode()
    with pytest.raises(SignatureError) as info:
        verify_sbd(etree.tostring(root), trust, at=now)
    assert info.value.rule == "sbd-signature-invalid"


def test_signer_outside_the_trust_anchors_is_refused(
    unsigned: bytes, trust: TrustStore, now: datetime
) -> None:
    rogue_root = generate_root_ca("Rogue CA", now=now, key_size=2048)
    rogue = issue_end_entity(rogue_root, "rogue", now=now, key_size=2048)
    with pytest.raises(UntrustedSigner) as info:
        verify_sbd(sign_sbd(unsigned, rogue), trust, at=now)
    assert info.value.rule == "chain-incomplete"


def test_expired_signer_is_refused(signed: bytes, trust: TrustStore, now: datetime) -> None:
    with pytest.raises(UntrustedSigner) as info:
        verify_sbd(signed, trust, at=now + timedelta(days=800))
    assert info.value.rule == "cert-expired"


def test_verified_document_is_what_was_signed_not_what_was_received(
    signed: bytes, trust: TrustStore, now: datetime
) -> None:
    # Comments are outside exclusive c14n without comments: an attacker may add them, and the
    # result must not contain them.
    noisy = signed.replace(b"<Type>Invoice</Type>", b"<Type>Invoice<!-- injected --></Type>")
    verified = verify_sbd(noisy, trust, at=now)
    assert b"injected" not in verified.document


def test_the_model_comes_from_what_was_verified(
    signed: bytes, trust: TrustStore, now: datetime
) -> None:
    from sbdh.rules import Profile

    sbd = verify_sbd(signed, trust, at=now).sbd(Profile.PEPPOL)
    assert sbd.header.document_identification.type == "Invoice"
    assert sbd.header.country_c1 == "AT"


def test_a_signed_sbd_still_passes_the_envelope_rules(signed: bytes) -> None:
    from sbdh.rules import Profile, validate_sbd

    report = validate_sbd(signed, Profile.PEPPOL)
    assert report.valid, report.violations


def test_anything_after_the_signature_breaks_the_envelope_rules(signed: bytes) -> None:
    from sbdh.rules import validate_sbd

    extra = signed.replace(
        b"</StandardBusinessDocument>", b"<x:extra xmlns:x='urn:x'/></StandardBusinessDocument>"
    )
    report = validate_sbd(extra)
    assert not report.valid
    assert report.violations[0].rule == "sbdh-unexpected-element"
