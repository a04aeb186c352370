"""The job queue port: what a job is, what a handler answers, and the ``JobQueue`` Protocol.

A queue carries work, never the only copy of it: the store is the source of truth and the outbox
relay (:mod:`adapters.queue.relay`) re-publishes anything not yet handed over. Every queue is
**at least once**: a job whose handler did not finish (crash, lost connection, expired lease) is
delivered again, so handlers must be idempotent (``access_point.worker.Idempotency``).

The handler passed to :meth:`JobQueue.consume` never touches the transport. It returns an
:data:`Outcome` and the queue carries it out::

    Ack()               done: the job is finished and never delivered again
    Retry(delay, why)   run it again, no sooner than ``delay`` seconds from now
    Dead(reason)        never again: park it in the dead letters and report it to ``on_dead``

A handler that raises is treated like a crash: the job is released for redelivery at once.
``Job.attempt`` counts deliveries, crashes included, so a job that keeps killing its worker
still reaches the worker's attempt limit and is dead-lettered instead of looping forever.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, runtime_checkable

from sbdh.errors import TransientDeliveryError

__all__ = [
    "Ack",
    "Dead",
    "DeadHandler",
    "Handler",
    "Job",
    "JobQueue",
    "Outcome",
    "QueueUnavailable",
    "Retry",
]


@dataclass(frozen=True)
class Job:
    """One unit of work: do ``kind`` for ``message_id`` with ``payload`` (a JSON object).

    ``attempt`` is the number of this delivery, counting from 1 (0 on a job not yet delivered:
    that is what producers publish). ``id`` is set by the queue on delivery and stays the same
    across retries where the transport allows; it names the job in logs, not its effect: two
    publications of one outbox row are two ids, one :attr:`key`.
    """

    kind: str
    message_id: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 0
    id: str | None = None

    @property
    def key(self) -> str:
        """The job's effect, for idempotency: kind, message id and (hashed) payload.

        At most 40 + 1 + 64 + 1 + 32 characters, which fits ``processed_jobs.key``.
        """
        if not self.payload:
            return f"{self.kind}:{self.message_id}"
        digest = hashlib.sha256(_canonical(self.payload).encode()).hexdigest()[:32]
        return f"{self.kind}:{self.message_id}:{digest}"

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "message_id": self.message_id,
                "payload": dict(self.payload),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes, *, attempt: int = 0, id: str | None = None) -> Job:
        """A job from :meth:`to_json` output; ``ValueError`` when it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a job is a JSON object")
        kind, message_id, payload = data.get("kind"), data.get("message_id"), data.get("payload")
        if not isinstance(kind, str) or not isinstance(message_id, str):
            raise ValueError("a job needs string 'kind' and 'message_id'")
        if not isinstance(payload, dict):
            raise ValueError("a job's payload is a JSON object")
        return cls(kind, message_id, payload, attempt, id)


def _canonical(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_text(payload: Mapping[str, Any]) -> str:
    """A payload as stored in a Text column (compact JSON, keys sorted)."""
    return _canonical(payload)


@dataclass(frozen=True)
class Ack:
    """The job is done."""


@dataclass(frozen=True)
class Retry:
    """Run the job again after ``delay`` seconds; ``error`` says what went wrong this time."""

    delay: float
    error: str


@dataclass(frozen=True)
class Dead:
    """The job cannot succeed: dead-letter it and report ``reason``."""

    reason: str


Outcome: TypeAlias = Ack | Retry | Dead
Handler: TypeAlias = Callable[[Job], Awaitable[Outcome]]
DeadHandler: TypeAlias = Callable[[Job, str], Awaitable[None]]


class QueueUnavailable(TransientDeliveryError):
    """The broker or the queue's database did not answer; try again later."""

    code = "queue-unavailable"


@runtime_checkable
class JobQueue(Protocol):
    """A durable, at-least-once job queue."""

    async def publish(self, job: Job, delay: float = 0.0) -> None:
        """Store ``job`` durably (confirmed) before returning; run it after ``delay`` seconds.

        Raises :class:`QueueUnavailable` when the job could not be stored.
        """

    async def publish_many(self, jobs: Sequence[Job]) -> None:
        """:meth:`publish` each of ``jobs`` (no delay), in order, as one batch where possible."""

    async def consume(
        self,
        handler: Handler,
        concurrency: int,
        *,
        on_dead: DeadHandler | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Run ``handler`` on jobs, at most ``concurrency`` at once, until cancelled or stopped.

        Setting ``stop`` is the graceful way out: take no new jobs, let the running ones finish
        and carry out their outcomes, then return. Cancelling is the abrupt way: running jobs
        are abandoned without an outcome and come back to this or another consumer.
        Dead-lettered jobs are reported to ``on_dead(job, reason)`` (at least once; a report
        that raises is tried again later).
        """

    async def depth(self) -> int:
        """Jobs waiting to run (ready or delayed), not counting those running now."""

    async def close(self) -> None:
        """Release connections; the queue cannot be used afterwards."""
