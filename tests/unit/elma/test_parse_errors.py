"""Hostile and broken SMP documents get specific errors that say what is wrong and where."""

from __future__ import annotations

import pytest

from elma.errors import SmpDocumentError
from elma.parse import parse_service_group, parse_service_metadata
from sbdh.errors import InvalidInput, XmlSecurityError

SMP = "http://busdox.org/serviceMetadata/publishing/1.0/"
IDS = "http://busdox.org/transport/identifiers/1.0/"
WSA = "http://www.w3.org/2005/08/addressing"
SMP2 = "http://docs.oasis-open.org/bdxr/ns/SMP/2/ServiceMetadata"
BASIC = "http://docs.oasis-open.org/bdxr/ns/SMP/2/BasicComponents"
AGG = "http://docs.oasis-open.org/bdxr/ns/SMP/2/AggregateComponents"

ENDPOINT = (
    '<Endpoint transportProfile="peppol-transport-as4-v2_0">'
    "<wsa:EndpointReference><wsa:Address>https://ap.example/as4</wsa:Address></wsa:EndpointReference>"
    "<RequireBusinessLevelSignature>false</RequireBusinessLevelSignature>"
    "<ServiceActivationDate>2024-01-01T00:00:00Z</ServiceActivationDate>"
    "<Certificate>YmxhY2VydA==</Certificate>"
    "<ServiceDescription>x</ServiceDescription><TechnicalContactUrl>y</TechnicalContactUrl>"
    "</Endpoint>"
)
PARTICIPANT = (
    '<ids:ParticipantIdentifier scheme="iso6523-actorid-upis">0192:991825827'
    "</ids:ParticipantIdentifier>"
)
INFORMATION = (
    PARTICIPANT
    + '<ids:DocumentIdentifier scheme="busdox-docid-qns">urn:x::y</ids:DocumentIdentifier>'
    "<ProcessList><Process>"
    '<ids:ProcessIdentifier scheme="cenbii-procid-ubl">urn:p</ids:ProcessIdentifier>'
    "<ServiceEndpointList>{endpoint}</ServiceEndpointList>"
    "</Process></ProcessList>"
)


def peppol(information: str = INFORMATION, endpoint: str = ENDPOINT) -> bytes:
    body = information.replace("{endpoint}", endpoint)
    return (
        f'<SignedServiceMetadata xmlns="{SMP}" xmlns:ids="{IDS}" xmlns:wsa="{WSA}">'
        f"<ServiceMetadata><ServiceInformation>{body}</ServiceInformation></ServiceMetadata>"
        "</SignedServiceMetadata>"
    ).encode()


def smp2(
    endpoint_dates: str = "<smb:ActivationDate>2024-01-01</smb:ActivationDate>",
    version: str = "2.0",
) -> bytes:
    return (
        f'<ServiceMetadata xmlns="{SMP2}" xmlns:smb="{BASIC}" xmlns:sma="{AGG}">'
        f"<smb:SMPVersionID>{version}</smb:SMPVersionID>"
        '<smb:ID schemeID="busdox-docid-qns">urn:x::y</smb:ID>'
        '<smb:ParticipantID schemeID="iso6523-actorid-upis">0192:991825827</smb:ParticipantID>'
        "<sma:ProcessMetadata><sma:Process><smb:ID>urn:p</smb:ID></sma:Process>"
        "<sma:Endpoint><smb:TransportProfileID>p</smb:TransportProfileID>"
        f"<smb:AddressURI>https://a</smb:AddressURI>{endpoint_dates}</sma:Endpoint>"
        "</sma:ProcessMetadata></ServiceMetadata>"
    ).encode()


def rule_of(data: bytes) -> tuple[str | None, str]:
    with pytest.raises(SmpDocumentError) as caught:
        parse_service_metadata(data)
    return caught.value.rule, str(caught.value)


def test_the_fixture_documents_are_valid() -> None:
    # guards the tests below: each breaks exactly one thing in a document that reads
    assert (
        parse_service_metadata(peppol()).processes[0].endpoints[0].address
        == "https://ap.example/as4"
    )
    assert parse_service_metadata(smp2()).processes[0].endpoints[0].address == "https://a"


def test_a_dtd_with_entities_is_refused() -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
        + peppol().replace(b"0192:991825827", b"&b;")
    )
    with pytest.raises(XmlSecurityError) as caught:
        parse_service_metadata(data)
    assert caught.value.rule == "xml-dtd"


def test_an_external_entity_is_refused() -> None:
    data = b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><ServiceGroup/>'
    with pytest.raises(XmlSecurityError):
        parse_service_group(data)


def test_not_xml_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_service_metadata(b"<SignedServiceMetadata>")
    assert caught.value.rule == "xml-well-formed"


@pytest.mark.parametrize(
    "data",
    [
        b"<ServiceMetadata/>",  # no namespace
        f'<ServiceMetadata xmlns="{IDS}"/>'.encode(),  # the identifiers namespace
        b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>',
    ],
)
def test_a_wrong_root_is_refused(data: bytes) -> None:
    rule, message = rule_of(data)
    assert rule == "smp-root"
    assert "is not an SMP" in message


