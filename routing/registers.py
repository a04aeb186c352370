"""Names and addresses: the population register (persons) and the entity register (organisations).

Print needs a person's postal address and an organisation's name and return address. Both come
from a national register; both are read the same way: a pure core turns the register's answer
into frozen values, and a small aiohttp client fetches it through a
:class:`~routing.guard.RegistryGuard` (cache, single flight, retries, circuit breaker).

**Population register** (``GET {base}/folkeregisteret/api/personer/{national id}``)::

    {"personIdentifikator": "...",
     "navn": {"fornavn": "...", "mellomnavn": null, "etternavn": "..."},
     "postadresse": {"adresselinje": ["..."], "postnummer": "0150", "poststed": "OSLO",
                     "landkode": "NO"}}

A person with a protected address (``fortrolig``, ``strengtFortrolig``) has ``postadresse:
null``, and :attr:`PersonRecord.address_protected` says so: such a person gets no automatic
print. Skatteetaten's own Folkeregister API sits at
``/folkeregisteret/{rettighetspakke}/api/v1/personer/{id}`` with a much richer body; the path
and shape here are the simplified ones the access point's registers agree on (see
PROTOCOLS.md), and the path is a parameter of the client. When an answer also carries FREG's
grading (``adressebeskyttelse``: ``ugradert``, ``klientadresse``, ``fortrolig``,
``strengtFortrolig``, ``strengtFortroligUtland``), a protected grading withholds the address
even if the register sent one; without it, a missing ``postadresse`` is taken as protected.

**Entity register** (Brønnøysund's open API): ``GET {base}/enhetsregisteret/api/enheter/{orgnr}``,
and on 404 ``/underenheter/{orgnr}``. 404 from both is :class:`EntityNotFound`; 410 (removed
for legal reasons) is :class:`EntityRemoved`; a ``slettedato`` today or earlier is
:class:`EntityDeleted`. The return address is ``postadresse``, else ``forretningsadresse``
(else an underenhet's ``beliggenhetsadresse``, as the real API names it).

Errors, by what the caller must do (the registry ones are in :mod:`routing.errors`)::

    NotFound                       404  PersonNotFound, EntityNotFound (EntityRemoved,
                                        EntityDeleted): cached for the negative ttl
    RegistryUnavailable            503  5xx, 408, 429, connection failure: retried
    RegistryResponseError          502  the answer breaks the protocol; ``field`` names where
    RegistryRefused                500  401/403/other 4xx: our token or request is wrong

Clients ignore fields they do not know. A national id never reaches a log, an error message or
a ``repr`` in clear (:meth:`NationalId.masked`), nor does an address.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Generic, TypeVar
from zoneinfo import ZoneInfo

import aiohttp

from routing.errors import (
    RegistryRefused,
    RegistryResponseError,
    RegistryUnavailable,
    mask_national_ids,
)
from routing.guard import RegistryGuard, RegistryPolicy
from routing.http import RegistryHttp, TokenSource, is_transient, resolve_token
from sbdh.errors import ConfigurationError, InvalidIdentifier, NotFound
from sbdh.identifiers import NationalId, OrganisationNumber

__all__ = [
    "ENTITY_POLICY",
    "ENTITY_REGISTER_PATHS",
    "POPULATION_PATH",
    "POPULATION_POLICY",
    "PROTECTED_GRADES",
    "EntityDeleted",
    "EntityNotFound",
    "EntityRecord",
    "EntityRegisterClient",
    "EntityRemoved",
    "OrganisationForm",
    "PersonNotFound",
    "PersonRecord",
    "PopulationRegisterClient",
    "PostalAddress",
    "parse_entity_record",
    "parse_person_record",
]

log = logging.getLogger(__name__)

#: where a person is looked up, below the register's base URL
POPULATION_PATH = "/folkeregisteret/api/personer/{id}"
#: where an organisation is looked up: the main units first, then the sub-units
ENTITY_REGISTER_PATHS = (
    "/enhetsregisteret/api/enheter/{id}",
    "/enhetsregisteret/api/underenheter/{id}",
)
#: FREG's gradings of address protection that withhold the address
PROTECTED_GRADES = frozenset({"fortrolig", "strengtFortrolig", "strengtFortroligUtland"})
_KNOWN_GRADES = PROTECTED_GRADES | {"ugradert", "klientadresse"}

#: addresses change and protection can be granted any day: keep answers briefly
POPULATION_POLICY = RegistryPolicy(name="population register", ttl=900.0, negative_ttl=300.0)
#: organisation names and addresses change seldom
ENTITY_POLICY = RegistryPolicy(name="entity register", ttl=86_400.0, negative_ttl=3600.0)

_MAX_BODY = 1 << 20
_OSLO = ZoneInfo("Europe/Oslo")


# -- values --------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class PostalAddress:
    """A postal address as the registers give it. Never shown in ``repr``."""

    lines: tuple[str, ...]
    postcode: str | None
    city: str | None
    #: ISO 3166-1 alpha-2; ``None`` when the register left it out (then Norway)
    country_code: str | None = None
    #: the country's name, when the register gives one (the entity register does)
    country: str | None = None

    @property
    def norwegian(self) -> bool:
        return self.country_code in (None, "NO")

    def __repr__(self) -> str:
        return f"PostalAddress(<{len(self.lines)} lines withheld>)"


@dataclass(frozen=True, repr=False)
class PersonRecord:
    """A person's name and postal address from the population register."""

    national_id: NationalId
    first_name: str
    middle_name: str | None
    last_name: str
    #: ``None`` when the address is protected (and so whenever ``address_protected``)
    address: PostalAddress | None
    address_protected: bool

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.middle_name, self.last_name) if p)

    def __repr__(self) -> str:
        return (
            f"PersonRecord(national_id={self.national_id!r}, "
            f"address_protected={self.address_protected})"
        )


