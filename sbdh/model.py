"""The Standard Business Document (UN/CEFACT SBDH 1.3) as frozen values.

One model serves both networks Budstikke speaks:

* **Peppol** wraps a business document (a UBL invoice, say) in an SBD whose header carries the
  routing facts as business scopes (``DOCUMENTID``, ``PROCESSID``, ``COUNTRY_C1``, ``MLS_TO``,
  ``MLS_TYPE``), as the *Peppol Business Message Envelope (SBDH) 2.0* specifies.
* **eFormidling** (NextMove) uses the same header with its own scopes (``ConversationId``,
  ``SenderRef``, ``ReceiverRef``, ``JournalpostId``, ``MessageChannel``) and a business message
  that is a JSON object in the REST API and an element in ``urn:no:difi:meldingsutveksling:2.0``
  in XML.

Every value is kept as the string that was received (identifiers, dates, booleans, integers):
the model must carry what real traffic carries, including the invalid organisation numbers of
the eFormidling samples, and give it back unchanged. Judging values is the job of
:mod:`sbdh.rules`; the typed accessors here (``creation_datetime()``, ``document_type_id`` ...)
interpret on demand.

The payload is one of five frozen kinds (see :data:`Payload`):

* :class:`XmlPayload` - any XML business document, held as canonical bytes (see its docstring),
* :class:`BinaryContent` / :class:`TextContent` - the Peppol envelope wrapper for non-XML payloads,
* :class:`BusinessMessage` - an eFormidling business message as a frozen JSON tree,
* :class:`DetachedPayload` - a business message too large to hold, read by :mod:`sbdh.stream`:
  only its name is in the model, the SBD's bytes stay in a file the caller keeps.

Nothing here does I/O; the XML and JSON forms live in :mod:`sbdh.xmlform` and
:mod:`sbdh.jsonform`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Union

from lxml import etree

from sbdh.errors import InvalidInput
from sbdh.identifiers import PARTICIPANT_SCHEME, ParticipantId
from sbdh.xmlsafe import parse_xml

__all__ = [
    "ENVELOPE_NS",
    "NEXTMOVE_NS",
    "SBDH_NS",
    "BinaryContent",
    "BusinessMessage",
    "BusinessScope",
    "BusinessService",
    "ContactInformation",
    "CorrelationInformation",
    "DetachedPayload",
    "DocumentIdentification",
    "FieldShape",
    "JsonObject",
    "JsonValue",
    "Manifest",
    "ManifestItem",
    "MlsType",
    "Partner",
    "PartnerIdentifier",
    "Payload",
    "ScopeInformation",
    "ScopeInformationForm",
    "ScopeType",
    "ScopedIdentifier",
    "StandardBusinessDocument",
    "StandardBusinessDocumentHeader",
    "TextContent",
    "XmlPayload",
    "eformidling_sbd",
    "format_xs_datetime",
    "is_xs_datetime",
    "message_shapes",
    "parse_xs_datetime",
    "peppol_sbd",
]

#: UN/CEFACT SBDH 1.3 target namespace
SBDH_NS = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
#: Peppol Business Message Envelope wrapper for non-XML payloads (BinaryContent, TextContent)
ENVELOPE_NS = "http://peppol.eu/xsd/ticc/envelope/1.0"
#: eFormidling business messages in XML (the element is named by the message type)
NEXTMOVE_NS = "urn:no:difi:meldingsutveksling:2.0"
#: XML Schema instance namespace (xsi:nil carries JSON null in the XML form)
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

#: the SBDH HeaderVersion both networks require
HEADER_VERSION = "1.0"
#: Peppol document type identifier schemes (Peppol Policy for use of identifiers 4.x)
DOCTYPE_SCHEME = "busdox-docid-qns"
DOCTYPE_SCHEME_WILDCARD = "peppol-doctype-wildcard"
#: Peppol process identifier scheme
PROCESS_SCHEME = "cenbii-procid-ubl"


class ScopeType(enum.StrEnum):
    """``Scope/Type`` values with a meaning in Peppol or eFormidling."""

    # Peppol Business Message Envelope 2.0
    DOCUMENTID = "DOCUMENTID"
    PROCESSID = "PROCESSID"
    COUNTRY_C1 = "COUNTRY_C1"
    MLS_TO = "MLS_TO"
    MLS_TYPE = "MLS_TYPE"
    # eFormidling 2 (integrasjonspunkt)
    CONVERSATION_ID = "ConversationId"
    SENDER_REF = "SenderRef"
    RECEIVER_REF = "ReceiverRef"
    JOURNALPOST_ID = "JournalpostId"
    MESSAGE_CHANNEL = "MessageChannel"


class MlsType(enum.StrEnum):
    """When the receiving access point must answer with a Message Level Status."""

    ALWAYS_SEND = "ALWAYS_SEND"
    FAILURE_ONLY = "FAILURE_ONLY"


# --------------------------------------------------------------------------- xs:dateTime

_XS_DATETIME = re.compile(
    r"^(?P<year>-?[0-9]{4,})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?P<fraction>\.[0-9]+)?"
    r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?$"
)


def parse_xs_datetime(lexical: str) -> datetime:
    """Interpret an ``xs:dateTime`` lexical form.

    Naive (no timezone) values come back naive, as XML Schema leaves their offset unknown.
    Fractions beyond microseconds are truncated; ``24:00:00`` is the start of the next day.
    Raises :class:`InvalidInput` (rule ``xs-datetime``) for anything else, including years
    outside 1..9999 that :class:`datetime` cannot hold.
    """
    match = _XS_DATETIME.match(lexical)
    if match is None:
        raise InvalidInput(f"{lexical!r} is not an xs:dateTime", rule="xs-datetime")
    year, month, day = int(match["year"]), int(match["month"]), int(match["day"])
    hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"])
    fraction = match["fraction"] or ""
    end_of_day = hour == 24
    if end_of_day and (minute or second or fraction.strip(".0")):
        raise InvalidInput(f"{lexical!r}: 24:00:00 is the only time in hour 24", rule="xs-datetime")
    tzinfo: timezone | None = None
    if match["tz"] == "Z":
        tzinfo = UTC
    elif match["tz"]:
        sign = -1 if match["tz"][0] == "-" else 1
        tz_hours, tz_minutes = int(match["tz"][1:3]), int(match["tz"][4:6])
        if tz_minutes > 59 or tz_hours * 60 + tz_minutes > 14 * 60:
            raise InvalidInput(f"{lexical!r}: timezone out of range", rule="xs-datetime")
        tzinfo = timezone(sign * timedelta(hours=tz_hours, minutes=tz_minutes))
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    try:
        value = datetime(
            year, month, day, 0 if end_of_day else hour, minute, second, micro, tzinfo=tzinfo
        )
    except ValueError as exc:
        raise InvalidInput(
            f"{lexical!r} is not a valid date and time: {exc}", rule="xs-datetime"
        ) from exc
    return value + timedelta(days=1) if end_of_day else value


def is_xs_datetime(lexical: str, *, require_timezone: bool = False) -> bool:
    """Whether ``lexical`` is a valid ``xs:dateTime`` (with a timezone, if required)."""
    try:
        value = parse_xs_datetime(lexical)
    except InvalidInput:
        return False
    return value.tzinfo is not None or not require_timezone


def format_xs_datetime(value: datetime) -> str:
    """The ``xs:dateTime`` form of an aware datetime; UTC is written ``Z``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("SBDH timestamps must carry a timezone")
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# --------------------------------------------------------------------------- JSON trees

