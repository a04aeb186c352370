"""The composition root of the running service: settings in, a wired aiohttp application out.

:func:`build_app` puts the business API on an application around parts it is given (the
message service, the queue, webhooks), so tests can hand in whatever they like.
:func:`create_runtime` builds those parts from :class:`~access_point.settings.Settings`:

* the database (migrated to the newest revision at start-up) and the encrypted file store;
* the access point's credential (``<data_dir>/pki``; a development PKI is made there on first
  start of the embedded default);
* :class:`~access_point.messages.MessageService` and :class:`~access_point.webhooks.Webhooks`;
* the job queue: the database queue for the embedded default, RabbitMQ when
  ``BUDSTIKKE_AMQP_URL`` is set;
* and, when asked to (the embedded default), the outbox relay, the workers and the lifetime
  sweep in this process, started and stopped with the application.

One test hook lives here and nowhere else: ``BUDSTIKKE_TEST_PAUSE_AFTER_DELIVERY=<seconds>``
makes every ``send`` job sleep after its local delivery committed and before the job's
idempotency key and acknowledgement are written, so the crash tests can SIGKILL a worker in
exactly that window. It is not a :class:`Settings` field because nothing but a test may set it.

Request bodies read whole (JSON) are bounded by ``client_max_size``; file uploads stream from
the socket and are bounded by ``max_file_size`` and ``max_multipart_size`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from access_point.api import MIDDLEWARES, setup_api
from access_point.api.capabilities import CAPABILITIES, Capabilities
from access_point.api.manage import HealthCheck, Metrics
from access_point.api.routing import OPEN_ROUTES
from access_point.destinations import DestinationPolicy
from access_point.directory import Directory
from access_point.jobs import MessageOperations, build_kinds, lifetime_sweep, no_subscriptions
from access_point.messages import MessageService
from access_point.network import AS4_PATH, As4Network
from access_point.persons import PersonRoutes
from access_point.revocation import RevocationPolicy
from access_point.routes import FixedSmp, NetworkRoutes
from access_point.settings import Settings
from access_point.webhooks import WEBHOOK_JOB, Webhooks
from access_point.worker import Idempotency, JobKind, run_worker
from adapters.db.engine import Database
from adapters.db.migrate import upgrade_async
from adapters.files import FileStore
from adapters.queue import DatabaseQueue, JobQueue, RabbitMQQueue
from routing.krr_client import KrrClient
from routing.registers import PopulationRegisterClient
from routing.resolver import RouteResolver
from routing.sml import SmlClient, SmlLookup
from routing.smp_client import SmpClient
from sbdh.errors import ConfigurationError
from sbdh.pki import Credential, generate_dev_pki, init_pki
from sbdh.trust import TrustStore

__all__ = ["Runtime", "build_app", "create_runtime", "load_ap_credential"]

log = logging.getLogger("budstikke.app")

#: what JSON bodies (an SBD, a subscription) may weigh beyond the multipart limit
_JSON_HEADROOM = 1 << 20

WAKE = web.AppKey("relay_wake", asyncio.Event)


@web.middleware
async def _wake_relay(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """After a request that may have written outbox rows, wake the relay in this process."""
    response = await handler(request)
    if request.method != "GET" and response.status < 400:
        wake = request.app.get(WAKE)
        if wake is not None:
            wake.set()
    return response


def build_app(
    settings: Settings,
    *,
    service: Any,
    webhooks: Any,
    queue: JobQueue | None = None,
    database: Database | None = None,
    metrics: Metrics | None = None,
    readiness_checks: Sequence[HealthCheck] | None = None,
    relay_wake: asyncio.Event | None = None,
) -> web.Application:
    """The aiohttp application of the business API around the given parts.

    ``readiness_checks`` default to a database round trip and the queue's depth.
    """
    app = web.Application(
        middlewares=[*MIDDLEWARES, _wake_relay],
        client_max_size=settings.max_multipart_size + _JSON_HEADROOM,
    )
    checks: list[HealthCheck] = list(readiness_checks or ())
    if readiness_checks is None:
        if database is not None:
            checks.append(("database", database.ping))
        if queue is not None:
            checks.append(("queue", queue.depth))
    if metrics is None and database is not None:
        metrics = Metrics(database, queue_depth=queue.depth if queue is not None else None)
    if relay_wake is not None:
        app[WAKE] = relay_wake
    setup_api(
        app,
        settings=settings,
        service=service,
        webhooks=webhooks,
        metrics=metrics,
        readiness_checks=checks,
    )
    return app


def load_ap_credential(settings: Settings) -> Credential:
    """The access point's signing credential from ``<data_dir>/pki``; a development PKI is
    made there when none exists yet (the embedded default needs nothing installed)."""
    directory = settings.pki_path
    cn = settings.ap_name
    cert = directory / "access-points" / f"{cn}.pem"
    key = directory / "access-points" / f"{cn}.key"
    if not (directory / "pki.json").exists():
        if not settings.embedded:
            raise ConfigurationError(
                f"no access point credential at {cert}: run `budstikke pki init {directory}` "
                "or install the production certificate there"
            )
        log.warning("no PKI in %s: making a development PKI (not for production)", directory)
        pki = generate_dev_pki(now=datetime.now(UTC), ca_key_size=2048)
        init_pki(directory, pki)
    return Credential.load(cert, key)


def load_ap_trust(settings: Settings, credential: Credential | None = None) -> TrustStore:
    """The anchors (and intermediates) other access points' certificates chain to: the
    configured PEM files, or the PKI's root with its AP and organisation CAs; without either,
    the top of our own certificate's chain (the CA that issued us issues our peers)."""
    no_files = not settings.ap_trust and not (settings.pki_path / "root-ca.pem").exists()
    if no_files and credential is not None and credential.chain:
        return TrustStore((credential.chain[-1],), tuple(credential.chain[:-1]))
    if settings.ap_trust:
        paths = [Path(p) for p in settings.ap_trust.split(os.pathsep) if p.strip()]
        anchors, intermediates = paths[:1], paths[1:]
    else:
        pki = settings.pki_path
        anchors = [pki / "root-ca.pem"]
        intermediates = [p for p in (pki / "ap-ca.pem", pki / "org-ca.pem") if p.exists()]
    try:
        return TrustStore.load(*anchors, intermediates=intermediates)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"the AS4 trust anchors cannot be read: {exc}") from exc


