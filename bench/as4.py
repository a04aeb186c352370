"""AS4 benchmark: one Budstikke sending to another, against ``as4``'s sender and receiver.

    .venv/bin/python bench/as4.py            # the full run, a few minutes
    .venv/bin/python bench/as4.py --quick    # fewer messages, 20 MB instead of 200 MB

Everything runs on 127.0.0.1 in a temporary directory, with a development PKI made for the run.

Budstikke pair   receiver: ``budstikke serve`` as PNO000002 (its own data dir, SQLite, a client
                 for 974760673 so the organisation is hosted); ``POST /as4`` verifies, decrypts,
                 stores the message and only then signs the receipt. Sender: a runtime for
                 PNO000001 in this process (no workers), whose directory points 974760673 at the
                 receiver. Each message is first created in the sender's store (not timed), then
                 ``As4Network.send`` is timed: read from the store, build, sign, encrypt, post,
                 verify the receipt (signature, references), record SENDT/MOTTATT.
``as4`` pair     ``tests/interop/as4_peer.py serve`` (verifies, decrypts, writes the SBD to disk,
                 receipts) and ``as4_peer.py send --count N --concurrency C`` (builds, signs,
                 encrypts, posts, verifies the receipt), in the peer's own virtualenv
                 (``tests/interop/peer_venv.py``); its summary's messages/s.

The SBD is the Peppol invoice of the interop tests, padded to the size with ``cbc:Note``
elements of base64 text (at most 1 MB each: lxml's default limit on one text node is 10 MB),
with a fresh InstanceIdentifier per message for Budstikke (its receiver refuses a second
delivery of the same SBD; the ``as4`` receiver does not check, so it gets the same file).

Printed: messages/s for 10 KB and 1 MB SBDs, sequential and with ``--concurrency`` in flight,
for both pairs and their ratio; then one large message (200 MB) Budstikke → Budstikke, sent by
a fresh subprocess of this script (so its VmHWM is its own) to a fresh receiver, with the VmHWM
(``/proc/<pid>/status``) of both. The large SBD is written to a file and posted from it to the
sender's own message API (``POST /api/messages/out``, XML: over the stream threshold it is
streamed to the file store and never held), then sent. The sender's peak is given twice: over
its whole life (creating the message included) and of the send alone (VmHWM reset through
``/proc/self/clear_refs`` after the message is created). Each process starts at about 100 MB
(the interpreter and the libraries the service imports).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

INVOICE = ROOT / "tests" / "interop" / "peppol_invoice.sbd.xml"
INSTANCE = b"5f0c6f7e-interop-peer-0001"
SENDER_AP, RECEIVER_AP = "PNO000001", "PNO000002"
SENDER_ORG, RECEIVER_ORG = "991825827", "974760673"
NOTE_CHUNK = 1_000_000
KB, MB = 1000, 1000 * 1000


# =========================================================================== the SBD


def padded_sbd_pieces(size: int) -> Iterator[bytes]:
    """The interop invoice padded to about ``size`` bytes with base64 notes, in pieces (one
    note at a time, so that a 200 MB SBD can be written to a file without being held)."""
    base = INVOICE.read_bytes()
    anchor = b"    <cbc:DocumentCurrencyCode>"
    head, tail = base.split(anchor, 1)
    missing = max(0, size - len(base))
    rng = random.Random(size)
    overhead = len(b"    <cbc:Note></cbc:Note>\n")
    yield head
    while missing > overhead:
        text_len = min(NOTE_CHUNK, missing - overhead)
        raw = rng.randbytes(text_len * 3 // 4 + 3)
        text = base64.b64encode(raw)[:text_len]
        yield b"    <cbc:Note>" + text + b"</cbc:Note>\n"
        missing -= overhead + text_len
    yield anchor + tail


def padded_sbd(size: int) -> bytes:
    """The interop invoice padded to about ``size`` bytes with base64 notes."""
    return b"".join(padded_sbd_pieces(size))


def write_padded_sbd(path: Path, size: int) -> int:
    """:func:`padded_sbd` with a fresh InstanceIdentifier, written to ``path``; its size."""
    written = 0
    with path.open("wb") as out:
        for index, piece in enumerate(padded_sbd_pieces(size)):
            data = fresh(piece) if index == 0 else piece
            out.write(data)
            written += len(data)
    return written


def fresh(sbd: bytes) -> bytes:
    return sbd.replace(INSTANCE, str(uuid.uuid4()).encode(), 1)


def vm_hwm(pid: int | str = "self") -> int:
    """Peak resident set (VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# =========================================================================== Budstikke


@dataclass
class Receiver:
    """A ``budstikke serve`` process as PNO000002."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _budstikke(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "access_point.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"budstikke {' '.join(args)}: {out.stdout}{out.stderr}")
    return out.stdout


def start_receiver(work: Path, pki: Path, name: str) -> Receiver:
    data = work / name
    data.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDSTIKKE_")}
    env.update(
        BUDSTIKKE_DATA_DIR=str(data),
        BUDSTIKKE_PORT=str(port),
        BUDSTIKKE_PKI_DIR=str(pki),
        BUDSTIKKE_AP_NAME=RECEIVER_AP,
        BUDSTIKKE_LIFETIME_SWEEP="3600",
    )
    _budstikke("db", "upgrade", env=env)
    _budstikke("client", "add", "bench receiver", "--org", RECEIVER_ORG, "--json", env=env)
    log = work / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "access_point.cli", "serve"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    receiver = Receiver(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{receiver.url}/manage/health", timeout=2) as response:
                if response.status == 200:
                    return receiver
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                receiver.stop()
                raise RuntimeError(
                    f"receiver did not come up:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.2)


async def sender_runtime(data: Path, pki: Path, receiver_url: str) -> tuple[Any, Any]:
    """A PNO000001 runtime (no workers) whose directory knows the receiver, and a client."""
    from access_point.app import create_runtime  # noqa: PLC0415
    from access_point.settings import Settings  # noqa: PLC0415

    data.mkdir(parents=True)
    directory = {
        "participants": {
            f"0192:{RECEIVER_ORG}": {
                "endpoint": f"{receiver_url}/as4",
                "access_point_certificate": str(pki / "access-points" / f"{RECEIVER_AP}.pem"),
            }
        }
    }
    (data / "directory.json").write_text(json.dumps(directory))
    settings = Settings(data_dir=data, pki_dir=pki, ap_name=SENDER_AP)
    runtime = await create_runtime(settings, run_workers=False)
    client, _ = await runtime.service.create_client("bench sender", [SENDER_ORG])
    return runtime, client


async def budstikke_rate(
    runtime: Any, client: Any, sbd: bytes, count: int, concurrency: int
) -> float:
    """Messages/s of ``As4Network.send`` for ``count`` messages created beforehand."""
    ids = []
    for _ in range(count):
        view = await runtime.service.create_and_send(client, fresh(sbd), [])
        ids.append(view.message_id)
    network = runtime.network
    assert network is not None
    gate = asyncio.Semaphore(concurrency)

    async def one(message_id: str) -> None:
        async with gate:
            if not await network.send(message_id):
                raise RuntimeError(f"{message_id} was not sent")

    started = time.perf_counter()
    await asyncio.gather(*(one(message_id) for message_id in ids))
    elapsed = time.perf_counter() - started
    return count / elapsed


# =========================================================================== as4


def as4_rate(
    peer: Any, pki: Any, url: str, sbd_path: Path, *, count: int, concurrency: int
) -> float:
    from tests.interop.harness import BUDSTIKKE_AP, PEER_AP  # noqa: PLC0415

    run = peer.run(
        *peer.send_args(
            url=url,
            identity=pki.party(BUDSTIKKE_AP),
            receiver_cert=pki.party(PEER_AP).cert,
            sbd=sbd_path,
            trust=pki.trust,
            count=count,
            concurrency=concurrency,
        ),
        timeout=1800,
    )
    if run.returncode != 0:
        raise RuntimeError(f"as4 send failed:\n{run.explain()[-3000:]}")
    summary = run.summary
    if summary["acknowledged"] != count:
        raise RuntimeError(f"as4 send: {summary}")
    return float(summary["messages_per_s"])


# =========================================================================== the large message


async def _create_over_api(runtime: Any, path: Path) -> str:
    """POST the SBD in ``path`` to the sender's own message API (streamed from the file, as a
    case system would), then send it; the message id."""
    import aiohttp  # noqa: PLC0415
    from aiohttp import web  # noqa: PLC0415

    _, token = await runtime.service.create_client("bench case system", [SENDER_ORG])
    runner = web.AppRunner(runtime.app, access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/api/messages/out"
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            with path.open("rb") as body:
                async with http.post(
                    url, data=body, headers={"Content-Type": "application/xml"}
                ) as response:
                    if response.status != 200:
                        raise RuntimeError(f"{response.status}: {(await response.text())[:400]}")
                    created = await response.json()
            header = created["standardBusinessDocumentHeader"]
            message_id = str(header["documentIdentification"]["instanceIdentifier"])
            async with http.post(f"{url}/{message_id}") as response:
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {(await response.text())[:400]}")
    finally:
        await runner.cleanup()
    return message_id


async def child_send(size: int, pki: Path, receiver_url: str, data: Path) -> dict[str, Any]:
    """In a fresh process: create one ``size`` message (written to a file, posted to the
    message API), then send it over AS4; peaks and outcome."""
    at_start = vm_hwm()
    runtime, _client = await sender_runtime(data, pki, receiver_url)
    result: dict[str, Any] = {"size": size, "hwm_start": at_start}
    try:
        path = data / "large.sbd.xml"
        result["sbd_bytes"] = write_padded_sbd(path, size)
        try:
            message_id = await _create_over_api(runtime, path)
        except Exception as exc:
            result["error"] = f"create: {type(exc).__name__}: {exc}"[:600]
            return result
        path.unlink()
        result["hwm_after_create"] = vm_hwm()
        # reset VmHWM to the current RSS so the send's own peak can be read
        Path("/proc/self/clear_refs").write_text("5")
        result["rss_before_send"] = vm_hwm()
        assert runtime.network is not None
        started = time.perf_counter()
        try:
            await runtime.network.send(message_id)
        except Exception as exc:
            result["error"] = f"send: {type(exc).__name__}: {exc}"[:600]
            return result
        result["send_s"] = time.perf_counter() - started
        result["hwm_send"] = vm_hwm()
        return result
    finally:
        await runtime.close()


def large_message(work: Path, pki: Path, size: int, attempt: int) -> dict[str, Any]:
    """One message of ``size`` to a fresh receiver, sent by a fresh subprocess."""
    receiver = start_receiver(work, pki, f"large-receiver-{attempt}")
    try:
        receiver_start = vm_hwm(receiver.process.pid)
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child-send",
                str(size),
                "--pki",
                str(pki),
                "--receiver-url",
                receiver.url,
                "--child-data",
                str(work / f"large-sender-{attempt}"),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=1800,
            check=False,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            result: dict[str, Any] = {
                "size": size,
                "error": f"child exited {done.returncode}: {done.stderr[-1500:]}",
            }
        else:
            result = json.loads(lines[-1])
        result["receiver_hwm_start"] = receiver_start
        if receiver.process.poll() is None:
            result["receiver_hwm"] = vm_hwm(receiver.process.pid)
        else:
            result["receiver_exit"] = receiver.process.returncode
        if str(result.get("error", "")).startswith("send"):
            tail = receiver.log.read_text(errors="replace").strip().splitlines()[-5:]
            result["receiver_log"] = "\n".join(tail)[-1500:]
        return result
    finally:
        receiver.stop()


# =========================================================================== the run


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / (1 << 20):.0f} MiB"


async def run(args: argparse.Namespace, work: Path) -> None:
    from sbdh.pki import generate_dev_pki  # noqa: PLC0415
    from tests.interop.harness import PEER_AP, As4Peer, write_peer_pki  # noqa: PLC0415
    from tests.interop.peer_venv import ensure_peer_venv  # noqa: PLC0415

    quick = args.quick
    small = (30, 60) if quick else (200, 400)
    medium = (5, 10) if quick else (30, 60)
    large = 20 * MB if quick else args.large_mb * MB
    concurrency = args.concurrency
    print(f"working in {work}", file=sys.stderr)
    pki_files = write_peer_pki(
        work / "pki", generate_dev_pki(now=datetime.now(UTC), ca_key_size=2048)
    )
    pki = pki_files.directory
    peer = As4Peer(ensure_peer_venv())

    cases = [("10 KB", 10 * KB, small), ("1 MB", MB, medium)]
    rows: list[tuple[str, str, int, float, float]] = []
    receiver = start_receiver(work, pki, "receiver")
    budstikke: dict[tuple[str, int], float] = {}
    try:
        runtime, client = await sender_runtime(work / "sender", pki, receiver.url)
        try:
            await budstikke_rate(runtime, client, padded_sbd(10 * KB), 5, 1)  # warm up
            for label, size, (sequential, concurrent) in cases:
                sbd = padded_sbd(size)
                for count, c in ((sequential, 1), (concurrent, concurrency)):
                    rate = await budstikke_rate(runtime, client, sbd, count, c)
                    budstikke[(label, c)] = rate
                    print(f"budstikke {label} c={c}: {rate:.1f}/s", file=sys.stderr)
        finally:
            await runtime.close()
        receiver_hwm = vm_hwm(receiver.process.pid)
    finally:
        receiver.stop()

    as4: dict[tuple[str, int], float] = {}
    with peer.serve(
        identity=pki_files.party(PEER_AP), trust=pki_files.trust, out=work / "as4-inbox"
    ) as server:
        for label, size, (sequential, concurrent) in cases:
            path = work / f"invoice-{size}.sbd.xml"
            path.write_bytes(padded_sbd(size))
            for count, c in ((sequential, 1), (concurrent, concurrency)):
                rate = as4_rate(peer, pki_files, server.url, path, count=count, concurrency=c)
                as4[(label, c)] = rate
                print(f"as4 {label} c={c}: {rate:.1f}/s", file=sys.stderr)
            path.unlink()

    for label, _size, (sequential, concurrent) in cases:
        for count, c in ((sequential, 1), (concurrent, concurrency)):
            rows.append(
                (
                    label,
                    "sequential" if c == 1 else f"{c} in flight",
                    count,
                    budstikke[(label, c)],
                    as4[(label, c)],
                )
            )

    attempts = []
    size = large
    for attempt in range(4):
        print(f"large message: {size / MB:.0f} MB", file=sys.stderr)
        result = large_message(work, pki, size, attempt)
        attempts.append(result)
        if "error" not in result:
            break
        limit = re.search(r"the limit is (\d+)", result["error"])
        if limit and int(limit.group(1)) < size:
            size = int(limit.group(1)) - MB  # the largest that the stated limit lets through
        else:
            size //= 2

    print()
    print(
        f"AS4 on loopback, persistence and receipt verification on both sides "
        f"({'quick' if quick else 'full'} run)"
    )
    print()
    print("| SBD | sending | messages | Budstikke msg/s | as4 msg/s | Budstikke / as4 |")
    print("|---|---|---:|---:|---:|---:|")
    for label, mode, count, ours, theirs in rows:
        print(f"| {label} | {mode} | {count} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f}x |")
    print()
    print(
        f"Budstikke receiver (``budstikke serve``) peak over the throughput runs: "
        f"{_mib(receiver_hwm)}"
    )
    print()
    print(
        "| large message | outcome | send time | sender peak (life) | sender peak (send) "
        "| receiver peak |"
    )
    print("|---:|---|---:|---:|---:|---:|")
    for result in attempts:
        outcome = "sent, receipt verified" if "error" not in result else "FAILED"
        send_s = f"{result['send_s']:.1f} s" if "send_s" in result else "-"
        life = max(result.get("hwm_after_create", 0), result.get("hwm_send", 0)) or None
        print(
            f"| {result['size'] / MB:.0f} MB | {outcome} | {send_s} | {_mib(life)} "
            f"| {_mib(result.get('hwm_send'))} | {_mib(result.get('receiver_hwm'))} |"
        )
    for result in attempts:
        if "error" in result:
            print(f"\n{result['size'] / MB:.0f} MB failed: {result['error']}")
            if result.get("receiver_log"):
                print(f"receiver log:\n{result['receiver_log']}")
    print(
        f"\n(sender VmHWM at start {_mib(attempts[0].get('hwm_start'))}, "
        f"receiver at start {_mib(attempts[0].get('receiver_hwm_start'))})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages, 20 MB large one")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--large-mb", type=int, default=200)
    parser.add_argument("--child-send", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--receiver-url", help=argparse.SUPPRESS)
    parser.add_argument("--child-data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_send:
        result = asyncio.run(
            child_send(args.child_send, args.pki, args.receiver_url, args.child_data)
        )
        print(json.dumps(result))
        return
    work = Path(tempfile.mkdtemp(prefix="budstikke-bench-as4-"))
    try:
        asyncio.run(run(args, work))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
