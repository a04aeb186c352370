"""MessageService, delivery and incoming: local delivery, peek/pop/acknowledge, statuses,
the status feed, conversations, failure and expiry, and isolation between clients."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from access_point.messages import (
    Client,
    ConversationQuery,
    MessageQuery,
    MessageService,
    PageRequest,
    StatusQuery,
    Upload,
)
from access_point.statuses import Direction, MessageStatus
from adapters.db.schema import outbox, status_events
from sbdh.errors import Conflict, DecryptionError, NoRoute, NotFound
from sbdh.model import StandardBusinessDocument
from sbdh.package import read_container
from sbdh.pki import DevPki
from sbdh.trust import TrustStore
from tests.store_fixtures import *  # noqa: F403
from tests.store_fixtures import (
    ARKIVMELDING_XML,
    ORG_A,
    ORG_B,
    ORG_C,
    Clock,
    arkivmelding,
    client_for,
    kvittering,
)

S = MessageStatus


async def sent(
    service: MessageService, client: Client, sbd: StandardBusinessDocument | None = None
) -> str:
    view = await service.create_and_send(
        client,
        sbd or arkivmelding(),
        [
            Upload("arkivmelding.xml", "application/xml", ARKIVMELDING_XML),
            Upload("vedtak.pdf", "application/pdf", b"%PDF-1.7 vedtak", title="Vedtak"),
        ],
    )
    return view.message_id


async def delivered(service: MessageService, client: Client) -> str:
    message_id = await sent(service, client)
    await service.deliver_locally(message_id)
    return message_id


async def history(service: MessageService, client: Client, message_id: str) -> list[str]:
    page = await service.message_statuses(client, message_id)
    return [s.status.value for s in page.content]


@pytest.fixture
async def a(service: MessageService) -> Client:
    return await client_for(service, ORG_A, name="a")


@pytest.fixture
async def b(service: MessageService) -> Client:
    return await client_for(service, ORG_B, name="b")


# ------------------------------------------------------------------ delivery


async def test_local_delivery(service: MessageService, a: Client, b: Client) -> None:
    message_id = await sent(service, a)
    result = await service.deliver_locally(message_id)
    assert result.delivered
    assert await history(service, a, message_id) == ["OPPRETTET", "SENDT", "MOTTATT"]
    assert await history(service, b, message_id) == ["INNKOMMENDE_MOTTATT"]
    incoming = await service.get_incoming(b, message_id)
    assert incoming.direction is Direction.INCOMING
    assert [f.filename for f in incoming.files] == ["arkivmelding.xml", "vedtak.pdf"]
    # a redelivered job changes nothing
    again = await service.deliver_locally(message_id)
    assert not again.delivered
    assert await history(service, a, message_id) == ["OPPRETTET", "SENDT", "MOTTATT"]


async def test_no_route_for_receivers_not_hosted(service: MessageService, a: Client) -> None:
    message_id = await sent(service, a, arkivmelding(receiver=ORG_C))
    with pytest.raises(NoRoute):
        await service.deliver_locally(message_id)
    failed = await service.mark_failed(message_id, "receiver not served")
    assert failed is not None
    assert failed.status is S.FEIL
    assert failed.description == "receiver not served"
    assert await service.mark_failed(message_id, "again") is None
    assert await history(service, a, message_id) == ["OPPRETTET", "FEIL"]


async def test_configured_organisations_are_hosted(
    service: MessageService, a: Client, tmp_path: Path
) -> None:
    from dataclasses import replace

    from sbdh.identifiers import OrganisationNumber

    service.settings = replace(service.settings, organisations=(OrganisationNumber(ORG_C),))
    message_id = await sent(service, a, arkivmelding(receiver=ORG_C))
    assert (await service.deliver_locally(message_id)).delivered


async def test_deliver_checks(service: MessageService, a: Client, b: Client) -> None:
    with pytest.raises(NotFound):
        await service.deliver_locally("nope")
    view = await service.create(a, arkivmelding())
    with pytest.raises(Conflict):
        await service.deliver_locally(view.message_id)


# ------------------------------------------------------------------ inbox


async def test_peek_locks_until_timeout(
    service: MessageService, a: Client, b: Client, clock: Clock
) -> None:
    first = await delivered(service, a)
    second = await delivered(service, a)
    peeked = await service.peek(b)
    assert peeked is not None
    assert peeked.message_id == first
    assert peeked.locked_until == clock.now + service.settings.inbox_lock_timeout
    peeked2 = await service.peek(b)
    assert peeked2 is not None
    assert peeked2.message_id == second
    assert await service.peek(b) is None
    # the lock expires: the message goes to the next consumer
    clock.advance(service.settings.inbox_lock_timeout + timedelta(seconds=1))
    again = await service.peek(b)
    assert again is not None
    assert again.message_id == first


async def test_peek_filters(service: MessageService, a: Client, b: Client) -> None:
    first = await delivered(service, a)
    await delivered(service, a)
    assert await service.peek(b, MessageQuery(process="urn:other")) is None
    found = await service.find_incoming(b, MessageQuery(message_id=first))
    assert [m.message_id for m in found.content] == [first]


async def test_concurrent_peeks_never_share(service: MessageService, a: Client, b: Client) -> None:
    ids = {await delivered(service, a) for _ in range(8)}
    results = await asyncio.gather(*(service.peek(b) for _ in range(12)))
    got = [r.message_id for r in results if r is not None]
    assert len(got) == len(set(got)) == 8
    assert set(got) == ids


async def test_pop_streams_a_signed_asice(  # noqa: PLR0917 - fixtures
    service: MessageService, a: Client, b: Client, dev_pki: DevPki, tmp_path: Path, clock: Clock
) -> None:
    message_id = await delivered(service, a)
    popped = await service.pop(b, message_id)
    assert popped is not None
    data = b"".join([chunk async for chunk in popped.chunks])
    opened = read_container(
        io.BytesIO(data),
        trust=TrustStore((dev_pki.root.certificate,)),
        out_dir=tmp_path / "out",
        now=clock.now,
    )
    assert opened.manifest.main_document.href == "arkivmelding.xml"
    assert (tmp_path / "out" / "vedtak.pdf").read_bytes() == b"%PDF-1.7 vedtak"


async def test_pop_of_tampered_file_fails(service: MessageService, a: Client, b: Client) -> None:
    message_id = await delivered(service, a)
    for path in service.files.root.rglob("*"):
        if path.is_file():
            raw = bytearray(path.read_bytes())
            raw[-1] ^= 1
            path.write_bytes(bytes(raw))
    popped = await service.pop(b, message_id)
    assert popped is not None
    with pytest.raises(DecryptionError):
        async for _ in popped.chunks:
            pass


async def test_pop_stopped_early_releases(service: MessageService, a: Client, b: Client) -> None:
    message_id = await delivered(service, a)
    popped = await service.pop(b, message_id)
    assert popped is not None
    stream = popped.chunks
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]


async def test_acknowledge_delivers(service: MessageService, a: Client, b: Client) -> None:
    message_id = await delivered(service, a)
    acknowledged = await service.acknowledge(b, message_id)
    assert acknowledged.status is S.INNKOMMENDE_LEVERT
    assert await history(service, a, message_id) == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    assert await history(service, b, message_id) == ["INNKOMMENDE_MOTTATT", "INNKOMMENDE_LEVERT"]
    # repeat: nothing recorded twice
    await service.acknowledge(b, message_id)
    assert await history(service, b, message_id) == ["INNKOMMENDE_MOTTATT", "INNKOMMENDE_LEVERT"]
    assert await service.peek(b) is None
    assert (await service.find_incoming(b)).total_elements == 0
    with pytest.raises(NotFound):
        await service.pop(b, message_id)


async def test_kvittering_marks_lest(service: MessageService, a: Client, b: Client) -> None:
    original = arkivmelding()
    message_id = await sent(service, a, original)
    await service.deliver_locally(message_id)
    await service.acknowledge(b, message_id)
    receipt = await service.create_and_send(b, kvittering(original), [])
    result = await service.deliver_locally(receipt.message_id)
    assert result.read_receipt
    assert await history(service, a, message_id) == [
        "OPPRETTET",
        "SENDT",
        "MOTTATT",
        "LEVERT",
        "LEST",
    ]
    lest = await service.find_statuses(a, StatusQuery(message_id=message_id, status=S.LEST))
    assert lest.content[0].raw_receipt is not None
    # the receipt itself is in A's inbox
    peeked = await service.peek(a)
    assert peeked is not None
    assert peeked.message_id == receipt.message_id
    assert await service.pop(a, receipt.message_id) is None  # no files: nothing to pop


async def test_a_failed_kvittering_says_so_in_lest(
    service: MessageService, a: Client, b: Client
) -> None:
    original = arkivmelding()
    message_id = await sent(service, a, original)
    await service.deliver_locally(message_id)
    body = {
        "receiptType": "ERROR",
        "relatedToMessageId": original.instance_identifier,
        "messages": [{"code": "NOARK-FILE-MISSING", "text": "vedlegg.pdf mangler"}],
    }
    receipt = await service.create_and_send(b, kvittering(original, body=body), [])
    await service.deliver_locally(receipt.message_id)
    lest = await service.find_statuses(a, StatusQuery(message_id=message_id, status=S.LEST))
    description = lest.content[0].description or ""
    assert "ERROR" in description
    assert "did not file" in description
    assert "NOARK-FILE-MISSING: vedlegg.pdf mangler" in description


# ------------------------------------------------------------------ isolation


async def test_clients_see_only_their_organisations(
    service: MessageService, a: Client, b: Client
) -> None:
    c = await client_for(service, ORG_C, name="c")
    message_id = await delivered(service, a)
    assert await service.peek(c) is None
    for call in (
        service.get_incoming(c, message_id),
        service.pop(c, message_id),
        service.acknowledge(c, message_id),
        service.get_outgoing(c, message_id),
        service.get_outgoing(b, message_id),  # B is the receiver, not the sender
        service.get_incoming(a, message_id),  # A is the sender, not the receiver
        service.conversation_by_message_id(c, message_id),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await service.message_statuses(c, message_id)).total_elements == 0
    assert await service.peek_status(c) is None
    assert (await service.find_conversations(c)).total_elements == 0
    # A sees only outgoing statuses, B only incoming ones
    a_page = await service.find_statuses(a)
    assert {s.direction for s in a_page.content} == {Direction.OUTGOING}
    b_page = await service.find_statuses(b)
    assert {s.direction for s in b_page.content} == {Direction.INCOMING}


# ------------------------------------------------------------------ statuses and the feed


async def test_statuses_never_recorded_twice(service: MessageService, a: Client) -> None:
    message_id = await sent(service, a)
    assert await service.record_status(message_id, S.SENDT) is not None
    assert await service.record_status(message_id, S.SENDT) is None
    assert await service.record_status(message_id, S.MOTTATT, raw_receipt="<r/>") is not None
    # a late SENDT after MOTTATT, and a repeated receipt, are no-ops
    assert await service.record_status(message_id, S.SENDT) is None
    await asyncio.gather(*(service.record_status(message_id, S.LEVERT) for _ in range(5)))
    assert await history(service, a, message_id) == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    async with service.database.read() as connection:
        kinds = (
            await connection.execute(
                sa.select(outbox.c.kind, outbox.c.payload).where(outbox.c.kind == "status")
            )
        ).all()
        events = (
            await connection.execute(sa.select(sa.func.count()).select_from(status_events))
        ).scalar_one()
    assert len(kinds) == events == 4
    assert {json.loads(p)["status"] for _, p in kinds} == {
        "OPPRETTET",
        "SENDT",
        "MOTTATT",
        "LEVERT",
    }


async def test_status_event_and_json(service: MessageService, a: Client) -> None:
    message_id = await sent(service, a)
    view = await service.record_status(message_id, S.SENDT, description="ok")
    assert view is not None
    again = await service.status_event(view.id)
    shape = again.to_json()
    assert shape["status"] == "SENDT"
    assert shape["messageId"] == message_id
    assert shape["description"] == "ok"
    assert set(shape) >= {"id", "lastUpdate", "status", "convId", "conversationId"}
    assert shape["lastUpdate"].endswith("Z")
    with pytest.raises(NotFound):
        await service.status_event(999_999)


async def test_status_feed(service: MessageService, a: Client, b: Client) -> None:
    message_id = await delivered(service, a)
    taken: list[str] = []
    while (status := await service.peek_status(a)) is not None:
        taken.append(status.status.value)
        await service.delete_status(a, status.id)
    assert taken == ["OPPRETTET", "SENDT", "MOTTATT"]
    with pytest.raises(NotFound):
        await service.delete_status(a, 1)  # taken already
    # B's feed is its own, and cannot take A's statuses
    first_b = await service.peek_status(b)
    assert first_b is not None
    assert first_b.status is S.INNKOMMENDE_MOTTATT
    with pytest.raises(NotFound):
        await service.delete_status(b, 1)
    await service.acknowledge(b, message_id)
    levert = await service.peek_status(a)
    assert levert is not None
    assert levert.status is S.LEVERT


async def test_status_search(service: MessageService, a: Client, b: Client) -> None:
    first = await delivered(service, a)
    await delivered(service, a)
    by_status = await service.find_statuses(a, StatusQuery(status=S.SENDT))
    assert by_status.total_elements == 2
    by_message = await service.find_statuses(a, StatusQuery(message_id=first))
    assert [s.status for s in by_message.content] == [S.OPPRETTET, S.SENDT, S.MOTTATT]
    paged = await service.find_statuses(a, page=PageRequest(1, 2))
    assert paged.total_elements == 6
    assert len(paged.content) == 2


# ------------------------------------------------------------------ conversations


async def test_conversations(service: MessageService, a: Client, b: Client) -> None:
    message_id = await delivered(service, a)
    conversation = await service.conversation_by_message_id(a, message_id)
    shape = conversation.to_json()
    assert shape["direction"] == "OUTGOING"
    assert shape["senderIdentifier"] == ORG_A
    assert shape["receiverIdentifier"] == ORG_B
    assert shape["serviceIdentifier"] == "DPO"
    assert shape["messageTitle"] == "Vedtak om byggesak"
    assert [s["status"] for s in shape["messageStatuses"]] == ["OPPRETTET", "SENDT", "MOTTATT"]
    assert not shape["finished"]
    by_id = await service.conversation(a, conversation.id)
    assert by_id.message_id == message_id
    incoming = await service.conversation_by_message_id(b, message_id)
    assert incoming.direction is Direction.INCOMING
    page = await service.find_conversations(
        a, ConversationQuery(conversation_id=conversation.conversation_id)
    )
    assert page.total_elements == 1
    await service.acknowledge(b, message_id)
    finished = await service.find_conversations(a, ConversationQuery(finished=True))
    assert [c.message_id for c in finished.content] == [message_id]


# ------------------------------------------------------------------ lifetime


async def test_expire(service: MessageService, a: Client, b: Client, clock: Clock) -> None:
    unsent = (await service.create(a, arkivmelding())).message_id
    waiting = await sent(service, a, arkivmelding(receiver=ORG_C))
    done = await delivered(service, a)
    await service.acknowledge(b, done)
    assert await service.expire(clock.now) == 0
    clock.advance(service.settings.default_lifetime + timedelta(seconds=1))
    assert await service.expire(batch=1) == 2
    assert await service.expire() == 0
    assert (await history(service, a, unsent))[-1] == "LEVETID_UTLOPT"
    assert (await history(service, a, waiting))[-1] == "LEVETID_UTLOPT"
    assert (await history(service, a, done))[-1] == "LEVERT"
