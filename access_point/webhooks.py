"""Webhooks: subscriptions, and status events pushed to them signed, retried and never doubled.

A client subscribes with integrasjonspunkt's shape (``name``, ``pushEndpoint``, ``resource``,
``event``, ``filter``; the filter is ``status=FEIL,LEVETID_UTLOPT&direction=INCOMING&
serviceIdentifier=DPO,DPI``). It sees the events of the organisations its token is bound to:
an outgoing message belongs to its sender, an incoming one to its receiver.

Two jobs carry the work (both run by the worker, both idempotent):

``status`` (payload ``{"status_event_id": N}``)
    find the subscriptions that match the event and, in **one transaction**, write one
    ``webhook_deliveries`` row per subscription (unique per subscription and event) and one
    outbox row per *new* delivery. A redelivered job finds the rows there and adds nothing, so
    a subscriber is never notified twice for one event.

``webhook`` (payload ``{"delivery_id": N}``)
    POST the event to the push endpoint. 2xx marks the delivery done; anything else (or a
    timeout) raises :class:`TransientDeliveryError` so the worker retries with backoff, until
    ``webhook_max_attempts`` attempts: then the delivery is marked failed (``last_error``
    says why, ``next_attempt_at`` stays empty) and the job ends.

The request body is the event as integrasjonspunkt pushes it::

    {"createdTs": "...", "resource": "messages", "event": "status", "messageId": "...",
     "conversationId": "...", "direction": "OUTGOING", "serviceIdentifier": "DPO",
     "status": "LEVERT", "description": null}

and three headers let the receiver authenticate it:

``X-Budstikke-Timestamp``   seconds since the epoch when this attempt was made
``X-Budstikke-Delivery``    the delivery's id: the same on every retry (deduplicate on it)
``X-Budstikke-Signature``   ``sha256=`` + hex HMAC-SHA256, keyed with the subscription's
                            secret, of ``<timestamp> "." <raw body bytes>``

The receiver recomputes the MAC over the timestamp header, a dot and the raw body, compares
in constant time, and refuses timestamps more than a few minutes old: a captured request
cannot be replayed later, nor its body moved under another timestamp. The secret is made on
subscription create and shown once, in that response.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from access_point.destinations import DestinationPolicy, guarded_connector, refused
from access_point.statuses import Direction, MessageStatus, ServiceIdentifier
from adapters.db.engine import Database
from adapters.db.repositories import insert_ignore
from adapters.db.schema import (
    api_clients,
    messages,
    outbox,
    status_events,
    subscriptions,
    webhook_deliveries,
)
from adapters.queue.base import Job
from sbdh.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermanentDeliveryError,
    TransientDeliveryError,
)

__all__ = [
    "SIGNATURE_HEADER",
    "Subscription",
    "SubscriptionFilter",
    "Webhooks",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Budstikke-Signature"
TIMESTAMP_HEADER = "X-Budstikke-Timestamp"
DELIVERY_HEADER = "X-Budstikke-Delivery"
WEBHOOK_JOB = "webhook"
RESOURCES = ("all", "messages")
EVENTS = ("all", "status")
MAX_SUBSCRIPTIONS_PER_CLIENT = 100


# --------------------------------------------------------------------------- signature


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Budstikke-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    *,
    timestamp: str,
    signature: str,
    body: bytes,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """What a receiver does: the MAC matches and the timestamp is fresh."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


# --------------------------------------------------------------------------- filters


def _field_error(name: str, message: str) -> InvalidInput:
    error = InvalidInput(f"{name}: {message}", rule="invalid-subscription")
    error.field = name  # type: ignore[attr-defined]
    return error


