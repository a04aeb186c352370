"""``budstikke send``, ``status`` and ``inbox``: the business API from the shell.

They talk to a running access point over HTTP with an API token, exactly as a case system
would: ``--url`` (``BUDSTIKKE_URL``, default ``http://127.0.0.1:9093``) and ``--token``
(``BUDSTIKKE_TOKEN``; ``budstikke client add`` makes one).
"""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from access_point.client import ApiClient
from adapters.noark import minimal_arkivmelding
from sbdh.errors import InvalidInput
from sbdh.identifiers import OrganisationNumber, ParticipantId
from sbdh.jsonform import sbd_to_python
from sbdh.model import BusinessMessage, JsonObject, eformidling_sbd

ARKIVMELDING_STANDARD = "urn:no:difi:arkivmelding:xsd::arkivmelding"
DEFAULT_PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("BUDSTIKKE_URL", "http://127.0.0.1:9093"),
        help="the access point (default: $BUDSTIKKE_URL or http://127.0.0.1:9093)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("BUDSTIKKE_TOKEN"),
        help="the API token (default: $BUDSTIKKE_TOKEN)",
    )


def register(sub: Any) -> None:
    send: argparse.ArgumentParser = sub.add_parser(
        "send",
        help="send files to an organisation as an arkivmelding",
        description=(
            "Create an eFormidling arkivmelding message from SENDER to RECEIVER, upload the "
            "files (streamed), and send it. Without --arkivmelding, one is written that lists "
            "the files, the first as the main document. Prints the message id."
        ),
    )
    send.add_argument("files", nargs="+", type=Path, metavar="FILE")
    send.add_argument("--from", dest="sender", required=True, metavar="ORGNR")
    send.add_argument("--to", dest="receiver", required=True, metavar="ORGNR")
    send.add_argument("--title", default=None, help="the case title (default: first file name)")
    send.add_argument("--process", default=DEFAULT_PROCESS, help="the eFormidling process")
    send.add_argument(
        "--arkivmelding", type=Path, default=None, help="an arkivmelding.xml of your own"
    )
    send.add_argument("--conversation", default=None, help="conversation id (default: new)")
    _connection(send)
    send.set_defaults(handler=_send)

    status: argparse.ArgumentParser = sub.add_parser("status", help="a message's status timeline")
    status.add_argument("message_id", metavar="MESSAGE_ID")
    _connection(status)
    status.set_defaults(handler=_status)

    inbox: argparse.ArgumentParser = sub.add_parser(
        "inbox",
        help="take incoming messages: peek, pop the ASiC-E into a folder, acknowledge",
        description=(
            "Take the next incoming message (or all with --all): it is locked, its documents "
            "are saved as <message id>.asice in DIR, and it is acknowledged, so the sender "
            "sees LEVERT. With --keep it is not acknowledged and its lock runs out."
        ),
    )
    inbox.add_argument("--dir", type=Path, default=Path("inbox"), help="where to save (inbox/)")
    inbox.add_argument("--all", action="store_true", help="take every waiting message")
    inbox.add_argument("--keep", action="store_true", help="do not acknowledge")
    _connection(inbox)
    inbox.set_defaults(handler=_inbox)


def _client(args: argparse.Namespace) -> ApiClient:
    if not args.token:
        raise InvalidInput("no API token: give --token or set BUDSTIKKE_TOKEN", rule="token")
    return ApiClient(args.url, args.token)


def nextmove_sbd(
    *,
    sender: str,
    receiver: str,
    message_id: str,
    conversation_id: str,
    now: datetime,
    message_type: str = "arkivmelding",
    body: dict[str, Any] | None = None,
    standard: str = ARKIVMELDING_STANDARD,
    process: str = DEFAULT_PROCESS,
) -> dict[str, Any]:
    """The bare NextMove JSON of an eFormidling message, as the API takes it."""
    if body is None:
        body = {"hoveddokument": "arkivmelding.xml", "sikkerhetsnivaa": 3}
    sbd = eformidling_sbd(
        sender=OrganisationNumber.parse(sender).participant_id(),
        receiver=_participant(receiver),
        message=BusinessMessage(message_type, JsonObject.of(body)),
        standard=standard,
        process=process,
        conversation_id=conversation_id,
        instance_identifier=message_id,
        created=now,
        type_version="2.0",
    )
    return sbd_to_python(sbd, wrapped=False)


def _participant(text: str) -> ParticipantId:
    return (
        ParticipantId.parse(text)
        if ":" in text
        else OrganisationNumber.parse(text).participant_id()
    )


def _send(args: argparse.Namespace) -> int:
    for path in args.files:
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file", rule="file")
    now = datetime.now(UTC)
    message_id = str(uuid.uuid4())
    conversation = args.conversation or str(uuid.uuid4())

    async def run() -> int:
        async with _client(args) as api:
            await api.create(
                nextmove_sbd(
                    sender=args.sender,
                    receiver=args.receiver,
                    message_id=message_id,
                    conversation_id=conversation,
                    process=args.process,
                    now=now,
                )
            )
            with tempfile.TemporaryDirectory() as tmp:
                arkivmelding = args.arkivmelding
                if arkivmelding is None:
                    arkivmelding = Path(tmp) / "arkivmelding.xml"
                    arkivmelding.write_bytes(
                        minimal_arkivmelding(
                            message_id=message_id,
                            title=args.title or args.files[0].name,
                            files=[p.name for p in args.files],
                            now=now,
                        )
                    )
                await api.upload(
                    message_id,
                    arkivmelding,
                    filename="arkivmelding.xml",
                    mime_type="application/xml",
                )
            for path in args.files:
                mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                await api.upload(message_id, path, mime_type=mime, title=path.name)
            await api.send(message_id)
        print(message_id)
        return 0

    return asyncio.run(run())


def _status(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with _client(args) as api:
            for status in await api.statuses(args.message_id):
                line = f"{status.get('lastUpdate', ''):<26} {status.get('status', ''):<20}"
                print(f"{line} {status.get('description') or ''}".rstrip())
        return 0

    return asyncio.run(run())


def _inbox(args: argparse.Namespace) -> int:
    async def run() -> int:
        taken = 0
        args.dir.mkdir(parents=True, exist_ok=True)
        async with _client(args) as api:
            while True:
                message = await api.peek()
                if message is None:
                    break
                header = message["standardBusinessDocumentHeader"]
                message_id = header["documentIdentification"]["instanceIdentifier"]
                sender = header["sender"][0]["identifier"]["value"]
                target = args.dir / f"{message_id}.asice"
                size = await api.pop(message_id, target)
                if not args.keep:
                    await api.acknowledge(message_id)
                taken += 1
                print(f"{message_id} from {sender}: {size} bytes -> {target}")
                if not args.all:
                    break
        if taken == 0:
            print("no messages waiting")
        return 0

    return asyncio.run(run())
