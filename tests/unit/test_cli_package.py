"""``budstikke package seal`` and ``budstikke package open``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from access_point.cli import main

SENDER_ORG = "991825827"
RECEIVER_ORG = "974760673"


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("pki")
    assert main(["pki", "init", str(target), "--force"]) == 0
    return target


@pytest.fixture(scope="module")
def index(pki_dir: Path) -> dict[str, dict[str, dict[str, str]]]:
    data: dict[str, dict[str, dict[str, str]]] = json.loads((pki_dir / "pki.json").read_text())
    return data


def _org(pki_dir: Path, index: dict[str, dict[str, dict[str, str]]], orgnr: str) -> tuple[str, str]:
    entry = index["organisations"][orgnr]
    return str(pki_dir / entry["certificate"]), str(pki_dir / entry["key"])


def _seal_args(
    pki_dir: Path, index: dict[str, dict[str, dict[str, str]]], out: Path, *files: Path
) -> list[str]:
    sign_cert, sign_key = _org(pki_dir, index, SENDER_ORG)
    to_cert, _ = _org(pki_dir, index, RECEIVER_ORG)
    return [
        "package", "seal", "--sign-cert", sign_cert, "--sign-key", sign_key, "--to", to_cert,
        "--sender", SENDER_ORG, "--receiver", f"0192:{RECEIVER_ORG}", "--title", "Vedtak",
        "-o", str(out), *map(str, files),
    ]  # fmt: skip


def test_seal_then_open(
    tmp_path: Path,
    pki_dir: Path,
    index: dict[str, dict[str, dict[str, str]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "vedtak.pdf").write_bytes(b"%PDF-1.7 vedtak")
    (tmp_path / "vedlegg.txt").write_text("vedlegg")
    package = tmp_path / "package.cms"
    args = _seal_args(pki_dir, index, package, tmp_path / "vedtak.pdf", tmp_path / "vedlegg.txt")
    assert main(args) == 0
    assert "sealed" in capsys.readouterr().out
    assert package.is_file()
    assert not list(tmp_path.glob(".*.partial"))

    cert, key = _org(pki_dir, index, RECEIVER_ORG)
    out_dir = tmp_path / "out"
    anchor = str(pki_dir / "root-ca.pem")
    argv = ["package", "open", "--cert", cert, "--key", key, "--trust", anchor]
    assert main([*argv, "-o", str(out_dir), str(package)]) == 0
    printed = capsys.readouterr().out
    assert "0192:991825827" in printed
    assert "'Vedtak'" in printed
    assert "main" in printed
    assert (out_dir / "vedtak.pdf").read_bytes() == b"%PDF-1.7 vedtak"
    assert (out_dir / "vedlegg.txt").read_text() == "vedlegg"


def test_open_with_the_wrong_key_is_one_line_and_non_zero(
    tmp_path: Path,
    pki_dir: Path,
    index: dict[str, dict[str, dict[str, str]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    package = tmp_path / "p.cms"
    assert main(_seal_args(pki_dir, index, package, tmp_path / "a.pdf")) == 0
    capsys.readouterr()
    cert, key = _org(pki_dir, index, "910075918")
    argv = [
        "package",
        "open",
        "--cert",
        cert,
        "--key",
        key,
        "--trust",
        str(pki_dir / "root-ca.pem"),
    ]
    assert main([*argv, "-o", str(tmp_path / "out"), str(package)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cms-recipient" in err


def test_open_with_an_untrusted_anchor(
    tmp_path: Path,
    pki_dir: Path,
    index: dict[str, dict[str, dict[str, str]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    package = tmp_path / "p.cms"
    assert main(_seal_args(pki_dir, index, package, tmp_path / "a.pdf")) == 0
    cert, key = _org(pki_dir, index, RECEIVER_ORG)
    other = tmp_path / "other"
    assert main(["pki", "init", str(other)]) == 0
    capsys.readouterr()
    argv = ["package", "open", "--cert", cert, "--key", key, "--trust", str(other / "root-ca.pem")]
    assert main([*argv, "-o", str(tmp_path / "out"), str(package)]) == 2
    assert "chain-incomplete" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_seal_errors_leave_no_output(
    tmp_path: Path,
    pki_dir: Path,
    index: dict[str, dict[str, dict[str, str]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    package = tmp_path / "p.cms"
    assert main(_seal_args(pki_dir, index, package, tmp_path / "missing.pdf")) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    args = _seal_args(pki_dir, index, package, tmp_path / "a.pdf")
    args[args.index("--receiver") + 1] = "123456789"
    assert main(args) == 2
    assert "orgnr-check-digit" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "a.pdf"]


@pytest.mark.parametrize("action", ["seal", "open"])
def test_help_documents_the_flags(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["package", action, "--help"])
    text = capsys.readouterr().out
    flags = (
        ["--sign-cert", "--sign-key", "--to", "--sender", "--receiver", "--main", "--deflate"]
        if action == "seal"
        else ["--cert", "--key", "--trust", "--at", "--work-dir"]
    )
    for flag in [*flags, "--output"]:
        assert flag in text


def test_open_from_a_pipe(
    tmp_path: Path, pki_dir: Path, index: dict[str, dict[str, dict[str, str]]]
) -> None:
    """``/dev/stdin`` fed by a pipe cannot be read at random: the package goes to --work-dir."""
    (tmp_path / "vedtak.pdf").write_bytes(b"%PDF-1.7 vedtak" * 1000)
    package = tmp_path / "package.cms"
    assert main(_seal_args(pki_dir, index, package, tmp_path / "vedtak.pdf")) == 0
    cert, key = _org(pki_dir, index, RECEIVER_ORG)
    anchor = str(pki_dir / "root-ca.pem")
    script = "import sys; from access_point.cli import main; sys.exit(main(sys.argv[1:]))"

    def run(source: str, work: Path, out: Path) -> tuple[int, bytes]:
        argv = [
            "package", "open", "--cert", cert, "--key", key, "--trust", anchor,
            "--work-dir", str(work), "-o", str(out), source,
        ]  # fmt: skip
        with subprocess.Popen(
            [sys.executable, "-c", script, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        ) as process:
            output, _ = process.communicate(package.read_bytes())
        return process.returncode, output

    # a file is read where it lies: the work directory is not even looked at
    assert run(str(package), tmp_path / "absent", tmp_path / "a")[0] == 0
    # a pipe needs it
    status, output = run("/dev/stdin", tmp_path / "absent", tmp_path / "b")
    assert status == 2
    assert b"cannot open" in output
    work = tmp_path / "work"
    work.mkdir()
    status, output = run("/dev/stdin", work, tmp_path / "c")
    assert status == 0, output
    assert b"opened: signed by" in output
    assert (tmp_path / "c" / "vedtak.pdf").read_bytes() == b"%PDF-1.7 vedtak" * 1000
    assert list(work.iterdir()) == []
