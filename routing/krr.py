"""KRR, the contact and reservation register: the request, the answer, and what it means.

Pure core (no I/O): :func:`build_request` makes the body of ``POST /rest/v1/personer`` for 1 to
1000 national ids, :func:`parse_response` turns the register's answer into frozen
:class:`Person` values, :func:`match_answer` checks that the answer is about exactly the ids
asked for, and :func:`parse_print_provider` reads ``GET /rest/v2/printSertifikat``. The HTTP
edge is :mod:`routing.krr_client`.

What a :class:`Person` says, derived from the register's fields:

* ``reserved``  - ``reservasjon`` is ``JA``;
* ``active``    - ``status`` is ``AKTIV`` (not ``SLETTET`` or ``IKKE_REGISTRERT``);
* ``has_mailbox`` - active, with both ``digital_post`` and ``sertifikat`` present;
* ``notifiable`` - active, not reserved, ``varslingsstatus`` ``KAN_VARSLES``, and at least one
  contact channel *current*.

A channel (e-mail, mobile) is current when it was updated or verified within the last 18 months
(eForvaltningsforskriften's rule for expired contact data, which the register applies too). The
client applies it again against the ``now`` it is given, each channel on its own, so that an
answer that has gone stale - kept too long, or from a register that did not filter - is never
taken as notifiable.

Clients ignore fields they do not know. A field that is there but wrong, or one that must be
there and is not, is a :class:`~routing.errors.RegistryResponseError` whose ``field`` is the
path into the answer (``personer[2].kontaktinformasjon.epostadresse_oppdatert``); national ids
never appear in its message.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import enum
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from cryptography import x509

from routing.errors import RegistryResponseError
from sbdh.errors import InvalidIdentifier, InvalidInput
from sbdh.identifiers import NationalId, OrganisationNumber

__all__ = [
    "CONTACT_DATA_EXPIRES_MONTHS",
    "KRR_MAX_IDS",
    "ContactInfo",
    "ContactPoint",
    "Mailbox",
    "NotificationStatus",
    "Person",
    "PersonStatus",
    "PrintProvider",
    "Reservation",
    "batches",
    "build_request",
    "contact_cutoff",
    "load_certificate",
    "match_answer",
    "parse_person",
    "parse_print_provider",
    "parse_response",
    "parse_timestamp",
]

#: the register answers for at most this many national ids per request
KRR_MAX_IDS = 1000
#: contact data neither updated nor verified for this many months has expired
CONTACT_DATA_EXPIRES_MONTHS = 18

_LANGUAGE = re.compile(r"[a-z]{2,3}")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)"
)
_FRACTION = re.compile(r"\.(\d{6})\d+")
E = TypeVar("E", bound=enum.StrEnum)


class Reservation(enum.StrEnum):
    """``reservasjon``: has the person reserved themselves against digital communication?"""

    JA = "JA"
    NEI = "NEI"


class PersonStatus(enum.StrEnum):
    """``status``: is the person in the register?"""

    AKTIV = "AKTIV"
    SLETTET = "SLETTET"
    IKKE_REGISTRERT = "IKKE_REGISTRERT"


class NotificationStatus(enum.StrEnum):
    """``varslingsstatus``: may the person be notified (eForvaltningsforskriften)?"""

    KAN_VARSLES = "KAN_VARSLES"
    KAN_IKKE_VARSLES = "KAN_IKKE_VARSLES"


@dataclass(frozen=True)
class ContactPoint:
    """One contact channel: an e-mail address or a mobile number, and when it was last updated
    and verified. ``current`` is whether either happened within 18 months of the time the answer
    was judged at. The address is left out of ``repr``: it is personal data."""

    address: str = field(repr=False)
    updated: datetime | None
    verified: datetime | None
    current: bool

    @property
    def last_confirmed(self) -> datetime | None:
        """The later of ``updated`` and ``verified``."""
        stamps = [t for t in (self.updated, self.verified) if t is not None]
        return max(stamps) if stamps else None


@dataclass(frozen=True)
class ContactInfo:
    """``kontaktinformasjon``: the e-mail and mobile channels that are present."""

    email: ContactPoint | None = None
    mobile: ContactPoint | None = None

    @property
    def current(self) -> bool:
        """At least one channel is current."""
        return any(c is not None and c.current for c in (self.email, self.mobile))


@dataclass(frozen=True)
class Mailbox:
    """``digital_post``: the person's digital mailbox and the provider that runs it."""

    address: str = field(repr=False)
    provider: OrganisationNumber


@dataclass(frozen=True)
class PrintProvider:
    """The print provider: its organisation number and the certificate to encrypt to."""

    orgnr: OrganisationNumber
    certificate: x509.Certificate


