"""The XML form: structure checks while reading, lossless writing."""

from __future__ import annotations

from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from sbdh.errors import EnvelopeError, XmlSecurityError
from sbdh.model import (
    NEXTMOVE_NS,
    BinaryContent,
    BusinessMessage,
    JsonObject,
    TextContent,
    XmlPayload,
)
from sbdh.xmlform import read_sbd, sbd_from_xml, sbd_to_xml
from sbdh.xmlsafe import parse_xml
from tests.unit.sbd_helpers import READABLE, c14n

SBDH = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"


def _sbd(
    header_extra: str = "",
    payload: str = '<p:doc xmlns:p="urn:p"/>',
    *,
    identification: str | None = None,
    partners: str | None = None,
) -> bytes:
    partners = (
        partners
        if partners is not None
        else (
            '<Sender><Identifier Authority="iso6523-actorid-upis">0192:991825827</Identifier>'
            "</Sender>"
            '<Receiver><Identifier Authority="iso6523-actorid-upis">0192:974760673</Identifier>'
            "</Receiver>"
        )
    )
    identification = (
        identification
        if identification is not None
        else (
            "<Standard>urn:p</Standard><TypeVersion>1.0</TypeVersion>"
            "<InstanceIdentifier>i-1</InstanceIdentifier><Type>doc</Type>"
            "<CreationDateAndTime>2024-01-01T00:00:00Z</CreationDateAndTime>"
        )
    )
    return (
        f'<StandardBusinessDocument xmlns="{SBDH}"><StandardBusinessDocumentHeader>'
        f"<HeaderVersion>1.0</HeaderVersion>{partners}"
        f"<DocumentIdentification>{identification}</DocumentIdentification>{header_extra}"
        f"</StandardBusinessDocumentHeader>{payload}</StandardBusinessDocument>"
    ).encode()


def _rules(data: bytes) -> list[str]:
    return [v.rule for v in read_sbd(parse_xml(data)).violations]


@pytest.mark.testdata
@pytest.mark.parametrize("name", READABLE)
def test_xml_round_trip_is_lossless(testdata: Path, name: str) -> None:
    original = (testdata / name).read_bytes()
    document = sbd_from_xml(original)
    written = sbd_to_xml(document)
    # prefixes are kept, so this is exclusive C14N equality, indentation aside
    assert c14n(written) == c14n(original)
    again = sbd_from_xml(written)
    assert again == document
    assert sbd_to_xml(again) == written


@pytest.mark.testdata
@pytest.mark.parametrize("name", [n for n in READABLE if not n.startswith("eformidling/")])
def test_payload_is_kept_byte_for_byte(testdata: Path, name: str) -> None:
    """An opaque XML payload keeps even its whitespace and comments (it may be signed)."""
    assert isinstance(sbd_from_xml((testdata / name).read_bytes()).payload, XmlPayload)
    original = parse_xml((testdata / name).read_bytes())
    payload_in = original[-1]
    written = parse_xml(sbd_to_xml(sbd_from_xml((testdata / name).read_bytes())))
    payload_out = written[-1]
    # inclusive C14N with comments: whitespace, comments and in-scope namespaces all survive
    assert etree.tostring(payload_out, method="c14n", with_comments=True) == etree.tostring(
        payload_in, method="c14n", with_comments=True
    )


@pytest.mark.testdata
def test_structure_agrees_with_the_real_schema(testdata: Path) -> None:
    """Our SBDH 1.3 structure checks against the UN/CEFACT XSD, on every shared sample."""
    schema = xmlschema.XMLSchema(str(testdata / "sbdh/xsd/StandardBusinessDocumentHeader.xsd"))
    files = sorted((testdata / "sbdh/samples").rglob("*.xml"))
    assert len(files) == 40
    for path in files:
        reading = read_sbd(parse_xml(path.read_bytes()))
        ours = not [v for v in reading.violations if v.rule.startswith("sbdh-")]
        assert ours == schema.is_valid(str(path)), (path.name, reading.violations)
    # the one deliberate difference: eFormidling writes the abstract ScopeInformation itself
    eformidling = testdata / "eformidling/samples/StandardBusinessDocument.xml"
    assert not schema.is_valid(str(eformidling))
    assert read_sbd(parse_xml(eformidling.read_bytes())).violations == ()