@dataclass(frozen=True)
class SubscriptionFilter:
    """Which events a subscription wants; an empty set (or None) means any."""

    statuses: frozenset[MessageStatus] = frozenset()
    direction: Direction | None = None
    service_identifiers: frozenset[ServiceIdentifier] = frozenset()

    @classmethod
    def parse(cls, text: str | None) -> SubscriptionFilter:
        """integrasjonspunkt's filter string: ``key=v1,v2&key=v`` (status, direction,
        serviceIdentifier)."""
        if text is None or not text.strip():
            return cls()
        statuses: set[MessageStatus] = set()
        services: set[ServiceIdentifier] = set()
        direction: Direction | None = None
        for part in text.split("&"):
            key, sep, value = part.partition("=")
            key = key.strip()
            values = [v.strip().upper() for v in value.split(",") if v.strip()]
            if not sep or not values:
                raise _field_error("filter", f"{part!r} is not key=value")
            try:
                if key == "status":
                    statuses.update(MessageStatus[v] for v in values)
                elif key == "serviceIdentifier":
                    services.update(ServiceIdentifier[v] for v in values)
                elif key == "direction":
                    if len(values) != 1:
                        raise _field_error("filter", "direction takes one value")
                    direction = Direction[values[0]]
                else:
                    raise _field_error(
                        "filter",
                        f"unknown filter {key!r} (known: status, direction, serviceIdentifier)",
                    )
            except KeyError as exc:
                raise _field_error("filter", f"{exc.args[0]!r} is not a known {key}") from None
        return cls(frozenset(statuses), direction, frozenset(services))

    @classmethod
    def from_stored(cls, value: Mapping[str, Any] | None) -> SubscriptionFilter:
        value = value or {}
        direction = value.get("direction")
        return cls(
            frozenset(MessageStatus(s) for s in value.get("status") or ()),
            Direction(direction) if direction else None,
            frozenset(ServiceIdentifier(s) for s in value.get("serviceIdentifier") or ()),
        )

    def stored(self) -> dict[str, Any]:
        return {
            "status": sorted(self.statuses),
            "direction": self.direction.value if self.direction else None,
            "serviceIdentifier": sorted(self.service_identifiers),
        }

    def text(self) -> str | None:
        parts = []
        if self.statuses:
            parts.append("status=" + ",".join(sorted(self.statuses)))
        if self.direction:
            parts.append(f"direction={self.direction.value}")
        if self.service_identifiers:
            parts.append("serviceIdentifier=" + ",".join(sorted(self.service_identifiers)))
        return "&".join(parts) or None

    def matches(self, status: str, direction: str, service_identifier: str) -> bool:
        return (
            (not self.statuses or status in self.statuses)
            and (self.direction is None or direction == self.direction)
            and (not self.service_identifiers or service_identifier in self.service_identifiers)
        )


@dataclass(frozen=True)
class Subscription:
    id: int
    name: str
    push_endpoint: str
    resource: str
    event: str
    filter: SubscriptionFilter = field(default_factory=SubscriptionFilter)
    created_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """integrasjonspunkt's Subscription shape."""
        return {
            "id": self.id,
            "name": self.name,
            "pushEndpoint": self.push_endpoint,
            "resource": self.resource,
            "event": self.event,
            "filter": self.filter.text(),
        }

    def wants(self, status: str, direction: str, service_identifier: str) -> bool:
        return (
            self.resource in ("all", "messages")
            and self.event in ("all", "status")
            and (self.filter.matches(status, direction, service_identifier))
        )


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        name=row.name,
        push_endpoint=row.push_endpoint,
        resource=row.resource,
        event=row.event,
        filter=SubscriptionFilter.from_stored(row.filter),
        created_at=row.created_at,
    )


