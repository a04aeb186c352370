"""Stopping and starting the local RabbitMQ for crash tests, and waiting until it really works.

``rabbitmqctl await_startup`` returns before quorum queues are usable again: for a while (and on
RabbitMQ 3.10, now and then for good) every channel fails with INTERNAL_ERROR. After a restart
we therefore declare and delete a quorum queue until that succeeds, and restart once more if it
never does, so that no later test inherits a broken broker.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid

import aio_pika
import pytest


def require_broker_control() -> None:
    if shutil.which("rabbitmqctl") is None or os.geteuid() != 0:
        pytest.skip("restarting the broker needs rabbitmqctl as root")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


async def quorum_queues_work(amqp_url: str) -> bool:
    try:
        connection = await aio_pika.connect(amqp_url, timeout=5)
    except Exception:
        return False
    try:
        channel = await connection.channel()
        name = f"budstikke.probe.{uuid.uuid4().hex[:8]}"
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.delete(if_unused=False, if_empty=False)
        return True
    except Exception:
        return False
    finally:
        await connection.close()


async def start_and_wait(amqp_url: str, *, timeout: float = 60.0) -> None:
    """Start the broker's app and return once quorum queues can be declared again."""
    for _ in range(2):
        await asyncio.to_thread(rabbitmqctl, "start_app")
        await asyncio.to_thread(rabbitmqctl, "await_startup")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await quorum_queues_work(amqp_url):
                return
            await asyncio.sleep(0.5)
        await asyncio.to_thread(rabbitmqctl, "stop_app")
    raise AssertionError("RabbitMQ did not come back with working quorum queues")


async def stop() -> None:
    await asyncio.to_thread(rabbitmqctl, "stop_app")