def load_directory(settings: Settings) -> Directory:
    """The participant → AS4 endpoint directory (empty when none is configured)."""
    path = settings.directory_path
    return Directory() if path is None else Directory.load(path)


def load_routes(settings: Settings, directory: Directory, ap_trust: TrustStore) -> NetworkRoutes:
    """The directory as override, then the SML (or one fixed SMP) and the SMP when configured."""
    if not settings.discovers:
        return NetworkRoutes(directory)
    sml: SmlLookup
    if settings.smp_url:
        sml = FixedSmp(settings.smp_url)
    else:
        sml = SmlClient(
            zone=settings.sml_zone,
            nameserver=_host_port(settings.sml_nameserver) if settings.sml_nameserver else None,
            allow_http=settings.registry_allow_http,
        )
    smp = SmpClient(load_smp_trust(settings), allow_http=settings.registry_allow_http)
    return NetworkRoutes(directory, RouteResolver(sml, smp, ap_trust=ap_trust))


def load_people(settings: Settings) -> PersonRoutes | None:
    """KRR and the population register for letters to persons (None without KRR)."""
    if not settings.krr_url:
        return None
    token = settings.krr_token.value.decode() if settings.krr_token is not None else ""
    population = (
        PopulationRegisterClient(settings.population_url) if settings.population_url else None
    )
    return PersonRoutes(KrrClient(settings.krr_url, token), population)


