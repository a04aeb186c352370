"""``budstikke lookup``: the route a message would take, asked of real registries on loopback.

A local SML (DNS) and ELMA (the SMP) with one registered organisation, the KRR stand-in with a
small generated register and the population register stand-in. The command runs in-process
(:func:`access_point.cli.main`, in a thread so that the stand-ins keep answering on this
test's event loop), configured by environment variables only, as an operator runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from access_point import cli
from access_point.commands.demo_network import eformidling_registration
from adapters.standins.dns import SmlStandin
from adapters.standins.krr import KrrRegister, KrrStandin
from adapters.standins.krr_generate import generate_register, provider_credentials
from adapters.standins.population import PopulationRegister, PopulationStandin, generate_people
from elma.registry import MemoryRegistry
from elma.server import ElmaServer
from routing.krr import parse_person
from routing.sml import SML_ZONE_TEST
from sbdh.pki import DevPki, init_pki, issue_end_entity
from tests.e2e.smp_network import TOKEN, admin

REGISTERED = "974760673"
UNREGISTERED = "991825827"
AP_URL = "http://127.0.0.1:9/as4"
KRR_TOKEN = "krr-token"
NOW = datetime.now(UTC).replace(microsecond=0)


def _reserved(records: list[dict[str, Any]]) -> str:
    for record in records:
        person = parse_person(record, now=NOW)
        if person.reserved and person.active:
            return str(record["personidentifikator"])
    raise AssertionError("no reserved person generated")


@pytest.fixture
async def network(
    tmp_path: Path, dev_pki: DevPki, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, str]]:
    pki = tmp_path / "pki"
    init_pki(pki, dev_pki)
    providers = provider_credentials(NOW - timedelta(days=1))
    records = generate_register(
        40, seed=11, now=NOW, certificates={o: c.certificate for o, c in providers.items()}
    )
    ids = [str(r["personidentifikator"]) for r in records]
    people = PopulationRegister(generate_people(len(ids), seed=5, national_ids=ids))
    signer = issue_end_entity(dev_pki.ap_ca, "PNO000900", now=NOW, organisation="Local ELMA")
    async with (
        SmlStandin(zone=SML_ZONE_TEST) as sml,
        ElmaServer(MemoryRegistry(), signer, admin_token=TOKEN, sml=sml) as elma,
        KrrStandin(KrrRegister(records, now=NOW), tokens=[KRR_TOKEN]) as krr,
        PopulationStandin(people) as folk,
    ):
        pem = (pki / "access-points" / "PNO000002.pem").read_bytes()
        async with aiohttp.ClientSession() as session:
            status, answer, _ = await admin(
                session,
                elma.url,
                "PUT",
                f"iso6523-actorid-upis::0192:{REGISTERED}",
                body=eformidling_registration(pem, AP_URL),
            )
            assert status in (200, 201), answer
        for name in [n for n in os.environ if n.startswith("BUDSTIKKE_")]:
            monkeypatch.delenv(name)
        host, port = sml.address
        env = {
            "BUDSTIKKE_DATA_DIR": str(tmp_path / "data"),
            "BUDSTIKKE_PKI_DIR": str(pki),
            "BUDSTIKKE_SML_ZONE": SML_ZONE_TEST,
            "BUDSTIKKE_SML_NAMESERVER": f"{host}:{port}",
            "BUDSTIKKE_REGISTRY_ALLOW_HTTP": "true",
            "BUDSTIKKE_KRR_URL": krr.url,
            "BUDSTIKKE_KRR_TOKEN": KRR_TOKEN,
            "BUDSTIKKE_POPULATION_URL": folk.url,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield {"reserved": _reserved(records)}


async def _lookup(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    status = await asyncio.to_thread(cli.main, ["lookup", *args])
    return status, capsys.readouterr().out


async def test_a_registered_organisation_goes_over_as4(
    network: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = await _lookup(capsys, f"0192:{REGISTERED}")
    assert status == 0, out
    assert "AS4" in out
    assert "ORG-SMP" in out
    assert AP_URL in out
    assert "PNO000002" in out  # the receiving access point's certificate subject

    status, out = await _lookup(capsys, REGISTERED, "--json")
    assert status == 0
    answer = json.loads(out)
    assert {"channel", "endpoint", "certificate", "reason", "registries", "rule"} <= set(answer)
    assert (answer["channel"], answer["rule"], answer["endpoint"]) == ("AS4", "ORG-SMP", AP_URL)
    assert "PNO000002" in answer["certificate"]
    assert answer["registries"]["route"]["source"] == "smp"


async def test_an_unregistered_organisation_has_no_route(
    network: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = await _lookup(capsys, f"0192:{UNREGISTERED}", "--json")
    assert status == 2, out
    answer = json.loads(out)
    assert (answer["channel"], answer["rule"]) == ("NO_ROUTE", "ORG-NONE")
    assert answer["endpoint"] is None


async def test_an_organisation_hosted_here_is_local(
    network: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUDSTIKKE_ORGANISATIONS", REGISTERED)
    status, out = await _lookup(capsys, REGISTERED, "--json")
    assert status == 0
    assert (json.loads(out)["channel"], json.loads(out)["rule"]) == ("LOCAL", "ORG-HOSTED")


async def test_a_reserved_person_gets_a_vedtak_on_paper(
    network: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    person = network["reserved"]
    status, out = await _lookup(capsys, person)
    assert status == 0, out
    assert "PRINT" in out
    assert "PERSON-VEDTAK-RESERVED" in out
    assert person not in out  # masked, as in the stored decision

    status, out = await _lookup(capsys, person, "--json")
    answer = json.loads(out)
    assert (answer["channel"], answer["rule"]) == ("PRINT", "PERSON-VEDTAK-RESERVED")
    assert answer["registries"]["krr.reservation"] is not None or answer["registries"]


async def test_a_person_without_a_population_register_is_not_printed(
    network: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BUDSTIKKE_POPULATION_URL")
    status, out = await _lookup(capsys, network["reserved"], "--json")
    answer = json.loads(out)
    assert answer["channel"] in ("NO_ROUTE", "WAIT"), answer
    assert status == {"NO_ROUTE": 2, "WAIT": 3}[answer["channel"]]
    assert answer["rule"].startswith("PERSON-")