@dataclass(frozen=True)
class OrganisationForm:
    """``organisasjonsform``: ``AS`` / Aksjeselskap, ``KOMM`` / Kommune, ``BEDR`` / …"""

    code: str
    description: str | None = None


@dataclass(frozen=True)
class EntityRecord:
    """An organisation (or one of its sub-units) from the entity register."""

    organisation_number: OrganisationNumber
    name: str
    form: OrganisationForm | None
    postal_address: PostalAddress | None
    business_address: PostalAddress | None
    #: found under ``/underenheter`` (a sub-unit of a main unit)
    subunit: bool = False
    #: a deletion date still in the future; one in the past makes the entity not found
    deleted_on: date | None = field(default=None, repr=False)

    @property
    def return_address(self) -> PostalAddress | None:
        """Where returned mail goes: the postal address, else the business address."""
        return self.postal_address or self.business_address


# -- errors --------------------------------------------------------------------------------------


class PersonNotFound(NotFound):
    """The population register knows no person with this national id."""

    code: ClassVar[str] = "person-not-found"


class EntityNotFound(NotFound):
    """The entity register knows no unit or sub-unit with this organisation number."""

    code: ClassVar[str] = "entity-not-found"


class EntityRemoved(EntityNotFound):
    """HTTP 410: the unit was removed from the register's open data for legal reasons."""

    code: ClassVar[str] = "entity-removed"


class EntityDeleted(EntityNotFound):
    """The unit has a ``slettedato`` that has passed: it no longer exists."""

    code: ClassVar[str] = "entity-deleted"

    def __init__(self, message: str, *, deleted_on: date) -> None:
        super().__init__(message, rule="entity-deleted")
        self.deleted_on = deleted_on


# -- field readers -------------------------------------------------------------------------------


def _bad(register: str, path: str, problem: str) -> RegistryResponseError:
    return RegistryResponseError(
        f"{register} answer: {path} {problem}", rule=f"{register}-field", field=path
    )


