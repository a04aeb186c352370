"""Fixtures and builders shared by the store tests (test_store_*, test_messages*, test_files).

``database_url`` is parametrised over SQLite (a file under ``tmp_path``) and PostgreSQL (a
fresh database; marked ``integration``, skipped without ``BUDSTIKKE_TEST_POSTGRES_URL``), so
every store test runs against both. Import the fixtures into a test module with
``from tests.store_fixtures import *``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from access_point.messages import Client, MessageService
from access_point.settings import Settings
from adapters.db.engine import Database
from adapters.db.migrate import upgrade_async
from adapters.files import FileStore
from adapters.noark import minimal_arkivmelding
from sbdh.model import BusinessMessage, JsonObject, StandardBusinessDocument, eformidling_sbd
from sbdh.pki import DevPki

__all__ = [
    "ARKIVMELDING_XML",
    "ORG_A",
    "ORG_B",
    "ORG_C",
    "Clock",
    "arkivmelding",
    "clock",
    "database",
    "database_url",
    "kvittering",
    "service",
]

ORG_A = "991825827"
ORG_B = "974760673"
ORG_C = "910075918"
PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
RESPONSE_PROCESS = "urn:no:difi:profile:arkivmelding:response:ver1.0"

#: a valid arkivmelding: a saksmappe with a journalpost whose one document is vedtak.pdf
ARKIVMELDING_XML = minimal_arkivmelding(
    message_id="store-fixture",
    title="Vedtak om byggesak",
    files=["vedtak.pdf"],
    now=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def arkivmelding(
    *,
    sender: str = ORG_A,
    receiver: str = ORG_B,
    message_id: str | None = None,
    conversation_id: str | None = None,
    expected_response: datetime | None = None,
    body: dict[str, object] | None = None,
    process: str = PROCESS,
    standard: str = "urn:no:difi:arkivmelding:xsd::arkivmelding",
    message_type: str = "arkivmelding",
) -> StandardBusinessDocument:
    return eformidling_sbd(
        sender=f"0192:{sender}",
        receiver=f"0192:{receiver}",
        message=BusinessMessage(
            message_type, JsonObject.of(body if body is not None else {"sikkerhetsnivaa": 3})
        ),
        standard=standard,
        process=process,
        conversation_id=conversation_id or str(uuid.uuid4()),
        instance_identifier=message_id or str(uuid.uuid4()),
        created=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        expected_response=expected_response,
    )


def kvittering(original: StandardBusinessDocument, **kwargs: object) -> StandardBusinessDocument:
    """The receiver's arkivmelding_kvittering for ``original``, in its conversation (OK, unless
    ``body`` says otherwise)."""
    header = original.header
    assert header.sender is not None
    assert header.receiver is not None
    return arkivmelding(
        sender=header.receiver.value.split(":")[1],
        receiver=header.sender.value.split(":")[1],
        conversation_id=header.conversation_id,
        process=RESPONSE_PROCESS,
        standard="urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering",
        message_type="arkivmelding_kvittering",
        **{
            "body": {"receiptType": "OK", "relatedToMessageId": original.instance_identifier},
            **kwargs,
        },  # type: ignore[arg-type]
    )


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables): SQLite in ``tmp_path``, or a fresh PostgreSQL one."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The migrated store."""
    await upgrade_async(database_url)
    db = Database.from_url(database_url)
    yield db
    await db.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def service(
    database: Database, tmp_path: Path, dev_pki: DevPki, clock: Clock
) -> MessageService:
    settings = Settings(
        data_dir=tmp_path,
        database_url=str(database.engine.url),
        inbox_lock_timeout=timedelta(minutes=5),
    )
    files = FileStore(tmp_path / "files", secrets.token_bytes(32), durable=False)
    return MessageService(database, files, settings, dev_pki.access_points["PNO000001"], clock)


async def client_for(service: MessageService, *orgs: str, name: str = "client") -> Client:
    client, _token = await service.create_client(name, orgs)
    return client
