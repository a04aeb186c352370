"""Crash tests of the whole service: real ``budstikke serve`` / ``budstikke worker`` processes.

Issue 3's guarantees, end to end: the service killed between create and send, a worker killed
mid-job, the broker restarted while messages flow. Each ends with every message in the
receiver's inbox exactly once and every status recorded once: proved over the API (the
receiver drains its inbox with peek / pop / acknowledge, the sender drains its status feed)
and in the store (the status history of each message, and every job of the outbox handled).

``embedded`` is the default shape (SQLite and the database queue; ``budstikke serve`` runs the
workers in its own process); ``scaled`` is PostgreSQL and RabbitMQ with ``budstikke serve
--no-workers`` beside ``budstikke worker``. To kill a worker at the moment that matters, between
a delivery's commit and the job's idempotency key and ack, the first worker runs with
``BUDSTIKKE_TEST_PAUSE_AFTER_DELIVERY`` (a test hook read only in ``access_point/app.py``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from access_point.app import TEST_PAUSE_AFTER_DELIVERY, create_runtime
from access_point.settings import Secret, Settings
from adapters.db.engine import Database
from adapters.db.schema import messages, outbox, processed_jobs, status_events
from adapters.queue import Job, RabbitMQQueue
from sbdh.identifiers import OrganisationNumber
from sbdh.pki import DevPki, init_pki
from tests.integration import broker
from tests.unit.api_helpers import PDF, RECEIVER, SENDER, arkivmelding_sbd, arkivmelding_xml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OUTGOING_FLOW = ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
INCOMING_FLOW = ["INNKOMMENDE_MOTTATT", "INNKOMMENDE_LEVERT"]
#: jobs a worker runs at once in these tests: the number of deliveries caught mid-job
CONCURRENCY = 4
#: how long a job claimed from the embedded queue by a killed worker stays claimed
LEASE = timedelta(seconds=1.5)


# =========================================================================== processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """One access point: its settings, its processes and a way to look into its store."""

    shape: str
    settings: Settings
    env: dict[str, str]
    logs: Path
    db: Database
    sender: dict[str, str] = field(default_factory=dict)
    receiver: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=_free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    serve_process: subprocess.Popen[bytes] | None = None

    @property
    def embedded(self) -> bool:
        return self.shape == "embedded"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, role: str, args: list[str], pause: float | None) -> subprocess.Popen[bytes]:
        env = dict(self.env)
        if pause is not None:
            env[TEST_PAUSE_AFTER_DELIVERY] = str(pause)
        log = self.logs / f"{len(self.processes):02d}-{role}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "access_point.cli", role, *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    async def serve(self, *, pause: float | None = None) -> subprocess.Popen[bytes]:
        """``budstikke serve`` (with the workers in process when embedded), once it answers."""
        args = ["--port", str(self.port)] + ([] if self.embedded else ["--no-workers"])
        process = self._spawn("serve", args, pause)
        self.serve_process = process

        async def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"serve exited with {process.returncode}\n{self.tail()}")
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"{self.base}/manage/health") as response,
                ):
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await until(healthy, 30, "the service to answer", self)
        return process

    def worker(self, *, pause: float | None = None) -> subprocess.Popen[bytes]:
        """``budstikke worker``: the outbox relay and the job workers, no HTTP."""
        return self._spawn("worker", ["--concurrency", str(CONCURRENCY), "--grace", "5"], pause)

    async def start(self, *, pause: float | None = None) -> subprocess.Popen[bytes]:
        """The service: what runs the workers is returned (serve itself when embedded)."""
        serve = await self.serve(pause=pause)
        return serve if self.embedded else self.worker(pause=pause)

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def kill_all(self) -> None:
        for process in self.processes:
            self.kill(process)

    def stop_all(self) -> None:
        """SIGTERM first (a clean exit is part of what is tested), SIGKILL for stragglers."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(process)

    def tail(self, lines: int = 40) -> str:
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)


async def until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, service: Service | None = None
) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds with the processes' logs."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            logs = f"\n{service.tail()}" if service is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{logs}")
        await asyncio.sleep(0.1)


async def _fresh_postgres(admin_url: str) -> tuple[str, Callable[[], Awaitable[None]]]:
    import asyncpg

    name = f"budstikke_svc_crash_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}", drop


