"""``budstikke demo``: the main job on a fresh machine, with nothing installed but the package.

It starts the access point on the embedded default (SQLite, the queue in the database, the
workers in the same process) on a free local port, creates two organisations with an API
client each, and then, over HTTP exactly as case systems would:

1. the sender creates an arkivmelding, uploads its arkivmelding.xml and a PDF, and sends it;
2. the receiver peeks (which locks the message), pops its signed ASiC-E, and acknowledges it;
3. the receiver answers with an ``arkivmelding_kvittering`` in the same conversation;

and prints the sender's status timeline (OPPRETTET → SENDT → MOTTATT → LEVERT → LEST) and
where to look next. ``budstikke demo network`` runs the exchange between two access points over
AS4; ``budstikke demo envelope`` runs the envelope round trip on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from access_point.app import create_runtime
from access_point.client import ApiClient
from access_point.commands import demo_envelope
from access_point.commands.demo_network import network_demo
from access_point.commands.exchange import nextmove_sbd
from access_point.settings import load_settings
from adapters.noark import minimal_arkivmelding
from sbdh.errors import BusError
from sbdh.package import read_container
from sbdh.trust import TrustStore

SENDER = ("991825827", "Digitaliseringsdirektoratet (test)")
RECEIVER = ("974760673", "Registerenheten i Brønnøysund (test)")
RESPONSE_PROCESS = "urn:no:difi:profile:arkivmelding:response:ver1.0"
KVITTERING_STANDARD = "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering"
TIMELINE = ("OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run the service on the embedded default and send an arkivmelding end to end",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "what",
        nargs="?",
        choices=("service", "network", "envelope"),
        default="service",
        help="service (default): the end-to-end exchange on one access point; network: two "
        "access points exchanging over AS4; envelope: the envelope round trip",
    )
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("var/demo"),
        help="where the demo keeps its database, files and keys (default: var/demo; emptied)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.what == "envelope":
        return demo_envelope.run(args)
    if args.what == "network":
        return asyncio.run(network_demo(args.dir, _free_port, _step, _wait_for))
    return asyncio.run(_service_demo(args.dir))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _step(text: str) -> None:
    print(f"\n▸ {text}")


async def _wait_for(what: str, probe: Any, *, timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await probe()
        if result:
            return result
        await asyncio.sleep(interval)
    raise BusError(f"timed out after {timeout:.0f}s waiting for {what}")


async def _service_demo(base: Path) -> int:
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    settings = load_settings(
        {},
        data_dir=base / "data",
        port=_free_port(),
        organisations=(),
    )
    print("Budstikke on the embedded default: SQLite, the queue in the database, workers")
    print(f"in this process; data in {settings.data_dir}")
    started = time.monotonic()
    runtime = await create_runtime(settings)
    runner = web.AppRunner(runtime.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    url = f"http://{settings.host}:{settings.port}"
    print(f"service up at {url} in {time.monotonic() - started:.1f}s")
    try:
        return await _exchange(runtime, url, base)
    finally:
        await runner.cleanup()


async def _exchange(runtime: Any, url: str, base: Path) -> int:
    service = runtime.service
    _, sender_token = await service.create_client("Demo sak/arkiv A", [SENDER[0]])
    _, receiver_token = await service.create_client("Demo sak/arkiv B", [RECEIVER[0]])
    _step("two organisations, one API client each (a bearer token bound to its organisation)")
    print(f"  sender   0192:{SENDER[0]}  {SENDER[1]}")
    print(f"  receiver 0192:{RECEIVER[0]}  {RECEIVER[1]}")

    outbox = base / "outbox"
    outbox.mkdir()
    now = datetime.now(UTC)
    message_id, conversation = str(uuid.uuid4()), str(uuid.uuid4())
    (outbox / "vedtak.pdf").write_bytes(demo_envelope.minimal_pdf("Vedtak om byggetillatelse"))
    (outbox / "arkivmelding.xml").write_bytes(
        minimal_arkivmelding(
            message_id=message_id,
            title="Vedtak om byggetillatelse, Storgata 1",
            files=["vedtak.pdf"],
            now=now,
        )
    )
    async with (
        ApiClient(url, sender_token) as sender,
        ApiClient(url, receiver_token) as receiver,
    ):
        _step("the sender creates the message, uploads two files and sends it")
        await sender.create(
            nextmove_sbd(
                sender=SENDER[0],
                receiver=RECEIVER[0],
                message_id=message_id,
                conversation_id=conversation,
                now=now,
            )
        )
        await sender.upload(message_id, outbox / "arkivmelding.xml", mime_type="application/xml")
        await sender.upload(
            message_id, outbox / "vedtak.pdf", mime_type="application/pdf", title="Vedtak"
        )
        await sender.send(message_id)
        print(f"  POST /api/messages/out, PUT x2, POST /api/messages/out/{message_id}")

        _step("the receiver peeks (the message is locked for it), pops and acknowledges")
        message = await _wait_for("the message to arrive", receiver.peek)
        header = message["standardBusinessDocumentHeader"]
        assert header["documentIdentification"]["instanceIdentifier"] == message_id
        inbox = base / "inbox"
        inbox.mkdir()
        asice = inbox / f"{message_id}.asice"
        size = await receiver.pop(message_id, asice)
        trust = TrustStore.load(runtime.settings.data_dir / "pki" / "root-ca.pem")
        with asice.open("rb") as src:
            opened = read_container(
                src, trust=trust, out_dir=inbox / message_id, now=datetime.now(UTC)
            )
        print(f"  popped a signed ASiC-E, {size} bytes; signature verified, files:")
        for packed in opened.files:
            print(f"    {packed.name:<18} {packed.size:>6} bytes -> {packed.path}")
        await receiver.acknowledge(message_id)

        _step("the receiver's archive answers with an arkivmelding_kvittering")
        receipt_id = str(uuid.uuid4())
        await receiver.create(
            nextmove_sbd(
                sender=RECEIVER[0],
                receiver=SENDER[0],
                message_id=receipt_id,
                conversation_id=conversation,
                now=datetime.now(UTC),
                message_type="arkivmelding_kvittering",
                body={"receiptType": "OK", "relatedToMessageId": message_id},
                standard=KVITTERING_STANDARD,
                process=RESPONSE_PROCESS,
            )
        )
        await receiver.send(receipt_id)

        async def read() -> list[dict[str, Any]] | None:
            statuses = await sender.statuses(message_id)
            return statuses if "LEST" in {s["status"] for s in statuses} else None

        statuses = await _wait_for("LEST", read)
        _step(f"the sender's status timeline for {message_id}")
        for status in statuses:
            print(f"  {status['lastUpdate']:<26} {status['status']}")
        seen = [s["status"] for s in statuses]
        if [s for s in seen if s in TIMELINE] != list(TIMELINE):
            print(f"  unexpected timeline: {seen}")
            return 1

    print(
        """
Done. Where to look next:
  budstikke serve                      the service on the embedded default (port 9093)
  budstikke client add NAME --org N    a token for your case system
  budstikke send / inbox / status      the API from the shell (BUDSTIKKE_TOKEN)
  http://127.0.0.1:9093/api/openapi.json  the API, machine-readable (docs/api.md for people)
  http://127.0.0.1:9093/manage/metrics    Prometheus metrics; /manage/health for probes
  budstikke demo envelope              the signed and encrypted envelope on its own"""
    )
    return 0