JsonValue = Union[None, bool, int, float, str, tuple["JsonValue", ...], "JsonObject"]


@dataclass(frozen=True)
class JsonObject:
    """A frozen JSON object: its members in order (order is the XML element order).

    Arrays are tuples and objects are ``JsonObject``, so the two stay distinct and every tree
    is hashable.
    """

    members: tuple[tuple[str, JsonValue], ...] = ()

    def __post_init__(self) -> None:
        keys = [key for key, _ in self.members]
        if len(set(keys)) != len(keys):
            raise InvalidInput("a JSON object has a member twice", rule="json-duplicate-key")

    @classmethod
    def of(cls, value: Mapping[str, object]) -> JsonObject:
        """Freeze a ``dict`` from :func:`json.loads` (lists become tuples, dicts objects)."""
        return cls(tuple((str(key), _freeze(item)) for key, item in value.items()))

    def get(self, key: str) -> JsonValue:
        for name, item in self.members:
            if name == key:
                return item
        return None

    def __contains__(self, key: object) -> bool:
        return any(name == key for name, _ in self.members)

    def keys(self) -> Iterator[str]:
        return (name for name, _ in self.members)

    def to_python(self) -> dict[str, object]:
        """Thaw into ``dict``/``list`` for :func:`json.dumps`."""
        return {key: _thaw(item) for key, item in self.members}


