"""Crash tests: a worker SIGKILLed mid-job, the broker restarted with jobs in flight.

Each ends with every job's effect written exactly once and nothing lost. The worker is a real
process (``tests.integration.crash_worker``); the effect and its idempotency key commit in one
transaction, so a redelivered job finds its key and does nothing.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.db.engine import create_engine
from adapters.db.schema import metadata
from adapters.queue import DatabaseQueue, Job, JobQueue, RabbitMQQueue
from tests.integration import broker
from tests.integration.crash_worker import LEASE, deliveries, effects, test_metadata

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Setup:
    db_url: str
    amqp_url: str | None
    name: str
    engine: AsyncEngine
    queue: JobQueue


async def _fresh_postgres(admin_url: str, cleanups: list[Callable[[], Awaitable[None]]]) -> str:
    import asyncpg

    name = f"budstikke_crash_{uuid.uuid4().hex[:12]}"
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

    cleanups.append(drop)
    return (
        admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    )


async def _setup(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> AsyncIterator[Setup]:
    cleanups: list[Callable[[], Awaitable[None]]] = []  # after the engine is disposed
    if backend == "postgres":
        db_url = await _fresh_postgres(request.getfixturevalue("postgres_admin_url"), cleanups)
    else:
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(test_metadata.create_all)
    name = f"budstikke.crash.{uuid.uuid4().hex[:10]}"
    amqp_url = request.getfixturevalue("amqp_url") if backend == "rabbitmq" else None
    queue: JobQueue
    if amqp_url:
        rabbit = RabbitMQQueue(amqp_url, name=name, publish_timeout=60)
        await rabbit.setup()
        queue = rabbit
    else:
        queue = DatabaseQueue(engine, name=name, lease=LEASE)
    try:
        yield Setup(db_url, amqp_url, name, engine, queue)
    finally:
        if isinstance(queue, RabbitMQQueue):
            await queue.delete_topology()
        await queue.close()
        await engine.dispose()
        for cleanup in cleanups:
            await cleanup()


@pytest.fixture(params=["sqlite", "postgres", "rabbitmq"])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    async for value in _setup(request, tmp_path, request.param):
        yield value


@pytest.fixture
async def rabbit_setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    async for value in _setup(request, tmp_path, "rabbitmq"):
        yield value


def spawn(s: Setup) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.integration.crash_worker", "--db", s.db_url]
    command += ["--name", s.name]
    if s.amqp_url:
        command += ["--amqp", s.amqp_url]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


async def count(engine: AsyncEngine, query: sa.Select[tuple[int]]) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def effects_per_message(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        query = sa.select(effects.c.message_id, sa.func.count()).group_by(effects.c.message_id)
        return {str(m): int(n) for m, n in (await conn.execute(query)).all()}


async def all_done(s: Setup, n: int) -> bool:
    total = await count(s.engine, sa.select(sa.func.count()).select_from(effects))
    return total >= n and await s.queue.depth() == 0


def stop_gracefully(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=20)


def jobs(n: int, start: int = 0) -> list[Job]:
    return [Job("send", f"msg-{i:04d}") for i in range(start, start + n)]


async def test_a_worker_killed_mid_job_loses_nothing_and_doubles_nothing(setup: Setup) -> None:
    n = 40
    await setup.queue.publish_many(jobs(n))
    first = spawn(setup)
    second: subprocess.Popen[str] | None = None
    try:
        # kill it while a job of its own is between delivery and effect
        async def caught_mid_job() -> bool:
            delivered = await count(
                setup.engine,
                sa.select(sa.func.count())
                .select_from(deliveries)
                .where(deliveries.c.pid == first.pid),
            )
            done = await count(
                setup.engine,
                sa.select(sa.func.count()).select_from(effects).where(effects.c.pid == first.pid),
            )
            return delivered >= 8 and delivered > done

        await until(caught_mid_job, 30, "the first worker to be mid-job")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = spawn(setup)
        await until(lambda: all_done(setup, n), 60, "every job to be done")
        await asyncio.sleep(LEASE.total_seconds() * 1.5)  # a late redelivery would show now
        assert stop_gracefully(second) == 0
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    per_message = await effects_per_message(setup.engine)
    assert per_message == {job.message_id: 1 for job in jobs(n)}
    total = await count(setup.engine, sa.select(sa.func.count()).select_from(deliveries))
    assert total > n  # the killed worker's jobs were delivered again
    assert await setup.queue.depth() == 0


@pytest.fixture
def broker_control() -> None:
    broker.require_broker_control()


@pytest.mark.usefixtures("broker_control")
async def test_a_broker_restart_with_jobs_in_flight_loses_nothing(rabbit_setup: Setup) -> None:
    s = rabbit_setup
    n_before, n_during = 30, 30
    await s.queue.publish_many(jobs(n_before))
    worker = spawn(s)
    stopped = False
    try:
        await until(lambda: _at_least(s.engine, 5), 30, "the worker to get going")

        async def publish_during() -> None:
            for job in jobs(n_during, start=n_before):
                await s.queue.publish(job)  # rides out the restart (publish_timeout 60 s)
                await asyncio.sleep(0.05)

        publisher = asyncio.create_task(publish_during())
        await asyncio.sleep(0.2)
        await broker.stop()
        stopped = True
        await asyncio.sleep(1.0)
        await broker.start_and_wait(s.amqp_url or "")
        stopped = False
        await asyncio.wait_for(publisher, 90)
        n = n_before + n_during
        await until(lambda: all_done(s, n), 90, "every job to be done after the restart")
        await asyncio.sleep(1.0)
        assert stop_gracefully(worker) == 0
    finally:
        if stopped:
            await broker.start_and_wait(s.amqp_url or "")
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    per_message = await effects_per_message(s.engine)
    assert per_message == {job.message_id: 1 for job in jobs(n_before + n_during)}
    assert await s.queue.depth() == 0


async def _at_least(engine: AsyncEngine, n: int) -> bool:
    return await count(engine, sa.select(sa.func.count()).select_from(effects)) >= n
