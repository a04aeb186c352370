"""What every handler uses: the app's keys, JSON answers, the client of the request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from access_point.api.auth import CLIENT
from access_point.api.params import PageRequest, page_body
from access_point.settings import Settings

__all__ = [
    "SERVICE",
    "SETTINGS",
    "WEBHOOKS",
    "client_of",
    "dumps",
    "json_response",
    "page_response",
]

SERVICE: web.AppKey[Any] = web.AppKey("service", object)
WEBHOOKS: web.AppKey[Any] = web.AppKey("webhooks", object)
SETTINGS = web.AppKey("settings", Settings)

JSON = "application/json"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_default)


def _default(value: Any) -> Any:
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=dumps(body), status=status, content_type=JSON, charset="utf-8", headers=headers
    )


def as_json(value: Any) -> Any:
    to_json = getattr(value, "to_json", None)
    return to_json() if callable(to_json) else value


def page_response(result: Any, page: PageRequest) -> web.Response:
    """A search result as Spring's ``Page``: the service answers ``(items, total)`` or a page
    that knows its own JSON."""
    if isinstance(result, tuple):
        items, total = result
        return json_response(page_body([as_json(i) for i in items], int(total), page))
    return json_response(as_json(result))


def client_of(request: web.Request) -> Any:
    return request[CLIENT]


def service_of(request: web.Request) -> Any:
    return request.app[SERVICE]


def empty_ok() -> web.Response:
    """integrasjonspunkt's ``void`` answers: 200 with no body."""
    return web.Response(status=200)
