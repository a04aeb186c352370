"""The README's main command: ``budstikke demo`` as a user runs it, in a subprocess."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from access_point.cli import main


def _budstikke() -> str:
    # the console script installed beside this interpreter, as `pip install -e .` puts it
    exe = Path(sys.executable).parent / "budstikke"
    if not exe.exists():
        pytest.skip(f"the budstikke console script is not installed at {exe}")
    return str(exe)


def test_demo_exchanges_an_arkivmelding_through_the_running_service(tmp_path: Path) -> None:
    out = subprocess.run(
        [_budstikke(), "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    timeline = [line.split()[-1] for line in lines if line.startswith("  20")]
    assert timeline == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"]
    assert "signature verified" in out.stdout
    demo = tmp_path / "demo"
    received = next((demo / "inbox").glob("*/vedtak.pdf"))
    sent = demo / "outbox" / "vedtak.pdf"
    assert (
        hashlib.sha256(received.read_bytes()).digest() == hashlib.sha256(sent.read_bytes()).digest()
    )
    assert received.read_bytes().startswith(b"%PDF-1.4")


def test_envelope_demo_runs_the_round_trip_and_leaves_its_artefacts(tmp_path: Path) -> None:
    out = subprocess.run(
        [_budstikke(), "demo", "envelope", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "eFormidling envelope rules: OK" in text
    assert "SBD signature verified" in text
    assert "package opened and verified" in text
    assert "one bit flipped in the package: " in text
    assert "NOT DETECTED" not in text
    demo = tmp_path / "demo"
    for name in ("arkivmelding.xml", "vedtak.pdf"):
        sent = (demo / "outbox" / name).read_bytes()
        got = (demo / "inbox" / name).read_bytes()
        assert hashlib.sha256(sent).digest() == hashlib.sha256(got).digest()
    # what the demo wrote is what the other commands accept
    assert main(["sbd", "validate", str(demo / "outbox" / "message.sbd.xml")]) == 0
    assert main(["sbd", "validate", str(demo / "outbox" / "message.sbd.json")]) == 0


def test_demo_starts_afresh_when_run_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "demo"
    assert main(["demo", "envelope", "--dir", str(target)]) == 0
    first_root = (target / "pki" / "root-ca.pem").read_bytes()
    assert main(["demo", "envelope", "--dir", str(target)]) == 0
    assert (target / "pki" / "root-ca.pem").read_bytes() != first_root
    assert capsys.readouterr().out.count("package opened and verified") == 2
