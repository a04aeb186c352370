"""SMP documents as frozen values, the same for all three formats.

* Identifiers are ``(scheme, value)`` pairs; the scheme is ``None`` where the OASIS formats leave
  it out. Participant ids in the Peppol scheme compare case-insensitively (PFUOI POLICY 2);
  document type and process ids compare exactly.
* Times are timezone-aware :class:`~datetime.datetime` values; an SMP time without a zone is read
  as UTC, an SMP 2.0 date as midnight of that date in its zone (UTC when it has none).
* Certificates are kept as DER bytes, as received: a malformed one is an error only when it is
  used (:meth:`Endpoint.x509_certificate`), so that a document can still be read and shown.
* A :class:`ServiceMetadata` is either a redirect (Peppol and BDXR 1.0: the whole answer) or a
  participant, a document type and its processes. SMP 2.0 may redirect per process instead
  (:attr:`Process.redirect`), and may publish endpoints for any process (``process_id=None``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509

from elma.errors import SmpDocumentError
from elma.spec import (
    DOCTYPE_SCHEME_WILDCARD,
    PARTICIPANT_SCHEME_PEPPOL,
    SmpFormat,
)

__all__ = [
    "DocumentTypeId",
    "DocumentTypeParts",
    "Endpoint",
    "ParticipantId",
    "Process",
    "ProcessId",
    "Redirect",
    "ServiceGroup",
    "ServiceMetadata",
    "ServiceReference",
    "SmpFormat",
]


def _check_value(kind: str, value: str) -> None:
    if not value or value != value.strip():
        raise ValueError(f"{kind} value {value!r} is empty or has surrounding whitespace")


def _uri(scheme: str | None, value: str) -> str:
    return f"{scheme or ''}::{value}"


def _split_uri(text: str, kind: str) -> tuple[str | None, str]:
    scheme, sep, value = text.partition("::")
    if not sep:
        raise ValueError(f"{kind} {text!r} is not of the form scheme::value")
    return (scheme or None), value


@dataclass(frozen=True, eq=False)
class ParticipantId:
    """A participant identifier. Peppol-scheme ids compare case-insensitively."""

    scheme: str | None
    value: str

    def __post_init__(self) -> None:
        _check_value("participant identifier", self.value)

    @classmethod
    def peppol(cls, value: str) -> ParticipantId:
        """``0192:991825827`` in the ``iso6523-actorid-upis`` scheme."""
        return cls(PARTICIPANT_SCHEME_PEPPOL, value)

    @classmethod
    def from_uri(cls, text: str) -> ParticipantId:
        """Parse the ``scheme::value`` form (``::value`` when there is no scheme)."""
        scheme, value = _split_uri(text, "participant identifier")
        return cls(scheme, value)

    @property
    def is_peppol(self) -> bool:
        return (self.scheme or "").lower() == PARTICIPANT_SCHEME_PEPPOL

    def uri(self) -> str:
        """``scheme::value``, the form SMP URLs and AS4 properties use."""
        return _uri(self.scheme, self.value)

    def _key(self) -> tuple[str | None, str]:
        if self.is_peppol:
            return (PARTICIPANT_SCHEME_PEPPOL, self.value.lower())
        return (self.scheme, self.value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParticipantId):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.uri()


@dataclass(frozen=True)
class DocumentTypeParts:
    """A Peppol document type id value: ``{root}::{local}##{customization}::{version}``."""

    root_namespace: str
    local_name: str
    customization_id: str
    version: str

    @classmethod
    def parse(cls, value: str) -> DocumentTypeParts | None:
        """The parts of ``value``, or ``None`` when it is not of that shape."""
        root, sep, rest = value.partition("::")
        if not sep:
            return None
        local, sep, rest = rest.partition("##")
        if not sep:
            return None
        customization, sep, version = rest.rpartition("::")
        if not sep or not (root and local and customization and version):
            return None
        return cls(root, local, customization, version)

    def with_customization(self, customization_id: str) -> DocumentTypeParts:
        return DocumentTypeParts(
            self.root_namespace, self.local_name, customization_id, self.version
        )

    def value(self) -> str:
        return f"{self.root_namespace}::{self.local_name}##{self.customization_id}::{self.version}"


@dataclass(frozen=True)
class DocumentTypeId:
    """A document type identifier; compared exactly (PFUOI POLICY 2)."""

    scheme: str | None
    value: str

    def __post_init__(self) -> None:
        _check_value("document type identifier", self.value)

    @classmethod
    def from_uri(cls, text: str) -> DocumentTypeId:
        scheme, value = _split_uri(text, "document type identifier")
        return cls(scheme, value)

    @property
    def is_wildcard_scheme(self) -> bool:
        return self.scheme == DOCTYPE_SCHEME_WILDCARD

    def parts(self) -> DocumentTypeParts | None:
        return DocumentTypeParts.parse(self.value)

    def uri(self) -> str:
        return _uri(self.scheme, self.value)

    def __str__(self) -> str:
        return self.uri()


