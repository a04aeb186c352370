"""The NextMove message API over a real socket: create, upload, send, peek, pop, acknowledge;
idempotent create; problem details that name the field; isolation between clients."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from sbdh.pki import DevPki
from tests.unit.api_helpers import (
    PDF,
    RECEIVER,
    SENDER,
    Wired,
    arkivmelding_sbd,
    arkivmelding_xml,
    wired,
)

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def setup(tmp_path: Path, dev_pki: DevPki) -> AsyncIterator[Wired]:
    async for value in wired(tmp_path, dev_pki.access_points["PNO000001"], run_workers=True):
        yield value


@pytest.fixture
async def http(setup: Wired, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    return await aiohttp_client(setup.runtime.app)


async def _create_upload_send(http: TestClient[Any, Any], setup: Wired) -> str:
    sbd = arkivmelding_sbd()
    message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"
    ]
    response = await http.post("/api/messages/out", json=sbd, headers=setup.sender)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (
        body["standardBusinessDocumentHeader"]["documentIdentification"]["instanceIdentifier"]
        == message_id
    )
    for name, data, mime in (
        ("arkivmelding.xml", arkivmelding_xml(), "application/xml"),
        ("vedtak.pdf", PDF, "application/pdf"),
    ):

        async def chunks(data: bytes = data) -> AsyncIterator[bytes]:
            for i in range(0, len(data), 7):
                yield data[i : i + 7]

        response = await http.put(
            f"/api/messages/out/{message_id}",
            data=chunks(),
            headers={
                **setup.sender,
                "Content-Type": mime,
                "Content-Disposition": f'attachment; filename="{name}"',
            },
        )
        assert response.status == 200, await response.text()
    response = await http.post(f"/api/messages/out/{message_id}", headers=setup.sender)
    assert response.status == 200, await response.text()
    return message_id


async def _wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_create_upload_send_and_receive(http: TestClient[Any, Any], setup: Wired) -> None:
    message_id = await _create_upload_send(http, setup)

    peeked: dict[str, Any] = {}

    async def arrived() -> bool:
        response = await http.get("/api/messages/in/peek", headers=setup.receiver)
        if response.status == 204:
            return False
        assert response.status == 200, await response.text()
        peeked.update(await response.json())
        return True

    await _wait_for(arrived, what="the message in the receiver's inbox")
    ident = peeked["standardBusinessDocumentHeader"]["documentIdentification"]
    assert ident["instanceIdentifier"] == message_id

    response = await http.get(
        f"/api/messages/in/pop/{message_id}",
        headers={**setup.receiver, "Accept": "application/octet-stream"},
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    container = await response.read()
    names = zipfile.ZipFile(io.BytesIO(container)).namelist()
    assert "arkivmelding.xml" in names
    assert "vedtak.pdf" in names

    response = await http.delete(f"/api/messages/in/{message_id}", headers=setup.receiver)
    assert response.status == 200

    async def levert() -> bool:
        response = await http.get(f"/api/statuses/{message_id}", headers=setup.sender)
        statuses = [s["status"] for s in (await response.json())["content"]]
        return "LEVERT" in statuses

    await _wait_for(levert, what="LEVERT on the sender's statuses")
    response = await http.get(f"/api/statuses/{message_id}", headers=setup.sender)
    page = await response.json()
    assert [s["status"] for s in page["content"]] == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    assert page["totalElements"] == 4


async def test_create_is_idempotent_and_conflicts_name_the_field(
    http: TestClient[Any, Any], setup: Wired
) -> None:
    sbd = arkivmelding_sbd()
    first = await http.post("/api/messages/out", json=sbd, headers=setup.sender)
    again = await http.post("/api/messages/out", json=sbd, headers=setup.sender)
    assert first.status == again.status == 200
    assert await first.json() == await again.json()
    changed = json.loads(json.dumps(sbd))
    changed["arkivmelding"]["sikkerhetsnivaa"] = 4
    response = await http.post("/api/messages/out", json=changed, headers=setup.sender)
    assert response.status == 409
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["status"] == 409
    assert problem["errors"][0]["field"]


async def test_bad_sbd_gets_problem_details_naming_the_field(
    http: TestClient[Any, Any], setup: Wired
) -> None:
    sbd = arkivmelding_sbd(wrapped=True)
    header = sbd["standardBusinessDocument"]["standardBusinessDocumentHeader"]
    del header["sender"][0]["identifier"]["value"]
    header["documentIdentification"]["type"] = 5
    response = await http.post("/api/messages/out", json=sbd, headers=setup.sender)
    assert response.status == 400
    problem = await response.json()
    assert problem["type"].endswith("invalid-envelope")
    assert problem["instance"] == "/api/messages/out"
    fields = {e["field"] for e in problem["errors"]}
    assert "standardBusinessDocument.standardBusinessDocumentHeader.sender[0].identifier" in fields
    assert (
        "standardBusinessDocument.standardBusinessDocumentHeader.documentIdentification.type"
        in fields
    )
    assert "Traceback" not in await response.text()


async def test_malformed_json_is_a_problem(http: TestClient[Any, Any], setup: Wired) -> None:
    response = await http.post(
        "/api/messages/out",
        data=b"{not json",
        headers={**setup.sender, "Content-Type": "application/json"},
    )
    assert response.status == 400
    problem = await response.json()
    assert "JSON" in problem["detail"]


async def test_sending_as_another_organisation_is_forbidden(
    http: TestClient[Any, Any], setup: Wired
) -> None:
    sbd = arkivmelding_sbd(sender=RECEIVER, receiver=SENDER)
    response = await http.post("/api/messages/out", json=sbd, headers=setup.sender)
    assert response.status == 403
    problem = await response.json()
    assert problem["errors"][0]["field"] == "standardBusinessDocumentHeader.sender"


async def test_another_client_never_sees_the_message(
    http: TestClient[Any, Any], setup: Wired
) -> None:
    sbd = arkivmelding_sbd()
    message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"
    ]
    await http.post("/api/messages/out", json=sbd, headers=setup.sender)
    response = await http.get(f"/api/messages/out/{message_id}", headers=setup.receiver)
    assert response.status == 404
    response = await http.get("/api/messages/out", headers=setup.receiver)
    assert (await response.json())["totalElements"] == 0
    response = await http.get(f"/api/statuses/{message_id}", headers=setup.receiver)
    assert (await response.json())["content"] == []
    response = await http.get("/api/messages/out", headers=setup.sender)
    assert (await response.json())["totalElements"] == 1


async def test_upload_needs_a_file_name(http: TestClient[Any, Any], setup: Wired) -> None:
    sbd = arkivmelding_sbd()
    message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"
    ]
    await http.post("/api/messages/out", json=sbd, headers=setup.sender)
    response = await http.put(
        f"/api/messages/out/{message_id}",
        data=b"abc",
        headers={**setup.sender, "Content-Type": "text/plain"},
    )
    assert response.status == 400
    problem = await response.json()
    assert problem["errors"][0]["field"] == "Content-Disposition"
    response = await http.put(
        f"/api/messages/out/{message_id}",
        data=b"abc",
        headers={
            **setup.sender,
            "Content-Type": "text/plain",
            "Content-Disposition": 'attachment; filename="../etc/passwd"',
        },
    )
    assert response.status == 400


async def test_upload_over_the_file_limit_is_413(
    tmp_path: Path, dev_pki: DevPki, aiohttp_client: ClientFactory
) -> None:
    async for setup in wired(tmp_path, dev_pki.access_points["PNO000001"], max_file_size=1000):
        http = await aiohttp_client(setup.runtime.app)
        sbd = arkivmelding_sbd()
        message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
            "instanceIdentifier"
        ]
        await http.post("/api/messages/out", json=sbd, headers=setup.sender)

        async def big() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 500

        response = await http.put(
            f"/api/messages/out/{message_id}",
            data=big(),
            headers={
                **setup.sender,
                "Content-Type": "text/plain",
                "Content-Disposition": "attachment; filename=big.txt",
            },
        )
        assert response.status == 413
        assert (await response.json())["code"] == "payload-too-large"


async def test_multipart_create_and_send(http: TestClient[Any, Any], setup: Wired) -> None:
    sbd = arkivmelding_sbd()
    form = aiohttp.FormData()
    form.add_field("sbd", json.dumps(sbd), content_type="application/json")
    form.add_field(
        "Arkivmelding",
        arkivmelding_xml(),
        filename="arkivmelding.xml",
        content_type="application/xml",
    )
    form.add_field("Vedtak", PDF, filename="vedtak.pdf", content_type="application/pdf")
    response = await http.post("/api/messages/out/multipart", data=form, headers=setup.sender)
    assert response.status == 200, await response.text()
    message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"
    ]

    async def sent() -> bool:
        response = await http.get(f"/api/statuses/{message_id}", headers=setup.sender)
        return "MOTTATT" in {s["status"] for s in (await response.json())["content"]}

    await _wait_for(sent, what="MOTTATT")


async def test_multipart_without_sbd_names_the_field(
    http: TestClient[Any, Any], setup: Wired
) -> None:
    form = aiohttp.FormData()
    form.add_field("Vedtak", PDF, filename="vedtak.pdf", content_type="application/pdf")
    response = await http.post("/api/messages/out/multipart", data=form, headers=setup.sender)
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "sbd"


async def test_delete_unsent_message(http: TestClient[Any, Any], setup: Wired) -> None:
    sbd = arkivmelding_sbd()
    message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"
    ]
    await http.post("/api/messages/out", json=sbd, headers=setup.sender)
    response = await http.delete(f"/api/messages/out/{message_id}", headers=setup.sender)
    assert response.status == 200
    response = await http.get(f"/api/messages/out/{message_id}", headers=setup.sender)
    assert response.status == 404
    assert (await response.json())["code"] == "not-found"


async def test_peek_on_an_empty_inbox_is_204(http: TestClient[Any, Any], setup: Wired) -> None:
    response = await http.get("/api/messages/in/peek", headers=setup.receiver)
    assert response.status == 204


async def test_paging_parameters_are_checked(http: TestClient[Any, Any], setup: Wired) -> None:
    response = await http.get("/api/messages/in?size=0", headers=setup.receiver)
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "size"
    response = await http.get("/api/messages/in?serviceIdentifier=NOPE", headers=setup.receiver)
    assert response.status == 400
    assert (await response.json())["errors"][0]["field"] == "serviceIdentifier"
