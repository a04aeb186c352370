"""Group commit: many concurrent writers, one transaction per round.

A request that writes a new message spends most of its database time on round trips (BEGIN, an
INSERT per table, COMMIT), not on the rows. When a hundred clients send at once, the rows of
every request waiting at that moment go into one transaction with one multi-row statement per
table, so the round trips are shared. There is no timer: a round starts as soon as the previous
one ends, so an idle service writes a lone request at once, and a busy one gathers what arrived
while it was writing (the way a database's own group commit works).

A round that fails is written again item by item, so one bad item cannot take the others down
with it; each item then gets its own outcome. An item whose submitter was cancelled is still
written (the round does not know), so :class:`Ticket` tells the submitter whether its item was
committed before it undoes anything it did beforehand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["GroupCommit", "Ticket"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class Ticket(Generic[T]):
    """One submitted item and what became of it."""

    item: T
    #: set once the round that wrote this item has committed
    committed: bool = False
    future: asyncio.Future[object] = field(default_factory=lambda: _loop().create_future())


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


class GroupCommit(Generic[T, R]):
    """Feeds concurrently submitted items to ``write`` in rounds of up to ``max_batch``.

    ``write(items)`` runs one transaction and returns one outcome per item, in order: a value,
    or an exception for an item that alone could not be written (a conflict, say) while the
    others were. An exception raised by ``write`` itself means the whole round was rolled back;
    each of its items is then written on its own.
    """

    def __init__(
        self,
        write: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 64,
        name: str = "group-commit",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max_batch = max_batch
        self._name = name
        self._pending: list[Ticket[T]] = []
        self._runner: asyncio.Task[None] | None = None
        #: rounds written and items in them, for tests and metrics
        self.rounds = 0
        self.items = 0

    async def submit(self, ticket: Ticket[T]) -> R:
        """Write ``ticket.item`` in the next round; its value, or its exception."""
        self._pending.append(ticket)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.ensure_future(self._run())
        try:
            result = await asyncio.shield(ticket.future)
        except asyncio.CancelledError:
            # the round goes on without the submitter; wait for it, so that ``committed`` is
            # true or false for certain when the submitter decides what to undo
            with contextlib.suppress(BaseException):
                await ticket.future
            raise
        return result  # type: ignore[return-value]

    async def _run(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            await self._round(batch)

    async def _round(self, batch: list[Ticket[T]]) -> None:
        try:
            outcomes = await self._write([t.item for t in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{self._name}: {len(outcomes)} outcomes for {len(batch)}")
        except BaseException as exc:
            if len(batch) == 1 or isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                for ticket in batch:
                    _settle(ticket, exc)
                if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                    raise
                return
            log.debug("%s: a round of %d failed (%r); each item alone", self._name, len(batch), exc)
            for ticket in batch:
                await self._round([ticket])
            return
        self.rounds += 1
        self.items += len(batch)
        for ticket, outcome in zip(batch, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                ticket.committed = True
            _settle(ticket, outcome)


def _settle(ticket: Ticket[T], outcome: object) -> None:
    if ticket.future.done():
        return
    if isinstance(outcome, BaseException):
        ticket.future.set_exception(outcome)
        # a submitter that was cancelled never retrieves it; do not warn about that
        ticket.future.exception()
    else:
        ticket.future.set_result(outcome)
