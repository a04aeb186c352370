"""The business API: integrasjonspunkt's NextMove REST API, and the operations endpoints.

=================  ==========================================================================
``routing``        the route table type; router and OpenAPI document come from one table
``messages``       ``/api/messages/out`` and ``/api/messages/in``
``statuses``       ``/api/statuses`` and ``/api/conversations``
``subscriptions``  ``/api/subscriptions`` (webhooks)
``manage``         ``/manage/health``, ``/manage/metrics``
``problems``       RFC 7807 problem details for every error
``auth``           bearer tokens → the client
``params``         query and path parameters, paging
``disposition``    RFC 6266 ``Content-Disposition``
``accesslog``      an access log without tokens or national ids
=================  ==========================================================================

:func:`setup_api` puts all of it on an :class:`aiohttp.web.Application`; the composition root
(:mod:`access_point.app`) builds the application and hands in the service and friends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from access_point.api import capabilities, manage, messages, statuses, subscriptions
from access_point.api.accesslog import SafeAccessLogger
from access_point.api.auth import AUTHENTICATE, auth_middleware
from access_point.api.common import SERVICE, SETTINGS, WEBHOOKS
from access_point.api.manage import METRICS, READINESS, HealthCheck, Metrics
from access_point.api.problems import problem_middleware
from access_point.api.routing import Response, Route, add_routes, openapi_document
from access_point.api.schemas import SCHEMAS
from access_point.settings import Settings

__all__ = [
    "API_ROUTES",
    "MIDDLEWARES",
    "SafeAccessLogger",
    "build_openapi",
    "setup_api",
]

API_VERSION = "1.0.0"
DESCRIPTION = (
    "Budstikke's business API: the eFormidling integrasjonspunkt NextMove REST API (same "
    "paths, verbs and JSON), with per-client bearer tokens, RFC 7807 problem details, "
    "idempotent create and signed, retried webhooks. See docs/api.md."
)

#: every business route, in registration order (fixed paths before {parameters})
API_ROUTES: tuple[Route, ...] = (
    *messages.ROUTES,
    *statuses.ROUTES,
    *subscriptions.ROUTES,
    *capabilities.ROUTES,
    *manage.ROUTES,
)

MIDDLEWARES = (problem_middleware, auth_middleware)

_OPENAPI = web.AppKey("openapi", bytes)


async def openapi_json(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[_OPENAPI], content_type="application/json")


OPENAPI_ROUTE = Route(
    "GET",
    "/api/openapi.json",
    openapi_json,
    "openapi",
    "This API's OpenAPI 3.1 document",
    "Operations",
    responses=(Response(200, "the document", {"application/json": {"type": "object"}}),),
    auth=False,
)


def build_openapi(routes: Sequence[Route] = (*API_ROUTES, OPENAPI_ROUTE)) -> dict[str, Any]:
    return openapi_document(
        routes, title="Budstikke API", version=API_VERSION, description=DESCRIPTION, schemas=SCHEMAS
    )


def setup_api(
    app: web.Application,
    *,
    settings: Settings,
    service: Any,
    webhooks: Any,
    metrics: Metrics | None = None,
    readiness_checks: Sequence[HealthCheck] = (),
) -> None:
    """Register the routes and what their handlers need on ``app`` (built with
    :data:`MIDDLEWARES`)."""
    routes = (*API_ROUTES, OPENAPI_ROUTE)
    app[SETTINGS] = settings
    app[SERVICE] = service
    app[WEBHOOKS] = webhooks
    app[AUTHENTICATE] = service.authenticate
    app[READINESS] = tuple(readiness_checks)
    if metrics is not None:
        app[METRICS] = metrics
    app[_OPENAPI] = json.dumps(build_openapi(routes), separators=(",", ":")).encode()
    add_routes(app, routes)