def _environment(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDSTIKKE_")}
    assert settings.storage_key is not None
    env.update(
        BUDSTIKKE_DATA_DIR=str(settings.data_dir),
        BUDSTIKKE_DATABASE_URL=settings.database_url,
        BUDSTIKKE_STORAGE_KEY=base64.b64encode(settings.storage_key.value).decode(),
        BUDSTIKKE_ORGANISATIONS=",".join(str(o) for o in settings.organisations),
        BUDSTIKKE_QUEUE_NAME=settings.queue_name,
        BUDSTIKKE_QUEUE_LEASE=str(settings.queue_lease.total_seconds()),
        BUDSTIKKE_WORKER_CONCURRENCY=str(CONCURRENCY),
        PYTHONUNBUFFERED="1",
    )
    if settings.amqp_url is not None:
        env["BUDSTIKKE_AMQP_URL"] = settings.amqp_url.value.decode()
    return env


async def _service(
    request: pytest.FixtureRequest, tmp_path: Path, dev_pki: DevPki, shape: str
) -> AsyncIterator[Service]:
    cleanups: list[Callable[[], Awaitable[None]]] = []
    amqp: Secret | None = None
    queue_name = f"budstikke.svc-crash.{uuid.uuid4().hex[:10]}"
    if shape == "scaled":
        database_url, drop = await _fresh_postgres(request.getfixturevalue("postgres_admin_url"))
        cleanups.append(drop)
        amqp_url: str = request.getfixturevalue("amqp_url")
        amqp = Secret(amqp_url.encode())

        async def delete_queues() -> None:
            queue = RabbitMQQueue(amqp_url, name=queue_name)
            try:
                await queue.delete_topology()
            finally:
                await queue.close()

        cleanups.append(delete_queues)
    else:
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'budstikke.db'}"
    data_dir = tmp_path / "var"
    init_pki(data_dir / "pki", dev_pki)
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        amqp_url=amqp,
        queue_name=queue_name,
        queue_lease=LEASE,
        storage_key=Secret(secrets.token_bytes(32)),
        organisations=(OrganisationNumber(SENDER), OrganisationNumber(RECEIVER)),
    )
    # migrate and make the two case systems' clients before any process starts
    runtime = await create_runtime(settings, run_workers=False)
    try:
        _, sender_token = await runtime.service.create_client("sender system", [SENDER])
        _, receiver_token = await runtime.service.create_client("receiver system", [RECEIVER])
    finally:
        await runtime.close()
    logs = tmp_path / "logs"
    logs.mkdir()
    service = Service(
        shape,
        settings,
        _environment(settings),
        logs,
        Database.from_url(database_url),
        sender={"Authorization": f"Bearer {sender_token}"},
        receiver={"Authorization": f"Bearer {receiver_token}"},
    )
    try:
        yield service
    finally:
        service.kill_all()
        print(service.tail())  # shown by pytest when the test failed
        await service.db.dispose()
        for cleanup in reversed(cleanups):
            await cleanup()


@pytest.fixture(params=["embedded", "scaled"])
async def service(
    request: pytest.FixtureRequest, tmp_path: Path, dev_pki: DevPki
) -> AsyncIterator[Service]:
    async for value in _service(request, tmp_path, dev_pki, request.param):
        yield value


@pytest.fixture
async def scaled(
    request: pytest.FixtureRequest, tmp_path: Path, dev_pki: DevPki
) -> AsyncIterator[Service]:
    async for value in _service(request, tmp_path, dev_pki, "scaled"):
        yield value


# =========================================================================== the case systems


def _http() -> aiohttp.ClientSession:
    # no kept-alive connections: they would outlive a killed server; no call may hang the test
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True),
        timeout=aiohttp.ClientTimeout(total=20),
    )


async def _ok(response: aiohttp.ClientResponse, what: str) -> None:
    if response.status != 200:
        raise AssertionError(f"{what}: {response.status} {await response.text()}")


async def create(
    http: aiohttp.ClientSession, s: Service, sbd: Mapping[str, Any], xml: bytes
) -> None:
    """NextMove's three steps, first two: create, then upload the files."""
    message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"
    ]
    async with http.post(f"{s.base}/api/messages/out", json=sbd, headers=s.sender) as response:
        await _ok(response, "create")
    for name, data, mime in (
        ("arkivmelding.xml", xml, "application/xml"),
        ("vedtak.pdf", PDF, "application/pdf"),
    ):
        headers = {
            **s.sender,
            "Content-Type": mime,
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
        }
        async with http.put(
            f"{s.base}/api/messages/out/{message_id}", data=data, headers=headers
        ) as response:
            await _ok(response, f"upload {name}")


async def send(http: aiohttp.ClientSession, s: Service, message_id: str) -> None:
    async with http.post(f"{s.base}/api/messages/out/{message_id}", headers=s.sender) as response:
        await _ok(response, "send")


