"""The business operations of the access point: what the API, the CLI and the workers call.

:class:`MessageService` owns every state change of a message. Each operation is one database
transaction that writes the change, its status history and its outbox rows together (the
transactional outbox: the relay in :mod:`adapters.queue` publishes them as jobs).

Shape of the flow, as integrasjonspunkt does it (NextMove API):

* ``create`` stores the SBD and records OPPRETTET. Idempotent: the same message id with the
  same SBD returns the stored message (``existing=True``); with a different SBD,
  :class:`Conflict` naming the first field that differs.
* ``upload`` streams one file to the encrypted file store.
* ``send`` validates and writes a ``send`` outbox row. It does **not** record SENDT:
  integrasjonspunkt records SENDT when the channel has taken the message (its ``NextMoveSender``
  after the channel's send succeeded), so SENDT means "handed over", not "asked to send". Here
  :meth:`MessageService.deliver_locally` records SENDT and MOTTATT when it hands a message to an
  organisation hosted on this access point; the AS4 channel will record SENDT / MOTTATT from its
  receipts.
* the receiver ``peek``s (lock), ``pop``s (the ASiC-E) and acknowledges (INNKOMMENDE_LEVERT, and
  LEVERT on the sender's message when it was delivered here).
* an ``arkivmelding_kvittering`` delivered back in the same conversation records LEST on the
  original arkivmelding.

Authorisation: a client sees a message when one of its organisations is the sender of an
outgoing message or the receiver of an incoming one. Anything else is :class:`NotFound`, never
:class:`Forbidden`, so a message id does not reveal that the message exists; Forbidden is only
for sending as an organisation the client does not hold.

Views are frozen dataclasses whose ``to_json()`` gives the NextMove JSON shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import re
import secrets
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from access_point.settings import Settings
from access_point.statuses import (
    Direction,
    MessageStatus,
    ServiceIdentifier,
    can_transition,
    is_terminal,
)
from access_point.worker import JobClaim
from adapters.db.engine import Database
from adapters.db.groupcommit import GroupCommit, Ticket
from adapters.db.repositories import (
    OUTBOX_SEND,
    OUTBOX_STATUS,
    add_outbox,
    add_outbox_rows,
    insert_ignore,
    insert_status_event,
    record_status,
    status_payload,
    write_status_events,
)
from adapters.db.schema import (
    api_clients,
    as4_exchanges,
    conversations,
    message_files,
    messages,
    outbox,
    routing_decisions,
    status_events,
    status_feed_acks,
)
from adapters.files import FileStore, StoredFile
from adapters.noark import check_arkivmelding, kvittering_from_json, parse_arkivmelding
from routing.decision import RoutingDecision
from routing.policy import decide_organisation
from sbdh.errors import (
    BusError,
    Conflict,
    EnvelopeError,
    Forbidden,
    InvalidInput,
    NoRoute,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from sbdh.identifiers import NationalId, OrganisationNumber, ParticipantId
from sbdh.jsonform import sbd_to_python
from sbdh.model import (
    NEXTMOVE_NS,
    BusinessMessage,
    CorrelationInformation,
    DetachedPayload,
    ScopeInformationForm,
    ScopeType,
    StandardBusinessDocument,
    XmlPayload,
    format_xs_datetime,
    parse_xs_datetime,
)
from sbdh.package import PackageFile, write_container
from sbdh.pki import Credential
from sbdh.rules import Profile, check_sbd, validate_document
from sbdh.stream import DEFAULT_SBD_STREAM_LIMITS, SbdStreamLimits, StreamedSbd, check_sbd_stream

__all__ = [
    "ASIC_CONTENT_TYPE",
    "Client",
    "ConversationQuery",
    "ConversationView",
    "DeliveryResult",
    "FileView",
    "MessageQuery",
    "MessageService",
    "MessageView",
    "NetworkAcceptance",
    "NetworkFile",
    "Page",
    "PageRequest",
    "PoppedMessage",
    "StatusQuery",
    "StatusView",
    "Upload",
    "format_timestamp",
    "party_key",
    "party_of",
]

T = TypeVar("T")
Clock = Callable[[], datetime]

ASIC_CONTENT_TYPE = "application/vnd.etsi.asic-e+zip"
#: largest arkivmelding.xml read for validation on send
ARKIVMELDING_LIMIT = 16 * 1024 * 1024
ARKIVMELDING_XML = "arkivmelding.xml"
#: the file an SBD on the streamed path is kept as (role ``sbd`` on the sending side; what the
#: receiving system pops, as for any SBD that came alone over AS4)
SBD_FILENAME = "sbd.xml"
SBD_ROLE = "sbd"
MAX_ID_LENGTH = 64
_MAX_PAGE_SIZE = 1000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(value: datetime | None) -> str | None:
    """ISO 8601 with milliseconds and ``Z``, as Java's ``OffsetDateTime`` prints UTC."""
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


# =========================================================================== processes

#: eFormidling processes (the ConversationId scope's Identifier) and the document types
#: (DocumentIdentification/Standard) each carries, from the eFormidling service registry.
_ARKIVMELDING = "urn:no:difi:arkivmelding:xsd::arkivmelding"
_ARKIVMELDING_KVITTERING = "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering"
_STATUS_FEIL = frozenset(
    {
        "urn:no:difi:arkivmelding:xsd::status",
        "urn:no:difi:arkivmelding:xsd::feil",
        "urn:no:difi:eformidling:xsd::status",
        "urn:no:difi:eformidling:xsd::feil",
    }
)
_DIGITALPOST = frozenset(
    {
        "urn:no:difi:digitalpost:xsd:digital::digital",
        "urn:no:difi:digitalpost:xsd:fysisk::print",
        "urn:no:difi:digitalpost:xsd:digital::digital_dpv",
    }
)
_INNSYNSKRAV = frozenset(
    {"urn:no:difi:einnsyn:xsd::innsynskrav", "urn:no:difi:einnsyn:xsd:innsyn::innsynskrav"}
)
_EINNSYN_KVITTERING = "urn:no:difi:einnsyn:xsd::einnsyn_kvittering"
_INNBYGGERPOST = "urn:fdc:digdir.no:2020:innbyggerpost"
_ARKIV_AREAS = (
    "administrasjon",
    "planByggOgGeodata",
    "helseSosialOgOmsorg",
    "oppvekstOgUtdanning",
    "kulturIdrettOgFritid",
    "trafikkReiserOgSamferdsel",
    "naturOgMiljoe",
    "naeringsutvikling",
    "skatterOgAvgifter",
    "tekniskeTjenester",
)
PROCESSES: Mapping[str, frozenset[str]] = {
    **{
        f"urn:no:difi:profile:arkivmelding:{area}:ver1.0": frozenset({_ARKIVMELDING})
        for area in _ARKIV_AREAS
    },
    "urn:no:difi:profile:arkivmelding:response:ver1.0": frozenset({_ARKIVMELDING_KVITTERING})
    | _STATUS_FEIL,
    "urn:no:difi:profile:digitalpost:info:ver1.0": _DIGITALPOST,
    "urn:no:difi:profile:digitalpost:vedtak:ver1.0": _DIGITALPOST,
    "urn:no:difi:profile:einnsyn:journalpost:ver1.0": frozenset(
        {"urn:no:difi:einnsyn:xsd::publisering"}
    ),
    "urn:no:difi:profile:einnsyn-innsynskrav:ver1.0": _INNSYNSKRAV,
    "urn:no:difi:profile:einnsyn:innsynskrav:ver1.0": _INNSYNSKRAV,
    "urn:no:difi:profile:einnsyn:response:ver1.0": frozenset({_EINNSYN_KVITTERING}) | _STATUS_FEIL,
    "urn:no:difi:profile:avtalt:avtalt:ver1.0": frozenset({"urn:no:difi:avtalt:xsd::avtalt"}),
    "urn:no:difi:profile:avtalt:response:ver1.0": frozenset({"urn:no:difi:avtalt:xsd::avtalt"})
    | _STATUS_FEIL,
    "urn:fdc:digdir.no:2020:profile:egovernment:innbyggerpost:digital:ver1.0": frozenset(
        {f"{_INNBYGGERPOST}:xsd::innbyggerpost##{_INNBYGGERPOST}:schema:digital::1.0"}
    ),
    "urn:fdc:digdir.no:2020:profile:egovernment:innbyggerpost:utskrift:ver1.0": frozenset(
        {f"{_INNBYGGERPOST}:xsd::innbyggerpost##{_INNBYGGERPOST}:schema:utskrift::1.0"}
    ),
    "urn:fdc:digdir.no:2020:profile:egovernment:innbyggerpost:feil:ver1.0": frozenset(
        {f"{_INNBYGGERPOST}:xsd:feil::feil##{_INNBYGGERPOST}:schema:feil::1.0"}
    ),
}
#: KS FIKS IO names its own protocols as processes; their document type ends in ::fiksio
_FIKSIO_PROCESS_PREFIX = "urn:no:ks:fiks:"

#: message types (the business message's JSON key) that travel with files
_NEEDS_FILES = frozenset(
    {"arkivmelding", "digital", "digital_dpv", "print", "utskrift", "innsynskrav", "fiksio"}
)


def expected_message_type(standard: str) -> str:
    """The business message type a document type carries: what follows its last ``::``.

    ``urn:no:difi:arkivmelding:xsd::arkivmelding`` → ``arkivmelding``; for the innbyggerpost
    form (``…:xsd::innbyggerpost##…:schema:digital::1.0``) the schema part names it.
    """
    syntax, _, customisation = standard.partition("##")
    if customisation:
        schema = customisation.rpartition("::")[0]
        return schema.rpartition(":")[2]
    return syntax.rpartition("::")[2]


def service_identifier_for(message_type: str, process: str, *, peppol: bool) -> ServiceIdentifier:
    """The eFormidling channel a message type belongs to, before routing refines it."""
    if peppol:
        return ServiceIdentifier.UNKNOWN
    if message_type == "digital_dpv":
        return ServiceIdentifier.DPV
    if message_type in ("digital", "print", "utskrift") or "innbyggerpost" in process:
        return ServiceIdentifier.DPI
    if message_type in ("innsynskrav", "publisering", "einnsyn_kvittering"):
        return ServiceIdentifier.DPE
    if message_type == "fiksio":
        return ServiceIdentifier.DPFIO
    if message_type in ("arkivmelding", "arkivmelding_kvittering", "avtalt", "status", "feil"):
        return ServiceIdentifier.DPO
    return ServiceIdentifier.UNKNOWN


# =========================================================================== values


@dataclass(frozen=True)
class Client:
    """An API client: a name, the organisations it may act for, and whether it is disabled."""

    id: int
    name: str
    organisations: frozenset[str]
    created_at: datetime
    disabled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "organisations": sorted(self.organisations),
            "createdAt": format_timestamp(self.created_at),
            "disabled": self.disabled,
        }


@dataclass(frozen=True)
class PageRequest:
    """Spring's ``page`` (0-based) and ``size``."""

    page: int = 0
    size: int = 20

    def __post_init__(self) -> None:
        if self.page < 0:
            raise InvalidInput("page must be 0 or more", rule="page")
        if not 1 <= self.size <= _MAX_PAGE_SIZE:
            raise InvalidInput(f"size must be between 1 and {_MAX_PAGE_SIZE}", rule="size")

    @property
    def offset(self) -> int:
        return self.page * self.size


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results, with the totals; ``to_json`` gives Spring Data's ``Page`` shape."""

    content: tuple[T, ...]
    total_elements: int
    request: PageRequest
    sort: tuple[str, ...] = ()

    @property
    def total_pages(self) -> int:
        return -(-self.total_elements // self.request.size)

    def to_json(self, item: Callable[[T], Any] | None = None) -> dict[str, Any]:
        render = item or (lambda value: value.to_json())  # type: ignore[attr-defined]
        sorted_ = bool(self.sort)
        sort = {"empty": not sorted_, "sorted": sorted_, "unsorted": not sorted_}
        number = self.request.page
        return {
            "content": [render(value) for value in self.content],
            "pageable": {
                "sort": sort,
                "offset": self.request.offset,
                "pageNumber": number,
                "pageSize": self.request.size,
                "paged": True,
                "unpaged": False,
            },
            "totalPages": self.total_pages,
            "totalElements": self.total_elements,
            "last": number + 1 >= self.total_pages,
            "size": self.request.size,
            "number": number,
            "sort": sort,
            "numberOfElements": len(self.content),
            "first": number == 0,
            "empty": not self.content,
        }


@dataclass(frozen=True)
class FileView:
    filename: str
    mime_type: str
    title: str | None
    primary: bool
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "mimeType": self.mime_type,
            "title": self.title,
            "primary": self.primary,
            "size": self.size,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class MessageView:
    """A stored message. ``to_json()`` is the SBD in the NextMove JSON form (bare)."""

    message_id: str
    conversation_id: str
    direction: Direction
    sender: str
    receiver: str
    service_identifier: ServiceIdentifier
    process: str
    document_type: str
    message_type: str
    status: MessageStatus
    created_at: datetime
    last_update: datetime
    expires_at: datetime
    sent_at: datetime | None
    locked_until: datetime | None
    acknowledged_at: datetime | None
    sbd_json: str = field(repr=False)
    files: tuple[FileView, ...] = ()
    #: True when ``create`` found this message already stored (an idempotent repeat)
    existing: bool = field(default=False, compare=False)

    def sbd(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.sbd_json)
        return value

    def to_json(self) -> dict[str, Any]:
        return self.sbd()

    def summary_json(self) -> dict[str, Any]:
        """What the store knows beside the SBD (for ops views and the CLI)."""
        return {
            "messageId": self.message_id,
            "conversationId": self.conversation_id,
            "direction": self.direction.value,
            "sender": self.sender,
            "receiver": self.receiver,
            "serviceIdentifier": self.service_identifier.value,
            "processIdentifier": self.process,
            "documentIdentifier": self.document_type,
            "status": self.status.value,
            "created": format_timestamp(self.created_at),
            "lastUpdate": format_timestamp(self.last_update),
            "expiry": format_timestamp(self.expires_at),
            "files": [f.to_json() for f in self.files],
        }


@dataclass(frozen=True)
class StatusView:
    """One recorded status; ``to_json()`` is integrasjonspunkt's MessageStatus JSON."""

    id: int
    conv_id: int
    message_id: str
    conversation_id: str
    direction: Direction
    service_identifier: ServiceIdentifier
    status: MessageStatus
    last_update: datetime
    description: str | None = None
    raw_receipt: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "id": self.id,
            "lastUpdate": format_timestamp(self.last_update),
            "status": self.status.value,
            "description": self.description,
            "convId": self.conv_id,
            "messageId": self.message_id,
            "conversationId": self.conversation_id,
        }
        if self.raw_receipt is not None:
            value["rawReceipt"] = self.raw_receipt
        return value

    def conversation_json(self) -> dict[str, Any]:
        """The short form inside a Conversation's ``messageStatuses``."""
        return {
            "id": self.id,
            "lastUpdate": format_timestamp(self.last_update),
            "status": self.status.value,
            "description": self.description,
        }


