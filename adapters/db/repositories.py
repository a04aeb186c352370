"""Transactional building blocks of the message store, shared by the service and the workers.

Each function takes an open connection inside a transaction and does one thing in as few
round trips as it can. Nothing here commits: the caller's transaction makes a business
operation atomic (the message, its status history and its outbox rows together).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from access_point.statuses import Direction, MessageStatus, can_transition, is_terminal
from adapters.db.schema import conversations, messages, outbox, status_events

__all__ = [
    "OUTBOX_SEND",
    "OUTBOX_STATUS",
    "add_outbox",
    "add_outbox_rows",
    "insert_ignore",
    "insert_status_event",
    "record_status",
    "status_payload",
    "write_status_events",
]

#: outbox kinds written by the store (the queue's job kinds)
OUTBOX_SEND = "send"
OUTBOX_STATUS = "status"


_STATEMENTS: dict[tuple[str, ...], Any] = {}


def insert_ignore(
    connection: AsyncConnection,
    table: sa.Table,
    *conflict: str,
    returning: str | tuple[str, ...] | None = None,
) -> Any:
    """``INSERT … ON CONFLICT (conflict) DO NOTHING [RETURNING returning]`` for the dialect.

    Built once per dialect and table and executed with a parameter dict: statements built with
    ``.values(...)`` on every call cost more Python time than the round trip they make.
    """
    dialect = connection.dialect.name
    columns = (returning,) if isinstance(returning, str) else tuple(returning or ())
    key = ("insert-ignore", dialect, table.name, *conflict, "->", *columns)
    statement = _STATEMENTS.get(key)
    if statement is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table).on_conflict_do_nothing(index_elements=list(conflict))
        if columns:
            statement = statement.returning(*(table.c[name] for name in columns))
        _STATEMENTS[key] = statement
    return statement


_INSERT_OUTBOX = outbox.insert()
_MOVE_STATUS = (
    messages.update()
    .where(messages.c.id == sa.bindparam("pk"))
    .where(messages.c.status.in_(sa.bindparam("sources", expanding=True)))
    .values(
        status=sa.bindparam("new_status"),
        last_update=sa.bindparam("now"),
        finished=sa.bindparam("is_finished"),
    )
)
_TOUCH_CONVERSATION = (
    conversations.update()
    .where(conversations.c.message_pk == sa.bindparam("pk"))
    .values(last_update=sa.bindparam("now"))
)
_MOVE_CONVERSATION = (
    conversations.update()
    .where(conversations.c.message_pk == sa.bindparam("pk"))
    .values(last_update=sa.bindparam("now"), finished=sa.bindparam("is_finished"))
)


async def add_outbox(
    connection: AsyncConnection,
    *,
    kind: str,
    message_id: str,
    now: datetime,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """One outbox row; the relay publishes it as a job after the transaction commits."""
    await connection.execute(
        _INSERT_OUTBOX,
        {
            "kind": kind,
            "message_id": message_id,
            "payload": json.dumps(dict(payload or {}), separators=(",", ":")),
            "created_at": now,
        },
    )


async def add_outbox_rows(
    connection: AsyncConnection,
    rows: Sequence[tuple[str, str, Mapping[str, Any]]],
    *,
    now: datetime,
) -> None:
    """Several outbox rows ``(kind, message_id, payload)`` in one statement, in this order."""
    await connection.execute(
        _INSERT_OUTBOX,
        [
            {
                "kind": kind,
                "message_id": message_id,
                "payload": json.dumps(dict(payload), separators=(",", ":")),
                "created_at": now,
            }
            for kind, message_id, payload in rows
        ],
    )


def status_payload(event_id: int, status: MessageStatus, direction: Direction) -> dict[str, Any]:
    """The payload of a status event's outbox row (the ``status`` job)."""
    return {"status_event_id": event_id, "status": status.value, "direction": direction.value}


_SOURCES: dict[tuple[MessageStatus, Direction], list[str]] = {
    (new, direction): [s.value for s in MessageStatus if can_transition(s, new, direction)]
    for new in MessageStatus
    for direction in Direction
}


def _sources(new: MessageStatus, direction: Direction) -> list[str]:
    """The statuses from which ``new`` may be reached."""
    return _SOURCES[(new, direction)]


