"""The job queue port and its implementations.

:mod:`~adapters.queue.base` holds the port (``Job``, the outcomes a handler returns, the
``JobQueue`` Protocol); :class:`MemoryQueue` is the test double, :class:`DatabaseQueue` the
embedded durable queue, :class:`RabbitMQQueue` the one for scale, and :class:`OutboxRelay`
moves jobs from the store's outbox onto any of them.
"""

from adapters.queue.base import (
    Ack,
    Dead,
    DeadHandler,
    Handler,
    Job,
    JobQueue,
    Outcome,
    QueueUnavailable,
    Retry,
)
from adapters.queue.database import DatabaseQueue
from adapters.queue.memory import MemoryQueue
from adapters.queue.rabbitmq import RabbitMQQueue
from adapters.queue.relay import OutboxRelay

__all__ = [
    "Ack",
    "DatabaseQueue",
    "Dead",
    "DeadHandler",
    "Handler",
    "Job",
    "JobQueue",
    "MemoryQueue",
    "OutboxRelay",
    "Outcome",
    "QueueUnavailable",
    "RabbitMQQueue",
    "Retry",
]
