"""Run in a fresh interpreter by test_large_sbd_network: a running Budstikke service (PNO000002,
serving 974760673) receives one large Peppol SBD over ``POST /as4``; the service's peak
resident memory (VmHWM, reset just before the request) is reported with the outcome, as JSON on
stdout.

``python -m tests.e2e.large_receive_child <size-in-MB> <directory>``

The SBD is the sample invoice padded with notes of base64 text (one 1 MB note after another,
each a text node lxml would refuse whole without huge_tree); the AS4 message around it is built
to a file first (gzip level 0: the build is not what is measured), then posted from that file.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web

from access_point.app import create_runtime
from access_point.as4 import BuildOptions, Identifier, Routing, build_user_message
from access_point.settings import Settings
from adapters.db.schema import message_files, messages
from sbdh.pki import generate_dev_pki, init_pki
from tests.unit.as4.conftest import DOCTYPE, PROCESS, RECEIVER_ID, SBD, SENDER_ID

NOTE = 1_000_000


def vm_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def write_sbd(path: Path, size: int) -> tuple[int, str]:
    """The sample SBD padded to about ``size`` bytes, written in pieces; (size, SHA-256)."""
    anchor = b"<ID>"
    head, tail = SBD.split(anchor, 1)
    rng = random.Random(size)
    digest = hashlib.sha256()
    written = 0
    with path.open("wb") as out:

        def put(data: bytes) -> None:
            nonlocal written
            out.write(data)
            digest.update(data)
            written += len(data)

        put(head)
        while written + len(anchor + tail) < size:
            text = base64.b64encode(rng.randbytes(NOTE * 3 // 4))[: size - written]
            put(b"<Note>" + text + b"</Note>\n")
        put(anchor + tail)
    return written, digest.hexdigest()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def main(size: int, directory: Path) -> dict[str, Any]:
    now = datetime.now(UTC)
    pki = generate_dev_pki(now=now, ca_key_size=2048)
    init_pki(directory / "pki", pki)
    sbd_path = directory / "large.sbd.xml"
    sbd_size, sent_sha256 = write_sbd(sbd_path, size)
    routing = Routing(
        sender=Identifier.participant(SENDER_ID),
        receiver=Identifier.participant(RECEIVER_ID),
        document_type=Identifier.document_type(DOCTYPE),
        process=Identifier.process(PROCESS),
    )
    body_path = directory / "request.bin"
    started = time.perf_counter()
    with (
        sbd_path.open("rb") as source,
        build_user_message(
            source,
            routing=routing,
            sender=pki.access_points["PNO000001"],
            receiver_certificate=pki.access_points["PNO000002"].certificate,
            now=now,
            options=BuildOptions(spool_dir=str(directory), compression_level=0),
        ) as message,
        body_path.open("wb") as out,
    ):
        for chunk in message.iter_chunks():
            out.write(chunk)
        content_type = message.content_type
    built = time.perf_counter() - started

    settings = Settings(data_dir=directory / "data", pki_dir=directory / "pki", ap_name="PNO000002")
    runtime = await create_runtime(settings, run_workers=False)
    await runtime.service.create_client("finance", [RECEIVER_ID.split(":")[1]])
    runner = web.AppRunner(runtime.app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        # the peak from here on is the receive's (the build above is not measured)
        Path("/proc/self/clear_refs").write_text("5")
        before = vm_hwm()
        started = time.perf_counter()
        async with aiohttp.ClientSession() as http:
            with body_path.open("rb") as body:
                async with http.post(
                    f"http://127.0.0.1:{port}/as4",
                    data=body,
                    headers={"Content-Type": content_type},
                ) as response:
                    answer = await response.read()
        received = time.perf_counter() - started
        peak = vm_hwm()
        async with runtime.database.read() as connection:
            stored = (
                await connection.execute(
                    sa.select(message_files.c.sha256, message_files.c.size).select_from(
                        message_files.join(messages, messages.c.id == message_files.c.message_pk)
                    )
                )
            ).all()
    finally:
        await runner.cleanup()
        await runtime.close()
    return {
        "sbd_size": sbd_size,
        "sent_sha256": sent_sha256,
        "stored_sha256": stored[0].sha256 if len(stored) == 1 else None,
        "receipt": b"Receipt" in answer,
        "build_s": round(built, 2),
        "receive_s": round(received, 2),
        "rss_before_mib": round(before / (1 << 20), 1),
        "receive_peak_mib": round(peak / (1 << 20), 1),
    }


if __name__ == "__main__":
    report = asyncio.run(main(int(sys.argv[1]) * 1000 * 1000, Path(sys.argv[2])))
    print(json.dumps(report))
