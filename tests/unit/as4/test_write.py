"""The text writer emits what libxml2 would canonicalise to, whatever the values hold; and the
ebMS error table and the error classes agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from access_point.as4 import (
    As4Error,
    EbmsError,
    Identifier,
    OutboundMessage,
    Routing,
    parse_envelope,
    receive_user_message,
    write,
)
from access_point.as4 import errors as as4_errors
from access_point.as4.errors import EBMS_ERRORS
from access_point.as4.wssec import c14n
from sbdh.errors import EbmsCode
from sbdh.pki import Credential
from sbdh.trust import TrustStore
from tests.unit.as4.conftest import find, wire, xml

# XML 1.0 characters only (what a header value can hold at all)
_XML_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff", max_codepoint=0x2FFFF
    ).filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s and s.strip())


@settings(max_examples=60, deadline=None)
@given(value=_XML_TEXT, kind=_XML_TEXT)
def test_messaging_text_round_trips_through_xml(value: str, kind: str) -> None:
    from access_point.as4.build import peppol_user_message

    routing = Routing(
        Identifier(kind, value),
        Identifier("iso6523-actorid-upis", "0192:974760673"),
        Identifier("busdox-docid-qns", f"{value}::x"),
        Identifier(kind, value),
    )
    header = peppol_user_message(
        routing,
        from_party="PNO000001",
        to_party="PNO000002",
        message_id=f"{value}@x",
        conversation_id=value,
        timestamp=datetime(2024, 1, 1).astimezone(),
        content_id="c@x",
        mime_type="application/xml",
    )
    canonical = write.messaging(write.user_message(header), "msg-1")
    element = etree.fromstring(canonical)
    # what we digest is already canonical, and reads back to the same values
    assert c14n(element) == canonical
    soap = write.envelope("", canonical, write.body("body-1"))
    parsed = parse_envelope(soap).user_message
    assert parsed is not None
    assert parsed.routing == routing
    assert parsed.conversation_id == value


def test_hand_written_canonical_forms_match_libxml2(
    build: Callable[..., OutboundMessage],
) -> None:
    with build() as message:
        root = xml(wire(message).soap)
    body = find(root, "S12:Body")
    body_id = body.get(
        "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}Id"
    )
    assert body_id
    assert c14n(body) == write.body(body_id)
    references = root.findall(".//{*}SignedInfo/{*}Reference")
    assert [c14n(r) for r in references] == [r.xml for r in message.references]


def test_special_characters_in_routing_survive_a_real_exchange(
    build: Callable[..., OutboundMessage],
    routing: Routing,
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    odd = Routing(
        routing.sender,
        Identifier("iso6523-actorid-upis", '0192:974760673 & "<co>"\t\r\nÆØÅ'),
        routing.document_type,
        Identifier("cenbii-procid-ubl", "urn:p&q<r>'s\"]]>"),
    )
    with (
        build(routing=odd) as message,
        receive_user_message(
            message.to_bytes(), message.content_type, credential=receiver, trust=ap_trust, now=now
        ) as inbound,
    ):
        assert inbound.routing == odd


def _refusal_classes() -> list[type[As4Error]]:
    found = []
    for name in as4_errors.__all__:
        value = getattr(as4_errors, name)
        if isinstance(value, type) and issubclass(value, As4Error) and value is not As4Error:
            found.append(value)
    return found


@pytest.mark.parametrize("cls", _refusal_classes(), ids=lambda c: c.__name__)
def test_error_classes_follow_the_ebms_table(cls: type[As4Error]) -> None:
    short, category, _ = EBMS_ERRORS[cls.ebms_code]
    assert (cls.short_description, cls.category) == (short, category)


def test_ebms_error_for_code() -> None:
    error = EbmsError.for_code(
        EbmsCode.DELIVERY_FAILURE, description="down", ref_to_message_in_error="m@x"
    )
    assert (error.code, error.short_description, error.category, error.severity) == (
        "EBMS:0202",
        "DeliveryFailure",
        "Communication",
        "failure",
    )
    assert error.is_failure
    assert not EbmsError.for_code(EbmsCode.EMPTY_MPC).is_failure
    assert "down" in str(error)
