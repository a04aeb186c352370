"""The arkivmelding_kvittering in integrasjonspunkt's form, and the BEST/EDU AppReceipt."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.noark import (
    KVITTERING_PROCESS,
    KVITTERING_STANDARD,
    ArkivmeldingError,
    Kvittering,
    KvitteringMessage,
    NoarkLimits,
    NoarkViolation,
    ReceiptType,
    build_kvittering,
    kvittering_for,
    kvittering_from_json,
    kvittering_from_message,
    parse_kvittering,
)
from sbdh.errors import Violation, XmlSecurityError
from sbdh.jsonform import sbd_from_json, sbd_to_json
from sbdh.model import NEXTMOVE_NS, BusinessMessage, JsonObject, eformidling_sbd
from sbdh.xmlform import is_xml_text, sbd_from_xml, sbd_to_xml

MESSAGE_ID = "9b0d1d2e-33c4-4e55-8f66-7a8b9c0d1e2f"
RECNO = KvitteringMessage("Recno", "215533")


def _eformidling(body: str) -> bytes:
    root = f'nm:arkivmelding_kvittering xmlns:nm="{NEXTMOVE_NS}"'
    return f"<{root}>{body}</nm:arkivmelding_kvittering>".encode()


@pytest.mark.parametrize("receipt_type", list(ReceiptType))
@pytest.mark.parametrize(
    "messages",
    [(), (RECNO,), (RECNO, KvitteringMessage(None, "Arkivert"), KvitteringMessage("W1", None))],
)
def test_build_then_parse_gives_the_same_kvittering(
    receipt_type: ReceiptType, messages: tuple[KvitteringMessage, ...]
) -> None:
    kvittering = Kvittering(receipt_type, MESSAGE_ID, messages)
    assert parse_kvittering(build_kvittering(kvittering)) == kvittering
    assert kvittering_from_json(kvittering.to_json()) == kvittering


def test_the_xml_form_is_the_business_message_element() -> None:
    data = build_kvittering(Kvittering(ReceiptType.OK, MESSAGE_ID, (RECNO, RECNO)))
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    root = etree.fromstring(data)
    assert root.tag == f"{{{NEXTMOVE_NS}}}arkivmelding_kvittering"
    assert [child.tag for child in root] == [
        "receiptType",
        "relatedToMessageId",
        "messages",
        "messages",
    ]
    assert [child.tag for child in root[2]] == ["code", "text"]


def test_the_json_form_is_integrasjonspunkts() -> None:
    kvittering = Kvittering(ReceiptType.WARNING, MESSAGE_ID, (RECNO, KvitteringMessage("W1")))
    assert kvittering.to_json() == {
        "receiptType": "WARNING",
        "relatedToMessageId": MESSAGE_ID,
        "messages": [{"code": "Recno", "text": "215533"}, {"code": "W1"}],
    }
    assert Kvittering("OK", MESSAGE_ID).to_json() == {  # type: ignore[arg-type]
        "receiptType": "OK",
        "relatedToMessageId": MESSAGE_ID,
    }


def test_a_body_as_a_case_system_posts_it() -> None:
    body = json.loads(
        '{"receiptType": "OK", "relatedToMessageId": "' + MESSAGE_ID + '",'
        ' "messages": [{"code": "Recno", "text": "215533"}]}'
    )
    assert kvittering_from_json(body) == Kvittering(ReceiptType.OK, MESSAGE_ID, (RECNO,))
    # the demo's body: no messages
    plain = {"receiptType": "OK", "relatedToMessageId": MESSAGE_ID}
    assert kvittering_from_json(plain).messages == ()
    # one message read from the XML form without a declared array shape is an object
    frozen = JsonObject.of({**plain, "messages": {"code": "Recno", "text": "215533"}})
    assert kvittering_from_json(frozen).messages == (RECNO,)


def test_receipt_types_that_mean_failure() -> None:
    assert [t for t in ReceiptType if t.failed] == [ReceiptType.ERROR, ReceiptType.NOTSUPPORTED]


def test_kvittering_for_answers_violations_with_error() -> None:
    assert kvittering_for(MESSAGE_ID) == Kvittering(ReceiptType.OK, MESSAGE_ID)
    assert kvittering_for(MESSAGE_ID, messages=[RECNO]).messages == (RECNO,)
    violations = [
        NoarkViolation.at("NOARK-FILE-MISSING", "/arkivmelding/x", "'a.pdf' is missing"),
        Violation("NOARK-SAKSMAPPE", "no saksmappe"),
    ]
    answer = kvittering_for(MESSAGE_ID, violations)
    assert answer.receipt_type is ReceiptType.ERROR
    assert answer.messages == (
        KvitteringMessage("NOARK-FILE-MISSING", "/arkivmelding/x: 'a.pdf' is missing"),
        KvitteringMessage("NOARK-SAKSMAPPE", "no saksmappe"),
    )
    assert parse_kvittering(build_kvittering(answer)) == answer


def test_an_app_receipt_is_read_without_a_reference() -> None:
    data = b"""<AppReceipt type="WARNING" xmlns="http://www.arkivverket.no/Noark/Exchange/types">
      <message code="ID" xmlns=""><text>98765</text></message>
      <message code="W" xmlns=""><text> Saken er avsluttet </text></message>
    </AppReceipt>"""
    assert parse_kvittering(data) == Kvittering(
        ReceiptType.WARNING,
        None,
        (KvitteringMessage("ID", "98765"), KvitteringMessage("W", "Saken er avsluttet")),
    )


def test_white_space_and_namespaced_children_are_tolerated() -> None:
    data = _eformidling(
        f"<receiptType> ERROR </receiptType>\n<relatedToMessageId>\n{MESSAGE_ID}\n"
        f"</relatedToMessageId><nm:messages><code>E1</code></nm:messages><messages/>"
    )
    assert parse_kvittering(data) == Kvittering(
        ReceiptType.ERROR, MESSAGE_ID, (KvitteringMessage("E1"),)
    )


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        pytest.param(b"<arkivmelding_kvittering/>", "NOARK-KVITTERING-ROOT", id="no-namespace"),
        pytest.param(
            f'<nm:arkivmelding xmlns:nm="{NEXTMOVE_NS}"/>'.encode(),
            "NOARK-KVITTERING-ROOT",
            id="arkivmelding",
        ),
        pytest.param(
            _eformidling(f"<relatedToMessageId>{MESSAGE_ID}</relatedToMessageId>"),
            "NOARK-KVITTERING-TYPE",
            id="no-type",
        ),
        pytest.param(
            _eformidling(
                f"<receiptType>ok</receiptType><relatedToMessageId>{MESSAGE_ID}"
                "</relatedToMessageId>"
            ),
            "NOARK-KVITTERING-TYPE",
            id="lower-case-type",
        ),
        pytest.param(
            _eformidling("<receiptType>OK</receiptType>"),
            "NOARK-KVITTERING-REFERENCE",
            id="no-reference",
        ),
        pytest.param(
            _eformidling("<receiptType>OK</receiptType><relatedToMessageId> </relatedToMessageId>"),
            "NOARK-KVITTERING-REFERENCE",
            id="blank-reference",
        ),
        pytest.param(
            b'<AppReceipt type="FINE" xmlns="http://www.arkivverket.no/Noark/Exchange/types"/>',
            "NOARK-KVITTERING-TYPE",
            id="app-receipt-type",
        ),
    ],
)
def test_broken_kvitteringer_name_their_rule(data: bytes, rule: str) -> None:
    with pytest.raises(ArkivmeldingError) as caught:
        parse_kvittering(data)
    assert caught.value.rule == rule


def test_every_fault_is_listed() -> None:
    with pytest.raises(ArkivmeldingError) as caught:
        parse_kvittering(_eformidling("<receiptType>MAYBE</receiptType>"))
    assert [v.rule for v in caught.value.violations] == [
        "NOARK-KVITTERING-TYPE",
        "NOARK-KVITTERING-REFERENCE",
    ]
    assert caught.value.violations[0].message.startswith(
        "/arkivmelding_kvittering/receiptType: 'MAYBE' is not a receiptType"
    )


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ({"relatedToMessageId": MESSAGE_ID}, "NOARK-KVITTERING-TYPE"),
        ({"receiptType": 1, "relatedToMessageId": MESSAGE_ID}, "NOARK-KVITTERING-TYPE"),
        ({"receiptType": "OK"}, "NOARK-KVITTERING-REFERENCE"),
        ({"receiptType": "OK", "relatedToMessageId": 7}, "NOARK-KVITTERING-REFERENCE"),
        (
            {"receiptType": "OK", "relatedToMessageId": MESSAGE_ID, "messages": ["Recno"]},
            "NOARK-KVITTERING-MESSAGE",
        ),
        (
            {"receiptType": "OK", "relatedToMessageId": MESSAGE_ID, "messages": [{"code": 1}]},
            "NOARK-KVITTERING-MESSAGE",
        ),
    ],
)
def test_broken_json_bodies_name_their_rule(body: dict[str, object], rule: str) -> None:
    with pytest.raises(ArkivmeldingError) as caught:
        kvittering_from_json(body)
    assert caught.value.rule == rule


def test_too_many_messages_are_refused() -> None:
    limits = NoarkLimits(max_kvittering_messages=2)
    kvittering = Kvittering(ReceiptType.OK, MESSAGE_ID, (RECNO,) * 3)
    with pytest.raises(ArkivmeldingError) as caught:
        parse_kvittering(build_kvittering(kvittering), limits=limits)
    assert caught.value.rule == "NOARK-LIMIT"
    with pytest.raises(ArkivmeldingError) as caught:
        kvittering_from_json(kvittering.to_json(), limits=limits)
    assert caught.value.rule == "NOARK-LIMIT"


def test_hostile_xml_is_refused_by_the_hardened_parser() -> None:
    data = (
        b'<!DOCTYPE k [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<nm:arkivmelding_kvittering xmlns:nm="urn:no:difi:meldingsutveksling:2.0">'
        b"<receiptType>&x;</receiptType></nm:arkivmelding_kvittering>"
    )
    with pytest.raises(XmlSecurityError) as caught:
        parse_kvittering(data)
    assert caught.value.rule == "xml-dtd"
    big = _eformidling("<messages><text>x</text></messages>" * 40_000)
    with pytest.raises(XmlSecurityError) as caught:
        parse_kvittering(big)
    assert caught.value.rule == "xml-size"


def test_build_needs_the_reference_and_xml_text() -> None:
    with pytest.raises(ValueError, match="id of the message"):
        build_kvittering(Kvittering(ReceiptType.OK, None))
    with pytest.raises(ArkivmeldingError) as caught:
        build_kvittering(
            Kvittering(ReceiptType.ERROR, MESSAGE_ID, (KvitteringMessage("E", "\x00"),))
        )
    assert caught.value.rule == "NOARK-VALUE"
    with pytest.raises(ValueError, match="FINE"):
        Kvittering("FINE", MESSAGE_ID)  # type: ignore[arg-type]


def test_a_business_message_of_another_type_is_not_a_kvittering() -> None:
    with pytest.raises(ArkivmeldingError) as caught:
        kvittering_from_message(BusinessMessage("arkivmelding", JsonObject.of({})))
    assert caught.value.rule == "NOARK-KVITTERING-ROOT"


def _sbd(kvittering: Kvittering) -> object:
    return eformidling_sbd(
        sender="0192:974760673",
        receiver="0192:991825827",
        message=kvittering.to_business_message(),
        standard=KVITTERING_STANDARD,
        process=KVITTERING_PROCESS,
        conversation_id="37efbd4c-413d-4e2c-bbc5-257ef4a65a45",
        instance_identifier="5e0ddc3c-0d7f-4b0c-9d4e-6c1f2b3a4d5e",
        created=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )


@pytest.mark.parametrize("count", [0, 2])
def test_the_kvittering_travels_in_an_sbd_in_both_forms(count: int) -> None:
    kvittering = Kvittering(ReceiptType.OK, MESSAGE_ID, (RECNO,) * count)
    sbd = _sbd(kvittering)
    from_xml = sbd_from_xml(sbd_to_xml(sbd))  # type: ignore[arg-type]
    from_json = sbd_from_json(sbd_to_json(sbd))  # type: ignore[arg-type]
    for document in (from_xml, from_json):
        assert isinstance(document.payload, BusinessMessage)
        assert kvittering_from_message(document.payload) == kvittering


def test_a_kvittering_with_one_message_travels_in_an_sbds_xml_form() -> None:
    kvittering = Kvittering(ReceiptType.OK, MESSAGE_ID, (RECNO,))
    document = sbd_from_xml(sbd_to_xml(_sbd(kvittering)))  # type: ignore[arg-type]
    assert isinstance(document.payload, BusinessMessage)
    assert kvittering_from_message(document.payload) == kvittering


_TEXT = st.text(st.characters(codec="utf-8"), max_size=30).filter(is_xml_text)


@settings(max_examples=60, deadline=None)
@given(
    receipt_type=st.sampled_from(list(ReceiptType)),
    related=_TEXT.filter(lambda s: s.strip() == s and s),
    messages=st.lists(
        st.builds(
            KvitteringMessage,
            st.none() | _TEXT.filter(lambda s: s.strip() == s),
            st.none() | _TEXT.filter(lambda s: s.strip() == s),
        ).filter(lambda m: m.code or m.text),
        max_size=4,
    ),
)
def test_any_kvittering_survives_its_xml_form(
    receipt_type: ReceiptType, related: str, messages: list[KvitteringMessage]
) -> None:
    kvittering = Kvittering(receipt_type, related, tuple(messages))
    assert parse_kvittering(build_kvittering(kvittering)) == kvittering
