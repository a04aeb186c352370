"""Exactly once in effect: every step of the local path is safe to run again.

Jobs come at least once, and :meth:`~access_point.worker.Idempotency.once` records a job's key
only after its effect, so a worker that dies between the two runs the effect again. These
tests run each effect again (and at the same time) the way a redelivered job would, and check
that the second run leaves the same inbox, the same status history and the same outbox behind:
the delivery, a status receipt, the receiver's acknowledgement, the webhook fan-out, the LEST
business receipt, and a dead letter for a message an earlier run delivered.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from access_point.jobs import SEND, STATUS, build_kinds
from access_point.messages import Client, DeliveryResult, MessageService, StatusQuery, Upload
from access_point.statuses import Direction, MessageStatus
from access_point.webhooks import Webhooks
from access_point.worker import Idempotency, JobClaim, JobKind
from adapters.db.schema import (
    message_files,
    messages,
    outbox,
    processed_jobs,
    status_events,
    webhook_deliveries,
)
from adapters.queue import Job
from sbdh.errors import Conflict, NoRoute, NotFound
from sbdh.model import StandardBusinessDocument
from tests.store_fixtures import *  # noqa: F403
from tests.store_fixtures import (
    ARKIVMELDING_XML,
    ORG_A,
    ORG_B,
    Clock,
    arkivmelding,
    client_for,
    kvittering,
)

S = MessageStatus


@pytest.fixture
async def a(service: MessageService) -> Client:
    return await client_for(service, ORG_A, name="a")


@pytest.fixture
async def b(service: MessageService) -> Client:
    return await client_for(service, ORG_B, name="b")


@pytest.fixture
def kinds(service: MessageService) -> dict[str, JobKind]:
    webhooks = Webhooks(service.database)
    return build_kinds(
        service, idempotency=Idempotency(service.database.engine), on_status=webhooks.status_job
    )


async def sent(
    service: MessageService, client: Client, sbd: StandardBusinessDocument | None = None
) -> str:
    files = [Upload("arkivmelding.xml", "application/xml", ARKIVMELDING_XML)]
    files.append(Upload("vedtak.pdf", "application/pdf", b"%PDF-1.7 vedtak"))
    view = await service.create_and_send(client, sbd or arkivmelding(), files)
    return view.message_id


def send_job(message_id: str) -> Job:
    """The job the relay publishes for a ``send`` outbox row."""
    return Job(SEND, message_id, {"direction": Direction.OUTGOING.value}, attempt=1)


async def history(service: MessageService, client: Client, message_id: str) -> list[str]:
    page = await service.message_statuses(client, message_id)
    return [s.status.value for s in page.content]


async def snapshot(service: MessageService) -> dict[str, object]:
    """What a repeat must leave alone: every row a delivery or a status writes."""
    async with service.database.read() as connection:

        async def count(table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
            query = sa.select(sa.func.count()).select_from(table).where(sa.true(), *where)
            return int((await connection.execute(query)).scalar_one())

        events = (
            await connection.execute(
                sa.select(
                    status_events.c.message_pk,
                    status_events.c.status,
                    status_events.c.description,
                    status_events.c.created_at,
                ).order_by(status_events.c.id)
            )
        ).all()
        rows = (
            await connection.execute(
                sa.select(
                    messages.c.message_id,
                    messages.c.direction,
                    messages.c.status,
                    messages.c.acknowledged_at,
                ).order_by(messages.c.id)
            )
        ).all()
        return {
            "incoming": await count(messages, messages.c.direction == "INCOMING"),
            "files": await count(message_files),
            "outbox": await count(outbox),
            "events": [tuple(e) for e in events],
            "messages": [tuple(r) for r in rows],
        }


# ------------------------------------------------------------------ the delivery


async def test_a_send_job_run_again_after_its_effect_changes_nothing(
    service: MessageService, a: Client, b: Client, kinds: dict[str, JobKind], clock: Clock
) -> None:
    message_id = await sent(service, a)
    # the first run: the effect commits, then the worker dies before the key is recorded
    assert (await service.deliver_locally(message_id)).delivered
    after_effect = await snapshot(service)
    async with service.database.read() as connection:
        keys = (await connection.execute(sa.select(processed_jobs.c.key))).scalars().all()
    assert keys == []
    # the redelivered job runs the effect again (its key was never recorded): nothing changes
    clock.advance(timedelta(seconds=5))
    await kinds[SEND].run(send_job(message_id))
    assert await snapshot(service) == after_effect
    assert await history(service, a, message_id) == ["OPPRETTET", "SENDT", "MOTTATT"]
    assert await history(service, b, message_id) == ["INNKOMMENDE_MOTTATT"]
    # now the key is recorded, and a third delivery of the job does not even look
    async with service.database.read() as connection:
        keys = (await connection.execute(sa.select(processed_jobs.c.key))).scalars().all()
    assert keys == [send_job(message_id).key]
    await kinds[SEND].run(send_job(message_id))
    assert await snapshot(service) == after_effect


async def test_concurrent_runs_of_one_delivery_deliver_once(
    service: MessageService, a: Client, b: Client
) -> None:
    message_id = await sent(service, a)
    results = await asyncio.gather(*(service.deliver_locally(message_id) for _ in range(4)))
    assert sum(r.delivered for r in results) == 1
    state = await snapshot(service)
    assert state["incoming"] == 1
    assert state["files"] == 4  # two on the outgoing message, two on its incoming copy
    assert await history(service, a, message_id) == ["OPPRETTET", "SENDT", "MOTTATT"]
    assert await history(service, b, message_id) == ["INNKOMMENDE_MOTTATT"]


async def test_an_ended_message_is_never_delivered_afterwards(
    service: MessageService, a: Client, b: Client, clock: Clock
) -> None:
    failed = await sent(service, a)
    await service.mark_failed(failed, "gave up")
    expired = await sent(service, a, arkivmelding(expected_response=clock() + timedelta(hours=1)))
    clock.advance(timedelta(hours=2))
    assert await service.expire() == 1
    for message_id in (failed, expired):
        with pytest.raises(Conflict):
            await service.deliver_locally(message_id)
    assert (await snapshot(service))["incoming"] == 0
    assert await history(service, a, failed) == ["OPPRETTET", "FEIL"]
    assert await history(service, a, expired) == ["OPPRETTET", "LEVETID_UTLOPT"]


async def test_a_dead_send_job_never_fails_a_message_it_delivered(
    service: MessageService, a: Client, b: Client, kinds: dict[str, JobKind]
) -> None:
    on_dead = kinds[SEND].on_dead
    assert on_dead is not None
    message_id = await sent(service, a)
    await service.deliver_locally(message_id)
    # a job that kept dying after its effect reaches its attempt limit and is dead-lettered
    await on_dead(send_job(message_id), "gave up: delivered 11 times without finishing")
    assert await history(service, a, message_id) == ["OPPRETTET", "SENDT", "MOTTATT"]
    await service.acknowledge(b, message_id)
    assert await history(service, a, message_id) == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    # one that never delivered is FEIL, once
    other = await sent(service, a)
    await on_dead(send_job(other), "gave up")
    await on_dead(send_job(other), "gave up")
    assert await history(service, a, other) == ["OPPRETTET", "FEIL"]


# ------------------------------------------------------------------ statuses


async def test_a_repeated_receipt_keeps_the_first(
    service: MessageService, a: Client, clock: Clock
) -> None:
    message_id = await sent(service, a)
    first = await service.record_status(message_id, S.MOTTATT, description="first", raw_receipt="1")
    assert first is not None
    clock.advance(timedelta(seconds=5))
    before = await snapshot(service)
    assert await service.record_status(message_id, S.MOTTATT, description="again") is None
    assert await snapshot(service) == before
    (recorded,) = (await service.find_statuses(a, StatusQuery(status=S.MOTTATT))).content
    assert (recorded.description, recorded.raw_receipt) == ("first", "1")


async def test_acknowledging_again_or_at_once_records_once(
    service: MessageService, a: Client, b: Client, clock: Clock
) -> None:
    message_id = await sent(service, a)
    await service.deliver_locally(message_id)
    await asyncio.gather(*(service.acknowledge(b, message_id) for _ in range(4)))
    acknowledged = await snapshot(service)
    clock.advance(timedelta(seconds=5))
    again = await service.acknowledge(b, message_id)
    assert again.status is S.INNKOMMENDE_LEVERT
    assert await snapshot(service) == acknowledged  # not even acknowledged_at moves
    assert await history(service, a, message_id) == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
    assert await history(service, b, message_id) == ["INNKOMMENDE_MOTTATT", "INNKOMMENDE_LEVERT"]
    async with service.database.read() as connection:
        published = (
            await connection.execute(sa.select(outbox.c.payload).where(outbox.c.kind == STATUS))
        ).scalars()
        statuses = sorted(json.loads(p)["status"] for p in published)
    assert statuses == sorted(
        ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "INNKOMMENDE_MOTTATT", "INNKOMMENDE_LEVERT"]
    )


async def test_the_webhook_fan_out_run_again_adds_nothing(
    service: MessageService, a: Client, kinds: dict[str, JobKind]
) -> None:
    webhooks = Webhooks(service.database)
    for name in ("one", "two"):
        await webhooks.create(
            a.id,
            {"name": name, "pushEndpoint": "http://127.0.0.1:9/hook", "resource": "all"}
            | {"event": "all"},
            ping=False,
        )
    message_id = await sent(service, a)
    async with service.database.read() as connection:
        (event_id,) = (await connection.execute(sa.select(status_events.c.id))).scalars().all()
    job = Job(STATUS, message_id, {"status_event_id": event_id, "status": "OPPRETTET"}, 1)
    # the effect commits, the key does not; then the job runs again, twice at once, and again
    assert await webhooks.on_status(job.payload) == 2
    fanned_out = await snapshot(service)
    await asyncio.gather(kinds[STATUS].run(job), webhooks.on_status(job.payload))
    await kinds[STATUS].run(job)
    assert await snapshot(service) == fanned_out
    async with service.database.read() as connection:
        deliveries = (
            await connection.execute(sa.select(sa.func.count()).select_from(webhook_deliveries))
        ).scalar_one()
        webhook_jobs = (
            await connection.execute(
                sa.select(sa.func.count()).select_from(outbox).where(outbox.c.kind == "webhook")
            )
        ).scalar_one()
    assert deliveries == webhook_jobs == 2


async def test_a_business_receipt_delivered_again_reads_once(
    service: MessageService, a: Client, b: Client, kinds: dict[str, JobKind], clock: Clock
) -> None:
    original = arkivmelding()
    message_id = await sent(service, a, original)
    await service.deliver_locally(message_id)
    await service.acknowledge(b, message_id)
    receipt = (await service.create_and_send(b, kvittering(original), [])).message_id
    assert (await service.deliver_locally(receipt)).read_receipt
    read = await snapshot(service)
    clock.advance(timedelta(seconds=5))
    await kinds[SEND].run(send_job(receipt))  # the key was never recorded: the effect again
    again = await service.deliver_locally(receipt)
    assert not again.delivered
    assert not again.read_receipt
    assert await snapshot(service) == read
    # a second kvittering for the same message is delivered, but reads nothing again
    second = (await service.create_and_send(b, kvittering(original), [])).message_id
    assert not (await service.deliver_locally(second)).read_receipt
    assert await history(service, a, message_id) == [
        "OPPRETTET",
        "SENDT",
        "MOTTATT",
        "LEVERT",
        "LEST",
    ]
    (lest,) = (await service.find_statuses(a, StatusQuery(status=S.LEST))).content
    assert lest.description is not None
    assert receipt in lest.description


async def test_a_kvittering_that_overtakes_the_acknowledgement_keeps_levert(
    service: MessageService, a: Client, b: Client
) -> None:
    # the receiving archive answers first and deletes from its inbox afterwards
    original = arkivmelding()
    message_id = await sent(service, a, original)
    await service.deliver_locally(message_id)
    receipt = (await service.create_and_send(b, kvittering(original), [])).message_id
    assert (await service.deliver_locally(receipt)).read_receipt
    await service.acknowledge(b, message_id)
    await service.acknowledge(b, message_id)
    assert await history(service, a, message_id) == [
        "OPPRETTET",
        "SENDT",
        "MOTTATT",
        "LEST",
        "LEVERT",
    ]
    assert (await service.get_outgoing(a, message_id)).status is S.LEST


async def test_concurrent_deliveries_share_rounds_and_keep_their_own_outcomes(
    service: MessageService, a: Client, b: Client, kinds: dict[str, JobKind]
) -> None:
    """Jobs in hand at once are delivered in shared transactions; in one round, a message
    whose job ran already, an unknown message and a receiver not served here each get their
    own answer, and only the deliveries that happened claim their job's key."""
    guard = Idempotency(service.database.engine)
    fresh = [await sent(service, a) for _ in range(12)]
    done_before = await sent(service, a)
    await kinds[SEND].run(send_job(done_before))
    foreign = await sent(service, a, arkivmelding(receiver="910000004"))
    rounds_before = service._delivery_writer.rounds

    def claim(message_id: str) -> JobClaim:
        return JobClaim(guard, send_job(message_id).key)

    results = await asyncio.gather(
        *(service.deliver_locally(m, claim=claim(m)) for m in [*fresh, done_before]),
        service.deliver_locally("00000000-0000-4000-8000-000000000000", claim=claim("x")),
        service.deliver_locally(foreign, claim=claim(foreign)),
        return_exceptions=True,
    )
    assert all(isinstance(r, DeliveryResult) and r.delivered for r in results[:12])
    again = results[12]
    assert isinstance(again, DeliveryResult)
    assert not again.delivered
    assert isinstance(results[13], NotFound)
    assert isinstance(results[14], NoRoute)
    assert service._delivery_writer.rounds - rounds_before < 12
    for message_id in fresh:
        assert await history(service, a, message_id) == ["OPPRETTET", "SENDT", "MOTTATT"]
        assert await history(service, b, message_id) == ["INNKOMMENDE_MOTTATT"]
    async with service.database.read() as connection:
        keys = set((await connection.execute(sa.select(processed_jobs.c.key))).scalars().all())
    assert keys == {send_job(m).key for m in [*fresh, done_before]}
    assert (await snapshot(service))["incoming"] == 13
