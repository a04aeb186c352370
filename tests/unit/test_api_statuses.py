"""Statuses (search, per message, the pull feed) and conversations over the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from sbdh.pki import DevPki
from tests.unit.api_helpers import Wired, arkivmelding_sbd, wired

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def setup(tmp_path: Path, dev_pki: DevPki) -> AsyncIterator[Wired]:
    async for value in wired(tmp_path, dev_pki.access_points["PNO000001"]):
        yield value


@pytest.fixture
async def http(setup: Wired, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    return await aiohttp_client(setup.runtime.app)


async def _create(http: TestClient[Any, Any], setup: Wired) -> str:
    sbd = arkivmelding_sbd()
    response = await http.post("/api/messages/out", json=sbd, headers=setup.sender)
    assert response.status == 200
    return str(
        sbd["standardBusinessDocumentHeader"]["documentIdentification"]["instanceIdentifier"]
    )


async def test_status_feed_peek_and_delete(http: TestClient[Any, Any], setup: Wired) -> None:
    first = await _create(http, setup)
    second = await _create(http, setup)
    seen = []
    while True:
        response = await http.get("/api/statuses/peek", headers=setup.sender)
        if response.status == 204:
            break
        status = await response.json()
        seen.append((status["messageId"], status["status"]))
        response = await http.delete(f"/api/statuses/{status['id']}", headers=setup.sender)
        assert response.status == 200
        response = await http.delete(f"/api/statuses/{status['id']}", headers=setup.sender)
        assert response.status == 404
    assert seen == [(first, "OPPRETTET"), (second, "OPPRETTET")]
    # the receiver's feed never had them
    response = await http.get("/api/statuses/peek", headers=setup.receiver)
    assert response.status == 204


async def test_delete_status_needs_a_number(http: TestClient[Any, Any], setup: Wired) -> None:
    response = await http.delete("/api/statuses/abc", headers=setup.sender)
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "id"


async def test_status_search_filters(http: TestClient[Any, Any], setup: Wired) -> None:
    message_id = await _create(http, setup)
    await _create(http, setup)
    response = await http.get(
        f"/api/statuses?messageId={message_id}&status=OPPRETTET", headers=setup.sender
    )
    page = await response.json()
    assert [s["messageId"] for s in page["content"]] == [message_id]
    response = await http.get("/api/statuses?status=LEVERT", headers=setup.sender)
    assert (await response.json())["totalElements"] == 0
    response = await http.get("/api/statuses?size=1&page=1", headers=setup.sender)
    page = await response.json()
    assert page["totalElements"] == 2
    assert page["number"] == 1
    assert page["numberOfElements"] == 1
    response = await http.get("/api/statuses?fromDateTime=yesterday", headers=setup.sender)
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "fromDateTime"


async def test_conversations(http: TestClient[Any, Any], setup: Wired) -> None:
    message_id = await _create(http, setup)
    response = await http.get(f"/api/conversations/messageId/{message_id}", headers=setup.sender)
    assert response.status == 200
    conversation = await response.json()
    assert conversation["messageId"] == message_id
    assert conversation["direction"] == "OUTGOING"
    assert [s["status"] for s in conversation["messageStatuses"]] == ["OPPRETTET"]
    response = await http.get(f"/api/conversations/{conversation['id']}", headers=setup.sender)
    assert (await response.json())["messageId"] == message_id
    response = await http.get("/api/conversations", headers=setup.sender)
    assert (await response.json())["totalElements"] == 1
    response = await http.get("/api/conversations/queue", headers=setup.sender)
    assert (await response.json())["totalElements"] == 1
    response = await http.get(f"/api/conversations/{conversation['id']}", headers=setup.receiver)
    assert response.status == 404
    response = await http.get("/api/conversations/x1", headers=setup.sender)
    assert response.status == 400
