"""The job queue on RabbitMQ (aio-pika): quorum queues, publisher confirms, manual acks.

Topology for a queue named ``N`` (declared by whoever connects first; declaring is idempotent)::

    publish ──(default exchange, key N)──▶ N                         quorum, x-delivery-limit
                                           │  reject / delivery limit ─▶ N.dlx ─(key N)─▶ N.dead
    Retry(delay) ─▶ N.retry.<2^k>s ──(per-message TTL expires)──▶ default exchange, key N ─▶ N
    Dead(reason) ─▶ N.dlx ─(key N)─▶ N.dead ──▶ on_dead(job, reason)

* **Durable**: every queue is a quorum queue (replicated, always persistent); messages are
  published persistent, with ``mandatory`` and **publisher confirms**, so ``publish`` returns
  only once the broker has the job (and raises when it refused or could not route it).
* **Manual acks**: a job is acknowledged only after its outcome is carried out; a retry or a
  dead letter is *published (confirmed) first, then* the original is acked. A crash in between
  runs the job again: at least once, never lost. Prefetch equals the concurrency.
* **Delayed retry without a plugin**: one retry queue per power of two seconds (1 s … 2^16 s),
  each dead-lettering expired messages back to the work queue (``at-least-once`` dead
  lettering, which quorum queues offer with ``x-overflow=reject-publish``). A retry carries
  its exact delay as per-message TTL and goes to the smallest bucket that holds it; since
  RabbitMQ expires only at a queue's head, a message can wait behind an older one of the same
  bucket, but never longer than twice its own delay. A queue per exact delay would avoid that
  and leave an unbounded number of queues behind jittered delays.
* **Poison messages**: ``x-delivery-count`` (kept by quorum queues) is added to the attempt
  count, so a job that keeps killing its worker uses up its attempts; ``x-delivery-limit``
  is the broker's own backstop, dead-lettering it to ``N.dlx`` with reason ``delivery_limit``.
* **Reconnects**: ``connect_robust`` reopens channels, re-declares and resumes consuming after
  the broker or the network comes back. Acks for deliveries of the lost channel cannot be sent;
  the broker redelivers those jobs, which idempotent handlers absorb. ``publish`` waits for the
  connection for up to ``publish_timeout`` and then raises :class:`QueueUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from adapters.queue.base import (
    Ack,
    Dead,
    DeadHandler,
    Handler,
    Job,
    Outcome,
    QueueUnavailable,
    Retry,
)

__all__ = ["RETRY_BUCKETS", "RabbitMQQueue"]

log = logging.getLogger(__name__)

#: retry queue delays, seconds: 1, 2, 4, … 65536 (about 18 hours)
RETRY_BUCKETS: tuple[int, ...] = tuple(1 << k for k in range(17))

ATTEMPTS_HEADER = "x-budstikke-attempts"
REASON_HEADER = "x-budstikke-reason"

_DRIVER_ERRORS = (AMQPError, aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError)


def bucket_for(delay: float) -> int:
    """The retry bucket (seconds) for ``delay``: the smallest power of two not below it."""
    if delay <= 1:
        return RETRY_BUCKETS[0]
    k = math.ceil(math.log2(delay))
    return RETRY_BUCKETS[min(k, len(RETRY_BUCKETS) - 1)]


def _header_int(headers: Any, name: str) -> int:
    value = headers.get(name) if headers else None
    try:
        return max(int(value), 0) if isinstance(value, int | str) else 0
    except (TypeError, ValueError):
        return 0


def _dead_reason(message: AbstractIncomingMessage) -> str:
    headers = message.headers or {}
    reason = headers.get(REASON_HEADER)
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    if isinstance(reason, str) and reason:
        return reason
    first = headers.get("x-first-death-reason")
    if isinstance(first, bytes):
        first = first.decode()
    if first == "delivery_limit":
        return "gave up: the job was delivered too many times without finishing"
    return f"dead-lettered by the broker ({first or 'unknown reason'})"


class RabbitMQQueue:
    """A :class:`~adapters.queue.base.JobQueue` on RabbitMQ quorum queues."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "budstikke.jobs",
        delivery_limit: int = 20,
        publish_timeout: float = 30.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        self._url = url
        self.name = name
        self.delivery_limit = delivery_limit
        self.publish_timeout = publish_timeout
        self.reconnect_interval = reconnect_interval
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._dlx: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ topology

    @property
    def dead_exchange(self) -> str:
        return f"{self.name}.dlx"

    @property
    def dead_queue(self) -> str:
        return f"{self.name}.dead"

    def retry_queue(self, bucket: int) -> str:
        return f"{self.name}.retry.{bucket}s"

    def _work_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": self.dead_exchange,
            "x-dead-letter-routing-key": self.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-delivery-limit": self.delivery_limit,
        }

    def _retry_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    async def _channel(self) -> AbstractChannel:
        """The confirming publisher channel, connecting and declaring the topology once."""
        async with self._lock:
            if self._publisher is not None:
                return self._publisher
            try:
                self._connection = await aio_pika.connect_robust(
                    self._url, reconnect_interval=self.reconnect_interval
                )
                channel = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                dlx = await channel.declare_exchange(
                    self.dead_exchange, aio_pika.ExchangeType.DIRECT, durable=True
                )
                dead = await channel.declare_queue(
                    self.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
                )
                await dead.bind(dlx, routing_key=self.name)
                await channel.declare_queue(
                    self.name, durable=True, arguments=self._work_arguments()
                )
                for bucket in RETRY_BUCKETS:
                    await channel.declare_queue(
                        self.retry_queue(bucket), durable=True, arguments=self._retry_arguments()
                    )
            except _DRIVER_ERRORS as exc:
                if self._connection is not None:
                    with contextlib.suppress(Exception):
                        await self._connection.close()
                    self._connection = None
                raise QueueUnavailable(f"RabbitMQ: {exc!r}") from exc
            self._publisher, self._dlx = channel, dlx
            return channel

    async def setup(self) -> None:
        """Connect and declare the topology now rather than on first use."""
        await self._channel()

    # ------------------------------------------------------------------ producing

    def _message(
        self, job: Job, headers: dict[str, Any], expiration: float | None = None
    ) -> aio_pika.Message:
        return aio_pika.Message(
            job.to_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=job.id or uuid.uuid4().hex,
            timestamp=datetime.now(UTC),
            type=job.kind,
            headers={ATTEMPTS_HEADER: max(job.attempt, 0), **headers},
            expiration=expiration,
        )

    async def _send(self, exchange: str, routing_key: str, message: aio_pika.Message) -> None:
        """Publish and wait for the broker's confirm, riding out a reconnect."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        while True:
            channel = await self._channel()
            remaining = deadline - loop.time()
            try:
                target = channel.default_exchange if exchange == "" else self._dlx
                assert target is not None
                async with asyncio.timeout(max(remaining, 0.1)):
                    await target.publish(message, routing_key=routing_key, mandatory=True)
                return
            except aio_pika.exceptions.DeliveryError as exc:
                # refused (nack) or unroutable (returned): a fact, not a connection problem
                raise QueueUnavailable(f"RabbitMQ refused the job: {exc!r}") from exc
            except (*_DRIVER_ERRORS, ChannelInvalidStateError) as exc:
                if loop.time() >= deadline:
                    raise QueueUnavailable(f"RabbitMQ: {exc!r}") from exc
                log.info("publish failed (%r); retrying while the connection recovers", exc)
                await asyncio.sleep(min(0.5, max(deadline - loop.time(), 0)))

    async def publish(self, job: Job, delay: float = 0.0) -> None:
        if delay <= 0:
            await self._send("", self.name, self._message(job, {}))
            return
        bucket = bucket_for(delay)
        message = self._message(job, {}, expiration=delay)
        await self._send("", self.retry_queue(bucket), message)

    async def publish_many(self, jobs: Sequence[Job]) -> None:
        # pipelined on one channel: the broker stores them in the order they were sent
        await asyncio.gather(*(self.publish(job) for job in jobs))

    async def _dead_letter(self, job: Job, reason: str) -> None:
        message = self._message(job, {REASON_HEADER: reason[:4000]})
        await self._send(self.dead_exchange, self.name, message)

    # ------------------------------------------------------------------ consuming

    def _job(self, message: AbstractIncomingMessage) -> Job:
        headers = message.headers or {}
        attempt = _header_int(headers, ATTEMPTS_HEADER) + _header_int(headers, "x-delivery-count")
        return Job.from_json(message.body, attempt=attempt + 1, id=message.message_id)

    async def _carry_out(
        self, message: AbstractIncomingMessage, job: Job, outcome: Outcome
    ) -> None:
        if isinstance(outcome, Retry):
            await self.publish(job, delay=max(outcome.delay, 0.001))
        elif isinstance(outcome, Dead):
            await self._dead_letter(job, outcome.reason)
        elif not isinstance(outcome, Ack):  # pragma: no cover - a handler bug
            raise TypeError(f"not an outcome: {outcome!r}")
        await message.ack()

    async def consume(
        self,
        handler: Handler,
        concurrency: int,
        *,
        on_dead: DeadHandler | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        await self._channel()
        assert self._connection is not None
        running: set[asyncio.Task[Any]] = set()

        async def on_work(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            assert task is not None
            running.add(task)
            try:
                async with message.process(requeue=True, ignore_processed=True):
                    try:
                        job = self._job(message)
                    except ValueError as exc:
                        log.error("undecodable job %s dead-lettered: %s", message.message_id, exc)
                        await message.reject(requeue=False)
                        return
                    outcome = await handler(job)
                    await self._carry_out(message, job, outcome)
            except (*_DRIVER_ERRORS, ChannelInvalidStateError, QueueUnavailable) as exc:
                log.warning(
                    "job %s: outcome not acknowledged (%r); it will come back",
                    message.message_id,
                    exc,
                )
            except Exception:
                log.exception("handler raised for job %s; redelivering", message.message_id)
            finally:
                running.discard(task)

        async def on_dead_letter(message: AbstractIncomingMessage) -> None:
            assert on_dead is not None
            task = asyncio.current_task()
            assert task is not None
            running.add(task)
            try:
                async with message.process(requeue=True, ignore_processed=True):
                    try:
                        job = self._job(message)
                    except ValueError:
                        log.error("undecodable dead letter %s dropped", message.message_id)
                        await message.ack()
                        return
                    try:
                        await on_dead(job, _dead_reason(message))
                    except Exception:
                        log.exception("on_dead failed for job %s; reporting again soon", job.id)
                        await asyncio.sleep(1.0)  # requeued on leaving; not a hot loop
                        raise
            except (*_DRIVER_ERRORS, ChannelInvalidStateError) as exc:
                log.warning("dead letter %s not acknowledged (%r)", message.message_id, exc)
            except Exception:  # noqa: S110 - logged above, requeued by process()
                pass
            finally:
                running.discard(task)

        channel = await self._connection.channel(publisher_confirms=False)
        consumers: list[tuple[AbstractQueue, str]] = []
        try:
            await channel.set_qos(prefetch_count=concurrency)
            work = await channel.declare_queue(
                self.name, durable=True, arguments=self._work_arguments()
            )
            consumers.append((work, await work.consume(on_work)))
            if on_dead is not None:
                dead = await channel.declare_queue(
                    self.dead_queue, durable=True, arguments={"x-queue-type": "quorum"}
                )
                consumers.append((dead, await dead.consume(on_dead_letter)))
            if stop is None:
                await asyncio.Future()  # until cancelled
            else:
                await stop.wait()
            # graceful: no new deliveries; the running jobs finish and are acked
            for queue, tag in consumers:
                with contextlib.suppress(*_DRIVER_ERRORS, ChannelInvalidStateError):
                    await queue.cancel(tag)
            while running:
                await asyncio.wait(set(running))
        except _DRIVER_ERRORS as exc:
            raise QueueUnavailable(f"RabbitMQ: {exc!r}") from exc
        finally:
            # close first: the broker takes back every unacknowledged delivery at once (a
            # reject from each abandoned job would hand it straight back to this consumer)
            with contextlib.suppress(Exception):
                await channel.close()
            for task in list(running):
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    # ------------------------------------------------------------------ looking

    async def _count(self, names: Sequence[str]) -> int:
        channel = await self._channel()
        try:
            underlay = await channel.get_underlay_channel()
            total = 0
            for name in names:
                ok = await underlay.queue_declare(name, passive=True)
                total += ok.message_count or 0
            return total
        except _DRIVER_ERRORS as exc:
            raise QueueUnavailable(f"RabbitMQ: {exc!r}") from exc

    async def depth(self) -> int:
        return await self._count([self.name, *(self.retry_queue(b) for b in RETRY_BUCKETS)])

    async def dead_depth(self) -> int:
        """Dead letters not yet reported."""
        return await self._count([self.dead_queue])

    async def delete_topology(self) -> None:
        """Delete this queue's queues and exchange (tests and teardown; loses their jobs)."""
        channel = await self._channel()
        underlay = await channel.get_underlay_channel()
        for name in [self.name, self.dead_queue, *(self.retry_queue(b) for b in RETRY_BUCKETS)]:
            await underlay.queue_delete(name)
        await underlay.exchange_delete(self.dead_exchange)

    async def close(self) -> None:
        async with self._lock:
            connection, self._connection = self._connection, None
            self._publisher = self._dlx = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