@dataclass(frozen=True)
class Person:
    """One person as KRR describes them (see the module docstring for the derived values)."""

    national_id: NationalId
    status: PersonStatus
    reservation: Reservation | None = None
    notification: NotificationStatus | None = None
    contact: ContactInfo | None = None
    mailbox: Mailbox | None = None
    #: the mailbox provider's certificate, to encrypt the letter to
    certificate: x509.Certificate | None = None
    #: preferred language (``nb``, ``nn``, ``en``, ``se``)
    language: str | None = None
    reserved_at: datetime | None = None
    reservation_updated: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status is PersonStatus.AKTIV

    @property
    def reserved(self) -> bool:
        return self.reservation is Reservation.JA

    @property
    def has_mailbox(self) -> bool:
        return self.active and self.mailbox is not None and self.certificate is not None

    @property
    def notifiable(self) -> bool:
        return (
            self.active
            and not self.reserved
            and self.notification is NotificationStatus.KAN_VARSLES
            and self.contact is not None
            and self.contact.current
        )


# -- the request ---------------------------------------------------------------------------------


def batches(ids: Iterable[NationalId], size: int = KRR_MAX_IDS) -> list[tuple[NationalId, ...]]:
    """``ids`` without repeats (first occurrence kept), in groups of at most ``size``."""
    if not 1 <= size <= KRR_MAX_IDS:
        raise ValueError(f"batch size must be 1 to {KRR_MAX_IDS}")
    unique = list(dict.fromkeys(ids))
    return [tuple(unique[i : i + size]) for i in range(0, len(unique), size)]


def build_request(ids: Sequence[NationalId]) -> bytes:
    """The JSON body ``{"personidentifikatorer": [...]}`` for 1 to 1000 national ids."""
    if not 1 <= len(ids) <= KRR_MAX_IDS:
        raise InvalidInput(
            f"a KRR request holds 1 to {KRR_MAX_IDS} national ids, not {len(ids)}",
            rule="krr-batch-size",
        )
    body = {"personidentifikatorer": [nid.value for nid in ids]}
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


# -- field readers -------------------------------------------------------------------------------


def _bad(path: str, problem: str) -> RegistryResponseError:
    return RegistryResponseError(f"{path}: {problem}", rule="krr-field", field=path)