@dataclass(frozen=True)
class ConversationView:
    """integrasjonspunkt's Conversation: one message's journey, with its statuses."""

    id: int
    conversation_id: str
    message_id: str
    sender: str
    sender_identifier: str
    receiver: str
    receiver_identifier: str
    process: str
    document_type: str
    message_reference: str | None
    message_title: str | None
    service_identifier: ServiceIdentifier
    direction: Direction
    finished: bool
    expiry: datetime | None
    last_update: datetime
    statuses: tuple[StatusView, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversationId": self.conversation_id,
            "messageId": self.message_id,
            "sender": self.sender,
            "senderIdentifier": self.sender_identifier,
            "receiver": self.receiver,
            "receiverIdentifier": self.receiver_identifier,
            "processIdentifier": self.process,
            "documentIdentifier": self.document_type,
            "messageReference": self.message_reference,
            "messageTitle": self.message_title,
            "serviceIdentifier": self.service_identifier.value,
            "lastUpdate": format_timestamp(self.last_update),
            "finished": self.finished,
            "expiry": format_timestamp(self.expiry),
            "direction": self.direction.value,
            "messageStatuses": [s.conversation_json() for s in self.statuses],
        }


@dataclass(frozen=True)
class MessageQuery:
    """Filters of ``GET /api/messages/in`` (and the outgoing list)."""

    message_id: str | None = None
    conversation_id: str | None = None
    service_identifier: ServiceIdentifier | None = None
    process: str | None = None
    sender_identifier: str | None = None
    receiver_identifier: str | None = None


@dataclass(frozen=True)
class StatusQuery:
    """Filters of ``GET /api/statuses``."""

    message_id: str | None = None
    conversation_id: str | None = None
    status: MessageStatus | None = None
    service_identifier: ServiceIdentifier | None = None
    direction: Direction | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None


@dataclass(frozen=True)
class ConversationQuery:
    """Filters of ``GET /api/conversations``."""

    conversation_id: str | None = None
    message_id: str | None = None
    sender_identifier: str | None = None
    receiver_identifier: str | None = None
    message_reference: str | None = None
    message_title: str | None = None
    service_identifier: ServiceIdentifier | None = None
    direction: Direction | None = None
    finished: bool | None = None


@dataclass(frozen=True)
class Upload:
    """One file of a one-step (multipart) send: its chunks are read once."""

    filename: str
    mime_type: str
    chunks: AsyncIterator[bytes] | bytes = field(repr=False)
    title: str | None = None


@dataclass(frozen=True)
class PoppedMessage:
    """The document package of an incoming message, streamed (``chunks`` can be read once)."""

    message_id: str
    filename: str
    content_type: str
    chunks: AsyncIterator[bytes] = field(repr=False)


@dataclass(frozen=True)
class DeliveryResult:
    """What :meth:`MessageService.deliver_locally` did."""

    message_id: str
    receiver: str
    #: False when the message had been delivered already (a redelivered job)
    delivered: bool
    #: True when this was a business receipt that marked the original message LEST
    read_receipt: bool = False


# =========================================================================== helpers

#: statuses that end an outgoing message before it is handed over: it is never delivered after
_ENDED_UNSENT = frozenset({MessageStatus.FEIL.value, MessageStatus.LEVETID_UTLOPT.value})

_ICD_PREFIX = re.compile(r"^[0-9]{4}:")
_SAFE_FILENAME = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,255}$")
_JSON_PATH_HEADER = "standardBusinessDocumentHeader"


def party_key(value: str) -> str:
    """The organisation number or national id inside a participant value (``0192:…``)."""
    return value.split(":", 1)[1] if _ICD_PREFIX.match(value) else value


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _token_hash(token: str) -> str:
    return _sha256_hex(token.encode("utf-8"))


def _first_difference(old: Any, new: Any, path: str = "") -> str | None:
    """The JSON path of the first place where two JSON trees differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            where = f"{path}.{key}" if path else key
            if key not in old or key not in new:
                return where
            found = _first_difference(old[key], new[key], where)
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list):
        for index, (a, b) in enumerate(zip(old, new, strict=False)):
            found = _first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None if len(old) == len(new) else f"{path}[{min(len(old), len(new))}]"
    return None if old == new else (path or "$")


def _check_filename(filename: str) -> None:
    if not filename or not _SAFE_FILENAME.match(filename) or filename in (".", ".."):
        raise InvalidInput(
            f"file name {filename!r} is not allowed: 1-255 characters, no path separators "
            "or control characters",
            rule="filename",
        )


def _check_id(value: str, what: str, json_field: str) -> None:
    if not value or len(value) > MAX_ID_LENGTH:
        raise InvalidInput(
            f"{json_field}: the {what} must be 1 to {MAX_ID_LENGTH} characters", rule=json_field
        )


async def _iterate(source: AsyncIterator[bytes] | bytes) -> AsyncIterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield bytes(source)
        return
    async for chunk in source:
        yield chunk


async def _limited(
    source: AsyncIterator[bytes], budget: list[int], limit: int
) -> AsyncIterator[bytes]:
    """Counts into ``budget[0]`` across several files; PayloadTooLarge past ``limit``."""
    async for chunk in source:
        budget[0] += len(chunk)
        if budget[0] > limit:
            raise PayloadTooLarge(
                f"the request is larger than the limit of {limit} bytes", rule="multipart-size"
            )
        yield chunk


def party_of(value: str) -> ParticipantId | NationalId:
    """The party a stored sender or receiver value names: a person (11 digits) or a participant."""
    key = party_key(value)
    if len(key) == 11 and key.isdigit():
        return NationalId(key)
    return ParticipantId(value)


_ROW_COLUMNS = (
    messages.c.id,
    messages.c.message_id,
    messages.c.conversation_id,
    messages.c.direction,
    messages.c.sender,
    messages.c.sender_org,
    messages.c.receiver,
    messages.c.receiver_org,
    messages.c.service_identifier,
    messages.c.process,
    messages.c.document_type,
    messages.c.message_type,
    messages.c.sbd_json,
    messages.c.content_hash,
    messages.c.status,
    messages.c.finished,
    messages.c.created_at,
    messages.c.last_update,
    messages.c.expires_at,
    messages.c.sent_at,
    messages.c.locked_until,
    messages.c.locked_by,
    messages.c.acknowledged_at,
)


_INSERT_CONVERSATION = conversations.insert()
_INSERT_FILE = message_files.insert()

#: what a local delivery copies from the outgoing row to the incoming one
_COPIED_COLUMNS = (
    messages.c.message_id,
    messages.c.conversation_id,
    messages.c.sender,
    messages.c.sender_org,
    messages.c.receiver,
    messages.c.receiver_org,
    messages.c.service_identifier,
    messages.c.process,
    messages.c.document_type,
    messages.c.message_type,
    messages.c.sbd_json,
    messages.c.content_hash,
    messages.c.expires_at,
)
#: the incoming copy shares the outgoing message's stored files (one copy on disk)
_COPY_FILES = message_files.insert().from_select(
    [
        "message_pk",
        "filename",
        "mime_type",
        "title",
        "primary",
        "size",
        "sha256",
        "storage_id",
        "created_at",
    ],
    sa.select(
        sa.bindparam("incoming_pk", type_=messages.c.id.type),
        message_files.c.filename,
        message_files.c.mime_type,
        message_files.c.title,
        message_files.c.primary,
        message_files.c.size,
        message_files.c.sha256,
        message_files.c.storage_id,
        sa.bindparam("now", type_=message_files.c.created_at.type),
    ).where(message_files.c.message_pk == sa.bindparam("outgoing_pk")),
)
#: the incoming copy's conversation, its title read from the sender's in the same statement
_COPY_CONVERSATION = conversations.insert().values(
    message_title=sa.select(conversations.c.message_title)
    .where(conversations.c.message_pk == sa.bindparam("outgoing_pk"))
    .scalar_subquery()
)
_SET_STATUS = (
    messages.update()
    .where(messages.c.id == sa.bindparam("pk"))
    .values(
        status=sa.bindparam("new_status"),
        last_update=sa.bindparam("now"),
        finished=sa.bindparam("done"),
    )
)
_SET_CONVERSATION = (
    conversations.update()
    .where(conversations.c.message_pk == sa.bindparam("pk"))
    .values(last_update=sa.bindparam("now"), finished=sa.bindparam("done"))
)
#: the ``network-status`` job of an acknowledged message that came over AS4
_NETWORK_STATUS_OUTBOX = outbox.insert().from_select(
    ["kind", "message_id", "payload", "created_at"],
    sa.select(
        sa.literal("network-status", type_=outbox.c.kind.type),
        sa.bindparam("message_id", type_=outbox.c.message_id.type),
        sa.bindparam("payload", type_=outbox.c.payload.type),
        sa.bindparam("now", type_=outbox.c.created_at.type),
    ).where(
        sa.exists().where(
            as4_exchanges.c.message_pk == sa.bindparam("pk"),
            as4_exchanges.c.direction == Direction.INCOMING.value,
        )
    ),
)
#: (message_pk, message_id, direction, status, description, raw_receipt)
_EventSpec = tuple[int, str, Direction, MessageStatus, str | None, str | None]
#: seconds a "this organisation is served here" answer is remembered
_HOSTED_TTL = 5.0


@dataclass(frozen=True)
class NetworkFile:
    """A file of a message received from another access point, already in the file store."""

    stored: StoredFile
    filename: str
    mime_type: str
    #: ``document``, or ``package`` for a document package kept as it came
    role: str = "document"


@dataclass(frozen=True)
class NetworkAcceptance:
    """What :meth:`MessageService.accept_from_network` did."""

    message_id: str
    duplicate: bool
    #: for a ``status`` message: the outgoing message whose status it recorded
    status_of: str | None = None
    read_receipt: bool = False


class _InUse(Exception):
    """The message id is taken: the one-transaction send steps aside (rolled back)."""


@dataclass(frozen=True)
class _RowShape:
    """What :meth:`MessageService._is_primary` reads of a message row."""

    message_type: str
    sbd_json: str


_INSERT_MESSAGE: dict[str, Any] = {}


def _insert_message(connection: AsyncConnection) -> Any:
    """``INSERT INTO messages … ON CONFLICT DO NOTHING RETURNING <the row>``, built once."""
    dialect = connection.dialect.name
    statement = _INSERT_MESSAGE.get(dialect)
    if statement is None:
        base = insert_ignore(connection, messages, "message_id", "direction")
        statement = base.returning(*_ROW_COLUMNS)
        _INSERT_MESSAGE[dialect] = statement
    return statement


def _conversation_values(
    pk: int, direction: Direction, parsed: _Parsed, now: datetime, *, title: str | None
) -> dict[str, Any]:
    """The conversations row of a new message."""
    return {
        "message_pk": pk,
        "conversation_id": parsed.conversation_id,
        "message_id": parsed.message_id,
        "direction": direction.value,
        "sender": parsed.sender,
        "sender_identifier": party_key(parsed.sender),
        "receiver": parsed.receiver,
        "receiver_identifier": party_key(parsed.receiver),
        "service_identifier": parsed.service_identifier.value,
        "process": parsed.process,
        "document_type": parsed.document_type,
        "message_reference": parsed.conversation_id,
        "message_title": title,
        "finished": False,
        "expiry": parsed.expires_at,
        "last_update": now,
    }


def _decision_values(pk: int, decision: RoutingDecision) -> dict[str, Any]:
    """The routing_decisions row of ``decision`` for message ``pk``."""
    return {
        "message_pk": pk,
        "decided_at": decision.decided_at,
        "channel": decision.channel.value,
        "rule": decision.rule,
        "reason": decision.reason,
        "record": decision.to_json(),
    }


@dataclass(frozen=True)
class _Delivery:
    """A local delivery on its way into a group-commit round."""

    message_id: str
    claim: Callable[[AsyncConnection], Awaitable[bool]] | None


class _RoundConflict(Exception):
    """A round that must be written item by item instead (see :class:`GroupCommit`)."""


@dataclass(frozen=True)
class _NewSend:
    """A new outgoing message of the one-step send, on its way into a group-commit round."""

    parsed: _Parsed
    sbd_json: str
    now: datetime
    title: str | None
    views: list[FileView]
    contents: list[bytes]


def _message_values(
    parsed: _Parsed, sbd_json: str, direction: Direction, status: MessageStatus, now: datetime
) -> dict[str, Any]:
    """A new message row's values, from its parsed SBD."""
    return {
        "message_id": parsed.message_id,
        "conversation_id": parsed.conversation_id,
        "direction": direction.value,
        "sender": parsed.sender,
        "sender_org": party_key(parsed.sender),
        "receiver": parsed.receiver,
        "receiver_org": party_key(parsed.receiver),
        "service_identifier": parsed.service_identifier.value,
        "process": parsed.process,
        "document_type": parsed.document_type,
        "message_type": parsed.message_type,
        "sbd_json": sbd_json,
        "content_hash": parsed.content_hash,
        "status": status.value,
        "finished": False,
        "created_at": now,
        "last_update": now,
        "expires_at": parsed.expires_at,
    }


def _message_view(
    row: Any, files: Sequence[FileView] = (), *, existing: bool = False
) -> MessageView:
    return MessageView(
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        direction=Direction(row.direction),
        sender=row.sender,
        receiver=row.receiver,
        service_identifier=ServiceIdentifier(row.service_identifier),
        process=row.process,
        document_type=row.document_type,
        message_type=row.message_type,
        status=MessageStatus(row.status),
        created_at=row.created_at,
        last_update=row.last_update,
        expires_at=row.expires_at,
        sent_at=row.sent_at,
        locked_until=row.locked_until,
        acknowledged_at=row.acknowledged_at,
        sbd_json=row.sbd_json,
        files=tuple(files),
        existing=existing,
    )


