"""The frozen SBD model: values, accessors, builders."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from sbdh.errors import InvalidInput
from sbdh.identifiers import ParticipantId
from sbdh.model import (
    ENVELOPE_NS,
    BinaryContent,
    BusinessMessage,
    JsonObject,
    MlsType,
    ScopeType,
    XmlPayload,
    eformidling_sbd,
    format_xs_datetime,
    is_xs_datetime,
    parse_xs_datetime,
)
from sbdh.rules import Profile, validate_document
from sbdh.xmlform import sbd_from_xml
from tests.unit.sbd_helpers import BILLING, CREATED, INVOICE_DOCTYPE, peppol


@pytest.mark.parametrize(
    ("lexical", "expected"),
    [
        ("2019-04-25T15:46:10Z", datetime(2019, 4, 25, 15, 46, 10, tzinfo=UTC)),
        (
            "2021-05-21T13:19:57.12+02:00",
            datetime(2021, 5, 21, 13, 19, 57, 120000, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("2013-02-19T05:10:10", datetime(2013, 2, 19, 5, 10, 10)),
        ("2020-01-01T00:00:00.1234567Z", datetime(2020, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2020-12-31T24:00:00Z", datetime(2021, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_xs_datetime(lexical: str, expected: datetime) -> None:
    assert parse_xs_datetime(lexical) == expected
    assert parse_xs_datetime(lexical).tzinfo == expected.tzinfo


@pytest.mark.parametrize(
    "lexical",
    [
        "",
        "2019-04-25",
        "2019-13-01T00:00:00Z",
        "2019-02-30T00:00:00Z",
        "2019-01-01T24:00:01Z",
        "2019-01-01T10:00:00+15:00",
        "2019-01-01 10:00:00Z",
        "2019-01-01T10:00Z",
    ],
)
def test_parse_xs_datetime_refuses(lexical: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_xs_datetime(lexical)
    assert info.value.rule == "xs-datetime"
    assert not is_xs_datetime(lexical)


def test_timezone_requirement() -> None:
    assert is_xs_datetime("2013-02-19T05:10:10")
    assert not is_xs_datetime("2013-02-19T05:10:10", require_timezone=True)
    assert format_xs_datetime(CREATED) == "2024-05-01T12:30:00Z"
    with pytest.raises(ValueError, match="timezone"):
        format_xs_datetime(datetime(2024, 1, 1))


def test_peppol_builder_derives_identification_from_the_document_type() -> None:
    sbd = peppol(mls_to="0192:991825827", mls_type=MlsType.FAILURE_ONLY)
    ident = sbd.header.document_identification
    assert (ident.standard, ident.type, ident.type_version) == (
        "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
        "Invoice",
        "2.1",
    )
    assert ident.creation_date_and_time == "2024-05-01T12:30:00Z"
    assert ident.creation_datetime() == CREATED
    header = sbd.header
    assert header.document_type_id.uri("busdox-docid-qns") == f"busdox-docid-qns::{INVOICE_DOCTYPE}"
    assert header.process_id.scheme == "cenbii-procid-ubl"
    assert header.country_c1 == "NO"
    assert header.mls_to.value == "0192:991825827"
    assert header.mls_type is MlsType.FAILURE_ONLY
    assert header.sender.participant_id() == ParticipantId("0192:991825827")
    assert validate_document(sbd, Profile.PEPPOL).valid


def test_peppol_builder_refuses_a_malformed_document_type() -> None:
    with pytest.raises(InvalidInput) as info:
        peppol(document_type_id="urn:not-a-doctype")
    assert info.value.rule == "invalid-document-type-identifier"


def test_eformidling_builder_and_accessors() -> None:
    message = BusinessMessage(
        "arkivmelding", JsonObject.of({"sikkerhetsnivaa": 3, "hoveddokument": "a.pdf"})
    )
    sbd = eformidling_sbd(
        sender="0192:991825827",
        receiver="0192:974760673",
        message=message,
        standard="urn:no:difi:arkivmelding:xsd::arkivmelding",
        process="urn:no:difi:profile:arkivmelding:administrasjon:ver1.0",
        conversation_id="37efbd4c-413d-4e2c-bbc5-257ef4a65a45",
        instance_identifier="ff88849c-e281-4809-8555-7cd54952b916",
        created=CREATED,
        expected_response=CREATED + timedelta(days=1),
        sender_ref="s-1",
        receiver_ref="r-1",
        journalpost_id="2024/42",
        message_channel="kanal",
    )
    header = sbd.header
    assert header.document_identification.type == "arkivmelding"
    assert header.conversation_id == "37efbd4c-413d-4e2c-bbc5-257ef4a65a45"
    assert header.process == "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
    assert header.expected_response_date_time == "2024-05-02T12:30:00Z"
    assert (
        header.sender_ref,
        header.receiver_ref,
        header.journalpost_id,
        header.message_channel,
    ) == (
        "s-1",
        "r-1",
        "2024/42",
        "kanal",
    )
    assert {s.identifier for s in header.scopes} == {header.process}
    report = validate_document(sbd)
    assert report.profile is Profile.EFORMIDLING
    assert report.valid, report.violations


def test_model_is_frozen_and_hashable() -> None:
    sbd = peppol()
    with pytest.raises(dataclasses.FrozenInstanceError):
        sbd.payload = None  # type: ignore[misc]
    assert hash(sbd) == hash(peppol())
    assert sbd == peppol()
    assert sbd != peppol(country_c1="SE")


def test_xml_payload_is_canonical() -> None:
    a = XmlPayload(b"<p:doc xmlns:p='urn:p' b='2'  a='1'><x/></p:doc>")
    b = XmlPayload(b'<?xml version="1.0"?>\n<p:doc a="1" b="2" xmlns:p="urn:p"><x></x></p:doc>')
    assert a == b
    assert hash(a) == hash(b)
    assert a.canonical == b'<p:doc xmlns:p="urn:p" a="1" b="2"><x></x></p:doc>'
    assert (a.namespace, a.local_name) == ("urn:p", "doc")
    element = a.element()
    element.set("c", "3")  # a private copy: the payload does not change
    assert b'c="3"' not in a.canonical


def test_xml_payload_goes_through_the_hardened_parser() -> None:
    with pytest.raises(InvalidInput) as info:
        XmlPayload(b'<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>')
    assert info.value.rule == "xml-dtd"


def test_binary_content() -> None:
    content = BinaryContent.of("application/pdf", b"%PDF-1.7 \x00\xff")
    assert content.value == "JVBERi0xLjcgAP8="
    assert content.data == b"%PDF-1.7 \x00\xff"
    wrapped = BinaryContent("application/pdf", "JVBERi0x\nLjcgAP8=\n")
    assert wrapped.data == content.data
    assert wrapped != content  # the lexical form is what the model keeps
    with pytest.raises(InvalidInput) as info:
        _ = BinaryContent("application/pdf", "not base64!").data
    assert info.value.rule == "invalid-binary-content"
    assert ENVELOPE_NS == "http://peppol.eu/xsd/ticc/envelope/1.0"


def test_json_object() -> None:
    body = JsonObject.of({"a": [1, {"b": None}], "c": True})
    assert body.get("a") == (1, JsonObject((("b", None),)))
    assert "c" in body
    assert body.to_python() == {"a": [1, {"b": None}], "c": True}
    hash(body)
    with pytest.raises(InvalidInput):
        JsonObject((("a", 1), ("a", 2)))
    with pytest.raises(InvalidInput):
        JsonObject.of({"n": float("nan")})


@pytest.mark.testdata
def test_accessors_on_a_real_peppol_sbd(testdata: Path) -> None:
    sbd = sbd_from_xml((testdata / "sbdh/samples/good/good-bis3-full.xml").read_bytes())
    header = sbd.header
    assert header.document_type_id is not None
    assert header.document_type_id.scheme == "busdox-docid-qns"
    assert header.process_id is not None
    assert header.process_id.value == BILLING
    assert header.country_c1 == "AT"
    assert header.mls_to is not None
    assert header.mls_to.value == "9915:test"
    assert header.mls_type is MlsType.ALWAYS_SEND
    assert header.scope(ScopeType.COUNTRY_C1) is not None
    assert isinstance(sbd.payload, XmlPayload)
    assert sbd.payload.local_name == "Invoice"
    assert sbd.instance_identifier == "a593a0aa-6ff7-48b0-8906-5534fa5212e0"


@pytest.mark.testdata
def test_eformidling_values_are_kept_raw(testdata: Path) -> None:
    # 0192:123456789 is no organisation number, but the model carries what was sent
    from sbdh.jsonform import sbd_from_json

    sbd = sbd_from_json(
        (testdata / "eformidling/samples/digital_ready_for_send-sbd.json").read_bytes()
    )
    assert sbd.header.receiver is not None
    assert sbd.header.receiver.value == "0192:123456789"
    assert sbd.header.expected_response_date_time == "2021-04-21T15:29:58.753+02:00"
    assert (
        sbd.header.document_identification.creation_date_and_time == "2021-05-21T13:19:57.12+02:00"
    )
