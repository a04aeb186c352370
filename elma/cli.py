"""Command-line functions for the local SMP/ELMA: ``serve``, ``register``, ``remove``, ``list``.

Each command is a plain function taking the parsed arguments and returning an exit status;
:func:`add_commands` puts them under one sub-command (``budstikke elma …``) with
``args.handler`` set, and :func:`build_serve_parser` is the parser of ``python -m elma.server``.

``register``, ``remove`` and ``list`` work on the registry file directly (``--data FILE``; a
running server reads the file again when it changes) or through a running server's admin API
(``--url URL --admin-token-file FILE``), which also updates the SML the server publishes to.

``register`` takes a whole registration in the JSON form of :mod:`elma.registry`
(``--json FILE``: the participant's registration is replaced), or one endpoint from flags
(``--document-type`` once or more, ``--process``, ``--endpoint-url``, ``--ap-cert``): those
document types are added or replaced, the participant's other document types are kept.
Errors are :class:`~sbdh.errors.BusError` values, which the ``budstikke`` CLI reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TextIO, TypeVar
from urllib.parse import quote

import aiohttp

from elma.registry import (
    JsonFileRegistry,
    ParticipantRecord,
    RegistrationError,
    parse_participant,
    record_from_json,
    record_to_json,
)
from elma.server import ADMIN_PREFIX, ElmaServer, serve_forever
from elma.spec import SmpFormat, TransportProfile
from sbdh.errors import ConfigurationError, InvalidInput, NotFound
from sbdh.pki import Credential

__all__ = [
    "add_commands",
    "add_registry_arguments",
    "add_serve_arguments",
    "build_serve_parser",
    "list_participants",
    "register",
    "remove",
    "serve",
]

_TIMEOUT = 30.0
_T = TypeVar("_T")


# --------------------------------------------------------------------------- arguments


def _token(args: argparse.Namespace) -> str | None:
    token: str | None = getattr(args, "admin_token", None)
    token_file: str | None = getattr(args, "admin_token_file", None)
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the admin token file: {exc}") from exc
        if not token:
            raise ConfigurationError(f"the admin token file {token_file} is empty")
    return token


def _add_token_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--admin-token", help="the admin API's bearer token (visible in ps)")
    group.add_argument("--admin-token-file", help="a file holding the admin API's bearer token")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="the registry file (JSON; made if absent)")
    parser.add_argument("--key", required=True, help="the SMP's signing key (PEM)")
    parser.add_argument(
        "--cert", required=True, help="the SMP's signing certificate (PEM, then its issuers)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--public-url", help="the base URL clients reach the SMP at (default http://host:port)"
    )
    parser.add_argument(
        "--root-format",
        choices=[SmpFormat.PEPPOL.value, SmpFormat.BDXR1.value],
        default=SmpFormat.PEPPOL.value,
        help="the format of the unprefixed paths (default peppol)",
    )
    _add_token_arguments(parser)


def build_serve_parser(prog: str = "python -m elma.server") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve signed SMP answers for the participants in a registry."
    )
    add_serve_arguments(parser)
    return parser


def add_registry_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data FILE`` or ``--url URL`` (with the admin token)."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", help="the registry file (JSON)")
    where.add_argument("--url", help="a running SMP's base URL (uses its admin API)")
    _add_token_arguments(parser)


def _add_register_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument("--participant", help="scheme::value, or 0192:<orgnr>")
    parser.add_argument("--name", help="the participant's name")
    parser.add_argument("--json", help="a whole registration (JSON); replaces the participant's")
    parser.add_argument(
        "--document-type", action="append", default=[], help="scheme::value (repeatable)"
    )
    parser.add_argument("--process", help="scheme::value")
    parser.add_argument("--endpoint-url", help="the access point's AS4 URL")
    parser.add_argument("--ap-cert", help="the access point's certificate (PEM file)")
    parser.add_argument("--transport-profile", default=TransportProfile.PEPPOL_AS4_V2.value)
    parser.add_argument("--activation", help="ISO 8601 date-time with zone")
    parser.add_argument("--expiration", help="ISO 8601 date-time with zone")
    parser.add_argument("--description")
    parser.add_argument("--technical-contact")


def add_commands(subparsers: Any, name: str = "elma") -> argparse.ArgumentParser:
    """Add ``name`` with ``serve``, ``register``, ``remove`` and ``list`` to an argparse
    sub-parsers object; each sets ``args.handler`` to its function."""
    group: argparse.ArgumentParser = subparsers.add_parser(
        name, help="the local SMP/ELMA: serve it, manage participants"
    )
    sub = group.add_subparsers(dest="elma_command", required=True, metavar="COMMAND")
    serve_parser = sub.add_parser("serve", help="serve signed SMP answers")
    add_serve_arguments(serve_parser)
    serve_parser.set_defaults(handler=serve)
    register_parser = sub.add_parser("register", help="register or update a participant")
    _add_register_arguments(register_parser)
    register_parser.set_defaults(handler=register)
    remove_parser = sub.add_parser("remove", help="remove a participant")
    add_registry_arguments(remove_parser)
    remove_parser.add_argument("--participant", required=True)
    remove_parser.set_defaults(handler=remove)
    list_parser = sub.add_parser("list", help="list the registered participants")
    add_registry_arguments(list_parser)
    list_parser.add_argument("--json", action="store_true", help="print the registrations")
    list_parser.set_defaults(handler=list_participants)
    return group


# --------------------------------------------------------------------------- the admin API


class _Admin:
    """The few admin API calls the commands make."""

    def __init__(self, url: str, token: str | None) -> None:
        if not token:
            raise ConfigurationError("--url needs --admin-token or --admin-token-file")
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}

    def _path(self, participant: str | None = None) -> str:
        if participant is None:
            return self.url + ADMIN_PREFIX
        return f"{self.url}{ADMIN_PREFIX}/{quote(participant, safe='')}"

    async def call(
        self, method: str, participant: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_TIMEOUT)) as session,
                session.request(
                    method, self._path(participant), json=body, headers=self.headers
                ) as response,
            ):
                data = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ConfigurationError(f"cannot reach the SMP at {self.url}: {exc}") from exc
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        if status == 404:
            return status, parsed
        if status >= 300:
            detail = parsed.get("detail") if isinstance(parsed, dict) else None
            message = f"the SMP answered HTTP {status}: {detail or data[:200]!r}"
            if 400 <= status < 500 and status not in (401, 403):
                raise InvalidInput(message, rule="elma-admin")
            raise ConfigurationError(message, rule="elma-admin")
        return status, parsed


def _run(coroutine: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(coroutine)


# --------------------------------------------------------------------------- commands


def serve(args: argparse.Namespace) -> int:
    """``serve``: run the SMP until interrupted."""
    signer = Credential.load(args.cert, args.key)
    server = ElmaServer(
        JsonFileRegistry(args.data),
        signer,
        admin_token=_token(args),
        host=args.host,
        port=args.port,
        public_url=args.public_url,
        root_format=SmpFormat(args.root_format),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(server))
    return 0


def _flag_services(args: argparse.Namespace) -> list[dict[str, Any]]:
    missing = [
        flag
        for flag, value in (
            ("--process", args.process),
            ("--endpoint-url", args.endpoint_url),
            ("--ap-cert", args.ap_cert),
        )
        if not value
    ]
    if missing:
        raise RegistrationError(
            f"--document-type needs {', '.join(missing)} too", field=missing[0].lstrip("-")
        )
    try:
        certificate = Path(args.ap_cert).read_text(encoding="ascii")
    except (OSError, UnicodeError) as exc:
        raise ConfigurationError(f"cannot read {args.ap_cert}: {exc}") from exc
    endpoint: dict[str, Any] = {
        "transport_profile": args.transport_profile,
        "url": args.endpoint_url,
        "certificate": certificate,
    }
    for key, value in (
        ("service_activation", args.activation),
        ("service_expiration", args.expiration),
        ("description", args.description),
        ("technical_contact", args.technical_contact),
    ):
        if value:
            endpoint[key] = value
    process = {"process": args.process, "endpoints": [endpoint]}
    return [{"document_type": d, "processes": [process]} for d in args.document_type]


def _new_record(args: argparse.Namespace, existing: ParticipantRecord | None) -> ParticipantRecord:
    participant = parse_participant(args.participant) if args.participant else None
    if args.json:
        try:
            body = json.loads(Path(args.json).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read {args.json}: {exc}") from exc
        return record_from_json(body, participant=participant)
    if participant is None:
        raise RegistrationError("--participant or --json is required", field="participant")
    if not args.document_type:
        raise RegistrationError("--document-type or --json is required", field="document_type")
    incoming = record_from_json(
        {"participant": participant.uri(), "services": _flag_services(args)}
    )
    replaced = set(incoming.document_types())
    kept = (
        []
        if existing is None
        else [s for s in existing.services if s.document_type not in replaced]
    )
    name = args.name or (existing.name if existing is not None else None)
    return ParticipantRecord(participant, (*kept, *incoming.services), name)


def register(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """``register``: add or update a participant's registration."""
    out = out or sys.stdout
    if args.url:
        admin = _Admin(args.url, _token(args))
        existing = None
        if args.participant and not args.json:  # flags add to what is registered
            participant = parse_participant(args.participant).uri()
            status, body = _run(admin.call("GET", participant))
            existing = record_from_json(body) if status == 200 else None
        record = _new_record(args, existing)
        status, _ = _run(admin.call("PUT", record.participant.uri(), record_to_json(record)))
        created = status == 201
    else:
        registry = JsonFileRegistry(args.data)
        existing = None
        if args.participant and not args.json:
            existing = registry.get(parse_participant(args.participant))
        record = _new_record(args, existing)
        created = registry.put(record)
    action = "registered" if created else "updated"
    print(f"{action} {record.participant} ({len(record.services)} document types)", file=out)
    return 0