def _file_view(row: Any) -> FileView:
    return FileView(row.filename, row.mime_type, row.title, row.primary, row.size, row.sha256)


_STATUS_COLUMNS = (
    status_events.c.id,
    status_events.c.status,
    status_events.c.description,
    status_events.c.raw_receipt,
    status_events.c.created_at,
    conversations.c.id.label("conv_id"),
    messages.c.message_id,
    messages.c.conversation_id,
    messages.c.direction,
    messages.c.service_identifier,
)


def _status_view(row: Any) -> StatusView:
    return StatusView(
        id=row.id,
        conv_id=row.conv_id,
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        direction=Direction(row.direction),
        service_identifier=ServiceIdentifier(row.service_identifier),
        status=MessageStatus(row.status),
        last_update=row.created_at,
        description=row.description,
        raw_receipt=row.raw_receipt,
    )


def _status_join() -> Any:
    return status_events.join(messages, messages.c.id == status_events.c.message_pk).join(
        conversations, conversations.c.message_pk == messages.c.id
    )


def _visible(organisations: Iterable[str]) -> sa.ColumnElement[bool]:
    """Messages a client with ``organisations`` may see."""
    orgs = sorted(organisations)
    return sa.or_(
        sa.and_(messages.c.direction == Direction.OUTGOING.value, messages.c.sender_org.in_(orgs)),
        sa.and_(
            messages.c.direction == Direction.INCOMING.value, messages.c.receiver_org.in_(orgs)
        ),
    )


@dataclass(frozen=True)
class _Parsed:
    """What ``create`` takes out of an SBD."""

    document: StandardBusinessDocument
    message_id: str
    conversation_id: str
    sender: str
    receiver: str
    process: str
    document_type: str
    message_type: str
    service_identifier: ServiceIdentifier
    expires_at: datetime
    received_json: dict[str, Any]
    stored_json: dict[str, Any]
    content_hash: str
    #: True when the SBD had no expectedResponseDateTime and got the default lifetime
    expiry_defaulted: bool


# =========================================================================== the service


