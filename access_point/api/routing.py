"""One route table for the router and the OpenAPI document, so the two cannot drift apart.

Each :class:`Route` names its method, path (aiohttp's ``{name}`` syntax is also OpenAPI's),
handler, summary, parameters, request body and responses. :func:`add_routes` puts the table on an
aiohttp router; :func:`openapi_document` turns the same table into OpenAPI 3.1.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

__all__ = [
    "OPEN_ROUTES",
    "Body",
    "Param",
    "Response",
    "Route",
    "add_routes",
    "openapi_document",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = Mapping[str, Any]

_PATH_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@dataclass(frozen=True)
class Param:
    name: str
    location: Literal["path", "query", "header"]
    description: str
    schema: Schema = field(default_factory=lambda: {"type": "string"})
    required: bool = False

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.location,
            "description": self.description,
            "required": self.required or self.location == "path",
            "schema": dict(self.schema),
        }


@dataclass(frozen=True)
class Body:
    """A request body: media type -> schema."""

    content: Mapping[str, Schema]
    description: str = ""
    required: bool = True


@dataclass(frozen=True)
class Response:
    status: int
    description: str
    content: Mapping[str, Schema] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    description: str = ""
    params: tuple[Param, ...] = ()
    body: Body | None = None
    responses: tuple[Response, ...] = ()
    #: False for the few routes open without a token (health, metrics, the OpenAPI document)
    auth: bool = True

    @property
    def aiohttp_path(self) -> str:
        return self.path

    @property
    def openapi_path(self) -> str:
        return _PATH_PARAM.sub(r"{\1}", self.path)


#: the registered routes that need no token; read by the auth middleware
OPEN_ROUTES = web.AppKey("open_routes", set[web.AbstractRoute])


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    """Register every route; the ones open without a token are remembered in ``OPEN_ROUTES``."""
    open_routes = app.setdefault(OPEN_ROUTES, set())
    for route in routes:
        registered = app.router.add_route(route.method, route.aiohttp_path, route.handler)
        if not route.auth:
            open_routes.add(registered)


_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_STANDARD_ERRORS = {
    400: "Bad input: the problem details say which field is wrong and why",
    401: "No token, or an unknown one",
    403: "The token may not act for this organisation",
    404: "No such resource (or not visible to this client)",
    409: "Conflict with the resource's state or content",
    413: "The body is larger than this endpoint accepts",
    500: "The access point failed; the error is logged",
}


def _operation(route: Route, components: Mapping[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
    }
    if route.description:
        op["description"] = route.description
    path_names = _PATH_PARAM.findall(route.path)
    declared = {p.name for p in route.params if p.location == "path"}
    missing = [name for name in path_names if name not in declared]
    if missing:
        raise ValueError(f"{route.method} {route.path}: path parameters {missing} not declared")
    if route.params:
        op["parameters"] = [p.openapi() for p in route.params]
    if route.body is not None:
        op["requestBody"] = {
            "required": route.body.required,
            "content": {media: {"schema": dict(s)} for media, s in route.body.content.items()},
        }
        if route.body.description:
            op["requestBody"]["description"] = route.body.description
    responses: dict[str, Any] = {}
    for response in route.responses:
        entry: dict[str, Any] = {"description": response.description}
        if response.content:
            entry["content"] = {media: {"schema": dict(s)} for media, s in response.content.items()}
        if response.headers:
            entry["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in response.headers.items()
            }
        responses[str(response.status)] = entry
    codes = [400, 404, 500] if route.auth else [500]
    if route.auth:
        codes += [401, 403]
    if route.method in ("POST", "PUT"):
        codes += [409, 413]
    for status in sorted(codes):
        responses.setdefault(
            str(status),
            {
                "description": _STANDARD_ERRORS[status],
                "content": {"application/problem+json": {"schema": _PROBLEM_REF}},
            },
        )
    op["responses"] = responses
    if not route.auth:
        op["security"] = []
    return op


def openapi_document(
    routes: Iterable[Route],
    *,
    title: str,
    version: str,
    description: str,
    schemas: Mapping[str, Any],
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``routes``; ``schemas`` become ``components.schemas``."""
    paths: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for route in routes:
        if route.operation_id in seen:
            raise ValueError(f"operationId {route.operation_id} is used twice")
        seen.add(route.operation_id)
        item = paths.setdefault(route.openapi_path, {})
        item[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": dict(schemas),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a per-client API token; see docs/api.md",
                }
            },
        },
        "security": [{"bearer": []}],
    }
