from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sbdh.errors import InvalidIdentifier
from sbdh.identifiers import (
    NationalId,
    NationalIdKind,
    OrganisationNumber,
    ParticipantId,
    mod11_check_digit,
)

ORG_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)


@pytest.mark.parametrize("number", ["991825827", "974760673", "910075918"])
def test_valid_organisation_numbers(number: str) -> None:
    assert OrganisationNumber(number).value == number


@pytest.mark.parametrize(
    ("number", "rule"),
    [
        ("123456789", "orgnr-check-digit"),
        ("99182582", "orgnr-length"),
        ("9918258270", "orgnr-length"),
        ("99182582x", "orgnr-digits"),
        ("٩٩١٨٢٥٨٢٧", "orgnr-digits"),  # Arabic-Indic digits are digits to str.isdigit
    ],
)
def test_invalid_organisation_numbers_name_the_check(number: str, rule: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        OrganisationNumber(number)
    assert info.value.rule == rule


def test_organisation_number_tolerates_spaces_when_parsed() -> None:
    assert OrganisationNumber.parse(" 991 825 827 ").value == "991825827"


@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_check_digit_matches_definition(prefix: str) -> None:
    remainder = sum(int(d) * w for d, w in zip(prefix, ORG_WEIGHTS, strict=True)) % 11
    digit = mod11_check_digit(prefix, ORG_WEIGHTS)
    if remainder == 1:
        assert digit is None
        for last in "0123456789":
            with pytest.raises(InvalidIdentifier):
                OrganisationNumber(prefix + last)
    else:
        assert digit == (0 if remainder == 0 else 11 - remainder)
        assert OrganisationNumber(prefix + str(digit)).value == prefix + str(digit)
        wrong = str((digit + 1) % 10)
        with pytest.raises(InvalidIdentifier):
            OrganisationNumber(prefix + wrong)


@pytest.mark.parametrize(
    ("nid", "kind", "synthetic"),
    [
        ("02016126007", NationalIdKind.FODSELSNUMMER, False),
        ("31129956715", NationalIdKind.FODSELSNUMMER, False),
        ("17912099997", NationalIdKind.FODSELSNUMMER, True),  # synthetic test id, month + 80
    ],
)
def test_valid_national_ids(nid: str, kind: NationalIdKind, synthetic: bool) -> None:
    parsed = NationalId(nid)
    assert parsed.kind is kind
    assert parsed.synthetic is synthetic


def _with_check_digits(nine: str) -> str | None:
    k1 = mod11_check_digit(nine, (3, 7, 6, 1, 8, 9, 4, 5, 2))
    if k1 is None:
        return None
    k2 = mod11_check_digit(nine + str(k1), (5, 4, 3, 2, 7, 6, 5, 4, 3, 2))
    return None if k2 is None else f"{nine}{k1}{k2}"


def test_d_number_adds_four_to_the_first_digit() -> None:
    nid = next(
        n for n in (_with_check_digits(f"4201614{i:02d}") for i in range(100)) if n is not None
    )
    assert NationalId(nid).kind is NationalIdKind.D_NUMMER


@pytest.mark.parametrize(
    ("nid", "rule"),
    [
        ("02016126008", "nid-check-digit-2"),
        ("02016126017", "nid-check-digit-1"),
        ("0201612600", "nid-length"),
        ("0201612600a", "nid-digits"),
    ],
)
def test_invalid_national_ids_name_the_check(nid: str, rule: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        NationalId(nid)
    assert info.value.rule == rule


def test_national_id_with_impossible_date_is_rejected() -> None:
    nid = next(n for n in (_with_check_digits(f"3213614{i:02d}") for i in range(100)) if n)
    with pytest.raises(InvalidIdentifier) as info:
        NationalId(nid)
    assert info.value.rule == "nid-date"


def test_national_id_is_masked_in_repr_and_str() -> None:
    nid = NationalId("02016126007")
    assert "26007" not in repr(nid)
    assert "26007" not in str(nid)
    assert f"{nid}" == "020161*****"
    assert nid.value == "02016126007"


def test_participant_ids_compare_case_insensitively() -> None:
    a = ParticipantId("9915:TestBuyer")
    b = ParticipantId.parse("ISO6523-ACTORID-UPIS::9915:testbuyer")
    assert a == b
    assert hash(a) == hash(b)
    assert {a, b} == {a}
    assert a.uri() == "iso6523-actorid-upis::9915:TestBuyer"


def test_participant_id_parts() -> None:
    pid = ParticipantId.parse("0192:991825827")
    assert pid.icd == "0192"
    assert pid.identifier == "991825827"
    assert pid.organisation_number == OrganisationNumber("991825827")
    assert OrganisationNumber("991825827").participant_id() == pid


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("0192:123456789", "orgnr-check-digit"),
        ("9908:123456789", "orgnr-check-digit"),
        ("991825827", "participant-icd"),
        ("192:991825827", "participant-icd"),
        ("0192:991 825 827", "participant-charset"),
        ("9915:" + "x" * 50, "participant-length"),
        ("", "participant-value"),
        ("other-scheme::0192:991825827", "participant-scheme"),
    ],
)
def test_invalid_participant_ids_name_the_check(text: str, rule: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        ParticipantId.parse(text) if text else ParticipantId(text)
    assert info.value.rule == rule
