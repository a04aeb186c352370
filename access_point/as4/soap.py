"""The SOAP 1.2 envelope and its eb:Messaging header: read with strict paths, and written.

Reading finds every piece by its exact place (``Envelope/Header/Messaging``, never a search
that a copy elsewhere in the document could satisfy) and refuses a document with a second copy
of anything the processor relies on. Errors are EBMS:0009 (InvalidHeader) unless the ebMS
specification has a closer code (EBMS:0002 for bundled messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from sbdh.errors import InvalidInput, XmlSecurityError
from sbdh.model import parse_xs_datetime
from sbdh.xmlsafe import XmlLimits, parse_xml

from .errors import (
    EbmsError,
    FeatureNotSupported,
    InvalidHeader,
    PolicyNoncompliance,
)
from .model import PartInfo, Party, Property, SignalMessage, SignedReference, UserMessage
from .spec import NS
from .wssec import q

__all__ = [
    "Envelope",
    "ParsedEnvelope",
    "one_signal_message",
    "one_user_message",
    "parse_envelope",
    "parse_soap",
    "read_envelope",
    "read_signal_message",
    "read_user_message",
]

_TRUE = ("true", "1")
_EB_TAGS = {
    name: q(NS.EB, name)
    for name in [
        "MessageInfo",
        "Timestamp",
        "MessageId",
        "RefToMessageId",
        "PartyInfo",
        "From",
        "To",
        "PartyId",
        "Role",
        "CollaborationInfo",
        "AgreementRef",
        "Service",
        "Action",
        "ConversationId",
        "MessageProperties",
        "Property",
        "PayloadInfo",
        "PartInfo",
        "PartProperties",
        "Receipt",
        "Error",
        "Description",
        "ErrorDetail",
    ]
}
_UNDERSTOOD = {q(NS.EB, "Messaging"), q(NS.WSSE, "Security")}


def parse_soap(data: bytes, max_bytes: int) -> etree._Element:
    """Parse the SOAP part with the hardened parser, translating its refusals to ebMS codes."""
    if not data.strip():
        raise InvalidHeader("the SOAP part is empty", rule="as4-soap-empty")
    try:
        return parse_xml(data, XmlLimits(max_bytes=max_bytes))
    except XmlSecurityError as exc:
        raise PolicyNoncompliance(
            f"the SOAP part was refused: {exc.message}", rule=exc.rule
        ) from exc
    except InvalidInput as exc:
        raise InvalidHeader(
            f"the SOAP part is not well-formed XML: {exc.message}", rule="as4-soap-xml"
        ) from exc


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _name(element: etree._Element) -> str:
    return etree.QName(element).localname


@dataclass(frozen=True)
class Envelope:
    """The pieces of a SOAP 1.2 envelope the AS4 processor works on (the very elements)."""

    root: etree._Element
    header: etree._Element
    body: etree._Element
    messaging: etree._Element
    security: etree._Element | None
    user_messages: tuple[etree._Element, ...]
    signal_messages: tuple[etree._Element, ...]

    @property
    def messaging_id(self) -> str | None:
        return self.messaging.get(q(NS.WSU, "Id"))


def read_envelope(root: etree._Element) -> Envelope:
    """Locate Header, Body, eb:Messaging and wsse:Security, refusing any duplicate."""
    if root.tag != q(NS.SOAP12, "Envelope"):
        raise InvalidHeader(
            f"root element is {root.tag!r}, not a SOAP 1.2 Envelope", rule="as4-soap-envelope"
        )
    children = _elements(root)
    if [c.tag for c in children] != [q(NS.SOAP12, "Header"), q(NS.SOAP12, "Body")]:
        raise InvalidHeader(
            "a SOAP envelope holds exactly one Header followed by one Body",
            rule="as4-soap-envelope",
        )
    header, body = children
    messaging_blocks = [c for c in _elements(header) if c.tag == q(NS.EB, "Messaging")]
    if len(messaging_blocks) != 1:
        raise InvalidHeader(
            f"the SOAP header holds {len(messaging_blocks)} eb:Messaging blocks; exactly one is "
            "required",
            rule="as4-messaging",
        )
    messaging = messaging_blocks[0]
    # a second eb:Messaging anywhere else is a decoy for a careless processor
    if sum(1 for _ in root.iter(q(NS.EB, "Messaging"))) != 1:
        raise InvalidHeader("eb:Messaging appears outside the SOAP header", rule="as4-messaging")
    securities = [c for c in _elements(header) if c.tag == q(NS.WSSE, "Security")]
    if len(securities) > 1:
        raise PolicyNoncompliance(
            "more than one wsse:Security header block", rule="as4-security-header"
        )
    for block in _elements(header):
        if block.tag in _UNDERSTOOD:
            continue
        if (block.get(q(NS.SOAP12, "mustUnderstand")) or "").strip() in _TRUE:
            raise InvalidHeader(
                f"header block {block.tag!r} must be understood, and is not supported",
                rule="as4-must-understand",
            )
    kinds = _elements(messaging)
    users = tuple(c for c in kinds if c.tag == q(NS.EB, "UserMessage"))
    signals = tuple(c for c in kinds if c.tag == q(NS.EB, "SignalMessage"))
    if not users and not signals:
        raise InvalidHeader(
            "eb:Messaging holds neither a UserMessage nor a SignalMessage", rule="as4-messaging"
        )
    return Envelope(
        root=root,
        header=header,
        body=body,
        messaging=messaging,
        security=securities[0] if securities else None,
        user_messages=users,
        signal_messages=signals,
    )


def one_user_message(envelope: Envelope) -> etree._Element:
    """The single UserMessage; bundling (several, or with signals) is not supported."""
    if len(envelope.user_messages) != 1 or envelope.signal_messages:
        # the id of the first one, so the refusal can name it
        first = envelope.user_messages[0] if envelope.user_messages else None
        raise FeatureNotSupported(
            f"eb:Messaging bundles {len(envelope.user_messages)} UserMessage and "
            f"{len(envelope.signal_messages)} SignalMessage elements; Peppol allows exactly one "
            "UserMessage",
            rule="as4-bundling",
            ref_to_message_id=_message_id_of(first),
        )
    return envelope.user_messages[0]


def _message_id_of(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    text = element.findtext(f"{q(NS.EB, 'MessageInfo')}/{q(NS.EB, 'MessageId')}")
    return text.strip() if text and text.strip() else None


class _Reader:
    """Strict child access with errors that name the path and the message."""

    def __init__(self, message_id: str | None) -> None:
        self.message_id = message_id

    def fail(self, message: str) -> InvalidHeader:
        return InvalidHeader(message, rule="as4-ebms-header", ref_to_message_id=self.message_id)

    def children(self, parent: etree._Element, name: str) -> list[etree._Element]:
        return parent.findall(_EB_TAGS[name])

    def one(self, parent: etree._Element, name: str) -> etree._Element:
        found = self.children(parent, name)
        if len(found) != 1:
            raise self.fail(f"{_name(parent)} must hold exactly one {name}, found {len(found)}")
        return found[0]

    def optional(self, parent: etree._Element, name: str) -> etree._Element | None:
        found = self.children(parent, name)
        if len(found) > 1:
            raise self.fail(f"{_name(parent)} holds {len(found)} {name} elements; at most one")
        return found[0] if found else None

    def text(self, element: etree._Element, *, required: bool = True) -> str:
        value = (element.text or "").strip()
        if required and not value:
            raise self.fail(f"{_name(element)} is empty")
        if len(element):
            raise self.fail(f"{_name(element)} may hold text only")
        return value

    def timestamp(self, element: etree._Element) -> datetime:
        try:
            value = parse_xs_datetime(self.text(element))
        except InvalidInput as exc:
            raise self.fail(f"Timestamp {element.text!r} is not an xs:dateTime") from exc
        # ebMS timestamps are UTC; a value without an offset is read as such
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    def properties(self, parent: etree._Element | None) -> tuple[Property, ...]:
        if parent is None:
            return ()
        out = []
        for prop in self.children(parent, "Property"):
            name = prop.get("name")
            if not name:
                raise self.fail("a Property has no name")
            out.append(
                Property(name=name, value=self.text(prop, required=False), type=prop.get("type"))
            )
        if len(out) != len(_elements(parent)):
            raise self.fail(f"{_name(parent)} may hold Property elements only")
        return tuple(out)

    def party(self, parent: etree._Element, name: str) -> Party:
        element = self.one(parent, name)
        ids = self.children(element, "PartyId")
        if not ids:
            raise self.fail(f"{name} has no PartyId")
        if len(ids) > 1:
            raise self.fail(f"{name} has {len(ids)} PartyId elements; the profile uses one")
        role = self.one(element, "Role")
        return Party(party_id=self.text(ids[0]), type=ids[0].get("type"), role=self.text(role))


def read_user_message(element: etree._Element) -> UserMessage:
    """The UserMessage as values; raises :class:`InvalidHeader` for a header that breaks the
    ebMS schema's required structure."""
    reader = _Reader(_message_id_of(element))
    info = reader.one(element, "MessageInfo")
    message_id = reader.text(reader.one(info, "MessageId"))
    reader.message_id = message_id
    timestamp = reader.timestamp(reader.one(info, "Timestamp"))
    ref_el = reader.optional(info, "RefToMessageId")
    party_info = reader.one(element, "PartyInfo")
    from_party = reader.party(party_info, "From")
    to_party = reader.party(party_info, "To")
    collab = reader.one(element, "CollaborationInfo")
    agreement = reader.optional(collab, "AgreementRef")
    service = reader.one(collab, "Service")
    action = reader.text(reader.one(collab, "Action"))
    conversation = reader.text(reader.one(collab, "ConversationId"), required=False)
    properties = reader.properties(reader.optional(element, "MessageProperties"))
    parts: list[PartInfo] = []
    payload_info = reader.optional(element, "PayloadInfo")
    if payload_info is not None:
        for part in reader.children(payload_info, "PartInfo"):
            part_props = reader.optional(part, "PartProperties")
            parts.append(PartInfo(href=part.get("href"), properties=reader.properties(part_props)))
    return UserMessage(
        message_id=message_id,
        timestamp=timestamp,
        from_party=from_party,
        to_party=to_party,
        service=reader.text(service),
        service_type=service.get("type"),
        action=action,
        conversation_id=conversation,
        agreement_ref=reader.text(agreement) if agreement is not None else None,
        ref_to_message_id=reader.text(ref_el) if ref_el is not None else None,
        mpc=element.get("mpc"),
        properties=properties,
        parts=tuple(parts),
    )


