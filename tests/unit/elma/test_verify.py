"""SMP signatures: the real samples, our own signatures, tampering, wrapping and trust."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml import (  # type: ignore[attr-defined]
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
    XMLSigner,
)

from elma.build import service_metadata_element
from elma.errors import SmpSignatureError
from elma.model import (
    DocumentTypeId,
    Endpoint,
    ParticipantId,
    Process,
    ProcessId,
    Redirect,
    ServiceGroup,
    ServiceMetadata,
    ServiceReference,
)
from elma.parse import parse_service_metadata
from elma.sign import sign_service_group, sign_service_metadata
from elma.spec import NS, SmpFormat, TransportProfile
from elma.verify import (
    VerifyPolicy,
    check_redirect_signer,
    verify_service_group,
    verify_service_metadata,
)
from sbdh.errors import UntrustedSigner, XmlSecurityError
from sbdh.pki import Credential, DevPki, generate_root_ca, issue_end_entity
from sbdh.trust import TrustStore
from tests.unit.elma.helpers import key_info_certificate

SAMPLE_1 = "peppol-commons_signed-service-metadata1_INVALID-signature.xml"
SAMPLE_2 = "peppol-commons_signed-service-metadata2_valid-at-2021-01-01.xml"
SAMPLE_3 = "peppol-commons_signed-service-metadata3_as4_c14n-inclusive_valid-at-2020-08-01.xml"
LEGACY = VerifyPolicy(allow_sha1=True)
NSMAP = {"ds": NS.DS, "smp": NS.SMP, "wsa": NS.WSA}


def _metadata(dev_pki: DevPki, smp_format: SmpFormat = SmpFormat.PEPPOL) -> ServiceMetadata:
    ap = dev_pki.access_points["PNO000001"].certificate.public_bytes(Encoding.DER)
    endpoint = Endpoint(
        TransportProfile.PEPPOL_AS4_V2,
        "https://ap.example.no/as4",
        ap,
        service_activation=datetime(2024, 1, 1, tzinfo=UTC),
        description="Budstikke",
        technical_contact="mailto:drift@example.no",
    )
    return ServiceMetadata(
        ParticipantId.peppol("0192:991825827"),
        DocumentTypeId("busdox-docid-qns", "urn:no:difi:arkivmelding:xsd::arkivmelding"),
        (
            Process(
                ProcessId("urn:fdc:difi.no:2019:profile", "arkivmelding:administrasjon:ver1.0"),
                (endpoint,),
            ),
        ),
        format=smp_format,
    )


# --------------------------------------------------------------------------- real samples


@pytest.mark.testdata
@pytest.mark.parametrize(
    ("name", "at", "participant", "signer_cn"),
    [
        (SAMPLE_2, datetime(2021, 1, 1, tzinfo=UTC), "0088:5060482240009", "PNO000070"),
        (SAMPLE_3, datetime(2020, 8, 1, tzinfo=UTC), "0106:55872255", "PNL000052"),
    ],
)
def test_real_signatures_verify_at_their_dates(
    smp_samples: Path, name: str, at: datetime, participant: str, signer_cn: str
) -> None:
    data = (smp_samples / name).read_bytes()
    # the Peppol SMP CA is not in the test data: pin the SMP's own certificate as the anchor
    pinned = TrustStore((key_info_certificate(data),))
    verified = verify_service_metadata(data, pinned, at=at, policy=LEGACY)
    assert verified.metadata.participant == ParticipantId.peppol(participant)
    assert signer_cn in verified.signer.subject.rfc4514_string()
    assert verified.chain == (verified.signer,)
    # what is returned is what was verified: the document without its signature
    assert b"SignatureValue" not in verified.document
    assert parse_service_metadata(verified.document) == verified.metadata


@pytest.mark.testdata
def test_the_broken_sample_signature_is_rejected(smp_samples: Path) -> None:
    data = (smp_samples / SAMPLE_1).read_bytes()
    pinned = TrustStore((key_info_certificate(data),))
    with pytest.raises(SmpSignatureError) as caught:
        verify_service_metadata(data, pinned, at=datetime(2020, 6, 1, tzinfo=UTC), policy=LEGACY)
    assert caught.value.rule == "smp-signature-invalid"


@pytest.mark.testdata
def test_sha1_is_refused_unless_allowed(smp_samples: Path) -> None:
    data = (smp_samples / SAMPLE_2).read_bytes()
    pinned = TrustStore((key_info_certificate(data),))
    with pytest.raises(SmpSignatureError, match="rsa-sha1 is not allowed") as caught:
        verify_service_metadata(data, pinned, at=datetime(2021, 1, 1, tzinfo=UTC))
    assert caught.value.rule == "smp-signature-profile"


@pytest.mark.testdata
def test_the_signer_is_checked_at_the_time_given(smp_samples: Path) -> None:
    data = (smp_samples / SAMPLE_2).read_bytes()
    pinned = TrustStore((key_info_certificate(data),))
    with pytest.raises(UntrustedSigner) as caught:
        verify_service_metadata(data, pinned, at=datetime(2022, 1, 1, tzinfo=UTC), policy=LEGACY)
    assert caught.value.rule == "cert-expired"


@pytest.mark.testdata
def test_chain_validation_uses_the_anchors_given(smp_samples: Path, trust: TrustStore) -> None:
    data = (smp_samples / SAMPLE_3).read_bytes()
    # the development root did not issue the Peppol SMP CA
    with pytest.raises(UntrustedSigner) as caught:
        verify_service_metadata(data, trust, at=datetime(2020, 8, 1, tzinfo=UTC), policy=LEGACY)
    assert caught.value.rule == "chain-incomplete"
    assert "CN=PNL000052" in str(caught.value)


@pytest.mark.testdata
def test_unsigned_documents_are_refused(
    smp_samples: Path, trust: TrustStore, now: datetime
) -> None:
    data = (smp_samples / "phoss-smp_bdxr1-service-metadata.xml").read_bytes()
    with pytest.raises(SmpSignatureError) as caught:
        verify_service_metadata(data, trust, at=now)
    assert caught.value.rule == "smp-signature-missing"


@pytest.mark.testdata
def test_redirect_signer_matches_certificate_uid(smp_samples: Path) -> None:
    redirect_file = (
        smp_samples / "vefa_busdox-servicemetadata-redirect-0192-991825827.xml"
    ).read_bytes()
    redirect = parse_service_metadata(redirect_file).redirect
    assert redirect is not None
    test_smp = key_info_certificate(redirect_file)  # CN=PNO000179, OU=PEPPOL TEST SMP
    check_redirect_signer(redirect, test_smp)
    production_smp = key_info_certificate(
        (smp_samples / "vefa_busdox-servicemetadata-0192-991825827_ELMA_as4.xml").read_bytes()
    )
    with pytest.raises(UntrustedSigner, match="PEPPOL PRODUCTION SMP") as caught:
        check_redirect_signer(redirect, production_smp)
    assert caught.value.rule == "smp-redirect-signer"


# --------------------------------------------------------------------------- our own signatures


@pytest.mark.parametrize("smp_format", list(SmpFormat))
def test_signed_metadata_round_trips(
    dev_pki: DevPki, smp_signer: Credential, trust: TrustStore, now: datetime, smp_format: SmpFormat
) -> None:
    metadata = _metadata(dev_pki, smp_format)
    signed = sign_service_metadata(metadata, smp_signer)
    assert parse_service_metadata(signed) == metadata
    verified = verify_service_metadata(signed, trust, at=now)
    assert verified.metadata == metadata
    assert verified.signer == smp_signer.certificate
    assert verified.chain[-1] == dev_pki.root.certificate
    root = etree.fromstring(signed)
    expected_root = "ServiceMetadata" if smp_format is SmpFormat.SMP2 else "SignedServiceMetadata"
    assert etree.QName(root).localname == expected_root
    signature = root[-1]
    assert signature.tag == f"{{{NS.DS}}}Signature"
    method = signature.find("ds:SignedInfo/ds:SignatureMethod", NSMAP)
    assert method is not None
    assert method.get("Algorithm") == SignatureMethod.RSA_SHA256.value


def test_inclusive_c14n_signatures_verify(
    dev_pki: DevPki, smp_signer: Credential, trust: TrustStore, now: datetime
) -> None:
    metadata = _metadata(dev_pki)
    root = service_metadata_element(metadata, signed_wrapper=True)
    signed = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0,
    ).sign(root, key=smp_signer.key, cert=[smp_signer.certificate, *smp_signer.chain])
    data = etree.tostring(signed)
    assert b"REC-xml-c14n-20010315" in data
    assert verify_service_metadata(data, trust, at=now).metadata == metadata


def test_signed_smp2_service_group_round_trips(
    smp_signer: Credential, trust: TrustStore, now: datetime
) -> None:
    group = ServiceGroup(
        ParticipantId.peppol("0192:974760673"),
        (
            ServiceReference(
                DocumentTypeId("busdox-docid-qns", "urn:no:difi:eformidling:xsd::status"),
                processes=(
                    ProcessId("cenbii-procid-ubl", "urn:no:difi:profile:eformidling:ver2.0"),
                ),
            ),
        ),
        SmpFormat.SMP2,
    )
    verified = verify_service_group(sign_service_group(group, smp_signer), trust, at=now)
    assert verified.group == group
    assert verified.signer == smp_signer.certificate


def _signed(dev_pki: DevPki, signer: Credential) -> etree._Element:
    return etree.fromstring(sign_service_metadata(_metadata(dev_pki), signer))


def test_tampered_content_is_rejected(
    dev_pki: DevPki, smp_signer: Credential, trust: TrustStore, now: datetime
) -> None:
    root = _signed(dev_pki, smp_signer)
    address = root.find(".//wsa:Address", NSMAP)
    assert address is not None
    address.text = "https://attacker.example/as4"
    with pytest.raises(SmpSignatureError) as caught:
        verify_service_metadata(etree.tostring(root), trust, at=now)
    assert caught.value.rule == "smp-signature-invalid"


def test_a_second_service_metadata_is_wrapping(
    dev_pki: DevPki, smp_signer: Credential, trust: TrustStore, now: datetime
) -> None:
    root = _signed(dev_pki, smp_signer)
    forged = copy.deepcopy(root[0])
    address = forged.find(".//wsa:Address", NSMAP)
    assert address is not None
    address.text = "https://attacker.example/as4"
    root.insert(0, forged)
    with pytest.raises(SmpSignatureError) as caught:
        verify_service_metadata(etree.tostring(root), trust, at=now)
    assert caught.value.rule == "smp-signature-wrapping"


def test_two_signatures_are_wrapping(
    dev_pki: DevPki, smp_signer: Credential, trust: TrustStore, now: datetime
) -> None:
    root = _signed(dev_pki, smp_signer)
    information = root.find("smp:ServiceMetadata/smp:ServiceInformation", NSMAP)
    assert information is not None
    information.append(copy.deepcopy(root[-1]))
    with pytest.raises(SmpSignatureError, match="2 signatures") as caught:
        verify_service_metadata(etree.tostring(root), trust, at=now)
    assert caught.value.rule == "smp-signature-wrapping"


def test_a_reference_by_id_is_refused(
    dev_pki: DevPki, smp_signer: Credential, trust: TrustStore, now: datetime
) -> None:
    root = _signed(dev_pki, smp_signer)
    reference = root.find(".//ds:Reference", NSMAP)
    assert reference is not None
    reference.set("URI", "#ServiceInformation")
    with pytest.raises(SmpSignatureError, match="must cover the whole document") as caught:
        verify_service_metadata(etree.tostring(root), trust, at=now)
    assert caught.value.rule == "smp-signature-wrapping"


def test_foreign_transforms_are_refused(
    dev_pki: DevPki, smp_signer: Credential, trust: TrustStore, now: datetime
) -> None:
    root = _signed(dev_pki, smp_signer)
    transform = root.find(".//ds:Transforms/ds:Transform", NSMAP)
    assert transform is not None
    transform.set("Algorithm", "http://www.w3.org/TR/1999/REC-xslt-19991116")
    with pytest.raises(SmpSignatureError, match="transforms") as caught:
        verify_service_metadata(etree.tostring(root), trust, at=now)
    assert caught.value.rule == "smp-signature-profile"


def test_a_signer_outside_the_trust_store_is_refused(
    dev_pki: DevPki, trust: TrustStore, now: datetime
) -> None:
    stranger_root = generate_root_ca("Stranger Root", now=now, key_size=2048)
    stranger = issue_end_entity(stranger_root, "PNO000666", now=now)
    data = sign_service_metadata(_metadata(dev_pki), stranger)
    with pytest.raises(UntrustedSigner) as caught:
        verify_service_metadata(data, trust, at=now)
    assert caught.value.rule == "chain-incomplete"


def test_a_pinned_signer_is_trusted_alone(
    dev_pki: DevPki, smp_signer: Credential, now: datetime
) -> None:
    data = sign_service_metadata(_metadata(dev_pki), smp_signer)
    pinned = TrustStore((smp_signer.certificate,))
    assert verify_service_metadata(data, pinned, at=now).chain == (smp_signer.certificate,)
    with pytest.raises(UntrustedSigner) as caught:
        verify_service_metadata(data, pinned, at=now + timedelta(days=400))
    assert caught.value.rule == "cert-expired"


def test_hostile_xml_is_refused_before_any_check(trust: TrustStore, now: datetime) -> None:
    hostile = (
        b'<!DOCTYPE x [<!ENTITY e "boom">]>'
        b'<SignedServiceMetadata xmlns="http://busdox.org/serviceMetadata/publishing/1.0/">'
        b"&e;</SignedServiceMetadata>"
    )
    with pytest.raises(XmlSecurityError):
        verify_service_metadata(hostile, trust, at=now)


def test_a_naive_time_is_a_programming_error(trust: TrustStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_service_metadata(b"<x/>", trust, at=datetime(2024, 1, 1))


def test_smp2_redirect_signer_is_matched_by_certificate(
    smp_signer: Credential, dev_pki: DevPki
) -> None:
    der = smp_signer.certificate.public_bytes(Encoding.DER)
    redirect = Redirect("https://other-smp.example/bdxr-smp-2/x", certificates=(b"junk", der))
    check_redirect_signer(redirect, smp_signer.certificate)
    with pytest.raises(UntrustedSigner) as caught:
        check_redirect_signer(redirect, dev_pki.access_points["PNO000001"].certificate)
    assert caught.value.rule == "smp-redirect-signer"


def test_certificate_uid_comparison_ignores_order_case_and_spacing(
    smp_signer: Credential,
) -> None:
    # the signer's subject is C=NO, O=Test SMP, CN=PNO000900
    check_redirect_signer(
        Redirect("https://x", certificate_uid="cn=PNO000900, o=test smp, C=NO"),
        smp_signer.certificate,
    )
    for uid in ("C=NO,O=Test SMP", "C=NO,O=Test SMP,CN=PNO000901", "not a name"):
        with pytest.raises(UntrustedSigner):
            check_redirect_signer(
                Redirect("https://x", certificate_uid=uid), smp_signer.certificate
            )
