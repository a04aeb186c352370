"""Errors on the API as RFC 7807 problem details, saying which field is wrong and why.

::

    HTTP/1.1 400 Bad Request
    Content-Type: application/problem+json

    {"type": "urn:budstikke:problem:invalid-envelope", "title": "Invalid envelope",
     "status": 400, "detail": "...", "instance": "/api/messages/out", "code": "invalid-envelope",
     "errors": [{"field": "standardBusinessDocumentHeader.sender[0]",
                 "rule": "json-structure", "message": "identifier is required"}]}

Every :class:`~sbdh.errors.BusError` carries its HTTP status and a short ``code``; that is all
this module needs. ``errors`` lists each :class:`~sbdh.errors.Violation` of an
:class:`~sbdh.errors.EnvelopeError` (or the one rule of any other error), with ``field`` the
dotted path into the request body (or the name of the header, path or query parameter) when it
is known. aiohttp's own errors (unknown path, wrong method, body too large) get the same shape.
Nothing else that escapes a handler is described: the client sees a 500 problem without a
stack trace, and the log gets the trace.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sbdh.errors import BusError, EnvelopeError, Unauthorized

__all__ = [
    "PROBLEM_JSON",
    "FieldError",
    "problem_from_error",
    "problem_middleware",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"
#: request keys a handler sets to help name fields: where the SBD sits in the body, and
#: renames of the service's field names (``{"mimeType": "Content-Type"}``)
BODY_PREFIX = web.RequestKey("body_prefix", str)
FIELD_ALIASES: web.RequestKey[dict[str, str]] = web.RequestKey("field_aliases")
TYPE_PREFIX = "urn:budstikke:problem:"

log = logging.getLogger("budstikke.api")

#: titles by error code; an unknown code gets the HTTP reason phrase
_TITLES = {
    "invalid-input": "Invalid input",
    "invalid-envelope": "Invalid envelope",
    "invalid-identifier": "Invalid identifier",
    "xml-refused": "XML refused",
    "payload-too-large": "Payload too large",
    "unauthorized": "Unauthorized",
    "forbidden": "Forbidden",
    "not-found": "Not found",
    "no-route": "No route to the receiver",
    "conflict": "Conflict",
    "transient-delivery-failure": "Try again later",
    "permanent-delivery-failure": "Delivery failed",
    "configuration-error": "Access point misconfigured",
    "method-not-allowed": "Method not allowed",
    "internal-error": "Internal error",
}

_SBDH = "standardBusinessDocumentHeader"
_IDENT = f"{_SBDH}.documentIdentification"
_SCOPE = f"{_SBDH}.businessScope.scope"
#: envelope rules (sbdh.rules) and the header field each is about, relative to the SBD body
_RULE_FIELDS = {
    "no-sbdh": _SBDH,
    "sbdh-root": _SBDH,
    "invalid-header-version": f"{_SBDH}.headerVersion",
    "too-few-senders": f"{_SBDH}.sender",
    "too-many-senders": f"{_SBDH}.sender",
    "too-few-receivers": f"{_SBDH}.receiver",
    "too-many-receivers": f"{_SBDH}.receiver",
    "invalid-sender-authority": f"{_SBDH}.sender[0].identifier.authority",
    "invalid-sender-value": f"{_SBDH}.sender[0].identifier.value",
    "invalid-receiver-authority": f"{_SBDH}.receiver[0].identifier.authority",
    "invalid-receiver-value": f"{_SBDH}.receiver[0].identifier.value",
    "invalid-standard": f"{_IDENT}.standard",
    "invalid-type-version": f"{_IDENT}.typeVersion",
    "invalid-instance-identifier": f"{_IDENT}.instanceIdentifier",
    "invalid-type": f"{_IDENT}.type",
    "invalid-creation-date-and-time": f"{_IDENT}.creationDateAndTime",
    "no-business-scope": f"{_SBDH}.businessScope",
    "too-few-scopes": _SCOPE,
    "duplicate-scope": _SCOPE,
    "no-conversation-id": _SCOPE,
    "no-document-type-identifier": _SCOPE,
    "invalid-document-type-identifier": _SCOPE,
    "no-process-identifier": _SCOPE,
    "invalid-process-identifier": _SCOPE,
    "no-country-c1": _SCOPE,
    "invalid-country-c1": _SCOPE,
    "invalid-expected-response-date-time": (
        f"{_SCOPE}[ConversationId].scopeInformation[0].expectedResponseDateTime"
    ),
}

# "$/a/b/0: message" - the path prefix sbdh.jsonform puts on a violation
_PATH_PREFIX = re.compile(r"^\$(?P<path>(?:/[^:\s]*)?): (?P<message>.*)$", re.DOTALL)
# a rule that is a field name (the message service's convention), not a kebab-case rule id
_FIELD_RULE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:(?:\.|\[)[A-Za-z0-9\]\[.]*)?$")


@dataclass(frozen=True)
class FieldError:
    """One entry of ``errors``: which field, which rule, what is wrong.

    ``field`` is a path into the request body in the dotted form case systems know from
    integrasjonspunkt's validation errors (``standardBusinessDocumentHeader.sender[0]
    .identifier.value``), or the name of the header, path or query parameter.
    """

    field: str | None
    rule: str | None
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


def dotted(pointer: str) -> str:
    """``/a/b/0/c`` → ``a.b[0].c``."""
    out = ""
    for part in pointer.strip("/").split("/"):
        if not part:
            continue
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _body_field(path: str, prefix: str) -> str:
    return f"{prefix}.{path}" if prefix and path else prefix or path


def field_errors(
    exc: BusError, *, body_prefix: str = "", aliases: Mapping[str, str] | None = None
) -> list[FieldError]:
    """The ``errors`` entries of ``exc``: each violation, else the error's own field and rule.

    ``body_prefix`` is where the SBD sits in the request body (``standardBusinessDocument``
    for the wrapped form); ``aliases`` renames fields the service names for a handler
    (``mimeType`` is the ``Content-Type`` header of an upload).
    """
    aliases = aliases or {}
    if isinstance(exc, EnvelopeError):
        errors = []
        for violation in exc.violations:
            match = _PATH_PREFIX.match(violation.message)
            if match is not None:
                field: str | None = dotted(match["path"])
                message = match["message"]
            else:
                known = _RULE_FIELDS.get(violation.rule)
                field = _body_field(known, body_prefix) if known is not None else None
                message = violation.message
            errors.append(FieldError(field, violation.rule, message))
        return errors
    explicit = getattr(exc, "field", None)
    if explicit is not None:
        return [FieldError(aliases.get(explicit, explicit), exc.rule or exc.code, exc.message)]
    rule = exc.rule
    if rule is None:
        return []
    message = exc.message
    if rule in _RULE_FIELDS:
        return [FieldError(_body_field(_RULE_FIELDS[rule], body_prefix), rule, message)]
    if _FIELD_RULE.match(rule):
        # the service names the field as the rule and starts the message with it
        if message.startswith(rule + ": "):
            message = message[len(rule) + 2 :]
        if rule in aliases:
            field = aliases[rule]
        elif rule.startswith(_SBDH):
            field = _body_field(rule, body_prefix)
        else:
            field = rule
        return [FieldError(field, exc.code, message)]
    if rule.startswith("$"):
        return [FieldError(dotted(rule[1:]), exc.code, message)]
    return [FieldError(None, rule, message)]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def problem_response(
    status: int,
    *,
    code: str,
    detail: str,
    instance: str,
    errors: Iterable[FieldError] = (),
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An ``application/problem+json`` response."""
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title or _TITLES.get(code) or web.Response(status=status).reason,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
    }
    listed = [e.as_dict() for e in errors]
    if listed:
        body["errors"] = listed
    return web.Response(
        status=status,
        text=_dumps(body),
        content_type=PROBLEM_JSON,
        headers=headers,
    )


