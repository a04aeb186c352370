"""Every real SMP answer in ../shared/testdata/smp reads to the values it holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from elma.errors import SmpDocumentError
from elma.model import DocumentTypeId, ParticipantId, ProcessId, ServiceMetadata
from elma.parse import parse_service_group, parse_service_metadata
from elma.paths import parse_smp_path
from elma.spec import SmpFormat, TransportProfile

pytestmark = pytest.mark.testdata

PEPPOL_PROCESS = ProcessId("cenbii-procid-ubl", "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0")


def _read(smp_samples: Path, name: str) -> ServiceMetadata:
    return parse_service_metadata((smp_samples / name).read_bytes())


def _subject(metadata: ServiceMetadata, process: int = 0, endpoint: int = 0) -> str:
    cert = metadata.processes[process].endpoints[endpoint].x509_certificate()
    return cert.subject.rfc4514_string()


def test_elma_service_group(smp_samples: Path) -> None:
    group = parse_service_group(
        (smp_samples / "vefa_busdox-servicegroup-0192-991825827_ELMA.xml").read_bytes()
    )
    assert group.format is SmpFormat.PEPPOL
    assert group.participant == ParticipantId("iso6523-actorid-upis", "0192:991825827")
    assert len(group.references) == 9
    first = group.references[0]
    assert first.href is not None
    assert first.href.startswith(
        "https://smp.difi.no/iso6523-actorid-upis%3A%3A0192%3A991825827/services/"
        "busdox-docid-qns%3A%3Aurn%3Aoasis"
    )
    assert first.document_type == DocumentTypeId(
        "busdox-docid-qns",
        "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2::CreditNote##urn:cen.eu:"
        "en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1",
    )
    values = {d.value for d in group.document_types()}
    assert "urn:no:difi:arkivmelding:xsd::arkivmelding" in values
    assert "urn:no:difi:eformidling:xsd::status" in values
    assert len(group.document_types()) == 9
    # the href names the same participant as the group
    assert parse_smp_path("/" + first.href.split("/", 3)[3]).participant == group.participant


def test_elma_service_metadata_with_as4(smp_samples: Path) -> None:
    metadata = _read(smp_samples, "vefa_busdox-servicemetadata-0192-991825827_ELMA_as4.xml")
    assert metadata.format is SmpFormat.PEPPOL
    assert metadata.redirect is None
    assert metadata.participant == ParticipantId.peppol("0192:991825827")
    assert metadata.document_type is not None
    assert metadata.document_type.scheme == "busdox-docid-qns"
    assert metadata.document_type.value.endswith("urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1")
    (process,) = metadata.processes
    assert process.process_id == PEPPOL_PROCESS
    assert [e.transport_profile for e in process.endpoints] == [
        "busdox-transport-as2-ver2p0",
        "busdox-transport-as2-ver1p0",
        TransportProfile.PEPPOL_AS4_V2,
    ]
    as4 = process.endpoints[2]
    assert as4.address == "https://ectrade.ec.evry.com/peppol/as4"
    assert as4.service_activation == datetime(2020, 7, 31, tzinfo=UTC)
    assert as4.service_expiration == datetime(2022, 7, 21, 23, 59, 59, tzinfo=UTC)
    assert as4.require_business_level_signature is False
    assert as4.description == "EVRY AS"
    assert as4.technical_contact == "hans.kjorstad@evry.com"
    assert as4.technical_information is None
    assert _subject(metadata, 0, 2) == "C=NO,O=TietoEVRY,OU=PEPPOL PRODUCTION AP,CN=PNO000051"


def test_redirect(smp_samples: Path) -> None:
    metadata = _read(smp_samples, "vefa_busdox-servicemetadata-redirect-0192-991825827.xml")
    assert metadata.participant is None
    assert metadata.document_type is None
    assert metadata.processes == ()
    assert metadata.redirect is not None
    assert metadata.redirect.href.startswith(
        "http://test-smp2.difi.no/iso6523-actorid-upis%3A%3A0192%3A991825827/services/"
    )
    assert metadata.redirect.href.endswith("%3A%3A2.2")
    assert metadata.redirect.certificate_uid == (
        "C=NO,O=Direktoratet for Forvaltning og IKT,OU=PEPPOL TEST SMP,CN=PNO000179"
    )


def test_wildcard_pint(smp_samples: Path) -> None:
    metadata = _read(smp_samples, "vefa_peppol-doctype-wildcard-servicemetadata-pint.xml")
    assert metadata.participant == ParticipantId.peppol("9901:pint_c4_jp_sb")
    # the value is padded with line breaks and spaces in the file
    assert metadata.document_type == DocumentTypeId(
        "peppol-doctype-wildcard",
        "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##"
        "urn:peppol:pint:billing-3.0@jp:peppol-1*::2.1",
    )
    parts = metadata.document_type.parts()
    assert parts is not None
    assert parts.customization_id == "urn:peppol:pint:billing-3.0@jp:peppol-1*"
    assert parts.version == "2.1"
    (endpoint,) = metadata.processes[0].endpoints
    assert endpoint.transport_profile == TransportProfile.PEPPOL_AS4_V2
    assert endpoint.address == "https://c3.pint.playground.sandbox.peppol.eu/as4"
    assert endpoint.service_activation is None
    assert endpoint.service_expiration is None
    assert endpoint.description == "OpenPeppol Playground C3 endpoint"
    assert _subject(metadata) == "CN=PP_C3,OU=PEPPOL TEST AP,O=OpenPeppol AISBL,C=BE"


@pytest.mark.parametrize(
    ("name", "participant", "process", "document_end"),
    [
        (
            "peppol-commons_signed-service-metadata1_INVALID-signature.xml",
            "0088:5026744000002",
            "urn:www.cenbii.eu:profile:bii05:ver2.0",
            "CreditNote##urn:www.cenbii.eu:transaction:biitrns014:ver2.0:extended:urn:www.peppol"
            ".eu:bis:peppol5a:ver2.0::2.1",
        ),
        (
            "peppol-commons_signed-service-metadata2_valid-at-2021-01-01.xml",
            "0088:5060482240009",
            "urn:www.cenbii.eu:profile:bii28:ver2.0",
            "Order##urn:www.cenbii.eu:transaction:biitrns001:ver2.0:extended:urn:www.peppol.eu:"
            "bis:peppol28a:ver1.0::2.1",
        ),
    ],
)
def test_netedi_as2_answers(
    smp_samples: Path, name: str, participant: str, process: str, document_end: str
) -> None:
    metadata = _read(smp_samples, name)
    assert metadata.participant == ParticipantId.peppol(participant)
    assert metadata.document_type is not None
    assert metadata.document_type.value.endswith(document_end)
    assert metadata.processes[0].process_id == ProcessId("cenbii-procid-ubl", process)
    (endpoint,) = metadata.processes[0].endpoints
    assert endpoint.transport_profile == TransportProfile.AS2_V1
    assert endpoint.address == "https://peppol.netedi.com/receive.aspx"
    assert endpoint.minimum_authentication_level == "1"
    assert endpoint.service_activation == datetime(2016, 11, 2, tzinfo=UTC)
    assert endpoint.service_expiration == datetime(2026, 11, 2, tzinfo=UTC)
    assert endpoint.description is None  # <ServiceDescription />
    assert endpoint.technical_contact == "support@netedi.co.uk"
    assert endpoint.technical_information == "+44 (0) 1772 977781"
    assert _subject(metadata) == "C=GB,O=NetEDI Limited,OU=PEPPOL PRODUCTION AP,CN=PNO000070"


def test_econnect_as2_and_as4(smp_samples: Path) -> None:
    metadata = _read(
        smp_samples,
        "peppol-commons_signed-service-metadata3_as4_c14n-inclusive_valid-at-2020-08-01.xml",
    )
    assert metadata.participant == ParticipantId.peppol("0106:55872255")
    (process,) = metadata.processes
    assert process.process_id == ProcessId(
        "cenbii-procid-ubl", "urn:www.cenbii.eu:profile:bii04:ver1.0"
    )
    as2, as4 = process.endpoints
    assert as2.address == "https://peppolap.everbinding.nl/as2"
    assert as4.transport_profile == TransportProfile.PEPPOL_AS4_V2
    assert as4.address == "https://ap.econnect.eu/as4/v1"
    assert as4.description == "As4"
    assert as4.technical_information == "https://econnect.eu/"
    assert as4.service_activation == datetime(2018, 8, 15, tzinfo=UTC)
    assert as4.service_expiration == datetime(2020, 8, 4, 23, 59, 59, tzinfo=UTC)
    assert _subject(metadata, 0, 1) == (
        "C=NL,O=eConnect International B.V.,OU=PEPPOL PRODUCTION AP,CN=PNL000052"
    )


def test_bdxr1_service_metadata(smp_samples: Path) -> None:
    metadata = _read(smp_samples, "phoss-smp_bdxr1-service-metadata.xml")
    assert metadata.format is SmpFormat.BDXR1
    assert metadata.participant == ParticipantId.peppol("9915:xxx")
    assert metadata.document_type == DocumentTypeId(
        "busdox-docid-qns",
        "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:"
        "2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1",
    )
    (process,) = metadata.processes
    assert process.process_id == PEPPOL_PROCESS
    (endpoint,) = process.endpoints
    assert endpoint.transport_profile == TransportProfile.PEPPOL_AS4_V2
    assert endpoint.address == "http://test.smpserver/as4"
    assert endpoint.description == "Unit test service"
    assert endpoint.technical_contact == "https://github.com/phax/phoss-smp"
    # the sample's "certificate" is base64 of a placeholder: read as bytes, refused when used
    assert endpoint.certificate == b"blacert"
    with pytest.raises(SmpDocumentError, match=r"does not hold a DER X\.509 certificate"):
        endpoint.x509_certificate()


def test_smp2_service_group(smp_samples: Path) -> None:
    group = parse_service_group(
        (smp_samples / "holodeck_oasis-smp2_servicegroup-detailed.xml").read_bytes()
    )
    assert group.format is SmpFormat.SMP2
    assert group.participant == ParticipantId(
        "urn:oasis:tc:ebcore:partyid-type:unregistered", "holodeckb2b-test"
    )
    first, second = group.references
    assert first.href is None
    assert first.document_type == DocumentTypeId(
        "bdx-docid-qns",
        "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2023",
    )
    assert first.processes == (ProcessId(None, "urn:cen.eu:en16931:2023"),)
    assert second.processes == (
        ProcessId(None, "urn:cen.eu:en16931:2017"),
        ProcessId(None, "urn:cen.eu:en16931:2018"),
    )


def test_smp2_service_metadata(smp_samples: Path) -> None:
    metadata = _read(smp_samples, "holodeck_oasis-smp2_servicemetadata-detailed.xml")
    assert metadata.format is SmpFormat.SMP2
    assert metadata.participant == ParticipantId(
        "urn:oasis:tc:ebcore:partyid-type:unregistered", "holodeckb2b-test"
    )
    assert metadata.document_type == DocumentTypeId(
        "bdx-docid-qns",
        "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##urn:cen.eu:en16931:2017",
    )
    (process,) = metadata.processes
    assert process.process_id == ProcessId(None, "urn:cen.eu:en16931:2017")
    assert process.roles == ("Buyer",)
    (endpoint,) = process.endpoints
    assert endpoint.transport_profile == TransportProfile.BDXR_AS4
    assert endpoint.address == "https://ap.sample.holodeck-b2b.org/"
    plus_one = timezone(timedelta(hours=1))
    assert endpoint.service_activation == datetime(2022, 2, 24, tzinfo=plus_one)
    assert endpoint.service_expiration == datetime(2024, 1, 1, tzinfo=plus_one)
    assert endpoint.description == "Only defined for testing of SMP client"
    assert endpoint.technical_contact == "sander at holodeck-b2b.org"
    assert _subject(metadata) == (
        "CN=partya.examples.holodeck-b2b.com,OU=Holodeck B2B Support,O=Chasquis,C=NL"
    )


def test_a_service_group_is_not_service_metadata(smp_samples: Path) -> None:
    data = (smp_samples / "vefa_busdox-servicegroup-0192-991825827_ELMA.xml").read_bytes()
    with pytest.raises(SmpDocumentError, match="is a ServiceGroup, expected a ServiceMetadata"):
        parse_service_metadata(data)