def read_signal_message(element: etree._Element) -> SignalMessage:
    """A Receipt or Error signal as values (the receipt's NRI references included)."""
    reader = _Reader(_message_id_of(element))
    info = reader.one(element, "MessageInfo")
    message_id = reader.text(reader.one(info, "MessageId"))
    timestamp = reader.timestamp(reader.one(info, "Timestamp"))
    ref_el = reader.optional(info, "RefToMessageId")
    receipt = reader.optional(element, "Receipt")
    errors = tuple(_read_error(e, reader) for e in reader.children(element, "Error"))
    if receipt is None and not errors:
        kinds = ", ".join(_name(c) for c in _elements(element)[1:]) or "nothing"
        raise InvalidHeader(
            f"the SignalMessage holds {kinds}; expected a Receipt or an Error",
            rule="as4-signal",
            ref_to_message_id=message_id,
        )
    references: list[SignedReference] = []
    if receipt is not None:
        nri_path = (
            f"{q(NS.EBBP, 'NonRepudiationInformation')}/{q(NS.EBBP, 'MessagePartNRInformation')}"
        )
        for part in receipt.iterfind(nri_path):
            for reference in part.iterfind(q(NS.DS, "Reference")):
                references.append(_reference_value(reference))  # compared by value only
    return SignalMessage(
        message_id=message_id,
        timestamp=timestamp,
        ref_to_message_id=reader.text(ref_el) if ref_el is not None else None,
        is_receipt=receipt is not None,
        receipt_references=tuple(references),
        errors=errors,
    )


