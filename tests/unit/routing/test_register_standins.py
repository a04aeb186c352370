"""The population and entity register stand-ins' data: generators and what they give out."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from adapters.standins.entities import (
    FIELDS,
    EntityMix,
    EntityRegister,
    generate_entities,
)
from adapters.standins.population import (
    POSTCODES,
    PopulationMix,
    PopulationRegister,
    generate_people,
)
from routing.errors import RegistryResponseError
from routing.registers import EntityDeleted, parse_entity_record, parse_person_record
from sbdh.identifiers import NationalId, OrganisationNumber

# ---------------------------------------------------------------------- population


def test_the_same_seed_gives_the_same_people_and_another_seed_others() -> None:
    assert generate_people(50, seed=7) == generate_people(50, seed=7)
    assert generate_people(50, seed=7) != generate_people(50, seed=8)


def test_generated_people_are_valid_distinct_and_realistic() -> None:
    people = generate_people(2000, seed=1)
    ids = [p["personIdentifikator"] for p in people]
    assert len(set(ids)) == 2000
    assert all(NationalId(i).synthetic for i in ids)
    postcodes = {code for code, _ in POSTCODES}
    norwegian = [p["postadresse"] for p in people if p["postadresse"]["landkode"] == "NO"]
    assert all(a["postnummer"] in postcodes for a in norwegian)
    assert all(len(a["postnummer"]) == 4 and a["postnummer"].isdigit() for a in norwegian)
    grades = Counter(p.get("adressebeskyttelse") for p in people)
    # about 5 % protected, both grades present; a few abroad; some middle names
    assert 50 <= grades["fortrolig"] + grades["strengtFortrolig"] <= 150
    assert grades["fortrolig"] > 0
    assert grades["strengtFortrolig"] > 0
    assert 20 <= len(people) - len(norwegian) <= 120
    assert any(p["navn"]["mellomnavn"] for p in people)
    # every record is one the client accepts
    for p in people:
        parse_person_record(p)


def test_generated_people_can_reuse_the_ids_of_another_register() -> None:
    ids = [p["personIdentifikator"] for p in generate_people(3, seed=99)]
    people = generate_people(5, seed=1, national_ids=ids)
    assert [p["personIdentifikator"] for p in people[:3]] == ids
    assert len({p["personIdentifikator"] for p in people}) == 5


def test_the_register_gives_out_exactly_the_protocol_fields_and_withholds_protected() -> None:
    mix = PopulationMix(protected=1.0, strictly_protected=1.0)
    protected, *_ = generate_people(1, seed=3, mix=mix)
    plain, *_ = generate_people(1, seed=4, mix=PopulationMix(protected=0.0))
    register = PopulationRegister([protected, plain])
    hidden = register.answer(protected["personIdentifikator"])
    shown = register.answer(plain["personIdentifikator"])
    assert hidden is not None
    assert shown is not None
    assert set(hidden) == set(shown) == {"personIdentifikator", "navn", "postadresse"}
    assert hidden["postadresse"] is None
    assert shown["postadresse"] == plain["postadresse"]
    assert register.answer("10810691072") is None


def test_protecting_a_person_at_runtime_withholds_the_address() -> None:
    person = generate_people(1, seed=5, mix=PopulationMix(protected=0.0))[0]
    register = PopulationRegister([person])
    register.protect(person["personIdentifikator"], "fortrolig")
    answer = register.answer(person["personIdentifikator"])
    assert answer is not None
    assert answer["postadresse"] is None


def test_the_register_refuses_a_record_the_client_would_refuse() -> None:
    person = generate_people(1, seed=5)[0]
    person["postadresse"]["postnummer"] = "12"
    register = PopulationRegister()
    with pytest.raises(RegistryResponseError):
        register.put(person)
    register.put(person, check=False)  # a test may plant it on purpose
    assert person["personIdentifikator"] in register


def test_a_population_file_round_trips(tmp_path: Path) -> None:
    register = PopulationRegister(generate_people(20, seed=2))
    register.save(tmp_path / "people.json")
    loaded = PopulationRegister.load(tmp_path / "people.json")
    assert loaded.records() == register.records()


# ---------------------------------------------------------------------- entities


def test_the_same_seed_gives_the_same_register() -> None:
    assert generate_entities(60, seed=4) == generate_entities(60, seed=4)
    assert generate_entities(60, seed=4) != generate_entities(60, seed=5)


def test_generated_entities_are_valid_and_varied() -> None:
    data = generate_entities(1000, seed=1)
    units, subunits, removed = data["enheter"], data["underenheter"], data["fjernet"]
    assert len(units) + len(subunits) + len(removed) == 1000
    numbers = [u["organisasjonsnummer"] for u in units + subunits] + removed
    assert len(set(numbers)) == 1000
    for number in numbers:
        OrganisationNumber(number)
    assert 150 <= len(subunits) <= 350
    assert {s["organisasjonsform"]["kode"] for s in subunits} <= {"BEDR", "AAFY"}
    forms = Counter(u["organisasjonsform"]["kode"] for u in units)
    assert {"AS", "ENK", "KOMM"} <= set(forms)
    assert forms["AS"] > forms["KOMM"]
    with_postbox = [u for u in units if "postadresse" in u]
    assert 0.3 < len(with_postbox) / len(units) < 0.5
    assert all(u["postadresse"]["adresse"][0].startswith("Postboks") for u in with_postbox)
    deleted = [u for u in units + subunits if "slettedato" in u]
    assert deleted
    assert removed
    today = date(2025, 1, 1)
    for record in units:
        if "slettedato" in record:
            with pytest.raises(EntityDeleted):
                parse_entity_record(record, today=today)
        else:
            parsed = parse_entity_record(record, today=today)
            assert parsed.return_address is not None


def test_the_entity_register_answers_by_path_and_gives_out_only_protocol_fields() -> None:
    data = generate_entities(200, seed=2, mix=EntityMix(deleted=0.0))
    unit = data["enheter"][0] | {"naeringskode1": {"kode": "62.010"}}
    subunit = data["underenheter"][0]
    register = EntityRegister([unit], [subunit], removed=data["fjernet"][:1] or ["974760673"])
    status, body = register.answer(unit["organisasjonsnummer"])
    assert status == 200
    assert body is not None
    assert set(body) <= set(FIELDS)
    assert "naeringskode1" not in body
    assert register.answer(unit["organisasjonsnummer"], subunit=True) == (404, None)
    assert register.answer(subunit["organisasjonsnummer"])[0] == 404
    assert register.answer(subunit["organisasjonsnummer"], subunit=True)[0] == 200
    gone = next(iter(register.removed))
    assert register.answer(gone) == (410, None)
    assert register.answer(gone, subunit=True) == (410, None)


def test_an_entity_file_round_trips(tmp_path: Path) -> None:
    register = EntityRegister.from_json(generate_entities(40, seed=9))
    register.save(tmp_path / "entities.json")
    assert EntityRegister.load(tmp_path / "entities.json").as_json() == register.as_json()


def test_the_command_lines_write_generated_registers(tmp_path: Path) -> None:
    from adapters.standins import entities, population

    assert (
        population.main(["--generate", "7", "--seed", "3", "--out", str(tmp_path / "p.json")]) == 0
    )
    assert len(PopulationRegister.load(tmp_path / "p.json")) == 7
    assert entities.main(["--generate", "9", "--seed", "3", "--out", str(tmp_path / "e.json")]) == 0
    data = EntityRegister.load(tmp_path / "e.json").as_json()
    assert len(data["enheter"]) + len(data["underenheter"]) + len(data["fjernet"]) == 9
