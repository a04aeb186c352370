"""The local SMP/ELMA server: signed SMP answers for the participants registered in it.

It answers like a Peppol SMP (and like Norway's ELMA) over HTTP, for the three SMP formats,
chosen by path prefix so that one server serves every kind of client::

    GET /{participant}                                    ServiceGroup          (Peppol)
    GET /{participant}/services/{document type}           SignedServiceMetadata (Peppol)
    GET /bdxr-smp-1/{participant}[/services/{doc type}]   the same in OASIS BDXR SMP 1.0
    GET /bdxr-smp-2/{participant}[/services/{doc type}]   OASIS SMP 2.0 (its own REST binding)

``/bdxr-smp-1`` is this server's convention, not a specification's: a BDXR 1.0 client is
simply given ``{base}/bdxr-smp-1`` as the SMP's base URL and uses the standard paths below it.
The unprefixed paths serve Peppol unless the server is made with ``root_format=BDXR1`` (an SMP
in "bdxr mode"). Identifiers are ``scheme::value``, each percent-encoded as one path segment
(:mod:`elma.paths`; unencoded and doubly encoded forms are read too).

Service metadata is always signed with the SMP's own credential (:mod:`elma.sign`): a
SignedServiceMetadata for Peppol and BDXR 1.0, an enveloped signature in the ServiceMetadata
for SMP 2.0, whose service groups are signed too (the 1.x groups are not signed by any SMP).
``Content-Type`` is ``text/xml`` for Peppol and BDXR 1.0, as their REST bindings say, and
``application/xml`` for SMP 2.0. An unknown participant or document type is 404, a path that
names no SMP resource or an identifier that is malformed is 400; errors are
``application/problem+json`` (RFC 7807).

SMP 2.0 carries dates, not times: an activation is moved forward and an expiration back to
midnight UTC when answering in that format, so an endpoint is never advertised as active when
it is not.

A redirect registration (:class:`elma.registry.RedirectTarget`) answers with a redirect to the
same resource at the other SMP: ``Redirect/@href`` with ``CertificateUID`` in Peppol and BDXR
1.0, a per-process ``Redirect`` with ``PublisherURI`` and the certificate in SMP 2.0.

The admin API (``Authorization: Bearer <token>``; refused with 403 when no token is set)::

    GET    /admin/participants                   {"participants": [summary, ...]}
    GET    /admin/participants/{participant}     the registration (elma.registry JSON form)
    PUT    /admin/participants/{participant}     register or replace: 201 new, 200 replaced
    DELETE /admin/participants/{participant}     204, or 404 when not registered

With an :class:`SmlPublisher` (the local SML, :class:`adapters.standins.dns.SmlStandin`) a
registered Peppol-scheme participant is published in the SML pointing at this server's base
URL, and withdrawn when it is deleted, so lookups go SML -> this SMP.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote

from aiohttp import web

from elma.build import build_service_group
from elma.errors import SmpPathError
from elma.loopback import LoopbackHttpServer
from elma.model import (
    Endpoint,
    ParticipantId,
    Process,
    Redirect,
    ServiceGroup,
    ServiceMetadata,
    ServiceReference,
)
from elma.paths import parse_smp_path, service_group_path, service_metadata_path
from elma.registry import (
    ParticipantRecord,
    ParticipantRegistry,
    RegistrationError,
    ServiceRegistration,
    parse_participant,
    record_from_json,
    record_to_json,
)
from elma.sign import sign_service_group, sign_service_metadata
from elma.spec import SMP2_PATH_PREFIX, SmpFormat
from sbdh.errors import BusError, InvalidInput
from sbdh.pki import Credential

__all__ = [
    "ADMIN_PREFIX",
    "BDXR1_PATH_PREFIX",
    "ElmaServer",
    "ElmaService",
    "SmlPublisher",
    "create_app",
    "main",
    "serve_forever",
    "service_group_for",
    "service_metadata_for",
]

log = logging.getLogger("budstikke.elma.server")

#: path segment this server puts before the OASIS BDXR SMP 1.0 view of its participants
BDXR1_PATH_PREFIX = "bdxr-smp-1"
#: where the admin API lives
ADMIN_PREFIX = "/admin/participants"
PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:budstikke:problem:"
_MAX_ADMIN_BODY = 1024 * 1024
_CONTENT_TYPES = {
    SmpFormat.PEPPOL: "text/xml",
    SmpFormat.BDXR1: "text/xml",
    SmpFormat.SMP2: "application/xml",
}


class SmlPublisher(Protocol):
    """Publishes participants in an SML (the local one: ``adapters.standins.dns.SmlStandin``)."""

    def register(self, participant: str, smp_url: str) -> None:
        """Point ``participant`` (``scheme::value``) at the SMP at ``smp_url``."""
        ...

    def unregister(self, participant: str) -> None: ...


# --------------------------------------------------------------------------- answers (no I/O)


def _problem(
    status: int,
    code: str,
    detail: str,
    instance: str,
    *,
    field: str | None = None,
    rule: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
    }
    if field is not None or rule is not None:
        error: dict[str, str] = {"message": detail}
        if field is not None:
            error["field"] = field
        if rule is not None:
            error["rule"] = rule
        body["errors"] = [error]
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type=PROBLEM_JSON,
        headers=headers,
    )


def _problem_from(exc: BusError, instance: str) -> web.Response:
    field = getattr(exc, "field", None)
    return _problem(
        exc.http_status,
        exc.code,
        exc.message,
        instance,
        field=field if isinstance(field, str) else None,
        rule=exc.rule,
    )


def _midnight_after(value: datetime) -> datetime:
    utc = value.astimezone(UTC)
    day = datetime.combine(utc.date(), time(0), tzinfo=UTC)
    return day if day == utc else day + timedelta(days=1)


def _midnight_before(value: datetime) -> datetime:
    utc = value.astimezone(UTC)
    return datetime.combine(utc.date(), time(0), tzinfo=UTC)


def _as_dates(endpoint: Endpoint) -> Endpoint:
    """The endpoint with its validity narrowed to whole days, for SMP 2.0."""
    activation = endpoint.service_activation
    expiration = endpoint.service_expiration
    return replace(
        endpoint,
        service_activation=_midnight_after(activation) if activation is not None else None,
        service_expiration=_midnight_before(expiration) if expiration is not None else None,
    )


def _processes(service: ServiceRegistration, smp_format: SmpFormat) -> tuple[Process, ...]:
    if smp_format is not SmpFormat.SMP2:
        return service.processes
    return tuple(
        replace(p, endpoints=tuple(_as_dates(e) for e in p.endpoints)) for p in service.processes
    )


def service_metadata_for(
    participant: ParticipantId, service: ServiceRegistration, smp_format: SmpFormat
) -> ServiceMetadata:
    """What the SMP answers for one registered document type, in ``smp_format``."""
    target = service.redirect
    if target is None:
        return ServiceMetadata(
            participant, service.document_type, _processes(service, smp_format), format=smp_format
        )
    href = target.smp_url + service_metadata_path(participant, service.document_type, smp_format)
    if smp_format is SmpFormat.SMP2:
        certificates = (target.certificate,) if target.certificate is not None else ()
        redirect = Redirect(href, certificates=certificates)
        return ServiceMetadata(
            participant,
            service.document_type,
            (Process(None, redirect=redirect),),
            format=smp_format,
        )
    redirect = Redirect(href, certificate_uid=target.uid)
    return ServiceMetadata(None, None, redirect=redirect, format=smp_format)


def service_group_for(record: ParticipantRecord, smp_format: SmpFormat) -> ServiceGroup:
    references = tuple(
        ServiceReference(
            s.document_type,
            processes=tuple(p.process_id for p in s.processes if p.process_id is not None),
        )
        for s in record.services
    )
    return ServiceGroup(record.participant, references, smp_format)


# --------------------------------------------------------------------------- the service


class ElmaService:
    """The server's state and request handlers; :func:`create_app` puts them on a router.

    ``public_url`` is the base URL clients reach this server at (hrefs in service groups, the
    SML entries); when it is ``None`` it is taken from each request. :class:`ElmaServer` sets
    it once it knows its port.
    """

    def __init__(
        self,
        registry: ParticipantRegistry,
        signer: Credential,
        *,
        admin_token: str | None = None,
        sml: SmlPublisher | None = None,
        public_url: str | None = None,
        root_format: SmpFormat = SmpFormat.PEPPOL,
    ) -> None:
        if root_format is SmpFormat.SMP2:
            raise ValueError("SMP 2.0 has its own path prefix; the root serves Peppol or BDXR 1.0")
        if admin_token is not None and not admin_token.strip():
            raise ValueError("the admin token must not be empty")
        self.registry = registry
        self.signer = signer
        self.sml = sml
        self.public_url = public_url.rstrip("/") if public_url else None
        self.root_format = root_format
        self._admin_token = admin_token.encode("utf-8") if admin_token else None

    def __repr__(self) -> str:
        admin = "on" if self._admin_token else "off"
        return f"ElmaService({self.registry!r}, signer={self.signer!r}, admin={admin})"

    def base_url(self, request: web.Request | None = None) -> str:
        if self.public_url is not None:
            return self.public_url
        if request is None:
            raise RuntimeError("the server's public URL is not known yet")
        return f"{request.scheme}://{request.host}"

    # -- SML ----------------------------------------------------------------------------------

    def publish(self, participant: ParticipantId, base_url: str) -> None:
        if self.sml is not None and participant.is_peppol:
            self.sml.register(participant.uri(), base_url)

    def withdraw(self, participant: ParticipantId) -> None:
        if self.sml is not None and participant.is_peppol:
            self.sml.unregister(participant.uri())

    def publish_all(self) -> int:
        """Publish every registered participant in the SML; returns how many."""
        if self.sml is None:
            return 0
        base = self.base_url()
        records = self.registry.records()
        for record in records:
            self.publish(record.participant, base)
        return len(records)

    # -- SMP ----------------------------------------------------------------------------------

    def _split_format(self, raw_path: str) -> tuple[SmpFormat, str, str]:
        """(format, the path without this server's BDXR 1.0 prefix, the view's base path)."""
        bdxr1 = f"/{BDXR1_PATH_PREFIX}"
        if raw_path == bdxr1 or raw_path.startswith(bdxr1 + "/"):
            return SmpFormat.BDXR1, raw_path[len(bdxr1) :] or "/", bdxr1
        smp2 = f"/{SMP2_PATH_PREFIX}"
        if raw_path == smp2 or raw_path.startswith(smp2 + "/"):
            return SmpFormat.SMP2, raw_path, ""
        return self.root_format, raw_path, ""

    async def smp_get(self, request: web.Request) -> web.Response:
        raw_path = request.rel_url.raw_path
        smp_format, path, view = self._split_format(raw_path)
        try:
            smp_path = parse_smp_path(path)
            if smp_path.format is SmpFormat.SMP2 and smp_format is not SmpFormat.SMP2:
                raise SmpPathError(
                    f"SMP path {raw_path!r} mixes two formats' prefixes", rule="smp-path-shape"
                )
            participant = parse_participant(smp_path.participant.uri())
        except (SmpPathError, RegistrationError) as exc:
            return _problem(400, "invalid-identifier", exc.message, request.path, rule=exc.rule)
        record = self.registry.get(participant)
        if record is None:
            return _problem(
                404, "not-found", f"participant {participant} is not registered", request.path
            )
        if smp_path.document_type is None:
            return self._group_answer(request, record, smp_format, view)
        service = record.service(smp_path.document_type)
        if service is None:
            return _problem(
                404,
                "not-found",
                f"participant {participant} is not registered for document type "
                f"{smp_path.document_type}",
                request.path,
            )
        metadata = service_metadata_for(record.participant, service, smp_format)
        body = sign_service_metadata(metadata, self.signer, smp_format)
        return self._xml(body, smp_format)

    def _group_answer(
        self, request: web.Request, record: ParticipantRecord, smp_format: SmpFormat, view: str
    ) -> web.Response:
        group = service_group_for(record, smp_format)
        if smp_format is SmpFormat.SMP2:
            body = sign_service_group(group, self.signer, smp_format)
        else:
            body = build_service_group(group, smp_format, base_url=self.base_url(request) + view)
        return self._xml(body, smp_format)

    @staticmethod
    def _xml(body: bytes, smp_format: SmpFormat) -> web.Response:
        return web.Response(body=body, content_type=_CONTENT_TYPES[smp_format], charset="utf-8")

    # -- admin --------------------------------------------------------------------------------

    def _refusal(self, request: web.Request) -> web.Response | None:
        if self._admin_token is None:
            return _problem(403, "forbidden", "the admin API is not enabled", request.path)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            if hmac.compare_digest(token.strip().encode("utf-8"), self._admin_token):
                return None
            challenge = 'Bearer realm="elma", error="invalid_token"'
            detail = "the bearer token is not accepted"
        else:
            challenge = 'Bearer realm="elma"'
            detail = "a bearer token is required"
        return _problem(
            401, "unauthorized", detail, request.path, headers={"WWW-Authenticate": challenge}
        )

    def _admin_participant(self, request: web.Request) -> ParticipantId:
        raw = request.rel_url.raw_path[len(ADMIN_PREFIX) + 1 :]
        return parse_participant(unquote(raw.rstrip("/")), field="path.participant")

    def _links(self, request: web.Request, participant: ParticipantId) -> dict[str, str]:
        base = self.base_url(request)
        return {
            "peppol": base + service_group_path(participant),
            "bdxr1": f"{base}/{BDXR1_PATH_PREFIX}" + service_group_path(participant),
            "smp2": base + service_group_path(participant, SmpFormat.SMP2),
        }

    async def admin_list(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        participants = [
            {
                "participant": r.participant.uri(),
                "name": r.name,
                "document_types": [d.uri() for d in r.document_types()],
            }
            for r in self.registry.records()
        ]
        return web.json_response({"participants": participants})

    async def admin_get(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        try:
            participant = self._admin_participant(request)
        except BusError as exc:
            return _problem_from(exc, request.path)
        record = self.registry.get(participant)
        if record is None:
            return _problem(
                404, "not-found", f"participant {participant} is not registered", request.path
            )
        return web.json_response(record_to_json(record))

    async def admin_put(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        try:
            participant = self._admin_participant(request)
            try:
                body = await request.json()
            except (ValueError, UnicodeError) as exc:
                raise RegistrationError(
                    "the body is not JSON", field="body", rule="elma-json"
                ) from exc
            record = record_from_json(body, participant=participant)
        except web.HTTPRequestEntityTooLarge:
            return _problem(
                413, "payload-too-large", f"the body is over {_MAX_ADMIN_BODY} bytes", request.path
            )
        except BusError as exc:
            return _problem_from(exc, request.path)
        created = self.registry.put(record)
        self.publish(record.participant, self.base_url(request))
        log.info(
            "ELMA: %s %s (%d document types)",
            "registered" if created else "replaced",
            record.participant,
            len(record.services),
        )
        answer = record_to_json(record)
        answer["links"] = self._links(request, record.participant)
        return web.json_response(answer, status=201 if created else 200)

    async def admin_delete(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        try:
            participant = self._admin_participant(request)
        except BusError as exc:
            return _problem_from(exc, request.path)
        if not self.registry.remove(participant):
            return _problem(
                404, "not-found", f"participant {participant} is not registered", request.path
            )
        self.withdraw(participant)
        log.info("ELMA: removed %s", participant)
        return web.Response(status=204)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Problem details for whatever a handler did not answer itself; never a stack trace."""
    try:
        return await handler(request)
    except InvalidInput as exc:
        return _problem_from(exc, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status, "invalid-input")
        return _problem(exc.status, code, exc.reason, request.path)
    except BusError as exc:
        log.error("ELMA: %s %s failed: %s", request.method, request.path, exc)
        return _problem_from(exc, request.path)
    except Exception:
        log.exception("ELMA: %s %s failed", request.method, request.path)
        return _problem(500, "internal-error", "the SMP could not answer", request.path)