@dataclass(frozen=True)
class ProcessId:
    """A process identifier; compared exactly (PFUOI POLICY 2)."""

    scheme: str | None
    value: str

    def __post_init__(self) -> None:
        _check_value("process identifier", self.value)

    @classmethod
    def from_uri(cls, text: str) -> ProcessId:
        scheme, value = _split_uri(text, "process identifier")
        return cls(scheme, value)

    def uri(self) -> str:
        return _uri(self.scheme, self.value)

    def __str__(self) -> str:
        return self.uri()


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")


def load_der_certificate(der: bytes, where: str) -> x509.Certificate:
    """A DER certificate taken from an SMP document, or :class:`SmpDocumentError`."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise SmpDocumentError(
            f"{where} does not hold a DER X.509 certificate: {exc}", rule="smp-certificate"
        ) from exc


@dataclass(frozen=True)
class Endpoint:
    """One way to reach the receiver for a process: transport profile, address, AP certificate."""

    transport_profile: str
    address: str
    #: the receiving access point's certificate, DER (SMP 2.0: the first one published)
    certificate: bytes | None = field(default=None, repr=False)
    service_activation: datetime | None = None
    service_expiration: datetime | None = None
    require_business_level_signature: bool = False
    minimum_authentication_level: str | None = None
    description: str | None = None
    technical_contact: str | None = None
    technical_information: str | None = None

    def __post_init__(self) -> None:
        if not self.transport_profile:
            raise ValueError("an endpoint needs a transport profile")
        if not self.address:
            raise ValueError("an endpoint needs an address")
        _require_aware("service_activation", self.service_activation)
        _require_aware("service_expiration", self.service_expiration)

    def is_active(self, at: datetime) -> bool:
        """Activated at or before ``at`` and not yet expired at ``at``."""
        if at.tzinfo is None:
            raise ValueError("the time must be timezone-aware")
        if self.service_activation is not None and at < self.service_activation:
            return False
        return self.service_expiration is None or at < self.service_expiration

    def x509_certificate(self) -> x509.Certificate:
        """The certificate, parsed; :class:`SmpDocumentError` when absent or malformed."""
        if self.certificate is None:
            raise SmpDocumentError(
                f"endpoint {self.address} publishes no certificate", rule="smp-certificate"
            )
        return load_der_certificate(self.certificate, f"the certificate of endpoint {self.address}")


@dataclass(frozen=True)
class Redirect:
    """Ask another SMP. Peppol and BDXR 1.0 name its signer (``certificate_uid``, a subject
    name); SMP 2.0 publishes its certificates (DER)."""

    href: str
    certificate_uid: str | None = None
    certificates: tuple[bytes, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if not self.href:
            raise ValueError("a redirect needs an href")


@dataclass(frozen=True)
class Process:
    """A process the document type is received in, and the endpoints serving it.

    ``process_id`` is ``None`` for an SMP 2.0 ProcessMetadata that names no process (it serves
    any process). ``roles`` and ``redirect`` exist in SMP 2.0 only.
    """

    process_id: ProcessId | None
    endpoints: tuple[Endpoint, ...] = ()
    roles: tuple[str, ...] = ()
    redirect: Redirect | None = None

    def __post_init__(self) -> None:
        if bool(self.endpoints) == (self.redirect is not None):
            raise ValueError("a process has either endpoints or a redirect, not both or neither")


@dataclass(frozen=True)
class ServiceMetadata:
    """The answer for one participant and document type: processes and endpoints, or a redirect."""

    participant: ParticipantId | None
    document_type: DocumentTypeId | None
    processes: tuple[Process, ...] = ()
    redirect: Redirect | None = None
    format: SmpFormat = SmpFormat.PEPPOL

    def __post_init__(self) -> None:
        if self.redirect is not None:
            if self.processes:
                raise ValueError("a redirect answer carries no processes")
            if self.format is SmpFormat.SMP2:
                raise ValueError("SMP 2.0 redirects per process (Process.redirect)")
            return
        if self.participant is None or self.document_type is None:
            raise ValueError("service metadata needs a participant and a document type")
        if not self.processes:
            raise ValueError("service metadata needs at least one process")


@dataclass(frozen=True)
class ServiceReference:
    """One entry of a service group.

    Peppol and BDXR 1.0 publish an ``href`` (the document type is read back from it when the
    URL has the standard shape); SMP 2.0 publishes the document type and its processes.
    """

    document_type: DocumentTypeId | None
    href: str | None = None
    processes: tuple[ProcessId, ...] = ()

    def __post_init__(self) -> None:
        if self.document_type is None and not self.href:
            raise ValueError("a service reference needs a document type or an href")


@dataclass(frozen=True)
class ServiceGroup:
    """A participant and the document types it publishes."""

    participant: ParticipantId
    references: tuple[ServiceReference, ...] = ()
    format: SmpFormat = SmpFormat.PEPPOL

    def document_types(self) -> tuple[DocumentTypeId, ...]:
        """The document types of the references whose type is known, in document order."""
        return tuple(r.document_type for r in self.references if r.document_type is not None)