class MessageService:
    """Every business operation on messages, clients and statuses (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        files: FileStore,
        settings: Settings,
        ap_credential: Credential,
        clock: Clock = _utc_now,
    ) -> None:
        self.database = database
        self.files = files
        self.settings = settings
        self.ap_credential = ap_credential
        self.clock = clock
        self._auth_cache: dict[str, tuple[float, Client]] = {}
        #: seconds an authenticated token is trusted without asking the database again
        self.auth_cache_ttl = 5.0
        self._hosted: frozenset[str] = frozenset()
        self._hosted_until = 0.0
        #: new one-step sends of concurrent requests, written one transaction per round
        self._send_writer: GroupCommit[_NewSend, Any] = GroupCommit(
            self._write_new_sends, max_batch=64, name="one-step send"
        )
        #: local deliveries of concurrent jobs, likewise
        self._delivery_writer: GroupCommit[_Delivery, Any] = GroupCommit(
            self._deliver_round, max_batch=32, name="local delivery"
        )

    # ------------------------------------------------------------------ clients

    async def create_client(
        self, name: str, organisations: Iterable[str | OrganisationNumber]
    ) -> tuple[Client, str]:
        """A new API client and its token (shown once; only its SHA-256 is stored)."""
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("name: 1 to 200 characters", rule="name")
        orgs = frozenset(str(OrganisationNumber.parse(str(org))) for org in organisations)
        if not orgs:
            raise InvalidInput(
                "organisations: at least one organisation number", rule="organisations"
            )
        token = "bsk_" + secrets.token_urlsafe(32)
        now = self.clock()
        async with self.database.transaction() as connection:
            result = await connection.execute(
                api_clients.insert()
                .values(
                    name=name,
                    token_sha256=_token_hash(token),
                    organisations=sorted(orgs),
                    created_at=now,
                    disabled=False,
                )
                .returning(api_clients.c.id)
            )
            client_id = int(result.scalar_one())
        return Client(client_id, name, orgs, now), token

    async def authenticate(self, token: str | None) -> Client:
        """The client holding ``token``; :class:`Unauthorized` otherwise."""
        if not token:
            raise Unauthorized("an API token is required (Authorization: Bearer <token>)")
        digest = _token_hash(token)
        cached = self._auth_cache.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self.database.read() as connection:
            row = (
                await connection.execute(
                    sa.select(api_clients).where(api_clients.c.token_sha256 == digest)
                )
            ).first()
        if row is None or not hmac.compare_digest(row.token_sha256, digest) or row.disabled:
            raise Unauthorized("unknown or disabled API token")
        client = Client(
            row.id, row.name, frozenset(row.organisations), row.created_at, bool(row.disabled)
        )
        if len(self._auth_cache) > 10_000:
            self._auth_cache.clear()
        self._auth_cache[digest] = (time.monotonic() + self.auth_cache_ttl, client)
        return client

    async def clients(self) -> list[Client]:
        async with self.database.read() as connection:
            rows = (
                await connection.execute(sa.select(api_clients).order_by(api_clients.c.id))
            ).all()
        return [
            Client(r.id, r.name, frozenset(r.organisations), r.created_at, bool(r.disabled))
            for r in rows
        ]

    async def disable_client(self, client_id: int) -> None:
        async with self.database.transaction() as connection:
            result = await connection.execute(
                api_clients.update().where(api_clients.c.id == client_id).values(disabled=True)
            )
        if result.rowcount == 0:
            raise NotFound(f"no client {client_id}")
        self._auth_cache.clear()

    async def hosted_organisations(
        self, connection: AsyncConnection | None = None
    ) -> frozenset[str]:
        """Organisations served here: the configured ones and every enabled client's."""
        orgs = {str(org) for org in self.settings.organisations}
        query = sa.select(api_clients.c.organisations).where(api_clients.c.disabled == sa.false())
        if connection is None:
            async with self.database.read() as conn:
                rows = (await conn.execute(query)).scalars().all()
        else:
            rows = (await connection.execute(query)).scalars().all()
        for listed in rows:
            orgs.update(listed)
        return frozenset(orgs)

    # ------------------------------------------------------------------ outgoing

    def _parse(self, sbd: StandardBusinessDocument | bytes, now: datetime) -> _Parsed:
        if isinstance(sbd, bytes | bytearray):
            document = check_sbd(bytes(sbd), Profile.GENERIC)
            if isinstance(document.payload, DetachedPayload):
                raise InvalidInput(
                    "detachedDocument: only the access point writes this marker (for an SBD it "
                    "keeps as a file); send the SBD itself, as XML when it is large",
                    rule="detachedDocument",
                )
        else:
            document = sbd
        header = document.header
        payload = document.payload
        detached = isinstance(payload, DetachedPayload)
        eformidling = (
            isinstance(payload, BusinessMessage)
            or (isinstance(payload, DetachedPayload) and payload.namespace == NEXTMOVE_NS)
            or header.document_identification.standard.startswith(
                ("urn:no:difi:", "urn:fdc:digdir.no:")
            )
        )
        if eformidling and detached:
            # an eFormidling SBD is signed whole and its business message read as JSON: both
            # need it in memory. Its documents travel as files, so the SBD itself stays small.
            raise PayloadTooLarge(
                f"an eFormidling SBD larger than {self.settings.sbd_stream_threshold} bytes is "
                "not accepted: upload the documents as files of the message",
                rule="sbd-size",
            )
        profile = Profile.EFORMIDLING if eformidling else Profile.PEPPOL
        report = validate_document(document, profile)
        if not report.valid:
            raise EnvelopeError(report.violations)
        ident = header.document_identification
        message_id = ident.instance_identifier
        _check_id(
            message_id,
            "message id",
            f"{_JSON_PATH_HEADER}.documentIdentification.instanceIdentifier",
        )
        sender = header.sender
        receiver = header.receiver
        if sender is None or receiver is None:  # the profiles demand one of each
            raise InvalidInput("the SBD needs one sender and one receiver", rule="sender")
        if eformidling:
            conversation_id = header.conversation_id or message_id
            process = header.process or ""
            standard = ident.standard
            if isinstance(document.payload, BusinessMessage):
                message_type = document.payload.type
            elif isinstance(document.payload, XmlPayload):
                message_type = document.payload.local_name
            else:
                message_type = ident.type
            self._check_process(process, standard, message_type, ident.type)
            service = service_identifier_for(message_type, process, peppol=False)
        else:
            conversation_id = message_id
            doc_id = header.document_type_id
            proc_id = header.process_id
            standard = doc_id.value if doc_id else ident.standard
            process = proc_id.value if proc_id else ""
            message_type = ident.type
            service = ServiceIdentifier.UNKNOWN
        _check_id(
            conversation_id,
            "conversation id",
            f"{_JSON_PATH_HEADER}.businessScope.scope[ConversationId].instanceIdentifier",
        )
        received_json = sbd_to_python(document, wrapped=False)
        content_hash = _sha256_hex(
            json.dumps(received_json, sort_keys=True, separators=(",", ":")).encode("utf-8")
        )
        expires_at, document = self._expiry(document, now, eformidling=eformidling)
        stored_json = sbd_to_python(document, wrapped=False)
        return _Parsed(
            document=document,
            message_id=message_id,
            conversation_id=conversation_id,
            sender=sender.value,
            receiver=receiver.value,
            process=process,
            document_type=standard,
            message_type=message_type,
            service_identifier=service,
            expires_at=expires_at,
            received_json=received_json,
            stored_json=stored_json,
            content_hash=content_hash,
            expiry_defaulted=header.expected_response_date_time is None,
        )

    @staticmethod
    def _check_process(process: str, standard: str, message_type: str, type_: str) -> None:
        scope_field = f"{_JSON_PATH_HEADER}.businessScope.scope[ConversationId].identifier"
        standard_field = f"{_JSON_PATH_HEADER}.documentIdentification.standard"
        if process.startswith(_FIKSIO_PROCESS_PREFIX):
            allowed: frozenset[str] | None = None
            if not standard.endswith("::fiksio"):
                raise InvalidInput(
                    f"{standard_field}: a FIKS IO process ({process}) carries a document type "
                    f"ending in ::fiksio, not {standard!r}",
                    rule=standard_field,
                )
        else:
            allowed = PROCESSES.get(process)
            if allowed is None:
                raise InvalidInput(
                    f"{scope_field}: unknown eFormidling process {process!r}", rule=scope_field
                )
            if standard not in allowed:
                raise InvalidInput(
                    f"{standard_field}: document type {standard!r} does not belong to process "
                    f"{process!r} (expected one of: {', '.join(sorted(allowed))})",
                    rule=standard_field,
                )
        expected = expected_message_type(standard)
        if message_type != expected:
            raise InvalidInput(
                f"{message_type}: the business message must be {expected!r} for document type "
                f"{standard!r}, not {message_type!r}",
                rule="businessMessage",
            )
        if type_ != expected:
            type_field = f"{_JSON_PATH_HEADER}.documentIdentification.type"
            raise InvalidInput(
                f"{type_field}: must be {expected!r} for document type {standard!r}",
                rule=type_field,
            )

    def _expiry(
        self, document: StandardBusinessDocument, now: datetime, *, eformidling: bool
    ) -> tuple[datetime, StandardBusinessDocument]:
        """The message's expiry, and the SBD with ``expectedResponseDateTime`` filled in."""
        header = document.header
        lexical = header.expected_response_date_time
        field_name = (
            f"{_JSON_PATH_HEADER}.businessScope.scope[ConversationId]"
            ".scopeInformation[0].expectedResponseDateTime"
        )
        if lexical:
            expires = parse_xs_datetime(lexical)
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            if expires <= now:
                raise InvalidInput(f"{field_name}: {lexical} is not in the future", rule=field_name)
            return expires.astimezone(UTC), document
        expires = now + self.settings.default_lifetime
        if not eformidling:
            return expires, document
        scope = header.scope(ScopeType.CONVERSATION_ID)
        if scope is None:
            return expires, document
        info = CorrelationInformation(
            expected_response_date_time=format_xs_datetime(expires),
            form=ScopeInformationForm.SCOPE_INFORMATION,
        )
        others = tuple(
            i
            for i in scope.scope_information
            if not (isinstance(i, CorrelationInformation) and not i.expected_response_date_time)
        )
        new_scope = replace(scope, scope_information=(info, *others))
        assert header.business_scope is not None  # the scope came from it
        scopes = tuple(new_scope if s is scope else s for s in header.business_scope.scopes)
        new_header = replace(header, business_scope=replace(header.business_scope, scopes=scopes))
        return expires, replace(document, header=new_header)

    async def create(self, client: Client, sbd: StandardBusinessDocument | bytes) -> MessageView:
        """Store a new outgoing message (OPPRETTET); idempotent on message id and content.

        An XML SBD larger than ``settings.sbd_stream_threshold`` takes the streamed path
        (:meth:`create_streamed`) even when it is handed over whole.
        """
        if isinstance(sbd, bytes | bytearray) and self.streams(sbd):
            return await self.create_streamed(client, _iterate(bytes(sbd)))
        now = self.clock()
        return await self._create_parsed(client, self._parse(sbd, now), now)

    def streams(self, head: bytes, *, size: int | None = None) -> bool:
        """Whether an SBD of ``size`` bytes (default: ``len(head)``) whose bytes begin (or
        are) ``head`` takes the streamed path: XML, over ``settings.sbd_stream_threshold``."""
        total = len(head) if size is None else size
        return (
            total > self.settings.sbd_stream_threshold
            and head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"
        )

    def sbd_stream_limits(self) -> SbdStreamLimits:
        """The streamed reader's limits: the parser's defaults, the size from the settings."""
        xml = replace(DEFAULT_SBD_STREAM_LIMITS.xml, max_bytes=self.settings.max_sbd_size)
        return replace(DEFAULT_SBD_STREAM_LIMITS, xml=xml)

    def read_stored_sbd(self, storage_id: str, profile: Profile) -> StreamedSbd:
        """An SBD kept in the file store, read streamed and judged by ``profile`` (blocking:
        run it on a thread)."""
        with self.files.open(storage_id) as source:
            return check_sbd_stream(source, profile, self.sbd_stream_limits())

    async def create_streamed(self, client: Client, chunks: AsyncIterator[bytes]) -> MessageView:
        """:meth:`create` for an XML SBD too large to hold (hundreds of MB): never whole in
        memory.

        The bytes go straight to the encrypted file store (at most ``settings.max_sbd_size``),
        are read back streamed (:mod:`sbdh.stream`: the header modelled and judged, the rest
        checked to be well-formed), and the message is stored with the file (role ``sbd``, name
        ``sbd.xml``) and, in the database, the header and a ``detachedDocument`` marker (the
        business message's name, the SBD's size and SHA-256) in place of the business message.
        The AS4 channel sends the file as it came. Only Peppol SBDs: an eFormidling SBD is
        signed and read whole, and carries its documents as files. Idempotent as
        :meth:`create`: the marker holds the SHA-256 of the bytes, so the same bytes again are
        the same message and other bytes under the same message id a conflict.
        """
        try:
            stored = await self.files.write(chunks, max_size=self.settings.max_sbd_size)
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(
                f"the SBD is larger than the limit of {self.settings.max_sbd_size} bytes",
                rule="sbd-size",
            ) from exc
        try:
            streamed = await asyncio.to_thread(
                self.read_stored_sbd, stored.storage_id, Profile.GENERIC
            )
            now = self.clock()
            parsed = self._parse(streamed.document, now)
            view = await self._create_parsed(client, parsed, now, sbd_file=stored)
        except BaseException:
            await self.files.delete(stored.storage_id)
            raise
        if view.existing:  # the message is stored with its own copy of these bytes
            await self.files.delete(stored.storage_id)
        return view

    async def _create_parsed(
        self,
        client: Client,
        parsed: _Parsed,
        now: datetime,
        *,
        sbd_file: StoredFile | None = None,
    ) -> MessageView:
        """Store a parsed SBD as a new outgoing message, with its SBD file when it has one."""
        sender_org = party_key(parsed.sender)
        if sender_org not in client.organisations:
            raise Forbidden(
                f"{_JSON_PATH_HEADER}.sender: this client may not send as {parsed.sender}",
                rule=f"{_JSON_PATH_HEADER}.sender",
            )
        sbd_json = json.dumps(parsed.stored_json, ensure_ascii=False, separators=(",", ":"))
        async with self.database.transaction() as connection:
            inserted = await connection.execute(
                _insert_message(connection),
                {
                    **_message_values(
                        parsed, sbd_json, Direction.OUTGOING, MessageStatus.OPPRETTET, now
                    ),
                    "sent_at": None,
                    "locked_until": None,
                    "locked_by": None,
                    "acknowledged_at": None,
                },
            )
            row = inserted.first()
            if row is not None:
                await self._insert_conversation(connection, row.id, Direction.OUTGOING, parsed, now)
                if sbd_file is not None:
                    await connection.execute(
                        _INSERT_FILE,
                        {
                            "message_pk": row.id,
                            "filename": SBD_FILENAME,
                            "mime_type": "application/xml",
                            "title": None,
                            "primary": False,
                            "size": sbd_file.size,
                            "sha256": sbd_file.sha256,
                            "storage_id": sbd_file.storage_id,
                            "created_at": now,
                            "role": SBD_ROLE,
                        },
                    )
                await insert_status_event(
                    connection,
                    message_pk=row.id,
                    message_id=parsed.message_id,
                    direction=Direction.OUTGOING,
                    status=MessageStatus.OPPRETTET,
                    now=now,
                )
                return _message_view(row)
            existing = await self._outgoing_row(connection, client, parsed.message_id)
            if existing is None:
                # stored for an organisation this client does not hold: same answer as a
                # different message with that id, without revealing whose it is
                raise Conflict(
                    f"{_JSON_PATH_HEADER}.documentIdentification.instanceIdentifier: message id "
                    f"{parsed.message_id} is already in use",
                    rule=f"{_JSON_PATH_HEADER}.documentIdentification.instanceIdentifier",
                )
            if existing.content_hash != parsed.content_hash:
                stored = json.loads(existing.sbd_json)
                candidate = parsed.received_json
                if parsed.expiry_defaulted:
                    candidate = parsed.stored_json  # compare with the default filled in alike
                    candidate = _with_expiry_of(candidate, stored)
                where = _first_difference(stored, candidate) or "$"
                raise Conflict(
                    f"{where}: message {parsed.message_id} exists with different content",
                    rule=where,
                )
            files = await self._files(connection, [existing.id])
        return _message_view(existing, files.get(existing.id, ()), existing=True)

    async def _insert_conversation(
        self,
        connection: AsyncConnection,
        pk: int,
        direction: Direction,
        parsed: _Parsed,
        now: datetime,
        *,
        title: str | None = None,
    ) -> None:
        await connection.execute(
            _INSERT_CONVERSATION, _conversation_values(pk, direction, parsed, now, title=title)
        )

    async def _outgoing_row(
        self, connection: AsyncConnection, client: Client, message_id: str
    ) -> Any:
        return (
            await connection.execute(
                sa.select(*_ROW_COLUMNS).where(
                    messages.c.message_id == message_id,
                    messages.c.direction == Direction.OUTGOING.value,
                    messages.c.sender_org.in_(sorted(client.organisations)),
                )
            )
        ).first()

    async def _require_outgoing(
        self, connection: AsyncConnection, client: Client, message_id: str
    ) -> Any:
        row = await self._outgoing_row(connection, client, message_id)
        if row is None:
            raise NotFound(f"no outgoing message {message_id}")
        return row

    async def _files(
        self, connection: AsyncConnection, pks: Sequence[int]
    ) -> dict[int, list[FileView]]:
        if not pks:
            return {}
        rows = (
            await connection.execute(
                sa.select(message_files)
                .where(
                    message_files.c.message_pk.in_(list(pks)),
                    # the SBD kept as a file is the message itself, not one of its files
                    message_files.c.role != SBD_ROLE,
                )
                .order_by(message_files.c.id)
            )
        ).all()
        found: dict[int, list[FileView]] = {}
        for row in rows:
            found.setdefault(row.message_pk, []).append(_file_view(row))
        return found

    async def upload(  # noqa: PLR0917 - the NextMove upload's parts, in their order
        self,
        client: Client,
        message_id: str,
        filename: str,
        mime_type: str,
        title: str | None,
        chunks: AsyncIterator[bytes] | bytes,
        *,
        max_size: int | None = None,
    ) -> FileView:
        """Stream one file of an unsent outgoing message to the encrypted file store.

        The same file (name and bytes) again is a no-op; another file under a used name is
        :class:`Conflict`; after ``send`` every upload is :class:`Conflict`.
        """
        _check_filename(filename)
        if not mime_type or len(mime_type) > 200:
            raise InvalidInput("Content-Type: a media type is required", rule="mimeType")
        async with self.database.read() as connection:
            row = await self._require_outgoing(connection, client, message_id)
        if row.sent_at is not None:
            raise Conflict(f"message {message_id} has been sent: no more files", rule="messageId")
        limit = self.settings.max_file_size if max_size is None else max_size
        stored = await self.files.write(_iterate(chunks), max_size=limit)
        try:
            return await self._attach(row, filename, mime_type, title, stored)
        except BaseException:
            await self.files.delete(stored.storage_id)
            raise

    async def _attach(
        self, row: Any, filename: str, mime_type: str, title: str | None, stored: StoredFile
    ) -> FileView:
        now = self.clock()
        async with self.database.transaction() as connection:
            # the message is still unsent, under this transaction's lock
            current = (
                await connection.execute(
                    messages.update()
                    .where(messages.c.id == row.id, messages.c.sent_at.is_(None))
                    .values(last_update=now)
                )
            ).rowcount
            if current == 0:
                raise Conflict(
                    f"message {row.message_id} has been sent or deleted: no more files",
                    rule="messageId",
                )
            same = (
                await connection.execute(
                    sa.select(message_files).where(
                        message_files.c.message_pk == row.id, message_files.c.filename == filename
                    )
                )
            ).first()
            if same is not None:
                if same.sha256 == stored.sha256 and same.size == stored.size:
                    await self.files.delete(stored.storage_id)
                    return _file_view(same)
                raise Conflict(
                    f"filename: {filename!r} is already uploaded with other content",
                    rule="filename",
                )
            count = (
                await connection.execute(
                    sa.select(sa.func.count())
                    .select_from(message_files)
                    .where(message_files.c.message_pk == row.id, message_files.c.role != SBD_ROLE)
                )
            ).scalar_one()
            primary = self._is_primary(row, filename, first=count == 0)
            await connection.execute(
                message_files.insert().values(
                    message_pk=row.id,
                    filename=filename,
                    mime_type=mime_type,
                    title=title,
                    primary=primary,
                    size=stored.size,
                    sha256=stored.sha256,
                    storage_id=stored.storage_id,
                    created_at=now,
                )
            )
        return FileView(filename, mime_type, title, primary, stored.size, stored.sha256)

    @staticmethod
    def _is_primary(row: Any, filename: str, *, first: bool) -> bool:
        if row.message_type == "arkivmelding":
            return filename == ARKIVMELDING_XML
        body = json.loads(row.sbd_json).get(row.message_type)
        if isinstance(body, dict):
            named = body.get("hoveddokument") or body.get("primaerDokumentNavn")
            if isinstance(named, str):
                return filename == named
        return first

    async def send(self, client: Client, message_id: str) -> MessageView:
        """Validate an outgoing message and queue it (a ``send`` outbox row). Idempotent."""
        async with self.database.read() as connection:
            row = await self._require_outgoing(connection, client, message_id)
            files = (await self._files(connection, [row.id])).get(row.id, [])
            stored = (
                await connection.execute(
                    sa.select(
                        message_files.c.filename,
                        message_files.c.storage_id,
                        message_files.c.role,
                    ).where(message_files.c.message_pk == row.id)
                )
            ).all()
        storage = [r for r in stored if r.role != SBD_ROLE]
        if row.sent_at is not None:
            return _message_view(row, files, existing=True)
        if MessageStatus(row.status) is not MessageStatus.OPPRETTET:
            raise Conflict(
                f"message {message_id} is {row.status}: it cannot be sent", rule="status"
            )
        if storage and len(storage) < len(stored):
            # Peppol's one payload: the AS4 channel sends an SBD kept as a file alone
            raise InvalidInput(
                f"files: message {message_id}'s SBD is kept as a file (it is over "
                f"{self.settings.sbd_stream_threshold} bytes); such a message carries no other "
                "files",
                rule="files",
            )
        title = await self._validate_for_send(
            row, files, {r.filename: r.storage_id for r in storage}
        )
        now = self.clock()
        async with self.database.transaction() as connection:
            moved = (
                await connection.execute(
                    messages.update()
                    .where(messages.c.id == row.id, messages.c.sent_at.is_(None))
                    .values(sent_at=now, last_update=now)
                )
            ).rowcount
            if moved:
                await add_outbox(
                    connection,
                    kind=OUTBOX_SEND,
                    message_id=message_id,
                    now=now,
                    payload={"direction": Direction.OUTGOING.value},
                )
                if title:
                    await connection.execute(
                        conversations.update()
                        .where(conversations.c.message_pk == row.id)
                        .values(message_title=title[:500])
                    )
            fresh = (
                await connection.execute(sa.select(*_ROW_COLUMNS).where(messages.c.id == row.id))
            ).one()
        return _message_view(fresh, files, existing=not moved)

    async def _validate_for_send(
        self, row: Any, files: Sequence[FileView], storage: Mapping[str, str]
    ) -> str | None:
        """Everything a message needs before it is queued; the arkivmelding's title, if any."""
        arkivmelding: bytes | None = None
        if self._sendable_so_far(row.message_id, row.message_type, files, storage) and (
            ARKIVMELDING_XML in storage
        ):
            arkivmelding = await self.files.read_bytes(
                storage[ARKIVMELDING_XML], limit=ARKIVMELDING_LIMIT
            )
        return self._check_sendable(row.message_id, row.message_type, files, storage, arkivmelding)

    def _sendable_so_far(
        self, message_id: str, message_type: str, files: Sequence[FileView], names: Iterable[str]
    ) -> bool:
        """The checks of :meth:`_check_sendable` that need no file content; True when the
        arkivmelding.xml is what remains to be read."""
        if message_type in _NEEDS_FILES and not files:
            raise InvalidInput(
                f"message {message_id} ({message_type}) has no files: upload at least one",
                rule="files",
            )
        total = sum(f.size for f in files)
        if total > self.settings.max_file_size * max(1, len(files)):
            raise PayloadTooLarge("the message's files are too large in total", rule="files")
        if message_type != "arkivmelding":
            return False
        if ARKIVMELDING_XML not in names:
            raise InvalidInput(
                f"files: an arkivmelding needs {ARKIVMELDING_XML}; it was not uploaded",
                rule="files",
            )
        return True

    def _check_sendable(
        self,
        message_id: str,
        message_type: str,
        files: Sequence[FileView],
        names: Iterable[str],
        arkivmelding: bytes | None,
    ) -> str | None:
        """Validation on send, given the arkivmelding.xml's bytes (when it is one); its title."""
        names = set(names)
        if not self._sendable_so_far(message_id, message_type, files, names):
            return None
        assert arkivmelding is not None  # the caller reads it when it is there
        # what a receiver can rely on (a saksmappe with a journalpost, document descriptions,
        # every referenced file uploaded, plain file names); the schema's finer points are
        # left to the case systems, as integrasjonspunkt leaves them
        document = parse_arkivmelding(arkivmelding)
        check_arkivmelding(document, names, strict=False)
        return document.tittel

    async def create_and_send(
        self, client: Client, sbd: StandardBusinessDocument | bytes, files: Sequence[Upload]
    ) -> MessageView:
        """The one-step multipart send: create, upload every file, send.

        The total of all files is limited to ``settings.max_multipart_size``. A repeat of a
        message already sent returns it (``existing=True``) without reading the files again.
        """
        names = [f.filename for f in files]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidInput(f"filename: used twice: {', '.join(duplicates)}", rule="filename")
        for upload in files:
            _check_filename(upload.filename)
        at_once = await self._create_and_send_at_once(client, sbd, files)
        if at_once is not None:
            return at_once
        view = await self.create(client, sbd)
        if view.existing and view.sent_at is not None:
            return view
        budget = [0]
        limit = self.settings.max_multipart_size
        for upload in files:
            await self.upload(
                client,
                view.message_id,
                upload.filename,
                upload.mime_type,
                upload.title,
                _limited(_iterate(upload.chunks), budget, limit),
                max_size=limit,
            )
        sent = await self.send(client, view.message_id)
        return replace(sent, existing=view.existing)

    async def _create_and_send_at_once(
        self, client: Client, sbd: StandardBusinessDocument | bytes, files: Sequence[Upload]
    ) -> MessageView | None:
        """The common case of :meth:`create_and_send` in one transaction: a new message whose
        files are in memory (the multipart API) and that passes validation on send.

        The stored result is the one create, upload and send would leave (the same rows, the
        same status event and outbox rows, in the same order), written in one transaction
        instead of five. None when this is not the common case (the message id is in use, a
        file is streamed, too large or would fail validation): the caller then takes the
        step-by-step path, which answers every such case as it always has.
        """
        if not all(isinstance(f.chunks, bytes | bytearray) for f in files):
            return None
        if isinstance(sbd, bytes | bytearray) and self.streams(sbd):
            return None  # create takes the streamed path
        contents = [bytes(f.chunks) for f in files]  # type: ignore[arg-type]
        if sum(len(c) for c in contents) > self.settings.max_multipart_size:
            return None
        if any(not f.mime_type or len(f.mime_type) > 200 for f in files):
            return None
        now = self.clock()
        parsed = self._parse(sbd, now)  # raises exactly as create would
        sender_org = party_key(parsed.sender)
        if sender_org not in client.organisations:
            raise Forbidden(
                f"{_JSON_PATH_HEADER}.sender: this client may not send as {parsed.sender}",
                rule=f"{_JSON_PATH_HEADER}.sender",
            )
        sbd_json = json.dumps(parsed.stored_json, ensure_ascii=False, separators=(",", ":"))
        shape = _RowShape(parsed.message_type, sbd_json)
        views = [
            FileView(
                f.filename,
                f.mime_type,
                f.title,
                self._is_primary(shape, f.filename, first=index == 0),
                len(data),
                hashlib.sha256(data).hexdigest(),
            )
            for index, (f, data) in enumerate(zip(files, contents, strict=True))
        ]
        by_name = dict(zip((f.filename for f in files), contents, strict=True))
        try:
            title = self._check_sendable(
                parsed.message_id,
                parsed.message_type,
                views,
                by_name,
                by_name.get(ARKIVMELDING_XML) if parsed.message_type == "arkivmelding" else None,
            )
        except (InvalidInput, PayloadTooLarge):
            return None  # the step-by-step path stores the message and then refuses it
        # the files are written by the round, all of a round's in one trip to a worker thread;
        # the round also removes them again when its message is not stored
        try:
            row = await self._send_writer.submit(
                Ticket(_NewSend(parsed, sbd_json, now, title, views, contents))
            )
        except _InUse:
            return None
        return _message_view(row, views)

    async def _forget(self, stored: Sequence[StoredFile]) -> None:
        for done in stored:
            await self.files.delete(done.storage_id)

    async def _write_new_sends(self, items: Sequence[_NewSend]) -> list[Any]:
        """One transaction for the new messages of a group-commit round (see
        :meth:`_create_and_send_at_once`): one multi-row statement per table.

        The outcome per item is its new row, or :class:`_InUse` when its message id is taken
        (by a stored message, or by an earlier item of this round).
        """
        written = await self.files.write_many_bytes([c for item in items for c in item.contents])
        stored: dict[int, list[StoredFile]] = {}
        position = 0
        for item in items:
            stored[id(item)] = written[position : position + len(item.contents)]
            position += len(item.contents)
        try:
            outcomes = await self._write_new_send_round(items, stored)
        except BaseException:
            await self._forget(written)
            raise
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, _InUse):
                await self._forget(stored[id(item)])
        return outcomes

    async def _write_new_send_round(
        self, items: Sequence[_NewSend], stored: Mapping[int, Sequence[StoredFile]]
    ) -> list[Any]:
        seen: set[str] = set()
        fresh: list[_NewSend] = []
        for item in items:
            if item.parsed.message_id not in seen:
                seen.add(item.parsed.message_id)
                fresh.append(item)
        async with self.database.transaction() as connection:
            values = [
                {
                    **_message_values(
                        item.parsed,
                        item.sbd_json,
                        Direction.OUTGOING,
                        MessageStatus.OPPRETTET,
                        item.now,
                    ),
                    "sent_at": item.now,
                    "locked_until": None,
                    "locked_by": None,
                    "acknowledged_at": None,
                }
                for item in fresh
            ]
            statement = _insert_message(connection)
            result = await connection.execute(statement, values[0] if len(values) == 1 else values)
            by_id = {row.message_id: row for row in result.all()}
            inserted = [item for item in fresh if item.parsed.message_id in by_id]
            if inserted:
                await self._write_new_send_rows(connection, inserted, by_id, stored)
        outcomes: list[Any] = []
        claimed: set[str] = set()
        for item in items:
            message_id = item.parsed.message_id
            if message_id in by_id and message_id not in claimed:
                claimed.add(message_id)
                outcomes.append(by_id[message_id])
            else:
                outcomes.append(_InUse())
        return outcomes

    async def _write_new_send_rows(
        self,
        connection: AsyncConnection,
        items: Sequence[_NewSend],
        by_id: Mapping[str, Any],
        stored: Mapping[int, Sequence[StoredFile]],
    ) -> None:
        """The conversation, OPPRETTET event, file and outbox rows of new outgoing messages."""
        await connection.execute(
            _INSERT_CONVERSATION,
            [
                _conversation_values(
                    by_id[item.parsed.message_id].id,
                    Direction.OUTGOING,
                    item.parsed,
                    item.now,
                    title=item.title[:500] if item.title else None,
                )
                for item in items
            ],
        )
        events = [
            {
                "message_pk": by_id[item.parsed.message_id].id,
                "status": MessageStatus.OPPRETTET.value,
                "description": None,
                "raw_receipt": None,
                "created_at": item.now,
            }
            for item in items
        ]
        statement = insert_ignore(
            connection, status_events, "message_pk", "status", returning=("id", "message_pk")
        )
        result = await connection.execute(statement, events[0] if len(events) == 1 else events)
        event_of = {row.message_pk: row.id for row in result.all()}
        files = [
            {
                "message_pk": by_id[item.parsed.message_id].id,
                "filename": view.filename,
                "mime_type": view.mime_type,
                "title": view.title,
                "primary": view.primary,
                "size": done.size,
                "sha256": done.sha256,
                "storage_id": done.storage_id,
                "created_at": item.now,
            }
            for item in items
            for view, done in zip(item.views, stored[id(item)], strict=True)
        ]
        if files:
            await connection.execute(_INSERT_FILE, files)
        # per message the status event's outbox row, then the send job's, as create and send
        # write them
        rows: list[tuple[str, str, Mapping[str, Any]]] = []
        for item in items:
            event_id = event_of[by_id[item.parsed.message_id].id]
            rows.append(
                (
                    OUTBOX_STATUS,
                    item.parsed.message_id,
                    status_payload(event_id, MessageStatus.OPPRETTET, Direction.OUTGOING),
                )
            )
            rows.append(
                (OUTBOX_SEND, item.parsed.message_id, {"direction": Direction.OUTGOING.value})
            )
        await add_outbox_rows(connection, rows, now=items[0].now)

    async def get_outgoing(self, client: Client, message_id: str) -> MessageView:
        async with self.database.read() as connection:
            row = await self._require_outgoing(connection, client, message_id)
            files = await self._files(connection, [row.id])
        return _message_view(row, files.get(row.id, ()))

    async def list_outgoing(
        self, client: Client, query: MessageQuery | None = None, page: PageRequest | None = None
    ) -> Page[MessageView]:
        """Outgoing messages not yet sent, as integrasjonspunkt lists them."""
        condition = sa.and_(
            messages.c.direction == Direction.OUTGOING.value,
            messages.c.sender_org.in_(sorted(client.organisations)),
            messages.c.sent_at.is_(None),
            _message_filters(query or MessageQuery()),
        )
        return await self._message_page(condition, page or PageRequest())

    async def delete_outgoing(self, client: Client, message_id: str) -> None:
        """Delete an outgoing message that was never sent, with its files."""
        async with self.database.transaction() as connection:
            row = await self._require_outgoing(connection, client, message_id)
            if row.sent_at is not None:
                raise Conflict(
                    f"message {message_id} has been sent: it cannot be deleted", rule="messageId"
                )
            storage = (
                (
                    await connection.execute(
                        sa.select(message_files.c.storage_id).where(
                            message_files.c.message_pk == row.id
                        )
                    )
                )
                .scalars()
                .all()
            )
            await connection.execute(messages.delete().where(messages.c.id == row.id))
        for storage_id in storage:
            await self.files.delete(storage_id)

    async def _message_page(
        self, condition: sa.ColumnElement[bool], page: PageRequest
    ) -> Page[MessageView]:
        async with self.database.read() as connection:
            total = (
                await connection.execute(
                    sa.select(sa.func.count()).select_from(messages).where(condition)
                )
            ).scalar_one()
            rows = (
                await connection.execute(
                    sa.select(*_ROW_COLUMNS)
                    .where(condition)
                    .order_by(messages.c.id)
                    .limit(page.size)
                    .offset(page.offset)
                )
            ).all()
            files = await self._files(connection, [r.id for r in rows])
        content = tuple(_message_view(r, files.get(r.id, ())) for r in rows)
        return Page(content, int(total), page, ("id",))

    # ------------------------------------------------------------------ incoming

    def _incoming_condition(self, client: Client) -> sa.ColumnElement[bool]:
        return sa.and_(
            messages.c.direction == Direction.INCOMING.value,
            messages.c.receiver_org.in_(sorted(client.organisations)),
        )

    async def find_incoming(
        self, client: Client, query: MessageQuery | None = None, page: PageRequest | None = None
    ) -> Page[MessageView]:
        """Incoming messages not yet acknowledged (``GET /api/messages/in``)."""
        condition = sa.and_(
            self._incoming_condition(client),
            messages.c.status == MessageStatus.INNKOMMENDE_MOTTATT.value,
            _message_filters(query or MessageQuery()),
        )
        return await self._message_page(condition, page or PageRequest())

    async def peek(self, client: Client, query: MessageQuery | None = None) -> MessageView | None:
        """The next unlocked incoming message for the client, locked for the lock timeout.

        None when there is none. Concurrent consumers never get the same message: PostgreSQL
        picks with ``FOR UPDATE SKIP LOCKED``; SQLite runs one writer at a time (``BEGIN
        IMMEDIATE``), and the update is conditional on the lock being free either way.
        """
        now = self.clock()
        until = now + self.settings.inbox_lock_timeout
        free = sa.or_(messages.c.locked_until.is_(None), messages.c.locked_until <= now)
        candidate = (
            sa.select(messages.c.id)
            .where(
                messages.c.receiver_org.in_(sorted(client.organisations)),
                messages.c.status == MessageStatus.INNKOMMENDE_MOTTATT.value,
                messages.c.direction == Direction.INCOMING.value,
                free,
                _message_filters(query or MessageQuery()),
            )
            .order_by(messages.c.id)
            .limit(1)
        )
        if not self.database.sqlite:
            candidate = candidate.with_for_update(skip_locked=True)
        statement = (
            messages.update()
            .where(messages.c.id == candidate.scalar_subquery(), free)
            .values(locked_until=until, locked_by=f"client:{client.id}")
            .returning(*_ROW_COLUMNS)
        )
        async with self.database.transaction() as connection:
            row = (await connection.execute(statement)).first()
            if row is None:
                return None
            files = await self._files(connection, [row.id])
        return _message_view(row, files.get(row.id, ()))

    async def _require_incoming(
        self, connection: AsyncConnection, client: Client, message_id: str
    ) -> Any:
        row = (
            await connection.execute(
                sa.select(*_ROW_COLUMNS).where(
                    messages.c.message_id == message_id, self._incoming_condition(client)
                )
            )
        ).first()
        if row is None:
            raise NotFound(f"no incoming message {message_id}")
        return row

    async def get_incoming(self, client: Client, message_id: str) -> MessageView:
        async with self.database.read() as connection:
            row = await self._require_incoming(connection, client, message_id)
            files = await self._files(connection, [row.id])
        return _message_view(row, files.get(row.id, ()))

    #: containers of files up to this many bytes in all are built in one go on the executor
    _SMALL_CONTAINER = 1024 * 1024

    async def pop(self, client: Client, message_id: str) -> PoppedMessage | None:
        """The message's files as a signed ASiC-E container, streamed; None without files.

        The container is written on a worker thread straight from the decrypting file store:
        neither the files nor the container are ever whole in memory (but for small messages,
        up to :attr:`_SMALL_CONTAINER` bytes of files, built whole in one executor call).
        """
        file_columns = [c.label(f"file_{c.name}") for c in message_files.c]
        async with self.database.read() as connection:
            rows = (
                await connection.execute(
                    sa.select(*_ROW_COLUMNS, *file_columns)
                    .select_from(
                        messages.outerjoin(
                            message_files, message_files.c.message_pk == messages.c.id
                        )
                    )
                    .where(messages.c.message_id == message_id, self._incoming_condition(client))
                    .order_by(message_files.c.id)
                )
            ).all()
        if not rows:
            raise NotFound(f"no incoming message {message_id}")
        row = rows[0]
        if row.acknowledged_at is not None:
            raise NotFound(f"incoming message {message_id} has been acknowledged already")
        files = [
            _PoppedFile(
                r.file_filename, r.file_mime_type, r.file_title, r.file_primary, r.file_storage_id
            )
            for r in rows
            if r.file_id is not None
        ]
        if not files:
            return None
        package = next(
            (r for r in rows if r.file_id is not None and r.file_role == "package"), None
        )
        if package is not None:
            # a document package as the sending access point delivered it (signed by the
            # sender, perhaps encrypted to this organisation): handed out as it came
            return PoppedMessage(
                message_id=message_id,
                filename=package.file_filename,
                content_type=package.file_mime_type,
                chunks=self.files.chunks(package.file_storage_id),
            )
        main = next((f.filename for f in files if f.primary), files[0].filename)
        small = sum(int(r.file_size) for r in rows) <= self._SMALL_CONTAINER
        return PoppedMessage(
            message_id=message_id,
            filename="asic.zip",
            content_type=ASIC_CONTENT_TYPE,
            chunks=(self._small_container if small else self._container)(row, files, main),
        )

    async def _small_container(
        self, row: Any, files: Sequence[Any], main: str
    ) -> AsyncIterator[bytes]:
        """The container of a small message, built whole on the executor: no thread of its
        own and no hand-over per chunk."""
        now = self.clock()
        store = self.files
        signer = self.ap_credential

        def work() -> bytes:
            with contextlib.ExitStack() as stack:
                sources = [
                    PackageFile(
                        f.filename,
                        stack.enter_context(store.open(f.storage_id)),
                        f.mime_type,
                        f.title,
                    )
                    for f in files
                ]
                sink = io.BytesIO()
                write_container(
                    sources,
                    sender=party_of(row.sender),
                    receiver=party_of(row.receiver),
                    main_document=main,
                    signer=signer,
                    out=sink,
                    now=now,
                )
                return sink.getvalue()

        yield await asyncio.to_thread(work)

    async def _container(self, row: Any, files: Sequence[Any], main: str) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=4)
        stop = threading.Event()
        now = self.clock()
        store = self.files
        signer = self.ap_credential

        def put(item: bytes | BaseException | None) -> None:
            future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            while True:
                try:
                    future.result(timeout=0.5)
                    return
                except TimeoutError:
                    if stop.is_set():
                        future.cancel()
                        raise _Stopped() from None

        class _Sink:
            def __init__(self) -> None:
                self.buffer = bytearray()

            def write(self, data: bytes | bytearray | memoryview) -> int:
                if stop.is_set():
                    raise _Stopped()
                self.buffer += data
                if len(self.buffer) >= 256 * 1024:
                    put(bytes(self.buffer))
                    self.buffer.clear()
                return len(data)

        def work() -> None:
            opened = []
            try:
                sources = []
                for f in files:
                    reader = store.open(f.storage_id)
                    opened.append(reader)
                    sources.append(PackageFile(f.filename, reader, f.mime_type, f.title))
                sink = _Sink()
                write_container(
                    sources,
                    sender=party_of(row.sender),
                    receiver=party_of(row.receiver),
                    main_document=main,
                    signer=signer,
                    out=sink,
                    now=now,
                )
                if sink.buffer:
                    put(bytes(sink.buffer))
                put(None)
            except _Stopped:
                return
            except BaseException as exc:  # handed to the consumer
                with contextlib.suppress(_Stopped):
                    put(exc)
            finally:
                for reader in opened:
                    reader.close()

        # a thread of its own, not the default executor: a slow reader of the stream holds it
        # for as long as it reads, and must not starve the file store's short jobs
        done: asyncio.Future[None] = loop.create_future()

        def run() -> None:
            try:
                work()
            finally:
                loop.call_soon_threadsafe(_settle, done)

        threading.Thread(target=run, name="budstikke-pop", daemon=True).start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while not queue.empty():
                queue.get_nowait()
            await done

    #: the statuses from which an acknowledgement moves each side (as record_status would)
    _ACK_INCOMING_SOURCES = tuple(
        s.value
        for s in MessageStatus
        if can_transition(s, MessageStatus.INNKOMMENDE_LEVERT, Direction.INCOMING)
    )
    _ACK_OUTGOING_SOURCES = tuple(
        s.value
        for s in MessageStatus
        if can_transition(s, MessageStatus.LEVERT, Direction.OUTGOING)
    )

    async def acknowledge(self, client: Client, message_id: str) -> MessageView:
        """The receiver has the message: INNKOMMENDE_LEVERT, and LEVERT for a local sender.

        A repeat is a no-op that returns the message again. One transaction of few round
        trips: a conditional ``UPDATE … RETURNING`` takes the message (of two concurrent
        acknowledgements only one matches ``acknowledged_at IS NULL``) and moves its status,
        a second moves a local sender's copy to LEVERT, and the status events (once per
        message and status), their outbox rows and the conversations are written in one
        statement each.
        """
        now = self.clock()
        incoming_moves = messages.c.status.in_(self._ACK_INCOMING_SOURCES)
        levert = MessageStatus.INNKOMMENDE_LEVERT.value
        async with self.database.transaction() as connection:
            row = (
                await connection.execute(
                    messages.update()
                    .where(
                        messages.c.message_id == message_id,
                        self._incoming_condition(client),
                        messages.c.acknowledged_at.is_(None),
                    )
                    .values(
                        acknowledged_at=now,
                        locked_until=None,
                        locked_by=None,
                        status=sa.case((incoming_moves, levert), else_=messages.c.status),
                        last_update=sa.case((incoming_moves, now), else_=messages.c.last_update),
                        finished=sa.case(
                            (incoming_moves, is_terminal(MessageStatus.INNKOMMENDE_LEVERT)),
                            else_=messages.c.finished,
                        ),
                    )
                    .returning(*_ROW_COLUMNS)
                )
            ).first()
            if row is None:  # not visible (NotFound), or acknowledged already: a repeat
                row = await self._require_incoming(connection, client, message_id)
            else:
                await self._record_acknowledged(
                    connection, row, message_id, now, moved=row.status == levert
                )
            files = await self._files(connection, [row.id])
        return _message_view(row, files.get(row.id, ()))

    async def _record_acknowledged(
        self, connection: AsyncConnection, row: Any, message_id: str, now: datetime, *, moved: bool
    ) -> None:
        """The acknowledgement's status events, outbox rows and conversation updates."""
        events: list[_EventSpec] = []
        if moved:
            events.append(
                (
                    row.id,
                    message_id,
                    Direction.INCOMING,
                    MessageStatus.INNKOMMENDE_LEVERT,
                    None,
                    None,
                )
            )
        outgoing = (
            await connection.execute(
                messages.update()
                .where(
                    messages.c.message_id == message_id,
                    messages.c.direction == Direction.OUTGOING.value,
                    messages.c.status.in_(self._ACK_OUTGOING_SOURCES),
                )
                .values(
                    status=MessageStatus.LEVERT.value,
                    last_update=now,
                    finished=is_terminal(MessageStatus.LEVERT),
                )
                .returning(messages.c.id)
            )
        ).scalar_one_or_none()
        if outgoing is None and moved:
            # The receiver's kvittering can overtake its acknowledgement: the sender's copy is
            # LEST already. LEVERT still belongs in its history; the current status stays LEST.
            outgoing = (
                await connection.execute(
                    sa.select(messages.c.id).where(
                        messages.c.message_id == message_id,
                        messages.c.direction == Direction.OUTGOING.value,
                        messages.c.status == MessageStatus.LEST.value,
                    )
                )
            ).scalar_one_or_none()
        if outgoing is None and moved:
            # no sender's copy here: when it came over AS4, LEVERT goes back to its sender's
            # access point (a job; nothing is written for a message that came another way)
            await connection.execute(
                _NETWORK_STATUS_OUTBOX,
                {
                    "message_id": message_id,
                    "payload": '{"status":"LEVERT"}',
                    "now": now,
                    "pk": row.id,
                },
            )
        if outgoing is not None:
            events.append(
                (
                    outgoing,
                    message_id,
                    Direction.OUTGOING,
                    MessageStatus.LEVERT,
                    "Levert til mottakers fagsystem",
                    None,
                )
            )
        # once per (message, status), with their outbox rows; a repeat writes nothing
        inserted = await write_status_events(connection, events, now=now)
        if inserted:
            await connection.execute(
                conversations.update()
                .where(conversations.c.message_pk.in_([pk for _, pk, _ in inserted]))
                .values(last_update=now, finished=True)
            )

    # ------------------------------------------------------------------ channel operations

    async def deliver_locally(
        self,
        message_id: str,
        *,
        claim: Callable[[AsyncConnection], Awaitable[bool]] | None = None,
    ) -> DeliveryResult:
        """Deliver an outgoing message to a receiver hosted here (the ``send`` job's local path).

        In one transaction: the INCOMING copy (same message id, the same stored files),
        SENDT and MOTTATT on the outgoing message, INNKOMMENDE_MOTTATT on the incoming one,
        and LEST on the original when this is an ``arkivmelding_kvittering``. Idempotent: a
        redelivered job finds the copy and records nothing twice. ``claim`` (the job's
        idempotency key) is taken in the same transaction, so the delivery and its key commit
        together; when it was taken already nothing happens. :class:`NoRoute` when the
        receiver is not served here; :class:`NotFound` for an unknown message.

        Deliveries running at the same time share transactions (group commit, see
        :meth:`_deliver_round`): a worker with sixteen jobs in hand writes them in a few
        rounds of one statement per table, not sixteen transactions of ten round trips.
        """
        result: DeliveryResult = await self._delivery_writer.submit(
            Ticket(_Delivery(message_id, claim))
        )
        return result

    async def _deliver_round(self, items: Sequence[_Delivery]) -> list[Any]:
        """One transaction for the deliveries of a group-commit round.

        The outgoing rows are read and locked first, each item is judged alone (unknown,
        unsent, ended or not hosted here: that item's exception, nothing claimed for it), the
        idempotency keys of the rest are claimed in one statement, and what remains is written
        with one statement per table. A round holding one message twice is refused whole, so
        that each is delivered in a round of its own (the second finds the first's copy).
        """
        ids = [item.message_id for item in items]
        if len(set(ids)) != len(ids):
            raise _RoundConflict("one message twice in a round")
        now = self.clock()
        outcomes: list[Any] = [None] * len(items)
        async with self.database.transaction() as connection:
            found = await connection.execute(self._deliver_select(), {"ids": sorted(ids)})
            rows = {row.message_id: row for row in found.all()}
            valid: list[int] = []
            for index, item in enumerate(items):
                row = rows.get(item.message_id)
                problem = await self._undeliverable(connection, item.message_id, row)
                if problem is not None:
                    outcomes[index] = problem
                else:
                    valid.append(index)
            claimed = await self._claim_deliveries(connection, [items[i] for i in valid])
            todo: list[int] = []
            for index in valid:
                if items[index].message_id in claimed:
                    todo.append(index)
                else:
                    outcomes[index] = DeliveryResult(
                        items[index].message_id, "", delivered=False, read_receipt=False
                    )
            if todo:
                done = await self._deliver_rows(connection, [rows[ids[i]] for i in todo], now)
                for index, result in zip(todo, done, strict=True):
                    outcomes[index] = result
        return outcomes

    async def _undeliverable(
        self, connection: AsyncConnection, message_id: str, row: Any
    ) -> BusError | None:
        """Why the outgoing ``row`` cannot be delivered here; None when it can."""
        if row is None:
            return NotFound(f"no outgoing message {message_id}")
        if row.sent_at is None:
            return Conflict(f"message {message_id} has not been sent", rule="messageId")
        if row.status in _ENDED_UNSENT:
            # FEIL or LEVETID_UTLOPT before it was handed over (a dead-lettered or expired
            # job published again): the sender was told it failed, so it never arrives
            return Conflict(f"message {message_id} is {row.status}: not delivered", rule="status")
        if not await self._hosts(connection, row.receiver_org):
            return NoRoute(f"receiver {row.receiver} is not served by this access point")
        return None

    @staticmethod
    async def _claim_deliveries(
        connection: AsyncConnection, items: Sequence[_Delivery]
    ) -> set[str]:
        """The message ids of ``items`` whose job key this transaction claimed (or that came
        without one): job claims in one statement, other claims one by one."""
        claimed: set[str] = set()
        by_guard: dict[int, tuple[Any, list[_Delivery]]] = {}
        for item in items:
            claim = item.claim
            if claim is None:
                claimed.add(item.message_id)
            elif isinstance(claim, JobClaim):
                by_guard.setdefault(id(claim.guard), (claim.guard, []))[1].append(item)
            elif await claim(connection):
                claimed.add(item.message_id)
        for guard, group in by_guard.values():
            keys = {item.claim.key: item.message_id for item in group}  # type: ignore[union-attr]
            for key in await guard.claim_keys(connection, list(keys)):
                claimed.add(keys[key])
        return claimed

    async def _deliver_rows(
        self, connection: AsyncConnection, rows: Sequence[Any], now: datetime
    ) -> list[DeliveryResult]:
        """The incoming copies, their files and conversations, the status moves and events of
        the deliverable outgoing ``rows`` (locked): one statement per table."""
        values = [
            {
                **{c.name: row._mapping[c.name] for c in _COPIED_COLUMNS},
                "direction": Direction.INCOMING.value,
                "status": MessageStatus.INNKOMMENDE_MOTTATT.value,
                "finished": False,
                "created_at": now,
                "last_update": now,
            }
            for row in rows
        ]
        inserted = await connection.execute(
            insert_ignore(
                connection, messages, "message_id", "direction", returning=("id", "message_id")
            ),
            values[0] if len(values) == 1 else values,
        )
        incoming = {r.message_id: r.id for r in inserted.all()}
        copied = [row for row in rows if row.message_id in incoming]
        if copied:
            await connection.execute(
                _COPY_FILES,
                [
                    {"incoming_pk": incoming[row.message_id], "outgoing_pk": row.id, "now": now}
                    for row in copied
                ],
            )
            await connection.execute(
                _COPY_CONVERSATION,
                [
                    {
                        "message_pk": incoming[row.message_id],
                        "conversation_id": row.conversation_id,
                        "message_id": row.message_id,
                        "direction": Direction.INCOMING.value,
                        "sender": row.sender,
                        "sender_identifier": row.sender_org,
                        "receiver": row.receiver,
                        "receiver_identifier": row.receiver_org,
                        "service_identifier": row.service_identifier,
                        "process": row.process,
                        "document_type": row.document_type,
                        "message_reference": row.conversation_id,
                        "finished": False,
                        "expiry": row.expires_at,
                        "last_update": now,
                        "outgoing_pk": row.id,
                    }
                    for row in copied
                ],
            )
        events: list[_EventSpec] = []
        moves: list[dict[str, Any]] = []
        for row in rows:
            pk = incoming.get(row.message_id)
            if pk is not None:
                # the incoming copy starts at INNKOMMENDE_MOTTATT: its first event
                events.append(
                    (
                        pk,
                        row.message_id,
                        Direction.INCOMING,
                        MessageStatus.INNKOMMENDE_MOTTATT,
                        None,
                        None,
                    )
                )
            current = MessageStatus(row.status)
            moved = False
            for status, description in (
                (MessageStatus.SENDT, "Sendt til mottaker på dette aksesspunktet"),
                (MessageStatus.MOTTATT, "Mottatt av mottakers aksesspunkt"),
            ):
                if can_transition(current, status, Direction.OUTGOING):
                    events.append(
                        (row.id, row.message_id, Direction.OUTGOING, status, description, None)
                    )
                    current, moved = status, True
            if moved:
                # the row is locked (FOR UPDATE): its status cannot have moved since it was read
                moves.append(
                    {
                        "pk": row.id,
                        "new_status": current.value,
                        "now": now,
                        "done": is_terminal(current),
                    }
                )
        if moves:
            await connection.execute(_SET_STATUS, moves)
            await connection.execute(
                _SET_CONVERSATION, [{k: m[k] for k in ("pk", "now", "done")} for m in moves]
            )
        await write_status_events(connection, events, now=now)
        if copied:
            await connection.execute(
                routing_decisions.insert(),
                [
                    _decision_values(
                        row.id,
                        decide_organisation(
                            ParticipantId(row.receiver),
                            at=now,
                            hosted_here=True,
                            document_type=row.document_type,
                            process=row.process,
                        ),
                    )
                    for row in copied
                ],
            )
        results: list[DeliveryResult] = []
        for row in rows:
            delivered = row.message_id in incoming
            read_receipt = delivered and await self._business_receipt(connection, row, now)
            results.append(DeliveryResult(row.message_id, row.receiver, delivered, read_receipt))
        return results

    def _deliver_select(self) -> Any:
        """The outgoing rows of a delivery round, locked in one order (PostgreSQL; SQLite's
        writer is alone)."""
        statement = (
            sa.select(*_ROW_COLUMNS)
            .where(
                messages.c.message_id.in_(sa.bindparam("ids", expanding=True)),
                messages.c.direction == Direction.OUTGOING.value,
            )
            .order_by(messages.c.message_id)
        )
        return statement if self.database.sqlite else statement.with_for_update()

    async def _hosts(self, connection: AsyncConnection, organisation: str) -> bool:
        """Whether ``organisation`` is served here. A yes is remembered for a few seconds
        (every delivery asks); a no is always asked again, so a client just added counts."""
        now = time.monotonic()
        if organisation in self._hosted and now < self._hosted_until:
            return True
        self._hosted = await self.hosted_organisations(connection)
        self._hosted_until = now + _HOSTED_TTL
        return organisation in self._hosted

    async def _business_receipt(
        self, connection: AsyncConnection, receipt: Any, now: datetime
    ) -> bool:
        """An arkivmelding_kvittering back in a conversation: the original is LEST."""
        if receipt.message_type != "arkivmelding_kvittering":
            return False
        originals = (
            await connection.execute(
                sa.select(messages.c.id, messages.c.message_id).where(
                    messages.c.conversation_id == receipt.conversation_id,
                    messages.c.direction == Direction.OUTGOING.value,
                    messages.c.message_type == "arkivmelding",
                    messages.c.sender_org == receipt.receiver_org,
                    messages.c.receiver_org == receipt.sender_org,
                )
            )
        ).all()
        marked = False
        for original in originals:
            recorded = await record_status(
                connection,
                message_pk=original.id,
                message_id=original.message_id,
                direction=Direction.OUTGOING,
                status=MessageStatus.LEST,
                now=now,
                description=_kvittering_description(receipt.message_id, receipt.sbd_json),
                raw_receipt=receipt.sbd_json,
            )
            marked = marked or recorded is not None
        return marked

    async def record_status(
        self,
        message_id: str,
        status: MessageStatus,
        *,
        direction: Direction = Direction.OUTGOING,
        description: str | None = None,
        raw_receipt: str | None = None,
        only_from: Collection[MessageStatus] = (),
    ) -> StatusView | None:
        """Record a status from a channel (receipts); None when it was recorded already.

        With ``only_from``, only while the message's current status is one of those (None
        otherwise); the message row is locked for the check.
        """
        now = self.clock()
        async with self.database.transaction() as connection:
            if only_from:
                query = sa.select(messages.c.id, messages.c.status).where(
                    messages.c.message_id == message_id, messages.c.direction == direction.value
                )
                if not self.database.sqlite:
                    query = query.with_for_update()
                current = (await connection.execute(query)).first()
                if current is None:
                    raise NotFound(f"no {direction.value.lower()} message {message_id}")
                if MessageStatus(current.status) not in only_from:
                    return None
                pk = int(current.id)
            else:
                pk = await self._pk(connection, message_id, direction)
            event_id = await record_status(
                connection,
                message_pk=pk,
                message_id=message_id,
                direction=direction,
                status=status,
                now=now,
                description=description,
                raw_receipt=raw_receipt,
            )
            if event_id is None:
                return None
            row = (
                await connection.execute(
                    sa.select(*_STATUS_COLUMNS)
                    .select_from(_status_join())
                    .where(status_events.c.id == event_id)
                )
            ).one()
        return _status_view(row)

    async def _pk(self, connection: AsyncConnection, message_id: str, direction: Direction) -> int:
        pk = (
            await connection.execute(
                sa.select(messages.c.id).where(
                    messages.c.message_id == message_id, messages.c.direction == direction.value
                )
            )
        ).scalar_one_or_none()
        if pk is None:
            raise NotFound(f"no {direction.value.lower()} message {message_id}")
        return int(pk)

    # ------------------------------------------------------------------ the network (AS4)

    async def network_duplicate(
        self, as4_message_id: str, sbd_instance_id: str
    ) -> tuple[str, bytes | None, str | None] | None:
        """An inbound AS4 message seen before: ``("as4", receipt, content type)`` for the same
        AS4 message id (the receipt given then goes out again), ``("sbd", None, None)`` for an
        SBD already received under another AS4 message id (a new receipt, no second delivery).
        """
        async with self.database.read() as connection:
            found = (
                await connection.execute(
                    sa.select(
                        as4_exchanges.c.as4_message_id,
                        as4_exchanges.c.receipt,
                        as4_exchanges.c.receipt_content_type,
                    )
                    .where(
                        as4_exchanges.c.direction == Direction.INCOMING.value,
                        sa.or_(
                            as4_exchanges.c.as4_message_id == as4_message_id,
                            as4_exchanges.c.sbd_instance_id == sbd_instance_id,
                        ),
                    )
                    .order_by(as4_exchanges.c.id)
                )
            ).all()
        for row in found:
            if row.as4_message_id == as4_message_id:
                return ("as4", row.receipt, row.receipt_content_type)
        return ("sbd", None, None) if found else None

    async def accept_from_network(
        self,
        document: StandardBusinessDocument,
        *,
        files: Sequence[NetworkFile],
        as4_message_id: str,
        peer: str,
        receipt: bytes,
        receipt_content_type: str,
    ) -> NetworkAcceptance:
        """Store a message another access point delivered, before its receipt is given.

        In one transaction: the exchange (with the receipt, for duplicates), and by what the
        SBD is: a ``status`` message records its status on the outgoing message it is about;
        anything else becomes an INCOMING message at INNKOMMENDE_MOTTATT in the receiver's
        inbox, with its files (a document package stays as it came: popped as is), and an
        ``arkivmelding_kvittering`` also marks its original LEST. A repeat of the same AS4
        message id or SBD instance id stores nothing new (``duplicate``).
        """
        now = self.clock()
        parsed = self._parse(document, now)
        async with self.database.transaction() as connection:
            recorded = await connection.execute(
                insert_ignore(connection, as4_exchanges, "direction", "as4_message_id"),
                {
                    "direction": Direction.INCOMING.value,
                    "as4_message_id": as4_message_id,
                    "sbd_instance_id": parsed.message_id,
                    "message_pk": None,
                    "peer": peer[:200],
                    "receipt": receipt,
                    "receipt_content_type": receipt_content_type,
                    "created_at": now,
                },
            )
            if recorded.rowcount == 0:
                return NetworkAcceptance(parsed.message_id, duplicate=True)
            if parsed.message_type == "status":
                about = await self._status_from_network(connection, parsed, now)
                return NetworkAcceptance(parsed.message_id, duplicate=False, status_of=about)
            sbd_json = json.dumps(parsed.stored_json, ensure_ascii=False, separators=(",", ":"))
            row = (
                await connection.execute(
                    _insert_message(connection),
                    _message_values(
                        parsed,
                        sbd_json,
                        Direction.INCOMING,
                        MessageStatus.INNKOMMENDE_MOTTATT,
                        now,
                    ),
                )
            ).first()
            if row is None:  # the SBD came before under another AS4 message id
                return NetworkAcceptance(parsed.message_id, duplicate=True)
            await connection.execute(
                as4_exchanges.update()
                .where(
                    as4_exchanges.c.direction == Direction.INCOMING.value,
                    as4_exchanges.c.as4_message_id == as4_message_id,
                )
                .values(message_pk=row.id)
            )
            if files:
                await connection.execute(
                    _INSERT_FILE,
                    [
                        {
                            "message_pk": row.id,
                            "filename": f.filename,
                            "mime_type": f.mime_type,
                            "title": None,
                            "primary": index == 0,
                            "size": f.stored.size,
                            "sha256": f.stored.sha256,
                            "storage_id": f.stored.storage_id,
                            "created_at": now,
                            "role": f.role,
                        }
                        for index, f in enumerate(files)
                    ],
                )
            await self._insert_conversation(connection, row.id, Direction.INCOMING, parsed, now)
            await write_status_events(
                connection,
                [
                    (
                        row.id,
                        parsed.message_id,
                        Direction.INCOMING,
                        MessageStatus.INNKOMMENDE_MOTTATT,
                        f"Mottatt fra aksesspunkt {peer}"[:500],
                        None,
                    )
                ],
                now=now,
            )
            read_receipt = await self._business_receipt(connection, row, now)
        return NetworkAcceptance(parsed.message_id, duplicate=False, read_receipt=read_receipt)

    async def _status_from_network(
        self, connection: AsyncConnection, parsed: _Parsed, now: datetime
    ) -> str | None:
        """A ``status`` message about one of our outgoing messages (same conversation, the
        parties the other way round): its status recorded there; the message id, or None."""
        body = parsed.stored_json.get("status")
        value = body.get("status") if isinstance(body, dict) else None
        try:
            status = MessageStatus(str(value))
        except ValueError:
            raise InvalidInput(
                f"status: {value!r} is not a status of the eFormidling vocabulary",
                rule="status",
            ) from None
        if status not in (MessageStatus.LEVERT, MessageStatus.FEIL, MessageStatus.ANNET):
            raise InvalidInput(
                f"status: {status.value} is not a status a receiving access point reports",
                rule="status",
            )
        original = (
            await connection.execute(
                sa.select(messages.c.id, messages.c.message_id).where(
                    messages.c.conversation_id == parsed.conversation_id,
                    messages.c.direction == Direction.OUTGOING.value,
                    messages.c.sender_org == party_key(parsed.receiver),
                    messages.c.receiver_org == party_key(parsed.sender),
                    messages.c.message_type != "status",
                )
            )
        ).first()
        if original is None:
            return None
        description = body.get("description") if isinstance(body, dict) else None
        await record_status(
            connection,
            message_pk=original.id,
            message_id=original.message_id,
            direction=Direction.OUTGOING,
            status=status,
            now=now,
            description=str(description)[:500] if description else None,
            raw_receipt=json.dumps(parsed.stored_json, ensure_ascii=False)[:100_000],
        )
        return str(original.message_id)

    async def record_routing_decision(self, message_id: str, decision: RoutingDecision) -> bool:
        """Store why the outgoing message goes where it goes (or cannot go anywhere); a retry
        that decides the same as the latest decision adds nothing. True when stored."""
        async with self.database.transaction() as connection:
            pk = (
                await connection.execute(
                    sa.select(messages.c.id).where(
                        messages.c.message_id == message_id,
                        messages.c.direction == Direction.OUTGOING.value,
                    )
                )
            ).scalar_one_or_none()
            if pk is None:
                return False
            latest = (
                await connection.execute(
                    sa.select(routing_decisions.c.channel, routing_decisions.c.rule)
                    .where(routing_decisions.c.message_pk == pk)
                    .order_by(routing_decisions.c.id.desc())
                    .limit(1)
                )
            ).first()
            if latest is not None and tuple(latest) == (decision.channel.value, decision.rule):
                return False
            await connection.execute(routing_decisions.insert(), _decision_values(pk, decision))
        return True

    async def routing_history(self, client: Client, message_id: str) -> list[dict[str, Any]]:
        """The routing decisions of one of the client's outgoing messages, oldest first."""
        async with self.database.read() as connection:
            row = await self._require_outgoing(connection, client, message_id)
            rows = (
                await connection.execute(
                    sa.select(routing_decisions)
                    .where(routing_decisions.c.message_pk == row.id)
                    .order_by(routing_decisions.c.id)
                )
            ).all()
        return [json.loads(r.record) for r in rows]

    async def outgoing_for_network(self, message_id: str) -> tuple[Any, list[Any]]:
        """The outgoing message's row and its files' rows, for a channel that sends it."""
        async with self.database.read() as connection:
            row = (
                await connection.execute(
                    sa.select(*_ROW_COLUMNS).where(
                        messages.c.message_id == message_id,
                        messages.c.direction == Direction.OUTGOING.value,
                    )
                )
            ).first()
            if row is None:
                raise NotFound(f"no outgoing message {message_id}")
            files = (
                await connection.execute(
                    sa.select(message_files)
                    .where(message_files.c.message_pk == row.id)
                    .order_by(message_files.c.id)
                )
            ).all()
        return row, list(files)

    async def record_network_send(
        self,
        message_id: str,
        *,
        as4_message_id: str,
        peer: str,
        receipt: bytes,
        receipt_content_type: str,
        claim: Callable[[AsyncConnection], Awaitable[bool]] | None = None,
    ) -> bool:
        """The receiving access point's receipt for an outgoing message: SENDT and MOTTATT
        (it has stored the message), and the exchange, in one transaction with the job's
        ``claim``. False when the claim was taken already (nothing recorded)."""
        now = self.clock()
        async with self.database.transaction() as connection:
            if claim is not None and not await claim(connection):
                return False
            pk = await self._pk(connection, message_id, Direction.OUTGOING)
            await connection.execute(
                insert_ignore(connection, as4_exchanges, "direction", "as4_message_id"),
                {
                    "direction": Direction.OUTGOING.value,
                    "as4_message_id": as4_message_id,
                    "sbd_instance_id": message_id,
                    "message_pk": pk,
                    "peer": peer[:200],
                    "receipt": receipt,
                    "receipt_content_type": receipt_content_type,
                    "created_at": now,
                },
            )
            for status, description in (
                (MessageStatus.SENDT, f"Sendt til aksesspunkt {peer}"),
                (MessageStatus.MOTTATT, f"Kvittering fra aksesspunkt {peer}"),
            ):
                await record_status(
                    connection,
                    message_pk=pk,
                    message_id=message_id,
                    direction=Direction.OUTGOING,
                    status=status,
                    now=now,
                    description=description[:500],
                )
        return True

    async def received_over_network(self, message_id: str) -> tuple[Any, str] | None:
        """An incoming message that came over AS4: (its row, the access point it came from)."""
        async with self.database.read() as connection:
            found = (
                await connection.execute(
                    sa.select(*_ROW_COLUMNS, as4_exchanges.c.peer)
                    .select_from(
                        messages.join(as4_exchanges, as4_exchanges.c.message_pk == messages.c.id)
                    )
                    .where(
                        messages.c.message_id == message_id,
                        messages.c.direction == Direction.INCOMING.value,
                        as4_exchanges.c.direction == Direction.INCOMING.value,
                    )
                )
            ).first()
        return None if found is None else (found, str(found.peer))

    async def mark_failed(
        self,
        message_id: str,
        reason: str,
        *,
        direction: Direction = Direction.OUTGOING,
        raw_receipt: str | None = None,
        unsent_only: bool = False,
    ) -> StatusView | None:
        """FEIL with the reason (dead letters, permanent errors); None if already finished.

        ``unsent_only`` (a dead ``send`` job): only while the message is still OPPRETTET. An
        earlier run of the job may have handed it over and died before its acknowledgement;
        FEIL then would contradict SENDT/MOTTATT and shut out LEVERT.
        """
        return await self.record_status(
            message_id,
            MessageStatus.FEIL,
            direction=direction,
            description=reason,
            raw_receipt=raw_receipt,
            only_from=(MessageStatus.OPPRETTET,) if unsent_only else (),
        )

    async def expire(self, now: datetime | None = None, *, batch: int = 500) -> int:
        """LEVETID_UTLOPT on every unfinished outgoing message past its expiry; the count.

        Works in batches of ``batch`` messages, one transaction each, so a long backlog never
        holds one huge transaction.
        """
        moment = now or self.clock()
        total = 0
        while True:
            async with self.database.transaction() as connection:
                due = (
                    await connection.execute(
                        sa.select(messages.c.id, messages.c.message_id)
                        .where(
                            messages.c.finished == sa.false(),
                            messages.c.expires_at < moment,
                            messages.c.direction == Direction.OUTGOING.value,
                        )
                        .order_by(messages.c.expires_at)
                        .limit(batch)
                    )
                ).all()
                for pk, message_id in due:
                    recorded = await record_status(
                        connection,
                        message_pk=pk,
                        message_id=message_id,
                        direction=Direction.OUTGOING,
                        status=MessageStatus.LEVETID_UTLOPT,
                        now=moment,
                        description="Meldingen ble ikke levert innen levetiden",
                    )
                    if recorded is None:
                        # finished by a status that never ends a lifetime: stop picking it
                        await connection.execute(
                            messages.update().where(messages.c.id == pk).values(finished=True)
                        )
                    else:
                        total += 1
            if len(due) < batch:
                return total

    # ------------------------------------------------------------------ statuses

    async def status_event(self, event_id: int) -> StatusView:
        """One status event by id, for workers (webhooks, the feed); no authorisation."""
        async with self.database.read() as connection:
            row = (
                await connection.execute(
                    sa.select(*_STATUS_COLUMNS)
                    .select_from(_status_join())
                    .where(status_events.c.id == event_id)
                )
            ).first()
        if row is None:
            raise NotFound(f"no status event {event_id}")
        return _status_view(row)

    async def find_statuses(
        self, client: Client, query: StatusQuery | None = None, page: PageRequest | None = None
    ) -> Page[StatusView]:
        query = query or StatusQuery()
        conditions: list[sa.ColumnElement[bool]] = [_visible(client.organisations)]
        if query.message_id is not None:
            conditions.append(messages.c.message_id == query.message_id)
        if query.conversation_id is not None:
            conditions.append(messages.c.conversation_id == query.conversation_id)
        if query.status is not None:
            conditions.append(status_events.c.status == query.status.value)
        if query.service_identifier is not None:
            conditions.append(messages.c.service_identifier == query.service_identifier.value)
        if query.direction is not None:
            conditions.append(messages.c.direction == query.direction.value)
        if query.from_time is not None:
            conditions.append(status_events.c.created_at >= query.from_time)
        if query.to_time is not None:
            conditions.append(status_events.c.created_at <= query.to_time)
        page = page or PageRequest()
        condition = sa.and_(*conditions)
        async with self.database.read() as connection:
            total = (
                await connection.execute(
                    sa.select(sa.func.count()).select_from(_status_join()).where(condition)
                )
            ).scalar_one()
            rows = (
                await connection.execute(
                    sa.select(*_STATUS_COLUMNS)
                    .select_from(_status_join())
                    .where(condition)
                    .order_by(status_events.c.id)
                    .limit(page.size)
                    .offset(page.offset)
                )
            ).all()
        return Page(tuple(_status_view(r) for r in rows), int(total), page, ("id",))

    async def message_statuses(
        self, client: Client, message_id: str, page: PageRequest | None = None
    ) -> Page[StatusView]:
        """``GET /api/statuses/{messageId}``: an empty page for an unknown (or foreign) id."""
        return await self.find_statuses(client, StatusQuery(message_id=message_id), page)

    async def peek_status(self, client: Client) -> StatusView | None:
        """The oldest status this client has not taken off its feed yet (None when none)."""
        taken = sa.exists().where(
            status_feed_acks.c.client_id == client.id,
            status_feed_acks.c.status_event_id == status_events.c.id,
        )
        async with self.database.read() as connection:
            row = (
                await connection.execute(
                    sa.select(*_STATUS_COLUMNS)
                    .select_from(_status_join())
                    .where(_visible(client.organisations), ~taken)
                    .order_by(status_events.c.id)
                    .limit(1)
                )
            ).first()
        return None if row is None else _status_view(row)

    async def delete_status(self, client: Client, status_id: int) -> None:
        """Take a status off the client's feed; NotFound if it is not on it."""
        now = self.clock()
        async with self.database.transaction() as connection:
            visible = (
                await connection.execute(
                    sa.select(status_events.c.id)
                    .select_from(_status_join())
                    .where(status_events.c.id == status_id, _visible(client.organisations))
                )
            ).scalar_one_or_none()
            if visible is None:
                raise NotFound(f"no status {status_id}")
            inserted = await connection.execute(
                insert_ignore(connection, status_feed_acks, "client_id", "status_event_id").values(
                    client_id=client.id, status_event_id=status_id, acked_at=now
                )
            )
            if inserted.rowcount == 0:
                raise NotFound(f"status {status_id} was taken off the feed already")

    # ------------------------------------------------------------------ conversations

    async def find_conversations(
        self,
        client: Client,
        query: ConversationQuery | None = None,
        page: PageRequest | None = None,
    ) -> Page[ConversationView]:
        """Conversations, newest first (``lastUpdate`` descending, as the reference sorts)."""
        query = query or ConversationQuery()
        conditions: list[sa.ColumnElement[bool]] = [_visible(client.organisations)]
        c = conversations.c
        for column, value in (
            (c.conversation_id, query.conversation_id),
            (c.message_id, query.message_id),
            (c.sender_identifier, query.sender_identifier),
            (c.receiver_identifier, query.receiver_identifier),
            (c.message_reference, query.message_reference),
            (c.message_title, query.message_title),
        ):
            if value is not None:
                conditions.append(column == value)
        if query.service_identifier is not None:
            conditions.append(c.service_identifier == query.service_identifier.value)
        if query.direction is not None:
            conditions.append(c.direction == query.direction.value)
        if query.finished is not None:
            conditions.append(c.finished == query.finished)
        page = page or PageRequest()
        joined = conversations.join(messages, messages.c.id == conversations.c.message_pk)
        condition = sa.and_(*conditions)
        async with self.database.read() as connection:
            total = (
                await connection.execute(
                    sa.select(sa.func.count()).select_from(joined).where(condition)
                )
            ).scalar_one()
            rows = (
                await connection.execute(
                    sa.select(conversations)
                    .select_from(joined)
                    .where(condition)
                    .order_by(c.last_update.desc(), c.id.desc())
                    .limit(page.size)
                    .offset(page.offset)
                )
            ).all()
            views = await self._conversation_views(connection, rows)
        return Page(tuple(views), int(total), page, ("lastUpdate",))

    async def conversation(self, client: Client, conversation_id: int) -> ConversationView:
        """``GET /api/conversations/{id}`` (the numeric id)."""
        return await self._one_conversation(client, conversations.c.id == conversation_id)

    async def conversation_by_message_id(self, client: Client, message_id: str) -> ConversationView:
        """``GET /api/conversations/messageId/{messageId}``: the outgoing one first."""
        return await self._one_conversation(client, conversations.c.message_id == message_id)

    async def _one_conversation(
        self, client: Client, condition: sa.ColumnElement[bool]
    ) -> ConversationView:
        joined = conversations.join(messages, messages.c.id == conversations.c.message_pk)
        async with self.database.read() as connection:
            rows = (
                await connection.execute(
                    sa.select(conversations)
                    .select_from(joined)
                    .where(condition, _visible(client.organisations))
                    .order_by(sa.case((conversations.c.direction == "OUTGOING", 0), else_=1))
                    .limit(1)
                )
            ).all()
            if not rows:
                raise NotFound("no such conversation")
            views = await self._conversation_views(connection, rows)
        return views[0]

    async def _conversation_views(
        self, connection: AsyncConnection, rows: Sequence[Any]
    ) -> list[ConversationView]:
        pks = [r.message_pk for r in rows]
        statuses: dict[int, list[StatusView]] = {}
        if pks:
            found = (
                await connection.execute(
                    sa.select(*_STATUS_COLUMNS, status_events.c.message_pk)
                    .select_from(_status_join())
                    .where(status_events.c.message_pk.in_(pks))
                    .order_by(status_events.c.id)
                )
            ).all()
            for s in found:
                statuses.setdefault(s.message_pk, []).append(_status_view(s))
        return [
            ConversationView(
                id=r.id,
                conversation_id=r.conversation_id,
                message_id=r.message_id,
                sender=r.sender,
                sender_identifier=r.sender_identifier,
                receiver=r.receiver,
                receiver_identifier=r.receiver_identifier,
                process=r.process,
                document_type=r.document_type,
                message_reference=r.message_reference,
                message_title=r.message_title,
                service_identifier=ServiceIdentifier(r.service_identifier),
                direction=Direction(r.direction),
                finished=bool(r.finished),
                expiry=r.expiry,
                last_update=r.last_update,
                statuses=tuple(statuses.get(r.message_pk, ())),
            )
            for r in rows
        ]


