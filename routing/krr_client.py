"""The HTTP edge of the KRR client: ``POST {base}/rest/v1/personer`` and
``GET {base}/rest/v2/printSertifikat`` over aiohttp.

One attempt per request, bounded by a timeout; retries, caching and the circuit breaker belong
to the wrapper around this client. More than 1000 national ids are sent as several requests
(repeats removed), one after the other. Errors are translated here, at the edge:

=========================================  =================================================
connection refused/reset, timeout,         :class:`~routing.errors.RegistryUnavailable`
HTTP 5xx, 429, 408                         (transient: try again later)
HTTP 4xx (token missing or refused,        :class:`~routing.errors.RegistryRefused`
request refused), a redirect               (configuration: the register's message, masked)
an answer that breaks the protocol, a      :class:`~routing.errors.RegistryResponseError`
signed answer that does not verify         (permanent)
=========================================  =================================================

With ``jose_trust`` set the client asks for ``application/jose`` and accepts only answers
signed (RS256) by a certificate that chains to those anchors, and, with
``jose_signer_orgnr``, that belongs to that organisation. The bearer token is never logged, and
neither is a national id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import aiohttp
from cryptography import x509
from cryptography.x509.oid import NameOID

from routing.errors import (
    RegistryRefused,
    RegistryResponseError,
    RegistryUnavailable,
    mask_national_ids,
)
from routing.http import RegistryHttp, TokenSource, is_transient, resolve_token
from routing.jws import verify_compact
from routing.krr import (
    KRR_MAX_IDS,
    Person,
    PrintProvider,
    batches,
    build_request,
    match_answer,
    parse_print_provider,
    parse_response,
)
from sbdh.errors import ConfigurationError, SignatureError
from sbdh.identifiers import NationalId
from sbdh.trust import TrustStore

__all__ = ["PERSONER_PATH", "PRINT_CERTIFICATE_PATH", "KrrClient", "TokenSource"]

log = logging.getLogger("budstikke.routing.krr")

PERSONER_PATH = "/rest/v1/personer"
PRINT_CERTIFICATE_PATH = "/rest/v2/printSertifikat"
JSON = "application/json"
JOSE = "application/jose"

_DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_MESSAGE_KEYS = ("detail", "title", "message", "error_description", "error")
_MAX_MESSAGE = 300


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _message(body: bytes) -> str:
    """The register's own explanation of an error, short and with national ids masked."""
    text = ""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeError):
        data = None
    if isinstance(data, Mapping):
        parts = [str(data[k]) for k in _MESSAGE_KEYS if isinstance(data.get(k), str | int)]
        text = " - ".join(dict.fromkeys(parts))
    if not text:
        text = body.decode("utf-8", "replace")
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "..."
    return mask_national_ids(text)


def _belongs_to(cert: x509.Certificate, orgnr: str) -> bool:
    """Does the certificate name this organisation (``serialNumber`` as in Norwegian enterprise
    certificates, or ``organizationIdentifier`` ``NTRNO-<orgnr>`` as in SEID 2)?"""
    for oid in (NameOID.SERIAL_NUMBER, NameOID.ORGANIZATION_IDENTIFIER):
        for attr in cert.subject.get_attributes_for_oid(oid):
            value = str(attr.value)
            if value in (orgnr, f"NTRNO-{orgnr}"):
                return True
    return False


