"""GroupCommit: concurrent items share rounds; a failed round is retried item by item."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from adapters.db.groupcommit import GroupCommit, Ticket


class Store:
    """A fake transaction: records each round; items named "bad" make the round fail."""

    def __init__(self, delay: float = 0.01) -> None:
        self.rounds: list[list[str]] = []
        self.delay = delay

    async def write(self, items: Sequence[str]) -> list[object]:
        await asyncio.sleep(self.delay)
        if "bad" in items:
            raise RuntimeError("constraint violated by 'bad'")
        self.rounds.append(list(items))
        return [KeyError(i) if i.startswith("taken") else i.upper() for i in items]


async def test_a_lone_item_is_written_at_once() -> None:
    store = Store()
    writer = GroupCommit(store.write)
    assert await writer.submit(Ticket("a")) == "A"
    assert store.rounds == [["a"]]


async def test_concurrent_items_share_rounds_in_order() -> None:
    store = Store()
    writer = GroupCommit(store.write, max_batch=10)
    tickets = [Ticket(f"m{i}") for i in range(25)]
    results = await asyncio.gather(*(writer.submit(t) for t in tickets))
    assert results == [f"M{i}" for i in range(25)]
    assert all(t.committed for t in tickets)
    # all arrived before the first round began: rounds of at most ten, in order
    assert [len(r) for r in store.rounds] == [10, 10, 5]
    assert [i for r in store.rounds for i in r] == [f"m{i}" for i in range(25)]
    assert writer.rounds == 3
    assert writer.items == 25


async def test_an_items_own_failure_reaches_only_that_item() -> None:
    store = Store()
    writer = GroupCommit(store.write)
    ok, taken = Ticket("ok"), Ticket("taken-1")
    first = asyncio.ensure_future(writer.submit(Ticket("first")))
    await asyncio.sleep(0)
    results = await asyncio.gather(writer.submit(ok), writer.submit(taken), return_exceptions=True)
    await first
    assert results[0] == "OK"
    assert isinstance(results[1], KeyError)
    assert ok.committed
    assert not taken.committed


async def test_a_failed_round_is_written_again_item_by_item() -> None:
    store = Store()
    writer = GroupCommit(store.write)
    first = asyncio.ensure_future(writer.submit(Ticket("first")))
    await asyncio.sleep(0)
    tickets = [Ticket("x"), Ticket("bad"), Ticket("y")]
    results = await asyncio.gather(*(writer.submit(t) for t in tickets), return_exceptions=True)
    await first
    assert results[0] == "X"
    assert isinstance(results[1], RuntimeError)
    assert "bad" in str(results[1])
    assert results[2] == "Y"
    assert [t.committed for t in tickets] == [True, False, True]
    assert store.rounds == [["first"], ["x"], ["y"]]


async def test_a_cancelled_submitter_learns_whether_its_item_was_committed() -> None:
    store = Store(delay=0.05)
    writer = GroupCommit(store.write)
    ticket = Ticket("late")
    task = asyncio.ensure_future(writer.submit(ticket))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the submitter waited for the round before it was cancelled: the item is in
    assert ticket.committed
    assert store.rounds == [["late"]]


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(Store().write, max_batch=0)
