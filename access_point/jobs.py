"""Job kinds and their handlers: the wiring between the queue and the business operations.

=========  ==========================================  =====================================
kind       handler                                     when it dies
=========  ==========================================  =====================================
send       deliver the message to the receiver hosted  the message is marked FEIL with the
           here (``NoRoute`` when it is not hosted:    reason, unless an earlier run handed
           straight to FEIL, no retries)               it over already (SENDT or later)
status     the status-event hook (webhook fan-out)     logged
=========  ==========================================  =====================================

While nothing could want a status event (``status_idle``: no webhook subscription), the outbox
relay records ``status`` jobs done instead of publishing them (:attr:`JobKind.idle`); the pull
feed and the metrics read the status history itself and see every event either way.

Every handler runs under :meth:`~access_point.worker.Idempotency.once` on ``Job.key``, so a
redelivered job has its effect once. More kinds (``webhook``) come in through ``extra``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from access_point.statuses import MessageStatus
from access_point.worker import Idempotency, JobClaim, JobFunction, JobKind
from adapters.db.schema import api_clients, subscriptions
from adapters.queue import Job
from sbdh.errors import NoRoute

__all__ = ["MessageOperations", "build_kinds", "lifetime_sweep", "no_subscriptions"]

SEND = "send"
STATUS = "status"
#: a status of an incoming message that came over AS4, going back to its sender's access point
NETWORK_STATUS = "network-status"


class NetworkOperations(Protocol):
    """What the jobs need from :class:`access_point.network.As4Network`."""

    def can_reach(self, receiver: str) -> bool: ...

    async def send(
        self,
        message_id: str,
        *,
        claim: Callable[[AsyncConnection], Awaitable[bool]] | None = None,
    ) -> object: ...

    async def send_status(self, message_id: str, status: MessageStatus) -> None: ...


class MessageOperations(Protocol):
    """What the jobs need from :class:`access_point.messages.MessageService`."""

    async def deliver_locally(
        self,
        message_id: str,
        *,
        claim: Callable[[AsyncConnection], Awaitable[bool]] | None = None,
    ) -> object: ...

    async def mark_failed(
        self, message_id: str, reason: str, *, unsent_only: bool = False
    ) -> object: ...


async def _no_status_hook(job: Job) -> None:
    return None


def _once(idempotency: Idempotency | None, run: JobFunction) -> JobFunction:
    if idempotency is None:
        return run

    async def guarded(job: Job) -> None:
        await idempotency.run_once(job.key, lambda: run(job))

    return guarded


def _claim_for(
    idempotency: Idempotency | None, job: Job
) -> Callable[[AsyncConnection], Awaitable[bool]] | None:
    """The job's idempotency key, to be claimed in the transaction of its effect."""
    if idempotency is None:
        return None
    return JobClaim(idempotency, job.key)


async def _always_idle(connection: AsyncConnection) -> bool:
    return True


async def no_subscriptions(connection: AsyncConnection) -> bool:
    """True when no enabled client has a webhook subscription: no status event is wanted."""
    found = await connection.execute(
        sa.select(subscriptions.c.id)
        .join(api_clients, api_clients.c.id == subscriptions.c.client_id)
        .where(api_clients.c.disabled.is_(False))
        .limit(1)
    )
    return found.first() is None


def build_kinds(
    messages: MessageOperations,
    *,
    idempotency: Idempotency | None,
    on_status: Callable[[Job], Awaitable[object]] | None = None,
    status_idle: Callable[[AsyncConnection], Awaitable[bool]] | None = None,
    extra: Mapping[str, JobKind] | None = None,
    network: NetworkOperations | None = None,
) -> dict[str, JobKind]:
    """The handler registry for :class:`~access_point.worker.Worker`.

    ``status_idle`` says (in the relay's transaction) when ``on_status`` has nothing to do;
    without ``on_status`` the status jobs never have anything to do.
    """
    if on_status is None:
        status_idle = _always_idle

    async def send(job: Job) -> None:
        # the job's key is claimed in the delivery's own transaction: one commit for both
        claim = _claim_for(idempotency, job)
        try:
            await messages.deliver_locally(job.message_id, claim=claim)
        except NoRoute:
            # not hosted here: another access point's, when the directory knows it
            if network is None:
                raise
            await network.send(job.message_id, claim=claim)

    async def network_status(job: Job) -> None:
        if network is not None:
            status = MessageStatus(str(job.payload.get("status", MessageStatus.LEVERT.value)))
            await network.send_status(job.message_id, status)

    async def send_died(job: Job, reason: str) -> None:
        # a job that kept dying after its delivery committed (killed before the ack, again
        # and again) must not turn a delivered message into FEIL: that would contradict its
        # SENDT/MOTTATT and shut out the LEVERT still to come
        await messages.mark_failed(job.message_id, reason, unsent_only=True)

    kinds = {
        SEND: JobKind(send, on_dead=send_died),
        STATUS: JobKind(_once(idempotency, on_status or _no_status_hook), idle=status_idle),
    }
    if network is not None:
        kinds[NETWORK_STATUS] = JobKind(_once(idempotency, network_status))
    kinds.update(extra or {})
    return kinds


def lifetime_sweep(
    expire: Callable[[datetime], Awaitable[int]],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[], Awaitable[int]]:
    """The periodic job that marks messages past their lifetime LEVETID_UTLOPT."""

    async def sweep() -> int:
        return await expire(clock())

    return sweep