def _reference_value(reference: etree._Element) -> SignedReference:
    """A receipt's NRI reference as values (its XML is not kept: it is compared, not copied)."""
    transforms = tuple(
        t.get("Algorithm") or ""
        for t in reference.iterfind(f"{q(NS.DS, 'Transforms')}/{q(NS.DS, 'Transform')}")
    )
    method = reference.find(q(NS.DS, "DigestMethod"))
    return SignedReference(
        uri=reference.get("URI") or "",
        digest_method=(method.get("Algorithm") or "") if method is not None else "",
        digest_value="".join((reference.findtext(q(NS.DS, "DigestValue")) or "").split()),
        transforms=transforms,
    )


def _read_error(element: etree._Element, reader: _Reader) -> EbmsError:
    code = element.get("errorCode")
    if not code:
        raise reader.fail("an eb:Error has no errorCode")
    description = reader.optional(element, "Description")
    detail = reader.optional(element, "ErrorDetail")
    return EbmsError(
        code=code,
        severity=element.get("severity") or "failure",
        category=element.get("category"),
        short_description=element.get("shortDescription"),
        description=(description.text or "").strip() if description is not None else None,
        detail=(detail.text or "").strip() if detail is not None else None,
        ref_to_message_in_error=element.get("refToMessageInError"),
        origin=element.get("origin"),
    )


