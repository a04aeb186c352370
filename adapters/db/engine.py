"""Engines and transactions for the message store (SQLAlchemy asyncio: aiosqlite, asyncpg).

:func:`create_engine` is the one place that knows what each database needs:

* **SQLite** (the embedded default): WAL so readers never wait for the writer, a 10 s busy
  timeout so concurrent writers queue instead of failing, foreign keys on, ``synchronous=NORMAL``
  (durable at every checkpoint, safe with WAL). Transactions start with ``BEGIN IMMEDIATE``:
  a read-then-write transaction that started as a reader would fail with ``database is
  locked`` when it tries to write, instead of waiting its turn.
* **PostgreSQL**: a pool sized for one process; ``READ COMMITTED``; reads in autocommit.

:class:`Database` wraps the engine with :meth:`Database.transaction` (one connection, one
transaction, committed on success) and :meth:`Database.read` (a connection for queries).
Driver errors are translated into the bus's error tree at this boundary
(:func:`translate_errors`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from sbdh.errors import ConfigurationError, Conflict, TransientDeliveryError

__all__ = ["Database", "create_engine", "is_sqlite", "translate_errors"]

_BUSY_TIMEOUT_MS = 10_000


def is_sqlite(engine_or_url: AsyncEngine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return url.startswith("sqlite")


def normalise_url(url: str) -> str:
    """An async driver URL: ``postgresql://`` → asyncpg, ``sqlite://`` → aiosqlite."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for ``url`` with the settings this store relies on."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise ConfigurationError(f"not a database URL: {error}") from error
    if parsed.drivername.startswith("sqlite"):
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _sqlite_pragmas(engine)
        return engine
    if parsed.drivername.startswith("postgresql"):
        options: dict[str, Any] = {"pool_size": 20, "max_overflow": 20, "pool_pre_ping": False}
        options.update(kwargs)
        return create_async_engine(url, **options)
    raise ConfigurationError(
        f"unsupported database {parsed.drivername!r}: use SQLite or PostgreSQL"
    )


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # the driver's own transaction handling is off: BEGIN is ours (see _on_begin)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Driver errors → the bus's error tree (the adapter boundary)."""
    try:
        yield
    except exc.IntegrityError as error:
        raise Conflict(f"the store refused a conflicting write: {error.orig}") from error
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
        raise TransientDeliveryError(f"the database is unavailable: {error}") from error
    except exc.DBAPIError as error:
        if error.connection_invalidated or _unavailable(error):
            raise TransientDeliveryError(f"the database is unavailable: {error}") from error
        raise


#: SQLSTATE classes that mean "not now" rather than "never": connection exceptions (08),
#: insufficient resources such as too many connections (53), operator intervention (57)
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")


def _unavailable(error: exc.DBAPIError) -> bool:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return isinstance(code, str) and code[:2] in _TRANSIENT_SQLSTATE_CLASSES


class Database:
    """The store's engine and how to use it: one transaction per business operation."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        return cls(create_engine(url, **kwargs))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed when the block ends without an error."""
        with translate_errors():
            async with self.engine.begin() as connection:
                yield connection

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for queries only (on SQLite a deferred transaction: no write lock).

        On PostgreSQL it runs in autocommit: under READ COMMITTED every statement takes its
        own snapshot whether or not it is in a transaction, so a read-only block sees exactly
        what it would in one, and saves the BEGIN and ROLLBACK round trips. Nothing that
        writes or locks (``FOR UPDATE``) belongs here; that is :meth:`transaction`'s.
        """
        with translate_errors():
            async with self.engine.connect() as connection:
                if self.sqlite:
                    await connection.execution_options(sqlite_begin="DEFERRED")
                else:
                    await connection.execution_options(isolation_level="AUTOCOMMIT")
                yield connection

    async def ping(self) -> None:
        """Raises :class:`TransientDeliveryError` when the database does not answer."""
        async with self.read() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
