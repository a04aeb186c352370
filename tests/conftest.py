"""Shared fixtures: where the shared test data lives, and a development PKI made at test time."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sbdh.pki import DevPki, generate_dev_pki
from sbdh.trust import TrustStore
from tests.interop.peer_venv import PeerVenvError, ensure_peer_venv

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT.parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def as4_peer_python() -> Path:
    """The python of a virtualenv holding the independent PyPI ``as4`` package (made once and
    cached; see tests/interop/peer_venv.py). Skipped locally when it cannot be made; in CI a
    failure."""
    try:
        return ensure_peer_venv()
    except PeerVenvError as exc:
        reason = f"the as4 peer's virtual environment cannot be made: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(f"{reason}\n(set BUDSTIKKE_AS4_PEER_VENV to choose where it is cached)")


@pytest.fixture(scope="session")
def testdata() -> Path:
    """``../shared/testdata``; tests that need it are skipped with a reason when it is absent."""
    if not TESTDATA.is_dir():
        pytest.skip(f"shared test data not found at {TESTDATA} (it is present in CI)")
    return TESTDATA


@pytest.fixture(scope="session")
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="session")
def dev_pki(now: datetime) -> DevPki:
    """A development PKI generated once per test session (2048-bit keys to keep it quick)."""
    return generate_dev_pki(now=now, ca_key_size=2048)


@pytest.fixture(scope="session")
def trust(dev_pki: DevPki) -> TrustStore:
    return TrustStore((dev_pki.root.certificate,))


def _server_url(variable: str, what: str) -> str:
    """A real server's URL from the environment; skipped locally when unset, a failure in CI."""
    url = os.environ.get(variable)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{variable} is not set: CI must start {what} (.ci/run does)")
        pytest.skip(f"{what} not available: set {variable} (bash .ci/run starts one)")
    return url


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """``postgresql://user:pw@host:port/db`` of a PostgreSQL whose user may create databases."""
    return _server_url("BUDSTIKKE_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture
async def postgres_url(postgres_admin_url: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, as a SQLAlchemy asyncpg URL."""
    import asyncpg

    name = f"budstikke_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = postgres_admin_url.rsplit("/", 1)[0]
    yield base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        for attempt in range(20):
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except asyncpg.InsufficientPrivilegeError:
                # FORCE may not end another role's backend (autovacuum, say) without
                # pg_signal_backend; such a backend goes by itself, so wait for it
                await asyncio.sleep(0.25 * (attempt + 1))
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """``amqp://user:pw@host:port/`` of a RabbitMQ broker."""
    return _server_url("BUDSTIKKE_TEST_AMQP_URL", "RabbitMQ")
