"""The arkivmelding_kvittering: the receiving case system's answer to an arkivmelding.

The form is integrasjonspunkt's (its ``ArkivmeldingKvitteringMessage``): a business message
of type ``arkivmelding_kvittering`` in an SBD with standard
``urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering`` and process
``urn:no:difi:profile:arkivmelding:response:ver1.0``, holding

* ``receiptType``: ``OK``, ``WARNING``, ``ERROR`` or ``NOTSUPPORTED`` (required);
* ``relatedToMessageId``: the message id of the arkivmelding it answers (required);
* ``messages``: any number of ``{code, text}``, both optional. Case systems use them for their
  references to what they archived (P360 sends ``Recno``, BEST/EDU systems ``ID`` with the
  record number) and for the reasons of a WARNING or ERROR.

The JSON form is the REST API's body; the XML form is the element
``{urn:no:difi:meldingsutveksling:2.0}arkivmelding_kvittering`` with unqualified children (a
repeated ``messages`` element per message), as in an SBD's XML form. integrasjonspunkt records
LEST on the original message for OK and WARNING (and anything unknown), FEIL for ERROR and
NOTSUPPORTED: :attr:`ReceiptType.failed`.

:func:`parse_kvittering` also reads the BEST/EDU ``AppReceipt`` (``type`` attribute, ``message``
elements with a ``code`` attribute and a ``text`` child) that integrasjonspunkt converts into
this form; it carries no ``relatedToMessageId``.

Rules: ``NOARK-KVITTERING-ROOT`` (not a kvittering), ``NOARK-KVITTERING-TYPE`` (receiptType
missing or unknown), ``NOARK-KVITTERING-REFERENCE`` (relatedToMessageId missing or empty),
``NOARK-KVITTERING-MESSAGE`` (a message that is not a code and a text), ``NOARK-LIMIT`` and
``NOARK-VALUE`` (text XML cannot carry, when building).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from adapters.noark.errors import ArkivmeldingError, NoarkViolation
from adapters.noark.limits import DEFAULT_LIMITS, NoarkLimits
from sbdh.errors import Violation
from sbdh.model import NEXTMOVE_NS, BusinessMessage, JsonObject
from sbdh.xmlform import business_message_element, is_xml_text
from sbdh.xmlsafe import parse_xml

__all__ = [
    "APP_RECEIPT_NS",
    "KVITTERING_PROCESS",
    "KVITTERING_STANDARD",
    "KVITTERING_TYPE",
    "Kvittering",
    "KvitteringMessage",
    "ReceiptType",
    "build_kvittering",
    "kvittering_for",
    "kvittering_from_json",
    "kvittering_from_message",
    "parse_kvittering",
    "read_kvittering",
]

KVITTERING_TYPE = "arkivmelding_kvittering"
KVITTERING_STANDARD = "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering"
KVITTERING_PROCESS = "urn:no:difi:profile:arkivmelding:response:ver1.0"
#: namespace of the BEST/EDU (Noark Exchange) AppReceipt
APP_RECEIPT_NS = "http://www.arkivverket.no/Noark/Exchange/types"

_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_ROOT = f"/{KVITTERING_TYPE}"


class ReceiptType(enum.StrEnum):
    """``receiptType``: how the receiving case system took the arkivmelding."""

    OK = "OK"
    WARNING = "WARNING"
    ERROR = "ERROR"
    NOTSUPPORTED = "NOTSUPPORTED"

    @property
    def failed(self) -> bool:
        """Whether the arkivmelding was not archived (integrasjonspunkt records FEIL)."""
        return self in (ReceiptType.ERROR, ReceiptType.NOTSUPPORTED)


@dataclass(frozen=True)
class KvitteringMessage:
    """One ``messages`` entry: a code (``Recno``, a rule id ...) and a text, both optional."""

    code: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Kvittering:
    """An arkivmelding_kvittering; ``related_to_message_id`` is None only for an AppReceipt."""

    receipt_type: ReceiptType
    related_to_message_id: str | None
    messages: tuple[KvitteringMessage, ...] = ()

    def __post_init__(self) -> None:
        # a plain "OK" is accepted and kept as the enum member
        object.__setattr__(self, "receipt_type", ReceiptType(self.receipt_type))

    def to_json(self) -> dict[str, Any]:
        """The JSON body of the business message (absent values left out)."""
        body: dict[str, Any] = {"receiptType": self.receipt_type.value}
        if self.related_to_message_id is not None:
            body["relatedToMessageId"] = self.related_to_message_id
        if self.messages:
            body["messages"] = [
                {
                    key: value
                    for key, value in (("code", m.code), ("text", m.text))
                    if value is not None
                }
                for m in self.messages
            ]
        return body

    def to_business_message(self) -> BusinessMessage:
        """The SBD's business message (``arkivmelding_kvittering``)."""
        return BusinessMessage(KVITTERING_TYPE, JsonObject.of(self.to_json()))