def test_a_missing_document_identifier_is_named_with_its_place() -> None:
    broken = INFORMATION.replace(
        '<ids:DocumentIdentifier scheme="busdox-docid-qns">urn:x::y</ids:DocumentIdentifier>', ""
    )
    rule, message = rule_of(peppol(broken))
    assert rule == "smp-missing-element"
    where = "/SignedServiceMetadata/ServiceMetadata/ServiceInformation"
    assert f"{where}: required element DocumentIdentifier" in message


def test_a_missing_address_is_refused() -> None:
    rule, message = rule_of(
        peppol(endpoint=ENDPOINT.replace("<wsa:Address>https://ap.example/as4</wsa:Address>", ""))
    )
    assert rule == "smp-missing-element"
    assert "EndpointReference: required element Address" in message


def test_an_empty_address_is_refused() -> None:
    rule, _ = rule_of(peppol(endpoint=ENDPOINT.replace("https://ap.example/as4", "  ")))
    assert rule == "smp-empty-value"


def test_a_missing_transport_profile_is_refused() -> None:
    rule, message = rule_of(
        peppol(endpoint=ENDPOINT.replace(' transportProfile="peppol-transport-as4-v2_0"', ""))
    )
    assert rule == "smp-missing-attribute"
    assert "Endpoint: attribute transportProfile" in message


def test_a_repeated_participant_is_refused() -> None:
    rule, message = rule_of(peppol(PARTICIPANT + INFORMATION))
    assert rule == "smp-repeated-element"
    assert "ParticipantIdentifier[2]" in message


def test_an_endpoint_list_without_endpoints_is_refused() -> None:
    rule, message = rule_of(peppol(endpoint=""))
    assert rule == "smp-missing-element"
    assert "ServiceEndpointList: at least one Endpoint" in message


def test_the_second_endpoint_is_named_by_position() -> None:
    second = ENDPOINT.replace("false", "maybe")
    rule, message = rule_of(peppol(endpoint=ENDPOINT + second))
    assert rule == "smp-boolean"
    assert "/Endpoint[2]/RequireBusinessLevelSignature: 'maybe' is not a boolean" in message


@pytest.mark.parametrize(
    "value",
    [
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "yesterday",
        "2024-01-01",
        "2024-01-01T25:00:00Z",
        "2024-01-01T00:00:00+15:00",
        "",
    ],
)
def test_bad_dates_are_refused(value: str) -> None:
    endpoint = ENDPOINT.replace("2024-01-01T00:00:00Z", value)
    rule, message = rule_of(peppol(endpoint=endpoint))
    assert rule == ("smp-empty-value" if not value else "smp-date")
    assert "ServiceActivationDate" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01T10:00:00", "2024-01-01T10:00:00+00:00"),  # no zone: UTC
        ("2024-01-01T10:00:00.1234567+02:00", "2024-01-01T10:00:00.123456+02:00"),
        ("  2024-01-01T10:00:00Z\n", "2024-01-01T10:00:00+00:00"),
    ],
)
def test_good_dates_are_read(value: str, expected: str) -> None:
    metadata = parse_service_metadata(
        peppol(endpoint=ENDPOINT.replace("2024-01-01T00:00:00Z", value))
    )
    activation = metadata.processes[0].endpoints[0].service_activation
    assert activation is not None
    assert activation.isoformat() == expected


def test_bad_base64_is_refused() -> None:
    rule, message = rule_of(peppol(endpoint=ENDPOINT.replace("YmxhY2VydA==", "not*base64")))
    assert rule == "smp-base64"
    assert "Certificate: not valid base64" in message


def test_both_information_and_redirect_is_refused() -> None:
    data = peppol().replace(
        b"</ServiceInformation>",
        b'</ServiceInformation><Redirect href="https://x"><CertificateUID>CN=x</CertificateUID></Redirect>',
    )
    rule, message = rule_of(data)
    assert rule == "smp-unexpected-content"
    assert "exactly one of ServiceInformation and Redirect" in message


def test_an_element_where_text_belongs_is_refused() -> None:
    rule, _ = rule_of(peppol(INFORMATION.replace(">0192:991825827<", "><b>0192:991825827</b><")))
    assert rule == "smp-unexpected-content"


def test_smp2_dates_must_be_dates() -> None:
    rule, message = rule_of(smp2("<smb:ActivationDate>2024-02-30</smb:ActivationDate>"))
    assert rule == "smp-date"
    assert "/ServiceMetadata/ProcessMetadata/Endpoint/ActivationDate" in message
    rule, _ = rule_of(smp2("<smb:ActivationDate>2024-02-01T00:00:00Z</smb:ActivationDate>"))
    assert rule == "smp-date"


def test_smp2_version_must_be_2_0() -> None:
    rule, message = rule_of(smp2(version="1.0"))
    assert rule == "smp-version"
    assert "'1.0' is not 2.0" in message


def test_smp2_endpoints_and_redirect_exclude_each_other() -> None:
    data = smp2().replace(
        b"</sma:Endpoint>",
        b"</sma:Endpoint><sma:Redirect><smb:PublisherURI>https://x</smb:PublisherURI></sma:Redirect>",
    )
    rule, _ = rule_of(data)
    assert rule == "smp-unexpected-content"


def test_extensions_and_unknown_elements_are_skipped() -> None:
    data = peppol(
        endpoint=ENDPOINT.replace(
            "</Endpoint>", "<Extension><foo xmlns='urn:x'/></Extension></Endpoint>"
        )
    )
    assert parse_service_metadata(data).processes[0].endpoints[0].certificate == b"blacert"
