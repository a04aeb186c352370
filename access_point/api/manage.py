"""Operations endpoints: ``/manage/health`` and ``/manage/metrics`` (Prometheus text format).

Health (Spring Boot actuator paths, which integrasjonspunkt operators already probe):

* ``/manage/health/liveness`` - the process answers: always ``UP``;
* ``/manage/health/readiness`` and ``/manage/health`` - every readiness check (a database round
  trip, the queue) answers within its timeout: 200 ``UP``, else 503 ``DOWN`` with which failed.

Metrics are computed from the store on scrape, kept cheap: counts by status are one grouped
query cached for a few seconds; the delivery latency histogram (created → LEVERT, outgoing)
is built incrementally from the LEVERT events added since the last scrape; queue depth is
asked of the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from access_point.api.routing import Response, Route
from adapters.db.engine import Database
from adapters.db.schema import as4_refusals, messages, status_events

__all__ = [
    "METRICS",
    "READINESS",
    "ROUTES",
    "HealthCheck",
    "Metrics",
    "health_response",
    "liveness_response",
]

HealthCheck = tuple[str, Callable[[], Awaitable[Any]]]

#: created → LEVERT buckets, seconds
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})


def liveness_response() -> web.Response:
    return _json({"status": "UP"})


async def health_response(checks: Sequence[HealthCheck], *, timeout: float = 2.0) -> web.Response:
    async def run(check: Callable[[], Awaitable[Any]]) -> dict[str, str]:
        try:
            await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            return {"status": "DOWN", "error": f"no answer within {timeout:g} s"}
        except Exception as exc:  # a failing check is the answer, not an error
            return {"status": "DOWN", "error": type(exc).__name__ + ": " + str(exc)[:200]}
        return {"status": "UP"}

    results = await asyncio.gather(*(run(check) for _, check in checks))
    details = {name: result for (name, _), result in zip(checks, results, strict=True)}
    up = all(r["status"] == "UP" for r in results)
    return _json({"status": "UP" if up else "DOWN", "checks": details}, 200 if up else 503)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class _Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str) -> list[str]:
        out = [
            f'{name}_bucket{{le="{b:g}"}} {c}'
            for b, c in zip(self.buckets, self.counts, strict=True)
        ]
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {self.total:.6f}")
        out.append(f"{name}_count {self.count}")
        return out


class Metrics:
    """The Prometheus exposition, from the store and the queue."""

    def __init__(
        self,
        db: Database,
        *,
        queue_depth: Callable[[], Awaitable[int]] | None = None,
        cache_seconds: float = 5.0,
        batch: int = 5000,
    ) -> None:
        self._db = db
        self._queue_depth = queue_depth
        self._cache_seconds = cache_seconds
        self._batch = batch
        self._lock = asyncio.Lock()
        self._counts: list[tuple[str, str, str, int]] = []
        self._refusals: list[tuple[str, int]] = []
        self._counted_at = -1e9
        self._latency = _Histogram(LATENCY_BUCKETS)
        self._cursor = 0
        self.scrapes = 0

    async def _refresh_counts(self) -> None:
        if time.monotonic() - self._counted_at < self._cache_seconds:
            return
        query = sa.select(
            messages.c.direction,
            messages.c.status,
            messages.c.service_identifier,
            sa.func.count(),
        ).group_by(messages.c.direction, messages.c.status, messages.c.service_identifier)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        self._counts = [(r[0], r[1], r[2], int(r[3])) for r in rows]
        refused = sa.select(as4_refusals.c.ebms_code, sa.func.count()).group_by(
            as4_refusals.c.ebms_code
        )
        async with self._db.read() as conn:
            self._refusals = [(r[0], int(r[1])) for r in (await conn.execute(refused)).all()]
        self._counted_at = time.monotonic()

    async def _refresh_latency(self) -> None:
        query = (
            sa.select(status_events.c.id, status_events.c.created_at, messages.c.created_at)
            .join(messages, messages.c.id == status_events.c.message_pk)
            .where(
                status_events.c.status == "LEVERT",
                messages.c.direction == "OUTGOING",
                status_events.c.id > sa.bindparam("cursor"),
            )
            .order_by(status_events.c.id)
            .limit(self._batch)
        )
        async with self._db.read() as conn:
            while True:
                rows = (await conn.execute(query, {"cursor": self._cursor})).all()
                for event_id, delivered, created in rows:
                    self._latency.observe(max((delivered - created).total_seconds(), 0.0))
                    self._cursor = event_id
                if len(rows) < self._batch:
                    break

    async def render(self) -> str:
        async with self._lock:
            await self._refresh_counts()
            await self._refresh_latency()
            depth = await self._queue_depth() if self._queue_depth is not None else None
            self.scrapes += 1
        lines = [
            "# HELP budstikke_messages Messages in the store by direction, latest status and "
            "service identifier.",
            "# TYPE budstikke_messages gauge",
        ]
        for direction, status, service, count in sorted(self._counts):
            lines.append(
                f'budstikke_messages{{direction="{_label(direction)}",status="{_label(status)}",'
                f'service_identifier="{_label(service)}"}} {count}'
            )
        lines += [
            "# HELP budstikke_as4_refusals AS4 requests refused at POST /as4, by ebMS error code "
            "(HTTP-413 for a request past the size limit).",
            "# TYPE budstikke_as4_refusals gauge",
        ]
        for code, count in sorted(self._refusals):
            lines.append(f'budstikke_as4_refusals{{ebms_code="{_label(code)}"}} {count}')
        if depth is not None:
            lines += [
                "# HELP budstikke_queue_depth Jobs waiting in the queue (ready or delayed).",
                "# TYPE budstikke_queue_depth gauge",
                f"budstikke_queue_depth {depth}",
            ]
        lines += [
            "# HELP budstikke_delivery_latency_seconds Outgoing messages: time from created to "
            "LEVERT.",
            "# TYPE budstikke_delivery_latency_seconds histogram",
            *self._latency.lines("budstikke_delivery_latency_seconds"),
        ]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- handlers and routes

READINESS: web.AppKey[Sequence[HealthCheck]] = web.AppKey("readiness_checks")
METRICS = web.AppKey("metrics", Metrics)


async def liveness(request: web.Request) -> web.StreamResponse:
    return liveness_response()


async def readiness(request: web.Request) -> web.StreamResponse:
    return await health_response(request.app.get(READINESS, ()))


async def metrics(request: web.Request) -> web.StreamResponse:
    collector = request.app.get(METRICS)
    text = await collector.render() if collector is not None else ""
    return web.Response(
        text=text,
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


_HEALTH = {"application/json": {"$ref": "#/components/schemas/Health"}}
_OPS = "Operations"

ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/manage/health",
        readiness,
        "health",
        "Health: the process, the database and the queue",
        _OPS,
        responses=(
            Response(200, "UP", _HEALTH),
            Response(503, "DOWN: which check failed", _HEALTH),
        ),
        auth=False,
    ),
    Route(
        "GET",
        "/manage/health/liveness",
        liveness,
        "liveness",
        "Liveness: the process answers",
        _OPS,
        responses=(Response(200, "UP", _HEALTH),),
        auth=False,
    ),
    Route(
        "GET",
        "/manage/health/readiness",
        readiness,
        "readiness",
        "Readiness: the database and the queue answer",
        _OPS,
        responses=(
            Response(200, "UP", _HEALTH),
            Response(503, "DOWN: which check failed", _HEALTH),
        ),
        auth=False,
    ),
    Route(
        "GET",
        "/manage/metrics",
        metrics,
        "metrics",
        "Prometheus metrics (text exposition format 0.0.4)",
        _OPS,
        responses=(Response(200, "the metrics", {"text/plain": {"type": "string"}}),),
        auth=False,
    ),
)
