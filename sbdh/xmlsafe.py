"""The one hardened XML parser for every untrusted byte that Budstikke reads.

No DTD of any kind (internal subset, external DTD, entity declarations), no entity expansion,
no network or file access, and limits on size and depth. What it refuses it refuses before the
tree is built where it can, and with an :class:`~sbdh.errors.XmlSecurityError` that names the
check (``xml-dtd``, ``xml-size``, ``xml-depth``); input that is simply not XML gets an
:class:`~sbdh.errors.InvalidInput` with rule ``xml-well-formed``.

Whitespace and comments are kept so that signatures over the received bytes still verify.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from lxml import etree

from sbdh.errors import InvalidInput, XmlSecurityError

__all__ = ["DEFAULT_LIMITS", "XmlLimits", "parse_xml", "parse_xml_file"]


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
