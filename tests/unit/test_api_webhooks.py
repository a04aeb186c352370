"""Webhook subscriptions over the API, and deliveries: signed, filtered, never doubled, given
up after the attempt limit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from access_point.webhooks import SubscriptionFilter, sign, verify_signature
from adapters.db.schema import outbox, webhook_deliveries
from sbdh.errors import InvalidInput, TransientDeliveryError
from sbdh.pki import DevPki
from tests.unit.api_helpers import Wired, arkivmelding_sbd, wired

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
ServerFactory = Callable[..., Awaitable[TestServer]]


class Receiver:
    """A webhook receiver: records what it gets; answers ``status`` (200 by default)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.app = web.Application()
        self.app.router.add_post("/hook", self.hook)

    async def hook(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
async def setup(tmp_path: Path, dev_pki: DevPki) -> AsyncIterator[Wired]:
    async for value in wired(tmp_path, dev_pki.access_points["PNO000001"], webhook_max_attempts=2):
        yield value


@pytest.fixture
async def http(setup: Wired, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    return await aiohttp_client(setup.runtime.app)


@pytest.fixture
async def receiver(aiohttp_server: ServerFactory) -> AsyncIterator[tuple[Receiver, str]]:
    hooks = Receiver()
    server = await aiohttp_server(hooks.app)
    return hooks, str(server.make_url("/hook"))


def test_filter_parses_the_reference_form() -> None:
    parsed = SubscriptionFilter.parse("status=FEIL,levetid_utlopt&direction=INCOMING")
    assert parsed.text() == "status=FEIL,LEVETID_UTLOPT&direction=INCOMING"
    assert parsed.matches("FEIL", "INCOMING", "DPO")
    assert not parsed.matches("LEVERT", "INCOMING", "DPO")
    assert not parsed.matches("FEIL", "OUTGOING", "DPO")
    assert SubscriptionFilter.from_stored(parsed.stored()) == parsed
    with pytest.raises(InvalidInput):
        SubscriptionFilter.parse("colour=blue")
    with pytest.raises(InvalidInput):
        SubscriptionFilter.parse("status=NOPE")


def test_signature_covers_timestamp_and_body() -> None:
    now = int(time.time())
    signature = sign("s3cret", str(now), b'{"a":1}')
    assert signature.startswith("sha256=")
    assert verify_signature("s3cret", timestamp=str(now), signature=signature, body=b'{"a":1}')
    assert not verify_signature("s3cret", timestamp=str(now), signature=signature, body=b"{}")
    assert not verify_signature(
        "s3cret", timestamp=str(now + 1), signature=signature, body=b'{"a":1}'
    )
    assert not verify_signature(
        "s3cret", timestamp=str(now), signature=signature, body=b'{"a":1}', now=now + 3600
    )


async def test_subscription_crud(
    http: TestClient[Any, Any], setup: Wired, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    body = {
        "name": "statuses",
        "pushEndpoint": url,
        "resource": "messages",
        "event": "status",
        "filter": "status=LEVERT,FEIL",
    }
    response = await http.post("/api/subscriptions", json=body, headers=setup.sender)
    assert response.status == 200, await response.text()
    created = await response.json()
    secret = created.pop("secret")
    assert created["filter"] == "status=FEIL,LEVERT"
    # the ping is signed with the new secret
    headers, ping = hooks.received[0]
    assert json.loads(ping)["event"] == "ping"
    assert verify_signature(
        secret,
        timestamp=headers["X-Budstikke-Timestamp"],
        signature=headers["X-Budstikke-Signature"],
        body=ping,
    )
    sub_id = created["id"]
    response = await http.get(f"/api/subscriptions/{sub_id}", headers=setup.sender)
    assert await response.json() == created
    # another client cannot see it
    response = await http.get(f"/api/subscriptions/{sub_id}", headers=setup.receiver)
    assert response.status == 404
    response = await http.get("/api/subscriptions", headers=setup.receiver)
    assert (await response.json())["totalElements"] == 0
    response = await http.put(
        f"/api/subscriptions/{sub_id}", json={"name": "renamed"}, headers=setup.sender
    )
    assert response.status == 200
    response = await http.get("/api/subscriptions", headers=setup.sender)
    page = await response.json()
    assert [s["name"] for s in page["content"]] == ["renamed"]
    response = await http.post("/api/subscriptions", json=body, headers=setup.sender)
    assert response.status == 200  # the name was changed: no clash
    response = await http.delete(f"/api/subscriptions/{sub_id}", headers=setup.sender)
    assert response.status == 200
    response = await http.delete("/api/subscriptions", headers=setup.sender)
    assert response.status == 200
    response = await http.get("/api/subscriptions", headers=setup.sender)
    assert (await response.json())["totalElements"] == 0


async def test_bad_subscriptions_name_the_field(
    http: TestClient[Any, Any], setup: Wired, receiver: tuple[Receiver, str]
) -> None:
    _, url = receiver
    good = {"name": "x", "pushEndpoint": url, "resource": "messages", "event": "status"}
    for change, field in (
        ({"pushEndpoint": "ftp://example.org/"}, "pushEndpoint"),
        ({"resource": "everything"}, "resource"),
        ({"filter": "colour=blue"}, "filter"),
        ({"name": ""}, "name"),
    ):
        response = await http.post(
            "/api/subscriptions", json={**good, **change}, headers=setup.sender
        )
        assert response.status == 400, change
        assert (await response.json())["errors"][0]["field"] == field
    response = await http.post(
        "/api/subscriptions",
        json={**good, "pushEndpoint": url.replace("/hook", "/nowhere")},
        headers=setup.sender,
    )
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "pushEndpoint"


async def _status_events(setup: Wired) -> list[int]:
    page = await setup.runtime.service.find_statuses(
        await setup.runtime.service.authenticate(setup.sender_token)
    )
    return [s.id for s in page.content]


async def _webhook_jobs(setup: Wired) -> list[dict[str, Any]]:
    async with setup.runtime.database.read() as conn:
        rows = await conn.execute(sa.select(outbox.c.payload).where(outbox.c.kind == "webhook"))
        return [json.loads(r.payload) for r in rows]


async def test_status_events_fan_out_once_and_deliver_signed(
    http: TestClient[Any, Any], setup: Wired, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    webhooks = setup.runtime.webhooks
    created, secret = await webhooks.create(
        (await setup.runtime.service.authenticate(setup.sender_token)).id,
        {"name": "all", "pushEndpoint": url, "resource": "all", "event": "all"},
        ping=False,
    )
    filtered, _ = await webhooks.create(
        (await setup.runtime.service.authenticate(setup.sender_token)).id,
        {
            "name": "failures",
            "pushEndpoint": url,
            "resource": "all",
            "event": "all",
            "filter": "status=FEIL",
        },
        ping=False,
    )
    # the receiver's subscription never hears of the sender's messages
    await webhooks.create(
        (await setup.runtime.service.authenticate(setup.receiver_token)).id,
        {"name": "theirs", "pushEndpoint": url, "resource": "all", "event": "all"},
        ping=False,
    )
    sbd = arkivmelding_sbd()
    await http.post("/api/messages/out", json=sbd, headers=setup.sender)
    (event_id,) = await _status_events(setup)
    assert await webhooks.on_status({"status_event_id": event_id}) == 1
    assert await webhooks.on_status({"status_event_id": event_id}) == 0  # redelivered job
    jobs = await _webhook_jobs(setup)
    assert len(jobs) == 1
    await webhooks.deliver(jobs[0])
    await webhooks.deliver(jobs[0])  # redelivered: already done
    assert len(hooks.received) == 1
    headers, body = hooks.received[0]
    assert verify_signature(
        secret,
        timestamp=headers["X-Budstikke-Timestamp"],
        signature=headers["X-Budstikke-Signature"],
        body=body,
    )
    assert headers["X-Budstikke-Delivery"] == str(jobs[0]["delivery_id"])
    event = json.loads(body)
    message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"
    ]
    assert event == {
        "createdTs": event["createdTs"],
        "resource": "messages",
        "event": "status",
        "messageId": message_id,
        "conversationId": event["conversationId"],
        "direction": "OUTGOING",
        "serviceIdentifier": "DPO",
        "status": "OPPRETTET",
        "description": event["description"],
    }
    assert created.id != filtered.id


async def test_failed_deliveries_retry_then_give_up(
    http: TestClient[Any, Any], setup: Wired, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    hooks.status = 500
    webhooks = setup.runtime.webhooks
    client = await setup.runtime.service.authenticate(setup.sender_token)
    await webhooks.create(
        client.id,
        {"name": "all", "pushEndpoint": url, "resource": "all", "event": "all"},
        ping=False,
    )
    await http.post("/api/messages/out", json=arkivmelding_sbd(), headers=setup.sender)
    (event_id,) = await _status_events(setup)
    await webhooks.on_status({"status_event_id": event_id})
    (job,) = await _webhook_jobs(setup)
    with pytest.raises(TransientDeliveryError):
        await webhooks.deliver(job)
    await webhooks.deliver(job)  # the second (last) attempt: given up, no error for a retry
    await webhooks.deliver(job)  # nothing more is sent
    assert len(hooks.received) == 2
    (failed,) = await webhooks.failed_deliveries(client.id)
    assert failed["attempts"] == 2
    assert "gave up" in failed["last_error"]
    async with setup.runtime.database.read() as conn:
        row = (await conn.execute(sa.select(webhook_deliveries))).one()
    assert row.delivered_at is None


async def test_timeouts_are_transient(setup: Wired, aiohttp_server: ServerFactory) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", slow)
    server = await aiohttp_server(app)
    webhooks = setup.runtime.webhooks
    webhooks._timeout = 0.2
    await webhooks.close()
    with pytest.raises(InvalidInput):
        await webhooks.create(
            1,
            {
                "name": "slow",
                "pushEndpoint": str(server.make_url("/hook")),
                "resource": "all",
                "event": "all",
            },
        )
