"""Driving the ``as4`` peer (``as4_peer.py``) from Budstikke's test process.

The peer runs with its own python (:mod:`tests.interop.peer_venv`); this module only builds its
command lines, starts it, and reads the JSON lines it prints. Keys come from Budstikke's
development PKI, written to disk by :func:`write_peer_pki`; by convention Budstikke is the
access point ``PNO000001`` and the peer ``PNO000002``.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sbdh.pki import DevPki, init_pki

PEER_SCRIPT = Path(__file__).resolve().with_name("as4_peer.py")
BUDSTIKKE_AP = "PNO000001"
PEER_AP = "PNO000002"
_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class PartyFiles:
    """An access point's PEM files: ``cert`` holds the leaf followed by its issuers."""

    name: str
    cert: Path
    key: Path


@dataclass(frozen=True)
class PeerPki:
    """The development PKI as files, for the peer's command line (and Budstikke's settings)."""

    directory: Path
    root: Path
    ap_ca: Path
    access_points: dict[str, PartyFiles]

    @property
    def trust(self) -> tuple[Path, ...]:
        """The trust anchor and the access-point CA, as ``--trust`` takes them."""
        return (self.root, self.ap_ca)

    def party(self, name: str) -> PartyFiles:
        return self.access_points[name]


def write_peer_pki(directory: Path, pki: DevPki) -> PeerPki:
    """Write ``pki`` with :func:`sbdh.pki.init_pki` and name the files the peer needs."""
    index = init_pki(directory, pki, force=True)
    access_points = index["access_points"]
    assert isinstance(access_points, dict)
    return PeerPki(
        directory=directory,
        root=directory / "root-ca.pem",
        ap_ca=directory / "ap-ca.pem",
        access_points={
            name: PartyFiles(name, directory / files["certificate"], directory / files["key"])
            for name, files in access_points.items()
        },
    )


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@dataclass(frozen=True)
class PeerRun:
    """A finished ``build`` or ``send``: exit status, the JSON lines, stderr."""

    command: tuple[str, ...]
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event"] == "sent"]

    @property
    def summary(self) -> dict[str, Any]:
        return next(event for event in self.events if event["event"] == "summary")

    @property
    def built(self) -> dict[str, Any]:
        return next(event for event in self.events if event["event"] == "built")

    def explain(self) -> str:
        return f"{' '.join(self.command)}\nexit {self.returncode}\n{self.events}\n{self.stderr}"


@dataclass(frozen=True)
class As4Peer:
    """The peer's command line: ``python`` is the peer environment's interpreter."""

    python: Path
    script: Path = PEER_SCRIPT

    def command(self, *args: str | os.PathLike[str]) -> list[str]:
        return [str(self.python), str(self.script), *(str(arg) for arg in args)]

    @staticmethod
    def outgoing_args(
        identity: PartyFiles,
        receiver_cert: Path,
        sbd: Path,
        trust: Sequence[Path] = (),
        extra: Sequence[str | os.PathLike[str]] = (),
    ) -> list[str | os.PathLike[str]]:
        args: list[str | os.PathLike[str]] = [
            "--key",
            identity.key,
            "--cert",
            identity.cert,
            "--receiver-cert",
            receiver_cert,
            "--sbd",
            sbd,
        ]
        if trust:
            args += ["--trust", *trust]
        return [*args, *extra]

    def run(self, *args: str | os.PathLike[str], timeout: float = 300.0) -> PeerRun:
        command = self.command(*args)
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        return PeerRun(tuple(command), done.returncode, _events(done.stdout), done.stderr)

    async def run_async(self, *args: str | os.PathLike[str], timeout: float = 300.0) -> PeerRun:
        """:meth:`run` for tests whose event loop serves the other side of the exchange."""
        command = self.command(*args)
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return PeerRun(
            tuple(command), process.returncode, _events(stdout.decode()), stderr.decode()
        )

    def send_args(
        self,
        *,
        url: str,
        identity: PartyFiles,
        receiver_cert: Path,
        sbd: Path,
        trust: Sequence[Path] = (),
        count: int = 1,
        concurrency: int = 1,
        extra: Sequence[str | os.PathLike[str]] = (),
    ) -> list[str | os.PathLike[str]]:
        return [
            "send",
            "--url",
            url,
            *self.outgoing_args(identity, receiver_cert, sbd, trust, extra),
            "--count",
            str(count),
            "--concurrency",
            str(concurrency),
        ]

    def send(self, **kwargs: Any) -> PeerRun:
        """``as4_peer.py send``; keyword arguments as :meth:`send_args`."""
        return self.run(*self.send_args(**kwargs))

    async def send_async(self, **kwargs: Any) -> PeerRun:
        return await self.run_async(*self.send_args(**kwargs))

    def build(
        self,
        *,
        out: Path,
        identity: PartyFiles,
        receiver_cert: Path,
        sbd: Path,
        extra: Sequence[str | os.PathLike[str]] = (),
    ) -> PeerRun:
        """``as4_peer.py build``: the HTTP body goes to ``out``, headers in ``.built``."""
        return self.run(
            "build", *self.outgoing_args(identity, receiver_cert, sbd, (), extra), "--out", out
        )

    @contextmanager
    def serve(
        self,
        *,
        identity: PartyFiles,
        trust: Sequence[Path],
        out: Path,
        extra: Sequence[str | os.PathLike[str]] = (),
    ) -> Iterator[PeerServer]:
        """``as4_peer.py serve`` on a free port, stopped on exit."""
        args: list[str | os.PathLike[str]] = [
            "serve",
            "--port",
            "0",
            "--key",
            identity.key,
            "--cert",
            identity.cert,
            "--trust",
            *trust,
            "--out",
            out,
            *extra,
        ]
        server = PeerServer.start(self.command(*args), out)
        try:
            yield server
        finally:
            server.stop()


@dataclass
class PeerServer:
    """A running ``as4_peer.py serve``: its URL, and the messages it has answered so far."""

    process: subprocess.Popen[str]
    out: Path
    stderr_path: Path
    port: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    _lines: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, command: list[str], out: Path) -> PeerServer:
        out.mkdir(parents=True, exist_ok=True)
        stderr_path = out.parent / f"{out.name}.peer-stderr.log"
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1
            )
        server = cls(process, out, stderr_path)
        server._reader = threading.Thread(target=server._read, daemon=True)
        server._reader.start()
        try:
            ready = server._next("ready", _READY_TIMEOUT)
        except BaseException:
            server.stop()
            raise
        server.port = int(ready["port"])
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                event = json.loads(line)
                with self._lock:
                    self.events.append(event)
                self._lines.put(event)
        self._lines.put(None)

    def _next(self, kind: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"peer printed no {kind!r} line in time{self._why()}"
                ) from None
            if event is None:
                raise AssertionError(f"peer exited before a {kind!r} line{self._why()}")
            if event["event"] == kind:
                return event

    def _why(self) -> str:
        return f"\n--- peer stderr ---\n{self.stderr()}"

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text()
        except OSError:
            return ""

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for event in self.events if event["event"] == "received"]

    def wait_received(self, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The first ``count`` messages answered, waiting for them as long as ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self.received()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"peer answered {len(self.received())} of {count} messages{self._why()}"
                )
            if self.process.poll() is not None:
                raise AssertionError(f"peer exited ({self.process.returncode}){self._why()}")
            time.sleep(0.02)
        return self.received()[:count]

    async def wait_received_async(
        self, count: int = 1, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.wait_received, count, timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)  # the pipe is at its end once the process is gone
        if self.process.stdout is not None:
            self.process.stdout.close()
