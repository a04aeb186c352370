"""Schema migrations (Alembic, ``adapters/db/migrations``), run from code.

``budstikke db upgrade`` calls :func:`upgrade`; the service calls :func:`upgrade_async` at
start-up for the embedded default. On PostgreSQL an advisory lock makes processes that start
together take turns, so the second finds the schema current and does nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from adapters.db.engine import create_engine, normalise_url, translate_errors

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade", "upgrade_async"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: pg_advisory_xact_lock key: "budstikke" in ASCII, as an int64
_LOCK_KEY = int.from_bytes(b"budstikk", "big") & 0x7FFF_FFFF_FFFF_FFFF


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if database_url:
        config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """Bring the database at ``database_url`` to ``revision`` (the newest by default)."""
    engine = create_engine(database_url)
    try:
        with translate_errors():
            async with engine.begin() as connection:
                await connection.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()


def upgrade(database_url: str, revision: str = "head") -> None:
    """:func:`upgrade_async` for synchronous callers (the CLI); not inside a running loop."""
    asyncio.run(upgrade_async(database_url, revision))


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(database_url: str) -> str | None:
    """The revision the database is at (None for an empty database)."""
    engine = create_engine(database_url)
    try:
        with translate_errors():
            async with engine.connect() as connection:
                return await connection.run_sync(_current)
    finally:
        await engine.dispose()
