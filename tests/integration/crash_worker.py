"""A worker process for the crash tests: ``python -m tests.integration.crash_worker …``.

Its ``send`` handler logs every delivery, then writes the job's effect together with its
idempotency key (``Idempotency.claim``) in one transaction, with pauses around it so a kill
lands mid-job. SIGTERM stops it gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from access_point.backoff import Backoff
from access_point.worker import Idempotency, JobKind, Worker
from adapters.db.engine import create_engine
from adapters.queue import DatabaseQueue, Job, JobQueue, RabbitMQQueue

test_metadata = sa.MetaData()
deliveries = sa.Table(
    "crash_deliveries",
    test_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
effects = sa.Table(
    "crash_effects",
    test_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)

LEASE = timedelta(seconds=1)


def make_queue(args: argparse.Namespace, engine: sa.ext.asyncio.AsyncEngine) -> JobQueue:
    if args.amqp:
        return RabbitMQQueue(args.amqp, name=args.name)
    return DatabaseQueue(engine, name=args.name, lease=LEASE, poll_interval=0.05)


async def main(args: argparse.Namespace) -> None:
    engine = create_engine(args.db)
    queue = make_queue(args, engine)
    idempotency = Idempotency(engine)
    pid = os.getpid()

    async def send(job: Job) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                deliveries.insert().values(
                    message_id=job.message_id, pid=pid, attempt=job.attempt, at=datetime.now(UTC)
                )
            )
        await asyncio.sleep(random.uniform(0.02, 0.1))
        async with engine.begin() as conn:
            if await idempotency.claim(conn, job.key):
                await conn.execute(effects.insert().values(message_id=job.message_id, pid=pid))
        await asyncio.sleep(random.uniform(0.0, 0.05))  # done, not yet acknowledged

    worker = Worker(
        queue,
        {"send": JobKind(send)},
        concurrency=args.concurrency,
        max_attempts=50,
        backoff=Backoff(base=0.05, cap=0.5),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    try:
        await worker.run(stop)
    finally:
        await queue.close()
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--amqp")
    parser.add_argument("--name", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