def _freeze(value: object) -> JsonValue:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput("JSON numbers must be finite", rule="json-number")
        return value
    if isinstance(value, Mapping):
        return JsonObject.of(value)
    if isinstance(value, Sequence):
        return tuple(_freeze(item) for item in value)
    raise InvalidInput(f"{type(value).__name__} is not a JSON value", rule="json-value")


def _thaw(value: JsonValue) -> object:
    if isinstance(value, JsonObject):
        return value.to_python()
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


# --------------------------------------------------------------------------- business messages


class FieldShape(enum.Enum):
    """What a business message field holds in JSON, so the XML form can give it back.

    XML text has no type: the table of shapes per message type (:func:`message_shapes`) says
    which fields are numbers, booleans or arrays. A field not in the table is a string when it
    is a leaf and an object when it has children; an element name that repeats is an array.
    """

    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    #: always an array, even with one item or none (items are read by their own shape)
    ARRAY = "array"
    #: an array of integers (DPI ``repetisjoner``)
    INTEGER_ARRAY = "integer-array"


# Field shapes from the DPI JSON schemas (testdata dpi-json-schemas, commons.schema.json) and
# the NextMove message classes of integrasjonspunkt. Keyed by field name anywhere in the
# message: both sources use each name with one shape throughout.
_DPI_COMMON: Mapping[str, FieldShape] = {
    "sikkerhetsnivaa": FieldShape.INTEGER,
    "aapningskvittering": FieldShape.BOOLEAN,
    "repetisjoner": FieldShape.INTEGER_ARRAY,
}
_MESSAGE_SHAPES: Mapping[str, Mapping[str, FieldShape]] = {
    "digital": _DPI_COMMON,
    "flyttet": {**_DPI_COMMON, "aapnet": FieldShape.BOOLEAN},
    "utskrift": {},
    "print": {},
    "aapningskvittering": {},
    "leveringskvittering": {},
    "mottakskvittering": {},
    "returpostkvittering": {},
    "varslingfeiletkvittering": {},
    "feil": {},
    "status": {},
    "arkivmelding": {"sikkerhetsnivaa": FieldShape.INTEGER},
    "arkivmelding_kvittering": {
        "sikkerhetsnivaa": FieldShape.INTEGER,
        "messages": FieldShape.ARRAY,
    },
    "digital_dpv": {
        "sikkerhetsnivaa": FieldShape.INTEGER,
        "aapningskvittering": FieldShape.BOOLEAN,
    },
    "fiksio": {"sikkerhetsnivaa": FieldShape.INTEGER},
    "innsynskrav": {"sikkerhetsnivaa": FieldShape.INTEGER},
    "publisering": {"sikkerhetsnivaa": FieldShape.INTEGER},
    "einnsyn_kvittering": {},
    "avtalt": {"sikkerhetsnivaa": FieldShape.INTEGER},
}


def message_shapes(message_type: str) -> Mapping[str, FieldShape]:
    """The field shapes for ``message_type``; unknown types get the shared DPI shapes."""
    return _MESSAGE_SHAPES.get(message_type, _DPI_COMMON)


def known_message_types() -> frozenset[str]:
    return frozenset(_MESSAGE_SHAPES)


_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
#: member names of the JSON form that are not business message types (see sbdh.jsonform)
RESERVED_MESSAGE_TYPES = frozenset(
    {
        "standardBusinessDocumentHeader",
        "xmlDocument",
        "binaryContent",
        "textContent",
        "detachedDocument",
    }
)


@dataclass(frozen=True)
class BusinessMessage:
    """An eFormidling business message: its type (the JSON key, the XML element name) and body.

    The body is a frozen JSON tree. Its XML form is an element ``{urn:no:difi:
    meldingsutveksling:2.0}<type>`` with unqualified children; :mod:`sbdh.xmlform` refuses to
    write a tree it could not read back identically (see :class:`FieldShape`).
    """

    type: str
    body: JsonObject
    #: namespace prefix used in the XML form ("" = default namespace; None = the writer's choice)
    xml_prefix: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _XML_NAME.match(self.type):
            raise InvalidInput(
                f"business message type {self.type!r} is not usable as an XML element name",
                rule="nextmove-message-type",
            )
        if self.type in RESERVED_MESSAGE_TYPES:
            raise InvalidInput(
                f"{self.type!r} names another part of the JSON form, not a business message",
                rule="nextmove-message-type",
            )