def load_smp_trust(settings: Settings) -> TrustStore:
    """The anchors SMP signatures chain to: the configured PEM files, or the PKI's root and AP
    CA (the development PKI issues the local SMP's certificate from its AP CA)."""
    if settings.smp_trust:
        paths = [Path(p) for p in settings.smp_trust.split(os.pathsep) if p.strip()]
        anchors, intermediates = paths[:1], paths[1:]
    else:
        pki = settings.pki_path
        anchors = [pki / "root-ca.pem"]
        intermediates = [p for p in (pki / "ap-ca.pem",) if p.exists()]
    try:
        return TrustStore.load(*anchors, intermediates=intermediates)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"the SMP trust anchors cannot be read: {exc}") from exc


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError as exc:
        raise ConfigurationError(f"BUDSTIKKE_SML_NAMESERVER {text!r} is not host:port") from exc


def add_as4_route(app: web.Application, network: As4Network) -> None:
    """``POST /as4``: open (the other access point proves itself in the message, not with an
    API token)."""
    route = app.router.add_post(AS4_PATH, network.handle)
    app.setdefault(OPEN_ROUTES, set()).add(route)


@dataclass
class Runtime:
    """Everything the service runs on, and the tasks it runs in this process."""

    settings: Settings
    database: Database
    files: FileStore
    service: MessageService
    webhooks: Webhooks
    queue: JobQueue
    metrics: Metrics
    wake: asyncio.Event
    kinds: dict[str, JobKind]
    app: web.Application
    run_workers: bool
    network: As4Network | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def start_workers(self) -> None:
        """The outbox relay, the workers and the lifetime sweep, in this process."""
        if self._task is not None:
            return
        self.stop.clear()
        self._task = asyncio.create_task(
            run_worker(
                self.queue,
                self.kinds,
                engine=self.database.engine,
                concurrency=self.settings.worker_concurrency,
                sweep=lifetime_sweep(self.service.expire),
                sweep_interval=self.settings.lifetime_sweep,
                wake=self.wake,
                stop=self.stop,
            ),
            name="budstikke-workers",
        )

    async def stop_workers(self, timeout: float = 10.0) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception:
            log.exception("the in-process workers failed")

    async def close(self) -> None:
        await self.stop_workers()
        if self.network is not None:
            await self.network.close()
        await self.webhooks.close()
        await self.queue.close()
        await self.database.dispose()


#: test hook, read here only: seconds every ``send`` job sleeps after its delivery committed
TEST_PAUSE_AFTER_DELIVERY = "BUDSTIKKE_TEST_PAUSE_AFTER_DELIVERY"


def _test_pause_after_delivery() -> float | None:
    """The crash tests' hook (``tests/integration/test_service_crash.py``); never set it in
    production. Not a setting on purpose: it exists to let a test SIGKILL a worker at the one
    moment that matters, between a job's effect and the idempotency key / the ack."""
    text = os.environ.get(TEST_PAUSE_AFTER_DELIVERY)
    if not text:
        return None
    seconds = float(text)
    log.warning(
        "%s=%s: every delivery pauses before it is acknowledged", TEST_PAUSE_AFTER_DELIVERY, text
    )
    return seconds


class _PausingAfterDelivery:
    """The message operations with a pause after each committed local delivery (test hook)."""

    def __init__(self, service: MessageService, seconds: float) -> None:
        self._service = service
        self._seconds = seconds

    async def deliver_locally(
        self,
        message_id: str,
        *,
        claim: Callable[[AsyncConnection], Awaitable[bool]] | None = None,
    ) -> object:
        result = await self._service.deliver_locally(message_id, claim=claim)
        await asyncio.sleep(self._seconds)
        return result

    async def mark_failed(
        self, message_id: str, reason: str, *, unsent_only: bool = False
    ) -> object:
        return await self._service.mark_failed(message_id, reason, unsent_only=unsent_only)


def _waking(kind: JobKind, wake: asyncio.Event) -> JobKind:
    """A job that may have written outbox rows wakes the relay when it ends."""
    run = kind.run

    async def waking(job: Any) -> object:
        try:
            return await run(job)
        finally:
            wake.set()

    return replace(kind, run=waking)