@pytest.mark.parametrize(
    ("document", "rule"),
    [
        (
            _sbd(
                identification=(
                    "<TypeVersion>1.0</TypeVersion><Standard>urn:p</Standard>"
                    "<InstanceIdentifier>i</InstanceIdentifier><Type>doc</Type>"
                    "<CreationDateAndTime>2024-01-01T00:00:00Z</CreationDateAndTime>"
                )
            ),
            "sbdh-missing-element",
        ),
        (
            _sbd(
                identification=(
                    "<Standard>urn:p</Standard><TypeVersion>1.0</TypeVersion>"
                    "<InstanceIdentifier>i</InstanceIdentifier><Type>doc</Type>"
                    "<MultipleType>maybe</MultipleType>"
                    "<CreationDateAndTime>2024-01-01T00:00:00Z</CreationDateAndTime>"
                )
            ),
            "sbdh-boolean",
        ),
        (
            _sbd(
                identification=(
                    "<Standard>urn:p</Standard><TypeVersion>1.0</TypeVersion>"
                    "<InstanceIdentifier>i</InstanceIdentifier><Type>doc</Type>"
                    "<CreationDateAndTime>yesterday</CreationDateAndTime>"
                )
            ),
            "sbdh-datetime",
        ),
        (
            _sbd(
                "<Manifest><NumberOfItems>two</NumberOfItems><ManifestItem>"
                "<MimeTypeQualifierCode>a/b</MimeTypeQualifierCode>"
                "<UniformResourceIdentifier>x</UniformResourceIdentifier></ManifestItem></Manifest>"
            ),
            "sbdh-integer",
        ),
        (_sbd("<Manifest><NumberOfItems>0</NumberOfItems></Manifest>"), "sbdh-missing-element"),
        (
            _sbd("<BusinessScope/><Manifest><NumberOfItems>1</NumberOfItems></Manifest>"),
            "sbdh-unexpected-element",
        ),
        (_sbd("<Extra/>"), "sbdh-unexpected-element"),
        (
            _sbd(
                "<BusinessScope><Scope><Type>T</Type><InstanceIdentifier>v</InstanceIdentifier>"
                "<BusinessService><ServiceTransaction TypeOfServiceTransaction='Other'/>"
                "</BusinessService></Scope></BusinessScope>"
            ),
            "sbdh-enumeration",
        ),
        (_sbd(payload="<doc/>"), "sbdh-business-message"),
        (_sbd(payload=f'<x xmlns="{SBDH}"/>'), "sbdh-business-message"),
        (_sbd(payload='<p:a xmlns:p="urn:p"/><p:b xmlns:p="urn:p"/>'), "sbdh-unexpected-element"),
        (_sbd(payload=""), "sbdh-business-message"),
        (
            _sbd(
                partners='<Sender><Identifier Scheme="x">1</Identifier></Sender><Receiver>'
                "<Identifier>2</Identifier></Receiver>"
            ),
            "sbdh-attribute",
        ),
        (_sbd("text"), "sbdh-text"),
        (b'<x:Other xmlns:x="urn:x"/>', "sbdh-root"),
    ],
)
def test_structure_violations(document: bytes, rule: str) -> None:
    assert rule in _rules(document)
    with pytest.raises(EnvelopeError) as info:
        sbd_from_xml(document)
    assert rule in [v.rule for v in info.value.violations]


def test_minimal_document_is_sound() -> None:
    assert _rules(_sbd()) == []
    document = sbd_from_xml(_sbd())
    assert isinstance(document.payload, XmlPayload)


