"""Revocation checking of peer certificates: the I/O, the cache and the policy around the pure
core in :mod:`sbdh.revocation`.

::

    RevocationPolicy(mode, checker)          off | soft-fail | hard-fail; REVOKED always refused
      └── CachingRevocationChecker(inner)    per (issuer, serial) until nextUpdate, bounded
            └── HttpRevocationChecker        OCSP POST, then the CRL; timeouts, size caps
                InMemoryRevocationChecker    the test double: set statuses, make it fail

Every checker is a :class:`RevocationChecker`: ``await check(cert, issuer, now=now)`` returns the
:class:`~sbdh.revocation.RevocationStatus` or raises :class:`~sbdh.revocation.RevocationUnavailable`
(could not ask), :class:`~sbdh.revocation.NoRevocationSource` (nowhere to ask) or
:class:`~sbdh.revocation.RevocationResponseError` (the answer cannot be relied on).

The policy turns that into a decision. Soft-fail follows the JDK's ``PKIXRevocationChecker``
``SOFT_FAIL`` (what phase4 and Oxalis build on): a status that *cannot be obtained* (network
error, timeout, HTTP error, ``tryLater`` / ``internalError``) is accepted with a warning, and so
is a certificate that names no OCSP responder and no CRL; an answer that does not verify, an
UNKNOWN, and of course a REVOKED are refused in every mode. Hard-fail refuses whatever is not
GOOD. The development PKI issues certificates without revocation pointers, so the embedded
default (soft-fail) makes no network calls for them.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from access_point.directory import CircuitBreaker
from sbdh.revocation import (
    OCSP_REQUEST_MIME,
    OCSP_RESPONSE_MIME,
    CertificateRevoked,
    CertStatus,
    NoRevocationSource,
    RevocationOptions,
    RevocationRefused,
    RevocationResponseError,
    RevocationSource,
    RevocationStatus,
    RevocationUnavailable,
    build_ocsp_request,
    check_crl,
    crl_urls,
    load_crl,
    ocsp_urls,
    read_ocsp_response,
)

__all__ = [
    "CachingRevocationChecker",
    "HttpRevocationChecker",
    "InMemoryRevocationChecker",
    "RevocationChecker",
    "RevocationMode",
    "RevocationPolicy",
    "RevocationVerdict",
]

log = logging.getLogger(__name__)


class RevocationMode(enum.StrEnum):
    """``BUDSTIKKE_REVOCATION``."""

    OFF = "off"
    SOFT_FAIL = "soft-fail"
    HARD_FAIL = "hard-fail"


class RevocationChecker(Protocol):
    """Asks whether ``cert``, issued by ``issuer``, is revoked, as of ``now``."""

    async def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, now: datetime
    ) -> RevocationStatus: ...


def _describe(cert: x509.Certificate) -> str:
    return f"{cert.subject.rfc4514_string()} (serial {cert.serial_number:x})"


def _key(cert: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, int]:
    return issuer.fingerprint(hashes.SHA256()), cert.serial_number


# --------------------------------------------------------------------------- HTTP


def _fetchable(urls: tuple[str, ...]) -> list[str]:
    return [u for u in urls if u.lower().startswith(("http://", "https://"))]


class HttpRevocationChecker:
    """OCSP over HTTP POST (RFC 6960 A.1) at the certificate's AIA responders; when there is
    none, or none answers, the CRL from its distribution points (http/https only).

    Each responder gets ``timeout`` seconds and a circuit breaker, so a dead one costs a
    timestamp check instead of a timeout per message. Answers are capped at ``max_ocsp_bytes``
    and ``max_crl_bytes``. CRLs are kept (at most ``crl_cache_size``) until their nextUpdate,
    so one download serves every certificate of that CA.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        max_ocsp_bytes: int = 128 * 1024,
        max_crl_bytes: int = 32 * 1024 * 1024,
        send_nonce: bool = True,
        options: RevocationOptions | None = None,
        crl_cache_size: int = 16,
        breaker: CircuitBreaker | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self.max_ocsp_bytes = max_ocsp_bytes
        self.max_crl_bytes = max_crl_bytes
        self.send_nonce = send_nonce
        self.options = options or RevocationOptions()
        self.breaker = breaker or CircuitBreaker(threshold=3, cool_off=30.0)
        self._crl_cache_size = crl_cache_size
        self._crls: OrderedDict[str, x509.CertificateRevocationList] = OrderedDict()
        self._session = session
        self._own_session = session is None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.timeout)
            )
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    async def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, now: datetime
    ) -> RevocationStatus:
        responders = _fetchable(ocsp_urls(cert))
        crls = _fetchable(crl_urls(cert))
        if not responders and not crls:
            raise NoRevocationSource(
                f"{_describe(cert)} names no OCSP responder and no CRL distribution point"
            )
        failures: list[RevocationUnavailable | RevocationResponseError] = []
        for url in responders:
            try:
                return await self._ocsp(url, cert, issuer, now)
            except (RevocationUnavailable, RevocationResponseError) as exc:
                log.info("OCSP at %s about %s: %s", url, _describe(cert), exc)
                failures.append(exc)
        for url in crls:
            try:
                return await self._crl(url, cert, issuer, now)
            except (RevocationUnavailable, RevocationResponseError) as exc:
                log.info("CRL at %s about %s: %s", url, _describe(cert), exc)
                failures.append(exc)
        # an answer that did not verify outweighs a responder that did not answer: soft-fail
        # must not turn a forged or broken answer into an acceptance
        invalid = [f for f in failures if isinstance(f, RevocationResponseError)]
        raise (invalid or failures)[-1]

    async def _ocsp(
        self, url: str, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> RevocationStatus:
        request = build_ocsp_request(
            cert, issuer, nonce=secrets.token_bytes(16) if self.send_nonce else None
        )
        body = await self._fetch(
            url,
            data=request.der,
            headers={"Content-Type": OCSP_REQUEST_MIME, "Accept": OCSP_RESPONSE_MIME},
            cap=self.max_ocsp_bytes,
        )
        return read_ocsp_response(
            body, request=request, issuer=issuer, now=now, options=self.options
        )

    async def _crl(
        self, url: str, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> RevocationStatus:
        crl = self._crls.get(url)
        if crl is not None and (crl.next_update_utc is None or crl.next_update_utc < now):
            crl = None
        if crl is None:
            data = await self._fetch(url, data=None, headers={}, cap=self.max_crl_bytes)
            crl = await asyncio.to_thread(load_crl, data)
        # checked (signature included) on every use: the cache saves the download only
        status = await asyncio.to_thread(
            check_crl, crl, cert, issuer, now=now, options=self.options
        )
        self._crls[url] = crl
        self._crls.move_to_end(url)
        while len(self._crls) > self._crl_cache_size:
            self._crls.popitem(last=False)
        return status

    async def _fetch(
        self, url: str, *, data: bytes | None, headers: dict[str, str], cap: int
    ) -> bytes:
        if not self.breaker.allows(url):
            raise RevocationUnavailable(
                f"{url} is failing: not asked for {self.breaker.retry_in(url):.0f} s (circuit open)"
            )
        method = "GET" if data is None else "POST"
        try:
            async with self._http().request(
                method, url, data=data, headers=headers, max_redirects=3
            ) as response:
                if response.status != 200:
                    raise RevocationUnavailable(f"{url} answered HTTP {response.status}")
                if response.content_length is not None and response.content_length > cap:
                    raise RevocationResponseError(
                        f"{url} answered {response.content_length} bytes, more than {cap}",
                        rule="revocation-size",
                    )
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > cap:
                        raise RevocationResponseError(
                            f"{url} answered more than {cap} bytes", rule="revocation-size"
                        )
        except RevocationUnavailable:
            self.breaker.failed(url)
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.breaker.failed(url)
            raise RevocationUnavailable(f"{url} did not answer: {exc!r}") from exc
        self.breaker.succeeded(url)
        return bytes(body)


# --------------------------------------------------------------------------- cache


@dataclass
class _Entry:
    until: datetime
    status: RevocationStatus | None = None
    error: RevocationUnavailable | None = None


class CachingRevocationChecker:
    """Remembers answers per (issuer, serial) until the answer's nextUpdate, at most
    ``max_ttl`` (``no_next_update_ttl`` when it names none), and a failure to get one for
    ``failure_ttl``, so a dead responder is asked once a minute rather than once a message.
    Holds at most ``max_entries`` (least recently used go first). Concurrent checks of one
    certificate share one request. Expiry is judged against the ``now`` each call passes in.
    """

    def __init__(
        self,
        inner: RevocationChecker,
        *,
        max_entries: int = 4096,
        max_ttl: timedelta = timedelta(hours=6),
        no_next_update_ttl: timedelta = timedelta(minutes=5),
        failure_ttl: timedelta = timedelta(seconds=60),
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.inner = inner
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.no_next_update_ttl = no_next_update_ttl
        self.failure_ttl = failure_ttl
        self._entries: OrderedDict[tuple[bytes, int], _Entry] = OrderedDict()
        self._pending: dict[tuple[bytes, int], asyncio.Future[RevocationStatus]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    async def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()

    async def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, now: datetime
    ) -> RevocationStatus:
        key = _key(cert, issuer)
        entry = self._entries.get(key)
        if entry is not None:
            if now < entry.until:
                self._entries.move_to_end(key)
                if entry.error is not None:
                    raise entry.error
                assert entry.status is not None
                return entry.status
            del self._entries[key]
        pending = self._pending.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                # the caller that was asking was cancelled: ask ourselves
                return await self.inner.check(cert, issuer, now=now)
        future: asyncio.Future[RevocationStatus] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            status = await self.inner.check(cert, issuer, now=now)
        except RevocationUnavailable as exc:
            self._store(key, _Entry(now + self.failure_ttl, error=exc))
            future.set_exception(exc)
            raise
        except Exception as exc:
            future.set_exception(exc)
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            self._store(key, _Entry(self._until(status, now), status=status))
            future.set_result(status)
            return status
        finally:
            del self._pending[key]
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning without waiters

    def _until(self, status: RevocationStatus, now: datetime) -> datetime:
        if status.next_update is None:
            return now + min(self.no_next_update_ttl, self.max_ttl)
        return min(status.next_update, now + self.max_ttl)

    def _store(self, key: tuple[bytes, int], entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


# --------------------------------------------------------------------------- test double


class InMemoryRevocationChecker:
    """Answers from a table; GOOD (valid ``validity`` from ``now``) for certificates not in it.
    ``revoke``, ``set_status`` and ``fail_with`` change what it says; ``calls`` counts checks."""

    def __init__(self, *, validity: timedelta = timedelta(hours=1)) -> None:
        self.validity = validity
        self.calls = 0
        self._statuses: dict[tuple[bytes, int], CertStatus] = {}
        self._revoked: dict[tuple[bytes, int], tuple[datetime | None, x509.ReasonFlags | None]]
        self._revoked = {}
        #: raised by every check while set (RevocationUnavailable, RevocationResponseError, …)
        self.failure: Exception | None = None

    def revoke(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        *,
        at: datetime | None = None,
        reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise,
    ) -> None:
        self._statuses[_key(cert, issuer)] = CertStatus.REVOKED
        self._revoked[_key(cert, issuer)] = (at, reason)

    def set_status(
        self, cert: x509.Certificate, issuer: x509.Certificate, status: CertStatus
    ) -> None:
        self._statuses[_key(cert, issuer)] = status

    def fail_with(self, failure: Exception | None) -> None:
        self.failure = failure

    async def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, now: datetime
    ) -> RevocationStatus:
        self.calls += 1
        if self.failure is not None:
            raise self.failure
        key = _key(cert, issuer)
        status = self._statuses.get(key, CertStatus.GOOD)
        revoked_at, reason = self._revoked.get(key, (None, None))
        return RevocationStatus(
            status,
            RevocationSource.OCSP,
            cert.serial_number,
            now,
            now + self.validity,
            revoked_at=(revoked_at or now) if status is CertStatus.REVOKED else None,
            reason=reason if status is CertStatus.REVOKED else None,
        )


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class RevocationVerdict:
    """A certificate the policy accepts: its status, or why it was accepted without one."""

    status: RevocationStatus | None
    #: why no status was established (checking off, soft-failed, nothing to ask)
    unchecked: str | None = None


@dataclass
class RevocationPolicy:
    """Decides whether a peer certificate may be used, given its revocation status.

    ``counts`` holds how often each outcome happened (``good``, ``revoked``, ``unknown``,
    ``invalid``, ``soft-fail``, ``no-source``, ``unavailable``, ``off``), for logs and metrics.
    """

    mode: RevocationMode
    checker: RevocationChecker
    counts: collections.Counter[str] = field(default_factory=collections.Counter)

    @classmethod
    def create(
        cls, mode: RevocationMode | str, *, timeout: float = 10.0, cache_size: int = 4096
    ) -> RevocationPolicy:
        """The production wiring: HTTP checks behind the cache."""
        checker = CachingRevocationChecker(
            HttpRevocationChecker(timeout=timeout), max_entries=cache_size
        )
        return cls(RevocationMode(mode), checker)

    async def close(self) -> None:
        close = getattr(self.checker, "close", None)
        if close is not None:
            await close()

    async def verify(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, now: datetime
    ) -> RevocationVerdict:
        """Accept ``cert`` (return why) or raise :class:`~sbdh.revocation.RevocationRefused`
        (:class:`~sbdh.revocation.CertificateRevoked` for a revoked one); the refusal's
        ``transient`` says whether asking again later may help."""
        if self.mode is RevocationMode.OFF:
            self.counts["off"] += 1
            return RevocationVerdict(None, "revocation checking is off")
        soft = self.mode is RevocationMode.SOFT_FAIL
        who = _describe(cert)
        try:
            status = await self.checker.check(cert, issuer, now=now)
        except RevocationUnavailable as exc:
            if soft:
                self.counts["soft-fail"] += 1
                log.warning("revocation of %s not checked (soft-fail): %s", who, exc)
                return RevocationVerdict(None, f"soft-fail: {exc}")
            self.counts["unavailable"] += 1
            raise RevocationRefused(
                f"the revocation status of {who} cannot be obtained: {exc}",
                rule="revocation-unavailable",
                transient=True,
            ) from exc
        except NoRevocationSource as exc:
            self.counts["no-source"] += 1
            if soft:
                log.debug("revocation of %s not checked: %s", who, exc)
                return RevocationVerdict(None, str(exc))
            raise RevocationRefused(str(exc), rule="revocation-no-source") from exc
        except RevocationResponseError as exc:
            self.counts["invalid"] += 1
            raise RevocationRefused(
                f"the revocation status of {who} cannot be relied on: {exc}",
                rule="revocation-response-invalid",
            ) from exc
        if status.is_revoked:
            self.counts["revoked"] += 1
            raise CertificateRevoked(
                f"{who} is revoked: {status.describe()}", rule="cert-revoked", status=status
            )
        if status.status is CertStatus.UNKNOWN:
            self.counts["unknown"] += 1
            raise RevocationRefused(
                f"the {status.source} responder does not know {who}",
                rule="cert-status-unknown",
                status=status,
            )
        self.counts["good"] += 1
        return RevocationVerdict(status)
