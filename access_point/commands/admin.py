"""Administration: ``budstikke db upgrade``, ``budstikke client add|list|disable`` and
``budstikke as4 refusals``.

They act on the database named by the settings (``BUDSTIKKE_DATABASE_URL``, or the embedded
default under ``BUDSTIKKE_DATA_DIR``), not through the API: they are for whoever runs the
access point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import sqlalchemy as sa

from access_point.app import create_runtime
from access_point.settings import load_settings
from adapters.db.migrate import current_revision, upgrade
from adapters.db.schema import as4_refusals


def register(sub: Any) -> None:
    db: argparse.ArgumentParser = sub.add_parser("db", help="the message store's schema")
    db_actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_actions.add_parser(
        "upgrade", help="migrate the database to the newest schema (safe to run concurrently)"
    )
    up.set_defaults(handler=_upgrade)

    client: argparse.ArgumentParser = sub.add_parser(
        "client", help="API clients: each has a token bound to the organisations it acts for"
    )
    actions = client.add_subparsers(dest="client_command", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        help="create a client and print its token (shown once)",
        description="Create an API client. The token is printed once; only its hash is kept.",
    )
    add.add_argument("name", help="a name for the client, e.g. the case system's")
    add.add_argument(
        "--org",
        action="append",
        required=True,
        metavar="ORGNR",
        help="an organisation number the client may send as and read for (repeatable)",
    )
    add.add_argument("--json", action="store_true", help="print the client and token as JSON")
    add.set_defaults(handler=_add)
    listing = actions.add_parser("list", help="list the clients (never their tokens)")
    listing.set_defaults(handler=_list)
    disable = actions.add_parser("disable", help="disable a client; its token stops working")
    disable.add_argument("id", type=int)
    disable.set_defaults(handler=_disable)
    as4: argparse.ArgumentParser = sub.add_parser("as4", help="AS4 traffic for operators")
    as4_actions = as4.add_subparsers(dest="action", required=True)
    refusals = as4_actions.add_parser(
        "refusals", help="the AS4 requests refused lately: when, from where, which ebMS error, why"
    )
    refusals.add_argument("--limit", type=int, default=50, help="how many, newest first (50)")
    refusals.add_argument("--json", action="store_true", help="one JSON object per line")
    refusals.set_defaults(handler=_refusals)


def _upgrade(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    print(f"database at revision {asyncio.run(current_revision(settings.database_url))}")
    return 0


async def _with_service(action: Any) -> int:
    runtime = await create_runtime(load_settings(), run_workers=False)
    try:
        result: int = await action(runtime.service)
    finally:
        await runtime.close()
    return result


def _add(args: argparse.Namespace) -> int:
    async def add(service: Any) -> int:
        client, token = await service.create_client(args.name, args.org)
        if args.json:
            print(json.dumps({**client.to_json(), "token": token}))
        else:
            print(
                f"client {client.id} {client.name!r} for {', '.join(sorted(client.organisations))}"
            )
            print(f"token (shown once): {token}")
        return 0

    return asyncio.run(_with_service(add))


def _list(args: argparse.Namespace) -> int:
    async def listing(service: Any) -> int:
        for client in await service.clients():
            state = "disabled" if client.disabled else "active"
            orgs = ", ".join(sorted(client.organisations))
            print(f"{client.id:>4}  {client.name:<30} {state:<8} {orgs}")
        return 0

    return asyncio.run(_with_service(listing))


def _disable(args: argparse.Namespace) -> int:
    async def disable(service: Any) -> int:
        await service.disable_client(args.id)
        print(f"client {args.id} disabled")
        return 0

    return asyncio.run(_with_service(disable))


def _refusals(args: argparse.Namespace) -> int:
    async def listing(service: Any) -> int:
        query = (
            sa.select(as4_refusals)
            .order_by(as4_refusals.c.id.desc())
            .limit(max(1, min(args.limit, 10_000)))
        )
        async with service.database.read() as connection:
            rows = (await connection.execute(query)).all()
        for row in rows:
            if args.json:
                record = dict(row._mapping)
                record["received_at"] = row.received_at.isoformat()
                print(json.dumps(record, ensure_ascii=False))
            else:
                print(
                    f"{row.received_at:%Y-%m-%d %H:%M:%S}  {row.remote or '-':<15} "
                    f"{row.ebms_code:<10} {row.as4_message_id or '-'}  {row.description}"
                )
        if not rows and not args.json:
            print("no AS4 request has been refused")
        return 0

    return asyncio.run(_with_service(listing))