def _json(register: str, body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        data = json.loads(body)
    except (ValueError, UnicodeError) as exc:
        raise RegistryResponseError(
            f"{register} answer is not JSON", rule=f"{register}-json", field="$"
        ) from exc
    if not isinstance(data, Mapping):
        raise _bad(register, "$", "must be an object")
    return data


def _string(
    register: str, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False
) -> str | None:
    value = obj.get(key)
    where = f"{path}.{key}" if path else key
    if value is None:
        if required:
            raise _bad(register, where, "is required")
        return None
    if not isinstance(value, str):
        raise _bad(register, where, "must be a string")
    value = value.strip()
    if not value:
        if required:
            raise _bad(register, where, "must not be empty")
        return None
    return value


def _required(register: str, obj: Mapping[str, Any], key: str, path: str) -> str:
    value = _string(register, obj, key, path, required=True)
    assert value is not None  # _string raised otherwise
    return value


def _object(register: str, obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _bad(register, f"{path}.{key}" if path else key, "must be an object or null")
    return value


def _address(
    register: str, obj: Mapping[str, Any] | None, path: str, lines_key: str
) -> PostalAddress | None:
    if obj is None:
        return None
    raw_lines = obj.get(lines_key)
    if raw_lines is None:
        raw_lines = []
    if not isinstance(raw_lines, list) or not all(isinstance(line, str) for line in raw_lines):
        raise _bad(register, f"{path}.{lines_key}", "must be a list of strings")
    lines = tuple(line.strip() for line in raw_lines if line.strip())
    country_code = _string(register, obj, "landkode", path)
    if country_code is not None:
        if len(country_code) != 2 or not country_code.isascii() or not country_code.isalpha():
            raise _bad(register, f"{path}.landkode", "must be an ISO 3166 two-letter code")
        country_code = country_code.upper()
    postcode = _string(register, obj, "postnummer", path)
    city = _string(register, obj, "poststed", path)
    if country_code in (None, "NO"):
        # a Norwegian address cannot be printed without its four-digit postcode and place
        if postcode is None or len(postcode) != 4 or not postcode.isdigit():
            raise _bad(register, f"{path}.postnummer", "must be four digits in Norway")
        if city is None:
            raise _bad(register, f"{path}.poststed", "is required in Norway")
    if not lines and postcode is None:
        raise _bad(register, f"{path}.{lines_key}", "is empty and there is no postcode")
    return PostalAddress(
        lines=lines,
        postcode=postcode,
        city=city,
        country_code=country_code,
        country=_string(register, obj, "land", path),
    )


# -- population register: the pure core ---------------------------------------------------------

_POPULATION = "population-register"


def _grade(obj: Mapping[str, Any]) -> str | None:
    value = obj.get("adressebeskyttelse")
    if value is None:
        return None
    if not isinstance(value, str) or value not in _KNOWN_GRADES:
        allowed = ", ".join(sorted(_KNOWN_GRADES))
        raise _bad(_POPULATION, "adressebeskyttelse", f"must be one of {allowed}")
    return value


def parse_person_record(
    body: bytes | str | Mapping[str, Any], *, requested: NationalId | None = None
) -> PersonRecord:
    """The population register's answer about one person.

    ``requested`` is the id that was asked for: an answer about anyone else is refused.
    """
    data = _json(_POPULATION, body)
    raw_id = _required(_POPULATION, data, "personIdentifikator", "")
    try:
        national_id = NationalId(raw_id)
    except InvalidIdentifier as exc:
        raise _bad(_POPULATION, "personIdentifikator", "is not a valid national id") from exc
    if requested is not None and national_id != requested:
        raise _bad(_POPULATION, "personIdentifikator", "is not the person asked for")
    name = _object(_POPULATION, data, "navn", "")
    if name is None:
        raise _bad(_POPULATION, "navn", "is required")
    grade = _grade(data)
    postadresse = _object(_POPULATION, data, "postadresse", "")
    address = _address(_POPULATION, postadresse, "postadresse", "adresselinje")
    protected = grade in PROTECTED_GRADES if grade is not None else address is None
    return PersonRecord(
        national_id=national_id,
        first_name=_required(_POPULATION, name, "fornavn", "navn"),
        middle_name=_string(_POPULATION, name, "mellomnavn", "navn"),
        last_name=_required(_POPULATION, name, "etternavn", "navn"),
        address=None if protected else address,
        address_protected=protected,
    )


# -- entity register: the pure core --------------------------------------------------------------

_ENTITIES = "entity-register"


def _date(register: str, obj: Mapping[str, Any], key: str) -> date | None:
    text = _string(register, obj, key, "")
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _bad(register, key, "must be a date (YYYY-MM-DD)") from None


def parse_entity_record(
    body: bytes | str | Mapping[str, Any],
    *,
    today: date,
    requested: OrganisationNumber | None = None,
    subunit: bool = False,
) -> EntityRecord:
    """The entity register's answer about one unit (``subunit``: from ``/underenheter``).

    A ``slettedato`` on or before ``today`` raises :class:`EntityDeleted`; ``requested`` is the
    number asked for: an answer about another unit is refused.
    """
    data = _json(_ENTITIES, body)
    raw_number = _required(_ENTITIES, data, "organisasjonsnummer", "")
    try:
        number = OrganisationNumber(raw_number)
    except InvalidIdentifier as exc:
        raise _bad(_ENTITIES, "organisasjonsnummer", f"is not valid: {exc.message}") from exc
    if requested is not None and number != requested:
        raise _bad(_ENTITIES, "organisasjonsnummer", f"is {number}, not {requested} as asked")
    deleted_on = _date(_ENTITIES, data, "slettedato")
    if deleted_on is not None and deleted_on <= today:
        raise EntityDeleted(
            f"organisation {number} was deleted from the entity register on {deleted_on}",
            deleted_on=deleted_on,
        )
    form = _object(_ENTITIES, data, "organisasjonsform", "")
    business_key = "forretningsadresse"
    if subunit and data.get(business_key) is None:
        business_key = "beliggenhetsadresse"  # what the real API calls a sub-unit's address
    business = _address(
        _ENTITIES, _object(_ENTITIES, data, business_key, ""), business_key, "adresse"
    )
    return EntityRecord(
        organisation_number=number,
        name=_required(_ENTITIES, data, "navn", ""),
        form=None
        if form is None
        else OrganisationForm(
            code=_required(_ENTITIES, form, "kode", "organisasjonsform"),
            description=_string(_ENTITIES, form, "beskrivelse", "organisasjonsform"),
        ),
        postal_address=_address(
            _ENTITIES, _object(_ENTITIES, data, "postadresse", ""), "postadresse", "adresse"
        ),
        business_address=business,
        subunit=subunit,
        deleted_on=deleted_on,
    )


# -- the HTTP edge -------------------------------------------------------------------------------


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _HttpRegister(RegistryHttp, Generic[K, V]):
    """What both clients share: the guard, one session, the bearer token, status and error
    translation."""

    def __init__(
        self,
        base_url: str,
        *,
        guard: RegistryGuard[K, V],
        session: aiohttp.ClientSession | None,
        token: TokenSource | None,
    ) -> None:
        # the guard bounds each attempt; the session's timeout only stops a connection hanging
        # past it
        timeout = guard.policy.timeout
        super().__init__(
            session,
            timeout=None,
            max_response_bytes=_MAX_BODY,
            session_timeout=aiohttp.ClientTimeout(total=timeout * 2, sock_connect=timeout),
        )
        self.registry_name = f"the {guard.policy.name}"
        self.base_url = base_url.rstrip("/")
        self.guard = guard
        self._token = token

    def _unreachable(self, exc: BaseException, what: str) -> Exception:
        # the driver's message may carry the URL, and so the id: name the failure only
        return RegistryUnavailable(
            f"{self.registry_name} could not be reached for {what}: {type(exc).__name__}",
            rule="registry-connection",
        )

    def _too_large(self, what: str) -> Exception:
        return RegistryResponseError(
            f"{self.registry_name}'s answer for {what} is larger than {_MAX_BODY} bytes",
            rule="registry-size",
            field="$",
        )

    async def _get(self, url: str, what: str) -> tuple[int, bytes]:
        """Status and body of ``GET url``; ``what`` names the request in errors (masked)."""
        name = self.registry_name
        headers = {"Accept": "application/json"}
        if self._token is not None:
            token = await resolve_token(self._token)
            if not token:
                raise ConfigurationError(f"no access token for {name}", rule="registry-token")
            headers["Authorization"] = f"Bearer {token}"
        async with self._request("GET", url, headers=headers, what=what) as response:
            status = response.status
            if is_transient(status):
                raise RegistryUnavailable(
                    f"{name} answered HTTP {status} for {what}", rule="registry-http"
                )
            if status in (404, 410):
                return status, b""
            if status != 200:
                text = (await response.content.read(2048)).decode("utf-8", "replace")
                raise RegistryRefused(
                    f"{name} refused {what} with HTTP {status}: "
                    f"{mask_national_ids(text.strip())[:200]}",
                    status=status,
                    rule="registry-http",
                )
            return status, await self._read(response, what)


class PopulationRegisterClient(_HttpRegister[NationalId, PersonRecord]):
    """Looks persons up in the population register, through a guard.

    ``token`` is the bearer token, or an async function giving a fresh one for each request
    (Maskinporten in production);
    ``path`` is where a person is, below ``base_url``, with ``{id}`` for the national id.
    """

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        token: TokenSource | None = None,
        guard: RegistryGuard[NationalId, PersonRecord] | None = None,
        path: str = POPULATION_PATH,
    ) -> None:
        guard = guard or RegistryGuard(POPULATION_POLICY)
        super().__init__(base_url, guard=guard, session=session, token=token)
        self.path = path

    async def lookup(self, national_id: NationalId | str) -> PersonRecord:
        """The person's record; :class:`PersonNotFound` when the register has none."""
        nid = national_id if isinstance(national_id, NationalId) else NationalId.parse(national_id)
        return await self.guard.lookup(nid, self.fetch)

    async def fetch(self, national_id: NationalId) -> PersonRecord:
        """One request to the register, with no cache or retry (the guard adds those)."""
        what = f"person {national_id.masked()}"
        url = self.base_url + self.path.format(id=national_id.value)
        status, body = await self._get(url, what)
        if status != 200:
            log.debug("population register: no %s (HTTP %s)", what, status)
            raise PersonNotFound(
                f"the population register has no {what}", rule="population-register-not-found"
            )
        return parse_person_record(body, requested=national_id)


def _oslo_today() -> date:
    return datetime.now(UTC).astimezone(_OSLO).date()


class EntityRegisterClient(_HttpRegister[OrganisationNumber, EntityRecord]):
    """Looks organisations up in the entity register (main units, then sub-units)."""

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        token: TokenSource | None = None,
        guard: RegistryGuard[OrganisationNumber, EntityRecord] | None = None,
        today: Callable[[], date] = _oslo_today,
    ) -> None:
        guard = guard or RegistryGuard(ENTITY_POLICY)
        super().__init__(base_url, guard=guard, session=session, token=token)
        self._today = today

    async def lookup(self, organisation: OrganisationNumber | str) -> EntityRecord:
        """The unit or sub-unit; :class:`EntityNotFound` (or a subclass) when there is none."""
        number = (
            organisation
            if isinstance(organisation, OrganisationNumber)
            else OrganisationNumber.parse(organisation)
        )
        return await self.guard.lookup(number, self.fetch)

    async def fetch(self, number: OrganisationNumber) -> EntityRecord:
        """One lookup (one or two requests), with no cache or retry (the guard adds those)."""
        for subunit, path in enumerate(ENTITY_REGISTER_PATHS):
            what = f"organisation {number}"
            status, body = await self._get(self.base_url + path.format(id=number.value), what)
            if status == 410:
                raise EntityRemoved(
                    f"organisation {number} has been removed from the entity register",
                    rule="entity-register-removed",
                )
            if status == 200:
                return parse_entity_record(
                    body, today=self._today(), requested=number, subunit=bool(subunit)
                )
        raise EntityNotFound(
            f"the entity register has no unit or sub-unit {number}",
            rule="entity-register-not-found",
        )
