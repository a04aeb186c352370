"""The population and entity register clients against their stand-ins, over real sockets.

Each test starts the stand-in on 127.0.0.1, port 0, and talks to it with the real client
through a real guard (on a fake clock where the breaker's timing matters).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from adapters.standins.entities import EntityMix, EntityRegister, EntityRegisterStandin
from adapters.standins.entities import generate_entities as make_entities
from adapters.standins.population import (
    PopulationMix,
    PopulationRegister,
    PopulationStandin,
    generate_people,
)
from routing.errors import RegistryRefused, RegistryResponseError, RegistryUnavailable
from routing.guard import RegistryCircuitOpen, RegistryGuard, RegistryTimeout
from routing.registers import (
    ENTITY_POLICY,
    POPULATION_POLICY,
    EntityDeleted,
    EntityNotFound,
    EntityRecord,
    EntityRegisterClient,
    EntityRemoved,
    PersonNotFound,
    PersonRecord,
    PopulationRegisterClient,
)
from sbdh.identifiers import NationalId, OrganisationNumber

TOKEN = "population-token"
UNKNOWN_NID = "10810691072"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def population_guard(clock: Clock, **changes: Any) -> RegistryGuard[NationalId, PersonRecord]:
    policy = replace(POPULATION_POLICY, **({"timeout": 2.0} | changes))
    return RegistryGuard(policy, clock=clock, sleep=no_wait)


def entity_guard(clock: Clock, **changes: Any) -> RegistryGuard[OrganisationNumber, EntityRecord]:
    policy = replace(ENTITY_POLICY, **({"timeout": 2.0} | changes))
    return RegistryGuard(policy, clock=clock, sleep=no_wait)


@pytest.fixture
def people() -> list[dict[str, Any]]:
    plain = generate_people(20, seed=11, mix=PopulationMix(protected=0.0))
    protected = generate_people(2, seed=12, mix=PopulationMix(protected=1.0))
    return plain + protected


@pytest.fixture
async def population(people: list[dict[str, Any]]) -> AsyncIterator[PopulationStandin]:
    async with PopulationStandin(PopulationRegister(people), tokens=[TOKEN]) as standin:
        yield standin


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def population_client(
    population: PopulationStandin, clock: Clock
) -> AsyncIterator[PopulationRegisterClient]:
    async with PopulationRegisterClient(
        population.url, token=TOKEN, guard=population_guard(clock)
    ) as client:
        yield client


# ---------------------------------------------------------------------- population register


async def test_a_person_is_looked_up_and_then_served_from_the_cache(
    population: PopulationStandin,
    population_client: PopulationRegisterClient,
    people: list[dict[str, Any]],
) -> None:
    expected = people[0]
    record = await population_client.lookup(expected["personIdentifikator"])
    assert record.national_id == NationalId(expected["personIdentifikator"])
    assert record.first_name == expected["navn"]["fornavn"]
    assert record.last_name == expected["navn"]["etternavn"]
    assert record.address_protected is False
    assert record.address is not None
    assert list(record.address.lines) == expected["postadresse"]["adresselinje"]
    assert record.address.postcode == expected["postadresse"]["postnummer"]
    assert record.address.city == expected["postadresse"]["poststed"]
    again = await population_client.lookup(NationalId(expected["personIdentifikator"]))
    assert again == record
    assert population.register.requests == 1


async def test_a_protected_person_comes_without_an_address(
    population_client: PopulationRegisterClient, people: list[dict[str, Any]]
) -> None:
    protected = [p for p in people if p.get("adressebeskyttelse")]
    assert protected
    for person in protected:
        record = await population_client.lookup(person["personIdentifikator"])
        assert record.address is None
        assert record.address_protected is True


async def test_an_unknown_person_is_not_found_and_that_is_remembered(
    population: PopulationStandin, population_client: PopulationRegisterClient
) -> None:
    for _ in range(3):
        with pytest.raises(PersonNotFound):
            await population_client.lookup(UNKNOWN_NID)
    assert population.register.requests == 1


async def test_concurrent_lookups_of_one_person_make_one_request(
    population: PopulationStandin,
    population_client: PopulationRegisterClient,
    people: list[dict[str, Any]],
) -> None:
    population.register.delay = 0.05
    nid = people[1]["personIdentifikator"]
    records = await asyncio.gather(*(population_client.lookup(nid) for _ in range(20)))
    assert len({r.national_id for r in records}) == 1
    assert population.register.requests == 1


async def test_a_wrong_token_is_a_configuration_error_not_retried(
    population: PopulationStandin, clock: Clock, people: list[dict[str, Any]]
) -> None:
    async with PopulationRegisterClient(
        population.url, token="stolen", guard=population_guard(clock)
    ) as client:
        with pytest.raises(RegistryRefused) as caught:
            await client.lookup(people[0]["personIdentifikator"])
    assert caught.value.status == 401
    assert population.register.requests == 1


async def test_an_outage_is_retried_opens_the_breaker_and_recovers(
    population: PopulationStandin, clock: Clock, people: list[dict[str, Any]]
) -> None:
    guard = population_guard(clock, retries=2, breaker_threshold=2, breaker_reset=30)
    nid = people[2]["personIdentifikator"]
    population.register.outage = 503
    async with PopulationRegisterClient(population.url, token=TOKEN, guard=guard) as client:
        for _ in range(2):
            with pytest.raises(RegistryUnavailable, match="HTTP 503"):
                await client.lookup(nid)
        assert population.register.requests == 6  # two lookups of three attempts each
        with pytest.raises(RegistryCircuitOpen) as refused:
            await client.lookup(nid)
        assert refused.value.retry_after == pytest.approx(30)
        assert population.register.requests == 6  # refused without a request

        population.register.outage = None
        clock.now += 30
        record = await client.lookup(nid)
        assert record.national_id == NationalId(nid)
        assert population.register.requests == 7
        assert guard.stats().breaker_state == "closed"


async def test_a_register_that_does_not_answer_in_time_is_a_timeout(
    population: PopulationStandin, clock: Clock, people: list[dict[str, Any]]
) -> None:
    population.register.delay = 1.0
    guard = population_guard(clock, timeout=0.1, retries=1)
    async with PopulationRegisterClient(population.url, token=TOKEN, guard=guard) as client:
        with pytest.raises(RegistryTimeout):
            await client.lookup(people[3]["personIdentifikator"])


async def test_a_register_that_is_not_there_is_unavailable(clock: Clock) -> None:
    standin = PopulationStandin(PopulationRegister())
    url = await standin.start()
    await standin.stop()  # the port is closed now
    guard = population_guard(clock, retries=0)
    async with PopulationRegisterClient(url, guard=guard) as client:
        with pytest.raises(RegistryUnavailable, match="could not be reached") as caught:
            await client.lookup(UNKNOWN_NID)
    assert UNKNOWN_NID not in str(caught.value)


async def test_a_malformed_record_is_a_response_error_naming_the_field(
    population: PopulationStandin, population_client: PopulationRegisterClient
) -> None:
    broken = generate_people(1, seed=77, mix=PopulationMix(protected=0.0, abroad=0.0))[0]
    broken["postadresse"]["postnummer"] = "15O"
    population.register.put(broken, check=False)
    with pytest.raises(RegistryResponseError) as caught:
        await population_client.lookup(broken["personIdentifikator"])
    assert caught.value.field == "postadresse.postnummer"
    assert broken["personIdentifikator"] not in str(caught.value)


async def test_no_national_id_or_address_reaches_the_log(
    population: PopulationStandin,
    clock: Clock,
    people: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    guard = population_guard(clock, retries=0, breaker_threshold=1)
    async with PopulationRegisterClient(population.url, token=TOKEN, guard=guard) as client:
        record = await client.lookup(people[0]["personIdentifikator"])
        logging.getLogger("test").info("looked up %r at %r", record, record.address)
        with pytest.raises(PersonNotFound):
            await client.lookup(UNKNOWN_NID)
        population.register.outage = 500
        with pytest.raises(RegistryUnavailable) as failed:
            await client.lookup(people[1]["personIdentifikator"])
        logging.getLogger("test").warning("lookup failed: %s", failed.value)
    assert caplog.records  # the lookups did log
    assert "108106*****" in caplog.text  # masked, the way NationalId.masked() does it
    for person in people[:2]:
        assert person["personIdentifikator"] not in caplog.text
        assert person["postadresse"]["adresselinje"][0] not in caplog.text
    assert UNKNOWN_NID not in caplog.text


# ---------------------------------------------------------------------- entity register


@pytest.fixture
def entity_data() -> dict[str, Any]:
    return make_entities(60, seed=21, mix=EntityMix(subunits=0.3, deleted=0.0, removed=0.0))


@pytest.fixture
async def entities(entity_data: dict[str, Any]) -> AsyncIterator[EntityRegisterStandin]:
    async with EntityRegisterStandin(EntityRegister.from_json(entity_data)) as standin:
        yield standin


@pytest.fixture
async def entity_client(
    entities: EntityRegisterStandin, clock: Clock
) -> AsyncIterator[EntityRegisterClient]:
    async with EntityRegisterClient(entities.url, guard=entity_guard(clock)) as client:
        yield client


async def test_a_main_unit_is_found_with_its_return_address(
    entities: EntityRegisterStandin,
    entity_client: EntityRegisterClient,
    entity_data: dict[str, Any],
) -> None:
    unit = next(u for u in entity_data["enheter"] if "postadresse" in u)
    record = await entity_client.lookup(unit["organisasjonsnummer"])
    assert record.name == unit["navn"]
    assert record.form is not None
    assert record.form.code == unit["organisasjonsform"]["kode"]
    assert record.subunit is False
    assert record.return_address is not None
    assert list(record.return_address.lines) == unit["postadresse"]["adresse"]
    assert entities.register.requests == 1


async def test_a_unit_without_a_postal_address_returns_to_its_business_address(
    entity_client: EntityRegisterClient, entity_data: dict[str, Any]
) -> None:
    unit = next(u for u in entity_data["enheter"] if "postadresse" not in u)
    record = await entity_client.lookup(unit["organisasjonsnummer"])
    assert record.postal_address is None
    assert record.return_address is not None
    assert record.return_address.postcode == unit["forretningsadresse"]["postnummer"]


async def test_a_subunit_is_found_under_underenheter_after_a_404(
    entities: EntityRegisterStandin,
    entity_client: EntityRegisterClient,
    entity_data: dict[str, Any],
) -> None:
    subunit = entity_data["underenheter"][0]
    record = await entity_client.lookup(subunit["organisasjonsnummer"])
    assert record.subunit is True
    assert record.name == subunit["navn"]
    assert entities.register.requests == 2  # enheter: 404, then underenheter
    await entity_client.lookup(subunit["organisasjonsnummer"])
    assert entities.register.requests == 2


async def test_unknown_removed_and_deleted_units_are_not_found(
    entities: EntityRegisterStandin,
    entity_client: EntityRegisterClient,
    entity_data: dict[str, Any],
) -> None:
    with pytest.raises(EntityNotFound) as unknown:
        await entity_client.lookup("974760673")
    assert type(unknown.value) is EntityNotFound
    assert entities.register.requests == 2  # both paths asked

    removed = entity_data["enheter"][0]["organisasjonsnummer"]
    entities.register.removed.add(removed)
    with pytest.raises(EntityRemoved):
        await entity_client.lookup(removed)

    deleted = dict(entity_data["enheter"][1], slettedato="2020-03-01")
    entities.register.put(deleted)
    with pytest.raises(EntityDeleted) as gone:
        await entity_client.lookup(deleted["organisasjonsnummer"])
    assert str(gone.value.deleted_on) == "2020-03-01"


async def test_an_entity_register_outage_is_unavailable(
    entities: EntityRegisterStandin, clock: Clock, entity_data: dict[str, Any]
) -> None:
    entities.register.outage = 502
    guard = entity_guard(clock, retries=1)
    async with EntityRegisterClient(entities.url, guard=guard) as client:
        with pytest.raises(RegistryUnavailable, match="HTTP 502"):
            await client.lookup(entity_data["enheter"][0]["organisasjonsnummer"])
    assert entities.register.requests == 2


async def test_a_generated_register_from_a_file_answers_every_unit(
    tmp_path: Path, clock: Clock
) -> None:
    data = make_entities(150, seed=5)
    EntityRegister.from_json(data).save(tmp_path / "entities.json")
    register = EntityRegister.load(tmp_path / "entities.json")
    numbers = [u["organisasjonsnummer"] for u in data["enheter"] + data["underenheter"]]
    async with (
        EntityRegisterStandin(register) as standin,
        EntityRegisterClient(standin.url, guard=entity_guard(clock)) as client,
    ):
        outcomes = await asyncio.gather(
            *(client.lookup(n) for n in numbers + data["fjernet"]), return_exceptions=True
        )
    found = [o for o in outcomes if isinstance(o, EntityRecord)]
    deleted = [o for o in outcomes if isinstance(o, EntityDeleted)]
    removed = [o for o in outcomes if isinstance(o, EntityRemoved)]
    assert len(found) + len(deleted) + len(removed) == len(outcomes)
    assert len(removed) == len(data["fjernet"])
    assert len(deleted) == sum(
        1 for u in data["enheter"] + data["underenheter"] if "slettedato" in u
    )
    assert all(r.return_address is not None for r in found)