# --------------------------------------------------------------------------- XML payloads


def canonical_subtree(element: etree._Element) -> bytes:
    """Inclusive C14N 1.0 (with comments) of ``element`` taken out as a document of its own.

    Inclusive, not exclusive: every namespace in scope is declared on the apex, so prefixes used
    only inside attribute values or text (``xsi:type="ns:T"``) still resolve when the payload is
    taken out of its envelope. The element is first serialised on its own (lxml declares every
    in-scope namespace on it) and canonicalised as a whole document, because libxml2's C14N of a
    document *subset* wrongly undeclares the default namespace on grandchildren.
    """
    standalone = etree.tostring(element, with_tail=False)
    return etree.tostring(parse_xml(standalone), method="c14n", exclusive=False, with_comments=True)


@dataclass(frozen=True)
class XmlPayload:
    """An XML business document (the element that follows the header), as canonical bytes.

    Why bytes and not an lxml element: elements are mutable and unhashable, so a frozen model
    holding one would be frozen in name only. The bytes are the inclusive C14N 1.0 form (with
    comments) of the payload subtree, computed on construction, so equal documents give equal
    payloads, the payload keeps every namespace it can refer to, and writing it back gives the
    same canonical form byte for byte. :meth:`element` parses a fresh copy when one is needed.
    """

    canonical: bytes
    namespace: str | None = field(init=False, compare=False)
    local_name: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        root = parse_xml(self.canonical)
        object.__setattr__(self, "canonical", canonical_subtree(root))
        qname = etree.QName(root)
        object.__setattr__(self, "namespace", qname.namespace)
        object.__setattr__(self, "local_name", qname.localname)

    @classmethod
    def from_element(cls, element: etree._Element) -> XmlPayload:
        return cls(canonical_subtree(element))

    def element(self) -> etree._Element:
        """A fresh, private copy of the payload root element."""
        return parse_xml(self.canonical)

    def text(self) -> str:
        return self.canonical.decode("utf-8")


_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]*={0,2}\s*$")