def create_app(service: ElmaService) -> web.Application:
    """The aiohttp application of ``service``: the admin API first, then every other GET
    path is an SMP resource."""
    app = web.Application(middlewares=[_errors], client_max_size=_MAX_ADMIN_BODY)
    app.router.add_get(ADMIN_PREFIX, service.admin_list)
    item = app.router.add_resource(ADMIN_PREFIX + "/{participant:.+}")
    item.add_route("GET", service.admin_get)
    item.add_route("PUT", service.admin_put)
    item.add_route("DELETE", service.admin_delete)
    app.router.add_get("/{tail:.*}", service.smp_get)
    return app


class ElmaServer(LoopbackHttpServer):
    """The SMP served on ``host:port`` (port 0 picks a free one).

    On start it learns its URL (unless ``public_url`` is given) and publishes every registered
    participant in the SML, if one is given.
    """

    server_name = "the SMP server"

    def __init__(
        self,
        registry: ParticipantRegistry,
        signer: Credential,
        *,
        admin_token: str | None = None,
        sml: SmlPublisher | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        root_format: SmpFormat = SmpFormat.PEPPOL,
    ) -> None:
        self.service = ElmaService(
            registry,
            signer,
            admin_token=admin_token,
            sml=sml,
            public_url=public_url,
            root_format=root_format,
        )
        self._fixed_url = public_url is not None
        super().__init__(create_app(self.service), host=host, port=port)

    @property
    def registry(self) -> ParticipantRegistry:
        return self.service.registry

    @property
    def url(self) -> str:
        """The base URL: what the SML points at, and what an SMP client is given."""
        return self.service.base_url()

    @property
    def bdxr1_url(self) -> str:
        """The base URL of the OASIS BDXR SMP 1.0 view."""
        return f"{self.url}/{BDXR1_PATH_PREFIX}"

    def _started(self) -> None:
        if not self._fixed_url:
            self.service.public_url = f"http://{self.host}:{self.port}"
        published = self.service.publish_all()
        log.info("ELMA SMP on %s (%d participants published in the SML)", self.url, published)

    async def stop(self) -> None:
        await super().stop()
        if not self._fixed_url:
            self.service.public_url = None


async def serve_forever(server: ElmaServer) -> None:
    """Run ``server`` until cancelled, printing its URL (the one line a caller waits for)."""
    async with server:
        print(server.url, flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m elma.server --data FILE --key KEY --cert CERT --port N --admin-token T``."""
    from elma.cli import build_serve_parser, serve  # noqa: PLC0415 - the CLI imports this module

    args = build_serve_parser("python -m elma.server").parse_args(argv)
    try:
        return serve(args)
    except BusError as exc:
        print(f"elma: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