def test_hardened_parser_is_used() -> None:
    evil = b'<!DOCTYPE x [<!ENTITY a "aaaa">]>' + _sbd()
    with pytest.raises(XmlSecurityError) as info:
        sbd_from_xml(evil)
    assert info.value.rule == "xml-dtd"


def test_bare_header_is_not_an_sbd() -> None:
    bare = etree.tostring(parse_xml(_sbd())[0])
    reading = read_sbd(parse_xml(bare))
    assert reading.bare_header
    assert reading.violations == ()
    with pytest.raises(EnvelopeError) as info:
        sbd_from_xml(bare)
    assert info.value.rule == "sbdh-root"


def test_scope_information_forms_round_trip() -> None:
    data = _sbd(
        "<BusinessScope><Scope><Type>ConversationId</Type><InstanceIdentifier>c</InstanceIdentifier>"
        "<Identifier>proc</Identifier>"
        "<ScopeInformation><ExpectedResponseDateTime>2024-01-02T00:00:00Z</ExpectedResponseDateTime></ScopeInformation>"
        "<CorrelationInformation><RequestingDocumentInstanceIdentifier>r</RequestingDocumentInstanceIdentifier>"
        "</CorrelationInformation>"
        "<BusinessService><BusinessServiceName>svc</BusinessServiceName>"
        "<ServiceTransaction TypeOfServiceTransaction='RequestingServiceTransaction'"
        " Recurrence='2'/>"
        "</BusinessService></Scope></BusinessScope>"
    )
    document = sbd_from_xml(data)
    assert document.header.expected_response_date_time == "2024-01-02T00:00:00Z"
    assert c14n(sbd_to_xml(document)) == c14n(data)


def test_contact_information_and_manifest_round_trip() -> None:
    data = _sbd(
        "<Manifest><NumberOfItems>1</NumberOfItems><ManifestItem><MimeTypeQualifierCode>application/pdf"
        "</MimeTypeQualifierCode><UniformResourceIdentifier>cid:a</UniformResourceIdentifier>"
        "<Description>d</Description><LanguageCode>NO</LanguageCode></ManifestItem></Manifest>",
        partners=(
            "<Sender><Identifier>1</Identifier><ContactInformation><Contact>Kari</Contact>"
            "<EmailAddress>k@example.no</EmailAddress><TelephoneNumber>1</TelephoneNumber>"
            "</ContactInformation><ContactInformation><Contact>Ola</Contact></ContactInformation>"
            "</Sender><Receiver><Identifier Authority='x'>2</Identifier></Receiver>"
        ),
    )
    document = sbd_from_xml(data)
    assert document.header.senders[0].identifier.authority is None
    assert len(document.header.senders[0].contact_information) == 2
    assert document.header.manifest is not None
    assert c14n(sbd_to_xml(document)) == c14n(data)


def test_envelope_wrapper_payloads() -> None:
    env = "http://peppol.eu/xsd/ticc/envelope/1.0"
    binary = _sbd(
        payload=f'<BinaryContent xmlns="{env}" mimeType="application/pdf" encoding="UTF-8">'
        "JVBERi0x\n  LjcgAP8=\n</BinaryContent>"
    )
    document = sbd_from_xml(binary)
    assert isinstance(document.payload, BinaryContent)
    assert document.payload.data == b"%PDF-1.7 \x00\xff"
    assert document.payload.encoding == "UTF-8"
    assert c14n(sbd_to_xml(document)) == c14n(binary)

    text = _sbd(
        payload=f'<e:TextContent xmlns:e="{env}" mimeType="text/csv">a;b\n1;2\n</e:TextContent>'
    )
    document = sbd_from_xml(text)
    assert document.payload == TextContent("text/csv", "a;b\n1;2\n")
    assert c14n(sbd_to_xml(document)) == c14n(text)

    # anything the typed wrapper cannot hold stays verbatim XML
    odd = _sbd(
        payload=f'<TextContent xmlns="{env}" mimeType="text/plain" extra="1">x</TextContent>'
    )
    assert isinstance(sbd_from_xml(odd).payload, XmlPayload)
    assert c14n(sbd_to_xml(sbd_from_xml(odd))) == c14n(odd)


