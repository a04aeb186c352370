"""What the local SMP/ELMA server publishes: participants and their service registrations.

A :class:`ParticipantRecord` is one participant and, per document type, either the processes
and endpoints it receives in (:class:`elma.model.Process` / :class:`elma.model.Endpoint`, the
same values the SMP documents are made of) or a redirect to another SMP
(:class:`RedirectTarget`). Storage is the small :class:`ParticipantRegistry` protocol with two
implementations: :class:`MemoryRegistry`, and :class:`JsonFileRegistry`, which keeps the records
in one JSON file written atomically (a temporary file in the same directory, then
``os.replace``) and reads it again whenever another process has replaced it.

The JSON form, used by the file and by the server's admin API alike::

    {
      "participant": "iso6523-actorid-upis::0192:991825827",     (or just "0192:991825827")
      "name": "Digitaliseringsdirektoratet",                       (optional)
      "services": [
        {
          "document_type": "busdox-docid-qns::urn:oasis:…:Invoice-2::Invoice##…::2.1",
          "processes": [
            {
              "process": "cenbii-procid-ubl::urn:fdc:peppol.eu:2017:poacc:billing:01:1.0",
              "endpoints": [
                {
                  "transport_profile": "peppol-transport-as4-v2_0",
                  "url": "https://ap.example.no/as4",
                  "certificate": "-----BEGIN CERTIFICATE-----…",   (PEM, or base64 DER)
                  "service_activation": "2025-01-01T00:00:00Z",     (optional, with a zone)
                  "service_expiration": null,                       (optional, with a zone)
                  "description": "…", "technical_contact": "mailto:…",
                  "technical_information": "https://…",             (all three optional)
                  "require_business_level_signature": false,        (optional)
                  "minimum_authentication_level": null               (optional)
                }
              ]
            }
          ]
        },
        {
          "document_type": "busdox-docid-qns::…",
          "redirect": {
            "smp_url": "https://other-smp.example.org",      (the other SMP's base URL)
            "certificate": "-----BEGIN CERTIFICATE-----…",   (its signing certificate, and/or
            "certificate_uid": "C=NO,O=…,CN=…"                 its subject as CertificateUID)
          }
        }
      ]
    }

Identifiers are in their ``scheme::value`` form. Participants in the Peppol scheme are checked
as the access point checks them (:class:`sbdh.identifiers.ParticipantId`: ICD, organisation
number check digits). Every problem is a :class:`RegistrationError` naming the field, e.g.
``services[0].processes[1].endpoints[0].certificate``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from elma.model import DocumentTypeId, Endpoint, ParticipantId, Process, ProcessId
from elma.spec import PARTICIPANT_SCHEME_PEPPOL
from sbdh.errors import ConfigurationError, InvalidIdentifier, InvalidInput
from sbdh.identifiers import ParticipantId as PeppolParticipantId

try:  # advisory locking between processes sharing one file (POSIX); threads use a lock anyway
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "JsonFileRegistry",
    "MemoryRegistry",
    "ParticipantRecord",
    "ParticipantRegistry",
    "RedirectTarget",
    "RegistrationError",
    "ServiceRegistration",
    "parse_participant",
    "record_from_json",
    "record_to_json",
]

#: the JSON file's format version
FILE_VERSION = 1
_MAX_SERVICES = 1000
_MAX_PROCESSES = 100
_MAX_ENDPOINTS = 20
_MAX_TEXT = 4096
_MAX_CERTIFICATE = 64 * 1024
_RECORD_KEYS = frozenset({"participant", "name", "services"})
_SERVICE_KEYS = frozenset({"document_type", "processes", "redirect"})
_PROCESS_KEYS = frozenset({"process", "endpoints"})
_REDIRECT_KEYS = frozenset({"smp_url", "certificate", "certificate_uid"})
_ENDPOINT_KEYS = frozenset(
    {
        "transport_profile",
        "url",
        "certificate",
        "service_activation",
        "service_expiration",
        "require_business_level_signature",
        "minimum_authentication_level",
        "description",
        "technical_contact",
        "technical_information",
    }
)


class RegistrationError(InvalidInput):
    """A registration that cannot be stored; ``field`` is the path of the offending field."""

    code = "invalid-registration"

    def __init__(self, message: str, *, field: str, rule: str = "elma-registration") -> None:
        super().__init__(message, rule=rule)
        self.field = field


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class RedirectTarget:
    """Another SMP that holds the answer for a document type.

    ``smp_url`` is its base URL; the redirect a client gets points at the same resource there
    (``{smp_url}{service metadata path}``). ``certificate`` (DER) is the SMP's signing
    certificate (SMP 2.0 publishes it); ``certificate_uid`` its subject, as Peppol and BDXR 1.0
    publish it. One of them is needed; the UID is taken from the certificate when only that is
    given.
    """

    smp_url: str
    certificate: bytes | None = field(default=None, repr=False)
    certificate_uid: str | None = None

    def __post_init__(self) -> None:
        if self.certificate is None and not self.certificate_uid:
            raise ValueError("a redirect needs the target SMP's certificate or certificate UID")

    @property
    def uid(self) -> str:
        """The CertificateUID to publish: as given, else the certificate's subject."""
        if self.certificate_uid:
            return self.certificate_uid
        assert self.certificate is not None
        return x509.load_der_x509_certificate(self.certificate).subject.rfc4514_string()