async def create_and_send(http: aiohttp.ClientSession, s: Service) -> str:
    """The one-step multipart send; the message id."""
    sbd = arkivmelding_sbd()
    form = aiohttp.FormData()
    form.add_field("sbd", json.dumps(sbd), content_type="application/json")
    form.add_field(
        "arkivmelding.xml",
        arkivmelding_xml(),
        filename="arkivmelding.xml",
        content_type="application/xml",
    )
    form.add_field("vedtak.pdf", PDF, filename="vedtak.pdf", content_type="application/pdf")
    async with http.post(
        f"{s.base}/api/messages/out/multipart", data=form, headers=s.sender
    ) as response:
        await _ok(response, "multipart send")
    return str(
        sbd["standardBusinessDocumentHeader"]["documentIdentification"]["instanceIdentifier"]
    )


async def drain_inbox(http: aiohttp.ClientSession, s: Service) -> list[str]:
    """The receiver's case system: peek, pop, acknowledge until the inbox is empty."""
    taken: list[str] = []
    while True:
        async with http.get(f"{s.base}/api/messages/in/peek", headers=s.receiver) as response:
            if response.status == 204:
                return taken
            await _ok(response, "peek")
            peeked = await response.json()
        message_id = peeked["standardBusinessDocumentHeader"]["documentIdentification"][
            "instanceIdentifier"
        ]
        async with http.get(
            f"{s.base}/api/messages/in/pop/{message_id}", headers=s.receiver
        ) as response:
            await _ok(response, "pop")
            assert len(await response.read()) > len(PDF)
        async with http.delete(
            f"{s.base}/api/messages/in/{message_id}", headers=s.receiver
        ) as response:
            await _ok(response, "acknowledge")
        taken.append(message_id)


async def drain_feed(http: aiohttp.ClientSession, s: Service) -> list[tuple[str, str]]:
    """The sender's status feed, peek and delete until empty: (message id, status) pairs."""
    feed: list[tuple[str, str]] = []
    while True:
        async with http.get(f"{s.base}/api/statuses/peek", headers=s.sender) as response:
            if response.status == 204:
                return feed
            await _ok(response, "status peek")
            status = await response.json()
        feed.append((status["messageId"], status["status"]))
        async with http.delete(f"{s.base}/api/statuses/{status['id']}", headers=s.sender) as r:
            await _ok(r, "status delete")


# =========================================================================== the store


async def incoming(s: Service) -> list[str]:
    """Message ids in the receivers' inboxes (incoming copies), one per copy."""
    async with s.db.read() as conn:
        rows = await conn.execute(
            sa.select(messages.c.message_id).where(messages.c.direction == "INCOMING")
        )
        return [str(r) for r in rows.scalars()]


async def histories(s: Service) -> dict[tuple[str, str], list[str]]:
    """(message id, direction) → its statuses in the order they were recorded."""
    async with s.db.read() as conn:
        rows = await conn.execute(
            sa.select(messages.c.message_id, messages.c.direction, status_events.c.status)
            .join(messages, messages.c.id == status_events.c.message_pk)
            .order_by(status_events.c.id)
        )
        found: dict[tuple[str, str], list[str]] = {}
        for message_id, direction, status in rows:
            found.setdefault((message_id, direction), []).append(status)
        return found


async def undone_jobs(s: Service) -> int:
    """Outbox rows not yet handled: unpublished, or their job's key not in processed_jobs."""
    async with s.db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    outbox.c.kind, outbox.c.message_id, outbox.c.payload, outbox.c.published_at
                )
            )
        ).all()
        done = set((await conn.execute(sa.select(processed_jobs.c.key))).scalars())
    return sum(
        1
        for kind, message_id, payload, published in rows
        if published is None or Job(kind, message_id, json.loads(payload)).key not in done
    )


async def recorded_send_keys(s: Service, ids: Iterable[str]) -> set[str]:
    """The ids of messages whose ``send`` job has its idempotency key recorded."""
    keys = {Job("send", m, {"direction": "OUTGOING"}).key: m for m in ids}
    async with s.db.read() as conn:
        found = (
            await conn.execute(
                sa.select(processed_jobs.c.key).where(processed_jobs.c.key.in_(keys))
            )
        ).scalars()
        return {keys[k] for k in found}


async def all_received(s: Service, ids: Iterable[str]) -> bool:
    wanted = set(ids)
    if not wanted <= set(await incoming(s)):
        return False
    found = await histories(s)
    return all(found.get((m, "OUTGOING"), [])[-1:] == ["MOTTATT"] for m in wanted)


