"""MessageService, outgoing: create (idempotent), upload, send, one-step send, list, delete."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from access_point.messages import MessageService, PageRequest, Upload
from access_point.statuses import MessageStatus, ServiceIdentifier
from adapters.db.schema import message_files, outbox, status_events
from adapters.noark import ArkivmeldingError
from sbdh.errors import (
    Conflict,
    EnvelopeError,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)
from sbdh.jsonform import sbd_to_json
from sbdh.model import StandardBusinessDocument
from tests.store_fixtures import *  # noqa: F403
from tests.store_fixtures import (
    ARKIVMELDING_XML,
    ORG_A,
    ORG_B,
    ORG_C,
    Clock,
    arkivmelding,
    client_for,
)


async def outbox_kinds(service: MessageService) -> list[tuple[str, str]]:
    async with service.database.read() as connection:
        rows = (await connection.execute(sa.select(outbox).order_by(outbox.c.id))).all()
    return [(r.kind, r.message_id) for r in rows]


async def ready(service: MessageService, client: object, message_id: str) -> None:
    await service.upload(
        client, message_id, "arkivmelding.xml", "application/xml", None, ARKIVMELDING_XML
    )  # type: ignore[arg-type]
    await service.upload(client, message_id, "vedtak.pdf", "application/pdf", "Vedtak", b"%PDF")  # type: ignore[arg-type]


# ------------------------------------------------------------------ create


async def test_create_records_opprettet_and_outbox(service: MessageService, clock: Clock) -> None:
    a = await client_for(service, ORG_A)
    view = await service.create(a, arkivmelding())
    assert view.status is MessageStatus.OPPRETTET
    assert view.service_identifier is ServiceIdentifier.DPO
    assert not view.existing
    assert view.expires_at == clock.now + service.settings.default_lifetime
    # the default lifetime is written into the SBD, as expectedResponseDateTime
    scope = view.to_json()["standardBusinessDocumentHeader"]["businessScope"]["scope"][0]
    assert scope["scopeInformation"][0]["expectedResponseDateTime"]
    assert await outbox_kinds(service) == [("status", view.message_id)]


async def test_create_accepts_json_bytes(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    sbd = arkivmelding()
    view = await service.create(a, sbd_to_json(sbd, wrapped=False))
    assert view.message_id == sbd.instance_identifier


async def test_create_is_idempotent(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    sbd = arkivmelding()
    first = await service.create(a, sbd)
    again = await service.create(a, sbd)
    assert again.existing
    assert again.message_id == first.message_id
    assert again.sbd_json == first.sbd_json
    async with service.database.read() as connection:
        count = (
            await connection.execute(sa.select(sa.func.count()).select_from(status_events))
        ).scalar_one()
    assert count == 1


async def test_same_id_different_content_is_a_conflict_naming_the_field(
    service: MessageService,
) -> None:
    a = await client_for(service, ORG_A)
    sbd = arkivmelding()
    await service.create(a, sbd)
    changed = arkivmelding(
        message_id=sbd.instance_identifier,
        conversation_id=sbd.header.conversation_id,
        body={"sikkerhetsnivaa": 4},
    )
    with pytest.raises(Conflict) as caught:
        await service.create(a, changed)
    assert caught.value.rule == "arkivmelding.sikkerhetsnivaa"


async def test_foreign_message_id_conflicts_without_revealing(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    c = await client_for(service, ORG_C)
    sbd = arkivmelding()
    await service.create(a, sbd)
    other = arkivmelding(sender=ORG_C, message_id=sbd.instance_identifier)
    with pytest.raises(Conflict) as caught:
        await service.create(c, other)
    assert ORG_A not in str(caught.value)


async def test_sender_must_be_the_clients(service: MessageService) -> None:
    b = await client_for(service, ORG_B)
    with pytest.raises(Forbidden):
        await service.create(b, arkivmelding(sender=ORG_A))


@pytest.mark.parametrize(
    ("kwargs", "rule_part"),
    [
        ({"process": "urn:no:difi:profile:arkivmelding:nope:ver1.0"}, "identifier"),
        (
            {
                "process": "urn:no:difi:profile:arkivmelding:response:ver1.0",
            },
            "standard",
        ),
        (
            {
                "standard": "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering",
                "process": "urn:no:difi:profile:arkivmelding:response:ver1.0",
            },
            "businessMessage",
        ),
    ],
)
async def test_document_type_and_process_must_agree(
    service: MessageService, kwargs: dict[str, str], rule_part: str
) -> None:
    a = await client_for(service, ORG_A)
    with pytest.raises(InvalidInput) as caught:
        await service.create(a, arkivmelding(**kwargs))  # type: ignore[arg-type]
    assert rule_part in (caught.value.rule or "")


async def test_known_processes_are_accepted(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    view = await service.create(
        a,
        arkivmelding(
            process="urn:no:difi:profile:digitalpost:info:ver1.0",
            standard="urn:no:difi:digitalpost:xsd:digital::digital_dpv",
            message_type="digital_dpv",
            body={"tittel": "Brev", "sammendrag": "s", "innhold": "i"},
        ),
    )
    assert view.service_identifier is ServiceIdentifier.DPV


async def test_expected_response_must_be_in_the_future(
    service: MessageService, clock: Clock
) -> None:
    a = await client_for(service, ORG_A)
    with pytest.raises(InvalidInput) as caught:
        await service.create(a, arkivmelding(expected_response=clock.now - timedelta(seconds=1)))
    assert "expectedResponseDateTime" in (caught.value.rule or "")
    later = clock.now + timedelta(days=3)
    view = await service.create(a, arkivmelding(expected_response=later))
    assert view.expires_at == later


async def test_envelope_rules_apply(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    with pytest.raises(EnvelopeError):
        await service.create(a, arkivmelding(receiver="123456789"))  # bad mod-11


# ------------------------------------------------------------------ upload


async def test_upload_streams_and_is_idempotent(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    view = await service.create(a, arkivmelding())

    async def chunks() -> AsyncIterator[bytes]:
        yield b"%PDF-"
        yield b"1.7"

    first = await service.upload(a, view.message_id, "vedtak.pdf", "application/pdf", "V", chunks())
    assert first.size == 8
    again = await service.upload(
        a, view.message_id, "vedtak.pdf", "application/pdf", "V", b"%PDF-1.7"
    )
    assert again == first
    with pytest.raises(Conflict):
        await service.upload(a, view.message_id, "vedtak.pdf", "application/pdf", "V", b"other")
    stored = await service.get_outgoing(a, view.message_id)
    assert [f.filename for f in stored.files] == ["vedtak.pdf"]


async def test_upload_checks(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    b = await client_for(service, ORG_B)
    view = await service.create(a, arkivmelding())
    with pytest.raises(NotFound):
        await service.upload(b, view.message_id, "x.pdf", "application/pdf", None, b"x")
    with pytest.raises(NotFound):
        await service.upload(a, "no-such-id", "x.pdf", "application/pdf", None, b"x")
    with pytest.raises(InvalidInput):
        await service.upload(a, view.message_id, "../x.pdf", "application/pdf", None, b"x")
    with pytest.raises(PayloadTooLarge):
        await service.upload(
            a, view.message_id, "big.pdf", "application/pdf", None, b"x" * 100, max_size=99
        )
    assert not [p for p in service.files.root.rglob("*") if p.is_file()]


async def test_no_upload_after_send(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    view = await service.create(a, arkivmelding())
    await ready(service, a, view.message_id)
    await service.send(a, view.message_id)
    with pytest.raises(Conflict):
        await service.upload(a, view.message_id, "late.pdf", "application/pdf", None, b"x")


# ------------------------------------------------------------------ send


async def test_send_queues_once_without_sendt(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    view = await service.create(a, arkivmelding())
    await ready(service, a, view.message_id)
    sent = await service.send(a, view.message_id)
    assert sent.sent_at is not None
    assert sent.status is MessageStatus.OPPRETTET  # SENDT comes from the channel
    again = await service.send(a, view.message_id)
    assert again.existing
    assert await outbox_kinds(service) == [
        ("status", view.message_id),
        ("send", view.message_id),
    ]
    conversation = await service.conversation_by_message_id(a, view.message_id)
    assert conversation.message_title == "Vedtak om byggesak"


async def test_send_validates_arkivmelding_files(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    view = await service.create(a, arkivmelding())
    with pytest.raises(InvalidInput, match="no files"):
        await service.send(a, view.message_id)
    await service.upload(a, view.message_id, "vedtak.pdf", "application/pdf", None, b"%PDF")
    with pytest.raises(InvalidInput, match=r"arkivmelding\.xml"):
        await service.send(a, view.message_id)
    missing = ARKIVMELDING_XML.replace(b"vedtak.pdf", b"vedlegg.pdf")
    await service.upload(a, view.message_id, "arkivmelding.xml", "application/xml", None, missing)
    with pytest.raises(InvalidInput, match=r"vedlegg\.pdf") as caught:
        await service.send(a, view.message_id)
    assert isinstance(caught.value, ArkivmeldingError)
    assert [v.rule for v in caught.value.violations] == ["NOARK-FILE-MISSING"]
    assert await outbox_kinds(service) == [("status", view.message_id)]


async def test_send_refuses_hostile_xml(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    view = await service.create(a, arkivmelding())
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><arkivmelding>&x;</arkivmelding>'
    await service.upload(a, view.message_id, "arkivmelding.xml", "application/xml", None, bomb)
    with pytest.raises(InvalidInput):
        await service.send(a, view.message_id)


async def test_send_other_clients_message_is_not_found(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    b = await client_for(service, ORG_B)
    view = await service.create(a, arkivmelding())
    with pytest.raises(NotFound):
        await service.send(b, view.message_id)


# ------------------------------------------------------------------ one step


async def test_create_and_send(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    sbd = arkivmelding()
    files = [
        Upload("arkivmelding.xml", "application/xml", ARKIVMELDING_XML),
        Upload("vedtak.pdf", "application/pdf", b"%PDF", title="Vedtak"),
    ]
    view = await service.create_and_send(a, sbd, files)
    assert view.sent_at is not None
    assert not view.existing
    assert [f.filename for f in view.files] == ["arkivmelding.xml", "vedtak.pdf"]
    assert view.files[0].primary
    again = await service.create_and_send(a, sbd, files)
    assert again.existing


async def test_create_and_send_limits(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    limit = service.settings.max_multipart_size
    with pytest.raises(InvalidInput, match="twice"):
        await service.create_and_send(
            a,
            arkivmelding(),
            [Upload("a.pdf", "application/pdf", b"1"), Upload("a.pdf", "application/pdf", b"2")],
        )
    with pytest.raises(PayloadTooLarge):
        await service.create_and_send(
            a,
            arkivmelding(),
            [
                Upload("arkivmelding.xml", "application/xml", ARKIVMELDING_XML),
                Upload("vedtak.pdf", "application/pdf", b"x" * limit),
            ],
        )


# ------------------------------------------------------------------ get, list, delete


async def test_list_get_delete_unsent(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    b = await client_for(service, ORG_B)
    views = [await service.create(a, arkivmelding()) for _ in range(3)]
    await ready(service, a, views[0].message_id)
    await service.send(a, views[0].message_id)
    page = await service.list_outgoing(a, page=PageRequest(0, 1))
    assert page.total_elements == 2
    assert page.to_json()["totalPages"] == 2
    assert page.to_json()["content"][0]["standardBusinessDocumentHeader"]
    assert (await service.list_outgoing(b)).total_elements == 0
    with pytest.raises(NotFound):
        await service.get_outgoing(b, views[1].message_id)
    with pytest.raises(Conflict):
        await service.delete_outgoing(a, views[0].message_id)
    await service.upload(a, views[1].message_id, "x.pdf", "application/pdf", None, b"x")
    await service.delete_outgoing(a, views[1].message_id)
    with pytest.raises(NotFound):
        await service.get_outgoing(a, views[1].message_id)
    assert len([p for p in service.files.root.rglob("*") if p.is_file()]) == 2


async def test_page_shape(service: MessageService) -> None:
    a = await client_for(service, ORG_A)
    await service.create(a, arkivmelding())
    shape = (await service.list_outgoing(a)).to_json()
    assert set(shape) >= {
        "content",
        "pageable",
        "totalPages",
        "totalElements",
        "last",
        "size",
        "number",
        "sort",
        "numberOfElements",
        "first",
        "empty",
    }
    assert shape["totalElements"] == 1
    assert shape["first"]
    assert shape["last"]
    json.dumps(shape)


def test_page_request_limits() -> None:
    with pytest.raises(InvalidInput):
        PageRequest(-1)
    with pytest.raises(InvalidInput):
        PageRequest(0, 0)


async def test_clients_and_tokens(service: MessageService) -> None:
    client, token = await service.create_client("Sak", [ORG_A, ORG_B])
    assert client.organisations == {ORG_A, ORG_B}
    assert (await service.authenticate(token)).id == client.id
    from sbdh.errors import InvalidIdentifier, Unauthorized

    with pytest.raises(Unauthorized):
        await service.authenticate(token + "x")
    with pytest.raises(Unauthorized):
        await service.authenticate(None)
    with pytest.raises(InvalidIdentifier):
        await service.create_client("Bad", ["123456789"])
    async with service.database.read() as connection:
        from adapters.db.schema import api_clients

        stored = (await connection.execute(sa.select(api_clients.c.token_sha256))).scalars().all()
    assert token not in stored
    await service.disable_client(client.id)
    with pytest.raises(Unauthorized):
        await service.authenticate(token)
    assert datetime.now(UTC) - client.created_at < timedelta(minutes=5)


async def test_concurrent_one_step_sends_share_transactions(service: MessageService) -> None:
    """Many clients at once: every message stored whole, as create + upload + send would,
    in fewer transactions than messages (group commit)."""
    a = await client_for(service, ORG_A)
    count = 40
    sbds = [arkivmelding() for _ in range(count)]

    def files(index: int) -> list[Upload]:
        return [
            Upload("arkivmelding.xml", "application/xml", ARKIVMELDING_XML),
            Upload("vedtak.pdf", "application/pdf", b"%PDF-" + str(index).encode()),
        ]

    views = await asyncio.gather(
        *(service.create_and_send(a, sbd, files(i)) for i, sbd in enumerate(sbds))
    )
    assert [v.message_id for v in views] == [
        s.header.document_identification.instance_identifier for s in sbds
    ]
    assert all(v.sent_at is not None and not v.existing for v in views)
    writer = service._send_writer
    assert writer.items == count
    assert writer.rounds < count
    kinds = await outbox_kinds(service)
    for sbd in sbds:
        mine = [k for k, m in kinds if m == mid(sbd)]
        assert mine == ["status", "send"]
    async with service.database.read() as connection:
        events = (await connection.execute(sa.select(status_events))).all()
    assert len(events) == count
    for index, view in enumerate(views):
        pdf = next(f for f in view.files if f.filename == "vedtak.pdf")
        stored = await service.get_outgoing(a, view.message_id)
        assert next(f for f in stored.files if f.filename == "vedtak.pdf").sha256 == pdf.sha256
        assert pdf.size == len(b"%PDF-" + str(index).encode())


async def test_the_same_message_twice_in_one_round(service: MessageService) -> None:
    """Two requests with one message id arrive together: one message; the same content again
    is the existing message, different content a conflict."""
    a = await client_for(service, ORG_A)
    sbd = arkivmelding()
    files = [
        Upload("arkivmelding.xml", "application/xml", ARKIVMELDING_XML),
        Upload("vedtak.pdf", "application/pdf", b"%PDF"),
    ]
    other = [sbd_to_json(arkivmelding()) for _ in range(5)]
    first, second, *_ = await asyncio.gather(
        service.create_and_send(a, sbd, files),
        service.create_and_send(a, sbd, files),
        *(service.create_and_send(a, s, files) for s in other),
    )
    assert first.message_id == second.message_id
    assert sorted([first.existing, second.existing]) == [False, True]
    changed = arkivmelding(
        message_id=sbd.header.document_identification.instance_identifier,
        body={"sikkerhetsnivaa": 4},
    )
    with pytest.raises(Conflict):
        await asyncio.gather(
            service.create_and_send(a, sbd, files), service.create_and_send(a, changed, files)
        )
    async with service.database.read() as connection:
        events = (
            await connection.execute(
                sa.select(status_events.c.status).where(status_events.c.status == "OPPRETTET")
            )
        ).all()
    assert len(events) == 6
    # the files of the requests that lost their round were removed again: none is orphaned
    async with service.database.read() as connection:
        referenced = set(
            (await connection.execute(sa.select(message_files.c.storage_id))).scalars().all()
        )
    on_disk = {p.name for p in service.files.root.rglob("*") if p.is_file()}
    assert on_disk == referenced


def mid(sbd: StandardBusinessDocument) -> str:
    return sbd.header.document_identification.instance_identifier