@dataclass(frozen=True)
class ServiceRegistration:
    """One document type a participant receives: its processes and endpoints, or a redirect."""

    document_type: DocumentTypeId
    processes: tuple[Process, ...] = ()
    redirect: RedirectTarget | None = None

    def __post_init__(self) -> None:
        if bool(self.processes) == (self.redirect is not None):
            raise ValueError("a service has processes or a redirect, not both or neither")


@dataclass(frozen=True)
class ParticipantRecord:
    """A participant and the document types it is registered for, in the order given."""

    participant: ParticipantId
    services: tuple[ServiceRegistration, ...] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        seen: set[DocumentTypeId] = set()
        for service in self.services:
            if service.document_type in seen:
                raise ValueError(f"document type {service.document_type} is registered twice")
            seen.add(service.document_type)

    def service(self, document_type: DocumentTypeId) -> ServiceRegistration | None:
        """The registration for exactly this document type (ids compare exactly)."""
        return next((s for s in self.services if s.document_type == document_type), None)

    def document_types(self) -> tuple[DocumentTypeId, ...]:
        return tuple(s.document_type for s in self.services)


# --------------------------------------------------------------------------- JSON form


def parse_participant(text: str, *, field: str = "participant") -> ParticipantId:
    """``scheme::value``, or a bare ``0192:991825827`` in the Peppol scheme. Peppol-scheme ids
    are checked like the access point checks them; :class:`RegistrationError` otherwise."""
    text = text.strip()
    try:
        participant = ParticipantId.from_uri(text) if "::" in text else ParticipantId.peppol(text)
        if participant.is_peppol:
            PeppolParticipantId(participant.value, participant.scheme or PARTICIPANT_SCHEME_PEPPOL)
    except InvalidIdentifier as exc:
        raise RegistrationError(
            f"participant {text!r}: {exc.message}", field=field, rule=exc.rule or "elma-participant"
        ) from exc
    except ValueError as exc:
        raise RegistrationError(
            f"participant {text!r}: {exc}", field=field, rule="elma-participant"
        ) from exc
    return participant


