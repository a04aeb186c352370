"""``budstikke worker``: the outbox relay, the job workers and the lifetime sweep, no HTTP.

Run any number of these beside ``budstikke serve --no-workers`` processes; they share the
database and (when ``BUDSTIKKE_AMQP_URL`` is set) the RabbitMQ broker, otherwise the queue in
the database. SIGTERM or SIGINT stops taking new jobs, lets the running ones finish (up to
``--grace`` seconds) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from access_point.eventloop import use_fast_loop
from access_point.settings import Settings, load_settings

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "worker",
        help="run the outbox relay, the job workers and the lifetime sweep (no HTTP)",
        description=(
            "Run the workers: publish the outbox to the job queue (RabbitMQ when "
            "BUDSTIKKE_AMQP_URL is set, otherwise the queue in the database), run the jobs "
            "with retries and dead-lettering, and mark expired messages every "
            "BUDSTIKKE_LIFETIME_SWEEP seconds. Stops gracefully on SIGTERM or SIGINT."
        ),
    )
    p.add_argument(
        "--concurrency",
        type=int,
        help="jobs run at once (default: BUDSTIKKE_WORKER_CONCURRENCY or 8)",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="seconds the running jobs get to finish on shutdown (default 30)",
    )
    p.set_defaults(handler=run)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.concurrency:
        overrides["worker_concurrency"] = args.concurrency
    return load_settings(**overrides)


async def serve_workers(
    settings: Settings, *, stop: asyncio.Event | None = None, grace: float = 30.0
) -> None:
    """Run the workers for ``settings`` until ``stop`` is set (or SIGTERM/SIGINT)."""
    from access_point.app import create_runtime  # noqa: PLC0415 - the service only when running

    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runtime = await create_runtime(settings, run_workers=True)
    try:
        await runtime.start_workers()
        await stop.wait()
        log.info("stopping: finishing the running jobs (up to %.0fs)", grace)
        await runtime.stop_workers(timeout=grace)
    finally:
        await runtime.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    queue = "RabbitMQ" if settings.amqp_url is not None else "the database queue"
    loop = use_fast_loop()
    print(
        f"budstikke: worker on {queue}, concurrency {settings.worker_concurrency} ({loop})",
        flush=True,
    )
    asyncio.run(serve_workers(settings, grace=args.grace))
    return 0
