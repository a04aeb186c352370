"""``budstikke serve``: run the access point's business API (and, embedded, its workers)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from aiohttp import web

from access_point.api import SafeAccessLogger
from access_point.app import create_runtime
from access_point.eventloop import use_fast_loop
from access_point.settings import Settings, load_settings


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the access point (business API; in the embedded default also the workers)",
        description=(
            "Run the business API on BUDSTIKKE_HOST:BUDSTIKKE_PORT (127.0.0.1:9093). In the "
            "embedded default (no BUDSTIKKE_AMQP_URL) the outbox relay, the workers and the "
            "lifetime sweep run in this process too; with RabbitMQ run `budstikke worker` "
            "beside it (or pass --workers)."
        ),
    )
    p.add_argument("--host", help="listen address (default: BUDSTIKKE_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default: BUDSTIKKE_PORT or 9093)")
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help=(
            "listen with SO_REUSEPORT, so that several `budstikke serve --no-workers` "
            "processes share one port and the kernel spreads connections over them (one "
            "Python process uses one core)"
        ),
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--workers",
        dest="workers",
        action="store_true",
        default=None,
        help="run the workers in this process (the default for the embedded queue)",
    )
    group.add_argument(
        "--no-workers",
        dest="workers",
        action="store_false",
        help="serve the API only",
    )
    p.set_defaults(handler=run)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    return load_settings(None, **overrides)


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def application() -> web.Application:
        runtime = await create_runtime(settings, run_workers=args.workers)
        return runtime.app

    mode = "embedded (SQLite + database queue)" if settings.embedded else "RabbitMQ"
    loop = use_fast_loop()
    print(
        f"budstikke: serving on http://{settings.host}:{settings.port} ({mode}, {loop})",
        flush=True,
    )
    web.run_app(
        application(),
        host=settings.host,
        port=settings.port,
        access_log_class=SafeAccessLogger,
        print=None,
        reuse_port=args.reuse_port or None,
    )
    return 0
