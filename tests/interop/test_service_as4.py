"""The running service against the independent ``as4`` peer, both ways.

The peer's sender posts a Peppol invoice to Budstikke's ``POST /as4`` and accepts Budstikke's
receipt (its NRI check included); the message lands in the receiving organisation's inbox once,
however often it is sent. Budstikke's AS4 channel sends to a receiver built on ``as4`` and
accepts its receipt: the message becomes SENDT and MOTTATT.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from access_point.app import Runtime, create_runtime
from access_point.messages import Client
from access_point.settings import Settings
from access_point.statuses import MessageStatus
from tests.interop.harness import BUDSTIKKE_AP, PEER_AP, As4Peer, PeerPki

pytestmark = pytest.mark.interop

INVOICE_SBD = Path(__file__).with_name("peppol_invoice.sbd.xml")
SENDER, RECEIVER = "991825827", "974760673"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _start(
    tmp_path: Path, pki: PeerPki, directory: dict[str, object] | None = None
) -> tuple[Runtime, web.AppRunner, str]:
    data = tmp_path / "data"
    data.mkdir()
    if directory is not None:
        (data / "directory.json").write_text(json.dumps(directory))
    settings = Settings(data_dir=data, pki_dir=pki.directory, ap_name=BUDSTIKKE_AP)
    runtime = await create_runtime(settings, run_workers=False)
    runner = web.AppRunner(runtime.app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runtime, runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def receiving(
    tmp_path: Path, as4_peer_pki: PeerPki
) -> AsyncIterator[tuple[Runtime, Client, str]]:
    runtime, runner, url = await _start(tmp_path, as4_peer_pki)
    client, _ = await runtime.service.create_client("finance system", [RECEIVER])
    try:
        yield runtime, client, url
    finally:
        await runner.cleanup()


async def test_the_as4_peer_delivers_to_budstikke_once(
    receiving: tuple[Runtime, Client, str], as4_peer: As4Peer, as4_peer_pki: PeerPki
) -> None:
    runtime, client, url = receiving
    send = {
        "url": f"{url}/as4",
        "identity": as4_peer_pki.party(PEER_AP),
        "receiver_cert": as4_peer_pki.party(BUDSTIKKE_AP).cert,
        "sbd": INVOICE_SBD,
        "trust": as4_peer_pki.trust,
    }
    first = await as4_peer.send_async(**send)
    assert first.returncode == 0, first.explain()
    assert first.messages[0]["outcome"] == "receipt", first.explain()
    peeked = await runtime.service.peek(client)
    assert peeked is not None
    assert peeked.message_id == "5f0c6f7e-interop-peer-0001"
    # the same SBD again under a new AS4 message id: a receipt, but not a second delivery
    again = await as4_peer.send_async(**send)
    assert again.returncode == 0, again.explain()
    found = await runtime.service.find_incoming(client)
    assert found.total_elements == 1


async def test_budstikke_refuses_a_receiver_it_does_not_serve(
    receiving: tuple[Runtime, Client, str], as4_peer: As4Peer, as4_peer_pki: PeerPki, tmp_path: Path
) -> None:
    _, _, url = receiving
    elsewhere = tmp_path / "elsewhere.sbd.xml"
    elsewhere.write_bytes(INVOICE_SBD.read_bytes().replace(b"0192:974760673", b"0192:910075918"))
    run = await as4_peer.send_async(
        url=f"{url}/as4",
        identity=as4_peer_pki.party(PEER_AP),
        receiver_cert=as4_peer_pki.party(BUDSTIKKE_AP).cert,
        sbd=elsewhere,
        trust=as4_peer_pki.trust,
    )
    assert run.returncode != 0
    assert "EBMS:0004" in run.explain()


async def test_budstikke_sends_to_a_receiver_built_on_as4(
    tmp_path: Path, as4_peer: As4Peer, as4_peer_pki: PeerPki
) -> None:
    with as4_peer.serve(
        identity=as4_peer_pki.party(PEER_AP), trust=as4_peer_pki.trust, out=tmp_path / "inbox"
    ) as peer:
        directory = {
            "participants": {
                f"0192:{RECEIVER}": {
                    "endpoint": peer.url,
                    "access_point_certificate": str(as4_peer_pki.party(PEER_AP).cert),
                }
            }
        }
        runtime, runner, _ = await _start(tmp_path, as4_peer_pki, directory)
        try:
            client, _ = await runtime.service.create_client("finance system", [SENDER])
            sbd = INVOICE_SBD.read_bytes().replace(
                b"5f0c6f7e-interop-peer-0001", b"5f0c6f7e-interop-budstikke-0001"
            )
            view = await runtime.service.create_and_send(client, sbd, [])
            assert runtime.network is not None
            assert await runtime.network.send(view.message_id)
            received = await peer.wait_received_async(1)
            assert received[0].get("outcome", "receipt") != "error", received
            statuses = [
                s.status
                for s in (await runtime.service.message_statuses(client, view.message_id)).content
            ]
            assert statuses[-2:] == [MessageStatus.SENDT, MessageStatus.MOTTATT]
            stored = sorted((tmp_path / "inbox").iterdir())
            assert any(b"5f0c6f7e-interop-budstikke-0001" in p.read_bytes() for p in stored)
        finally:
            await runner.cleanup()
