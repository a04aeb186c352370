"""Envelope rules: Peppol reference samples, eFormidling, generic SBDH, the parser's refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sbdh.errors import EnvelopeError, XmlSecurityError
from sbdh.jsonform import sbd_to_json
from sbdh.model import BusinessScope, Partner, PartnerIdentifier, Scope, TextContent
from sbdh.rules import Profile, check_sbd, validate_document, validate_sbd
from sbdh.xmlform import sbd_to_xml
from tests.unit.sbd_helpers import (
    BAD,
    GOOD,
    JSON_SAMPLES,
    eformidling_document,
    message,
    peppol,
)


@pytest.mark.testdata
@pytest.mark.parametrize("name", GOOD)
def test_good_peppol_samples_are_accepted(testdata: Path, name: str) -> None:
    data = (testdata / "sbdh/samples/good" / name).read_bytes()
    for profile in (Profile.AUTO, Profile.PEPPOL):
        report = validate_sbd(data, profile)
        assert report.valid, report.violations
        assert report.profile is Profile.PEPPOL
    assert check_sbd(data, Profile.PEPPOL).header.country_c1 == "AT"


@pytest.mark.testdata
@pytest.mark.parametrize("name", BAD)
def test_bad_peppol_samples_name_their_rule(testdata: Path, name: str) -> None:
    rule = name.removeprefix("bad-").removesuffix(".xml")
    report = validate_sbd((testdata / "sbdh/samples/bad" / name).read_bytes(), Profile.PEPPOL)
    assert not report.valid
    assert report.violations[0].rule == rule, report.violations
    # nothing else the Peppol profile checks is reported: the samples break one rule each
    # (beyond the SBDH 1.3 structure rule the same fault may break, and too-few-scopes, which
    # leaves COUNTRY_C1 out)
    others = {v.rule for v in report.violations[1:]} - {"no-country-c1"}
    assert all(r.startswith("sbdh-") for r in others), report.violations


def test_sample_counts() -> None:
    if GOOD or BAD:
        assert (len(GOOD), len(BAD)) == (8, 30)


@pytest.mark.testdata
def test_generic_header_only_sample(testdata: Path) -> None:
    data = (testdata / "sbdh/samples/unece-sample1-sbdh-only.xml").read_bytes()
    for profile in (Profile.AUTO, Profile.GENERIC):
        report = validate_sbd(data, profile)
        assert report.valid, report.violations
        assert report.profile is Profile.GENERIC
    peppol = validate_sbd(data, Profile.PEPPOL)
    assert [v.rule for v in peppol.violations] == [
        "sbdh-root",
        "invalid-header-version",
        "too-many-senders",
        "too-many-receivers",
        "no-business-scope",
        "invalid-business-message",
    ]
    with pytest.raises(EnvelopeError) as info:
        check_sbd(data, Profile.GENERIC)  # valid header, but no SBD to return
    assert info.value.rule == "sbdh-root"


@pytest.mark.testdata
def test_older_norwegian_peppol_sample(testdata: Path) -> None:
    """Envelope 1.x traffic: no COUNTRY_C1 and a zoneless timestamp, both required since 2.0."""
    data = (testdata / "sbdh/samples/vefa-peppol-bis-invoice-sbdh.xml").read_bytes()
    report = validate_sbd(data)
    assert report.profile is Profile.PEPPOL
    assert [v.rule for v in report.violations] == [
        "invalid-creation-date-and-time",
        "too-few-scopes",
        "no-country-c1",
    ]
    assert validate_sbd(data, Profile.GENERIC).valid


@pytest.mark.testdata
def test_eformidling_xml_sample_is_valid(testdata: Path) -> None:
    data = (testdata / "eformidling/samples/StandardBusinessDocument.xml").read_bytes()
    report = validate_sbd(data)
    assert report.profile is Profile.EFORMIDLING
    assert report.valid, report.violations
    # judged as Peppol it fails in Peppol's terms
    peppol = {v.rule for v in validate_sbd(data, Profile.PEPPOL).violations}
    assert {"invalid-type", "no-document-type-identifier", "no-country-c1"} <= peppol


@pytest.mark.testdata
@pytest.mark.parametrize("name", JSON_SAMPLES)
def test_eformidling_json_samples_fail_only_on_their_made_up_organisation_numbers(
    testdata: Path, name: str
) -> None:
    report = validate_sbd((testdata / "eformidling/samples" / name).read_bytes())
    assert report.profile is Profile.EFORMIDLING
    assert [v.rule for v in report.violations] == ["invalid-sender-value", "invalid-receiver-value"]
    assert "mod-11" in report.violations[0].message


def test_eformidling_rules() -> None:
    good = eformidling_document(message({"sikkerhetsnivaa": 3}))
    assert validate_document(good).valid
    person = replace(
        good,
        header=replace(good.header, receivers=(Partner(PartnerIdentifier("02016126007")),)),
    )
    assert validate_document(person).valid
    # the report must never echo a national id it refuses
    bad_person = replace(
        good,
        header=replace(good.header, receivers=(Partner(PartnerIdentifier("02016126008")),)),
    )
    report = validate_document(bad_person)
    assert [v.rule for v in report.violations] == ["invalid-receiver-value"]
    assert "02016126008" not in report.violations[0].message
    no_conversation = replace(
        good,
        header=replace(good.header, business_scope=BusinessScope((Scope("SenderRef", "x"),))),
    )
    assert [v.rule for v in validate_document(no_conversation).violations] == ["no-conversation-id"]
    no_process = replace(
        good,
        header=replace(good.header, business_scope=BusinessScope((Scope("ConversationId", "c"),))),
    )
    assert [v.rule for v in validate_document(no_process).violations] == ["no-process-identifier"]
    no_message = replace(good, payload=None)
    assert [v.rule for v in validate_document(no_message).violations] == [
        "invalid-business-message"
    ]
    data = json.loads(sbd_to_json(good))
    scope = data["standardBusinessDocument"]["standardBusinessDocumentHeader"]["businessScope"]
    scope["scope"][0]["scopeInformation"] = [{"expectedResponseDateTime": "tomorrow"}]
    report = validate_sbd(json.dumps(data).encode())
    # the network's rule first, then the SBDH 1.3 type it breaks, as for the XML form
    assert [v.rule for v in report.violations] == [
        "invalid-expected-response-date-time",
        "sbdh-datetime",
    ]


def _scoped(*scopes: Scope) -> object:
    sbd = peppol()
    return replace(sbd, header=replace(sbd.header, business_scope=BusinessScope(scopes)))


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"country_c1": "XX"}, "invalid-country-c1"),
        ({"country_c1": "no"}, "invalid-country-c1"),
        ({"mls_to": "0192:123456789"}, "mls-to-invalid-value"),  # fails mod 11
        ({"sender": "0192:123456789"}, "invalid-sender-value"),
        ({"process_scheme": "other-scheme"}, "invalid-process-identifier"),
        ({"document_type_scheme": "other-scheme"}, "invalid-document-type-identifier"),
        ({"payload": TextContent("text/plain", "x")}, "invalid-standard"),
    ],
)
def test_peppol_rule_details(change: dict[str, object], rule: str) -> None:
    report = validate_document(peppol(**change), Profile.PEPPOL)
    assert report.violations[0].rule == rule, report.violations


def test_duplicate_and_scheme_scopes() -> None:
    sbd = peppol(mls_to="0192:991825827")
    scopes = sbd.header.scopes
    doubled = replace(
        sbd, header=replace(sbd.header, business_scope=BusinessScope((*scopes, scopes[2])))
    )
    assert "duplicate-scope" in {v.rule for v in validate_document(doubled).violations}
    wrong_scheme = tuple(
        replace(s, identifier="iso6523-actorid-upisX") if s.type == "MLS_TO" else s for s in scopes
    )
    sbd2 = replace(sbd, header=replace(sbd.header, business_scope=BusinessScope(wrong_scheme)))
    assert [v.rule for v in validate_document(sbd2).violations] == ["mls-to-invalid-scheme"]


def test_binary_payload_identified_by_the_envelope() -> None:
    doctype = "http://peppol.eu/xsd/ticc/envelope/1.0::BinaryContent##urn:example:pdf::1.0"
    from sbdh.model import BinaryContent

    sbd = peppol(document_type_id=doctype, payload=BinaryContent.of("application/pdf", b"%PDF"))
    assert validate_document(sbd, Profile.PEPPOL).valid
    assert validate_sbd(sbd_to_xml(sbd), Profile.PEPPOL).valid
    assert validate_sbd(sbd_to_json(sbd), Profile.PEPPOL).valid


def test_refusals_of_the_hardened_parser_are_violations() -> None:
    billion_laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
    )
    report = validate_sbd(billion_laughs)
    assert [v.rule for v in report.violations] == ["xml-dtd"]
    with pytest.raises(XmlSecurityError):
        check_sbd(billion_laughs)
    deep = b"<a>" * 300 + b"</a>" * 300
    assert validate_sbd(deep).violations[0].rule == "xml-depth"
    assert validate_sbd(b"<a>").violations[0].rule == "xml-well-formed"
    assert validate_sbd(b"").violations[0].rule == "xml-well-formed"


def test_check_sbd_raises_with_every_violation() -> None:
    sbd = peppol(country_c1="XX", sender="0192:123456789")
    with pytest.raises(EnvelopeError) as info:
        check_sbd(sbd_to_xml(sbd), Profile.PEPPOL)
    assert [v.rule for v in info.value.violations] == ["invalid-sender-value", "invalid-country-c1"]
    assert check_sbd(sbd_to_xml(peppol()), Profile.PEPPOL) == peppol()


def test_a_sender_cannot_opt_out_of_peppol_rules() -> None:
    """AUTO may call a header without Peppol signs generic; an explicit profile decides."""
    sbd = peppol()
    disguised = replace(
        sbd,
        header=replace(
            sbd.header,
            senders=(Partner(PartnerIdentifier("x", "other")),),
            receivers=(Partner(PartnerIdentifier("y", "other")),),
            business_scope=BusinessScope((Scope("any", "thing"),)),
        ),
    )
    assert validate_document(disguised).profile is Profile.GENERIC
    assert not validate_document(disguised, Profile.PEPPOL).valid


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_validation_never_raises(data: bytes) -> None:
    report = validate_sbd(data)
    assert not report.valid or report.document is not None


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_validation_never_raises_on_mangled_sbds(noise: str) -> None:
    base = sbd_to_xml(peppol()).decode()
    cut = len(noise) * 7 % len(base)
    for data in (base[:cut] + noise + base[cut:], base.replace("1.0", noise, 1)):
        validate_sbd(data.encode("utf-8", errors="surrogatepass"))