def kvittering_for(
    related_to_message_id: str,
    violations: Iterable[Violation] = (),
    *,
    messages: Iterable[KvitteringMessage] = (),
) -> Kvittering:
    """The answer to an arkivmelding: ERROR listing each violation (code = its rule, text = its
    message) when there are any, else OK; ``messages`` (a record number, say) come first."""
    listed = tuple(messages)
    faults = tuple(KvitteringMessage(v.rule, v.message) for v in violations)
    return Kvittering(
        ReceiptType.ERROR if faults else ReceiptType.OK, related_to_message_id, listed + faults
    )


def build_kvittering(kvittering: Kvittering) -> bytes:
    """The XML form: ``<nm:arkivmelding_kvittering xmlns:nm="urn:no:difi:meldingsutveksling:2.0">``
    with ``receiptType``, ``relatedToMessageId`` and one ``messages`` per message.

    Raises ValueError without ``related_to_message_id`` (the form requires it), and
    :class:`ArkivmeldingError` (``NOARK-VALUE``) for text that XML 1.0 cannot carry.
    """
    if kvittering.related_to_message_id is None:
        raise ValueError("an arkivmelding_kvittering needs the id of the message it answers")
    texts = [("relatedToMessageId", kvittering.related_to_message_id)]
    for index, message in enumerate(kvittering.messages, start=1):
        texts += [(f"messages[{index}]/code", message.code or "")]
        texts += [(f"messages[{index}]/text", message.text or "")]
    bad = [
        NoarkViolation.at(
            "NOARK-VALUE", f"{_ROOT}/{where}", "holds characters that XML 1.0 cannot carry"
        )
        for where, text in texts
        if not is_xml_text(text)
    ]
    if bad:
        raise ArkivmeldingError(bad)
    element = business_message_element(kvittering.to_business_message())
    return _XML_DECLARATION + etree.tostring(element, encoding="UTF-8", pretty_print=True)


def parse_kvittering(data: bytes, *, limits: NoarkLimits = DEFAULT_LIMITS) -> Kvittering:
    """Parse untrusted kvittering bytes: the eFormidling XML form or a BEST/EDU AppReceipt.

    Raises the hardened parser's errors, and :class:`ArkivmeldingError` for the rules in the
    module docstring.
    """
    return read_kvittering(parse_xml(data, limits.kvittering_xml), limits=limits)


def read_kvittering(root: etree._Element, *, limits: NoarkLimits = DEFAULT_LIMITS) -> Kvittering:
    """The model of an already parsed kvittering element."""
    name = etree.QName(root)
    if name.namespace == NEXTMOVE_NS and name.localname == KVITTERING_TYPE:
        return _read_eformidling(root, limits)
    if name.namespace == APP_RECEIPT_NS and name.localname == "AppReceipt":
        return _read_app_receipt(root, limits)
    found = f"{{{name.namespace}}}{name.localname}" if name.namespace else name.localname
    raise ArkivmeldingError(
        [
            NoarkViolation.at(
                "NOARK-KVITTERING-ROOT",
                f"/{name.localname}",
                f"the root element is {found}; a kvittering is {{{NEXTMOVE_NS}}}"
                f"{KVITTERING_TYPE} (or a BEST/EDU {{{APP_RECEIPT_NS}}}AppReceipt)",
            )
        ]
    )


def kvittering_from_message(
    message: BusinessMessage, *, limits: NoarkLimits = DEFAULT_LIMITS
) -> Kvittering:
    """The kvittering in an SBD's business message (from its JSON or its XML form)."""
    if message.type != KVITTERING_TYPE:
        raise ArkivmeldingError(
            [
                NoarkViolation.at(
                    "NOARK-KVITTERING-ROOT",
                    f"/{message.type}",
                    f"the business message is {message.type!r}, not {KVITTERING_TYPE!r}",
                )
            ]
        )
    return kvittering_from_json(message.body, limits=limits)