class _Reader:
    """Reads one JSON value, naming fields by their path for the errors."""

    def __init__(self, value: Any, path: str) -> None:
        self.value = value
        self.path = path

    def fail(
        self, message: str, *, key: str | None = None, rule: str = "elma-registration"
    ) -> RegistrationError:
        where = self._join(key) if key is not None else self.path
        return RegistrationError(f"{where}: {message}", field=where, rule=rule)

    def _join(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def object(self) -> Mapping[str, Any]:
        if not isinstance(self.value, Mapping):
            raise self.fail("must be a JSON object")
        return self.value

    def only(self, allowed: frozenset[str]) -> None:
        """Refuse unknown members: a misspelt ``service_expiration`` must not silently publish
        an endpoint that never expires."""
        unknown = sorted(str(k) for k in self.object() if k not in allowed)
        if unknown:
            raise self.fail(
                f"unknown member (allowed: {', '.join(sorted(allowed))})",
                key=unknown[0],
                rule="elma-unknown-member",
            )

    def child(self, key: str) -> _Reader:
        return _Reader(self.object().get(key), self._join(key))

    def items(self, key: str, *, limit: int, required: bool = True) -> list[_Reader]:
        value = self.object().get(key)
        path = self._join(key)
        if value is None and not required:
            return []
        if not isinstance(value, list) or (required and not value):
            raise RegistrationError(
                f"{path}: must be a non-empty JSON list", field=path, rule="elma-registration"
            )
        if len(value) > limit:
            raise RegistrationError(
                f"{path}: at most {limit} entries are allowed", field=path, rule="elma-limit"
            )
        return [_Reader(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def text(self, key: str, *, required: bool = True, limit: int = _MAX_TEXT) -> str | None:
        value = self.object().get(key)
        if value is None:
            if required:
                raise self.fail("is required", key=key)
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail("must be a non-empty string", key=key)
        if len(value) > limit:
            raise self.fail(f"is longer than {limit} characters", key=key, rule="elma-limit")
        return value

    def required_text(self, key: str) -> str:
        value = self.text(key)
        assert value is not None
        return value

    def boolean(self, key: str) -> bool:
        value = self.object().get(key, False)
        if not isinstance(value, bool):
            raise self.fail("must be true or false", key=key)
        return value

    def timestamp(self, key: str) -> datetime | None:
        text = self.text(key, required=False)
        if text is None:
            return None
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise self.fail(f"{text!r} is not an ISO 8601 date-time", key=key) from exc
        if value.tzinfo is None:
            raise self.fail(f"{text!r} has no time zone (add Z or an offset)", key=key)
        return value

    def url(self, key: str) -> str:
        text = self.required_text(key).strip()
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.fail(f"{text!r} is not an absolute http(s) URL", key=key, rule="elma-url")
        return text

    def certificate(self, key: str, *, required: bool = True) -> bytes | None:
        text = self.text(key, required=required, limit=_MAX_CERTIFICATE)
        if text is None:
            return None
        try:
            if "-----BEGIN" in text:
                cert = x509.load_pem_x509_certificate(text.encode("ascii"))
            else:
                der = base64.b64decode("".join(text.split()), validate=True)
                cert = x509.load_der_x509_certificate(der)
        except (ValueError, UnicodeError, binascii.Error) as exc:
            raise self.fail(
                "is not an X.509 certificate (PEM, or base64 of DER)",
                key=key,
                rule="elma-certificate",
            ) from exc
        return cert.public_bytes(serialization.Encoding.DER)

    def document_type(self, key: str) -> DocumentTypeId:
        text = self.required_text(key)
        try:
            return DocumentTypeId.from_uri(text)
        except ValueError as exc:
            raise self.fail(f"{text!r} is not scheme::value ({exc})", key=key) from exc

    def process(self, key: str) -> ProcessId:
        text = self.required_text(key)
        try:
            return ProcessId.from_uri(text)
        except ValueError as exc:
            raise self.fail(f"{text!r} is not scheme::value ({exc})", key=key) from exc


def _endpoint(reader: _Reader) -> Endpoint:
    reader.only(_ENDPOINT_KEYS)
    try:
        return Endpoint(
            transport_profile=reader.required_text("transport_profile").strip(),
            address=reader.url("url"),
            certificate=reader.certificate("certificate"),
            service_activation=reader.timestamp("service_activation"),
            service_expiration=reader.timestamp("service_expiration"),
            require_business_level_signature=reader.boolean("require_business_level_signature"),
            minimum_authentication_level=reader.text(
                "minimum_authentication_level", required=False
            ),
            description=reader.text("description", required=False),
            technical_contact=reader.text("technical_contact", required=False),
            technical_information=reader.text("technical_information", required=False),
        )
    except ValueError as exc:
        raise reader.fail(str(exc)) from exc


def _process(reader: _Reader) -> Process:
    reader.only(_PROCESS_KEYS)
    process_id = reader.process("process")
    endpoints = tuple(_endpoint(e) for e in reader.items("endpoints", limit=_MAX_ENDPOINTS))
    return Process(process_id, endpoints)


def _redirect(reader: _Reader) -> RedirectTarget:
    reader.only(_REDIRECT_KEYS)
    smp_url = reader.url("smp_url").rstrip("/")
    certificate = reader.certificate("certificate", required=False)
    uid = reader.text("certificate_uid", required=False)
    if certificate is None and uid is None:
        raise reader.fail(
            "needs the target SMP's certificate or certificate_uid", rule="elma-redirect"
        )
    return RedirectTarget(smp_url, certificate, uid)


def _service(reader: _Reader) -> ServiceRegistration:
    reader.only(_SERVICE_KEYS)
    document_type = reader.document_type("document_type")
    has_redirect = reader.object().get("redirect") is not None
    has_processes = reader.object().get("processes") is not None
    if has_redirect == has_processes:
        raise reader.fail('needs either "processes" or "redirect"', rule="elma-service")
    if has_redirect:
        return ServiceRegistration(document_type, redirect=_redirect(reader.child("redirect")))
    processes = [_process(p) for p in reader.items("processes", limit=_MAX_PROCESSES)]
    seen: set[ProcessId | None] = set()
    for index, process in enumerate(processes):
        if process.process_id in seen:
            raise RegistrationError(
                f"{reader.path}.processes[{index}]: process {process.process_id} is listed twice",
                field=f"{reader.path}.processes[{index}].process",
                rule="elma-duplicate",
            )
        seen.add(process.process_id)
    return ServiceRegistration(document_type, tuple(processes))


def record_from_json(data: Any, *, participant: ParticipantId | None = None) -> ParticipantRecord:
    """Read a registration (see the module notes). ``participant``, when given (the admin API
    takes it from the URL), is used when the body names none, and must match when it does."""
    reader = _Reader(data, "")
    reader.only(_RECORD_KEYS)
    body = reader.object()
    named = body.get("participant")
    if named is not None:
        if not isinstance(named, str):
            raise reader.fail("must be a string", key="participant")
        from_body = parse_participant(named)
        if participant is not None and from_body != participant:
            raise reader.fail(
                f"{named!r} is not the participant of the URL ({participant})",
                key="participant",
                rule="elma-participant-mismatch",
            )
        participant = from_body
    if participant is None:
        raise reader.fail("is required", key="participant")
    name = reader.text("name", required=False)
    services: list[ServiceRegistration] = []
    seen: set[DocumentTypeId] = set()
    for index, item in enumerate(reader.items("services", limit=_MAX_SERVICES, required=False)):
        service = _service(item)
        if service.document_type in seen:
            raise RegistrationError(
                f"services[{index}]: document type {service.document_type} is listed twice",
                field=f"services[{index}].document_type",
                rule="elma-duplicate",
            )
        seen.add(service.document_type)
        services.append(service)
    return ParticipantRecord(participant, tuple(services), name)


def _pem(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    out: dict[str, Any] = {
        "transport_profile": endpoint.transport_profile,
        "url": endpoint.address,
    }
    if endpoint.certificate is not None:
        out["certificate"] = _pem(endpoint.certificate)
    for key, when in (
        ("service_activation", endpoint.service_activation),
        ("service_expiration", endpoint.service_expiration),
    ):
        if when is not None:
            out[key] = when.isoformat()
    if endpoint.require_business_level_signature:
        out["require_business_level_signature"] = True
    for key, text in (
        ("minimum_authentication_level", endpoint.minimum_authentication_level),
        ("description", endpoint.description),
        ("technical_contact", endpoint.technical_contact),
        ("technical_information", endpoint.technical_information),
    ):
        if text is not None:
            out[key] = text
    return out


def _service_json(service: ServiceRegistration) -> dict[str, Any]:
    out: dict[str, Any] = {"document_type": service.document_type.uri()}
    if service.redirect is not None:
        redirect: dict[str, Any] = {"smp_url": service.redirect.smp_url}
        if service.redirect.certificate is not None:
            redirect["certificate"] = _pem(service.redirect.certificate)
        if service.redirect.certificate_uid:
            redirect["certificate_uid"] = service.redirect.certificate_uid
        out["redirect"] = redirect
        return out
    out["processes"] = [
        {
            "process": str(p.process_id),
            "endpoints": [_endpoint_json(e) for e in p.endpoints],
        }
        for p in service.processes
    ]
    return out


def record_to_json(record: ParticipantRecord) -> dict[str, Any]:
    """The JSON form of ``record``; :func:`record_from_json` reads it back unchanged."""
    out: dict[str, Any] = {"participant": record.participant.uri()}
    if record.name is not None:
        out["name"] = record.name
    out["services"] = [_service_json(s) for s in record.services]
    return out


# --------------------------------------------------------------------------- storage


@runtime_checkable
class ParticipantRegistry(Protocol):
    """Where the SMP's participants are kept."""

    def get(self, participant: ParticipantId) -> ParticipantRecord | None:
        """The participant's record, or ``None`` when it is not registered."""
        ...

    def put(self, record: ParticipantRecord) -> bool:
        """Register or replace; ``True`` when the participant was new."""
        ...

    def remove(self, participant: ParticipantId) -> bool:
        """Unregister; ``True`` when the participant was registered."""
        ...

    def records(self) -> list[ParticipantRecord]:
        """Every record, ordered by participant id."""
        ...


def _sorted(records: Mapping[ParticipantId, ParticipantRecord]) -> list[ParticipantRecord]:
    return sorted(records.values(), key=lambda r: r.participant.uri().lower())


class MemoryRegistry:
    """The registry in memory."""

    def __init__(self, records: Sequence[ParticipantRecord] = ()) -> None:
        self._records: dict[ParticipantId, ParticipantRecord] = {}
        for record in records:
            self.put(record)

    def get(self, participant: ParticipantId) -> ParticipantRecord | None:
        return self._records.get(participant)

    def put(self, record: ParticipantRecord) -> bool:
        new = record.participant not in self._records
        self._records[record.participant] = record
        return new

    def remove(self, participant: ParticipantId) -> bool:
        return self._records.pop(participant, None) is not None

    def records(self) -> list[ParticipantRecord]:
        return _sorted(self._records)

    def __len__(self) -> int:
        return len(self._records)


class JsonFileRegistry:
    """The registry in one JSON file, ``{"version": 1, "participants": [record, ...]}``.

    Every change is written to a temporary file beside it and moved into place with
    ``os.replace``, so a reader never sees half a file. Changes by other processes (the
    ``elma register`` command while the server runs) are picked up: the file is read again
    whenever its identity (inode, size, modification time) has changed, and a change is made
    under an advisory lock on ``FILE.lock`` after reading the latest version.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._records: dict[ParticipantId, ParticipantRecord] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._reload()

    def __repr__(self) -> str:
        return f"JsonFileRegistry({str(self.path)!r})"

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def _reload(self) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        self._records = self._read() if stamp is not None else {}
        self._stamp = stamp

    def _read(self) -> dict[ParticipantId, ParticipantRecord]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot read the SMP registry {self.path}: {exc}", rule="elma-registry-file"
            ) from exc
        if not isinstance(data, Mapping) or not isinstance(data.get("participants"), list):
            raise ConfigurationError(
                f'{self.path}: expected {{"version": {FILE_VERSION}, "participants": [...]}}',
                rule="elma-registry-file",
            )
        if data.get("version", FILE_VERSION) != FILE_VERSION:
            raise ConfigurationError(
                f"{self.path}: unsupported registry version {data.get('version')!r}",
                rule="elma-registry-file",
            )
        records: dict[ParticipantId, ParticipantRecord] = {}
        for index, item in enumerate(data["participants"]):
            try:
                record = record_from_json(item)
            except RegistrationError as exc:
                raise ConfigurationError(
                    f"{self.path}: participants[{index}]: {exc.message}", rule=exc.rule
                ) from exc
            records[record.participant] = record
        return records

    def _write(self) -> None:
        document = {
            "version": FILE_VERSION,
            "participants": [record_to_json(r) for r in _sorted(self._records)],
        }
        data = json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self._stamp = self._file_stamp()

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the thread lock and the file lock, with the latest file read."""
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_path = self.path.with_name(self.path.name + ".lock")
            with open(lock_path, "a+b") as lock_file:
                if fcntl is not None:
                    fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
                try:
                    self._reload()
                    yield
                finally:
                    if fcntl is not None:
                        fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)

    def get(self, participant: ParticipantId) -> ParticipantRecord | None:
        with self._lock:
            self._reload()
            return self._records.get(participant)

    def put(self, record: ParticipantRecord) -> bool:
        with self._changing():
            new = record.participant not in self._records
            self._records[record.participant] = record
            self._write()
            return new

    def remove(self, participant: ParticipantId) -> bool:
        with self._changing():
            if participant not in self._records:
                return False
            del self._records[participant]
            self._write()
            return True

    def records(self) -> list[ParticipantRecord]:
        with self._lock:
            self._reload()
            return _sorted(self._records)
