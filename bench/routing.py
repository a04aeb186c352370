"""Routing benchmark: run by hand, prints figures.

    .venv/bin/python bench/routing.py                       # 300 organisations, 100 000 persons
    .venv/bin/python bench/routing.py --persons 20000 --participants 100

(Run as a script, this file's folder would come first on ``sys.path`` and the file itself would
hide the :mod:`routing` package; the first lines below take that folder off again.)

The registries run in a process of their own, all on 127.0.0.1: the local SML (DNS), ELMA (the
SMP, signed answers; ``--participants`` organisations registered through its admin API, which
publishes them to the SML), the KRR stand-in with a generated register of ``--persons`` persons
(two provider certificates shared by all, as :func:`generate_register` does) and the population
register stand-in with an entry for each of them. This process asks, with the code the send job
uses:

SML+SMP cold     a new resolver (``load_routes``: new SML and SMP clients, empty caches), each
                 registered participant once: DNS U-NAPTR, the SMP's signed answer, its
                 signature and the AP certificate checked. Sequential, and ``--concurrency`` at
                 a time.
SML+SMP cached   the same :class:`NetworkRoutes` (its :class:`RegistryGuard`: the answers
                 cached) asked ``--cached`` times over the same participants.
persons          every person decided for a vedtak: KRR asked in batches of 1000 ids per
                 request (the KRR client's batch lookup, ``--krr-concurrency`` requests at a
                 time), :func:`routing.decide_person` for each, the population register asked
                 (``--population-concurrency`` at a time) only for those
                 :func:`needs_print_address` says. The total time is the figure to watch
                 (target: under 60 s for 100 000).

Printed: one row per measurement, with operations, seconds and operations per second, and the
persons' channels/rules as a count under the table.
"""

# ruff: noqa: E402 - the imports follow the sys.path repair below

from __future__ import annotations

import sys
from pathlib import Path

# run as ``python bench/routing.py``: bench/ is sys.path[0] and this file would be ``routing``
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH]
if "routing" in sys.modules and getattr(sys.modules["routing"], "__file__", "") == __file__:
    del sys.modules["routing"]

import argparse
import asyncio
import multiprocessing
import random
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from urllib.parse import quote

import aiohttp

from access_point.app import load_ap_trust, load_routes
from access_point.commands.demo_network import eformidling_registration
from access_point.commands.lookup import ORG_DOCUMENT_TYPE, ORG_PROCESS
from access_point.directory import Directory
from access_point.routes import NetworkRoutes
from access_point.settings import Settings
from adapters.standins.dns import SmlStandin
from adapters.standins.entities import generate_organisation_number
from adapters.standins.krr import KrrRegister, KrrStandin
from adapters.standins.krr_generate import generate_register, provider_credentials
from adapters.standins.population import PopulationRegister, PopulationStandin, generate_people
from elma.registry import MemoryRegistry
from elma.server import ADMIN_PREFIX, ElmaServer
from routing.decision import RoutingDecision
from routing.krr import Person
from routing.krr_client import KrrClient
from routing.policy import (
    LetterKind,
    NotRegistered,
    Registry,
    Unavailable,
    decide_person,
    needs_print_address,
    registry_outcome,
)
from routing.registers import PersonRecord, PopulationRegisterClient
from routing.sml import SML_ZONE_TEST
from sbdh.errors import BusError
from sbdh.identifiers import NationalId
from sbdh.pki import DevPki, generate_dev_pki, init_pki, issue_end_entity

ADMIN_TOKEN = "bench-admin-token"
KRR_TOKEN = "bench-krr-token"
AP_URL = "http://127.0.0.1:9/as4"


@dataclass(frozen=True)
class Servers:
    sml: tuple[str, int]
    elma_url: str
    krr_url: str
    population_url: str
    national_ids: list[str]


# -- the registries' process ---------------------------------------------------------------------


