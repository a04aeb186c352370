"""SMP resource paths, both ways.

The REST binding of the Peppol SMP specification (and of OASIS BDXR SMP 1.0) names resources as

* ``/{participant scheme}::{participant value}`` — the service group, and
* ``/{participant scheme}::{participant value}/services/{doctype scheme}::{doctype value}`` —
  the service metadata,

each ``scheme::value`` percent-encoded as one path segment: everything but the RFC 3986
unreserved characters is escaped, so ``:`` becomes ``%3A``, ``#`` ``%23``, ``/`` ``%2F``,
``*`` ``%2A`` and ``@`` ``%40`` (as peppol-commons and phoss-smp do). OASIS SMP 2.0 puts
``/bdxr-smp-2`` in front.

Parsing takes the *raw* path (still percent-encoded): segments are split on ``/`` first and
decoded after, so an encoded ``/`` inside an identifier stays inside it. Unencoded
``scheme::value`` segments, which some SMPs publish, are read as well, and so are hrefs that were
percent-encoded twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from elma.errors import SmpPathError
from elma.model import DocumentTypeId, ParticipantId
from elma.spec import SMP2_PATH_PREFIX, SmpFormat

__all__ = [
    "SmpPath",
    "document_type_from_href",
    "parse_smp_path",
    "service_group_path",
    "service_metadata_path",
]

_SERVICES = "services"


def _encode(uri: str) -> str:
    return quote(uri, safe="")


def _prefix(smp_format: SmpFormat) -> str:
    return f"/{SMP2_PATH_PREFIX}" if smp_format is SmpFormat.SMP2 else ""


def service_group_path(participant: ParticipantId, smp_format: SmpFormat = SmpFormat.PEPPOL) -> str:
    """``/iso6523-actorid-upis%3A%3A0192%3A991825827`` (``/bdxr-smp-2/…`` for SMP 2.0)."""
    return f"{_prefix(smp_format)}/{_encode(participant.uri())}"


def service_metadata_path(
    participant: ParticipantId,
    document_type: DocumentTypeId,
    smp_format: SmpFormat = SmpFormat.PEPPOL,
) -> str:
    """``/{participant}/services/{document type}``, each part percent-encoded."""
    return (
        f"{service_group_path(participant, smp_format)}/{_SERVICES}/{_encode(document_type.uri())}"
    )


@dataclass(frozen=True)
class SmpPath:
    """What an SMP path names: a service group, or (with a document type) a service metadata."""

    participant: ParticipantId
    document_type: DocumentTypeId | None
    #: :attr:`SmpFormat.SMP2` when the path carried the ``/bdxr-smp-2`` prefix, else ``PEPPOL``
    #: (the Peppol and BDXR 1.0 paths cannot be told apart)
    format: SmpFormat


def _decode_segment(segment: str, path: str) -> str:
    try:
        text = unquote(segment, errors="strict")
    except UnicodeDecodeError as exc:
        raise SmpPathError(
            f"path segment {segment!r} of {path!r} is not valid percent-encoded UTF-8",
            rule="smp-path-encoding",
        ) from exc
    if "::" not in text and "%3a%3a" in text.lower():
        # encoded twice (seen in real service groups): one more round reveals the identifier
        return _decode_segment(text, path)
    return text


def _identifier(segment: str, path: str, kind: str) -> tuple[str | None, str]:
    text = _decode_segment(segment, path)
    scheme, sep, value = text.partition("::")
    if not sep:
        raise SmpPathError(
            f"{kind} {text!r} in {path!r} is not of the form scheme::value",
            rule="smp-path-identifier",
        )
    if not value or value != value.strip() or scheme != scheme.strip():
        raise SmpPathError(
            f"{kind} {text!r} in {path!r} has an empty value or surrounding whitespace",
            rule="smp-path-identifier",
        )
    return (scheme or None), value


def parse_smp_path(path: str) -> SmpPath:
    """Parse the raw (still percent-encoded) path of a request to an SMP.

    Accepts ``/{participant}``, ``/{participant}/services/{document type}`` and both with the
    SMP 2.0 ``/bdxr-smp-2`` prefix; a trailing ``/`` is tolerated. Anything else is an
    :class:`SmpPathError`.
    """
    segments = path.split("/")
    if len(segments) < 2 or segments[0] != "":
        raise SmpPathError(f"SMP path {path!r} must start with '/'", rule="smp-path-shape")
    segments = segments[1:]
    if len(segments) > 1 and segments[-1] == "":
        segments = segments[:-1]
    smp_format = SmpFormat.PEPPOL
    if segments and segments[0] == SMP2_PATH_PREFIX:
        smp_format = SmpFormat.SMP2
        segments = segments[1:]
    if len(segments) not in (1, 3) or (len(segments) == 3 and segments[1] != _SERVICES):
        raise SmpPathError(
            f"SMP path {path!r} is neither /{{participant}} nor "
            "/{participant}/services/{document type}",
            rule="smp-path-shape",
        )
    if not segments[0]:
        raise SmpPathError(f"SMP path {path!r} names no participant", rule="smp-path-shape")
    participant = ParticipantId(*_identifier(segments[0], path, "participant identifier"))
    document_type = None
    if len(segments) == 3:
        document_type = DocumentTypeId(*_identifier(segments[2], path, "document type identifier"))
    return SmpPath(participant, document_type, smp_format)


def document_type_from_href(href: str) -> DocumentTypeId | None:
    """The document type a service metadata reference points at, or ``None`` when the href
    does not end in ``/services/{scheme::value}``."""
    try:
        path = urlsplit(href).path
    except ValueError:
        return None
    segments = path.split("/")
    if len(segments) < 3 or segments[-2] != _SERVICES or not segments[-1]:
        return None
    try:
        return DocumentTypeId(*_identifier(segments[-1], href, "document type identifier"))
    except SmpPathError:
        return None
