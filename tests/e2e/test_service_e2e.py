"""The service end to end on the embedded default, over real sockets.

The real application (SQLite, the database queue, the relay and the workers in process) listens
on a free port; two case systems (one per organisation hosted here) talk to it over HTTP, and a
small webhook receiver listens on another port. One arkivmelding goes from the first to the
second: create, upload, send; the receiver peeks, pops and acknowledges; the sender's status
feed shows OPPRETTET, SENDT, MOTTATT, LEVERT, and the webhook receiver gets the same four
events, each signed with the subscription's secret.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from access_point.api import SafeAccessLogger
from access_point.app import Runtime, create_runtime
from access_point.webhooks import verify_signature
from sbdh.pki import DevPki
from tests.unit.api_helpers import (
    PDF,
    RECEIVER,
    SENDER,
    arkivmelding_sbd,
    arkivmelding_xml,
    settings_for,
)

FLOW = ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log_class=SafeAccessLogger)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


class Hooks:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        self.arrived.set()
        return web.Response(status=204)


@pytest.fixture
async def service(tmp_path: Path, dev_pki: DevPki) -> AsyncIterator[tuple[Runtime, str]]:
    port = _free_port()
    settings = settings_for(tmp_path, port=port)
    runtime = await create_runtime(settings, ap_credential=dev_pki.access_points["PNO000001"])
    assert runtime.run_workers  # the embedded default runs its workers in process
    runner = await _serve(runtime.app, port)
    try:
        yield runtime, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _poll(check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_message_between_two_hosted_organisations(
    service: tuple[Runtime, str],
) -> None:
    runtime, base = service
    _, sender_token = await runtime.service.create_client("case system A", [SENDER])
    _, receiver_token = await runtime.service.create_client("case system B", [RECEIVER])
    sender = {"Authorization": f"Bearer {sender_token}"}
    receiver = {"Authorization": f"Bearer {receiver_token}"}

    hooks = Hooks()
    hook_app = web.Application()
    hook_app.router.add_post("/budstikke", hooks.handle)
    hook_port = _free_port()
    hook_runner = await _serve(hook_app, hook_port)

    async with aiohttp.ClientSession(base) as http:
        try:
            # the sender subscribes to its statuses; the secret is shown once
            response = await http.post(
                "/api/subscriptions",
                json={
                    "name": "statuses",
                    "pushEndpoint": f"http://127.0.0.1:{hook_port}/budstikke",
                    "resource": "messages",
                    "event": "status",
                    "filter": "direction=OUTGOING",
                },
                headers=sender,
            )
            assert response.status == 200, await response.text()
            secret = (await response.json())["secret"]
            hooks.received.clear()  # the ping

            # bad input: problem details naming the field
            bad = arkivmelding_sbd()
            bad["standardBusinessDocumentHeader"]["receiver"][0]["identifier"]["value"] = "0192:1"
            response = await http.post("/api/messages/out", json=bad, headers=sender)
            assert response.status == 400
            assert response.content_type == "application/problem+json"
            problem = await response.json()
            assert any("receiver" in (e["field"] or "") for e in problem["errors"]), problem

            # create, upload (streamed), send
            sbd = arkivmelding_sbd()
            message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
                "instanceIdentifier"
            ]
            response = await http.post("/api/messages/out", json=sbd, headers=sender)
            assert response.status == 200, await response.text()
            for name, data, mime in (
                ("arkivmelding.xml", arkivmelding_xml(), "application/xml"),
                ("vedtak.pdf", PDF, "application/pdf"),
            ):
                response = await http.put(
                    f"/api/messages/out/{message_id}",
                    data=data,
                    headers={
                        **sender,
                        "Content-Type": mime,
                        "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
                    },
                )
                assert response.status == 200, await response.text()
            response = await http.post(f"/api/messages/out/{message_id}", headers=sender)
            assert response.status == 200, await response.text()

            # the sender's client never sees it in any inbox; the receiver's never as outgoing
            response = await http.get("/api/messages/in", headers=sender)
            assert (await response.json())["totalElements"] == 0
            response = await http.get(f"/api/messages/out/{message_id}", headers=receiver)
            assert response.status == 404

            # the receiver peeks (lock), pops the ASiC-E, acknowledges
            async def peek() -> dict[str, Any] | None:
                response = await http.get("/api/messages/in/peek", headers=receiver)
                if response.status == 204:
                    return None
                assert response.status == 200, await response.text()
                body: dict[str, Any] = await response.json()
                return body

            peeked = await _poll(peek, what="the message in the receiver's inbox")
            assert (
                peeked["standardBusinessDocumentHeader"]["documentIdentification"][
                    "instanceIdentifier"
                ]
                == message_id
            )
            response = await http.get(f"/api/messages/in/pop/{message_id}", headers=receiver)
            assert response.status == 200
            container = zipfile.ZipFile(io.BytesIO(await response.read()))
            assert container.read("vedtak.pdf") == PDF
            response = await http.get(f"/api/messages/in/pop/{message_id}", headers=sender)
            assert response.status == 404
            response = await http.delete(f"/api/messages/in/{message_id}", headers=receiver)
            assert response.status == 200

            # the sender's pull feed: OPPRETTET, SENDT, MOTTATT, LEVERT, each once
            feed: list[str] = []

            async def drain() -> bool:
                while True:
                    response = await http.get("/api/statuses/peek", headers=sender)
                    if response.status == 204:
                        return feed == FLOW
                    status = await response.json()
                    assert status["messageId"] == message_id
                    feed.append(status["status"])
                    response = await http.delete(f"/api/statuses/{status['id']}", headers=sender)
                    assert response.status == 200

            await _poll(drain, what=f"the statuses {FLOW} on the feed (got {feed})")

            # the webhook receiver got the same four, signed
            async def pushed() -> bool:
                return len(hooks.received) >= len(FLOW)

            await _poll(pushed, what="four webhook deliveries")
            await asyncio.sleep(0.3)  # nothing more should come
            assert len(hooks.received) == len(FLOW)
            events = []
            for headers, body in hooks.received:
                assert verify_signature(
                    secret,
                    timestamp=headers["X-Budstikke-Timestamp"],
                    signature=headers["X-Budstikke-Signature"],
                    body=body,
                )
                events.append(json.loads(body))
            assert sorted(e["status"] for e in events) == sorted(FLOW)
            assert {e["messageId"] for e in events} == {message_id}
            assert {e["direction"] for e in events} == {"OUTGOING"}
            assert len({h["X-Budstikke-Delivery"] for h, _ in hooks.received}) == len(FLOW)

            # the receiver's view: its own status history, never the sender's
            response = await http.get(f"/api/statuses/{message_id}", headers=receiver)
            statuses = [s["status"] for s in (await response.json())["content"]]
            assert statuses == ["INNKOMMENDE_MOTTATT", "INNKOMMENDE_LEVERT"]

            # operations
            response = await http.get("/manage/health")
            assert (await response.json())["status"] == "UP"
            response = await http.get("/manage/metrics")
            text = await response.text()
            assert "budstikke_delivery_latency_seconds_count 1" in text
        finally:
            await hook_runner.cleanup()
