"""Where a participant's SMP is: the Peppol SML lookup (DNS U-NAPTR).

The pure core does what Peppol SML 1.3.0 and the Policy for use of Identifiers 4.4.0 (POLICY 7)
prescribe:

* :func:`participant_dns_name` - the name to query: lower-case base32 (RFC 4648, padding
  stripped) of SHA-256 over the UTF-8 bytes of the lower-cased participant value, then the
  lower-cased scheme, then the SML zone. ``0088:123abc`` in the test SML is
  ``y7dzfxaf3d4cjz4kcgrxtec6twvcga4ky7zwa5boif6mswd4tdrq.iso6523-actorid-upis.
  participant.sml.test.tech.peppol.org``.
* :func:`smp_url_from_naptr` - the SMP base URL from the NAPTR records found there: U-NAPTR
  (RFC 4848) records with flag ``U`` and service ``Meta:SMP``, in order/preference order
  (RFC 3403), whose regexp is exactly ``!^.*$!<URL>!``. Anything else is ignored, so a hostile
  or broken record can never produce a URL: no other expression, no back-references, no other
  delimiter or trailing flags, only absolute ``https`` URLs (``http`` only when allowed) with a
  host and no credentials, query or fragment.

The I/O edge is :class:`SmlClient` (dnspython's asyncio resolver, one attempt bounded by a
timeout, against the system resolver or a given nameserver); :class:`MemorySml` is the
in-memory stand-in with the same :class:`SmlLookup` shape. There is no cache here: caching
belongs to the wrapper that adds retries and the circuit breaker.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from dns.rdtypes.IN.NAPTR import NAPTR

from routing.errors import ParticipantNotRegistered, RegistryResponseError, RegistryUnavailable
from sbdh.errors import ConfigurationError
from sbdh.identifiers import ParticipantId

__all__ = [
    "NAPTR_SERVICE_SMP",
    "SML_ZONE_PRODUCTION",
    "SML_ZONE_TEST",
    "MemorySml",
    "NaptrRecord",
    "SmlClient",
    "SmlLookup",
    "participant_dns_name",
    "participant_hash_label",
    "smp_url_from_naptr",
]

log = logging.getLogger("budstikke.routing.sml")

#: the Peppol production SML's DNS zone
SML_ZONE_PRODUCTION = "participant.sml.prod.tech.peppol.org"
#: the Peppol test SML's (SMK) DNS zone
SML_ZONE_TEST = "participant.sml.test.tech.peppol.org"
#: the U-NAPTR service of a Peppol SMP (BDXL 1.0 as profiled by Peppol SML)
NAPTR_SERVICE_SMP = "Meta:SMP"

_MAX_URL_LENGTH = 2048
_URL_CHARS = re.compile(r"^[\x21-\x7e]+$")
_HOST = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
_REGEXP_HEAD = "!^.*$!"


def participant_hash_label(value: str) -> str:
    """The first label of the SML name: base32 (lower case, no padding) of SHA-256 over the
    lower-cased participant value (``0192:991825827``, without the scheme)."""
    digest = hashlib.sha256(value.lower().encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


def participant_dns_name(participant: ParticipantId, zone: str = SML_ZONE_PRODUCTION) -> str:
    """The DNS name (without the trailing dot) at which the SML publishes the participant's
    NAPTR record, e.g. ``<hash>.iso6523-actorid-upis.participant.sml.prod.tech.peppol.org``."""
    zone = zone.strip().rstrip(".").lower()
    if not zone:
        raise ConfigurationError("the SML zone is empty", rule="sml-zone")
    return f"{participant_hash_label(participant.value)}.{participant.scheme.lower()}.{zone}"


@dataclass(frozen=True)
class NaptrRecord:
    """One NAPTR record (RFC 3403) as text, the way the resolver returned it."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str = "."

    @classmethod
    def from_rdata(cls, rdata: NAPTR) -> NaptrRecord:
        # latin-1 maps every byte to one character; the checks below then refuse what is not
        # printable ASCII, so odd bytes end up as a refused record, never as an exception
        return cls(
            order=int(rdata.order),
            preference=int(rdata.preference),
            flags=rdata.flags.decode("latin-1"),
            service=rdata.service.decode("latin-1"),
            regexp=rdata.regexp.decode("latin-1"),
            replacement=rdata.replacement.to_text(),
        )


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST.fullmatch(host)) and len(host) <= 253
    return True


def _url_problem(url: str, *, allow_http: bool) -> str | None:
    """Why ``url`` is not acceptable as an SMP base URL, or ``None`` when it is."""
    if not url or len(url) > _MAX_URL_LENGTH:
        return "the URL is empty or too long"
    if not _URL_CHARS.fullmatch(url) or "\\" in url:
        return "the URL has characters outside printable ASCII, or a backslash"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the URL does not parse"
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme.lower() not in schemes:
        return f"the URL's scheme must be {' or '.join(schemes)}"
    if "@" in parts.netloc:
        return "the URL carries credentials"
    if not _valid_host(parts.hostname or ""):
        return "the URL has no valid host name"
    if port == 0:
        return "the URL's port is 0"
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return "the URL has a query or fragment"
    return None


def _record_problem(record: NaptrRecord, *, allow_http: bool) -> str | None:
    if record.flags.upper() != "U":
        return f"flags {record.flags!r} are not 'U'"
    if record.replacement not in (".", ""):
        return "a terminal U-NAPTR record must have the root as its replacement"
    regexp = record.regexp
    if not (regexp.startswith(_REGEXP_HEAD) and regexp.endswith("!") and len(regexp) > 7):
        return "the regexp is not of the form !^.*$!<URL>!"
    url = regexp[len(_REGEXP_HEAD) : -1]
    if "!" in url:
        return "the regexp is not of the form !^.*$!<URL>! (extra delimiter or flags)"
    return _url_problem(url, allow_http=allow_http)