def _pool(settings: Settings, run_workers: bool | None) -> dict[str, int]:
    """Pool sizes for PostgreSQL: every process on one server shares its connection limit
    (``max_connections``, 100 by default), so each keeps a few. A process running workers
    needs one per running job, and a second while a job's idempotency key is held."""
    if settings.database_is_sqlite:
        return {}
    size = settings.database_pool_size
    if settings.embedded if run_workers is None else run_workers:
        size = max(size, settings.worker_concurrency + 2)
    return {"pool_size": size, "max_overflow": size}


async def create_runtime(
    settings: Settings,
    *,
    run_workers: bool | None = None,
    ap_credential: Credential | None = None,
    migrate: bool = True,
) -> Runtime:
    """Wire the service from ``settings``. Workers run in this process when ``run_workers``
    (by default: for the embedded default). Start with :func:`run_app` or use ``app``'s
    startup hooks, which start and stop the workers with the application."""
    settings = settings.with_storage_key()
    assert settings.storage_key is not None
    if migrate:
        await upgrade_async(settings.database_url)
    database = Database.from_url(settings.database_url, **_pool(settings, run_workers))
    files = FileStore(Path(settings.data_dir) / "files", settings.storage_key.value)
    credential = ap_credential or load_ap_credential(settings)
    service = MessageService(database, files, settings, credential)
    wake = asyncio.Event()
    webhooks = Webhooks(
        database,
        timeout=settings.webhook_timeout.total_seconds(),
        max_attempts=settings.webhook_max_attempts,
        wake=wake,
        destinations=DestinationPolicy.parse(settings.webhook_allowed_networks),
    )
    queue: JobQueue
    if settings.amqp_url is None:
        queue = DatabaseQueue(
            database.engine, name=settings.queue_name or "default", lease=settings.queue_lease
        )
    else:
        queue = RabbitMQQueue(
            settings.amqp_url.value.decode(), name=settings.queue_name or "budstikke.jobs"
        )
    idempotency = Idempotency(database.engine)
    operations: MessageOperations = service
    pause = _test_pause_after_delivery()
    if pause is not None:
        operations = _PausingAfterDelivery(service, pause)
    ap_trust = load_ap_trust(settings, credential)
    directory = load_directory(settings)
    network = As4Network(
        service=service,
        files=files,
        credential=credential,
        trust=ap_trust,
        directory=directory,
        routes=load_routes(settings, directory, ap_trust),
        people=load_people(settings),
        max_request=settings.as4_max_request,
        revocation=RevocationPolicy.create(
            settings.revocation, timeout=settings.revocation_timeout.total_seconds()
        ),
    )
    kinds = build_kinds(
        operations,
        network=network,
        idempotency=idempotency,
        on_status=webhooks.status_job,
        status_idle=no_subscriptions,
        extra={
            WEBHOOK_JOB: JobKind(
                webhooks.webhook_job,
                on_dead=webhooks.webhook_dead,
                max_attempts=settings.webhook_max_attempts,
            )
        },
    )
    kinds = {name: _waking(kind, wake) for name, kind in kinds.items()}
    metrics = Metrics(database, queue_depth=queue.depth)
    app = build_app(
        settings,
        service=service,
        webhooks=webhooks,
        queue=queue,
        database=database,
        metrics=metrics,
        relay_wake=wake,
    )
    runtime = Runtime(
        settings=settings,
        database=database,
        files=files,
        service=service,
        webhooks=webhooks,
        queue=queue,
        metrics=metrics,
        wake=wake,
        kinds=kinds,
        app=app,
        run_workers=settings.embedded if run_workers is None else run_workers,
        network=network,
    )
    add_as4_route(app, network)
    app[CAPABILITIES] = Capabilities(service, network.router)
    app.cleanup_ctx.append(_lifecycle(runtime))
    return runtime


def _lifecycle(runtime: Runtime) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        if runtime.run_workers:
            await runtime.start_workers()
        yield
        await runtime.close()

    return lifecycle