def kvittering_from_json(
    body: Mapping[str, object] | JsonObject, *, limits: NoarkLimits = DEFAULT_LIMITS
) -> Kvittering:
    """The kvittering in a JSON body (``{"receiptType": ..., "relatedToMessageId": ...}``).

    ``messages`` may be an array or, as the SBD's XML form reads a single repeated element, one
    object.
    """
    data = body.to_python() if isinstance(body, JsonObject) else dict(body)
    faults: list[NoarkViolation] = []
    raw = data.get("messages")
    items: list[object] = [] if raw is None else list(raw) if isinstance(raw, list) else [raw]
    messages: list[KvitteringMessage] = []
    if len(items) > limits.max_kvittering_messages:
        faults.append(_too_many(len(items), limits))
        items = []
    for index, item in enumerate(items, start=1):
        message = _json_message(item)
        if message is None:
            faults.append(
                NoarkViolation.at(
                    "NOARK-KVITTERING-MESSAGE",
                    f"{_ROOT}/messages[{index}]",
                    "a message is an object with an optional string code and text",
                )
            )
        else:
            messages.append(message)
    receipt_type = data.get("receiptType")
    related = data.get("relatedToMessageId")
    return _kvittering(
        None if receipt_type is None else str(receipt_type),
        related if isinstance(related, str) or related is None else "",
        messages,
        faults,
        require_reference=True,
    )


def _json_message(item: object) -> KvitteringMessage | None:
    if not isinstance(item, dict):
        return None
    code, text = item.get("code"), item.get("text")
    if (code is None or isinstance(code, str)) and (text is None or isinstance(text, str)):
        return KvitteringMessage(code, text)
    return None


# --------------------------------------------------------------------------- reading


def _too_many(count: int, limits: NoarkLimits) -> NoarkViolation:
    return NoarkViolation.at(
        "NOARK-LIMIT",
        f"{_ROOT}/messages",
        f"{count} messages; at most {limits.max_kvittering_messages} are read",
    )


def _text(element: etree._Element) -> str:
    return "".join(element.itertext())


def _children(element: etree._Element, name: str, *namespaces: str | None) -> list[etree._Element]:
    return [
        child
        for child in element
        if isinstance(child.tag, str)
        and etree.QName(child).localname == name
        and etree.QName(child).namespace in namespaces
    ]


def _first_text(element: etree._Element, name: str, *namespaces: str | None) -> str | None:
    found = _children(element, name, *namespaces)
    return _text(found[0]).strip() if found else None


def _read_eformidling(root: etree._Element, limits: NoarkLimits) -> Kvittering:
    spaces = (None, NEXTMOVE_NS)
    faults: list[NoarkViolation] = []
    nodes = _children(root, "messages", *spaces)
    if len(nodes) > limits.max_kvittering_messages:
        faults.append(_too_many(len(nodes), limits))
        nodes = []
    messages = [
        KvitteringMessage(_first_text(node, "code", *spaces), _first_text(node, "text", *spaces))
        for node in nodes
    ]
    return _kvittering(
        _first_text(root, "receiptType", *spaces),
        _first_text(root, "relatedToMessageId", *spaces),
        messages,
        faults,
        require_reference=True,
    )


def _read_app_receipt(root: etree._Element, limits: NoarkLimits) -> Kvittering:
    spaces = (None, APP_RECEIPT_NS)
    faults: list[NoarkViolation] = []
    nodes = _children(root, "message", *spaces)
    if len(nodes) > limits.max_kvittering_messages:
        faults.append(_too_many(len(nodes), limits))
        nodes = []
    messages = [
        KvitteringMessage(node.get("code"), _first_text(node, "text", *spaces)) for node in nodes
    ]
    return _kvittering(root.get("type"), None, messages, faults, require_reference=False)


def _kvittering(
    receipt_type: str | None,
    related: str | None,
    messages: list[KvitteringMessage],
    faults: list[NoarkViolation],
    *,
    require_reference: bool,
) -> Kvittering:
    allowed = ", ".join(t.value for t in ReceiptType)
    kind: ReceiptType | None = None
    if receipt_type is None:
        faults.insert(
            0,
            NoarkViolation.at(
                "NOARK-KVITTERING-TYPE", _ROOT, f"receiptType is missing; one of {allowed}"
            ),
        )
    else:
        try:
            kind = ReceiptType(receipt_type.strip())
        except ValueError:
            faults.insert(
                0,
                NoarkViolation.at(
                    "NOARK-KVITTERING-TYPE",
                    f"{_ROOT}/receiptType",
                    f"{receipt_type!r} is not a receiptType; one of {allowed}",
                ),
            )
    if require_reference and not (related or "").strip():
        faults.append(
            NoarkViolation.at(
                "NOARK-KVITTERING-REFERENCE",
                _ROOT,
                "relatedToMessageId is "
                + ("missing" if related is None else "empty")
                + ": a kvittering names the message it answers",
            )
        )
    if faults or kind is None:
        raise ArkivmeldingError(faults)
    return Kvittering(
        kind,
        related.strip() if related is not None else None,
        tuple(m for m in messages if m.code is not None or m.text is not None),
    )
