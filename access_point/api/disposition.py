"""``Content-Disposition`` as RFC 6266 defines it, read tolerantly and checked strictly.

Case systems name an uploaded file in ``Content-Disposition``: ``attachment; filename="a.pdf"``,
``attachment; filename*=UTF-8''%C3%A5rsrapport.pdf`` (RFC 8187 extended value, which wins over
``filename``), and - as the integrasjonspunkt documentation shows - unquoted values with spaces
(``attachment; name=Before The Law; filename=before_the_law.txt``). All three are accepted.

The file name then becomes an entry name inside the document package, so it is refused (never
silently rewritten) when it is empty, is ``.`` or ``..``, holds a path separator or a control
character, or is longer than 255 characters.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

from sbdh.errors import InvalidInput

__all__ = ["ContentDisposition", "parse_content_disposition", "upload_filename"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_EXT_VALUE = re.compile(
    r"(?P<charset>[A-Za-z0-9!#$%&+\-^_`{}~]+)'(?P<lang>[A-Za-z0-9\-]*)'(?P<value>.*)"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_FILENAME = 255


@dataclass(frozen=True)
class ContentDisposition:
    """A parsed header: the disposition type (lower case) and its parameters (names lower case;
    extended ``name*`` values already decoded and stored under ``name*``)."""

    type: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str | None:
        """``filename*`` when present (RFC 6266 section 4.3), else ``filename``."""
        return self.params.get("filename*") or self.params.get("filename")

    @property
    def name(self) -> str | None:
        return self.params.get("name*") or self.params.get("name")


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message, rule="content-disposition")


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The quoted-string beginning at ``text[start] == '"'``, unescaped, and the index after it."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise _bad("Content-Disposition has an unterminated quoted string")


def _ext_value(raw: str) -> str:
    match = _EXT_VALUE.fullmatch(raw.strip())
    if match is None:
        raise _bad(f"extended parameter value {raw!r} is not charset'language'value")
    charset = match["charset"].lower()
    if charset not in ("utf-8", "iso-8859-1"):
        raise _bad(f"extended parameter charset {match['charset']!r} is not UTF-8 or ISO-8859-1")
    try:
        return urllib.parse.unquote(match["value"], encoding=charset, errors="strict")
    except UnicodeDecodeError as exc:
        raise _bad(f"extended parameter value is not valid {charset}") from exc


def parse_content_disposition(header: str) -> ContentDisposition:
    """Parse ``header``; raises :class:`InvalidInput` (rule ``content-disposition``)."""
    text = header.strip()
    kind, sep, rest = text.partition(";")
    kind = kind.strip().lower()
    if not _TOKEN.fullmatch(kind):
        raise _bad(f"Content-Disposition type {kind!r} is not a token")
    params: dict[str, str] = {}
    i = 0
    rest = rest if sep else ""
    while i < len(rest):
        while i < len(rest) and rest[i] in " \t;":
            i += 1
        if i >= len(rest):
            break
        eq = rest.find("=", i)
        if eq < 0:
            raise _bad(f"Content-Disposition parameter {rest[i:].strip()!r} has no value")
        name = rest[i:eq].strip().lower()
        if not _TOKEN.fullmatch(name):
            raise _bad(f"Content-Disposition parameter name {name!r} is not a token")
        j = eq + 1
        while j < len(rest) and rest[j] in " \t":
            j += 1
        if j < len(rest) and rest[j] == '"':
            value, i = _quoted(rest, j)
            end = rest.find(";", i)
            trailing = rest[i : end if end >= 0 else len(rest)].strip()
            if trailing:
                raise _bad(f"unexpected {trailing!r} after the quoted value of {name}")
            i = end + 1 if end >= 0 else len(rest)
        else:
            end = rest.find(";", j)
            value = rest[j : end if end >= 0 else len(rest)].strip()
            i = end + 1 if end >= 0 else len(rest)
        if name.endswith("*"):
            value = _ext_value(value)
        if name in params:
            raise _bad(f"Content-Disposition parameter {name} appears twice")
        params[name] = value
    return ContentDisposition(kind, params)


def check_filename(name: str) -> str:
    """``name`` when it is safe as a package entry name; else :class:`InvalidInput`."""
    if not name or name in (".", ".."):
        raise _bad("the file name is empty")
    if len(name) > MAX_FILENAME:
        raise _bad(f"the file name is longer than {MAX_FILENAME} characters")
    if "/" in name or "\\" in name:
        raise _bad(f"the file name {name!r} holds a path separator")
    if _CONTROL.search(name):
        raise _bad("the file name holds a control character")
    return name


def upload_filename(header: str | None) -> tuple[str, str | None]:
    """The (file name, ``name`` parameter) an upload's ``Content-Disposition`` gives."""
    if header is None or not header.strip():
        raise _bad("Content-Disposition is required and must name the file (filename=...)")
    disposition = parse_content_disposition(header)
    filename = disposition.filename
    if filename is None:
        raise _bad("Content-Disposition has no filename (or filename*) parameter")
    return check_filename(filename), disposition.name
