"""Shared fixtures: where the shared test data lives, and a development PKI made at test time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sbdh.pki import DevPki, generate_dev_pki
from sbdh.trust import TrustStore

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT.parent / "shared" / "testdata"


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
