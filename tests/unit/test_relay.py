"""The outbox relay: id order, batches, at least once, wake-up, and the exactly-once DB path."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.db.engine import create_engine
from adapters.db.schema import jobs, metadata, outbox
from adapters.queue import DatabaseQueue, Job, MemoryQueue, OutboxRelay, QueueUnavailable


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def add(engine: AsyncEngine, n: int, kind: str = "send") -> None:
    async with engine.begin() as conn:
        await conn.execute(
            outbox.insert(),
            [
                {
                    "kind": kind,
                    "message_id": f"m{i}",
                    "payload": json.dumps({"i": i}),
                    "created_at": datetime.now(UTC),
                }
                for i in range(n)
            ],
        )


async def unpublished(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(outbox.c.published_at.is_(None))
        return int((await conn.execute(query)).scalar_one())


class Recording(MemoryQueue):
    def __init__(self, fail_times: int = 0) -> None:
        super().__init__()
        self.published: list[Job] = []
        self.fail_times = fail_times

    async def publish_many(self, jobs_: Sequence[Job]) -> None:
        if self.fail_times:
            self.fail_times -= 1
            raise QueueUnavailable("broker down")
        self.published.extend(jobs_)
        await super().publish_many(jobs_)


async def test_rows_are_published_in_id_order_in_batches_and_marked(engine: AsyncEngine) -> None:
    await add(engine, 5)
    queue = Recording()
    relay = OutboxRelay(engine, queue, batch_size=2)
    assert [await relay.relay_once() for _ in range(4)] == [2, 2, 1, 0]
    assert [j.message_id for j in queue.published] == [f"m{i}" for i in range(5)]
    assert [j.payload for j in queue.published] == [{"i": i} for i in range(5)]
    assert all(j.attempt == 0 and j.kind == "send" for j in queue.published)
    assert await unpublished(engine) == 0


async def test_a_failed_publish_leaves_the_rows_for_the_next_round(engine: AsyncEngine) -> None:
    await add(engine, 3)
    queue = Recording(fail_times=1)
    relay = OutboxRelay(engine, queue)
    with pytest.raises(QueueUnavailable):
        await relay.relay_once()
    assert await unpublished(engine) == 3
    assert await relay.relay_once() == 3
    assert await unpublished(engine) == 0


async def test_a_crash_between_publish_and_mark_publishes_again(engine: AsyncEngine) -> None:
    await add(engine, 2)
    queue = Recording()
    relay = OutboxRelay(engine, queue)

    async def crash(*_: object) -> None:
        raise RuntimeError("killed before marking")

    relay._mark = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await relay.relay_once()
    del relay._mark
    assert await relay.relay_once() == 2
    # at least once: both rows went out twice, with the same effect key each time
    assert [j.key for j in queue.published] == [j.key for j in queue.published[:2]] * 2


async def test_the_relay_wakes_when_told_and_polls_otherwise(engine: AsyncEngine) -> None:
    queue = Recording()
    wake = asyncio.Event()
    stop = asyncio.Event()
    relay = OutboxRelay(engine, queue, wake=wake, poll_interval=30)
    task = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(0.1)
    await add(engine, 1)
    began = time.monotonic()
    wake.set()
    while not queue.published:
        await asyncio.sleep(0.01)
    assert time.monotonic() - began < 1.0  # woken, not polled (the poll is 30 s)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_the_poll_finds_rows_nobody_announced(engine: AsyncEngine) -> None:
    queue = Recording()
    stop = asyncio.Event()
    relay = OutboxRelay(engine, queue, poll_interval=0.05)
    task = asyncio.create_task(relay.run(stop))
    await add(engine, 3)
    deadline = time.monotonic() + 5
    while len(queue.published) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(queue.published) == 3


async def test_a_database_queue_on_the_same_database_gets_jobs_in_the_same_transaction(
    engine: AsyncEngine,
) -> None:
    await add(engine, 3, kind="status")
    queue = DatabaseQueue(engine, name="q")
    relay = OutboxRelay(engine, queue)
    assert relay._same_database
    assert await relay.relay_once() == 3
    assert await unpublished(engine) == 0
    assert await queue.depth() == 3
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(jobs.c.kind, jobs.c.message_id))).all()
    assert sorted(rows) == [("status", "m0"), ("status", "m1"), ("status", "m2")]


@pytest.mark.parametrize("same_database", [False, True])
async def test_jobs_settled_in_the_relay_are_marked_and_never_published(
    engine: AsyncEngine, same_database: bool
) -> None:
    """``status`` jobs while no subscription exists: done in the relay's transaction, their
    idempotency keys recorded, the other jobs published as usual."""
    from access_point.jobs import build_kinds, no_subscriptions
    from access_point.worker import Idempotency, _settler
    from adapters.db.schema import processed_jobs

    await add(engine, 2, kind="status")
    await add(engine, 1, kind="send")
    kinds = build_kinds(
        None,  # type: ignore[arg-type] - the handlers are not run here
        idempotency=Idempotency(engine),
        on_status=lambda job: asyncio.sleep(0),
        status_idle=no_subscriptions,
    )
    queue: Recording | DatabaseQueue = (
        DatabaseQueue(engine, name="q") if same_database else Recording()
    )
    relay = OutboxRelay(engine, queue, settle=_settler(engine, kinds))
    assert await relay.relay_once() == 3
    assert await unpublished(engine) == 0
    async with engine.connect() as conn:
        keys = set((await conn.execute(sa.select(processed_jobs.c.key))).scalars())
        rows = (await conn.execute(sa.select(outbox.c.kind, outbox.c.message_id))).all()
        if same_database:
            queued = (await conn.execute(sa.select(jobs.c.kind))).scalars().all()
    expected = {Job("status", f"m{i}", {"i": i}).key for i in range(2)}
    assert keys == expected
    assert len(rows) == 3
    if same_database:
        assert queued == ["send"]
    else:
        assert isinstance(queue, Recording)
        assert [job.kind for job in queue.published] == ["send"]