def _kvittering_description(message_id: str, sbd_json: str) -> str:
    """LEST's description: the kvittering's receipt type and messages, when they can be read
    (an unreadable one still means the receiver's system answered)."""
    text = f"Arkivmeldingkvittering mottatt ({message_id})"
    try:
        document = json.loads(sbd_json)
        document = document.get("standardBusinessDocument", document)
        kvittering = kvittering_from_json(document["arkivmelding_kvittering"])
    except (ValueError, KeyError, TypeError, AttributeError, InvalidInput):
        return text
    notes = "; ".join(
        ": ".join(part for part in (m.code, m.text) if part) for m in kvittering.messages
    )
    text += f": {kvittering.receipt_type.value}"
    if kvittering.receipt_type.failed:
        text += " (the receiving archive did not file the message)"
    return f"{text}: {notes}"[:1000] if notes else text


@dataclass(frozen=True, slots=True)
class _PoppedFile:
    """What :meth:`MessageService.pop` needs of a message file."""

    filename: str
    mime_type: str
    title: str | None
    primary: bool
    storage_id: str


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Stopped(Exception):
    """The consumer of a container stream went away."""


def _with_expiry_of(candidate: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``candidate`` with the stored SBD's defaulted expectedResponseDateTime, for comparison."""
    try:
        stored_scopes = stored[_JSON_PATH_HEADER]["businessScope"]["scope"]
        new_scopes = candidate[_JSON_PATH_HEADER]["businessScope"]["scope"]
    except (KeyError, TypeError):
        return candidate
    for old, new in zip(stored_scopes, new_scopes, strict=False):
        conversation = old.get("type") == new.get("type") == ScopeType.CONVERSATION_ID.value
        if conversation and "scopeInformation" in old:
            new["scopeInformation"] = old["scopeInformation"]
    return candidate


def _message_filters(query: MessageQuery) -> sa.ColumnElement[bool]:
    conditions: list[sa.ColumnElement[bool]] = []
    if query.message_id is not None:
        conditions.append(messages.c.message_id == query.message_id)
    if query.conversation_id is not None:
        conditions.append(messages.c.conversation_id == query.conversation_id)
    if query.service_identifier is not None:
        conditions.append(messages.c.service_identifier == query.service_identifier.value)
    if query.process is not None:
        conditions.append(messages.c.process == query.process)
    if query.sender_identifier is not None:
        conditions.append(messages.c.sender_org == party_key(query.sender_identifier))
    if query.receiver_identifier is not None:
        conditions.append(messages.c.receiver_org == party_key(query.receiver_identifier))
    return sa.and_(sa.true(), *conditions)