async def insert_status_event(
    connection: AsyncConnection,
    *,
    message_pk: int,
    message_id: str,
    direction: Direction,
    status: MessageStatus,
    now: datetime,
    description: str | None = None,
    raw_receipt: str | None = None,
) -> int | None:
    """The event row and its outbox row, once per (message, status); the event id or None.

    The message row's status is the caller's business (a new message is inserted with it).
    """
    inserted = await connection.execute(
        insert_ignore(connection, status_events, "message_pk", "status", returning="id"),
        {
            "message_pk": message_pk,
            "status": status.value,
            "description": description,
            "raw_receipt": raw_receipt,
            "created_at": now,
        },
    )
    event_id = inserted.scalar_one_or_none()
    if event_id is None:
        return None
    await add_outbox(
        connection,
        kind=OUTBOX_STATUS,
        message_id=message_id,
        now=now,
        payload=status_payload(event_id, status, direction),
    )
    return int(event_id)


async def record_status(
    connection: AsyncConnection,
    *,
    message_pk: int,
    message_id: str,
    direction: Direction,
    status: MessageStatus,
    now: datetime,
    description: str | None = None,
    raw_receipt: str | None = None,
) -> int | None:
    """Record ``status`` on a message once, with its outbox row; the event id, or None.

    None means nothing was recorded: the status is already in the history (a repeated
    receipt) or the message has moved past it (receipts that overtook each other). The
    message's current status moves with a conditional ``UPDATE`` (atomic without a prior
    ``SELECT … FOR UPDATE``); ANNET is a note and leaves the current status alone.
    """
    finished = is_terminal(status)
    if status is not MessageStatus.ANNET:
        moved = await connection.execute(
            _MOVE_STATUS,
            {
                "pk": message_pk,
                "sources": _sources(status, direction),
                "new_status": status.value,
                "now": now,
                "is_finished": finished,
            },
        )
        if moved.rowcount == 0:
            return None
    event_id = await insert_status_event(
        connection,
        message_pk=message_pk,
        message_id=message_id,
        direction=direction,
        status=status,
        now=now,
        description=description,
        raw_receipt=raw_receipt,
    )
    if event_id is None:
        return None
    if status is MessageStatus.ANNET:
        await connection.execute(_TOUCH_CONVERSATION, {"pk": message_pk, "now": now})
    else:
        await connection.execute(
            _MOVE_CONVERSATION, {"pk": message_pk, "now": now, "is_finished": finished}
        )
    return event_id


_EVENT_RETURNING: dict[str, Any] = {}


async def write_status_events(
    connection: AsyncConnection,
    events: Sequence[tuple[int, str, Direction, MessageStatus, str | None, str | None]],
    *,
    now: datetime,
) -> list[tuple[int, int, MessageStatus]]:
    """Status events ``(message_pk, message_id, direction, status, description, raw_receipt)``
    of one or several messages, and their outbox rows: two statements however many there are.

    Once per (message, status): an event already in the history is skipped. Returns
    ``(event_id, message_pk, status)`` of those written, in id order. The messages' current
    status and their conversations are the caller's business.
    """
    if not events:
        return []
    dialect = connection.dialect.name
    statement = _EVENT_RETURNING.get(dialect)
    if statement is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(status_events)
            .on_conflict_do_nothing(index_elements=["message_pk", "status"])
            .returning(status_events.c.id, status_events.c.message_pk, status_events.c.status)
        )
        _EVENT_RETURNING[dialect] = statement
    rows = [
        {
            "message_pk": pk,
            "status": status.value,
            "description": description,
            "raw_receipt": raw_receipt,
            "created_at": now,
        }
        for pk, _, _, status, description, raw_receipt in events
    ]
    # several parameter sets with RETURNING: SQLAlchemy sends them as one multi-row INSERT
    result = await connection.execute(statement, rows)
    inserted = sorted((int(i), int(pk), MessageStatus(st)) for i, pk, st in result.all())
    if not inserted:
        return []
    about = {
        (pk, status): (message_id, direction) for pk, message_id, direction, status, *_ in events
    }
    await add_outbox_rows(
        connection,
        [
            (
                OUTBOX_STATUS,
                about[(pk, status)][0],
                status_payload(event_id, status, about[(pk, status)][1]),
            )
            for event_id, pk, status in inserted
        ],
        now=now,
    )
    return inserted


async def record_statuses(
    connection: AsyncConnection,
    *,
    message_pk: int,
    message_id: str,
    direction: Direction,
    statuses: Sequence[MessageStatus],
    now: datetime,
    description: str | None = None,
) -> list[int]:
    """Record several statuses in order (SENDT then MOTTATT); the ids of those recorded."""
    recorded: list[int] = []
    for status in statuses:
        event_id = await record_status(
            connection,
            message_pk=message_pk,
            message_id=message_id,
            direction=direction,
            status=status,
            now=now,
            description=description,
        )
        if event_id is not None:
            recorded.append(event_id)
    return recorded