class KrrClient(RegistryHttp):
    """Asks KRR about persons and about the print provider.

    ``base_url`` is the register's root (``https://kontaktregisteret.no``), without the
    ``/rest/...`` path. ``session`` may be shared; one the client made itself is closed by
    :meth:`close`. ``clock`` gives the time answers are judged at (the 18-month rule, the
    signer's validity).
    """

    registry_name = "KRR"
    rule_prefix = "krr"

    def __init__(
        self,
        base_url: str,
        token: TokenSource,
        *,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        batch_size: int = KRR_MAX_IDS,
        personer_path: str = PERSONER_PATH,
        jose_trust: TrustStore | None = None,
        jose_signer_orgnr: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
        max_response_bytes: int = _DEFAULT_MAX_BYTES,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ConfigurationError(f"KRR base URL {base_url!r} is not http(s)", rule="krr-url")
        if timeout <= 0:
            raise ConfigurationError("the KRR timeout must be positive", rule="krr-timeout")
        if not 1 <= batch_size <= KRR_MAX_IDS:
            raise ConfigurationError(
                f"the KRR batch size must be 1 to {KRR_MAX_IDS}", rule="krr-batch-size"
            )
        if jose_signer_orgnr is not None and jose_trust is None:
            raise ConfigurationError(
                "jose_signer_orgnr needs jose_trust to check the signer", rule="krr-jose"
            )
        super().__init__(session, timeout=timeout, max_response_bytes=max_response_bytes)
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.batch_size = batch_size
        self.personer_path = personer_path
        self.jose_trust = jose_trust
        self.jose_signer_orgnr = jose_signer_orgnr
        self.clock = clock

    def __repr__(self) -> str:
        return f"KrrClient({self.base_url!r}, token=***)"

    # -- plumbing ----------------------------------------------------------------------------

    async def _bearer(self) -> str:
        token = await resolve_token(self._token)
        if not token:
            raise ConfigurationError("no KRR access token", rule="krr-token")
        return f"Bearer {token}"

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        accept: str = JSON,
        auth: bool = True,
    ) -> tuple[str, bytes]:
        """One request; returns the answer's media type and body, or raises from the tree."""
        headers = {"Accept": accept}
        if auth:
            headers["Authorization"] = await self._bearer()
        if body is not None:
            headers["Content-Type"] = JSON
        async with self._request(
            method, self.base_url + path, data=body, headers=headers
        ) as response:
            data = await self._read(response)
            status, media_type = response.status, response.content_type
        if is_transient(status):
            raise RegistryUnavailable(
                f"KRR answered HTTP {status}: {_message(data)}", rule=f"krr-http-{status}"
            )
        if status >= 300:
            raise RegistryRefused(
                f"KRR refused the request with HTTP {status}: {_message(data)}",
                status=status,
                rule=f"krr-http-{status}",
            )
        return media_type, data

    def _payload(self, media_type: str, data: bytes) -> bytes:
        """The JSON of an answer: as sent, or out of the verified JWS."""
        if self.jose_trust is None:
            if media_type not in (JSON, "") and not media_type.endswith("+json"):
                raise RegistryResponseError(
                    f"KRR answered {media_type!r}, not JSON", rule="krr-media-type"
                )
            return data
        if media_type != JOSE:
            raise RegistryResponseError(
                f"KRR answered {media_type!r}, not a signed answer ({JOSE})",
                rule="krr-media-type",
            )
        try:
            verified = verify_compact(data, trust=self.jose_trust, at=self.clock())
        except SignatureError as exc:
            raise RegistryResponseError(
                f"KRR's signed answer does not verify: {exc}", rule="krr-jws"
            ) from exc
        if self.jose_signer_orgnr is not None and not _belongs_to(
            verified.signer, self.jose_signer_orgnr
        ):
            raise RegistryResponseError(
                f"KRR's answer is signed by {verified.signer.subject.rfc4514_string()}, "
                f"not by organisation {self.jose_signer_orgnr}",
                rule="krr-jws-signer",
            )
        return verified.payload

    # -- the API -----------------------------------------------------------------------------

    async def _lookup_batch(self, ids: tuple[NationalId, ...]) -> dict[NationalId, Person]:
        accept = JSON if self.jose_trust is None else JOSE
        media_type, data = await self._exchange(
            "POST", self.personer_path, body=build_request(ids), accept=accept
        )
        persons = parse_response(self._payload(media_type, data), now=self.clock())
        return match_answer(ids, persons)

    async def lookup(self, ids: Iterable[NationalId]) -> dict[NationalId, Person]:
        """Every (distinct) national id in ``ids`` -> what KRR says about that person, in the
        order asked. Persons unknown to the register come back with status
        ``IKKE_REGISTRERT``."""
        groups = batches(ids, self.batch_size)
        answer: dict[NationalId, Person] = {}
        for number, group in enumerate(groups, 1):
            log.debug("KRR: request %d of %d, %d persons", number, len(groups), len(group))
            answer.update(await self._lookup_batch(group))
        return answer

    async def person(self, national_id: NationalId) -> Person:
        """What KRR says about one person."""
        return (await self.lookup([national_id]))[national_id]

    async def print_provider(self) -> PrintProvider:
        """The print provider's organisation number and certificate."""
        media_type, data = await self._exchange("GET", PRINT_CERTIFICATE_PATH, auth=False)
        if media_type not in (JSON, "") and not media_type.endswith("+json"):
            raise RegistryResponseError(
                f"KRR answered {media_type!r}, not JSON", rule="krr-media-type"
            )
        return parse_print_provider(data)
