"""API tokens: ``Authorization: Bearer <token>`` → the client bound to its organisations.

The token is checked by the message service (``authenticate(token)``), which keeps only its
SHA-256 and caches the answer for a few seconds. The client it returns is put on the request
(``request[CLIENT]``) and passed to every service call: per-client isolation is the service's
job, this layer only makes sure no request reaches a handler without a client.

Answers follow RFC 6750: no credentials → 401 with ``WWW-Authenticate: Bearer realm=...``;
a malformed or unknown token → 401 with ``error="invalid_token"``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from access_point.api.routing import OPEN_ROUTES
from sbdh.errors import Unauthorized

__all__ = ["AUTHENTICATE", "CLIENT", "auth_middleware", "bearer_token"]

#: the authenticated client of a request (whatever the service's ``authenticate`` returns)
CLIENT: web.RequestKey[Any] = web.RequestKey("client")

Authenticate = Callable[[str], Awaitable[Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MissingCredentials(Unauthorized):
    """No Authorization header at all (RFC 6750: the challenge carries no error code)."""

    oauth_error = ""


def bearer_token(header: str | None) -> str:
    """The token in an ``Authorization`` header value; :class:`Unauthorized` otherwise."""
    if not header:
        raise MissingCredentials("an API token is required: Authorization: Bearer <token>")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized(f"the {scheme} scheme is not accepted here; use Bearer")
    token = token.strip()
    if not token or len(token) > 512 or not token.isascii() or " " in token:
        raise Unauthorized("the bearer token is malformed")
    return token


#: the service's ``authenticate(token) -> client`` (raises Unauthorized for unknown tokens)
AUTHENTICATE: web.AppKey[Authenticate] = web.AppKey("authenticate")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require a valid token on every route except the declared open ones."""
    route = request.match_info.route
    if route in request.app.get(OPEN_ROUTES, ()) or request.match_info.http_exception:
        return await handler(request)
    token = bearer_token(request.headers.get("Authorization"))
    client = await request.app[AUTHENTICATE](token)
    if client is None:
        raise Unauthorized("unknown or disabled API token")
    request[CLIENT] = client
    return await handler(request)
