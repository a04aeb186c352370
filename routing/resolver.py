"""Where an organisation receives a document: SML -> SMP -> signed metadata -> endpoint.

:meth:`RouteResolver.resolve` does what a Peppol access point does before sending:

1. ask the SML for the participant's SMP (:class:`routing.sml.SmlLookup`);
2. fetch and verify the service metadata for the document type
   (:class:`routing.smp_client.SmpClient`, one redirect followed). A document type in the
   ``peppol-doctype-wildcard`` scheme is first looked up in the service group, since the SMP
   publishes it under the most specific wildcard id that covers it
   (:func:`elma.select.match_document_type`);
3. choose the endpoint for the process, transport profile and time
   (:func:`elma.select.select_endpoint`), following an SMP 2.0 per-process redirect once;
4. optionally check the access point's certificate against the AP trust anchors.

The answer, :class:`ResolvedEndpoint`, carries a :class:`RouteEvidence`: which registry said
what (the SML name and the SMP URL it gave, the URL and signer of the verified answer, the
document type and process the SMP published and matched, the endpoint's validity), in a form
the routing decision can store as JSON.

Every failure is from the error tree: :class:`~sbdh.errors.NoRoute` (the SML does not know the
participant, the SMP does not know it or the document type, or selection finds no process,
transport profile or active endpoint), :class:`~routing.errors.RegistryUnavailable` (try again),
:class:`~routing.errors.RegistryResponseError` (an answer we refuse), and
:class:`~routing.errors.RegistryRefused`. The SML and SMP calls are plain coroutines keyed by
participant (and document type), so a :class:`routing.guard.RegistryGuard` can wrap them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from elma.errors import RedirectNotFollowed, SmpDocumentError
from elma.model import DocumentTypeId, Endpoint, ParticipantId, Process, ProcessId
from elma.select import SelectedEndpoint, match_document_type, select_endpoint
from elma.spec import DOCTYPE_SCHEME_WILDCARD, TransportProfile
from routing.errors import RegistryResponseError
from routing.sml import SmlLookup, participant_dns_name
from routing.smp_client import SmpAnswer, SmpDocumentTypeNotFound, SmpSource, as_smp_participant
from sbdh.errors import InvalidIdentifier, InvalidInput
from sbdh.identifiers import ParticipantId as PeppolParticipantId
from sbdh.trust import KeyPurpose, TrustStore, verify_certificate

__all__ = ["Capability", "ResolvedEndpoint", "RouteEvidence", "RouteResolver"]

log = logging.getLogger("budstikke.routing.resolver")

_CAPABILITY_CONCURRENCY = 4


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _sha256(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class RouteEvidence:
    """Which registry said what, for one routing decision. :meth:`as_json` is what to store."""

    participant: str
    decided_at: datetime
    #: the DNS name the SML was asked (when the SML lookup has a zone)
    sml_name: str | None
    #: the SMP base URL the SML gave
    smp_url: str
    #: the URL of the verified answer the endpoint was taken from
    metadata_url: str
    #: the URL of the answer that redirected there, if one did
    redirected_from: str | None
    smp_format: str
    smp_signer: str
    smp_signer_sha256: str
    document_type_requested: str
    #: the document type as the SMP published it (a wildcard id when one matched)
    document_type_published: str
    #: the process as the SMP published it (``None``: an SMP 2.0 entry for any process)
    process_published: str | None
    process_requested: str
    transport_profile: str
    endpoint_url: str
    endpoint_activation: datetime | None
    endpoint_expiration: datetime | None
    certificate_subject: str
    certificate_sha256: str
    certificate_not_after: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "participant": self.participant,
            "decided_at": self.decided_at.isoformat(),
            "sml": {"name": self.sml_name, "smp_url": self.smp_url},
            "smp": {
                "url": self.metadata_url,
                "redirected_from": self.redirected_from,
                "format": self.smp_format,
                "signer": self.smp_signer,
                "signer_sha256": self.smp_signer_sha256,
            },
            "match": {
                "document_type_requested": self.document_type_requested,
                "document_type_published": self.document_type_published,
                "process_requested": self.process_requested,
                "process_published": self.process_published,
                "transport_profile": self.transport_profile,
            },
            "endpoint": {
                "url": self.endpoint_url,
                "activation": _iso(self.endpoint_activation),
                "expiration": _iso(self.endpoint_expiration),
                "certificate": {
                    "subject": self.certificate_subject,
                    "sha256": self.certificate_sha256,
                    "not_after": self.certificate_not_after.isoformat(),
                },
            },
        }


@dataclass(frozen=True)
class ResolvedEndpoint:
    """Where to send: the endpoint chosen from verified SMP data, and the evidence for it."""

    participant: ParticipantId
    document_type: DocumentTypeId
    process: ProcessId
    endpoint_url: str
    #: the receiving access point's certificate (encrypt to it; its receipts are signed by it)
    certificate: x509.Certificate = field(repr=False)
    transport_profile: str
    #: the SMP base URL the SML gave
    smp_url: str
    #: the subject of the certificate that signed the answer used
    smp_signer: str
    evidence: RouteEvidence = field(repr=False)
    #: the endpoint as the SMP published it (description, contact, flags)
    endpoint: Endpoint = field(repr=False)


@dataclass(frozen=True)
class Capability:
    """One document type and process a participant receives, and over which transport profiles
    (those with an endpoint active at the time asked; empty when none is)."""

    document_type: DocumentTypeId
    #: ``None``: an SMP 2.0 entry serving any process
    process: ProcessId | None
    transport_profiles: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "document_type": self.document_type.uri(),
            "process": self.process.uri() if self.process is not None else None,
            "transport_profiles": list(self.transport_profiles),
        }


def _peppol(participant: ParticipantId | PeppolParticipantId) -> PeppolParticipantId:
    if isinstance(participant, PeppolParticipantId):
        return participant
    if not participant.is_peppol:
        raise InvalidIdentifier(
            f"participant {participant} is not in the Peppol scheme; the SML knows only those",
            rule="participant-scheme",
        )
    return PeppolParticipantId(participant.value, participant.scheme or "")


def _document_type(value: DocumentTypeId | str) -> DocumentTypeId:
    try:
        return value if isinstance(value, DocumentTypeId) else DocumentTypeId.from_uri(value)
    except ValueError as exc:
        raise InvalidIdentifier(str(exc), rule="doctype-format") from exc


def _process(value: ProcessId | str) -> ProcessId:
    try:
        return value if isinstance(value, ProcessId) else ProcessId.from_uri(value)
    except ValueError as exc:
        raise InvalidIdentifier(str(exc), rule="process-format") from exc


class RouteResolver:
    """SML -> SMP -> endpoint. ``ap_trust``, when given, is what the receiving access point's
    certificate must chain to (the Peppol AP CA); otherwise that is left to the AS4 sender."""

    def __init__(
        self,
        sml: SmlLookup,
        smp: SmpSource,
        *,
        ap_trust: TrustStore | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.sml = sml
        self.smp = smp
        self.ap_trust = ap_trust
        self.clock = clock

    def __repr__(self) -> str:
        return f"RouteResolver({self.sml!r}, {self.smp!r})"

    def _sml_name(self, participant: PeppolParticipantId) -> str | None:
        zone = getattr(self.sml, "zone", None)
        return participant_dns_name(participant, zone) if isinstance(zone, str) else None

    async def _published_type(
        self, smp_url: str, participant: ParticipantId, wanted: DocumentTypeId
    ) -> DocumentTypeId:
        """The id to ask the SMP for: ``wanted`` itself, or for the wildcard scheme the most
        specific published id that covers it (from the service group)."""
        if wanted.scheme != DOCTYPE_SCHEME_WILDCARD:
            return wanted
        group = await self.smp.service_group(smp_url, participant)
        return match_document_type(group.document_types(), wanted)

    async def _select(
        self,
        answer: SmpAnswer,
        *,
        participant: ParticipantId,
        document_type: DocumentTypeId,
        process: ProcessId,
        transport_profile: str,
        at: datetime,
    ) -> tuple[SmpAnswer, SelectedEndpoint]:
        try:
            selected = select_endpoint(
                answer.metadata,
                document_type=document_type,
                process=process,
                at=at,
                transport_profile=transport_profile,
            )
        except RedirectNotFollowed as redirect:
            # an SMP 2.0 process that redirects (whole-answer redirects were followed already)
            published = answer.metadata.document_type or document_type
            answer = await self.smp.follow_redirect(
                redirect.redirect,
                origin=answer,
                participant=participant,
                document_type=published,
            )
            selected = select_endpoint(
                answer.metadata,
                document_type=document_type,
                process=process,
                at=at,
                transport_profile=transport_profile,
            )
        return answer, selected

    def _certificate(self, endpoint: Endpoint, at: datetime) -> x509.Certificate:
        try:
            certificate = endpoint.x509_certificate()
        except SmpDocumentError as exc:
            raise RegistryResponseError(
                f"the SMP publishes no usable certificate for {endpoint.address}: {exc.message}",
                rule=exc.rule or "smp-certificate",
                field="Endpoint.Certificate",
            ) from exc
        if self.ap_trust is not None:
            try:
                verify_certificate(certificate, self.ap_trust, at=at, purpose=KeyPurpose.ENCRYPTION)
            except InvalidInput as exc:
                raise RegistryResponseError(
                    f"the access point certificate published for {endpoint.address} is not "
                    f"trusted: {exc.message}",
                    rule=exc.rule or "smp-ap-certificate",
                    field="Endpoint.Certificate",
                ) from exc
        return certificate

    async def resolve(
        self,
        participant: ParticipantId | PeppolParticipantId,
        document_type: DocumentTypeId | str,
        process: ProcessId | str,
        *,
        transport_profile: str = TransportProfile.PEPPOL_AS4_V2,
        at: datetime | None = None,
    ) -> ResolvedEndpoint:
        """The endpoint ``participant`` receives ``document_type`` in ``process`` at, over
        ``transport_profile``, active at ``at`` (default: the resolver's clock)."""
        at = at or self.clock()
        if at.tzinfo is None:
            raise ValueError("the routing time must be timezone-aware")
        peppol = _peppol(participant)
        wanted_participant = as_smp_participant(peppol)
        wanted_type = _document_type(document_type)
        wanted_process = _process(process)

        smp_url = await self.sml.smp_url(peppol)
        published_type = await self._published_type(smp_url, wanted_participant, wanted_type)
        answer = await self.smp.service_metadata(smp_url, wanted_participant, published_type)
        answer, selected = await self._select(
            answer,
            participant=wanted_participant,
            document_type=wanted_type,
            process=wanted_process,
            transport_profile=transport_profile,
            at=at,
        )
        endpoint = selected.endpoint
        certificate = self._certificate(endpoint, at)
        evidence = RouteEvidence(
            participant=wanted_participant.uri(),
            decided_at=at,
            sml_name=self._sml_name(peppol),
            smp_url=smp_url,
            metadata_url=answer.url,
            redirected_from=answer.redirected_from,
            smp_format=answer.metadata.format.value,
            smp_signer=answer.signer_subject,
            smp_signer_sha256=_sha256(answer.signer),
            document_type_requested=wanted_type.uri(),
            document_type_published=selected.document_type.uri(),
            process_published=(
                selected.process.process_id.uri() if selected.process.process_id else None
            ),
            process_requested=wanted_process.uri(),
            transport_profile=endpoint.transport_profile,
            endpoint_url=endpoint.address,
            endpoint_activation=endpoint.service_activation,
            endpoint_expiration=endpoint.service_expiration,
            certificate_subject=certificate.subject.rfc4514_string(),
            certificate_sha256=_sha256(certificate),
            certificate_not_after=certificate.not_valid_after_utc,
        )
        log.debug("route: %s %s -> %s", peppol.value, wanted_type.value, endpoint.address)
        return ResolvedEndpoint(
            participant=wanted_participant,
            document_type=wanted_type,
            process=wanted_process,
            endpoint_url=endpoint.address,
            certificate=certificate,
            transport_profile=endpoint.transport_profile,
            smp_url=smp_url,
            smp_signer=answer.signer_subject,
            evidence=evidence,
            endpoint=endpoint,
        )

    # -- capabilities --------------------------------------------------------------------------

    async def _processes(
        self, smp_url: str, participant: ParticipantId, document_type: DocumentTypeId
    ) -> list[Process]:
        try:
            answer = await self.smp.service_metadata(smp_url, participant, document_type)
        except SmpDocumentTypeNotFound:
            return []  # listed in the group but not served: nothing to offer
        processes: list[Process] = []
        for process in answer.metadata.processes:
            if process.redirect is None:
                processes.append(process)
                continue
            redirected = await self.smp.follow_redirect(
                process.redirect,
                origin=answer,
                participant=participant,
                document_type=document_type,
            )
            processes.extend(
                p
                for p in redirected.metadata.processes
                if process.process_id is None or p.process_id == process.process_id
            )
        return processes

    async def capabilities(
        self, participant: ParticipantId | PeppolParticipantId, *, at: datetime | None = None
    ) -> list[Capability]:
        """Every document type and process the participant publishes, with the transport
        profiles of the endpoints active at ``at``. Each answer is verified; a document type
        the group lists but the SMP does not serve is left out."""
        at = at or self.clock()
        peppol = _peppol(participant)
        wanted = as_smp_participant(peppol)
        smp_url = await self.sml.smp_url(peppol)
        group = await self.smp.service_group(smp_url, wanted)
        document_types = list(dict.fromkeys(group.document_types()))
        limit = asyncio.Semaphore(_CAPABILITY_CONCURRENCY)

        async def one(document_type: DocumentTypeId) -> list[Capability]:
            async with limit:
                processes = await self._processes(smp_url, wanted, document_type)
            return [
                Capability(
                    document_type,
                    p.process_id,
                    tuple(
                        dict.fromkeys(e.transport_profile for e in p.endpoints if e.is_active(at))
                    ),
                )
                for p in processes
            ]

        found = await asyncio.gather(*(one(d) for d in document_types))
        return [capability for per_type in found for capability in per_type]