async def assert_exactly_once(http: aiohttp.ClientSession, s: Service, ids: list[str]) -> None:
    """Every message delivered once and acknowledged, and every status recorded once."""
    await until(lambda: all_received(s, ids), 45, f"{len(ids)} messages to arrive", s)
    inbox = await incoming(s)
    assert Counter(inbox) == Counter(ids), "the inbox holds each message exactly once"

    taken = await drain_inbox(http, s)
    assert Counter(taken) == Counter(ids), "the receiver took each message exactly once"

    expected = {(m, "OUTGOING"): OUTGOING_FLOW for m in ids}
    expected.update({(m, "INCOMING"): INCOMING_FLOW for m in ids})

    async def settled() -> bool:
        return await histories(s) == expected and await undone_jobs(s) == 0

    await until(settled, 30, "every status recorded and every job handled", s)
    assert await histories(s) == expected

    feed = await drain_feed(http, s)
    assert Counter(feed) == Counter({(m, status): 1 for m in ids for status in OUTGOING_FLOW})
    # in the order they happened, per message
    for message_id in ids:
        assert [st for m, st in feed if m == message_id] == OUTGOING_FLOW


# =========================================================================== the tests


@pytest.mark.parametrize("moment", ["after create", "after send"])
async def test_the_service_killed_between_create_and_send_loses_and_doubles_nothing(
    service: Service, moment: str
) -> None:
    """SIGKILL every process of the service after create (or right after send), restart it:
    the case system repeats its calls (idempotent) and the message is delivered once."""
    s = service
    await s.start()
    sbd = arkivmelding_sbd()
    message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"
    ]
    xml = arkivmelding_xml()
    async with _http() as http:
        await create(http, s, sbd, xml)
        if moment == "after send":
            await send(http, s, message_id)
        s.kill_all()  # the answer may never have reached the case system
        assert await incoming(s) == [] or moment == "after send"

        await s.start()
        if moment == "after create":
            await create(http, s, sbd, xml)  # the case system does it again: same answer
        await send(http, s, message_id)
        await send(http, s, message_id)  # and once more, for good measure
        await assert_exactly_once(http, s, [message_id])
    s.stop_all()
    assert all(p.returncode in (0, -signal.SIGKILL) for p in s.processes), s.tail()


async def test_a_worker_killed_mid_delivery_loses_and_doubles_nothing(service: Service) -> None:
    """A worker SIGKILLed while it holds deliveries that committed (with their idempotency keys,
    in the same transaction) but were never acknowledged to the queue; a new worker finds the
    batch again and delivers each message once."""
    s = service
    n = 12
    first = await s.start(pause=60)  # every delivery then hangs before its ack
    async with _http() as http:
        ids = [await create_and_send(http, s) for _ in range(n)]

        async def caught_mid_job() -> bool:
            return len(await incoming(s)) >= CONCURRENCY

        await until(caught_mid_job, 30, f"{CONCURRENCY} deliveries to hang mid-job", s)
        mid_job = await incoming(s)
        assert len(mid_job) < n
        # a key commits with its delivery, never without it
        keys = await recorded_send_keys(s, ids)
        assert keys
        assert keys <= set(await incoming(s))
        Service.kill(first)

        if s.embedded:
            await s.serve()  # the embedded worker is the service itself
        else:
            s.worker()
        await assert_exactly_once(http, s, ids)
        # the caught jobs ran again in the new worker: it recorded their keys
        assert await recorded_send_keys(s, ids) == set(ids)
    s.stop_all()


async def test_a_broker_restart_while_messages_flow_loses_and_doubles_nothing(
    scaled: Service,
) -> None:
    """RabbitMQ stopped and started again while the case system keeps sending: the relay waits
    for it, the workers reconnect, jobs in flight come back, each message arrives once."""
    broker.require_broker_control()
    s = scaled
    assert s.settings.amqp_url is not None
    amqp = s.settings.amqp_url.value.decode()
    n = 24
    await s.start()
    ids: list[str] = []
    stopped = False
    async with _http() as http:
        try:

            async def keep_sending() -> None:
                for _ in range(n):
                    ids.append(await create_and_send(http, s))
                    await asyncio.sleep(0.15)

            sender = asyncio.create_task(keep_sending())

            async def flowing() -> bool:
                return len(ids) >= 6 and len(await incoming(s)) >= 1

            await until(flowing, 30, "messages to flow", s)
            await broker.stop()
            stopped = True
            sent_before = len(ids)
            await asyncio.sleep(1.0)
            await broker.start_and_wait(amqp)
            stopped = False
            sent_during = len(ids) - sent_before
            await asyncio.wait_for(sender, 30)
        finally:
            if stopped:
                await broker.start_and_wait(amqp)
        assert len(ids) == n
        assert sent_before < n
        assert sent_during > 0  # the case system went on sending while the broker was away
        await assert_exactly_once(http, s, ids)
    s.stop_all()
