"""Service benchmark: run by hand, figures quoted in the README.

    .venv/bin/python bench/service.py            # both setups, about 4 minutes
    .venv/bin/python bench/service.py --quick    # a smaller run, about 2 minutes
    .venv/bin/python bench/service.py --only scaled --api-processes 2

Two setups, each started fresh in a temporary directory as an operator would start it:

embedded  ``budstikke serve``: SQLite, the queue in the database, the workers in the process.
scaled    PostgreSQL + RabbitMQ: ``budstikke serve --no-workers`` (``--api-processes`` of them,
          sharing one port with SO_REUSEPORT) and one ``budstikke worker``, on a database the
          benchmark creates and drops (``BUDSTIKKE_BENCH_POSTGRES_URL``, ``…_AMQP_URL``).

The load runs in processes of its own over real HTTP on 127.0.0.1. A sender has ``--clients``
concurrent connections, each sending one arkivmelding at a time in one request (``POST
/api/messages/out/multipart``: the ``sbd`` field, ``arkivmelding.xml`` and a 10 KB PDF). A
receiver takes messages as a case system does (peek, pop the signed ASiC-E, acknowledge), which
the sender sees as LEVERT. Each setup runs two phases, on organisations of their own:

throughput  the senders as fast as the API answers, until ``--messages`` are accepted or the
            send time is up; the workers deliver to the receivers' inboxes meanwhile, and the
            phase ends when every accepted message is in an inbox. No receiver runs: this is
            what the service itself can take in and deliver.
latency     the senders at a fixed rate (``--latency-rate``, 50/s by default) with the
            receivers running, so that every message goes all the way to LEVERT; the latency
            of a service below saturation (under a backlog, latency only measures the queue).

Printed per setup:

accepted/s       throughput: messages the API accepted (200) per second, first request to last
                 answer
delivered/s      throughput: messages in the receivers' inboxes (INNKOMMENDE_MOTTATT) per
                 second, first create to last arrival (from the store)
send→LEVERT      latency: p50 / p99 from the message's ``sent_at`` to its LEVERT status
send→inbox       latency: p50 from ``sent_at`` to INNKOMMENDE_MOTTATT (the worker's part alone)
peak memory      VmHWM of each server process (``/proc/<pid>/status``), after the run

and under the table the CPU each server process used in the throughput phase, and per
delivered message: on a machine this size the load generator, PostgreSQL and RabbitMQ share the
cores, and the CPU milliseconds per message say more than the rates when something else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
BUDSTIKKE = str(VENV_BIN / "budstikke")
POSTGRES_URL = os.environ.get(
    "BUDSTIKKE_BENCH_POSTGRES_URL", "postgresql://budstikke:budstikke@127.0.0.1:5432/budstikke"
)
AMQP_URL = os.environ.get("BUDSTIKKE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

MESSAGE_ID = "00000000-0000-4000-8000-00000000aaaa"
CONVERSATION_ID = "00000000-0000-4000-8000-00000000bbbb"
BOUNDARY = "budstikke-bench-7f3c1e"
PDF_SIZE = 10_000


# =========================================================================== the load


def _org_numbers(count: int, start: int = 91000000) -> list[str]:
    """Valid organisation numbers (mod-11 check digit), made up for the benchmark."""
    weights = (3, 2, 7, 6, 5, 4, 3, 2)
    found: list[str] = []
    base = start
    while len(found) < count:
        digits = [int(d) for d in f"{base:08d}"]
        rest = sum(w * d for w, d in zip(weights, digits, strict=True)) % 11
        check = 0 if rest == 0 else 11 - rest
        if check != 10:
            found.append(f"{base:08d}{check}")
        base += 1
    return found


def _pdf(size: int) -> bytes:
    """A one-page PDF padded to ``size`` bytes with text that compresses like a real one."""
    import random  # noqa: PLC0415

    rng = random.Random(7)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyzæøå") for _ in range(rng.randint(2, 9)))
        for _ in range(400)
    ]
    text = " ".join(rng.choice(words) for _ in range(size // 5))
    head = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n% "
    body = text.encode("utf-8")[: size - len(head) - 6]
    return head + body + b"\n%%EOF"


def multipart_template(sender: str, receiver: str) -> bytes:
    """One multipart body with placeholder ids (replaced per message)."""
    from access_point.commands.exchange import nextmove_sbd  # noqa: PLC0415
    from adapters.noark import minimal_arkivmelding  # noqa: PLC0415

    now = datetime.now(UTC)
    sbd = nextmove_sbd(
        sender=sender,
        receiver=receiver,
        message_id=MESSAGE_ID,
        conversation_id=CONVERSATION_ID,
        now=now,
    )
    xml = minimal_arkivmelding(
        message_id=MESSAGE_ID, title="Vedtak om byggetillatelse", files=["vedtak.pdf"], now=now
    )
    parts = [
        ('name="sbd"', "application/json", json.dumps(sbd).encode()),
        (
            'name="arkivmelding.xml"; filename="arkivmelding.xml"',
            "application/xml",
            xml,
        ),
        ('name="Vedtak"; filename="vedtak.pdf"', "application/pdf", _pdf(PDF_SIZE)),
    ]
    out = bytearray()
    for disposition, content_type, data in parts:
        out += (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n"
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


async def run_sender(config: dict[str, Any]) -> dict[str, Any]:
    """``clients`` connections sending multipart messages until the count or time is up."""
    import aiohttp  # noqa: PLC0415

    url = config["url"] + "/api/messages/out/multipart"
    templates = [
        (token, multipart_template(sender, receiver))
        for token, sender, receiver in config["routes"]
    ]
    total, deadline = config["messages"], time.monotonic() + config["seconds"]
    rate: float | None = config.get("rate")
    sent = 0
    #: with a rate: True = send one, False = stop (an open loop: a late ticket is not skipped)
    tickets: asyncio.Queue[bool] = asyncio.Queue()
    errors: dict[str, int] = {}
    answered: list[float] = []
    connector = aiohttp.TCPConnector(limit=config["clients"] + 10)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(index: int) -> None:
            nonlocal sent
            token, template = templates[index % len(templates)]
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Accept": "application/json",
            }
            while sent < total and time.monotonic() < deadline:
                if rate and not await tickets.get():
                    break
                sent += 1
                body = template.replace(MESSAGE_ID.encode(), str(uuid.uuid4()).encode())
                body = body.replace(CONVERSATION_ID.encode(), str(uuid.uuid4()).encode())
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        if response.status == 200:
                            answered.append(time.time())
                        else:
                            key = str(response.status)
                            errors[key] = errors.get(key, 0) + 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    key = type(exc).__name__
                    errors[key] = errors.get(key, 0) + 1

        async def pace() -> None:
            """One ticket every 1/rate seconds, handed to whichever client is free."""
            assert rate
            begun = time.monotonic()
            count = 0
            while time.monotonic() < deadline and count < total:
                count += 1
                await asyncio.sleep(max(0.0, begun + count / rate - time.monotonic()))
                tickets.put_nowait(True)
            for _ in range(config["clients"]):
                tickets.put_nowait(False)

        started = time.time()
        pacer = asyncio.create_task(pace()) if rate else None
        await asyncio.gather(*(client(i) for i in range(config["clients"])))
        if pacer is not None:
            pacer.cancel()
    last = max(answered) if answered else time.time()
    return {"accepted": len(answered), "errors": errors, "started": started, "last": last}


async def run_receiver(config: dict[str, Any]) -> dict[str, Any]:
    """Per receiving organisation, ``per_org`` loops of peek, pop and acknowledge, until the
    expected number is acknowledged (read from ``expected_file`` once the sender is done) or
    the time is up."""
    import aiohttp  # noqa: PLC0415

    base = config["url"]
    deadline = time.monotonic() + config["seconds"]
    expected_file = Path(config["expected_file"])
    done = 0
    errors: dict[str, int] = {}
    expected: int | None = None

    def finished() -> bool:
        nonlocal expected
        if expected is None and expected_file.exists():
            text = expected_file.read_text().strip()
            expected = int(text) if text else None
        return (expected is not None and done >= expected) or time.monotonic() > deadline

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def loop(token: str) -> None:
            nonlocal done
            auth = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            pop = {"Authorization": f"Bearer {token}", "Accept": "application/octet-stream"}
            while not finished():
                try:
                    async with session.get(f"{base}/api/messages/in/peek", headers=auth) as r:
                        if r.status == 204:
                            await r.read()
                            await asyncio.sleep(0.02)
                            continue
                        if r.status != 200:
                            errors[f"peek {r.status}"] = errors.get(f"peek {r.status}", 0) + 1
                            await r.read()
                            await asyncio.sleep(0.1)
                            continue
                        sbd = await r.json()
                    header = sbd["standardBusinessDocumentHeader"]
                    message_id = header["documentIdentification"]["instanceIdentifier"]
                    url = f"{base}/api/messages/in/pop/{message_id}"
                    async with session.get(url, headers=pop) as r:
                        async for _ in r.content.iter_chunked(1 << 16):
                            pass
                        if r.status != 200:
                            errors[f"pop {r.status}"] = errors.get(f"pop {r.status}", 0) + 1
                            continue
                    url = f"{base}/api/messages/in/{message_id}"
                    async with session.delete(url, headers=auth) as r:
                        await r.read()
                        if r.status != 200:
                            errors[f"ack {r.status}"] = errors.get(f"ack {r.status}", 0) + 1
                            continue
                    done += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    key = type(exc).__name__
                    errors[key] = errors.get(key, 0) + 1
                    await asyncio.sleep(0.1)

        loops = [loop(token) for token in config["tokens"] for _ in range(config["per_org"])]
        await asyncio.gather(*loops)
    return {"acknowledged": done, "errors": errors}


# =========================================================================== the servers


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _vm_hwm_mb(pid: int) -> float:
    """Peak resident set of a process (VmHWM), MB: its own, not inherited across exec."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def _cpu_by_command(*names: str) -> dict[str, float]:
    """CPU seconds so far of every process whose command name is one of ``names``, summed
    per name (PostgreSQL's backends, RabbitMQ's Erlang VM)."""
    found = dict.fromkeys(names, 0.0)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        if command in found:
            fields = stat.rpartition(")")[2].split()
            found[command] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def _children_cpu() -> float:
    """CPU seconds of the finished child processes waited for so far (the load generator)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(args: list[str], env: dict[str, str], log: Path) -> str:
    with log.open("a") as err:
        done = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=err, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[1:3])} failed ({done.returncode}); see {log}")
    return done.stdout.decode()


def _wait_healthy(url: str, processes: list[subprocess.Popen[bytes]], log: Path) -> None:
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise SystemExit(f"a server exited ({process.returncode}); see {log}")
        try:
            with urllib.request.urlopen(url + "/manage/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"the service did not come up; see {log}")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Result:
    setup: str
    accepted: int = 0
    accepted_rate: float = 0.0
    delivered: int = 0
    delivered_rate: float = 0.0
    p50: float = float("nan")
    p99: float = float("nan")
    inbox_p50: float = float("nan")
    memory: list[tuple[str, float]] = field(default_factory=list)
    #: share of one core each server process used while the load ran
    cpu: list[tuple[str, float]] = field(default_factory=list)
    load_time: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    #: messages sent in the latency phase, and how many of them reached LEVERT
    paced: int = 0
    levert: int = 0
    #: share of the whole machine's CPU in use during the throughput phase (every process)
    machine_busy: float = float("nan")
    #: share of one core the rest used meanwhile: load generator, PostgreSQL, RabbitMQ
    others: list[tuple[str, float]] = field(default_factory=list)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


_ARRIVALS_SQL = """
SELECT m.created_at, i.created_at
FROM messages m
JOIN messages n ON n.message_id = m.message_id AND n.direction = 'INCOMING'
JOIN status_events i ON i.message_pk = n.id AND i.status = 'INNKOMMENDE_MOTTATT'
WHERE m.direction = 'OUTGOING' AND m.receiver_org IN ({receivers})
"""

_LATENCY_SQL = """
SELECT m.sent_at, l.created_at, i.created_at
FROM messages m
JOIN status_events l ON l.message_pk = m.id AND l.status = 'LEVERT'
JOIN messages n ON n.message_id = m.message_id AND n.direction = 'INCOMING'
JOIN status_events i ON i.message_pk = n.id AND i.status = 'INNKOMMENDE_MOTTATT'
WHERE m.direction = 'OUTGOING' AND m.sender_org IN ({senders})
"""


def _in_list(values: list[str]) -> str:
    """An SQL list of organisation numbers (digits only: made up by this script)."""
    assert all(v.isdigit() for v in values)
    return ", ".join(f"'{v}'" for v in values)


def _when(value: Any) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


def _throughput(rows: list[tuple[Any, ...]], result: Result) -> None:
    if not rows:
        return
    created = [_when(r[0]) for r in rows]
    arrived = [_when(r[1]) for r in rows]
    result.delivered = len(rows)
    span = max(arrived) - min(created)
    result.delivered_rate = len(rows) / span if span > 0 else float("nan")


def _latencies(rows: list[tuple[Any, ...]], result: Result) -> None:
    result.levert = len(rows)
    if not rows:
        return
    sent = [_when(r[0]) for r in rows]
    levert = [_when(r[1]) for r in rows]
    inbox = [_when(r[2]) for r in rows]
    latency = [b - a for a, b in zip(sent, levert, strict=True)]
    result.p50, result.p99 = _percentile(latency, 0.5), _percentile(latency, 0.99)
    result.inbox_p50 = statistics.median(b - a for a, b in zip(sent, inbox, strict=True))


def _sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


async def _postgres(admin_url: str, statements: list[str], query: str | None = None) -> Any:
    import asyncpg  # noqa: PLC0415

    connection = await asyncpg.connect(admin_url)
    try:
        for statement in statements:
            await connection.execute(statement)
        if query:
            return [tuple(r) for r in await connection.fetch(query)]
        return None
    finally:
        await connection.close()


def _with_database(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


def run_setup(kind: str, args: argparse.Namespace, work: Path) -> Result:
    """Start one setup from nothing, load it, measure it, stop it."""
    result = Result(kind)
    base = work / kind
    data = base / "data"
    data.mkdir(parents=True)
    log = base / "servers.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BUDSTIKKE_") or k.startswith("BUDSTIKKE_BENCH_")
    }
    env.update({"BUDSTIKKE_DATA_DIR": str(data), "BUDSTIKKE_PORT": str(port)})
    database = f"budstikke_bench_{os.getpid()}"
    if kind == "scaled":
        asyncio.run(
            _postgres(
                POSTGRES_URL,
                [f'DROP DATABASE IF EXISTS "{database}"', f'CREATE DATABASE "{database}"'],
            )
        )
        db_url = _with_database(POSTGRES_URL, database)
        env["BUDSTIKKE_DATABASE_URL"] = "postgresql+asyncpg://" + db_url.split("://", 1)[1]
        env["BUDSTIKKE_AMQP_URL"] = AMQP_URL
        env["BUDSTIKKE_WORKER_CONCURRENCY"] = str(args.worker_concurrency)
        _run([BUDSTIKKE, "pki", "init", str(data / "pki")], env, log)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        _run([BUDSTIKKE, "db", "upgrade"], env, log)
        # throughput: senders → receivers; latency: its own pairs, with nothing queued ahead
        orgs = _org_numbers(4 * args.orgs)
        pairs = {
            "throughput": (orgs[: args.orgs], orgs[args.orgs : 2 * args.orgs]),
            "latency": (orgs[2 * args.orgs : 3 * args.orgs], orgs[3 * args.orgs :]),
        }
        tokens: dict[str, str] = {}
        for org in orgs:
            out = _run(
                [BUDSTIKKE, "client", "add", f"bench {org}", "--org", org, "--json"], env, log
            )
            tokens[org] = json.loads(out)["token"]
        with log.open("ab") as out:
            if kind == "embedded":
                commands = [[BUDSTIKKE, "serve"]]
            else:
                serve = [BUDSTIKKE, "serve", "--no-workers"]
                if args.api_processes > 1:
                    serve.append("--reuse-port")
                commands = [serve] * args.api_processes
                commands.append([BUDSTIKKE, "worker"])
            for command in commands:
                processes.append(
                    subprocess.Popen(command, env=env, stdout=out, stderr=out, cwd=base)
                )
        _wait_healthy(url, processes, log)
        if kind == "scaled":
            time.sleep(1.0)  # let the worker connect before the load starts
        names = (
            ["api"]
            if kind == "embedded"
            else [
                *(
                    f"api{i + 1}" if args.api_processes > 1 else "api"
                    for i in range(args.api_processes)
                ),
                "worker",
            ]
        )

        def rows(sql: str) -> list[tuple[Any, ...]]:
            if kind == "embedded":
                return _sqlite_rows(data / "budstikke.db", sql)
            return list(asyncio.run(_postgres(db_url, [], sql)))

        me = [sys.executable, str(Path(__file__).resolve())]

        def send(phase: str, config: dict[str, Any]) -> dict[str, Any]:
            senders, receivers = pairs[phase]
            config = {
                "url": url,
                "routes": [
                    (tokens[s], s, receivers[i % len(receivers)]) for i, s in enumerate(senders)
                ],
                "clients": args.clients,
                **config,
            }
            answer = subprocess.run(
                [*me, "--role", "sender", "--config", json.dumps(config)],
                stdout=subprocess.PIPE,
                check=True,
                cwd=ROOT,
            ).stdout
            sent: dict[str, Any] = json.loads(answer)
            return sent

        # ---- throughput
        cpu_before = [_cpu_seconds(p.pid) for p in processes]
        machine_before = _machine_busy()
        others_before = _cpu_by_command("postgres", "beam.smp")
        children_before = _children_cpu()
        load_started = time.monotonic()
        sent = send("throughput", {"messages": args.messages, "seconds": args.send_seconds})
        result.accepted = sent["accepted"]
        span = sent["last"] - sent["started"]
        result.accepted_rate = sent["accepted"] / span if span > 0 else float("nan")
        result.errors.update(sent["errors"])
        wanted = _in_list(pairs["throughput"][1])
        arrived: list[tuple[Any, ...]] = []
        drain_until = time.monotonic() + args.drain_seconds
        while time.monotonic() < drain_until:
            arrived = rows(_ARRIVALS_SQL.format(receivers=wanted))
            if len(arrived) >= result.accepted:
                break
            time.sleep(0.5)
        load_time = time.monotonic() - load_started
        cpu_used = [_cpu_seconds(p.pid) - b for p, b in zip(processes, cpu_before, strict=True)]
        machine_after = _machine_busy()
        others = {
            name: after - others_before[name]
            for name, after in _cpu_by_command("postgres", "beam.smp").items()
        }
        result.others = [
            ("load generator", (_children_cpu() - children_before) / load_time),
            *(
                (label, others[command] / load_time)
                for label, command in (("PostgreSQL", "postgres"), ("RabbitMQ", "beam.smp"))
                if kind == "scaled"
            ),
        ]
        result.machine_busy = (machine_after[0] - machine_before[0]) / max(
            machine_after[1] - machine_before[1], 1e-9
        )
        _throughput(arrived, result)
        result.load_time = load_time
        result.cpu = [(n, c / load_time) for n, c in zip(names, cpu_used, strict=True)]

        # ---- latency
        if args.latency_seconds > 0:
            senders, receivers = pairs["latency"]
            expected_file = base / "expected"
            receiver_config = {
                "url": url,
                "tokens": [tokens[r] for r in receivers],
                "per_org": args.receivers,
                "seconds": args.latency_seconds + args.drain_seconds,
                "expected_file": str(expected_file),
            }
            receiver = subprocess.Popen(
                [*me, "--role", "receiver", "--config", json.dumps(receiver_config)],
                stdout=subprocess.PIPE,
                cwd=ROOT,
            )
            paced = send(
                "latency",
                {
                    "messages": 10**9,
                    "seconds": args.latency_seconds,
                    "rate": args.latency_rate,
                },
            )
            expected_file.write_text(str(paced["accepted"]))
            received = json.loads(receiver.communicate()[0])
            result.errors.update({f"latency {k}": v for k, v in paced["errors"].items()})
            result.errors.update({f"latency {k}": v for k, v in received["errors"].items()})
            result.paced = paced["accepted"]
            _latencies(rows(_LATENCY_SQL.format(senders=_in_list(senders))), result)
        result.memory = [(n, _vm_hwm_mb(p.pid)) for n, p in zip(names, processes, strict=True)]
    finally:
        _stop(processes)
        if kind == "scaled":
            asyncio.run(_postgres(POSTGRES_URL, [f'DROP DATABASE IF EXISTS "{database}"']))
    return result


# =========================================================================== the report


def _fmt(value: float, unit: str = "", digits: int = 0) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}{unit}"


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"throughput: {args.messages} messages at most ({args.send_seconds:.0f} s of sending), "
        f"10 KB PDF + arkivmelding.xml, {args.clients} concurrent senders x {args.orgs} "
        f"organisations; latency: {args.latency_rate:.0f} messages/s for "
        f"{args.latency_seconds:.0f} s, {args.receivers} receivers per organisation; "
        f"{os.cpu_count()} cores"
    )
    head = (
        "setup",
        "accepted/s",
        "delivered/s",
        "send→LEVERT p50 / p99",
        "send→inbox p50",
        "peak memory (VmHWM)",
    )
    rows = []
    for r in results:
        name = (
            "embedded (SQLite + DB queue)"
            if r.setup == "embedded"
            else (
                f"PostgreSQL + RabbitMQ ({args.api_processes} API + 1 worker "
                f"x{args.worker_concurrency})"
            )
        )
        rows.append(
            (
                name,
                _fmt(r.accepted_rate),
                _fmt(r.delivered_rate)
                + ("" if r.delivered == r.accepted else f" ({r.delivered}/{r.accepted})"),
                f"{_fmt(r.p50 * 1000, ' ms')} / {_fmt(r.p99 * 1000, ' ms')}"
                + ("" if r.levert == r.paced else f" ({r.levert}/{r.paced} LEVERT)"),
                _fmt(r.inbox_p50 * 1000, " ms"),
                ", ".join(f"{n} {m:.0f} MB" for n, m in r.memory),
            )
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    for r in results:
        usage = ", ".join(f"{n} {100 * c:.0f}%" for n, c in r.cpu)
        per = ", ".join(f"{n} {1000 * c * r.load_time / max(r.delivered, 1):.1f}" for n, c in r.cpu)
        print(
            f"{r.setup}: throughput phase, CPU (100% = one core): {usage}; CPU ms per "
            f"delivered message: {per}"
        )
        rest = ", ".join(f"{n} {100 * c:.0f}%" for n, c in r.others)
        print(
            f"{r.setup}: meanwhile {rest}; the whole machine {100 * r.machine_busy:.0f}% busy "
            "(of all cores)"
        )
    for r in results:
        if r.errors:
            print(f"{r.setup}: errors {r.errors}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (about a minute)")
    parser.add_argument("--only", choices=("embedded", "scaled"), help="run one setup")
    parser.add_argument("--messages", type=int, help="messages to send (20000; quick 3000)")
    parser.add_argument("--clients", type=int, default=100, help="concurrent senders (100)")
    parser.add_argument("--orgs", type=int, default=4, help="sending and receiving orgs (4)")
    parser.add_argument("--receivers", type=int, default=8, help="receive loops per org (8)")
    parser.add_argument("--api-processes", type=int, default=2, help="scaled: API processes")
    parser.add_argument(
        "--worker-concurrency", type=int, default=16, help="scaled: jobs the worker runs at once"
    )
    parser.add_argument("--send-seconds", type=float, help="most seconds of sending (40; 10)")
    parser.add_argument("--drain-seconds", type=float, default=40.0, help="then to deliver (40)")
    parser.add_argument(
        "--latency-rate", type=float, default=50.0, help="latency phase: messages/s (50)"
    )
    parser.add_argument(
        "--latency-seconds", type=float, help="latency phase: seconds of sending (20; 10; 0 = off)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--role", choices=("sender", "receiver"), help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role:
        config = json.loads(args.config)
        runner = run_sender if args.role == "sender" else run_receiver
        print(json.dumps(asyncio.run(runner(config))))
        return 0

    args.messages = args.messages or (3000 if args.quick else 20000)
    args.send_seconds = args.send_seconds or (10.0 if args.quick else 40.0)
    if args.latency_seconds is None:
        args.latency_seconds = 10.0 if args.quick else 20.0
    if args.quick:
        args.drain_seconds = min(args.drain_seconds, 20.0)
    setups = [args.only] if args.only else ["embedded", "scaled"]
    work = Path(tempfile.mkdtemp(prefix="budstikke-bench-"))
    results = []
    try:
        for kind in setups:
            print(f"running {kind} …", flush=True)
            started = time.monotonic()
            results.append(run_setup(kind, args, work))
            print(f"  done in {time.monotonic() - started:.0f}s", flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_table(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
