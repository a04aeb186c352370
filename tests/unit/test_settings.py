"""Settings read from the environment, and the queue settings reaching the queue."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from access_point.app import create_runtime
from access_point.settings import load_settings
from adapters.queue import DatabaseQueue
from sbdh.errors import ConfigurationError
from sbdh.pki import DevPki


def test_queue_settings_are_read_and_default() -> None:
    defaults = load_settings({})
    assert (defaults.queue_name, defaults.queue_lease) == ("", timedelta(seconds=60))
    settings = load_settings({"BUDSTIKKE_QUEUE_NAME": "tenant-a", "BUDSTIKKE_QUEUE_LEASE": "2.5"})
    assert (settings.queue_name, settings.queue_lease) == ("tenant-a", timedelta(seconds=2.5))
    with pytest.raises(ConfigurationError):
        load_settings({"BUDSTIKKE_QUEUE_LEASE": "0"})


async def test_the_embedded_queue_gets_its_name_and_lease(tmp_path: Path, dev_pki: DevPki) -> None:
    settings = load_settings(
        {
            "BUDSTIKKE_DATA_DIR": str(tmp_path),
            "BUDSTIKKE_QUEUE_NAME": "tenant-a",
            "BUDSTIKKE_QUEUE_LEASE": "5",
        }
    )
    runtime = await create_runtime(
        settings, run_workers=False, ap_credential=dev_pki.access_points["PNO000001"]
    )
    try:
        assert isinstance(runtime.queue, DatabaseQueue)
        assert (runtime.queue.name, runtime.queue.lease) == ("tenant-a", timedelta(seconds=5))
    finally:
        await runtime.close()
