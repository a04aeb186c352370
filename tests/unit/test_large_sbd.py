"""An XML SBD over the stream threshold through the message API: streamed to the file store on
create, kept as a file with only its header in the database, idempotent on its bytes, sent, and
popped by the receiving system exactly as it was created.

The threshold is lowered to 64 KiB so that a 1 MB SBD takes the streamed path."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from access_point.messages import SBD_FILENAME, SBD_ROLE
from adapters.db.schema import message_files, messages
from sbdh.jsonform import read_python
from sbdh.pki import DevPki
from sbdh.xmlform import sbd_to_xml
from tests.unit.api_helpers import Wired, arkivmelding_sbd, wired
from tests.unit.as4.conftest import SBD

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
THRESHOLD = 64 * 1024
INSTANCE = b"6f3a2d5e-1b7c-4d7e-9a51-0c2b8e4f6a10"


def large_sbd(message_id: str, size: int = 1_000_000, *, note: bytes = b"N") -> bytes:
    """The sample Peppol SBD (991825827 to 974760673) with ``message_id``, padded with notes
    to about ``size`` bytes."""
    anchor = b"<ID>"
    notes = b"".join(
        b"<Note>" + note * 1000 + str(i).encode() + b"</Note>\n" for i in range(size // 1020)
    )
    return SBD.replace(INSTANCE, message_id.encode(), 1).replace(anchor, notes + anchor, 1)


@pytest.fixture
async def setup(tmp_path: Path, dev_pki: DevPki) -> AsyncIterator[Wired]:
    async for value in wired(
        tmp_path,
        dev_pki.access_points["PNO000001"],
        run_workers=True,
        sbd_stream_threshold=THRESHOLD,
    ):
        yield value


@pytest.fixture
async def http(setup: Wired, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    return await aiohttp_client(setup.runtime.app)


async def _post_in_pieces(
    http: TestClient[Any, Any], setup: Wired, sbd: bytes, *, chunked: bool = False
) -> Any:
    """POST the SBD; with ``chunked``, without a Content-Length."""

    async def pieces() -> AsyncIterator[bytes]:
        for at in range(0, len(sbd), 100_000):
            yield sbd[at : at + 100_000]

    return await http.post(
        "/api/messages/out",
        data=pieces() if chunked else sbd,
        headers={**setup.sender, "Content-Type": "application/xml"},
    )


async def _wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_large_sbd_is_created_streamed_sent_and_popped_unchanged(
    http: TestClient[Any, Any], setup: Wired, chunked: bool
) -> None:
    message_id = str(uuid.uuid4())
    sbd = large_sbd(message_id)
    response = await _post_in_pieces(http, setup, sbd, chunked=chunked)
    assert response.status == 200, await response.text()
    body = await response.json()
    header = body["standardBusinessDocumentHeader"]
    assert header["documentIdentification"]["instanceIdentifier"] == message_id
    marker = body["detachedDocument"]
    assert marker["localName"] == "Invoice"
    assert marker["sbdSize"] == len(sbd)

    # the database holds the header and the marker, the file store the bytes
    database = setup.runtime.database
    async with database.read() as connection:
        row = (
            await connection.execute(
                sa.select(messages.c.id, messages.c.sbd_json, messages.c.message_type).where(
                    messages.c.message_id == message_id
                )
            )
        ).one()
        files = (
            await connection.execute(
                sa.select(message_files).where(message_files.c.message_pk == row.id)
            )
        ).all()
    assert len(row.sbd_json) < 5000
    assert row.message_type == "Invoice"
    [kept] = files
    assert (kept.role, kept.filename, kept.size) == (SBD_ROLE, SBD_FILENAME, len(sbd))
    stored = await setup.runtime.service.files.read_bytes(kept.storage_id, limit=len(sbd))
    assert stored == sbd

    got = await http.get(f"/api/messages/out/{message_id}", headers=setup.sender)
    assert await got.json() == body
    # the SBD is the message, not one of its files
    view = await setup.runtime.service.get_outgoing(
        (await setup.runtime.service.authenticate(setup.sender_token)), message_id
    )
    assert view.files == ()

    response = await http.post(f"/api/messages/out/{message_id}", headers=setup.sender)
    assert response.status == 200, await response.text()

    # both organisations are hosted here: delivered locally, popped by the receiving system
    async def delivered() -> bool:
        peeked = await http.get("/api/messages/in/peek", headers=setup.receiver)
        return peeked.status == 200

    await _wait_for(delivered, "the message in the receiver's inbox")
    popped = await http.get(f"/api/messages/in/pop/{message_id}", headers=setup.receiver)
    assert popped.status == 200
    with zipfile.ZipFile(io.BytesIO(await popped.read())) as container:
        assert container.read(SBD_FILENAME) == sbd


async def test_the_same_bytes_again_are_the_same_message_and_other_bytes_a_conflict(
    http: TestClient[Any, Any], setup: Wired
) -> None:
    message_id = str(uuid.uuid4())
    sbd = large_sbd(message_id)
    first = await _post_in_pieces(http, setup, sbd)
    assert first.status == 200, await first.text()
    again = await _post_in_pieces(http, setup, sbd, chunked=True)
    assert again.status == 200, await again.text()
    assert await again.json() == await first.json()
    other = await _post_in_pieces(http, setup, large_sbd(message_id, note=b"M"))
    assert other.status == 409, await other.text()
    problem = await other.json()
    assert "sbdSha256" in problem["detail"]
    # one message, one kept copy of its SBD: the repeats left nothing behind
    database = setup.runtime.database
    async with database.read() as connection:
        count = (await connection.execute(sa.select(sa.func.count()).select_from(messages))).one()
        kept = (
            await connection.execute(sa.select(sa.func.count()).select_from(message_files))
        ).one()
    assert (count[0], kept[0]) == (1, 1)
    root = setup.runtime.service.files.root
    assert len([p for p in root.rglob("*") if p.is_file()]) == 1


async def test_a_large_sbd_that_breaks_the_rules_is_refused_and_nothing_is_kept(
    http: TestClient[Any, Any], setup: Wired
) -> None:
    broken = large_sbd(str(uuid.uuid4())).replace(b"<Type>Invoice</Type>", b"<Type>X</Type>", 1)
    response = await _post_in_pieces(http, setup, broken)
    assert response.status == 400, await response.text()
    assert "invalid-type" in await response.text()
    truncated = large_sbd(str(uuid.uuid4()))[:-100]
    response = await _post_in_pieces(http, setup, truncated, chunked=True)
    assert response.status == 400, await response.text()
    assert "xml-well-formed" in await response.text()
    root = setup.runtime.service.files.root
    assert not root.exists() or not [p for p in root.rglob("*") if p.is_file()]


async def test_a_large_sbd_for_an_organisation_the_client_does_not_hold_is_forbidden(
    http: TestClient[Any, Any], setup: Wired
) -> None:
    sbd = large_sbd(str(uuid.uuid4()))
    response = await http.post(
        "/api/messages/out",
        data=sbd,
        headers={**setup.receiver, "Content-Type": "application/xml"},
    )
    assert response.status == 403, await response.text()


async def test_the_marker_is_refused_from_a_client(
    http: TestClient[Any, Any], setup: Wired
) -> None:
    created = await _post_in_pieces(http, setup, large_sbd(str(uuid.uuid4())))
    value = await created.json()
    value["standardBusinessDocumentHeader"]["documentIdentification"]["instanceIdentifier"] = str(
        uuid.uuid4()
    )
    response = await http.post("/api/messages/out", json=value, headers=setup.sender)
    assert response.status == 400, await response.text()
    assert "detachedDocument" in await response.text()


async def test_a_large_eformidling_sbd_is_refused(http: TestClient[Any, Any], setup: Wired) -> None:
    value = arkivmelding_sbd()
    value["arkivmelding"]["tittel"] = "x" * 100_000
    document = read_python(value).document
    assert document is not None
    response = await http.post(
        "/api/messages/out",
        data=sbd_to_xml(document),
        headers={**setup.sender, "Content-Type": "application/xml"},
    )
    assert response.status == 413, await response.text()
    assert "eFormidling" in (await response.json())["detail"]


async def test_a_large_json_body_still_takes_the_whole_path(
    http: TestClient[Any, Any], setup: Wired
) -> None:
    value = arkivmelding_sbd()
    value["arkivmelding"]["tittel"] = "x" * 100_000  # over the threshold, under the body limit
    response = await http.post(
        "/api/messages/out", data=json.dumps(value).encode(), headers=setup.sender
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["arkivmelding"]["tittel"] == "x" * 100_000


async def test_a_large_sbd_carries_no_other_files(http: TestClient[Any, Any], setup: Wired) -> None:
    message_id = str(uuid.uuid4())
    created = await _post_in_pieces(http, setup, large_sbd(message_id))
    assert created.status == 200
    upload = await http.put(
        f"/api/messages/out/{message_id}",
        data=b"%PDF-1.4",
        headers={
            **setup.sender,
            "Content-Type": "application/pdf",
            "Content-Disposition": 'attachment; filename="a.pdf"',
        },
    )
    assert upload.status == 200, await upload.text()
    response = await http.post(f"/api/messages/out/{message_id}", headers=setup.sender)
    assert response.status == 400, await response.text()
    assert "no other files" in await response.text()
