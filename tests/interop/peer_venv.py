"""The interoperability peer's own virtual environment: ``as4`` and its pins, kept apart.

``as4`` pins ``cryptography<47`` and brings pydantic; installed next to Budstikke it would
constrain the project's own dependencies, so the peer lives in a virtual environment of its own
and the tests start it as a subprocess. That environment is made once and cached, keyed by the
``as4`` version, in ``$BUDSTIKKE_AS4_PEER_VENV/as4-peer-<version>`` when that variable is set,
else in ``${XDG_CACHE_HOME:-~/.cache}/budstikke/as4-peer-<version>``. Creation runs under an
exclusive ``fcntl`` lock beside it, so parallel test sessions wait for one another instead of
racing, and a marker file written last tells a finished environment from a half-made one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

AS4_VERSION = "0.2.0"
ROOT_VARIABLE = "BUDSTIKKE_AS4_PEER_VENV"
_MARKER = ".budstikke-as4-peer.json"
_INSTALL_TIMEOUT = 900.0


class PeerVenvError(Exception):
    """The peer's environment could not be made (no network, no ``venv`` module, ...)."""


def venv_root() -> Path:
    configured = os.environ.get(ROOT_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "budstikke"


def venv_dir(root: Path | None = None, version: str = AS4_VERSION) -> Path:
    return (root or venv_root()) / f"as4-peer-{version}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _run(command: list[str], what: str, timeout: float) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerVenvError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-12:])
        raise PeerVenvError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def _installed_version(python: Path) -> str | None:
    """The ``as4`` version the environment's python can import, or None when it cannot."""
    if not python.exists():
        return None
    probe = "import as4, importlib.metadata as m; print(m.version('as4'))"
    try:
        return _run([str(python), "-c", probe], "probe", timeout=60).strip()
    except PeerVenvError:
        return None


def _is_ready(venv: Path, version: str) -> bool:
    try:
        marker = json.loads((venv / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("as4") == version and _installed_version(venv_python(venv)) == version


def ensure_peer_venv(
    root: Path | None = None,
    *,
    version: str = AS4_VERSION,
    base_python: str = sys.executable,
) -> Path:
    """The python of a ready peer environment, made (under the lock) when missing or broken."""
    venv = venv_dir(root, version)
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / f"{venv.name}.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _is_ready(venv, version):
                return venv_python(venv)
            if venv.exists():
                shutil.rmtree(venv)
            return _create(venv, version, base_python)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _create(venv: Path, version: str, base_python: str) -> Path:
    """Make the environment; on failure leave nothing half-made behind."""
    python = venv_python(venv)
    try:
        _run([base_python, "-m", "venv", str(venv)], "python -m venv", timeout=300)
        _run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--retries",
                "2",
                f"as4=={version}",
            ],
            f"pip install as4=={version} (from the index pip is configured for)",
            timeout=_INSTALL_TIMEOUT,
        )
        installed = _installed_version(python)
        if installed != version:
            raise PeerVenvError(f"as4 {version} was installed but imports as {installed}")
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    marker = {"as4": version, "base_python": base_python}
    (venv / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return python
