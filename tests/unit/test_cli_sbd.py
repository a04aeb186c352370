"""``budstikke sbd validate`` and ``budstikke sbd convert``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from access_point.cli import main
from sbdh.jsonform import sbd_from_json
from sbdh.xmlform import sbd_from_xml, sbd_to_xml
from tests.unit.sbd_helpers import c14n, peppol


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.xml"
    path.write_bytes(sbd_to_xml(peppol()))
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.xml"
    path.write_bytes(sbd_to_xml(peppol(country_c1="XX")))
    return path


@pytest.fixture
def evil(tmp_path: Path) -> Path:
    path = tmp_path / "evil.xml"
    path.write_bytes(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')
    return path


def test_validate_all_good(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sbd", "validate", str(good)]) == 0
    assert capsys.readouterr().out == f"OK {good}\n"


def test_validate_mixed(
    good: Path, bad: Path, evil: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.xml"
    assert main(["sbd", "validate", str(good), str(bad), str(evil), str(missing)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"OK {good}"
    assert lines[1].startswith(f"INVALID {bad}: invalid-country-c1: ")
    assert lines[2].startswith(f"INVALID {evil}: xml-dtd: ")
    assert lines[3].startswith(f"INVALID {missing}: file-unreadable: ")
    assert len(lines) == 4


def test_validate_json_lines(good: Path, bad: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sbd", "validate", "--json", str(good), str(bad)]) == 1
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first == {"file": str(good), "valid": True, "profile": "peppol", "errors": []}
    assert second["file"] == str(bad)
    assert second["valid"] is False
    assert second["errors"][0]["rule"] == "invalid-country-c1"
    assert set(second["errors"][0]) == {"rule", "message"}


def test_validate_with_profile(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sbd", "validate", "--profile", "eformidling", str(good)]) == 1
    assert "no-conversation-id" in capsys.readouterr().out


@pytest.mark.testdata
def test_validate_shared_samples(testdata: Path, capsys: pytest.CaptureFixture[str]) -> None:
    samples = testdata / "sbdh/samples"
    files = sorted(str(p) for p in samples.rglob("*.xml"))
    assert main(["sbd", "validate", *files]) == 1
    lines = capsys.readouterr().out.splitlines()
    verdicts = dict(line.split(" ", 1)[::-1] for line in lines if line.startswith("OK "))
    assert len(verdicts) == 9  # 8 good and the generic header
    for line in lines:
        if "/bad/bad-" in line:
            name = line.split("/bad/bad-", 1)[1].split(".xml:", 1)[0]
            assert line.startswith("INVALID ")
            assert f": {name}: " in line


def test_convert_round_trip(good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sbd", "convert", str(good), "--to", "json"]) == 0
    json_text = capsys.readouterr().out
    as_json = tmp_path / "good.json"
    as_json.write_text(json_text, encoding="utf-8")
    assert sbd_from_json(as_json.read_bytes()) == sbd_from_xml(good.read_bytes())
    assert main(["sbd", "convert", str(as_json), "--to", "xml"]) == 0
    xml_text = capsys.readouterr().out
    assert c14n(xml_text.encode()) == c14n(good.read_bytes())
    assert main(["sbd", "validate", str(as_json)]) == 0


def test_convert_refuses_bad_input_without_a_traceback(
    evil: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sbd", "convert", str(evil), "--to", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "xml-dtd" in captured.err
    assert "Traceback" not in captured.err
    assert main(["sbd", "convert", str(tmp_path / "nope.xml"), "--to", "xml"]) == 2
    assert "nope.xml" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('{"standardBusinessDocument": {"digital": {"ukjent": 5}}}')
    assert main(["sbd", "convert", str(broken), "--to", "xml"]) == 2
    assert "budstikke: error:" in capsys.readouterr().err


def test_console_script(good: Path, bad: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "access_point.cli", "sbd", "validate", str(good), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == f"OK {good}"
    assert result.stderr == ""
