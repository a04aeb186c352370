"""The one hardened XML parser for every untrusted byte that Budstikke reads.

No DTD of any kind (internal subset, external DTD, entity declarations), no entity expansion,
no network or file access, and limits on size and depth. What it refuses it refuses before the
tree is built where it can, and with an :class:`~sbdh.errors.XmlSecurityError` that names the
check (``xml-dtd``, ``xml-size``, ``xml-depth``); input that is simply not XML gets an
:class:`~sbdh.errors.InvalidInput` with rule ``xml-well-formed``.

Whitespace and comments are kept so that signatures over the received bytes still verify.

Documents too large to hold (an SBD of hundreds of MB) go through :func:`parse_xml_stream`
instead: the same parser options, fed in chunks, reporting start, end and text to a
:class:`StreamTarget` and building no tree, so memory stays flat however long the document or
any one text node in it. It refuses the same things (a DOCTYPE is refused the moment it is
seen) and checks the document is well-formed to its last byte, with limits on size, depth and
the number of elements (:class:`StreamLimits`).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lxml import etree

from sbdh.errors import InvalidInput, XmlSecurityError

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_STREAM_LIMITS",
    "StreamLimits",
    "StreamTarget",
    "StreamedXml",
    "XmlLimits",
    "parse_xml",
    "parse_xml_file",
    "parse_xml_stream",
]


@dataclass(frozen=True)
class XmlLimits:
    """Limits for one parse. The defaults suit envelopes, SMP answers and receipts."""

    #: largest document accepted, in bytes
    max_bytes: int = 64 * 1024 * 1024
    #: deepest element nesting accepted (the root is depth 1)
    max_depth: int = 100

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_depth <= 0:
            raise ValueError("XML limits must be positive")
        if self.max_depth > 250:
            # libxml2 stops at 256 levels without XML_PARSE_HUGE, which we never set
            raise ValueError("max_depth above 250 is not supported")


DEFAULT_LIMITS = XmlLimits()

# Markers of a document type declaration in the encodings XML allows without a declaration.
_DTD_MARKERS = (
    b"<!DOCTYPE",
    b"<!ENTITY",
    "<!DOCTYPE".encode("utf-16-le"),
    "<!DOCTYPE".encode("utf-16-be"),
)


class _RefuseAll(etree.Resolver):
    """Belt and braces: should libxml2 ever try to fetch something, refuse it."""

    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        raise XmlSecurityError(
            f"external resource {system_url!r} refused: documents may not load anything",
            rule="xml-external",
        )


_local = threading.local()


def _parser() -> etree.XMLParser:
    # lxml parser objects must not be shared between threads
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            remove_blank_text=False,
            remove_comments=False,
            collect_ids=False,
        )
        parser.resolvers.add(_RefuseAll())
        _local.parser = parser
    return parser


def parse_xml(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted ``data`` and return the root element.

    Raises :class:`XmlSecurityError` for a DTD, an entity declaration or reference, input over
    ``limits.max_bytes`` or nesting deeper than ``limits.max_depth``, and :class:`InvalidInput`
    for input that is not well-formed XML.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"parse_xml takes bytes, not {type(data).__name__}")
    size = len(data)
    if size > limits.max_bytes:
        raise XmlSecurityError(
            f"document is {size} bytes; the limit is {limits.max_bytes}", rule="xml-size"
        )
    raw = bytes(data)
    if any(marker in raw for marker in _DTD_MARKERS):
        raise XmlSecurityError(
            "document type declarations (DTD, ENTITY) are not allowed", rule="xml-dtd"
        )
    try:
        root = etree.fromstring(raw, parser=_parser())
    except XmlSecurityError:
        raise
    except etree.XMLSyntaxError as exc:
        text = str(exc)
        if "depth" in text.lower():
            raise XmlSecurityError(
                f"elements nested deeper than {limits.max_depth} levels", rule="xml-depth"
            ) from exc
        if "entity" in text.lower():
            raise XmlSecurityError(
                f"entity references are not allowed: {text}", rule="xml-entity"
            ) from exc
        raise InvalidInput(f"not well-formed XML: {text}", rule="xml-well-formed") from exc
    except ValueError as exc:  # e.g. an encoding declaration lxml cannot honour
        raise InvalidInput(f"not well-formed XML: {exc}", rule="xml-well-formed") from exc
    if root is None:
        raise InvalidInput("document is empty", rule="xml-well-formed")
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        # reached only for a DTD in an encoding the byte scan above does not know
        raise XmlSecurityError("document type declarations are not allowed", rule="xml-dtd")
    _check_no_entities(root)
    _check_depth(root, limits.max_depth)
    return root


def parse_xml_file(
    path: str | os.PathLike[str], limits: XmlLimits = DEFAULT_LIMITS
) -> etree._Element:
    """Parse an untrusted file, refusing it by its size before reading it."""
    size = os.stat(path).st_size
    if size > limits.max_bytes:
        raise XmlSecurityError(
            f"document is {size} bytes; the limit is {limits.max_bytes}", rule="xml-size"
        )
    with open(path, "rb") as fh:
        return parse_xml(fh.read(), limits)


def _check_no_entities(root: etree._Element) -> None:
    # Without a DTD no entity can be declared, so libxml2 already rejects references to
    # undeclared ones; this guards the invariant should that ever change.
    for node in root.iter(etree.Entity):
        raise XmlSecurityError(f"entity reference {node.text} is not allowed", rule="xml-entity")


def _check_depth(root: etree._Element, max_depth: int) -> None:
    # An XPath that matches an element at depth max_depth + 1 runs in C and stops early.
    probe = "boolean(/" + "*/" * max_depth + "*)"
    if root.xpath(probe):
        raise XmlSecurityError(f"elements nested deeper than {max_depth} levels", rule="xml-depth")


# --------------------------------------------------------------------------- streamed


@dataclass(frozen=True)
class StreamLimits:
    """Limits for one streamed parse (:func:`parse_xml_stream`)."""

    #: largest document accepted, in bytes
    max_bytes: int = 1 << 30
    #: deepest element nesting accepted (the root is depth 1)
    max_depth: int = 100
    #: most elements accepted in the whole document (each costs a callback: a CPU bound)
    max_elements: int = 20_000_000

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_depth <= 0 or self.max_elements <= 0:
            raise ValueError("XML limits must be positive")


DEFAULT_STREAM_LIMITS = StreamLimits()


class StreamTarget(Protocol):
    """What a streamed parse reports: Clark-notation tags, attributes and the namespace
    declarations made on each element (``None`` for the default namespace)."""

    def start(self, tag: str, attrib: Mapping[str, str], nsmap: Mapping[str | None, str]) -> None:
        """An element starts."""

    def end(self, tag: str) -> None:
        """An element ends."""

    def data(self, text: str) -> None:
        """Character data, in pieces of any size (one text node may come in many)."""


@dataclass(frozen=True)
class StreamedXml:
    """What a streamed parse saw of the bytes themselves."""

    size: int
    sha256: str


class _Guard:
    """The lxml parser target around a :class:`StreamTarget`: refuses a DOCTYPE, counts depth
    and elements against the limits."""

    def __init__(self, target: StreamTarget, limits: StreamLimits) -> None:
        self._target = target
        self._limits = limits
        self.depth = 0
        self.elements = 0

    def start(self, tag: str, attrib: Mapping[str, str], nsmap: Mapping[str, str]) -> None:
        self.depth += 1
        self.elements += 1
        if self.depth > self._limits.max_depth:
            raise XmlSecurityError(
                f"elements nested deeper than {self._limits.max_depth} levels", rule="xml-depth"
            )
        if self.elements > self._limits.max_elements:
            raise XmlSecurityError(
                f"the document has more than {self._limits.max_elements} elements",
                rule="xml-elements",
            )
        # lxml names the default namespace "" here; trees and TreeBuilder call it None
        declared = {(prefix or None): uri for prefix, uri in nsmap.items()}
        self._target.start(tag, attrib, declared)

    def end(self, tag: str) -> None:
        self.depth -= 1
        self._target.end(tag)

    def data(self, text: str) -> None:
        self._target.data(text)

    def doctype(self, name: str | None, public_id: str | None, system_url: str | None) -> None:
        raise XmlSecurityError(
            "document type declarations (DTD, ENTITY) are not allowed", rule="xml-dtd"
        )

    def close(self) -> None:
        return None


def _stream_parser(guard: _Guard) -> etree.XMLParser:
    # the stubs know the target's two-argument start only, not the one that takes the
    # namespace declarations
    parser: etree.XMLParser = etree.XMLParser(  # type: ignore[call-overload]
        target=guard,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        # a parser target gets long text nodes in pieces, so none is ever held whole: the
        # 10 MB text node limit of huge_tree=False never applies to them, and names and
        # attribute values keep libxml2's default limits
        huge_tree=False,
        collect_ids=False,
    )
    parser.resolvers.add(_RefuseAll())
    return parser


def _not_well_formed(exc: Exception) -> InvalidInput:
    text = str(exc)
    if isinstance(exc, etree.XMLSyntaxError) and "entity" in text.lower():
        return XmlSecurityError(f"entity references are not allowed: {text}", rule="xml-entity")
    return InvalidInput(f"not well-formed XML: {text}", rule="xml-well-formed")


def _check_log(parser: etree.XMLParser) -> None:
    # libxml2 reports some well-formedness errors without stopping (an undeclared namespace
    # prefix): parse_xml raises for them, so the streamed parse does too
    for entry in parser.feed_error_log:
        if entry.level >= etree.ErrorLevels.ERROR:
            raise InvalidInput(
                f"not well-formed XML: {entry.message}, line {entry.line}, column {entry.column}",
                rule="xml-well-formed",
            )


def _feed(parser: etree.XMLParser, chunk: bytes | None) -> None:
    """One chunk into the parser (None: the end of the document), lxml's errors translated."""
    try:
        if chunk is None:
            parser.close()
        else:
            parser.feed(chunk)
    # ValueError: e.g. an encoding declaration lxml cannot honour
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise _not_well_formed(exc) from exc
    _check_log(parser)


def parse_xml_stream(
    chunks: Iterable[bytes],
    target: StreamTarget,
    limits: StreamLimits = DEFAULT_STREAM_LIMITS,
) -> StreamedXml:
    """Parse untrusted XML arriving as ``chunks``, reporting it to ``target``; no tree is built.

    The whole document is read and must be well-formed to its end. Raises
    :class:`XmlSecurityError` for a DTD or entity, more than ``limits.max_bytes`` bytes, nesting
    deeper than ``limits.max_depth`` or more than ``limits.max_elements`` elements, and
    :class:`InvalidInput` for input that is not well-formed XML; whatever ``target`` raises
    goes through as it is (the parse stops there).
    """
    parser = _stream_parser(_Guard(target, limits))
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        if not chunk:
            continue
        size += len(chunk)
        if size > limits.max_bytes:
            raise XmlSecurityError(
                f"document is larger than the limit of {limits.max_bytes} bytes",
                rule="xml-size",
            )
        digest.update(chunk)
        _feed(parser, bytes(chunk))
    if size == 0:
        raise InvalidInput("document is empty", rule="xml-well-formed")
    _feed(parser, None)
    return StreamedXml(size, digest.hexdigest())
