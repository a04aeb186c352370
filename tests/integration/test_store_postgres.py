"""The store under real concurrency on PostgreSQL: several engines (as several processes
would have) peeking, creating and recording statuses at once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from access_point.messages import MessageService, Upload
from access_point.settings import Settings
from adapters.db.engine import Database
from adapters.db.migrate import upgrade_async
from adapters.files import FileStore
from sbdh.pki import DevPki
from tests.store_fixtures import ARKIVMELDING_XML, ORG_A, ORG_B, arkivmelding

pytestmark = pytest.mark.integration


@pytest.fixture
async def services(
    postgres_url: str, tmp_path: Path, dev_pki: DevPki
) -> AsyncIterator[list[MessageService]]:
    await upgrade_async(postgres_url)
    key = secrets.token_bytes(32)
    made = []
    for _ in range(3):
        database = Database.from_url(postgres_url)
        made.append(
            MessageService(
                database,
                FileStore(tmp_path / "files", key, durable=False),
                Settings(data_dir=tmp_path, database_url=postgres_url),
                dev_pki.access_points["PNO000001"],
            )
        )
    yield made
    for service in made:
        await service.database.dispose()


async def test_concurrent_peeks_across_nodes(services: list[MessageService]) -> None:
    first = services[0]
    a, _ = await first.create_client("a", [ORG_A])
    b, _ = await first.create_client("b", [ORG_B])
    ids = set()
    for _ in range(20):
        view = await first.create_and_send(
            a,
            arkivmelding(),
            [
                Upload("arkivmelding.xml", "application/xml", ARKIVMELDING_XML),
                Upload("vedtak.pdf", "application/pdf", b"%PDF"),
            ],
        )
        await first.deliver_locally(view.message_id)
        ids.add(view.message_id)
    results = await asyncio.gather(*(services[n % 3].peek(b) for n in range(30)))
    got = [r.message_id for r in results if r is not None]
    assert len(got) == len(set(got)) == 20
    assert set(got) == ids


async def test_racing_creates_store_one_message(services: list[MessageService]) -> None:
    a, _ = await services[0].create_client("a", [ORG_A])
    sbd = arkivmelding()
    views = await asyncio.gather(*(services[n % 3].create(a, sbd) for n in range(9)))
    assert sum(not v.existing for v in views) == 1
    history = await services[0].message_statuses(a, sbd.instance_identifier)
    assert [s.status.value for s in history.content] == ["OPPRETTET"]


async def test_racing_deliveries_deliver_once(services: list[MessageService]) -> None:
    first = services[0]
    a, _ = await first.create_client("a", [ORG_A])
    b, _ = await first.create_client("b", [ORG_B])
    view = await first.create_and_send(
        a,
        arkivmelding(),
        [
            Upload("arkivmelding.xml", "application/xml", ARKIVMELDING_XML),
            Upload("vedtak.pdf", "application/pdf", b"%PDF"),
        ],
    )
    results = await asyncio.gather(
        *(services[n % 3].deliver_locally(view.message_id) for n in range(6)),
        return_exceptions=True,
    )
    delivered = [r for r in results if not isinstance(r, BaseException) and r.delivered]
    assert len(delivered) == 1, results
    history = await first.message_statuses(a, view.message_id)
    assert [s.status.value for s in history.content] == ["OPPRETTET", "SENDT", "MOTTATT"]
    incoming = await first.message_statuses(b, view.message_id)
    assert [s.status.value for s in incoming.content] == ["INNKOMMENDE_MOTTATT"]
