"""A 200 MB SBD, and a 200 MB document package after a small SBD (eFormidling), sent and
received through files with bounded memory (measured in a fresh interpreter: VmHWM, the peak
resident set, not ru_maxrss of the test process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

SIZE_MIB = 200
LIMIT_MIB = 150


@pytest.mark.parametrize(("mode", "payloads"), [("sbd", 1), ("package", 2)])
def test_200_mb_round_trip_in_bounded_memory(tmp_path: Path, mode: str, payloads: int) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.unit.as4.large_child",
            str(SIZE_MIB),
            str(tmp_path),
            mode,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["payload_size"] >= SIZE_MIB * 1024 * 1024 - 4096
    assert report["received_size"] == report["payload_size"]
    assert report["payload_count"] == payloads
    assert report["same_payload"]
    # compressed and encrypted on the wire, and all of it streamed
    assert report["wire_size"] < report["payload_size"]
    peak_mib = report["peak_kib"] / 1024
    assert peak_mib < LIMIT_MIB, report
    # the message work itself adds little to the interpreter, libraries and keys
    assert (report["peak_kib"] - report["baseline_kib"]) / 1024 < 64, report
