"""The consume loop of the polled queues (in-memory and database)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from adapters.queue._pull import pull_loop


class _CountingEvent(asyncio.Event):
    """An event that fails once it has been waited on more often than a sane loop would."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.waits = 0

    async def wait(self) -> bool:  # type: ignore[override]
        self.waits += 1
        if self.waits > self.limit:
            raise AssertionError("the loop spins on a nudge that stays set")
        return await super().wait()


async def test_a_nudge_while_every_slot_is_busy_does_not_spin() -> None:
    # a publish (or the relay's wake) while all slots run used to leave the nudge set: the
    # loop's wait then returned at once, for ever, and never let the running jobs finish
    nudge = _CountingEvent(limit=50)
    waiting = [1, 2]
    started = asyncio.Event()
    release = asyncio.Event()
    done: list[int] = []

    async def claim(n: int) -> Sequence[int]:
        taken = waiting[:n]
        del waiting[:n]
        return taken

    async def run(item: int) -> None:
        started.set()
        await release.wait()
        done.append(item)

    stop = asyncio.Event()
    loop = asyncio.create_task(
        pull_loop(claim, run, concurrency=1, nudge=nudge, poll_interval=60.0, stop=stop)
    )
    await started.wait()
    nudge.set()  # the only slot is busy
    for _ in range(5):
        await asyncio.sleep(0)
    assert not loop.done(), loop.exception() if loop.done() else None
    release.set()
    for _ in range(100):
        if done == [1, 2]:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert done == [1, 2]
    assert nudge.waits < 50
