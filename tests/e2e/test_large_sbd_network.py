"""A Peppol SBD over the stream threshold between two Budstikke access points over AS4, each a
running service on its own socket, database and keys: created through the API of one, sent by
its AS4 channel from the file it was kept as, received by the other without being held, and
popped by the receiving system byte for byte as it was created. A re-sent SBD is receipted but
not delivered twice, and leaves no second copy behind.

The threshold is lowered to 64 KiB so that a 1 MB SBD takes the streamed path; the slow test
sends a 200 MB one and measures the receiving side's peak memory in a fresh interpreter."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from access_point.app import Runtime, create_runtime
from access_point.as4 import Identifier, Routing, build_user_message
from access_point.messages import SBD_FILENAME, Client
from access_point.settings import Settings
from access_point.statuses import MessageStatus
from sbdh.pki import DevPki, init_pki
from tests.conftest import ROOT
from tests.unit.test_large_sbd import large_sbd

SENDER_ORG, RECEIVER_ORG = "991825827", "974760673"
THRESHOLD = 64 * 1024


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Side:
    runtime: Runtime
    runner: web.AppRunner
    url: str
    client: Client
    token: str


async def _start(data: Path, pki: Path, name: str, org: str, directory: dict[str, object]) -> Side:
    data.mkdir()
    (data / "directory.json").write_text(json.dumps(directory))
    settings = Settings(data_dir=data, pki_dir=pki, ap_name=name, sbd_stream_threshold=THRESHOLD)
    runtime = await create_runtime(settings, run_workers=False)
    runner = web.AppRunner(runtime.app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    client, token = await runtime.service.create_client(f"system of {org}", [org])
    return Side(runtime, runner, f"http://127.0.0.1:{port}", client, token)


@pytest.fixture
async def pair(tmp_path: Path, dev_pki: DevPki) -> AsyncIterator[tuple[Side, Side]]:
    pki = tmp_path / "pki"
    init_pki(pki, dev_pki)
    receiver = await _start(tmp_path / "b", pki, "PNO000002", RECEIVER_ORG, {"participants": {}})
    directory = {
        "participants": {
            f"0192:{RECEIVER_ORG}": {
                "endpoint": f"{receiver.url}/as4",
                "access_point_certificate": str(pki / "access-points" / "PNO000002.pem"),
            }
        }
    }
    sender = await _start(tmp_path / "a", pki, "PNO000001", SENDER_ORG, directory)
    try:
        yield sender, receiver
    finally:
        for side in (sender, receiver):
            await side.runner.cleanup()


def _stored_files(side: Side) -> int:
    root = side.runtime.service.files.root
    return len([p for p in root.rglob("*") if p.is_file()]) if root.exists() else 0


async def test_a_large_sbd_goes_to_another_access_point_and_is_popped_unchanged(
    pair: tuple[Side, Side],
) -> None:
    sender, receiver = pair
    message_id = str(uuid.uuid4())
    sbd = large_sbd(message_id)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {sender.token}"}) as http:
        async with http.post(
            f"{sender.url}/api/messages/out",
            data=sbd,
            headers={"Content-Type": "application/xml"},
        ) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["detachedDocument"]["sbdSize"] == len(sbd)
        async with http.post(f"{sender.url}/api/messages/out/{message_id}") as response:
            assert response.status == 200, await response.text()
    network = sender.runtime.network
    assert network is not None
    assert await network.send(message_id)
    statuses = await sender.runtime.service.message_statuses(sender.client, message_id)
    assert [s.status for s in statuses.content][-2:] == [
        MessageStatus.SENDT,
        MessageStatus.MOTTATT,
    ]

    service = receiver.runtime.service
    peeked = await service.peek(receiver.client)
    assert peeked is not None
    assert peeked.message_id == message_id
    assert peeked.to_json()["detachedDocument"]["sbdSha256"] == hashlib.sha256(sbd).hexdigest()
    popped = await service.pop(receiver.client, message_id)
    assert popped is not None
    container = b"".join([chunk async for chunk in popped.chunks])
    with zipfile.ZipFile(io.BytesIO(container)) as opened:
        assert opened.read(SBD_FILENAME) == sbd

    # the same SBD again, in a new AS4 message: receipted, not delivered twice, not kept twice
    kept = _stored_files(receiver)
    assert await network.send(message_id)
    assert (await service.find_incoming(receiver.client)).total_elements == 1
    assert _stored_files(receiver) == kept


async def test_a_large_sbd_the_receiver_refuses_leaves_nothing_behind(
    pair: tuple[Side, Side],
) -> None:
    """The ebMS header names another original sender than the SBD: refused after the SBD was
    streamed to the file store, and the file removed again."""
    sender, receiver = pair
    sbd = large_sbd(str(uuid.uuid4()))
    routing = Routing(
        sender=Identifier.participant("0192:910075918"),
        receiver=Identifier.participant(f"0192:{RECEIVER_ORG}"),
        document_type=Identifier.document_type(
            "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice##"
            "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0::2.1"
        ),
        process=Identifier.process("urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"),
    )
    with build_user_message(
        sbd,
        routing=routing,
        sender=sender.runtime.service.ap_credential,
        receiver_certificate=receiver.runtime.service.ap_credential.certificate,
        now=datetime.now(UTC),
    ) as message:
        body = message.to_bytes()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{receiver.url}/as4", data=body, headers={"Content-Type": message.content_type}
        ) as response,
    ):
        answer = await response.text()
    assert "EBMS:0003" in answer
    assert "originalSender" in answer
    assert (await receiver.runtime.service.find_incoming(receiver.client)).total_elements == 0
    assert _stored_files(receiver) == 0


@pytest.mark.slow
def test_a_200_mb_sbd_is_received_in_bounded_memory(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.e2e.large_receive_child", "200", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["receipt"], report
    assert report["stored_sha256"] == report["sent_sha256"]
    assert report["sbd_size"] >= 200 * 1000 * 1000
    # the receiving service's own peak, from just before the request to the receipt
    assert report["receive_peak_mib"] < 150, report
