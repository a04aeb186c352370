"""The store's schema, migrations and engine, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from adapters.db.engine import Database
from adapters.db.migrate import current_revision, head_revision, upgrade_async
from adapters.db.repositories import add_outbox
from adapters.db.schema import metadata, outbox, processed_jobs
from tests.store_fixtures import *  # noqa: F403


async def test_migrations_match_the_metadata(database: Database, database_url: str) -> None:
    assert await current_revision(database_url) == head_revision()

    def diff(connection: sa.Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        return list(compare_metadata(context, metadata))

    async with database.read() as connection:
        assert await connection.run_sync(diff) == []


async def test_upgrade_twice_is_a_no_op(database: Database, database_url: str) -> None:
    await upgrade_async(database_url)
    assert await current_revision(database_url) == head_revision()


async def test_timestamps_come_back_aware_utc(database: Database) -> None:
    oslo = timezone(timedelta(hours=2))
    moment = datetime(2024, 5, 1, 14, 0, 0, 123000, tzinfo=oslo)
    async with database.transaction() as connection:
        await add_outbox(connection, kind="send", message_id="m1", now=moment)
    async with database.read() as connection:
        row = (await connection.execute(sa.select(outbox))).one()
    assert row.created_at == moment
    assert row.created_at.tzinfo is not None
    assert row.created_at.utcoffset() == timedelta(0)
    assert row.payload == "{}"
    assert row.published_at is None


async def test_autoincrement_and_ordering(database: Database) -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    async with database.transaction() as connection:
        for n in range(3):
            await add_outbox(
                connection, kind="status", message_id=f"m{n}", now=base + timedelta(seconds=n)
            )
        await connection.execute(processed_jobs.insert().values(key="send:m1", processed_at=base))
    async with database.read() as connection:
        ids = (await connection.execute(sa.select(outbox.c.id).order_by(outbox.c.id))).scalars()
        assert list(ids) == [1, 2, 3]
        later = (
            await connection.execute(
                sa.select(outbox.c.message_id).where(outbox.c.created_at > base)
            )
        ).scalars()
        assert sorted(later) == ["m1", "m2"]
