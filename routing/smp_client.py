"""The HTTP edge of the SMP lookup: fetch a participant's service group and signed service
metadata from the SMP the SML named, and return only what verified.

One request per call (no retries, no cache: those belong to the guard around this client),
bounded by a timeout and a size cap, HTTP redirects not followed. Errors are translated here::

    sbdh.errors.NoRoute                          404
    ├── ParticipantNotRegistered (routing)
    │   └── SmpParticipantNotFound                    the SMP answers 404 for the service group
    └── elma.NoMatchingDocumentType
        └── SmpDocumentTypeNotFound                   the SMP answers 404 for the document type
    RegistryUnavailable (routing)                503  connection refused/reset, timeout,
                                                      HTTP 5xx, 408, 429
    RegistryRefused (routing)                    500  any other HTTP 3xx/4xx
    RegistryResponseError (routing)              502  the answer is not a signed SMP document we
                                                      can read, its signature does not verify
                                                      or its signer is not trusted, it is for
                                                      another participant or document type, a
                                                      redirect's target is not the SMP it named,
                                                      or a redirect leads to another redirect

``rule`` keeps the check that failed (``smp-signature-invalid``, ``cert-expired``,
``smp-redirect-signer``, …), so the reason survives the translation.

Verification is :func:`elma.verify.verify_service_metadata` against ``trust`` (the Peppol SMP
CA, or the SMP's own certificate to pin it) at the client's clock: the metadata returned is what
the signature covers, never the bytes received. A redirect (Peppol/BDXR 1.0 ``Redirect``; SMP
2.0 per process) is followed once; the answer there must be signed by the SMP the redirect
named (:func:`elma.verify.check_redirect_signer`) and must not redirect again.

Peppol and BDXR 1.0 service groups are not signed by any SMP; they only say which document
types to ask for, and each answer for one of them is verified on its own. SMP 2.0 service groups
are signed and verified.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509
from yarl import URL

from elma.errors import NoMatchingDocumentType
from elma.model import DocumentTypeId, ParticipantId, Redirect, ServiceGroup, ServiceMetadata
from elma.parse import parse_service_group
from elma.paths import service_group_path, service_metadata_path
from elma.spec import SmpFormat
from elma.verify import (
    DEFAULT_POLICY,
    VerifyPolicy,
    check_redirect_signer,
    verify_service_group,
    verify_service_metadata,
)
from routing.errors import (
    ParticipantNotRegistered,
    RegistryRefused,
    RegistryResponseError,
    RegistryUnavailable,
)
from routing.http import RegistryHttp, is_transient
from sbdh.errors import ConfigurationError, InvalidInput
from sbdh.identifiers import ParticipantId as PeppolParticipantId
from sbdh.trust import TrustStore
from sbdh.xmlsafe import XmlLimits

__all__ = [
    "SmpAnswer",
    "SmpClient",
    "SmpDocumentTypeNotFound",
    "SmpParticipantNotFound",
    "SmpSource",
    "as_smp_participant",
]

log = logging.getLogger("budstikke.routing.smp")

_DEFAULT_MAX_BYTES = 4 * 1024 * 1024
_ACCEPT = "text/xml, application/xml;q=0.9"
#: printable ASCII, no space: a URL sent exactly as written (already percent-encoded)
_URL_CHARS = re.compile(r"[\x21-\x7e]+")


class SmpParticipantNotFound(ParticipantNotRegistered):
    """The SML points at an SMP that does not know the participant (HTTP 404)."""

    code = "smp-participant-not-found"


class SmpDocumentTypeNotFound(NoMatchingDocumentType):
    """The SMP publishes nothing for this participant and document type (HTTP 404)."""

    code = "smp-document-type-not-found"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def as_smp_participant(participant: ParticipantId | PeppolParticipantId) -> ParticipantId:
    """The SMP model's participant id for either kind the project uses."""
    if isinstance(participant, ParticipantId):
        return participant
    return ParticipantId(participant.scheme, participant.value)


@dataclass(frozen=True)
class SmpAnswer:
    """A service metadata that verified, and where it came from."""

    #: parsed from what the signature covers
    metadata: ServiceMetadata
    #: the URL of the answer the metadata was read from
    url: str
    signer: x509.Certificate
    #: the URL of the answer that redirected here, when one did
    redirected_from: str | None = None
    #: the signed document (without its signature), as verified
    document: bytes = field(default=b"", repr=False)

    @property
    def signer_subject(self) -> str:
        return self.signer.subject.rfc4514_string()


