"""SOAP with Attachments: the multipart/related body of an AS4 message, read and written.

Reading is tolerant where real senders differ (a preamble before the first boundary, CRLF or
bare LF line ends, quoted or unquoted parameters, a ``start`` parameter naming the root part or
none) and strict where it matters (exactly one root part, unique Content-IDs, a closing
boundary, a known Content-Transfer-Encoding). Parts are :class:`~access_point.as4.streams.Window`
slices of the body, so a 200 MB attachment is never copied.

Writing follows what phase4, Oxalis and Domibus send: the SOAP part first
(``application/soap+xml; charset=UTF-8``, binary), then each attachment as
``application/octet-stream``, binary, with ``Content-ID: <uuid@domain>``.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from .errors import MimeInconsistency
from .spec import SOAP12_MIME
from .streams import ByteSource, Spool, Window

__all__ = [
    "ContentType",
    "MimePart",
    "MultipartBody",
    "ReceivedMime",
    "content_id_of_href",
    "parse_content_type",
    "read_mime",
]

_MAX_HEADER_BYTES = 16 * 1024
_MAX_PARTS = 64
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass(frozen=True)
class ContentType:
    """A parsed Content-Type: the lower-cased media type and its parameters (keys lower-cased)."""

    media_type: str
    params: Mapping[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        return self.params.get(name.lower())


_PARAM = re.compile(
    r"""\s*(?:;\s*)+([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;"]*?))\s*(?=;|$)"""
)
_BACKSLASH = re.compile(r"\\(.)")


def parse_content_type(value: str) -> ContentType:
    """Parse ``type/subtype; name=value; name="quoted \\" value"`` (RFC 2045, RFC 7231)."""
    text = value.strip()
    split = text.find(";")
    media = (text if split < 0 else text[:split]).strip().lower()
    if media.count("/") != 1 or not all(_TOKEN.fullmatch(p) for p in media.split("/")):
        raise MimeInconsistency(f"not a media type: {value[:80]!r}", rule="mime-content-type")
    params: dict[str, str] = {}
    at = len(text) if split < 0 else split
    while at < len(text):
        if not text[at:].strip(" \t;"):
            break
        match = _PARAM.match(text, at)
        if match is None:
            raise MimeInconsistency(
                f"malformed parameters in {value[:80]!r}", rule="mime-content-type"
            )
        name = match.group(1).lower()
        quoted = match.group(2)
        param = _BACKSLASH.sub(r"\1", quoted) if quoted is not None else match.group(3)
        params.setdefault(name, param)
        at = match.end()
    return ContentType(media, params)


def _strip_angle(value: str) -> str:
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    return value.strip()


def content_id_of_href(href: str) -> str | None:
    """The Content-ID a ``cid:`` URL names (RFC 2392: percent-decoded), or None."""
    if not href.lower().startswith("cid:"):
        return None
    return unquote(href[4:])


@dataclass(frozen=True)
class MimePart:
    headers: Mapping[str, str]
    content: Window

    @property
    def content_type(self) -> ContentType | None:
        value = self.headers.get("content-type")
        return parse_content_type(value) if value is not None else None

    @property
    def content_id(self) -> str | None:
        value = self.headers.get("content-id")
        return _strip_angle(value) if value is not None else None

    @property
    def transfer_encoding(self) -> str:
        return self.headers.get("content-transfer-encoding", "binary").strip().lower()

    def decoded(self) -> bytes:
        """The whole decoded content (for the small root part)."""
        raw = self.content.read()
        encoding = self.transfer_encoding
        if encoding in ("binary", "8bit", "7bit"):
            return raw
        if encoding == "base64":
            try:
                return base64.b64decode(b"".join(raw.split()), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise MimeInconsistency("part is not valid base64", rule="mime-encoding") from exc
        if encoding == "quoted-printable":
            return quopri.decodestring(raw)
        raise MimeInconsistency(
            f"Content-Transfer-Encoding {encoding!r} is not supported", rule="mime-encoding"
        )

    def iter_decoded(self, chunk_size: int) -> Iterator[bytes]:
        """The decoded content in chunks (binary and base64; what attachments use)."""
        encoding = self.transfer_encoding
        if encoding in ("binary", "8bit", "7bit"):
            yield from self.content.iter_chunks(chunk_size)
            return
        if encoding != "base64":
            raise MimeInconsistency(
                f"Content-Transfer-Encoding {encoding!r} is not supported for attachments",
                rule="mime-encoding",
            )
        pending = b""
        for chunk in self.content.iter_chunks(chunk_size):
            pending += b"".join(chunk.split())
            usable = len(pending) - len(pending) % 4
            if usable:
                try:
                    yield base64.b64decode(pending[:usable], validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise MimeInconsistency(
                        "attachment is not valid base64", rule="mime-encoding"
                    ) from exc
                pending = pending[usable:]
        if pending:
            raise MimeInconsistency("attachment base64 is truncated", rule="mime-encoding")


@dataclass(frozen=True)
class ReceivedMime:
    """The SOAP part's bytes and the attachments by Content-ID."""

    soap: bytes
    attachments: Mapping[str, MimePart]


def _parse_headers(block: bytes) -> dict[str, str]:
    text = block.decode("latin-1")
    headers: dict[str, str] = {}
    current: str | None = None
    for line in re.split(r"\r?\n", text):
        if not line:
            continue
        if line[0] in " \t" and current is not None:
            headers[current] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name.strip()):
            raise MimeInconsistency(f"malformed MIME header line {line[:60]!r}", rule="mime-header")
        current = name.strip().lower()
        if current in headers:
            if current in ("content-type", "content-id", "content-transfer-encoding"):
                raise MimeInconsistency(f"MIME header {name} repeated", rule="mime-header")
            headers[current] += ", " + value.strip()
        else:
            headers[current] = value.strip()
    return headers


def _split_parts(source: ByteSource, boundary: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each body part: after the boundary line, before the next one's EOL."""
    delimiter = b"--" + boundary.encode("latin-1")
    size = source.size
    parts: list[tuple[int, int]] = []
    open_at: int | None = None
    closed = False
    for at in source.find_all(delimiter):
        if at > 0 and source.read_at(at - 1, 1) != b"\n":
            continue  # not at the start of a line
        after = at + len(delimiter)
        tail = source.read_at(after, 2)
        is_close = tail == b"--"
        if not is_close:
            # transport padding, then the line end
            line = source.read_at(after, 256)
            stripped = line.lstrip(b" \t")
            if not (stripped.startswith(b"\r\n") or stripped.startswith(b"\n")):
                continue  # the boundary text inside a longer token
            eol = after + (len(line) - len(stripped))
            body_start = eol + (2 if stripped.startswith(b"\r\n") else 1)
        if open_at is not None:
            end = at - 1  # the LF
            if end > open_at and source.read_at(end - 1, 1) == b"\r":
                end -= 1
            parts.append((open_at, max(open_at, end)))
            if len(parts) > _MAX_PARTS:
                raise MimeInconsistency("too many MIME parts", rule="mime-structure")
        if is_close:
            closed = True
            break
        open_at = min(body_start, size)
    if not parts and open_at is None:
        raise MimeInconsistency(
            "no MIME boundary line found in the body: not a multipart message",
            rule="mime-structure",
        )
    if not closed:
        raise MimeInconsistency(
            "the multipart body has no closing boundary (truncated?)", rule="mime-structure"
        )
    return parts


def _part(source: ByteSource, start: int, end: int) -> MimePart:
    head = source.read_at(start, min(end - start, _MAX_HEADER_BYTES))
    crlf = head.find(b"\r\n\r\n")
    lf = head.find(b"\n\n")
    if head.startswith(b"\r\n"):
        header_end, body_start = 0, 2
    elif head.startswith(b"\n"):
        header_end, body_start = 0, 1
    elif crlf >= 0 and (lf < 0 or crlf < lf):
        header_end, body_start = crlf, crlf + 4
    elif lf >= 0:
        header_end, body_start = lf, lf + 2
    else:
        raise MimeInconsistency("a MIME part's headers do not end", rule="mime-header")
    headers = _parse_headers(head[:header_end])
    return MimePart(headers, Window(source, start + body_start, end))


def read_mime(source: ByteSource, content_type: str | None, *, max_soap_bytes: int) -> ReceivedMime:
    """Split an AS4 HTTP body into its SOAP part and attachments.

    A body of type ``application/soap+xml`` is the SOAP part alone. Raises
    :class:`MimeInconsistency` (EBMS:0007) for anything else that is not a well-formed
    ``multipart/related`` body with one SOAP root.
    """
    if not content_type:
        raise MimeInconsistency("the request has no Content-Type", rule="mime-content-type")
    ctype = parse_content_type(content_type)
    if source.size == 0:
        raise MimeInconsistency("the request body is empty", rule="mime-empty")
    if ctype.media_type == SOAP12_MIME:
        if source.size > max_soap_bytes:
            raise MimeInconsistency(
                f"SOAP message of {source.size} bytes exceeds {max_soap_bytes}", rule="mime-size"
            )
        return ReceivedMime(source.read_at(0, source.size), {})
    if ctype.media_type != "multipart/related":
        raise MimeInconsistency(
            f"Content-Type {ctype.media_type} is not multipart/related or application/soap+xml",
            rule="mime-content-type",
        )
    boundary = ctype.param("boundary")
    if not boundary or len(boundary) > 200:
        raise MimeInconsistency("multipart/related without a usable boundary", rule="mime-boundary")
    declared_type = ctype.param("type")
    if declared_type is not None and declared_type.strip().lower() != SOAP12_MIME:
        raise MimeInconsistency(
            f"multipart/related of type {declared_type!r}; AS4 uses {SOAP12_MIME}",
            rule="mime-content-type",
        )
    parts = [_part(source, start, end) for start, end in _split_parts(source, boundary)]
    if not parts:
        raise MimeInconsistency("the multipart body has no parts", rule="mime-structure")
    start = ctype.param("start")
    if start is not None:
        wanted = _strip_angle(start)
        roots = [p for p in parts if p.content_id == wanted]
        if len(roots) != 1:
            raise MimeInconsistency(
                f"the start parameter names {start!r}, which is not exactly one part",
                rule="mime-start",
            )
        root = roots[0]
    else:
        root = parts[0]
    root_type = root.content_type
    if root_type is None or root_type.media_type != SOAP12_MIME:
        raise MimeInconsistency(
            f"the root part is {root_type.media_type if root_type else 'untyped'}, "
            f"not {SOAP12_MIME}",
            rule="mime-root",
        )
    if root.content.size > max_soap_bytes:
        raise MimeInconsistency(
            f"SOAP part of {root.content.size} bytes exceeds {max_soap_bytes}", rule="mime-size"
        )
    attachments: dict[str, MimePart] = {}
    for part in parts:
        if part is root:
            continue
        cid = part.content_id
        if not cid:
            raise MimeInconsistency("an attachment has no Content-ID", rule="mime-content-id")
        if cid in attachments or cid == root.content_id:
            raise MimeInconsistency(f"Content-ID <{cid}> is used twice", rule="mime-content-id")
        attachments[cid] = part
    return ReceivedMime(root.decoded(), attachments)


def new_boundary() -> str:
    return f"----=_Part_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class _OutPart:
    headers: bytes
    content: bytes | Spool


class MultipartBody:
    """A multipart/related body ready to send: its Content-Type, length and bytes in chunks."""

    def __init__(
        self, soap: bytes, attachments: Sequence[tuple[str, bytes | Spool]], *, soap_id: str
    ) -> None:
        self.boundary = new_boundary()
        self.content_type = (
            f'multipart/related; boundary="{self.boundary}"; type="{SOAP12_MIME}"; '
            f'start="<{soap_id}>"'
        )
        parts = [
            _OutPart(
                (
                    f"Content-Type: {SOAP12_MIME}; charset=UTF-8\r\n"
                    "Content-Transfer-Encoding: binary\r\n"
                    f"Content-ID: <{soap_id}>\r\n\r\n"
                ).encode("ascii"),
                soap,
            )
        ]
        for cid, content in attachments:
            parts.append(
                _OutPart(
                    (
                        "Content-Type: application/octet-stream\r\n"
                        "Content-Transfer-Encoding: binary\r\n"
                        f"Content-ID: <{cid}>\r\n\r\n"
                    ).encode("ascii"),
                    content,
                )
            )
        self._parts = tuple(parts)
        self._delimiter = f"--{self.boundary}\r\n".encode("ascii")
        self._close = f"--{self.boundary}--\r\n".encode("ascii")

    def __len__(self) -> int:
        total = len(self._close)
        for part in self._parts:
            size = len(part.content) if isinstance(part.content, bytes) else part.content.size
            total += len(self._delimiter) + len(part.headers) + size + 2
        return total

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The body in order; small pieces are joined so writes stay large."""
        pending: list[bytes] = []
        pending_size = 0
        for part in self._parts:
            pending += [self._delimiter, part.headers]
            pending_size += len(self._delimiter) + len(part.headers)
            if isinstance(part.content, bytes):
                pending.append(part.content)
                pending_size += len(part.content)
            else:
                for chunk in part.content.iter_chunks(chunk_size):
                    if pending_size + len(chunk) > chunk_size and pending:
                        yield b"".join(pending)
                        pending, pending_size = [], 0
                    pending.append(chunk)
                    pending_size += len(chunk)
            pending.append(b"\r\n")
            pending_size += 2
        pending.append(self._close)
        yield b"".join(pending)

    def to_bytes(self) -> bytes:
        return b"".join(self.iter_chunks())

    def close(self) -> None:
        for part in self._parts:
            if isinstance(part.content, Spool):
                part.content.close()
