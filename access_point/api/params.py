"""Reading path, query and header parameters, with errors that name the parameter.

Paging follows Spring Data as integrasjonspunkt exposes it: ``page`` (from 0), ``size``
(default 10) and ``sort=property[,asc|desc]`` (repeatable).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web

from sbdh.errors import InvalidInput

__all__ = [
    "InvalidParameter",
    "PageRequest",
    "page_body",
    "page_request",
    "query_bool",
    "query_datetime",
    "query_enum",
    "query_int",
    "query_str",
]

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
_SORT_PROPERTY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,40}")

E = TypeVar("E", bound=enum.Enum)


class InvalidParameter(InvalidInput):
    """A path, query or header parameter is wrong; ``field`` names it."""

    code = "invalid-parameter"

    def __init__(self, field: str, message: str, *, rule: str = "invalid-parameter") -> None:
        super().__init__(f"{field}: {message}", rule=rule)
        self.field = field


def query_str(request: web.Request, name: str, *, max_length: int = 200) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_length:
        raise InvalidParameter(name, f"longer than {max_length} characters")
    return value


def query_int(
    request: web.Request, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidParameter(name, f"must be a whole number, not {text[:40]!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise InvalidParameter(name, f"must be at least {minimum}{upper}")
    return value


def query_bool(request: web.Request, name: str) -> bool | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidParameter(name, "must be true or false")


def query_enum(request: web.Request, name: str, kind: type[E]) -> list[E]:
    """A comma-separated list of enum values (``status=FEIL,LEVETID_UTLOPT``); [] when absent."""
    values: list[E] = []
    for text in request.query.getall(name, []):
        for raw in text.split(","):
            part = raw.strip()
            if not part:
                continue
            try:
                values.append(kind[part.upper()])
            except KeyError:
                allowed = ", ".join(m.name for m in kind)
                raise InvalidParameter(
                    name, f"{part[:40]!r} is not one of {allowed}", rule="unknown-value"
                ) from None
    return values


def query_datetime(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(name, "must be an ISO 8601 date and time") from None
    if value.tzinfo is None:
        raise InvalidParameter(name, "must carry a time zone (for example 2024-05-01T12:00:00Z)")
    return value


@dataclass(frozen=True)
class PageRequest:
    page: int = 0
    size: int = DEFAULT_PAGE_SIZE
    #: (property, descending) pairs, in the order given
    sort: tuple[tuple[str, bool], ...] = ()

    @property
    def offset(self) -> int:
        return self.page * self.size


def page_request(request: web.Request, *, sortable: frozenset[str] = frozenset()) -> PageRequest:
    page = query_int(request, "page", 0, minimum=0, maximum=1_000_000)
    size = query_int(request, "size", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
    sort: list[tuple[str, bool]] = []
    for text in request.query.getall("sort", []):
        prop, _, direction = text.partition(",")
        prop = prop.strip()
        direction = direction.strip().lower() or "asc"
        if not _SORT_PROPERTY.fullmatch(prop) or (sortable and prop not in sortable):
            allowed = ", ".join(sorted(sortable)) if sortable else "a property name"
            raise InvalidParameter("sort", f"cannot sort by {prop[:40]!r} (allowed: {allowed})")
        if direction not in ("asc", "desc"):
            raise InvalidParameter("sort", f"direction must be asc or desc, not {direction!r}")
        sort.append((prop, direction == "desc"))
    return PageRequest(page, size, tuple(sort))


def page_body(content: list[Any], total: int, request: PageRequest) -> dict[str, Any]:
    """Spring Data's ``Page`` JSON, as integrasjonspunkt answers a search."""
    sorted_ = bool(request.sort)
    sort = {"sorted": sorted_, "unsorted": not sorted_, "empty": not sorted_}
    pages = (total + request.size - 1) // request.size if request.size else 0
    return {
        "content": content,
        "pageable": {
            "sort": sort,
            "offset": request.offset,
            "pageNumber": request.page,
            "pageSize": request.size,
            "paged": True,
            "unpaged": False,
        },
        "last": request.page >= pages - 1,
        "totalElements": total,
        "totalPages": pages,
        "size": request.size,
        "number": request.page,
        "sort": sort,
        "first": request.page == 0,
        "numberOfElements": len(content),
        "empty": not content,
    }
