"""The population and entity registers' answers, parsed without I/O."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from routing.errors import RegistryResponseError
from routing.registers import (
    EntityDeleted,
    EntityNotFound,
    OrganisationForm,
    PostalAddress,
    parse_entity_record,
    parse_person_record,
)
from sbdh.errors import NotFound, PermanentDeliveryError
from sbdh.identifiers import NationalId, OrganisationNumber

NID = "10810691072"  # a synthetic national id (month + 80)
OTHER_NID = "56926913625"
ORGNR = "974760673"
TODAY = date(2025, 6, 1)


def person(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "personIdentifikator": NID,
        "navn": {"fornavn": "Kari", "mellomnavn": "Marie", "etternavn": "Nordmann"},
        "postadresse": {
            "adresselinje": ["c/o Hansen", "Storgata 12 H0201"],
            "postnummer": "0150",
            "poststed": "OSLO",
            "landkode": "NO",
        },
    }
    body.update(changes)
    return body


def entity(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "organisasjonsnummer": ORGNR,
        "navn": "REGISTERENHETEN I BRØNNØYSUND",
        "organisasjonsform": {"kode": "ORGL", "beskrivelse": "Organisasjonsledd"},
        "postadresse": {
            "adresse": ["Postboks 900"],
            "postnummer": "8910",
            "poststed": "BRØNNØYSUND",
            "land": "Norge",
            "landkode": "NO",
        },
        "forretningsadresse": {
            "adresse": ["Havnegata 48"],
            "postnummer": "8900",
            "poststed": "BRØNNØYSUND",
            "land": "Norge",
            "landkode": "NO",
        },
    }
    body.update(changes)
    return body


# ---------------------------------------------------------------------- population register


def test_a_person_with_an_address() -> None:
    record = parse_person_record(json.dumps(person()).encode(), requested=NationalId(NID))
    assert record.national_id == NationalId(NID)
    assert (record.first_name, record.middle_name, record.last_name) == (
        "Kari",
        "Marie",
        "Nordmann",
    )
    assert record.full_name == "Kari Marie Nordmann"
    assert record.address_protected is False
    assert record.address == PostalAddress(
        lines=("c/o Hansen", "Storgata 12 H0201"),
        postcode="0150",
        city="OSLO",
        country_code="NO",
    )
    assert record.address.norwegian


def test_a_protected_address_is_null_and_flagged() -> None:
    record = parse_person_record(person(postadresse=None))
    assert record.address is None
    assert record.address_protected is True


@pytest.mark.parametrize("grade", ["fortrolig", "strengtFortrolig"])
def test_a_protected_grading_withholds_an_address_the_register_sent(grade: str) -> None:
    record = parse_person_record(person(adressebeskyttelse=grade))
    assert record.address is None
    assert record.address_protected is True


@pytest.mark.parametrize("grade", ["ugradert", "klientadresse"])
def test_an_unprotected_grading_keeps_the_address(grade: str) -> None:
    record = parse_person_record(person(adressebeskyttelse=grade))
    assert record.address is not None
    assert record.address_protected is False


def test_an_address_abroad_needs_no_norwegian_postcode() -> None:
    abroad = {
        "adresselinje": ["Hauptstraße 7"],
        "postnummer": "10827",
        "poststed": "BERLIN",
        "landkode": "de",
    }
    record = parse_person_record(person(postadresse=abroad))
    assert record.address is not None
    assert record.address.country_code == "DE"
    assert not record.address.norwegian


def test_unknown_fields_are_ignored_and_a_missing_middle_name_is_none() -> None:
    body = person(navn={"fornavn": "Ola", "etternavn": "Nordmann", "forkortetNavn": "X"})
    body["sivilstand"] = "gift"
    record = parse_person_record(body)
    assert record.middle_name is None
    assert record.full_name == "Ola Nordmann"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"personIdentifikator": None}, "personIdentifikator"),
        ({"personIdentifikator": "10810691073"}, "personIdentifikator"),
        ({"navn": None}, "navn"),
        ({"navn": {"fornavn": "Kari"}}, "navn.etternavn"),
        ({"navn": {"fornavn": 7, "etternavn": "N"}}, "navn.fornavn"),
        ({"postadresse": "Storgata 1"}, "postadresse"),
        (
            {
                "postadresse": {
                    "adresselinje": ["Storgata 1"],
                    "postnummer": "150",
                    "poststed": "OSLO",
                }
            },
            "postadresse.postnummer",
        ),
        (
            {"postadresse": {"adresselinje": ["Storgata 1"], "postnummer": "0150"}},
            "postadresse.poststed",
        ),
        (
            {
                "postadresse": {
                    "adresselinje": "Storgata 1",
                    "postnummer": "0150",
                    "poststed": "OSLO",
                }
            },
            "postadresse.adresselinje",
        ),
        (
            {
                "postadresse": {
                    "adresselinje": ["x"],
                    "postnummer": "0150",
                    "poststed": "OSLO",
                    "landkode": "NOR",
                }
            },
            "postadresse.landkode",
        ),
        ({"adressebeskyttelse": "hemmelig"}, "adressebeskyttelse"),
    ],
)
def test_a_malformed_answer_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(RegistryResponseError) as caught:
        parse_person_record(person(**changes))
    assert caught.value.field == field
    assert isinstance(caught.value, PermanentDeliveryError)
    assert NID not in str(caught.value)


def test_an_answer_that_is_not_json_is_refused() -> None:
    with pytest.raises(RegistryResponseError) as caught:
        parse_person_record(b"<html>maintenance</html>")
    assert caught.value.field == "$"
    with pytest.raises(RegistryResponseError):
        parse_person_record(b"[1, 2]")


def test_an_answer_about_someone_else_is_refused_without_naming_either() -> None:
    with pytest.raises(RegistryResponseError, match="not the person asked for") as caught:
        parse_person_record(person(), requested=NationalId(OTHER_NID))
    assert NID not in str(caught.value)
    assert OTHER_NID not in str(caught.value)


def test_a_person_record_never_shows_the_id_or_address_in_its_repr() -> None:
    record = parse_person_record(person())
    text = repr(record) + repr(record.address) + str(record)
    assert NID not in text
    assert "Storgata" not in text
    assert "108106*****" in repr(record)


# ---------------------------------------------------------------------- entity register


def test_an_entity_with_both_addresses_returns_to_its_postal_address() -> None:
    record = parse_entity_record(
        json.dumps(entity()).encode(), today=TODAY, requested=OrganisationNumber(ORGNR)
    )
    assert record.organisation_number == OrganisationNumber(ORGNR)
    assert record.name == "REGISTERENHETEN I BRØNNØYSUND"
    assert record.form == OrganisationForm("ORGL", "Organisasjonsledd")
    assert record.return_address is record.postal_address
    assert record.return_address is not None
    assert record.return_address.lines == ("Postboks 900",)
    assert record.return_address.country == "Norge"
    assert record.business_address is not None
    assert record.business_address.postcode == "8900"
    assert record.subunit is False


def test_without_a_postal_address_the_return_address_is_the_business_address() -> None:
    record = parse_entity_record(entity(postadresse=None), today=TODAY)
    assert record.postal_address is None
    assert record.return_address == record.business_address
    assert record.return_address is not None
    assert record.return_address.lines == ("Havnegata 48",)


def test_a_subunit_may_give_its_address_as_beliggenhetsadresse() -> None:
    body = entity(postadresse=None, forretningsadresse=None)
    body["beliggenhetsadresse"] = {
        "adresse": ["Kaia 1"],
        "postnummer": "6800",
        "poststed": "FØRDE",
        "landkode": "NO",
    }
    record = parse_entity_record(body, today=TODAY, subunit=True)
    assert record.subunit is True
    assert record.return_address is not None
    assert record.return_address.city == "FØRDE"
    # a main unit has no beliggenhetsadresse: not read there
    assert parse_entity_record(body, today=TODAY).return_address is None


@pytest.mark.parametrize("deleted", ["2025-05-31", "2025-06-01", "1999-01-01"])
def test_a_slettedato_that_has_come_means_not_found(deleted: str) -> None:
    with pytest.raises(EntityDeleted) as caught:
        parse_entity_record(entity(slettedato=deleted), today=TODAY)
    assert caught.value.deleted_on == date.fromisoformat(deleted)
    assert isinstance(caught.value, EntityNotFound)
    assert isinstance(caught.value, NotFound)
    assert caught.value.http_status == 404


def test_a_slettedato_still_to_come_keeps_the_entity() -> None:
    record = parse_entity_record(entity(slettedato="2025-06-02"), today=TODAY)
    assert record.deleted_on == date(2025, 6, 2)


def test_unknown_entity_fields_are_ignored() -> None:
    body = entity(naeringskode1={"kode": "84.110"}, antallAnsatte=440, konkurs=False)
    body["_links"] = {"self": {"href": "https://data.brreg.no/..."}}
    assert parse_entity_record(body, today=TODAY).name == "REGISTERENHETEN I BRØNNØYSUND"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"organisasjonsnummer": "974760674"}, "organisasjonsnummer"),
        ({"organisasjonsnummer": 974760673}, "organisasjonsnummer"),
        ({"navn": ""}, "navn"),
        ({"organisasjonsform": {"beskrivelse": "Aksjeselskap"}}, "organisasjonsform.kode"),
        ({"organisasjonsform": "AS"}, "organisasjonsform"),
        ({"slettedato": "01.02.2020"}, "slettedato"),
        (
            {
                "postadresse": {
                    "adresse": ["Postboks 900"],
                    "postnummer": 8910,
                    "poststed": "BRØNNØYSUND",
                }
            },
            "postadresse.postnummer",
        ),
        (
            {
                "forretningsadresse": {
                    "adresse": [None],
                    "postnummer": "8900",
                    "poststed": "BRØNNØYSUND",
                }
            },
            "forretningsadresse.adresse",
        ),
    ],
)
def test_a_malformed_entity_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(RegistryResponseError) as caught:
        parse_entity_record(entity(**changes), today=TODAY)
    assert caught.value.field == field


def test_an_answer_about_another_unit_is_refused() -> None:
    with pytest.raises(RegistryResponseError) as caught:
        parse_entity_record(entity(), today=TODAY, requested=OrganisationNumber("991825827"))
    assert caught.value.field == "organisasjonsnummer"