def _get(obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> Any:
    value = obj.get(key)
    if value is None and required:
        raise _bad(f"{path}.{key}", "is required")
    return value


def _string(obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
    value = _get(obj, key, path, required=required)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"{path}.{key}", "must be a non-empty string")
    return value.strip()


def _required_string(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = _string(obj, key, path, required=True)
    if value is None:  # pragma: no cover - _string raises first
        raise _bad(f"{path}.{key}", "is required")
    return value


def _object(
    obj: Mapping[str, Any], key: str, path: str, *, required: bool = False
) -> Mapping[str, Any] | None:
    value = _get(obj, key, path, required=required)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _bad(f"{path}.{key}", "must be an object")
    return value


def _enum(
    kind: type[E], obj: Mapping[str, Any], key: str, path: str, *, required: bool = False
) -> E | None:
    text = _string(obj, key, path, required=required)
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise _bad(f"{path}.{key}", f"must be one of {allowed}") from None


def parse_timestamp(text: str, path: str = "timestamp") -> datetime:
    """An ISO 8601 date and time with a UTC offset, in the forms the register uses
    (``2023-06-29T10:14:52+02``, ``2023-08-05T10:45:15.768Z``,
    ``2014-02-25T13:08:00.000+01:00``). A time without an offset is refused: it is ambiguous."""
    text = text.strip()
    if not _TIMESTAMP.fullmatch(text):
        raise _bad(path, "is not an ISO 8601 date and time with a UTC offset")
    text = _FRACTION.sub(r".\1", text)  # more than microseconds: keep microseconds
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(path, "is not a valid date and time") from None
    if stamp.tzinfo is None:  # pragma: no cover - the pattern requires an offset
        raise _bad(path, "has no UTC offset")
    return stamp


def _timestamp(obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
    text = _string(obj, key, path)
    return None if text is None else parse_timestamp(text, f"{path}.{key}")


def load_certificate(text: str, path: str = "sertifikat") -> x509.Certificate:
    """An X.509 certificate given as PEM or as bare base64 DER (both occur in KRR answers)."""
    try:
        if "-----BEGIN" in text:
            return x509.load_pem_x509_certificate(text.strip().encode("ascii"))
        der = base64.b64decode("".join(text.split()), validate=True)
        return x509.load_der_x509_certificate(der)
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise _bad(path, f"is not an X.509 certificate (PEM or base64 DER): {exc}") from exc


def contact_cutoff(now: datetime) -> datetime:
    """The moment 18 calendar months before ``now``: contact data last updated or verified
    before it has expired."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    months = now.year * 12 + (now.month - 1) - CONTACT_DATA_EXPIRES_MONTHS
    year, month = divmod(months, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


def _contact_point(
    obj: Mapping[str, Any], key: str, path: str, cutoff: datetime
) -> ContactPoint | None:
    address = _string(obj, key, path)
    if address is None:
        return None
    updated = _timestamp(obj, f"{key}_oppdatert", path)
    verified = _timestamp(obj, f"{key}_sist_verifisert", path)
    stamps = [t for t in (updated, verified) if t is not None]
    return ContactPoint(address, updated, verified, bool(stamps) and max(stamps) >= cutoff)


# -- the answer ----------------------------------------------------------------------------------


def parse_person(obj: Any, *, now: datetime, path: str = "person") -> Person:
    """One element of ``personer``."""
    if not isinstance(obj, Mapping):
        raise _bad(path, "must be an object")
    cutoff = contact_cutoff(now)
    id_text = _required_string(obj, "personidentifikator", path)
    try:
        national_id = NationalId(id_text)
    except InvalidIdentifier as exc:
        raise _bad(
            f"{path}.personidentifikator", f"is not a valid national id ({exc.rule})"
        ) from exc
    status = _enum(PersonStatus, obj, "status", path, required=True)
    if status is None:  # pragma: no cover - required fields raise first
        raise _bad(f"{path}.status", "is required")
    reservation = _enum(
        Reservation, obj, "reservasjon", path, required=status is PersonStatus.AKTIV
    )
    notification = _enum(NotificationStatus, obj, "varslingsstatus", path)

    contact = None
    if (kontakt := _object(obj, "kontaktinformasjon", path)) is not None:
        where = f"{path}.kontaktinformasjon"
        contact = ContactInfo(
            email=_contact_point(kontakt, "epostadresse", where, cutoff),
            mobile=_contact_point(kontakt, "mobiltelefonnummer", where, cutoff),
        )

    mailbox = None
    if (post := _object(obj, "digital_post", path)) is not None:
        where = f"{path}.digital_post"
        address = _required_string(post, "postkasseadresse", where)
        provider_text = _required_string(post, "postkasseleverandoeradresse", where)
        try:
            provider = OrganisationNumber(provider_text)
        except InvalidIdentifier as exc:
            raise _bad(f"{where}.postkasseleverandoeradresse", str(exc)) from exc
        mailbox = Mailbox(address, provider)

    certificate = None
    if (cert_text := _string(obj, "sertifikat", path)) is not None:
        certificate = load_certificate(cert_text, f"{path}.sertifikat")

    language = _string(obj, "spraak", path)
    if language is not None:
        language = language.lower()
        if not _LANGUAGE.fullmatch(language):
            raise _bad(f"{path}.spraak", "must be a two- or three-letter language code")

    return Person(
        national_id=national_id,
        status=status,
        reservation=reservation,
        notification=notification,
        contact=contact,
        mailbox=mailbox,
        certificate=certificate,
        language=language,
        reserved_at=_timestamp(obj, "reservasjonstidspunkt", path),
        reservation_updated=_timestamp(obj, "reservasjon_oppdatert", path),
    )


def _json(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        data = json.loads(body)
    except (ValueError, UnicodeError) as exc:
        raise RegistryResponseError(
            f"the answer is not JSON: {exc}", rule="krr-json", field="$"
        ) from exc
    if not isinstance(data, Mapping):
        raise _bad("$", "must be an object")
    return data


def parse_response(body: bytes | str | Mapping[str, Any], *, now: datetime) -> tuple[Person, ...]:
    """The ``{"personer": [...]}`` answer, judged at ``now``."""
    data = _json(body)
    personer = data.get("personer")
    if not isinstance(personer, list):
        raise _bad("personer", "is required and must be a list")
    return tuple(parse_person(p, now=now, path=f"personer[{i}]") for i, p in enumerate(personer))


def match_answer(
    requested: Sequence[NationalId], persons: Iterable[Person]
) -> dict[NationalId, Person]:
    """The answer keyed by national id, in the order asked; refuses an answer that leaves out
    an id that was asked for or adds one that was not."""
    by_id: dict[NationalId, Person] = {}
    for person in persons:
        by_id.setdefault(person.national_id, person)
    missing = [nid for nid in requested if nid not in by_id]
    extra = len(set(by_id) - set(requested))
    if missing:
        raise RegistryResponseError(
            f"the answer leaves out {len(missing)} of the {len(requested)} national ids asked for",
            rule="krr-missing-person",
            field="personer",
        )
    if extra:
        raise RegistryResponseError(
            f"the answer has {extra} persons that were not asked for",
            rule="krr-unexpected-person",
            field="personer",
        )
    return {nid: by_id[nid] for nid in requested}


def parse_print_provider(body: bytes | str | Mapping[str, Any]) -> PrintProvider:
    """The answer of ``GET /rest/v2/printSertifikat``:
    ``{"postkasseleverandoerAdresse": "<orgnr>", "x509Sertifikat": "<cert>"}``."""
    data = _json(body)
    orgnr_text = _required_string(data, "postkasseleverandoerAdresse", "$")
    cert_text = _required_string(data, "x509Sertifikat", "$")
    try:
        orgnr = OrganisationNumber(orgnr_text)
    except InvalidIdentifier as exc:
        raise _bad("$.postkasseleverandoerAdresse", str(exc)) from exc
    return PrintProvider(orgnr, load_certificate(cert_text, "$.x509Sertifikat"))
