"""The NextMove JSON form and its round trips with the XML form."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sbdh.errors import EnvelopeError, InvalidInput
from sbdh.jsonform import read_json, sbd_from_json, sbd_to_json
from sbdh.model import (
    BinaryContent,
    BusinessMessage,
    TextContent,
    eformidling_sbd,
)
from sbdh.xmlform import check_business_message, is_xml_text, sbd_from_xml, sbd_to_xml
from tests.unit.sbd_helpers import (
    CREATED,
    JSON_SAMPLES,
    READABLE,
    c14n,
    eformidling_document,
    message,
    peppol,
)


@pytest.mark.testdata
@pytest.mark.parametrize("name", JSON_SAMPLES)
def test_json_sample_survives_the_xml_form(testdata: Path, name: str) -> None:
    original = json.loads((testdata / "eformidling/samples" / name).read_bytes())
    document = sbd_from_json((testdata / "eformidling/samples" / name).read_bytes())
    assert isinstance(document.payload, BusinessMessage)
    xml = sbd_to_xml(document)
    again = sbd_from_xml(xml)
    assert again == document
    result = json.loads(sbd_to_json(again))
    assert result == original
    # types survive, not only values (1 == 1.0 == True in Python)
    assert json.dumps(result, sort_keys=True) == json.dumps(original, sort_keys=True)


@pytest.mark.testdata
@pytest.mark.parametrize("name", READABLE)
def test_xml_sample_survives_the_json_form(testdata: Path, name: str) -> None:
    original = (testdata / name).read_bytes()
    document = sbd_from_xml(original)
    via_json = sbd_from_json(sbd_to_json(document))
    assert via_json == document
    # the JSON form carries no namespace prefixes: compare with prefixes renamed uniformly
    assert c14n(sbd_to_xml(via_json), ignore_prefixes=True) == c14n(original, ignore_prefixes=True)


@pytest.mark.testdata
def test_peppol_payload_is_a_string_of_xml(testdata: Path) -> None:
    document = sbd_from_xml((testdata / "sbdh/samples/good/good-bis3.xml").read_bytes())
    body = json.loads(sbd_to_json(document))["standardBusinessDocument"]
    assert set(body) == {"standardBusinessDocumentHeader", "xmlDocument"}
    assert body["xmlDocument"].startswith("<ubl:Invoice ")
    assert body["standardBusinessDocumentHeader"]["sender"] == [
        {"identifier": {"authority": "iso6523-actorid-upis", "value": "0088:7315458756324"}}
    ]


def test_wrapper_payloads_in_json() -> None:
    for payload, key in (
        (BinaryContent("application/pdf", "JVBE\nRi0x", "base64"), "binaryContent"),
        (TextContent("text/plain", "hei\n"), "textContent"),
    ):
        document = peppol(payload=payload)
        data = sbd_to_json(document)
        assert key in json.loads(data)["standardBusinessDocument"]
        assert sbd_from_json(data) == document
        assert sbd_from_json(sbd_to_json(sbd_from_xml(sbd_to_xml(document)))) == document


@pytest.mark.parametrize(
    "body",
    [
        {"sikkerhetsnivaa": 3, "aapningskvittering": False, "ikkesensitivtittel": "t"},
        {"varsler": {"epostvarsel": {"repetisjoner": [7]}}},  # one-item array, declared
        {"mottaker": None, "x": {"y": {"z": "deep"}}},
        {"liste": ["a", "b", "c"]},  # undeclared, but two or more items
        {"tom": ""},
    ],
)
def test_representable_bodies_round_trip(body: dict[str, Any]) -> None:
    document = eformidling_document(message(body))
    assert json.loads(sbd_to_json(sbd_from_xml(sbd_to_xml(document)))) == json.loads(
        sbd_to_json(document)
    )
    assert sbd_from_xml(sbd_to_xml(document)).payload.body.to_python() == body  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ukjent": 5}, "digital/ukjent"),  # a number where the table knows nothing
        ({"sikkerhetsnivaa": "3"}, "digital/sikkerhetsnivaa"),  # a string would come back a number
        ({"liste": ["a"]}, "digital/liste"),  # one item outside the table comes back a string
        ({"varsler": {"epostvarsel": {"repetisjoner": []}}}, "digital/varsler"),
        ({"obj": {}}, "digital/obj"),
        ({"nested": [["a"], ["b"]]}, "digital/nested"),
        ({"bad name": "x"}, "digital/bad name"),
    ],
)
def test_unrepresentable_bodies_are_refused_not_changed(body: dict[str, Any], field: str) -> None:
    msg = message(body)
    with pytest.raises(InvalidInput) as info:
        check_business_message(msg)
    assert info.value.rule == "nextmove-unrepresentable"
    assert field in info.value.message
    data = json.dumps(
        {
            "standardBusinessDocument": {
                "standardBusinessDocumentHeader": json.loads(
                    sbd_to_json(eformidling_document(message({})))
                )["standardBusinessDocument"]["standardBusinessDocumentHeader"],
                "digital": body,
            }
        }
    ).encode()
    with pytest.raises(EnvelopeError) as refused:
        sbd_from_json(data)
    assert refused.value.rule == "nextmove-unrepresentable"


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b'{"standardBusinessDocument": {}, "standardBusinessDocument": {}}', "json-duplicate-key"),
        (b'{"a": NaN}', "json-well-formed"),
        (b"{not json", "json-well-formed"),
        (b"[" * 100_000 + b"]" * 100_000, "json-depth"),
    ],
)
def test_json_parser_refusals(data: bytes, rule: str) -> None:
    with pytest.raises(InvalidInput) as info:
        read_json(data)
    assert info.value.rule == rule


def test_characters_xml_cannot_carry_are_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        check_business_message(message({"tittel": "a\x00b"}))
    assert info.value.rule == "nextmove-unrepresentable"
    header = json.loads(sbd_to_json(eformidling_document(message({}))))
    header["standardBusinessDocument"]["standardBusinessDocumentHeader"]["headerVersion"] = "1\x01"
    reading = read_json(json.dumps(header).encode())
    assert any("XML 1.0" in v.message for v in reading.violations)


def test_control_characters_survive_both_forms() -> None:
    body = {"tittel": "tab\tcr\rlf\n", "spraak": "  "}
    document = eformidling_document(message(body))
    assert sbd_from_json(sbd_to_json(sbd_from_xml(sbd_to_xml(document)))) == document


def test_json_structure_problems_are_listed() -> None:
    data = json.dumps(
        {
            "standardBusinessDocument": {
                "standardBusinessDocumentHeader": {
                    "headerVersion": 1,
                    "sender": {},
                    "documentIdentification": {"standard": "s"},
                    "x": 1,
                },
                "digital": {},
                "print": {},
            }
        }
    ).encode()
    reading = read_json(data)
    messages = [v.message for v in reading.violations]
    assert reading.document is None
    assert any("headerVersion: must be a string" in m for m in messages)
    assert any("sender: must be an array" in m for m in messages)
    assert any("receiver is required" in m for m in messages)
    assert any("typeVersion is required" in m for m in messages)
    assert any("unknown member 'x'" in m for m in messages)
    assert any("2 business messages" in m for m in messages)


# --------------------------------------------------------------------------- properties

_names = st.text(string.ascii_letters, min_size=1, max_size=8)
_text = st.text(max_size=20)  # all of Unicode: control characters and lone surrogates too
_leaf = st.one_of(
    st.none(), _text, st.integers(), st.booleans(), st.floats(allow_nan=False, allow_infinity=False)
)
_json = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_names, inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_names, _json, max_size=5))
def test_any_body_is_refused_or_round_trips_exactly(body: dict[str, Any]) -> None:
    """The JSON -> XML -> JSON contract: exact (types included) or a clear refusal."""
    msg = message(body)
    try:
        check_business_message(msg)
    except InvalidInput as exc:
        refused = exc.rule
    else:
        refused = None
    if refused is not None:
        assert refused == "nextmove-unrepresentable"
        return
    document = eformidling_document(msg)
    again = sbd_from_xml(sbd_to_xml(document))
    assert json.dumps(json.loads(sbd_to_json(again)), sort_keys=True) == json.dumps(
        json.loads(sbd_to_json(document)), sort_keys=True
    )


_xml_text = st.text(
    st.one_of(st.characters(blacklist_categories=("Cs", "Cc")), st.sampled_from("\t\n\r")),
    max_size=20,
).filter(is_xml_text)


@settings(max_examples=200, deadline=None)
@given(
    body=st.fixed_dictionaries(
        {"sikkerhetsnivaa": st.integers(-(10**6), 10**6), "aapningskvittering": st.booleans()},
        optional={
            "tittel": _xml_text,
            "fritekst": st.one_of(_xml_text, st.none()),
            "varsler": st.fixed_dictionaries(
                {
                    "epostvarsel": st.fixed_dictionaries(
                        {"repetisjoner": st.lists(st.integers(0, 25), min_size=1, max_size=10)}
                    )
                }
            ),
        },
    ),
    conversation=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1),
    ref=st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs", "Cc")))),
)
def test_generated_dpi_messages_round_trip(
    body: dict[str, Any], conversation: str, ref: str | None
) -> None:
    document = eformidling_sbd(
        sender="0192:991825827",
        receiver="0192:974760673",
        message=message(body),
        standard="urn:fdc:digdir.no:2020:innbyggerpost:xsd::innbyggerpost",
        process="p",
        conversation_id=conversation,
        instance_identifier="i",
        created=CREATED,
        sender_ref=ref,
    )
    json_form = sbd_to_json(document)
    assert sbd_from_json(json_form) == document
    assert sbd_from_xml(sbd_to_xml(sbd_from_json(json_form))) == document
    assert json.loads(sbd_to_json(sbd_from_xml(sbd_to_xml(document)))) == json.loads(json_form)


def test_the_bare_nextmove_api_form_reads_and_writes(testdata: Path) -> None:
    from sbdh.jsonform import sbd_to_python

    wrapped = (testdata / "eformidling/samples/digital_ready_for_send-sbd.json").read_bytes()
    document = sbd_from_json(wrapped)
    bare = sbd_to_python(document, wrapped=False)
    assert set(bare) == {"standardBusinessDocumentHeader", "digital"}
    assert sbd_from_json(json.dumps(bare).encode()) == document
    assert json.loads(sbd_to_json(document, wrapped=False)) == bare
    assert json.loads(sbd_to_json(document)) == json.loads(wrapped)