def test_nextmove_message_is_read_as_json_tree() -> None:
    data = _sbd(
        payload=(
            f'<m:digital xmlns="" xmlns:m="{NEXTMOVE_NS}">'
            "<sikkerhetsnivaa>4</sikkerhetsnivaa><aapningskvittering>true</aapningskvittering>"
            "<varsler><epostvarsel><repetisjoner>3</repetisjoner></epostvarsel></varsler>"
            '<tittel xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>'
            "<ukjent>7</ukjent><liste>a</liste><liste>b</liste>"
            "</m:digital>"
        )
    )
    document = sbd_from_xml(data)
    assert isinstance(document.payload, BusinessMessage)
    assert document.payload.body.to_python() == {
        "sikkerhetsnivaa": 4,
        "aapningskvittering": True,
        "varsler": {"epostvarsel": {"repetisjoner": [3]}},
        "tittel": None,
        "ukjent": "7",  # not in the shape table: a string
        "liste": ["a", "b"],  # repeated: an array
    }
    assert c14n(sbd_to_xml(document)) == c14n(data)


@pytest.mark.parametrize(
    "body",
    [
        '<a x="1">v</a>',  # attribute
        "<a>v</a><b/><a>w</a>",  # repeats out of one run
        "<a>v<b/></a>",  # mixed content
        "<a><!-- note -->v</a>",  # comment
        '<q:a xmlns:q="urn:q">v</q:a>',  # qualified child
        "<sikkerhetsnivaa>03</sikkerhetsnivaa>",  # kept, but as the string it is
        f'<a xmlns="{SBDH}">v</a>',  # in the envelope's namespace
    ],
)
def test_nextmove_messages_the_tree_cannot_hold_stay_xml(body: str) -> None:
    data = _sbd(payload=f'<m:digital xmlns="" xmlns:m="{NEXTMOVE_NS}">{body}</m:digital>')
    document = sbd_from_xml(data)
    if isinstance(document.payload, BusinessMessage):
        assert document.payload.body.get("sikkerhetsnivaa") == "03"
    else:
        assert isinstance(document.payload, XmlPayload)
    assert c14n(sbd_to_xml(document)) == c14n(data)


def test_payload_in_default_namespace_keeps_its_descendants_there() -> None:
    # libxml2 would undeclare the default namespace on grandchildren in a subset C14N
    data = _sbd(payload='<m:d xmlns:m="urn:m"><a>v<b/></a></m:d>')
    document = sbd_from_xml(data)
    assert isinstance(document.payload, XmlPayload)
    element = document.payload.element()
    assert [etree.QName(e).namespace for e in element.iter("{*}b")] == [SBDH]
    assert c14n(sbd_to_xml(document)) == c14n(data)


def test_default_namespace_envelope_keeps_message_children_unqualified() -> None:
    message = BusinessMessage("status", JsonObject.of({"status": "LEVERT"}))
    document = sbd_from_xml(_sbd())
    from dataclasses import replace

    written = sbd_to_xml(replace(document, payload=message, xml_prefix=""))
    root = parse_xml(written)
    status = root[-1][0]
    assert etree.QName(status).namespace is None  # not captured by the SBDH default namespace
    assert sbd_from_xml(written).payload == message


def test_nextmove_element_with_a_reserved_name_stays_xml() -> None:
    data = _sbd(payload=f'<m:xmlDocument xmlns="" xmlns:m="{NEXTMOVE_NS}"><a>1</a></m:xmlDocument>')
    document = sbd_from_xml(data)
    assert isinstance(document.payload, XmlPayload)
    assert c14n(sbd_to_xml(document)) == c14n(data)
