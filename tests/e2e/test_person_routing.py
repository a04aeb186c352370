"""Letters to persons: the send job asks the KRR stand-in (and, for print, the population
register stand-in) over real sockets, decides by the vedtak/info rules, and stores the decision
with the message. The mailbox and print channels come later, so a decided letter ends FEIL with
a reason naming the channel and the rule; a register that is down makes the letter wait."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from access_point.app import Runtime, create_runtime
from access_point.messages import Client, Upload
from access_point.settings import Secret, Settings
from adapters.standins.krr import KrrRegister, KrrStandin
from adapters.standins.krr_generate import generate_register, provider_credentials
from adapters.standins.population import PopulationRegister, PopulationStandin, generate_people
from routing.krr import parse_person
from sbdh.errors import PermanentDeliveryError, TransientDeliveryError
from sbdh.model import BusinessMessage, JsonObject, eformidling_sbd
from sbdh.pki import DevPki, init_pki

TOKEN = "krr-token"
NOW = datetime.now(UTC).replace(microsecond=0)
SENDER = "991825827"
VEDTAK = "urn:no:difi:profile:digitalpost:vedtak:ver1.0"
INFO = "urn:no:difi:profile:digitalpost:info:ver1.0"
DIGITAL = "urn:no:difi:digitalpost:xsd:digital::digital"


@pytest.fixture(scope="module")
def register() -> list[dict[str, Any]]:
    providers = provider_credentials(NOW - timedelta(days=1))
    certificates = {orgnr: cred.certificate for orgnr, cred in providers.items()}
    return generate_register(80, seed=7, now=NOW, certificates=certificates)


def pick(records: list[dict[str, Any]], **wanted: bool) -> str:
    """The national id of the first person whose KRR answer has these properties."""
    for record in records:
        person = parse_person(record, now=NOW)
        if all(getattr(person, name) == value for name, value in wanted.items()):
            return str(record["personidentifikator"])
    raise AssertionError(f"no generated person is {wanted}")


@pytest.fixture
async def network(
    tmp_path: Path, dev_pki: DevPki, register: list[dict[str, Any]]
) -> AsyncIterator[tuple[Runtime, Client, KrrStandin, PopulationRegister]]:
    ids = [str(r["personidentifikator"]) for r in register]
    population = PopulationRegister(generate_people(len(ids), seed=3, national_ids=ids))
    async with (
        KrrStandin(KrrRegister(register, now=NOW), tokens=[TOKEN]) as krr,
        PopulationStandin(population) as folk,
    ):
        init_pki(tmp_path / "pki", dev_pki)
        settings = Settings(
            data_dir=tmp_path / "data",
            pki_dir=tmp_path / "pki",
            krr_url=krr.url,
            krr_token=Secret(TOKEN.encode()),
            population_url=folk.url,
        )
        runtime = await create_runtime(settings, run_workers=False)
        client, _ = await runtime.service.create_client("sak", [SENDER])
        try:
            yield runtime, client, krr, population
        finally:
            await runtime.close()


async def letter(runtime: Runtime, client: Client, person: str, process: str) -> str:
    message_id = str(uuid.uuid4())
    sbd = eformidling_sbd(
        sender=f"0192:{SENDER}",
        receiver=person,
        message=BusinessMessage(
            "digital",
            JsonObject.of({"sikkerhetsnivaa": 3, "hoveddokument": "vedtak.pdf", "tittel": "V"}),
        ),
        standard=DIGITAL,
        process=process,
        conversation_id=str(uuid.uuid4()),
        instance_identifier=message_id,
        created=NOW,
    )
    files = [Upload("vedtak.pdf", "application/pdf", b"%PDF-1.4 vedtak")]
    await runtime.service.create_and_send(client, sbd, files)
    return message_id


async def decisions(runtime: Runtime, client: Client, message_id: str) -> list[dict[str, Any]]:
    return await runtime.service.routing_history(client, message_id)


async def test_a_reserved_person_gets_a_vedtak_on_paper(network: Any, register: Any) -> None:
    runtime, client, _, _ = network
    person = pick(register, reserved=True, active=True)
    message_id = await letter(runtime, client, person, VEDTAK)
    with pytest.raises(PermanentDeliveryError, match="routed to print by rule"):
        await runtime.network.send(message_id)
    [decision] = await decisions(runtime, client, message_id)
    assert decision["channel"] == "PRINT"
    assert decision["rule"] == "PERSON-VEDTAK-RESERVED"
    # the stored decision never holds the national id in clear
    assert person not in str(decision)
    assert person[:6] in decision["receiver"]


async def test_a_mailbox_user_gets_it_digitally(network: Any, register: Any) -> None:
    runtime, client, _, _ = network
    person = pick(register, reserved=False, has_mailbox=True, notifiable=True)
    message_id = await letter(runtime, client, person, VEDTAK)
    with pytest.raises(PermanentDeliveryError, match="routed to digital mailbox"):
        await runtime.network.send(message_id)
    [decision] = await decisions(runtime, client, message_id)
    assert (decision["channel"], decision["rule"]) == ("DIGITAL_MAILBOX", "PERSON-VEDTAK-MAILBOX")


async def test_info_to_a_reserved_mailbox_user_is_not_stopped_by_the_reservation(
    network: Any, register: Any
) -> None:
    runtime, client, _, _ = network
    person = pick(register, reserved=True, active=True)
    message_id = await letter(runtime, client, person, INFO)
    with pytest.raises(PermanentDeliveryError):
        await runtime.network.send(message_id)
    [decision] = await decisions(runtime, client, message_id)
    # a reserved person has no mailbox in KRR's answer: info goes to print too, by the info rule
    assert decision["rule"] == "PERSON-INFO-NO-MAILBOX"


async def test_a_protected_address_is_never_printed(network: Any, register: Any) -> None:
    runtime, client, _, population = network
    person = pick(register, reserved=True, active=True)
    population.protect(person)
    message_id = await letter(runtime, client, person, VEDTAK)
    with pytest.raises(Exception, match="protected address"):
        await runtime.network.send(message_id)
    [decision] = await decisions(runtime, client, message_id)
    assert (decision["channel"], decision["rule"]) == ("NO_ROUTE", "PERSON-PRINT-PROTECTED")


async def test_krr_down_makes_the_letter_wait(network: Any, register: Any) -> None:
    runtime, client, krr, _ = network
    await krr.stop()
    person = pick(register, reserved=False, has_mailbox=True, notifiable=True)
    message_id = await letter(runtime, client, person, VEDTAK)
    with pytest.raises(TransientDeliveryError):
        await runtime.network.send(message_id)
    [decision] = await decisions(runtime, client, message_id)
    assert (decision["channel"], decision["rule"]) == ("WAIT", "PERSON-KRR-UNAVAILABLE")
