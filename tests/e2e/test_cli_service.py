"""The shell commands against a running service: client add, serve, send, inbox, status."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

SENDER, RECEIVER = "991825827", "974760673"


def _budstikke(*args: str, env: dict[str, str], timeout: float = 60) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "access_point.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    port = _free_port()
    env = {
        **os.environ,
        "BUDSTIKKE_DATA_DIR": str(tmp_path / "data"),
        "BUDSTIKKE_PORT": str(port),
    }
    for name in [
        n
        for n in env
        if n.startswith("BUDSTIKKE_") and n not in ("BUDSTIKKE_DATA_DIR", "BUDSTIKKE_PORT")
    ]:
        del env[name]
    _budstikke("db", "upgrade", env=env)
    server = subprocess.Popen(
        [sys.executable, "-m", "access_point.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/manage/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("budstikke serve did not come up") from None
                time.sleep(0.2)
        yield env, url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_send_inbox_and_status_from_the_shell(
    service: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, url = service
    sender = json.loads(_budstikke("client", "add", "A", "--org", SENDER, "--json", env=env))
    receiver = json.loads(_budstikke("client", "add", "B", "--org", RECEIVER, "--json", env=env))
    listing = _budstikke("client", "list", env=env)
    assert SENDER in listing
    assert sender["token"] not in listing

    letter = tmp_path / "vedtak.pdf"
    letter.write_bytes(b"%PDF-1.4\n% a letter\n%%EOF\n")
    common = ["--url", url]
    message_id = _budstikke(
        "send",
        "--from",
        SENDER,
        "--to",
        RECEIVER,
        str(letter),
        "--token",
        sender["token"],
        *common,
        env=env,
    ).strip()
    assert len(message_id) == 36

    inbox = tmp_path / "inbox"
    deadline = time.monotonic() + 30
    taken = ""
    while message_id not in taken and time.monotonic() < deadline:
        taken = _budstikke(
            "inbox", "--dir", str(inbox), "--token", receiver["token"], *common, env=env
        )
        time.sleep(0.2)
    assert f"{message_id} from 0192:{SENDER}" in taken
    assert (inbox / f"{message_id}.asice").stat().st_size > 0

    deadline = time.monotonic() + 30
    timeline = ""
    while "LEVERT" not in timeline and time.monotonic() < deadline:
        timeline = _budstikke("status", message_id, "--token", sender["token"], *common, env=env)
        time.sleep(0.2)
    statuses = [line.split()[1] for line in timeline.splitlines()]
    assert statuses[:4] == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]


def test_the_commands_need_a_token(service: tuple[dict[str, str], str]) -> None:
    env, url = service
    out = subprocess.run(
        [sys.executable, "-m", "access_point.cli", "status", "x", "--url", url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "no API token" in out.stderr
