"""Fixtures for the SMP document tests: the shared SMP samples and an SMP signing credential."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from sbdh.pki import Credential, DevPki, issue_end_entity


@pytest.fixture(scope="session")
def smp_samples(testdata: Path) -> Path:
    """``../shared/testdata/smp`` (skipped with a reason when the shared test data is absent)."""
    return testdata / "smp"


@pytest.fixture(scope="session")
def smp_signer(dev_pki: DevPki, now: datetime) -> Credential:
    """An SMP's signing credential from the development PKI (trusted through its root)."""
    return issue_end_entity(dev_pki.ap_ca, "PNO000900", now=now, organisation="Test SMP")
