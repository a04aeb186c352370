"""The consume loop shared by the queues that are polled (in-memory and database).

It keeps at most ``concurrency`` jobs running, asks for as many as there are free slots, and
sleeps until something changes: a local publish, a job finishing, ``stop``, or the poll interval
running out (the fallback that catches jobs published by other processes and delayed jobs
coming due).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


async def pull_loop(
    claim: Callable[[int], Awaitable[Sequence[T]]],
    run: Callable[[T], Coroutine[Any, Any, None]],
    *,
    concurrency: int,
    nudge: asyncio.Event,
    poll_interval: float,
    stop: asyncio.Event | None,
) -> None:
    """Claim and run items until cancelled, or until ``stop`` is set and the running ones end."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    running: set[asyncio.Task[None]] = set()

    def finished(task: asyncio.Task[None]) -> None:
        running.discard(task)
        nudge.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("job runner failed", exc_info=task.exception())

    async def watch_stop(event: asyncio.Event) -> None:
        await event.wait()
        nudge.set()

    watcher = asyncio.create_task(watch_stop(stop)) if stop is not None else None
    try:
        while stop is None or not stop.is_set():
            # clear before looking, whether or not a slot is free: a nudge that stays set while
            # every slot is busy would make the wait below return at once, and this loop would
            # spin without ever yielding to the jobs it waits for (each turn also leaves a timer
            # handle behind). Anything that happens after the clear sets it again.
            nudge.clear()
            free = concurrency - len(running)
            if free > 0:
                try:
                    items = await claim(free)
                except Exception:
                    log.exception("could not claim jobs; trying again in %.1fs", poll_interval)
                    items = ()
                for item in items:
                    task = asyncio.create_task(run(item))
                    running.add(task)
                    task.add_done_callback(finished)
                if items:
                    continue
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the event is set, and this loop would then never end
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_interval):
                    await nudge.wait()
        # graceful stop: no new claims; the running jobs finish and carry out their outcomes
        while running:
            await asyncio.wait(set(running))
    finally:
        if watcher is not None:
            watcher.cancel()
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
