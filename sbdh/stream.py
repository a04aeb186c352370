"""Reading an SBD too large to hold in memory: the header modelled, the rest only walked.

:func:`read_sbd_stream` feeds the document in chunks through the hardened streamed parser
(:func:`sbdh.xmlsafe.parse_xml_stream`: no DTD, no entities, no network, limits on size, depth
and element count) and builds a *skeleton* as it goes: the root, the whole
``StandardBusinessDocumentHeader``, and each element after the header as an empty element of
the same name. Nothing inside the business message is kept, so memory stays flat whatever its
size, and the whole document is still checked to be well-formed to its last byte. The skeleton
is then read by :func:`sbdh.xmlform.read_sbd`, the same walk the whole-document path uses, so
the header is modelled and its structure judged exactly alike; the business message becomes a
:class:`~sbdh.model.DetachedPayload` (its root element's name, the SBD's size and SHA-256).

:func:`check_sbd_stream` adds the envelope rules of a profile (:func:`sbdh.rules.check_reading`)
and raises on any problem, as :func:`sbdh.rules.check_sbd` does.

What is checked on this path, as on the whole-document one: XML well-formedness and the parser's
refusals; the root; the SBDH 1.3 structure of the header (order, cardinalities, simple types);
that exactly one business message follows it, in a namespace other than the SBDH one, with an
enveloped ``ds:Signature`` allowed after it (reported as ``signed``); and every Peppol or
eFormidling envelope rule, since those need only the header and the business message's root
element name (``Standard`` against its namespace, ``Type`` against its local name).

What is not: the content of the business message. An eFormidling business message is not read
into its JSON tree (nor checked to have one), a Peppol ``BinaryContent``/``TextContent`` wrapper
is not unwrapped, and a signature is only located, never verified (:mod:`sbdh.signing` needs the
whole document). Callers that need any of these take the whole-document path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import IO, Any

from lxml import etree

from sbdh.errors import EnvelopeError, Violation, XmlSecurityError
from sbdh.model import SBDH_NS, DetachedPayload, StandardBusinessDocument
from sbdh.rules import Profile, check_reading
from sbdh.xmlform import Reading, read_sbd
from sbdh.xmlsafe import DEFAULT_STREAM_LIMITS, StreamLimits, parse_xml_stream

__all__ = [
    "DEFAULT_SBD_STREAM_LIMITS",
    "SbdStreamLimits",
    "StreamedSbd",
    "check_sbd_stream",
    "read_sbd_stream",
]

_ROOT = f"{{{SBDH_NS}}}StandardBusinessDocument"
_HEADER = f"{{{SBDH_NS}}}StandardBusinessDocumentHeader"
#: elements after the header put in the skeleton: the business message, a signature, and a few
#: more so that "more than one business message" is still reported
_KEPT_AFTER_HEADER = 8
#: characters of stray text kept from each gap between the root's children (to report it)
_KEPT_TEXT = 64
_READ_SIZE = 1 << 20


@dataclass(frozen=True)
class SbdStreamLimits:
    """Limits for one streamed SBD: the parser's, and the header's own (it is held whole)."""

    xml: StreamLimits = DEFAULT_STREAM_LIMITS
    #: most elements in the header
    max_header_elements: int = 10_000
    #: most characters of names, attribute values and text in the header
    max_header_chars: int = 1 << 20

    def __post_init__(self) -> None:
        if self.max_header_elements <= 0 or self.max_header_chars <= 0:
            raise ValueError("SBD limits must be positive")


DEFAULT_SBD_STREAM_LIMITS = SbdStreamLimits()


@dataclass(frozen=True)
class StreamedSbd:
    """An SBD read and judged on the streamed path."""

    #: the model; its payload is a :class:`~sbdh.model.DetachedPayload`
    document: StandardBusinessDocument
    payload: DetachedPayload
    #: an enveloped ds:Signature follows the business message (located, not verified)
    signed: bool


class _Skeleton:
    """The parser target that keeps the header and the names of what follows it."""

    def __init__(self, limits: SbdStreamLimits) -> None:
        self._limits = limits
        # Any: the stubs know TreeBuilder.start without the namespace declarations
        self._builder: Any = etree.TreeBuilder()
        self._depth = 0
        self._children = 0
        self._in_header = False
        self._header_elements = 0
        self._header_chars = 0
        self._gap_text = False

    def start(self, tag: str, attrib: Mapping[str, str], nsmap: Mapping[str | None, str]) -> None:
        self._depth += 1
        if self._depth == 1:
            if tag != _ROOT:
                qname = etree.QName(tag)
                what = (
                    "a StandardBusinessDocumentHeader on its own"
                    if tag == _HEADER
                    else f"{{{qname.namespace}}}{qname.localname}"
                )
                raise EnvelopeError(
                    [Violation("sbdh-root", f"the root element is {what}, not an SBD")]
                )
            self._builder.start(tag, dict(attrib), dict(nsmap))
            return
        if self._depth == 2:
            self._children += 1
            self._gap_text = False
            if self._children == 1 and tag == _HEADER:
                self._in_header = True
            elif self._children <= _KEPT_AFTER_HEADER:
                # the name is all the walk needs of what follows the header
                self._builder.start(tag, {}, dict(nsmap))
                self._builder.end(tag)
                return
            else:
                return
        if self._in_header:
            self._header_elements += 1
            if self._header_elements > self._limits.max_header_elements:
                raise XmlSecurityError(
                    f"the SBD header has more than {self._limits.max_header_elements} elements",
                    rule="xml-elements",
                )
            self._count(len(tag) + sum(len(k) + len(v) for k, v in attrib.items()))
            self._builder.start(tag, dict(attrib), dict(nsmap))

    def end(self, tag: str) -> None:
        depth = self._depth
        self._depth -= 1
        if depth == 1:
            self._builder.end(tag)
        elif self._in_header:
            self._builder.end(tag)
            if depth == 2:
                self._in_header = False
                self._gap_text = False

    def data(self, text: str) -> None:
        if self._in_header:
            self._count(len(text))
            self._builder.data(text)
        elif self._depth == 1 and not self._gap_text and text.strip():
            # text where only elements belong: a little of it, for the walk to report
            self._gap_text = True
            self._builder.data(text.strip()[:_KEPT_TEXT])

    def _count(self, chars: int) -> None:
        self._header_chars += chars
        if self._header_chars > self._limits.max_header_chars:
            raise XmlSecurityError(
                f"the SBD header is larger than {self._limits.max_header_chars} characters",
                rule="xml-size",
            )

    def close(self) -> etree._Element:
        root: etree._Element = self._builder.close()
        return root


def _chunks(source: IO[bytes] | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(source, "read", None)
    if read is None:
        yield from source
        return
    while chunk := read(_READ_SIZE):
        yield chunk


def read_sbd_stream(
    source: IO[bytes] | Iterable[bytes], limits: SbdStreamLimits = DEFAULT_SBD_STREAM_LIMITS
) -> Reading:
    """Read an SBD from a binary file or chunks without holding it: what
    :func:`sbdh.xmlform.read_sbd` finds, the business message as a
    :class:`~sbdh.model.DetachedPayload`.

    Raises :class:`~sbdh.errors.XmlSecurityError` or :class:`~sbdh.errors.InvalidInput` for XML
    the parser refuses (anywhere in the document), and :class:`~sbdh.errors.EnvelopeError`
    (``sbdh-root``) when the root is not a ``StandardBusinessDocument``.
    """
    skeleton = _Skeleton(limits)
    seen = parse_xml_stream(_chunks(source), skeleton, limits.xml)
    reading = read_sbd(skeleton.close())
    if reading.document is None or reading.payload_element is None:
        return reading
    qname = etree.QName(reading.payload_element)
    payload = DetachedPayload(qname.namespace, qname.localname, seen.size, seen.sha256)
    return replace(reading, document=replace(reading.document, payload=payload))


def check_sbd_stream(
    source: IO[bytes] | Iterable[bytes],
    profile: Profile = Profile.AUTO,
    limits: SbdStreamLimits = DEFAULT_SBD_STREAM_LIMITS,
) -> StreamedSbd:
    """Like :func:`sbdh.rules.check_sbd` for an SBD read by :func:`read_sbd_stream`: the model
    after the structure and ``profile``'s envelope rules; raises on any problem."""
    reading = read_sbd_stream(source, limits)
    document = check_reading(reading, profile)
    payload = document.payload
    # check_reading refuses an SBD without a business message, so it is the detached one
    assert isinstance(payload, DetachedPayload)
    return StreamedSbd(document, payload, reading.signed)