def remove(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """``remove``: unregister a participant; exit status 1 when it was not registered."""
    out = out or sys.stdout
    participant = parse_participant(args.participant)
    if args.url:
        status, _ = _run(_Admin(args.url, _token(args)).call("DELETE", participant.uri()))
        removed = status != 404
    else:
        removed = JsonFileRegistry(args.data).remove(participant)
    if not removed:
        raise NotFound(f"participant {participant} is not registered", rule="elma-not-registered")
    print(f"removed {participant}", file=out)
    return 0


def list_participants(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """``list``: one line per participant (``--json``: the registrations)."""
    out = out or sys.stdout
    if args.url:
        admin = _Admin(args.url, _token(args))
        _, body = _run(admin.call("GET"))
        summaries: list[dict[str, Any]] = list((body or {}).get("participants", []))
        if args.json:
            records = []
            for summary in summaries:
                status, one = _run(admin.call("GET", summary["participant"]))
                if status == 200:
                    records.append(one)
            print(json.dumps({"participants": records}, indent=2, ensure_ascii=False), file=out)
            return 0
    else:
        registered = JsonFileRegistry(args.data).records()
        if args.json:
            document = {"participants": [record_to_json(r) for r in registered]}
            print(json.dumps(document, indent=2, ensure_ascii=False), file=out)
            return 0
        summaries = [
            {
                "participant": r.participant.uri(),
                "name": r.name,
                "document_types": [d.uri() for d in r.document_types()],
            }
            for r in registered
        ]
    for summary in summaries:
        name = summary.get("name") or ""
        count = len(summary.get("document_types") or [])
        print(f"{summary['participant']}\t{name}\t{count} document types", file=out)
    return 0