def _registries(conn: Connection, dev_pki: DevPki, persons: int, now: datetime) -> None:
    """The child: generate the registers, serve them, send the addresses, wait to be told."""
    providers = provider_credentials(now - timedelta(days=1))
    records = generate_register(
        persons, seed=1, now=now, certificates={o: c.certificate for o, c in providers.items()}
    )
    ids = [str(r["personidentifikator"]) for r in records]
    people = PopulationRegister(generate_people(len(ids), seed=2, national_ids=ids))
    signer = issue_end_entity(dev_pki.ap_ca, "PNO000900", now=now, organisation="Local ELMA")

    async def serve() -> None:
        async with (
            SmlStandin(zone=SML_ZONE_TEST) as sml,
            ElmaServer(MemoryRegistry(), signer, admin_token=ADMIN_TOKEN, sml=sml) as elma,
            KrrStandin(KrrRegister(records, now=now), tokens=[KRR_TOKEN]) as krr,
            PopulationStandin(people) as folk,
        ):
            conn.send(Servers(sml.address, elma.url, krr.url, folk.url, ids))
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(serve())


# -- measurements --------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    operations: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.operations / self.seconds if self.seconds else float("inf")


async def _register(elma_url: str, pem: bytes, participants: list[str]) -> None:
    body = eformidling_registration(pem, AP_URL)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        semaphore = asyncio.Semaphore(16)

        async def put(participant: str) -> None:
            async with semaphore:
                name = quote(f"iso6523-actorid-upis::{participant}", safe="")
                url = f"{elma_url}{ADMIN_PREFIX}/{name}"
                async with session.put(url, json=body) as response:
                    if response.status not in (200, 201):
                        raise RuntimeError(f"ELMA: {response.status} {await response.text()}")

        await asyncio.gather(*(put(p) for p in participants))


async def _route_all(routes: NetworkRoutes, participants: Sequence[str], concurrency: int) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(participant: str) -> None:
        async with semaphore:
            route = await routes.route(participant, ORG_DOCUMENT_TYPE, ORG_PROCESS)
            if route.decision.rule != "ORG-SMP":
                raise RuntimeError(f"{participant}: {route.decision.rule}")

    await asyncio.gather(*(one(p) for p in participants))


async def _organisations(
    settings: Settings, participants: list[str], concurrency: int, cached: int
) -> list[Row]:
    rows: list[Row] = []
    trust = load_ap_trust(settings)
    half = len(participants) // 2
    for label, group, parallel in (
        ("SML+SMP cold, sequential", participants[:half], 1),
        (f"SML+SMP cold, {concurrency} at a time", participants[half:], concurrency),
    ):
        routes = load_routes(settings, Directory(), trust)
        try:
            start = time.perf_counter()
            await _route_all(routes, group, parallel)
            rows.append(Row(label, len(group), time.perf_counter() - start, "new resolver"))
        finally:
            await routes.close()
    routes = load_routes(settings, Directory(), trust)
    try:
        await _route_all(routes, participants, concurrency)  # fill the guard's cache
        repeated = [participants[i % len(participants)] for i in range(cached)]
        start = time.perf_counter()
        for participant in repeated:  # sequential: the cache's own cost
            await routes.route(participant, ORG_DOCUMENT_TYPE, ORG_PROCESS)
        rows.append(
            Row("SML+SMP cached (guard)", cached, time.perf_counter() - start, "same routes")
        )
    finally:
        await routes.close()
    return rows


