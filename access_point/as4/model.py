"""The values that cross the AS4 core's boundary: ebMS metadata, signed references, options.

All frozen. Messages in flight (:class:`~access_point.as4.build.OutboundMessage`,
:class:`~access_point.as4.receive.InboundMessage`) live beside the code that makes them because
they hold open spool files; everything here is plain data that can be stored and compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .errors import EbmsError
from .spec import PropertyName

__all__ = [
    "DOCUMENT_SCHEME",
    "PARTICIPANT_SCHEME",
    "PROCESS_SCHEME",
    "BuildOptions",
    "Identifier",
    "PartInfo",
    "Party",
    "Property",
    "ReceiveOptions",
    "Routing",
    "SignalMessage",
    "SignedReference",
    "UserMessage",
]

PARTICIPANT_SCHEME = "iso6523-actorid-upis"
DOCUMENT_SCHEME = "busdox-docid-qns"
PROCESS_SCHEME = "cenbii-procid-ubl"


@dataclass(frozen=True)
class Identifier:
    """A Peppol identifier: its scheme and its value (``iso6523-actorid-upis`` / ``0192:…``)."""

    scheme: str
    value: str

    def __str__(self) -> str:
        return f"{self.scheme}::{self.value}"

    @classmethod
    def participant(cls, value: str) -> Identifier:
        return cls(PARTICIPANT_SCHEME, value)

    @classmethod
    def document_type(cls, value: str) -> Identifier:
        return cls(DOCUMENT_SCHEME, value)

    @classmethod
    def process(cls, value: str) -> Identifier:
        return cls(PROCESS_SCHEME, value)


@dataclass(frozen=True)
class Routing:
    """What the sender says about the business document: who, to whom, what, in which process.

    These go into the ebMS header (``originalSender``, ``finalRecipient``, ``Service``,
    ``Action``) and must agree with the SBDH of the payload.
    """

    sender: Identifier
    receiver: Identifier
    document_type: Identifier
    process: Identifier


@dataclass(frozen=True)
class Party:
    party_id: str
    type: str | None
    role: str


@dataclass(frozen=True)
class Property:
    name: str
    value: str
    type: str | None = None


@dataclass(frozen=True)
class PartInfo:
    href: str | None
    properties: tuple[Property, ...] = ()

    def property_value(self, name: str) -> str | None:
        return next((p.value for p in self.properties if p.name == name), None)

    @property
    def content_id(self) -> str | None:
        """The MIME Content-ID this part refers to (``cid:`` removed), or None."""
        if self.href is None or not self.href.startswith("cid:"):
            return None
        return self.href[4:]


@dataclass(frozen=True)
class UserMessage:
    """The ebMS 3 UserMessage header, as read from (or written to) eb:Messaging."""

    message_id: str
    timestamp: datetime | None
    from_party: Party
    to_party: Party
    service: str
    service_type: str | None
    action: str
    conversation_id: str
    agreement_ref: str | None = None
    ref_to_message_id: str | None = None
    mpc: str | None = None
    properties: tuple[Property, ...] = ()
    parts: tuple[PartInfo, ...] = ()

    def find_property(self, name: str) -> Property | None:
        return next((p for p in self.properties if p.name == name), None)

    @property
    def routing(self) -> Routing | None:
        """The Peppol routing the header declares, when it carries all of it."""
        sender = self.find_property(PropertyName.ORIGINAL_SENDER)
        receiver = self.find_property(PropertyName.FINAL_RECIPIENT)
        if sender is None or receiver is None or not sender.type or not receiver.type:
            return None
        scheme, sep, value = self.action.partition("::")
        if not sep or not self.service_type:
            return None
        return Routing(
            sender=Identifier(sender.type, sender.value),
            receiver=Identifier(receiver.type, receiver.value),
            document_type=Identifier(scheme, value),
            process=Identifier(self.service_type, self.service),
        )


@dataclass(frozen=True)
class SignedReference:
    """One ds:Reference of a WS-Security signature, as sent and as acknowledged in a receipt.

    ``xml`` is the reference element itself (exclusive c14n, so it can be copied into the
    receipt's NonRepudiationInformation verbatim); it is empty when the value was rebuilt from
    storage without it.
    """

    uri: str
    digest_method: str
    digest_value: str
    transforms: tuple[str, ...] = ()
    xml: bytes = field(default=b"", compare=False, repr=False)

    def matches(self, other: SignedReference) -> bool:
        """Same target, same digest algorithm and value, same transforms (order kept)."""
        return (
            self.uri == other.uri
            and self.digest_method == other.digest_method
            and self.digest_value == other.digest_value
            and self.transforms == other.transforms
        )


@dataclass(frozen=True)
class SignalMessage:
    """An ebMS SignalMessage (Receipt or Error), as read from a response."""

    message_id: str
    timestamp: datetime | None
    ref_to_message_id: str | None
    is_receipt: bool
    #: the ds:Reference elements of the receipt's NonRepudiationInformation
    receipt_references: tuple[SignedReference, ...] = ()
    errors: tuple[EbmsError, ...] = ()


@dataclass(frozen=True)
class BuildOptions:
    """How outgoing messages are made. The defaults follow the Peppol profile."""

    #: right-hand side of generated message ids and Content-IDs (``uuid@domain``)
    id_domain: str = "budstikke"
    #: zlib level for the payload's gzip; 6 is zlib's own trade-off
    compression_level: int = 6
    #: payloads and attachments stay in memory up to this size, then spill to a temp file
    spool_threshold: int = 8 * 1024 * 1024
    #: directory for spilled temp files (None: the system default)
    spool_dir: str | None = None
    #: read and write granularity of the streamed paths
    chunk_size: int = 1024 * 1024
    #: MIME type recorded for the (uncompressed) payload
    payload_mime_type: str = "application/xml"

    def __post_init__(self) -> None:
        if not 0 <= self.compression_level <= 9:
            raise ValueError("compression_level must be 0..9")
        if self.chunk_size < 4096:
            raise ValueError("chunk_size below 4 KiB is not useful")
        if not self.id_domain or any(c in self.id_domain for c in "<>@ \t\r\n"):
            raise ValueError("id_domain must be a plain domain-like token")


@dataclass(frozen=True)
class ReceiveOptions:
    """Limits and checks applied to incoming messages."""

    #: largest SOAP part accepted, in bytes
    max_soap_bytes: int = 4 * 1024 * 1024
    #: largest payload accepted after decompression, and largest total of all payloads of one
    #: message; past it the answer is EBMS:0303
    max_payload_bytes: int = 1024 * 1024 * 1024
    #: most payloads (PartInfo) one message may carry; more is EBMS:0002. Peppol BIS carries
    #: exactly one (the SBD); eFormidling archive messages two (the SBD, then the ASiC-E
    #: document package, signed or CMS-encrypted), as DPI does
    max_payloads: int = 1
    #: decompressed payloads stay in memory up to this size, then spill to a temp file
    spool_threshold: int = 8 * 1024 * 1024
    spool_dir: str | None = None
    chunk_size: int = 1024 * 1024
    #: refuse a message whose eb:To PartyId is not our certificate's CN
    check_to_party: bool = True

    def __post_init__(self) -> None:
        if self.max_soap_bytes <= 0 or self.max_payload_bytes <= 0 or self.max_payloads <= 0:
            raise ValueError("limits must be positive")
        if self.chunk_size < 4096:
            raise ValueError("chunk_size below 4 KiB is not useful")
