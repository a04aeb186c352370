"""Building SMP documents: model → XML → model in every format, and what a format cannot hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from elma.build import build_service_group, build_service_metadata
from elma.errors import SmpBuildError
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
from elma.parse import parse_service_group, parse_service_metadata
from elma.sign import sign_service_group
from elma.spec import NS, SmpFormat, TransportProfile
from sbdh.pki import Credential, DevPki

PARTICIPANT = ParticipantId.peppol("0192:991825827")
INVOICE = DocumentTypeId(
    "busdox-docid-qns",
    "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017"
    "#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1",
)
BILLING = ProcessId("cenbii-procid-ubl", "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0")


@pytest.fixture(scope="module")
def ap_der(dev_pki: DevPki) -> bytes:
    return dev_pki.access_points["PNO000002"].certificate.public_bytes(Encoding.DER)


def full_metadata(smp_format: SmpFormat, der: bytes) -> ServiceMetadata:
    """Everything every format can carry."""
    endpoint = Endpoint(
        TransportProfile.PEPPOL_AS4_V2,
        "https://ap.example.no/as4?x=1&y=<2>",
        der,
        service_activation=datetime(2024, 3, 1, tzinfo=UTC),
        service_expiration=datetime(2027, 3, 1, tzinfo=timezone(timedelta(hours=1))),
        description="Budstikke: æøå & <ÆØÅ>",
        technical_contact="mailto:drift@example.no",
    )
    second = Endpoint(TransportProfile.AS2_V2, "https://ap.example.no/as2", der)
    return ServiceMetadata(
        PARTICIPANT,
        INVOICE,
        (
            Process(BILLING, (endpoint, second)),
            Process(ProcessId("cenbii-procid-ubl", "urn:other"), (second,)),
        ),
        format=smp_format,
    )


@pytest.mark.parametrize("smp_format", list(SmpFormat))
def test_metadata_round_trips_in_every_format(smp_format: SmpFormat, ap_der: bytes) -> None:
    metadata = full_metadata(smp_format, ap_der)
    data = build_service_metadata(metadata)
    assert parse_service_metadata(data) == metadata
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


@pytest.mark.parametrize("smp_format", [SmpFormat.PEPPOL, SmpFormat.BDXR1])
def test_one_x_formats_keep_their_extra_fields(smp_format: SmpFormat, ap_der: bytes) -> None:
    endpoint = Endpoint(
        TransportProfile.PEPPOL_AS4_V2,
        "https://ap.example.no/as4",
        ap_der,
        service_activation=datetime(2024, 3, 1, 10, 30, 15, 250000, tzinfo=UTC),
        require_business_level_signature=True,
        minimum_authentication_level="2",
        technical_information="https://example.no/info",
    )
    metadata = ServiceMetadata(
        PARTICIPANT, INVOICE, (Process(BILLING, (endpoint,)),), format=smp_format
    )
    data = build_service_metadata(metadata)
    assert b"2024-03-01T10:30:15.25Z" in data
    assert parse_service_metadata(data) == metadata


def test_the_model_can_be_written_in_another_format(ap_der: bytes) -> None:
    peppol = full_metadata(SmpFormat.PEPPOL, ap_der)
    data = build_service_metadata(peppol, SmpFormat.BDXR1)
    root = etree.fromstring(data)
    assert root.tag == f"{{{NS.BDXR1}}}ServiceMetadata"
    again = parse_service_metadata(data)
    assert again.format is SmpFormat.BDXR1
    assert again.processes == peppol.processes


def test_peppol_document_shape(ap_der: bytes) -> None:
    root = etree.fromstring(build_service_metadata(full_metadata(SmpFormat.PEPPOL, ap_der)))
    ns = {"smp": NS.SMP, "id": NS.IDS, "wsa": NS.WSA}
    participant = root.find("smp:ServiceInformation/id:ParticipantIdentifier", ns)
    assert participant is not None
    assert participant.get("scheme") == "iso6523-actorid-upis"
    address = root.find(".//smp:Endpoint/wsa:EndpointReference/wsa:Address", ns)
    assert address is not None
    assert address.text == "https://ap.example.no/as4?x=1&y=<2>"
    first_endpoint = root.find(".//smp:Endpoint", ns)
    assert first_endpoint is not None
    names = [etree.QName(c).localname for c in first_endpoint]
    assert names == [
        "EndpointReference",
        "RequireBusinessLevelSignature",
        "ServiceActivationDate",
        "ServiceExpirationDate",
        "Certificate",
        "ServiceDescription",
        "TechnicalContactUrl",
    ]


def test_smp2_document_shape(ap_der: bytes) -> None:
    root = etree.fromstring(build_service_metadata(full_metadata(SmpFormat.SMP2, ap_der)))
    ns = {"smb": NS.SMP2_BASIC, "sma": NS.SMP2_AGGREGATE}
    assert root.findtext("smb:SMPVersionID", namespaces=ns) == "2.0"
    assert [etree.QName(c).localname for c in root] == [
        "SMPVersionID",
        "ID",
        "ParticipantID",
        "ProcessMetadata",
        "ProcessMetadata",
    ]
    assert root.findtext(".//smb:ExpirationDate", namespaces=ns) == "2027-03-01+01:00"
    assert root.findtext(".//smb:ActivationDate", namespaces=ns) == "2024-03-01Z"
    binary = root.find(".//sma:Certificate/smb:ContentBinaryObject", ns)
    assert binary is not None
    assert binary.get("mimeCode") == "application/pkix-cert"


def test_smp2_process_without_id_roles_and_redirects_round_trip(ap_der: bytes) -> None:
    metadata = ServiceMetadata(
        ParticipantId("urn:oasis:tc:ebcore:partyid-type:unregistered", "budstikke-test"),
        DocumentTypeId(None, "urn:x::y"),
        (
            Process(
                ProcessId(None, "urn:p"),
                (Endpoint("bdxr-transport-ebms3-as4-v1p0", "https://a", ap_der),),
                ("Buyer", "Seller"),
            ),
            Process(None, (Endpoint("bdxr-transport-ebms3-as4-v1p0", "https://any", None),)),
            Process(
                ProcessId(None, "urn:q"),
                redirect=Redirect("https://other/bdxr-smp-2/x", certificates=(ap_der,)),
            ),
        ),
        format=SmpFormat.SMP2,
    )
    assert parse_service_metadata(build_service_metadata(metadata)) == metadata


@pytest.mark.parametrize("smp_format", [SmpFormat.PEPPOL, SmpFormat.BDXR1])
def test_redirects_round_trip(smp_format: SmpFormat) -> None:
    redirect = Redirect(
        "https://smp2.example/iso6523-actorid-upis%3A%3A0192%3A991825827/services/x",
        certificate_uid="C=NO,O=Digdir,CN=PNO000179",
    )
    metadata = ServiceMetadata(None, None, redirect=redirect, format=smp_format)
    assert parse_service_metadata(build_service_metadata(metadata)) == metadata


@pytest.mark.parametrize("smp_format", list(SmpFormat))
def test_service_groups_round_trip(smp_format: SmpFormat) -> None:
    other = DocumentTypeId("busdox-docid-qns", "urn:no:difi:arkivmelding:xsd::arkivmelding")
    processes = (BILLING,) if smp_format is SmpFormat.SMP2 else ()
    group = ServiceGroup(
        PARTICIPANT,
        (
            ServiceReference(INVOICE, processes=processes),
            ServiceReference(other, processes=processes),
        ),
        smp_format,
    )
    data = build_service_group(group, base_url="https://smp.example.no/")
    again = parse_service_group(data)
    assert again.participant == PARTICIPANT
    assert again.document_types() == (INVOICE, other)
    assert again.format is smp_format
    if smp_format is SmpFormat.SMP2:
        assert again == group
    else:
        href = again.references[0].href
        assert href is not None
        assert href.startswith(
            "https://smp.example.no/iso6523-actorid-upis%3A%3A0192%3A991825827/services/"
        )
        assert "%23%23urn%3Acen.eu%3Aen16931%3A2017%23compliant" in href


@pytest.mark.testdata
def test_a_real_service_group_round_trips(smp_samples: Path) -> None:
    group = parse_service_group(
        (smp_samples / "vefa_busdox-servicegroup-0192-991825827_ELMA.xml").read_bytes()
    )
    assert parse_service_group(build_service_group(group)) == group


# --------------------------------------------------------------------------- what cannot be built


def test_peppol_needs_schemes() -> None:
    metadata = ServiceMetadata(
        ParticipantId(None, "0192:991825827"),
        INVOICE,
        (Process(BILLING, (Endpoint("p", "https://a", b"c"),)),),
    )
    with pytest.raises(SmpBuildError, match="need a scheme") as caught:
        build_service_metadata(metadata)
    assert caught.value.rule == "smp-build-scheme"
    # BDXR 1.0 allows an identifier without a scheme
    assert parse_service_metadata(
        build_service_metadata(metadata, SmpFormat.BDXR1)
    ).participant == ParticipantId(None, "0192:991825827")


@pytest.mark.parametrize("smp_format", [SmpFormat.PEPPOL, SmpFormat.BDXR1])
def test_one_x_endpoints_need_a_certificate(smp_format: SmpFormat) -> None:
    metadata = ServiceMetadata(
        PARTICIPANT,
        INVOICE,
        (Process(BILLING, (Endpoint("p", "https://a", None),)),),
        format=smp_format,
    )
    with pytest.raises(SmpBuildError, match="need a certificate"):
        build_service_metadata(metadata)


def test_smp2_refuses_times_of_day() -> None:
    endpoint = Endpoint(
        "p", "https://a", None, service_activation=datetime(2024, 1, 1, 12, tzinfo=UTC)
    )
    metadata = ServiceMetadata(
        PARTICIPANT, INVOICE, (Process(BILLING, (endpoint,)),), format=SmpFormat.SMP2
    )
    with pytest.raises(SmpBuildError, match="not at midnight") as caught:
        build_service_metadata(metadata)
    assert caught.value.rule == "smp-build-date"


def test_one_x_formats_refuse_smp2_only_shapes(ap_der: bytes) -> None:
    any_process = ServiceMetadata(
        PARTICIPANT, INVOICE, (Process(None, (Endpoint("p", "https://a", ap_der),)),)
    )
    with pytest.raises(SmpBuildError, match=r"SMP 2\.0 only"):
        build_service_metadata(any_process)
    redirecting = ServiceMetadata(
        PARTICIPANT, INVOICE, (Process(BILLING, redirect=Redirect("https://b")),)
    )
    with pytest.raises(SmpBuildError):
        build_service_metadata(redirecting)
    no_uid = ServiceMetadata(None, None, redirect=Redirect("https://b"))
    with pytest.raises(SmpBuildError, match="CertificateUID"):
        build_service_metadata(no_uid)


def test_a_reference_without_href_needs_a_base_url() -> None:
    group = ServiceGroup(PARTICIPANT, (ServiceReference(INVOICE),))
    with pytest.raises(SmpBuildError, match="base URL"):
        build_service_group(group)


def test_only_smp2_groups_are_signed(smp_signer: Credential) -> None:
    with pytest.raises(SmpBuildError, match="not signed"):
        sign_service_group(ServiceGroup(PARTICIPANT), smp_signer)


def test_model_invariants() -> None:
    with pytest.raises(ValueError, match="empty or has surrounding whitespace"):
        ParticipantId.peppol(" 0192:991825827")
    with pytest.raises(ValueError, match="timezone-aware"):
        Endpoint("p", "https://a", service_activation=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="either endpoints or a redirect"):
        Process(BILLING)
    with pytest.raises(ValueError, match="at least one process"):
        ServiceMetadata(PARTICIPANT, INVOICE)
    with pytest.raises(ValueError, match="per process"):
        ServiceMetadata(None, None, redirect=Redirect("https://b"), format=SmpFormat.SMP2)


def test_participant_ids_compare_like_peppol_says() -> None:
    assert ParticipantId.peppol("9915:ABC") == ParticipantId("ISO6523-ACTORID-UPIS", "9915:abc")
    assert hash(ParticipantId.peppol("9915:ABC")) == hash(ParticipantId.peppol("9915:abc"))
    assert ParticipantId("urn:other", "ABC") != ParticipantId("urn:other", "abc")
    assert DocumentTypeId("busdox-docid-qns", "A") != DocumentTypeId("busdox-docid-qns", "a")
    assert ParticipantId.from_uri("iso6523-actorid-upis::0192:991825827") == PARTICIPANT
    assert ParticipantId.from_uri("::holodeck").scheme is None
    assert PARTICIPANT.uri() == "iso6523-actorid-upis::0192:991825827"