class SmpSource(Protocol):
    """What the resolver asks of an SMP client: :class:`SmpClient`, or a wrapper around it that
    adds a cache, retries and a circuit breaker (:class:`routing.guard.RegistryGuard`, keyed by
    ``(smp_url, participant, document_type)``)."""

    async def service_group(
        self, smp_url: str, participant: ParticipantId | PeppolParticipantId
    ) -> ServiceGroup: ...

    async def service_metadata(
        self,
        smp_url: str,
        participant: ParticipantId | PeppolParticipantId,
        document_type: DocumentTypeId,
    ) -> SmpAnswer: ...

    async def follow_redirect(
        self,
        redirect: Redirect,
        *,
        origin: SmpAnswer,
        participant: ParticipantId | PeppolParticipantId,
        document_type: DocumentTypeId,
    ) -> SmpAnswer: ...


class SmpClient(RegistryHttp):
    """Asks SMPs for service groups and signed service metadata.

    ``trust`` holds the anchors SMP signatures must chain to. ``smp_format`` chooses the REST
    paths (Peppol and BDXR 1.0 share them; SMP 2.0 adds ``/bdxr-smp-2``); answers of any
    format are read. ``allow_http`` accepts ``http`` SMP and redirect URLs (the local network).
    ``session`` may be shared; one the client made itself is closed by :meth:`close`.
    """

    registry_name = "the SMP"
    answer_name = "the SMP answer"
    rule_prefix = "smp"

    def __init__(
        self,
        trust: TrustStore,
        *,
        smp_format: SmpFormat = SmpFormat.PEPPOL,
        timeout: float = 10.0,
        max_response_bytes: int = _DEFAULT_MAX_BYTES,
        allow_http: bool = False,
        policy: VerifyPolicy = DEFAULT_POLICY,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if timeout <= 0:
            raise ConfigurationError("the SMP timeout must be positive", rule="smp-timeout")
        if max_response_bytes <= 0:
            raise ConfigurationError("the SMP size cap must be positive", rule="smp-size")
        super().__init__(session, timeout=timeout, max_response_bytes=max_response_bytes)
        self.trust = trust
        self.smp_format = smp_format
        self.allow_http = allow_http
        self.policy = policy
        self.clock = clock
        self._limits = XmlLimits(max_bytes=max_response_bytes)

    def __repr__(self) -> str:
        return f"SmpClient(format={self.smp_format.value!r}, timeout={self.timeout:g})"

    # -- plumbing ----------------------------------------------------------------------------

    def _check_url(self, url: str, what: str) -> str:
        schemes = ("https", "http") if self.allow_http else ("https",)
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            parts, host = urlsplit(""), None
        if (
            host is None
            or parts.scheme.lower() not in schemes
            or not _URL_CHARS.fullmatch(url)
            or parts.fragment
        ):
            raise RegistryResponseError(
                f"the {what} {url!r} is not an absolute {' or '.join(schemes)} URL",
                rule="smp-url",
                field=what,
            )
        return url

    async def _get(self, url: str, not_found: Callable[[], Exception]) -> bytes:
        """One GET; the body of a 200, or an error from the tree."""
        # sent exactly as built: yarl would otherwise decode the %3A of the identifiers
        async with self._request(
            "GET", URL(url, encoded=True), headers={"Accept": _ACCEPT}
        ) as response:
            status = response.status
            data = await self._read(response) if status == 200 else b""
        if status == 200:
            return data
        if status == 404:
            raise not_found()
        if is_transient(status):
            raise RegistryUnavailable(f"the SMP answered HTTP {status}", rule=f"smp-http-{status}")
        raise RegistryRefused(
            f"the SMP refused GET {url} with HTTP {status}",
            status=status,
            rule=f"smp-http-{status}",
        )

    def _verify(self, data: bytes, url: str) -> SmpAnswer:
        try:
            verified = verify_service_metadata(
                data, self.trust, at=self.clock(), policy=self.policy, limits=self._limits
            )
        except InvalidInput as exc:
            raise RegistryResponseError(
                f"the SMP answer from {url} is refused: {exc.message}",
                rule=exc.rule or "smp-invalid",
            ) from exc
        return SmpAnswer(verified.metadata, url, verified.signer, document=verified.document)

    @staticmethod
    def _require_subject(
        answer: SmpAnswer, participant: ParticipantId, document_type: DocumentTypeId
    ) -> None:
        """An answer (not a redirect) must be about what was asked: a validly signed answer
        for someone else, replayed, must not route this participant's documents."""
        metadata = answer.metadata
        if metadata.redirect is not None:
            return
        if metadata.participant != participant or metadata.document_type != document_type:
            raise RegistryResponseError(
                f"the SMP answer from {answer.url} is for {metadata.participant} and "
                f"{metadata.document_type}, not for {participant} and {document_type}",
                rule="smp-answer-mismatch",
            )

    # -- the API -----------------------------------------------------------------------------

    def service_group_url(self, smp_url: str, participant: ParticipantId) -> str:
        return smp_url.rstrip("/") + service_group_path(participant, self.smp_format)

    def service_metadata_url(
        self, smp_url: str, participant: ParticipantId, document_type: DocumentTypeId
    ) -> str:
        return smp_url.rstrip("/") + service_metadata_path(
            participant, document_type, self.smp_format
        )

    async def service_group(
        self, smp_url: str, participant: ParticipantId | PeppolParticipantId
    ) -> ServiceGroup:
        """The participant's service group (SMP 2.0: verified; the 1.x formats are unsigned).

        Raises :class:`SmpParticipantNotFound` on HTTP 404.
        """
        wanted = as_smp_participant(participant)
        url = self.service_group_url(self._check_url(smp_url, "SMP URL"), wanted)
        data = await self._get(
            url,
            lambda: SmpParticipantNotFound(
                f"the SMP does not know participant {wanted}", rule="smp-http-404"
            ),
        )
        try:
            if self.smp_format is SmpFormat.SMP2:
                group = verify_service_group(
                    data, self.trust, at=self.clock(), policy=self.policy, limits=self._limits
                ).group
            else:
                group = parse_service_group(data, self._limits)
        except InvalidInput as exc:
            raise RegistryResponseError(
                f"the service group from {url} is refused: {exc.message}",
                rule=exc.rule or "smp-invalid",
            ) from exc
        if group.participant != wanted:
            raise RegistryResponseError(
                f"the service group from {url} is for {group.participant}, not {wanted}",
                rule="smp-answer-mismatch",
            )
        return group

    async def fetch_service_metadata(
        self,
        smp_url: str,
        participant: ParticipantId | PeppolParticipantId,
        document_type: DocumentTypeId,
    ) -> SmpAnswer:
        """The verified answer at this SMP, a redirect answer included (not followed)."""
        wanted = as_smp_participant(participant)
        url = self.service_metadata_url(self._check_url(smp_url, "SMP URL"), wanted, document_type)
        data = await self._get(
            url,
            lambda: SmpDocumentTypeNotFound(
                f"participant {wanted} publishes nothing for {document_type}",
                rule="smp-http-404",
            ),
        )
        answer = self._verify(data, url)
        self._require_subject(answer, wanted, document_type)
        return answer

    async def follow_redirect(
        self,
        redirect: Redirect,
        *,
        origin: SmpAnswer,
        participant: ParticipantId | PeppolParticipantId,
        document_type: DocumentTypeId,
    ) -> SmpAnswer:
        """Fetch what ``redirect`` (found in ``origin``) points at, once.

        The answer must be signed by the SMP the redirect named, be about the same participant
        and document type, and redirect no further.
        """
        wanted = as_smp_participant(participant)
        if origin.redirected_from is not None:
            raise RegistryResponseError(
                f"{origin.url} redirects again (to {redirect.href}); only one redirect is followed",
                rule="smp-redirect-twice",
            )
        url = self._check_url(redirect.href, "redirect URL")
        data = await self._get(
            url,
            lambda: SmpDocumentTypeNotFound(
                f"the SMP redirected to publishes nothing for {wanted} and {document_type}",
                rule="smp-http-404",
            ),
        )
        answer = self._verify(data, url)
        try:
            check_redirect_signer(redirect, answer.signer)
        except InvalidInput as exc:
            raise RegistryResponseError(
                f"the redirected answer from {url} is refused: {exc.message}",
                rule=exc.rule or "smp-redirect-signer",
            ) from exc
        answer = SmpAnswer(
            answer.metadata,
            url,
            answer.signer,
            redirected_from=origin.url,
            document=answer.document,
        )
        if answer.metadata.redirect is not None or any(
            p.redirect is not None for p in answer.metadata.processes
        ):
            raise RegistryResponseError(
                f"the answer at {url}, reached by a redirect, redirects again; only one "
                "redirect is followed",
                rule="smp-redirect-twice",
            )
        self._require_subject(answer, wanted, document_type)
        log.debug("SMP: followed a redirect from %s to %s", origin.url, url)
        return answer

    async def service_metadata(
        self,
        smp_url: str,
        participant: ParticipantId | PeppolParticipantId,
        document_type: DocumentTypeId,
    ) -> SmpAnswer:
        """The verified service metadata for ``participant`` and ``document_type``; a
        whole-answer redirect (Peppol, BDXR 1.0) is followed once. SMP 2.0 redirects per
        process: see :meth:`follow_redirect`, which the resolver calls for those."""
        answer = await self.fetch_service_metadata(smp_url, participant, document_type)
        redirect = answer.metadata.redirect
        if redirect is None:
            return answer
        return await self.follow_redirect(
            redirect, origin=answer, participant=participant, document_type=document_type
        )