def _check_endpoint(url: object) -> str:
    if not isinstance(url, str) or not url:
        raise _field_error("pushEndpoint", "is required and must be a string")
    if len(url) > 2000:
        raise _field_error("pushEndpoint", "is longer than 2000 characters")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _field_error("pushEndpoint", f"{url[:100]!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise _field_error("pushEndpoint", "must not carry credentials")
    return url


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _field_error(name, f"must be one of {', '.join(choices)}")
    return value


def _check_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _field_error("name", "is required and must be a non-empty string")
    if len(value) > 200:
        raise _field_error("name", "is longer than 200 characters")
    return value


def _timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as integrasjonspunkt prints ``OffsetDateTime``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event_body(row: Any) -> bytes:
    content = {
        "createdTs": _timestamp(row.created_at),
        "resource": "messages",
        "event": "status",
        "messageId": row.message_id,
        "conversationId": row.conversation_id,
        "direction": row.direction,
        "serviceIdentifier": row.service_identifier,
        "status": row.status,
        "description": row.description,
    }
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


class Webhooks:
    """Subscriptions (per client) and the two webhook jobs."""

    def __init__(
        self,
        db: Database,
        *,
        timeout: float = 10.0,
        max_attempts: int = 12,
        session: aiohttp.ClientSession | None = None,
        clock: Any = None,
        wake: asyncio.Event | None = None,
        destinations: DestinationPolicy | None = None,
    ) -> None:
        self._db = db
        self._destinations = destinations or DestinationPolicy()
        #: set after outbox rows are committed, so the outbox relay publishes them at once
        self.wake = wake
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._session = session
        self._own_session = session is None
        self._clock = clock or (lambda: datetime.now(UTC))

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"User-Agent": "budstikke-webhooks"},
                connector=guarded_connector(self._destinations),
            )
        return self._session

    # ------------------------------------------------------------------ subscriptions

    async def page(
        self, client_id: int, *, offset: int, limit: int
    ) -> tuple[list[Subscription], int]:
        where = subscriptions.c.client_id == client_id
        async with self._db.read() as conn:
            total = (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(subscriptions).where(where)
                )
            ).scalar_one()
            rows = await conn.execute(
                sa.select(subscriptions)
                .where(where)
                .order_by(subscriptions.c.id)
                .offset(offset)
                .limit(limit)
            )
            return [_subscription(r) for r in rows], int(total)

    async def get(self, client_id: int, subscription_id: int) -> Subscription:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(subscriptions).where(
                        subscriptions.c.id == subscription_id,
                        subscriptions.c.client_id == client_id,
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"no subscription {subscription_id}")
        return _subscription(row)

    async def create(
        self, client_id: int, data: Mapping[str, Any], *, ping: bool = True
    ) -> tuple[Subscription, str]:
        """Create a subscription; returns it and its signing secret (shown only now)."""
        if data.get("id") is not None:
            raise _field_error("id", "is given by the access point; leave it out")
        name = _check_name(data.get("name"))
        endpoint = _check_endpoint(data.get("pushEndpoint"))
        resource = _check_choice("resource", data.get("resource"), RESOURCES)
        event = _check_choice("event", data.get("event"), EVENTS)
        filter_ = SubscriptionFilter.parse(_optional_text(data, "filter"))
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        async with self._db.read() as conn:
            clash = (
                await conn.execute(
                    sa.select(subscriptions.c.id).where(
                        subscriptions.c.client_id == client_id,
                        subscriptions.c.name == name,
                        subscriptions.c.push_endpoint == endpoint,
                    )
                )
            ).first()
            count = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(subscriptions)
                    .where(subscriptions.c.client_id == client_id)
                )
            ).scalar_one()
        if clash is not None:
            raise Conflict(f"a subscription named {name!r} already pushes to that endpoint")
        if count >= MAX_SUBSCRIPTIONS_PER_CLIENT:
            raise Conflict(
                f"a client may have at most {MAX_SUBSCRIPTIONS_PER_CLIENT} subscriptions"
            )
        if ping:
            await self._ping(endpoint, secret)
        async with self._db.transaction() as conn:
            new_id = (
                await conn.execute(
                    subscriptions.insert()
                    .values(
                        client_id=client_id,
                        name=name,
                        push_endpoint=endpoint,
                        resource=resource,
                        event=event,
                        filter=filter_.stored(),
                        secret=secret,
                        created_at=now,
                    )
                    .returning(subscriptions.c.id)
                )
            ).scalar_one()
        return Subscription(new_id, name, endpoint, resource, event, filter_, now), secret

    async def update(self, client_id: int, subscription_id: int, data: Mapping[str, Any]) -> None:
        """integrasjonspunkt's PUT: the members given replace the stored ones."""
        current = await self.get(client_id, subscription_id)
        values: dict[str, Any] = {}
        if data.get("name") is not None:
            values["name"] = _check_name(data["name"])
        if data.get("pushEndpoint") is not None:
            values["push_endpoint"] = _check_endpoint(data["pushEndpoint"])
        if data.get("resource") is not None:
            values["resource"] = _check_choice("resource", data["resource"], RESOURCES)
        if data.get("event") is not None:
            values["event"] = _check_choice("event", data["event"], EVENTS)
        if data.get("filter") is not None:
            values["filter"] = SubscriptionFilter.parse(_optional_text(data, "filter")).stored()
        if not values:
            return
        endpoint = values.get("push_endpoint", current.push_endpoint)
        if endpoint != current.push_endpoint:
            async with self._db.read() as conn:
                secret = (
                    await conn.execute(
                        sa.select(subscriptions.c.secret).where(subscriptions.c.id == current.id)
                    )
                ).scalar_one()
            await self._ping(endpoint, secret)
        async with self._db.transaction() as conn:
            await conn.execute(
                subscriptions.update()
                .where(subscriptions.c.id == current.id, subscriptions.c.client_id == client_id)
                .values(**values)
            )

    async def delete(self, client_id: int, subscription_id: int) -> None:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                subscriptions.delete().where(
                    subscriptions.c.id == subscription_id, subscriptions.c.client_id == client_id
                )
            )
        if result.rowcount == 0:
            raise NotFound(f"no subscription {subscription_id}")

    async def delete_all(self, client_id: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(subscriptions.delete().where(subscriptions.c.client_id == client_id))

    async def _ping(self, endpoint: str, secret: str) -> None:
        """integrasjonspunkt pings a new endpoint; so do we, signed with the new secret."""
        created = _timestamp(self._clock())
        body = json.dumps({"createdTs": created, "event": "ping"}, separators=(",", ":")).encode()
        try:
            await self._post(endpoint, secret, body, delivery="ping")
        except PermanentDeliveryError as exc:
            raise _field_error("pushEndpoint", str(exc)) from exc
        except TransientDeliveryError as exc:
            raise _field_error(
                "pushEndpoint", f"the ping was not answered with 2xx: {exc}"
            ) from exc

    # ------------------------------------------------------------------ jobs

    async def on_status(self, payload: Mapping[str, Any]) -> int:
        """The ``status`` job: fan the event out to matching subscriptions (returns how many
        deliveries were created now)."""
        event_id = _payload_id(payload, "status_event_id")
        async with self._db.read() as conn:
            # the subscriptions first: with none (the common case) one query answers the job
            rows = (
                await conn.execute(
                    sa.select(subscriptions, api_clients.c.organisations)
                    .join(api_clients, api_clients.c.id == subscriptions.c.client_id)
                    .where(api_clients.c.disabled.is_(False))
                )
            ).all()
            if not rows:
                return 0
            event = (
                await conn.execute(
                    sa.select(
                        status_events.c.id,
                        status_events.c.status,
                        messages.c.message_id,
                        messages.c.direction,
                        messages.c.service_identifier,
                        messages.c.sender_org,
                        messages.c.receiver_org,
                    )
                    .join(messages, messages.c.id == status_events.c.message_pk)
                    .where(status_events.c.id == event_id)
                )
            ).first()
            if event is None:
                return 0  # the message was deleted since: nothing to tell
            owner = (
                event.sender_org if event.direction == Direction.OUTGOING else event.receiver_org
            )
            wanted = [
                row.id
                for row in rows
                if owner in _organisations(row.organisations)
                and _subscription(row).wants(
                    event.status, event.direction, event.service_identifier
                )
            ]
        if not wanted:
            return 0
        now = self._clock()
        created = 0
        async with self._db.transaction() as conn:
            for subscription_id in wanted:
                delivery_id = (
                    await conn.execute(
                        insert_ignore(
                            conn, webhook_deliveries, "subscription_id", "status_event_id"
                        )
                        .values(
                            subscription_id=subscription_id,
                            status_event_id=event.id,
                            attempts=0,
                            created_at=now,
                            next_attempt_at=now,
                        )
                        .returning(webhook_deliveries.c.id)
                    )
                ).scalar_one_or_none()
                if delivery_id is None:
                    continue  # a redelivered status job: this subscriber is already served
                created += 1
                await conn.execute(
                    outbox.insert().values(
                        kind=WEBHOOK_JOB,
                        message_id=event.message_id,
                        payload=json.dumps({"delivery_id": delivery_id}),
                        created_at=now,
                    )
                )
        if created and self.wake is not None:
            self.wake.set()
        return created

    # ------------------------------------------------------------------ worker entry points

    async def status_job(self, job: Job) -> None:
        """The worker's handler for ``status`` jobs."""
        await self.on_status(job.payload)

    async def webhook_job(self, job: Job) -> None:
        """The worker's handler for ``webhook`` jobs."""
        await self.deliver(job.payload)

    async def webhook_dead(self, job: Job, reason: str) -> None:
        """The worker gave up on a ``webhook`` job: mark the delivery failed."""
        delivery_id = _payload_id(job.payload, "delivery_id")
        async with self._db.transaction() as conn:
            await conn.execute(
                webhook_deliveries.update()
                .where(
                    webhook_deliveries.c.id == delivery_id,
                    webhook_deliveries.c.delivered_at.is_(None),
                )
                .values(last_error=f"gave up: {reason}"[:2000], next_attempt_at=None)
            )

    async def deliver(self, payload: Mapping[str, Any]) -> None:
        """The ``webhook`` job: one attempt at one delivery."""
        delivery_id = _payload_id(payload, "delivery_id")
        async with self._db.transaction() as conn:
            row = await _delivery(conn, delivery_id)
            if row is None or row.delivered_at is not None:
                return  # done already, or the subscription was deleted
            if row.attempts >= self._max_attempts:
                return  # given up already
            attempts = row.attempts + 1
            await conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.id == delivery_id)
                .values(attempts=attempts)
            )
        body = _event_body(row)
        try:
            status = await self._post(
                row.push_endpoint, row.secret, body, delivery=str(delivery_id)
            )
        except TransientDeliveryError as exc:
            give_up = attempts >= self._max_attempts
            await self._record_failure(delivery_id, str(exc), getattr(exc, "status", None), give_up)
            if give_up:
                return
            raise
        async with self._db.transaction() as conn:
            await conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.id == delivery_id)
                .values(
                    delivered_at=self._clock(),
                    response_status=status,
                    next_attempt_at=None,
                    last_error=None,
                )
            )

    async def _record_failure(
        self, delivery_id: int, error: str, status: int | None, give_up: bool
    ) -> None:
        message = f"gave up after {self._max_attempts} attempts: {error}" if give_up else error
        async with self._db.transaction() as conn:
            await conn.execute(
                webhook_deliveries.update()
                .where(webhook_deliveries.c.id == delivery_id)
                .values(
                    last_error=message[:2000],
                    response_status=status,
                    next_attempt_at=None if give_up else self._clock(),
                )
            )

    async def _post(self, url: str, secret: str, body: bytes, *, delivery: str) -> int:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            DELIVERY_HEADER: delivery,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        try:
            async with self._http().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            refusal = refused(exc)
            if refusal is not None:
                raise PermanentDeliveryError(f"push endpoint refused: {refusal}") from exc
            raise TransientDeliveryError(f"POST to the push endpoint failed: {exc!r}") from exc
        if not 200 <= status < 300:
            error = TransientDeliveryError(f"the push endpoint answered {status}")
            error.status = status  # type: ignore[attr-defined]
            raise error
        return status

    async def failed_deliveries(self, client_id: int) -> list[dict[str, Any]]:
        """Deliveries given up on, for the ops console and tests."""
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(webhook_deliveries)
                .join(subscriptions, subscriptions.c.id == webhook_deliveries.c.subscription_id)
                .where(
                    subscriptions.c.client_id == client_id,
                    webhook_deliveries.c.delivered_at.is_(None),
                    webhook_deliveries.c.attempts >= self._max_attempts,
                )
            )
            return [dict(r._mapping) for r in rows]


async def _delivery(conn: AsyncConnection, delivery_id: int) -> Any:
    return (
        await conn.execute(
            sa.select(
                webhook_deliveries.c.id,
                webhook_deliveries.c.attempts,
                webhook_deliveries.c.delivered_at,
                subscriptions.c.push_endpoint,
                subscriptions.c.secret,
                status_events.c.status,
                status_events.c.description,
                status_events.c.created_at,
                messages.c.message_id,
                messages.c.conversation_id,
                messages.c.direction,
                messages.c.service_identifier,
            )
            .join(subscriptions, subscriptions.c.id == webhook_deliveries.c.subscription_id)
            .join(status_events, status_events.c.id == webhook_deliveries.c.status_event_id)
            .join(messages, messages.c.id == status_events.c.message_pk)
            .where(webhook_deliveries.c.id == delivery_id)
        )
    ).first()


def _payload_id(payload: Mapping[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"job payload needs an integer {key}, got {value!r}")
    return value


def _organisations(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return ()
    return [str(v) for v in value or ()]


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _field_error(key, "must be a string")
    return value