@dataclass(frozen=True)
class BinaryContent:
    """A non-XML payload in the Peppol envelope wrapper (``BinaryContent``, base64).

    ``value`` is the base64 text exactly as carried, so the XML form round-trips even when the
    sender wrapped its lines; :attr:`data` decodes it. Build from raw bytes with :meth:`of`.
    """

    mime_type: str
    value: str
    encoding: str | None = None
    xml_prefix: str | None = field(default=None, compare=False)

    @classmethod
    def of(cls, mime_type: str, data: bytes, encoding: str | None = None) -> BinaryContent:
        return cls(mime_type, base64.b64encode(data).decode("ascii"), encoding)

    @property
    def data(self) -> bytes:
        if not _BASE64.match(self.value):
            raise InvalidInput("BinaryContent is not base64", rule="invalid-binary-content")
        try:
            return base64.b64decode("".join(self.value.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(
                f"BinaryContent is not base64: {exc}", rule="invalid-binary-content"
            ) from exc


@dataclass(frozen=True)
class TextContent:
    """A text payload in the Peppol envelope wrapper (``TextContent``)."""

    mime_type: str
    value: str
    xml_prefix: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DetachedPayload:
    """The business message of an SBD too large to hold in memory, as :mod:`sbdh.stream`
    read it: the name of its root element, and the size and SHA-256 of the whole SBD's bytes.

    The bytes are not here: whoever read them keeps them (a file) and passes them on as they
    came. So this payload has no XML form of its own (:func:`sbdh.xmlform.sbd_to_xml` refuses
    it); its JSON form is a marker, ``detachedDocument``, naming what was read.
    """

    namespace: str | None
    local_name: str
    #: bytes in the whole SBD (header, business message and all)
    sbd_size: int
    #: SHA-256 (hex) of the whole SBD's bytes
    sbd_sha256: str


Payload = XmlPayload | BinaryContent | TextContent | BusinessMessage | DetachedPayload


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class PartnerIdentifier:
    """``Sender/Identifier`` or ``Receiver/Identifier``: a value and its ``Authority``."""

    value: str
    authority: str | None = PARTICIPANT_SCHEME

    def participant_id(self) -> ParticipantId:
        """The value as a Peppol participant id (raises ``InvalidIdentifier`` if it is not one)."""
        return ParticipantId(self.value, self.authority or PARTICIPANT_SCHEME)


@dataclass(frozen=True)
class ContactInformation:
    contact: str
    email_address: str | None = None
    fax_number: str | None = None
    telephone_number: str | None = None
    contact_type_identifier: str | None = None


@dataclass(frozen=True)
class Partner:
    identifier: PartnerIdentifier
    contact_information: tuple[ContactInformation, ...] = ()

    @classmethod
    def participant(cls, participant: ParticipantId | str) -> Partner:
        if isinstance(participant, ParticipantId):
            return cls(PartnerIdentifier(participant.value, participant.scheme))
        return cls(PartnerIdentifier(participant, PARTICIPANT_SCHEME))


@dataclass(frozen=True)
class DocumentIdentification:
    """``DocumentIdentification``; every value kept in its lexical form."""

    standard: str
    type_version: str
    instance_identifier: str
    type: str
    creation_date_and_time: str
    #: the xs:boolean lexical form, when present ("true", "false", "1", "0")
    multiple_type: str | None = None

    def creation_datetime(self) -> datetime:
        """``CreationDateAndTime`` as a datetime (raises :class:`InvalidInput` if invalid)."""
        return parse_xs_datetime(self.creation_date_and_time)


@dataclass(frozen=True)
class ManifestItem:
    mime_type_qualifier_code: str
    uniform_resource_identifier: str
    description: str | None = None
    language_code: str | None = None


@dataclass(frozen=True)
class Manifest:
    #: the xs:integer lexical form
    number_of_items: str
    items: tuple[ManifestItem, ...]


class ScopeInformationForm(enum.StrEnum):
    """The element that carries correlation information.

    SBDH 1.3 declares ``ScopeInformation`` abstract, to be replaced by ``CorrelationInformation``
    or ``BusinessService``; eFormidling writes ``ScopeInformation`` itself with the correlation
    children, and both forms must round-trip.
    """

    SCOPE_INFORMATION = "ScopeInformation"
    CORRELATION_INFORMATION = "CorrelationInformation"


@dataclass(frozen=True)
class CorrelationInformation:
    requesting_document_creation_date_time: str | None = None
    requesting_document_instance_identifier: str | None = None
    expected_response_date_time: str | None = None
    form: ScopeInformationForm = ScopeInformationForm.CORRELATION_INFORMATION


@dataclass(frozen=True)
class BusinessService:
    business_service_name: str | None = None
    #: the ``ServiceTransaction`` attributes (name, value), sorted; None when the element is absent
    service_transaction: tuple[tuple[str, str], ...] | None = None


ScopeInformation = CorrelationInformation | BusinessService


@dataclass(frozen=True)
class Scope:
    """One ``BusinessScope/Scope``. ``instance_identifier`` is None when the element is absent."""

    type: str
    instance_identifier: str | None = None
    identifier: str | None = None
    scope_information: tuple[ScopeInformation, ...] = ()


@dataclass(frozen=True)
class BusinessScope:
    scopes: tuple[Scope, ...] = ()


@dataclass(frozen=True)
class ScopedIdentifier:
    """An identifier from a business scope: its value and, when given, its scheme."""

    value: str
    scheme: str | None

    def uri(self, default_scheme: str) -> str:
        """``scheme::value``, with ``default_scheme`` when the scope gave none."""
        return f"{self.scheme or default_scheme}::{self.value}"


@dataclass(frozen=True)
class StandardBusinessDocumentHeader:
    header_version: str
    senders: tuple[Partner, ...]
    receivers: tuple[Partner, ...]
    document_identification: DocumentIdentification
    manifest: Manifest | None = None
    business_scope: BusinessScope | None = None

    # -- generic scope access

    @property
    def scopes(self) -> tuple[Scope, ...]:
        return self.business_scope.scopes if self.business_scope else ()

    def scopes_of(self, scope_type: str) -> tuple[Scope, ...]:
        return tuple(scope for scope in self.scopes if scope.type == scope_type)

    def scope(self, scope_type: str) -> Scope | None:
        """The first scope of ``scope_type``, or None."""
        found = self.scopes_of(scope_type)
        return found[0] if found else None

    def _scope_value(self, scope_type: str) -> str | None:
        scope = self.scope(scope_type)
        return scope.instance_identifier if scope else None

    def _scoped(self, scope_type: str) -> ScopedIdentifier | None:
        scope = self.scope(scope_type)
        if scope is None or scope.instance_identifier is None:
            return None
        return ScopedIdentifier(scope.instance_identifier, scope.identifier)

    # -- Peppol

    @property
    def sender(self) -> PartnerIdentifier | None:
        return self.senders[0].identifier if len(self.senders) == 1 else None

    @property
    def receiver(self) -> PartnerIdentifier | None:
        return self.receivers[0].identifier if len(self.receivers) == 1 else None

    @property
    def document_type_id(self) -> ScopedIdentifier | None:
        """``DOCUMENTID``; its scheme defaults to ``busdox-docid-qns`` when none is given."""
        return self._scoped(ScopeType.DOCUMENTID)

    @property
    def process_id(self) -> ScopedIdentifier | None:
        """``PROCESSID``; its scheme defaults to ``cenbii-procid-ubl`` when none is given."""
        return self._scoped(ScopeType.PROCESSID)

    @property
    def country_c1(self) -> str | None:
        return self._scope_value(ScopeType.COUNTRY_C1)

    @property
    def mls_to(self) -> ScopedIdentifier | None:
        return self._scoped(ScopeType.MLS_TO)

    @property
    def mls_type(self) -> MlsType | None:
        value = self._scope_value(ScopeType.MLS_TYPE)
        return MlsType(value) if value is not None and value in MlsType.__members__ else None

    # -- eFormidling

    @property
    def conversation_id(self) -> str | None:
        return self._scope_value(ScopeType.CONVERSATION_ID)

    @property
    def process(self) -> str | None:
        """The eFormidling process: the ``Identifier`` of the ``ConversationId`` scope."""
        scope = self.scope(ScopeType.CONVERSATION_ID)
        return scope.identifier if scope else None

    @property
    def expected_response_date_time(self) -> str | None:
        scope = self.scope(ScopeType.CONVERSATION_ID)
        for info in scope.scope_information if scope else ():
            if isinstance(info, CorrelationInformation) and info.expected_response_date_time:
                return info.expected_response_date_time
        return None

    @property
    def sender_ref(self) -> str | None:
        return self._scope_value(ScopeType.SENDER_REF)

    @property
    def receiver_ref(self) -> str | None:
        return self._scope_value(ScopeType.RECEIVER_REF)

    @property
    def journalpost_id(self) -> str | None:
        return self._scope_value(ScopeType.JOURNALPOST_ID)

    @property
    def message_channel(self) -> str | None:
        return self._scope_value(ScopeType.MESSAGE_CHANNEL)


@dataclass(frozen=True)
class StandardBusinessDocument:
    """An SBD: the header and the business message (None only in an invalid document)."""

    header: StandardBusinessDocumentHeader
    payload: Payload | None
    #: prefix of the SBDH namespace in the XML form ("" = default namespace, None = writer's
    #: choice); kept only so that XML round-trips keep their prefixes, never compared
    xml_prefix: str | None = field(default=None, compare=False)
    #: ``xsi:schemaLocation`` on the root, kept for the same reason
    schema_location: str | None = field(default=None, compare=False)

    @property
    def instance_identifier(self) -> str:
        return self.header.document_identification.instance_identifier


# --------------------------------------------------------------------------- builders


def _doctype_parts(document_type_id: str) -> tuple[str, str, str]:
    """(root namespace, local name, version) from a Peppol document type identifier value.

    The form is ``<namespace>::<local name>##<customization>::<version>``.
    """
    syntax, sep, rest = document_type_id.partition("##")
    namespace, sep2, local_name = syntax.rpartition("::")
    version = rest.rpartition("::")[2] if "::" in rest else ""
    if not (sep and sep2 and namespace and local_name and version):
        raise InvalidInput(
            f"{document_type_id!r} is not a Peppol document type identifier "
            "(<namespace>::<name>##<customization>::<version>)",
            rule="invalid-document-type-identifier",
        )
    return namespace, local_name, version


def peppol_sbd(
    *,
    sender: ParticipantId | str,
    receiver: ParticipantId | str,
    document_type_id: str,
    process_id: str,
    country_c1: str,
    payload: Payload,
    instance_identifier: str,
    created: datetime,
    mls_to: ParticipantId | str | None = None,
    mls_type: MlsType | None = None,
    document_type_scheme: str = DOCTYPE_SCHEME,
    process_scheme: str = PROCESS_SCHEME,
) -> StandardBusinessDocument:
    """A Peppol SBD (envelope spec 2.0) from what a sender knows.

    ``Standard``, ``Type`` and ``TypeVersion`` come from the document type identifier, so they
    agree with it by construction. The clock and the instance id are the caller's: the core has
    neither.
    """
    standard, doc_type, version = _doctype_parts(document_type_id)
    scopes = [
        Scope(ScopeType.DOCUMENTID, document_type_id, document_type_scheme),
        Scope(ScopeType.PROCESSID, process_id, process_scheme),
        Scope(ScopeType.COUNTRY_C1, country_c1),
    ]
    if mls_to is not None:
        mls_value = mls_to.value if isinstance(mls_to, ParticipantId) else mls_to
        scopes.append(Scope(ScopeType.MLS_TO, mls_value, PARTICIPANT_SCHEME))
    if mls_type is not None:
        scopes.append(Scope(ScopeType.MLS_TYPE, MlsType(mls_type).value))
    identification = DocumentIdentification(
        standard=standard,
        type_version=version,
        instance_identifier=instance_identifier,
        type=doc_type,
        creation_date_and_time=format_xs_datetime(created),
    )
    return StandardBusinessDocument(_header(sender, receiver, identification, scopes), payload)


def _header(
    sender: ParticipantId | str,
    receiver: ParticipantId | str,
    identification: DocumentIdentification,
    scopes: list[Scope],
) -> StandardBusinessDocumentHeader:
    return StandardBusinessDocumentHeader(
        header_version=HEADER_VERSION,
        senders=(Partner.participant(sender),),
        receivers=(Partner.participant(receiver),),
        document_identification=identification,
        business_scope=BusinessScope(tuple(scopes)),
    )


def eformidling_sbd(
    *,
    sender: ParticipantId | str,
    receiver: ParticipantId | str,
    message: BusinessMessage | XmlPayload,
    standard: str,
    process: str,
    conversation_id: str,
    instance_identifier: str,
    created: datetime,
    type_version: str = "1.0",
    document_type: str | None = None,
    expected_response: datetime | str | None = None,
    sender_ref: str | None = None,
    receiver_ref: str | None = None,
    journalpost_id: str | None = None,
    message_channel: str | None = None,
) -> StandardBusinessDocument:
    """An eFormidling (NextMove) SBD.

    ``standard`` is the eFormidling document type (``urn:no:difi:arkivmelding:xsd::arkivmelding``
    and the like); ``Type`` defaults to the message type. Every scope carries the process as its
    ``Identifier``, as integrasjonspunkt writes them.
    """
    if isinstance(expected_response, datetime):
        expected_response = format_xs_datetime(expected_response)
    info: tuple[ScopeInformation, ...] = ()
    if expected_response is not None:
        info = (
            CorrelationInformation(
                expected_response_date_time=expected_response,
                form=ScopeInformationForm.SCOPE_INFORMATION,
            ),
        )
    scopes = [Scope(ScopeType.CONVERSATION_ID, conversation_id, process, info)]
    for scope_type, value in (
        (ScopeType.SENDER_REF, sender_ref),
        (ScopeType.RECEIVER_REF, receiver_ref),
        (ScopeType.JOURNALPOST_ID, journalpost_id),
        (ScopeType.MESSAGE_CHANNEL, message_channel),
    ):
        if value is not None:
            scopes.append(Scope(scope_type, value, process))
    if document_type is None:
        document_type = message.type if isinstance(message, BusinessMessage) else message.local_name
    identification = DocumentIdentification(
        standard=standard,
        type_version=type_version,
        instance_identifier=instance_identifier,
        type=document_type,
        creation_date_and_time=format_xs_datetime(created),
    )
    return StandardBusinessDocument(_header(sender, receiver, identification, scopes), message)
