"""The streamed SBD reader: the header read as the whole-document path reads it, the rest only
walked (but walked to the end), hostile input refused as the hardened parser refuses it."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import pytest

from sbdh.errors import EnvelopeError, InvalidInput, XmlSecurityError
from sbdh.jsonform import read_python, sbd_to_python
from sbdh.model import DetachedPayload
from sbdh.pki import DevPki
from sbdh.rules import Profile, check_sbd
from sbdh.signing import sign_sbd
from sbdh.stream import SbdStreamLimits, check_sbd_stream, read_sbd_stream
from sbdh.xmlform import sbd_to_xml
from sbdh.xmlsafe import StreamLimits
from tests.unit.as4.conftest import SBD

INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
PAYLOAD = b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>'


def _with_payload(inner: bytes) -> bytes:
    """The sample SBD with ``inner`` inside its invoice, before the ID."""
    assert PAYLOAD in SBD
    return SBD.replace(PAYLOAD, PAYLOAD[: -len(b"<ID>")] + inner + b"<ID>", 1)


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def test_the_header_is_what_the_whole_document_path_reads() -> None:
    streamed = check_sbd_stream(io.BytesIO(SBD), Profile.PEPPOL)
    whole = check_sbd(SBD, Profile.PEPPOL)
    assert streamed.document.header == whole.header
    assert streamed.payload == DetachedPayload(
        INVOICE_NS, "Invoice", len(SBD), hashlib.sha256(SBD).hexdigest()
    )
    assert streamed.document.payload == streamed.payload
    assert not streamed.signed


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_any_chunking_gives_the_same_reading(size: int) -> None:
    expected = check_sbd_stream(io.BytesIO(SBD))
    assert check_sbd_stream(_pieces(SBD, size)) == expected


def test_a_text_node_larger_than_the_whole_path_allows_is_read_in_pieces() -> None:
    # lxml refuses one text node over 10 MB without huge_tree; the stream never holds it
    note = b"<Note>" + b"QUJD" * (3 * 1024 * 1024) + b"</Note>"
    data = _with_payload(note)
    with pytest.raises(InvalidInput):
        check_sbd(data)
    streamed = check_sbd_stream(_pieces(data, 1 << 20), Profile.PEPPOL)
    assert streamed.payload.sbd_size == len(data)
    assert streamed.payload.sbd_sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(_with_payload(b"<Note>a</Nota>"), id="mismatched-tag-in-payload"),
        pytest.param(_with_payload(b"<p:Note>a</p:Note>"), id="undeclared-prefix"),
        pytest.param(
            _with_payload(b'<Note xmlns="relative"/>' * 300 + b"<p:Note/>"),
            id="undeclared-prefix-after-many-warnings",
        ),
        pytest.param(SBD[:-40], id="truncated"),
        pytest.param(SBD + b"<again/>", id="content-after-the-root"),
        pytest.param(_with_payload(b"<Note a='1' a='2'/>"), id="duplicate-attribute"),
        pytest.param(_with_payload(b"\x00"), id="control-character"),
    ],
)
def test_the_whole_document_must_be_well_formed(broken: bytes) -> None:
    # the header is complete and valid in every case: the error is after it
    with pytest.raises(InvalidInput) as info:
        read_sbd_stream(io.BytesIO(broken))
    assert info.value.rule == "xml-well-formed"


def test_an_empty_document_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        read_sbd_stream(io.BytesIO(b""))
    assert info.value.rule == "xml-well-formed"


@pytest.mark.parametrize(
    ("document", "rule"),
    [
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
            "xml-dtd",
            id="internal-subset",
        ),
        pytest.param(
            b'<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>', "xml-dtd", id="external-dtd"
        ),
        pytest.param(
            '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><x/>'.encode(
                "utf-16"
            ),
            "xml-dtd",
            id="dtd-in-utf-16",
        ),
        pytest.param(SBD.replace(b"<ID>", b"<ID>&nbsp;", 1), "xml-entity", id="entity"),
    ],
)
def test_dtds_and_entities_are_refused(document: bytes, rule: str) -> None:
    with pytest.raises(XmlSecurityError) as info:
        read_sbd_stream(io.BytesIO(document))
    assert info.value.rule == rule


def test_the_limits_hold() -> None:
    deep = _with_payload(b"<a>" * 20 + b"</a>" * 20)
    with pytest.raises(XmlSecurityError) as info:
        read_sbd_stream(io.BytesIO(deep), SbdStreamLimits(xml=StreamLimits(max_depth=10)))
    assert info.value.rule == "xml-depth"
    many = _with_payload(b"<a/>" * 500)
    with pytest.raises(XmlSecurityError) as info:
        read_sbd_stream(io.BytesIO(many), SbdStreamLimits(xml=StreamLimits(max_elements=100)))
    assert info.value.rule == "xml-elements"
    with pytest.raises(XmlSecurityError) as info:
        read_sbd_stream(
            _pieces(SBD, 100), SbdStreamLimits(xml=StreamLimits(max_bytes=len(SBD) - 1))
        )
    assert info.value.rule == "xml-size"
    with pytest.raises(XmlSecurityError) as info:
        read_sbd_stream(io.BytesIO(SBD), SbdStreamLimits(max_header_elements=5))
    assert info.value.rule == "xml-elements"
    with pytest.raises(XmlSecurityError) as info:
        read_sbd_stream(io.BytesIO(SBD), SbdStreamLimits(max_header_chars=100))
    assert info.value.rule == "xml-size"
    # the business message's own size is not the header's
    assert check_sbd_stream(io.BytesIO(_with_payload(b"<a/>" * 50_000)), Profile.PEPPOL)


@pytest.mark.parametrize(
    "document",
    [
        b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"/>',
        b'<StandardBusinessDocumentHeader xmlns="http://www.unece.org/cefact/namespaces/'
        b'StandardBusinessDocumentHeader"><HeaderVersion>1.0</HeaderVersion>'
        b"</StandardBusinessDocumentHeader>",
    ],
    ids=["an-invoice", "a-bare-header"],
)
def test_a_root_other_than_an_sbd_is_refused(document: bytes) -> None:
    with pytest.raises(EnvelopeError) as info:
        read_sbd_stream(io.BytesIO(document))
    assert [v.rule for v in info.value.violations] == ["sbdh-root"]


def _rules(document: bytes, profile: Profile = Profile.AUTO) -> list[str]:
    with pytest.raises(EnvelopeError) as info:
        check_sbd_stream(io.BytesIO(document), profile)
    return [v.rule for v in info.value.violations]


def test_structure_and_envelope_rules_are_those_of_the_whole_path() -> None:
    cases = [
        SBD.replace(b"<HeaderVersion>1.0</HeaderVersion>", b"", 1),
        SBD.replace(b"<Type>Invoice</Type>", b"<Type>CreditNote</Type>", 1),
        SBD.replace(b"</Invoice>", b"</Invoice><Invoice xmlns='urn:x'/>", 1),
        SBD.replace(b"</StandardBusinessDocumentHeader>", b"</StandardBusinessDocumentHeader>t", 1),
        SBD.replace(
            b"<Scope><Type>COUNTRY_C1</Type><InstanceIdentifier>NO</InstanceIdentifier></Scope>",
            b"",
            1,
        ),
        SBD[: SBD.index(b"  <Invoice")] + b"</StandardBusinessDocument>\n",
    ]
    for case in cases:
        with pytest.raises(EnvelopeError) as whole:
            check_sbd(case, Profile.PEPPOL)
        expected = [v.rule for v in whole.value.violations]
        assert _rules(case, Profile.PEPPOL) == expected, case
    assert "invalid-type" in _rules(cases[1], Profile.PEPPOL)
    assert "sbdh-text" in _rules(cases[3], Profile.PEPPOL)


def test_a_signature_after_the_business_message_is_located(dev_pki: DevPki) -> None:
    signed = sign_sbd(SBD, dev_pki.access_points["PNO000001"])
    streamed = check_sbd_stream(io.BytesIO(signed))
    assert streamed.signed
    assert streamed.document.header == check_sbd(SBD).header


def test_the_detached_payload_has_a_json_marker_and_no_xml_form() -> None:
    document = check_sbd_stream(io.BytesIO(SBD)).document
    value = sbd_to_python(document, wrapped=False)
    assert value["detachedDocument"] == {
        "namespace": INVOICE_NS,
        "localName": "Invoice",
        "sbdSize": len(SBD),
        "sbdSha256": hashlib.sha256(SBD).hexdigest(),
    }
    reading = read_python(value)
    assert reading.violations == ()
    assert reading.document == document
    with pytest.raises(InvalidInput) as info:
        sbd_to_xml(document)
    assert info.value.rule == "sbd-detached"
    value["detachedDocument"]["sbdSha256"] = "not hex"
    assert read_python(value).violations