def www_authenticate(error: str | None = None, description: str | None = None) -> str:
    """The ``WWW-Authenticate`` challenge (RFC 6750 section 3)."""
    value = 'Bearer realm="budstikke"'
    if error:
        value += f', error="{error}"'
    if description:
        value += ', error_description="' + description.replace('"', "'") + '"'
    return value


def problem_from_error(exc: BusError, request: web.Request) -> web.Response:
    """The problem details for a :class:`BusError` raised while answering ``request``."""
    headers: dict[str, str] | None = None
    if isinstance(exc, Unauthorized):
        error = getattr(exc, "oauth_error", "invalid_token")
        headers = {"WWW-Authenticate": www_authenticate(error, exc.message if error else None)}
    return problem_response(
        exc.http_status,
        code=exc.code,
        detail=exc.message,
        instance=request.path,
        errors=field_errors(
            exc, body_prefix=request.get(BODY_PREFIX, ""), aliases=request.get(FIELD_ALIASES)
        ),
        headers=headers,
    )


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> web.Response:
    status = exc.status
    code = {
        404: "not-found",
        405: "method-not-allowed",
        413: "payload-too-large",
    }.get(status, "invalid-input" if 400 <= status < 500 else "internal-error")
    detail = exc.text or exc.reason
    if status == 404:
        detail = f"no resource at {request.path}"
    elif status == 405 and isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        detail = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
    elif status == 413:
        detail = "the request body is larger than this endpoint accepts"
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
    return problem_response(
        status, code=code, detail=detail, instance=request.path, headers=headers or None
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as problem details; no stack trace ever reaches the client."""
    try:
        return await handler(request)
    except BusError as exc:
        if exc.http_status >= 500:
            log.error("%s %s failed: %s", request.method, request.path, exc)
        return problem_from_error(exc, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc, request)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return problem_response(
            500,
            code="internal-error",
            detail="the access point could not answer this request; the error is logged",
            instance=request.path,
        )