@dataclass(frozen=True)
class ParsedEnvelope:
    """An ebMS message read without any security processing (for inspection and routing of
    answers, never for trusting content)."""

    user_message: UserMessage | None
    signal: SignalMessage | None
    messaging_id: str | None
    has_security: bool

    @property
    def message_id(self) -> str:
        if self.user_message is not None:
            return self.user_message.message_id
        assert self.signal is not None
        return self.signal.message_id


def parse_envelope(data: bytes, *, max_bytes: int = 4 * 1024 * 1024) -> ParsedEnvelope:
    """Read an ebMS 3 SOAP envelope: exactly one UserMessage or exactly one SignalMessage.

    Raises :class:`InvalidHeader` (EBMS:0009) for malformed XML or a header that breaks the
    ebMS structure, :class:`FeatureNotSupported` (EBMS:0002) for bundled messages and
    :class:`PolicyNoncompliance` (EBMS:0103) for a DTD or entity.
    """
    envelope = read_envelope(parse_soap(data, max_bytes))
    if envelope.user_messages:
        return ParsedEnvelope(
            user_message=read_user_message(one_user_message(envelope)),
            signal=None,
            messaging_id=envelope.messaging_id,
            has_security=envelope.security is not None,
        )
    return ParsedEnvelope(
        user_message=None,
        signal=read_signal_message(one_signal_message(envelope)),
        messaging_id=envelope.messaging_id,
        has_security=envelope.security is not None,
    )


def one_signal_message(envelope: Envelope) -> etree._Element:
    if len(envelope.signal_messages) != 1 or envelope.user_messages:
        raise FeatureNotSupported(
            f"eb:Messaging bundles {len(envelope.signal_messages)} SignalMessage and "
            f"{len(envelope.user_messages)} UserMessage elements; exactly one signal is expected",
            rule="as4-bundling",
        )
    return envelope.signal_messages[0]