def smp_url_from_naptr(records: Iterable[NaptrRecord], *, allow_http: bool = False) -> str:
    """The SMP base URL: the first usable ``U`` / ``Meta:SMP`` record in order/preference order.

    Records for other services are ignored. Raises :class:`ParticipantNotRegistered` when there
    is no ``Meta:SMP`` record at all, and :class:`RegistryResponseError` (rule ``sml-naptr``)
    when there are some but none is usable.
    """
    candidates = sorted(
        (r for r in records if r.service.lower() == NAPTR_SERVICE_SMP.lower()),
        key=lambda r: (r.order, r.preference),
    )
    if not candidates:
        raise ParticipantNotRegistered(
            "the SML entry has no Meta:SMP NAPTR record", rule="sml-no-smp-record"
        )
    problems: list[str] = []
    for record in candidates:
        problem = _record_problem(record, allow_http=allow_http)
        if problem is None:
            return record.regexp[len(_REGEXP_HEAD) : -1]
        problems.append(problem)
    raise RegistryResponseError(
        f"no usable Meta:SMP NAPTR record ({len(candidates)} refused; first: {problems[0]})",
        rule="sml-naptr",
        field="NAPTR.regexp",
    )


@runtime_checkable
class SmlLookup(Protocol):
    """Finds the SMP base URL of a participant."""

    async def smp_url(self, participant: ParticipantId) -> str:
        """The participant's SMP base URL; :class:`ParticipantNotRegistered` when there is none,
        :class:`RegistryUnavailable` when the SML cannot be asked right now."""
        ...


class SmlClient:
    """Looks participants up in an SML over DNS.

    ``nameserver`` is ``(ip, port)`` of the server to ask (a local stand-in, a DNSSEC-validating
    resolver); ``None`` uses the system's resolvers. Each lookup is one query round bounded by
    ``timeout`` seconds in all. ``allow_http`` accepts ``http`` SMP URLs (the local network);
    Peppol SMP 1.4.0 requires TLS, so it is off by default.
    """

    def __init__(
        self,
        *,
        zone: str = SML_ZONE_PRODUCTION,
        nameserver: tuple[str, int] | None = None,
        timeout: float = 5.0,
        allow_http: bool = False,
    ) -> None:
        if timeout <= 0:
            raise ConfigurationError("the SML lookup timeout must be positive", rule="sml-timeout")
        self.zone = zone
        self.nameserver = nameserver
        self.timeout = timeout
        self.allow_http = allow_http
        self._resolver: dns.asyncresolver.Resolver | None = None

    def __repr__(self) -> str:
        ns = self.nameserver
        where = "system resolver" if ns is None else f"{ns[0]}:{ns[1]}"
        return f"SmlClient(zone={self.zone!r}, nameserver={where!r})"

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=self.nameserver is None)
            except dns.exception.DNSException as exc:
                raise ConfigurationError(
                    f"cannot read the system's DNS configuration: {exc}", rule="sml-resolver"
                ) from exc
            if self.nameserver is not None:
                ip, port = self.nameserver
                resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port)]
            resolver.timeout = self.timeout
            resolver.lifetime = self.timeout
            resolver.cache = None
            self._resolver = resolver
        return self._resolver

    async def naptr_records(self, name: str) -> list[NaptrRecord]:
        """The NAPTR records at ``name``; translates the resolver's errors into the tree."""
        resolver = self._get_resolver()
        qname = dns.name.from_text(name)  # absolute: no search domains are tried
        try:
            answer = await resolver.resolve(
                qname, dns.rdatatype.NAPTR, search=False, lifetime=self.timeout
            )
        except dns.resolver.NXDOMAIN as exc:
            raise ParticipantNotRegistered(
                "the SML has no entry for the participant (NXDOMAIN)", rule="sml-nxdomain"
            ) from exc
        except dns.resolver.NoAnswer as exc:
            raise ParticipantNotRegistered(
                "the SML entry has no NAPTR record", rule="sml-no-naptr"
            ) from exc
        except dns.resolver.LifetimeTimeout as exc:
            raise RegistryUnavailable(
                f"the SML did not answer within {self.timeout:g} s", rule="sml-timeout"
            ) from exc
        except dns.resolver.NoNameservers as exc:
            raise RegistryUnavailable(
                "no nameserver could answer for the SML (SERVFAIL, REFUSED or unreachable)",
                rule="sml-servfail",
            ) from exc
        except (dns.exception.DNSException, OSError) as exc:
            raise RegistryUnavailable(
                f"the SML lookup failed: {type(exc).__name__}", rule="sml-unavailable"
            ) from exc
        return [NaptrRecord.from_rdata(rdata) for rdata in answer if isinstance(rdata, NAPTR)]

    async def smp_url(self, participant: ParticipantId) -> str:
        name = participant_dns_name(participant, self.zone)
        records = await self.naptr_records(name)
        url = smp_url_from_naptr(records, allow_http=self.allow_http)
        log.debug("SML: %s -> %s", participant.value, url)
        return url


class MemorySml:
    """The in-memory SML: participant -> SMP base URL, changeable at any time."""

    def __init__(self, entries: Mapping[ParticipantId, str] | None = None) -> None:
        self.entries: dict[ParticipantId, str] = dict(entries or {})

    async def smp_url(self, participant: ParticipantId) -> str:
        try:
            return self.entries[participant]
        except KeyError:
            raise ParticipantNotRegistered(
                "the SML has no entry for the participant", rule="sml-nxdomain"
            ) from None