async def _persons(
    servers: Servers, krr_concurrency: int, population_concurrency: int
) -> tuple[list[Row], Counter[str]]:
    ids = [NationalId(value) for value in servers.national_ids]
    kind = LetterKind.VEDTAK
    at = datetime.now(UTC)
    krr = KrrClient(servers.krr_url, KRR_TOKEN)
    population = PopulationRegisterClient(servers.population_url)
    rules: Counter[str] = Counter()
    try:
        start = time.perf_counter()
        chunks = [ids[i : i + krr.batch_size] for i in range(0, len(ids), krr.batch_size)]
        krr_gate = asyncio.Semaphore(krr_concurrency)

        async def batch(chunk: list[NationalId]) -> dict[NationalId, Person]:
            async with krr_gate:
                return await krr.lookup(chunk)

        answers: dict[NationalId, Person] = {}
        for found in await asyncio.gather(*(batch(c) for c in chunks)):
            answers.update(found)
        krr_done = time.perf_counter()

        pop_gate = asyncio.Semaphore(population_concurrency)

        async def print_address(nid: NationalId) -> PersonRecord | NotRegistered | Unavailable:
            async with pop_gate:
                try:
                    return await population.lookup(nid)
                except BusError as exc:
                    return registry_outcome(exc, Registry.POPULATION)

        def krr_of(nid: NationalId) -> Person | Unavailable:
            person = answers.get(nid)
            if person is None:
                return Unavailable(Registry.KRR, "left out of the answer")
            return person

        printed = [nid for nid in ids if needs_print_address(kind, krr_of(nid))]
        records = await asyncio.gather(*(print_address(nid) for nid in printed))
        addresses = dict(zip(printed, records, strict=True))
        population_done = time.perf_counter()

        decisions: list[RoutingDecision] = [
            decide_person(nid, kind, at=at, krr=krr_of(nid), population=addresses.get(nid))
            for nid in ids
        ]
        end = time.perf_counter()
    finally:
        await krr.close()
        await population.close()
    for decision in decisions:
        rules[f"{decision.channel.value} {decision.rule}"] += 1
    rows = [
        Row(
            f"KRR lookups, {krr.batch_size}/request",
            len(ids),
            krr_done - start,
            f"{len(chunks)} requests",
        ),
        Row(
            f"population lookups, {population_concurrency} at a time",
            len(printed),
            population_done - krr_done,
            "print only",
        ),
        Row("decide_person", len(decisions), end - population_done, "CPU only"),
        Row("persons decided, total", len(decisions), end - start, "target < 60 s"),
    ]
    return rows, rules


def _table(rows: list[Row]) -> None:
    print(f"{'measurement':<40} {'ops':>8} {'seconds':>9} {'ops/s':>10}  note")
    print("-" * 84)
    for row in rows:
        print(
            f"{row.name:<40} {row.operations:>8} {row.seconds:>9.2f} {row.rate:>10.0f}  {row.note}"
        )


async def _bench(args: argparse.Namespace, servers: Servers, workdir: Path) -> None:
    rng_participants = _participants(args.participants)
    pem = (workdir / "pki" / "access-points" / "PNO000002.pem").read_bytes()
    start = time.perf_counter()
    await _register(servers.elma_url, pem, rng_participants)
    print(
        f"registered {len(rng_participants)} participants in ELMA + SML in "
        f"{time.perf_counter() - start:.1f} s; {len(servers.national_ids)} persons in KRR",
        flush=True,
    )
    host, port = servers.sml
    settings = Settings(
        data_dir=workdir / "data",
        pki_dir=workdir / "pki",
        sml_zone=SML_ZONE_TEST,
        sml_nameserver=f"{host}:{port}",
        registry_allow_http=True,
    )
    rows = await _organisations(settings, rng_participants, args.concurrency, args.cached)
    person_rows, rules = await _persons(servers, args.krr_concurrency, args.population_concurrency)
    print()
    _table(rows + person_rows)
    print()
    print("persons by channel and rule:")
    for rule, count in rules.most_common():
        print(f"  {count:>7}  {rule}")


def _participants(count: int) -> list[str]:
    rng = random.Random(42)
    found: set[str] = set()
    while len(found) < count:
        found.add(f"0192:{generate_organisation_number(rng)}")
    return sorted(found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=16, help="SML+SMP lookups at a time")
    parser.add_argument("--cached", type=int, default=20_000, help="cached lookups")
    parser.add_argument("--krr-concurrency", type=int, default=4, help="KRR requests at a time")
    parser.add_argument("--population-concurrency", type=int, default=32)
    args = parser.parse_args(argv)

    now = datetime.now(UTC)
    dev_pki = generate_dev_pki(now=now, ca_key_size=2048)
    with tempfile.TemporaryDirectory(prefix="budstikke-bench-routing-") as tmp:
        workdir = Path(tmp)
        init_pki(workdir / "pki", dev_pki)
        context = multiprocessing.get_context("fork")
        parent, child = context.Pipe()
        started = time.perf_counter()
        process = context.Process(
            target=_registries, args=(child, dev_pki, args.persons, now), daemon=True
        )
        process.start()
        try:
            servers: Servers = parent.recv()
            print(
                f"registries up in {time.perf_counter() - started:.1f} s "
                f"(generating {args.persons} KRR and population records)",
                flush=True,
            )
            asyncio.run(_bench(args, servers, workdir))
        finally:
            parent.send("stop")
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
