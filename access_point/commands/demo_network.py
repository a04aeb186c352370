"""``budstikke demo network``: two access points exchanging an arkivmelding over AS4.

Two access points (PNO000001 serving organisation A, PNO000002 serving organisation B), each
with its own database, files and key, on two local ports; each finds the other in its AS4
directory. A's case system sends an arkivmelding with a PDF to B; it travels over AS4 (signed,
encrypted, the document package end-to-end encrypted to B's own certificate); B's system pops
and opens it with B's key, acknowledges (LEVERT goes back over AS4) and answers with a
kvittering (LEST). The demo prints A's status timeline.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from access_point.app import Runtime, create_runtime
from access_point.client import ApiClient
from access_point.commands import demo_envelope
from access_point.commands.exchange import nextmove_sbd
from adapters.noark import minimal_arkivmelding
from sbdh.package import open_package
from sbdh.pki import Credential, generate_dev_pki, init_pki
from sbdh.trust import TrustStore

A, B = "991825827", "974760673"
KVITTERING = "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering"
RESPONSE = "urn:no:difi:profile:arkivmelding:response:ver1.0"


async def network_demo(base: Path, free_port: Any, step: Any, wait_for: Any) -> int:
    from access_point.settings import load_settings  # noqa: PLC0415

    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    pki_dir = base / "pki"
    pki = generate_dev_pki(now=datetime.now(UTC), ca_key_size=2048)
    init_pki(pki_dir, pki)
    names = {"PNO000001": A, "PNO000002": B}
    ports = {name: free_port() for name in names}
    runtimes: dict[str, Runtime] = {}
    runners: list[web.AppRunner] = []
    started = time.monotonic()
    try:
        for name, org in names.items():
            other = next(n for n in names if n != name)
            data = base / name
            data.mkdir()
            (data / "directory.json").write_text(
                json.dumps(
                    {
                        "participants": {
                            f"0192:{names[other]}": {
                                "endpoint": f"http://127.0.0.1:{ports[other]}/as4",
                                "access_point_certificate": str(
                                    pki_dir / "access-points" / f"{other}.pem"
                                ),
                                "organisation_certificate": str(
                                    pki_dir / "organisations" / f"{names[other]}.pem"
                                ),
                            }
                        }
                    },
                    indent=2,
                )
            )
            settings = load_settings(
                {}, data_dir=data, port=ports[name], pki_dir=pki_dir, ap_name=name
            )
            runtime = await create_runtime(settings)
            runner = web.AppRunner(runtime.app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", ports[name]).start()
            runtimes[name], runners = runtime, [*runners, runner]
            print(f"access point {name} serving 0192:{org} at http://127.0.0.1:{ports[name]}")
        print(f"both up in {time.monotonic() - started:.1f}s; data in {base}")
        return await _exchange(
            runtimes,
            ports=ports,
            base=base,
            receiver_key=pki.organisations[B],
            pki_dir=pki_dir,
            step=step,
            wait_for=wait_for,
        )
    finally:
        for runner in runners:
            await runner.cleanup()


async def _exchange(
    runtimes: dict[str, Runtime],
    *,
    ports: dict[str, int],
    base: Path,
    receiver_key: Credential,
    pki_dir: Path,
    step: Any,
    wait_for: Any,
) -> int:
    _, token_a = await runtimes["PNO000001"].service.create_client("Sak/arkiv A", [A])
    _, token_b = await runtimes["PNO000002"].service.create_client("Sak/arkiv B", [B])
    url_a = f"http://127.0.0.1:{ports['PNO000001']}"
    url_b = f"http://127.0.0.1:{ports['PNO000002']}"
    message_id, conversation = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    outbox = base / "outbox"
    outbox.mkdir()
    (outbox / "vedtak.pdf").write_bytes(demo_envelope.minimal_pdf("Vedtak om byggetillatelse"))
    (outbox / "arkivmelding.xml").write_bytes(
        minimal_arkivmelding(
            message_id=message_id, title="Vedtak om byggetillatelse", files=["vedtak.pdf"], now=now
        )
    )
    async with ApiClient(url_a, token_a) as sender, ApiClient(url_b, token_b) as receiver:
        step("A's case system sends an arkivmelding with a PDF to B (on the other access point)")
        await sender.create(
            nextmove_sbd(
                sender=A, receiver=B, message_id=message_id, conversation_id=conversation, now=now
            )
        )
        await sender.upload(message_id, outbox / "arkivmelding.xml", mime_type="application/xml")
        await sender.upload(message_id, outbox / "vedtak.pdf", mime_type="application/pdf")
        await sender.send(message_id)

        step("it travels over AS4; B's case system peeks, pops and opens it with B's own key")
        await wait_for("the message at B", receiver.peek)
        package = base / "inbox" / f"{message_id}.cms"
        package.parent.mkdir()
        size = await receiver.pop(message_id, package)
        with package.open("rb") as source:
            opened = open_package(
                source,
                recipient=receiver_key,
                trust=TrustStore.load(pki_dir / "root-ca.pem"),
                out_dir=base / "inbox" / message_id,
                now=datetime.now(UTC),
            )
        print(f"  a CMS-encrypted package, {size} bytes, only B's key opens it; files:")
        for packed in opened.files:
            print(f"    {packed.name:<18} {packed.size:>6} bytes")
        await receiver.acknowledge(message_id)

        step("B's archive answers with a kvittering; it travels back over AS4")
        receipt_id = str(uuid.uuid4())
        await receiver.create(
            nextmove_sbd(
                sender=B,
                receiver=A,
                message_id=receipt_id,
                conversation_id=conversation,
                now=datetime.now(UTC),
                message_type="arkivmelding_kvittering",
                body={"receiptType": "OK", "relatedToMessageId": message_id},
                standard=KVITTERING,
                process=RESPONSE,
            )
        )
        await receiver.send(receipt_id)

        async def timeline() -> list[dict[str, Any]] | None:
            statuses = await sender.statuses(message_id)
            seen = {s["status"] for s in statuses}
            return statuses if {"LEVERT", "LEST"} <= seen else None

        statuses = await wait_for("LEVERT and LEST at A", timeline)
        step(f"A's status timeline for {message_id}")
        for status in statuses:
            note = status.get("description") or ""
            print(f"  {status['lastUpdate']:<26} {status['status']:<10} {note}")
        seen = [s["status"] for s in statuses]
        return 0 if seen == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"] else 1
