"""Where an outgoing message to an organisation goes: the composition of the routing pieces.

The configured directory (``BUDSTIKKE_AS4_DIRECTORY``) is an override and wins; otherwise the
SML gives the receiver's SMP and the SMP, its signature verified, the endpoint for the
message's document type and process (:class:`routing.RouteResolver`), every registry call
through a :class:`routing.RegistryGuard` (cache, negative cache, retries, circuit breaker).
:func:`routing.decide_organisation` turns what they said into the decision stored with the
message, so ops can answer "why did this go there?": the endpoint chosen, or why there is none
(``NO_ROUTE``: the message fails, FEIL, never silently), or that a registry could not be asked
(``WAIT``: a transient error, the job is retried and the message waits).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from access_point.directory import Directory, Endpoint
from elma.model import DocumentTypeId, ProcessId
from elma.spec import DOCTYPE_SCHEME_BUSDOX, PROCESS_SCHEME_PEPPOL
from routing import (
    Capability,
    OrganisationRoute,
    Registry,
    RegistryGuard,
    RegistryPolicy,
    ResolvedEndpoint,
    RouteResolver,
    RoutingDecision,
    decide_organisation,
    registry_outcome,
)
from sbdh.errors import BusError, NoRoute
from sbdh.identifiers import ParticipantId

__all__ = ["FixedSmp", "NetworkRoutes", "Route", "decision_of"]

log = logging.getLogger(__name__)

#: SMP answers: a day's cache, "not registered" for five minutes, three tries, a breaker
SMP_POLICY = RegistryPolicy(name="smp", ttl=3600.0, negative_ttl=300.0, timeout=15.0, retries=2)


@dataclass(frozen=True)
class Route:
    """An endpoint to send to, and the decision that chose it."""

    endpoint: Endpoint
    decision: RoutingDecision


def _now() -> datetime:
    return datetime.now(UTC)


class NetworkRoutes:
    """The override directory, then SML → SMP; every answer is a :class:`RoutingDecision`."""

    def __init__(
        self,
        directory: Directory,
        resolver: RouteResolver | None = None,
        *,
        guard: RegistryGuard[Any, Any] | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.directory = directory
        self.resolver = resolver
        self.guard: RegistryGuard[Any, Any] = guard or RegistryGuard(SMP_POLICY)
        self.clock = clock

    @property
    def discovers(self) -> bool:
        """Whether receivers not in the directory are looked up in the SML and SMP."""
        return self.resolver is not None

    def knows(self, participant: str) -> bool:
        """Cheap, without asking a registry: in the directory, or discoverable at all."""
        return self.directory.lookup(participant) is not None or self.discovers

    async def route(self, participant: str, document_type: str, process: str) -> Route:
        """The endpoint for a message to ``participant``; :class:`~sbdh.errors.NoRoute` (with
        the decision's reason and rule) when there is none, a transient error while a registry
        cannot be asked. Either way the decision is on the error (``decision`` attribute)."""
        at = self.clock()
        receiver = ParticipantId(participant)
        override = self.directory.lookup(participant)
        if override is not None:
            decision = decide_organisation(
                receiver,
                at=at,
                override=OrganisationRoute(
                    override.url,
                    override.certificate.subject.rfc4514_string(),
                    "peppol-transport-as4-v2_0",
                    {"source": "directory", "participant": override.participant},
                ),
                document_type=document_type,
                process=process,
            )
            return Route(override, decision)
        if self.resolver is None:
            error = NoRoute(
                f"receiver {participant} is not served here, not in the AS4 directory, and no "
                "SML/SMP lookup is configured",
                rule="ORG-NONE",
            )
            decision = decide_organisation(
                receiver,
                at=at,
                smp=registry_outcome(error, Registry.SMP),
                document_type=document_type,
                process=process,
            )
            raise _with_decision(NoRoute(decision.reason, rule=decision.rule), decision)
        resolver = self.resolver
        try:
            resolved: ResolvedEndpoint = await self.guard.lookup(
                (participant.lower(), document_type, process),
                lambda _key: resolver.resolve(
                    receiver, _doctype(document_type), _process(process), at=at
                ),
            )
        except BusError as exc:
            decision = decide_organisation(
                receiver,
                at=at,
                smp=registry_outcome(exc, Registry.SMP),
                document_type=document_type,
                process=process,
            )
            failure = decision.as_error()
            raise _with_decision(failure or exc, decision) from exc
        evidence = resolved.evidence.as_json()
        decision = decide_organisation(
            receiver,
            at=at,
            smp=OrganisationRoute(
                resolved.endpoint_url,
                resolved.certificate.subject.rfc4514_string(),
                resolved.transport_profile,
                {
                    "source": "smp",
                    "smp": resolved.smp_url,
                    "smp_signer": resolved.smp_signer,
                    "lookup": json.dumps(evidence, sort_keys=True, default=str),
                },
            ),
            document_type=document_type,
            process=process,
        )
        failure = decision.as_error()
        if failure is not None:
            raise _with_decision(failure, decision)
        endpoint = Endpoint(
            participant,
            resolved.endpoint_url,
            resolved.certificate,
            organisation_certificate=self.directory.organisation_certificate(participant),
        )
        return Route(endpoint, decision)

    async def close(self) -> None:
        close = getattr(self.resolver.smp if self.resolver is not None else None, "close", None)
        if close is not None:
            await close()

    async def capabilities(self, participant: str) -> list[Capability]:
        """What the SMP says ``participant`` receives (empty without SML/SMP lookup)."""
        if self.resolver is None:
            return []
        found: list[Capability] = await self.resolver.capabilities(
            ParticipantId(participant), at=self.clock()
        )
        return found


def _doctype(value: str) -> DocumentTypeId:
    """A message's document type as the SMP keys it: an explicit ``scheme::`` prefix kept,
    otherwise the Peppol scheme (``busdox-docid-qns``), which eFormidling's SMP entries use too."""
    if value.startswith(DOCTYPE_SCHEME_BUSDOX + "::") or value.startswith("peppol-doctype-"):
        return DocumentTypeId.from_uri(value)
    return DocumentTypeId(DOCTYPE_SCHEME_BUSDOX, value)


def _process(value: str) -> ProcessId:
    if value.startswith(PROCESS_SCHEME_PEPPOL + "::"):
        return ProcessId.from_uri(value)
    return ProcessId(PROCESS_SCHEME_PEPPOL, value)


class FixedSmp:
    """The SML's part when one SMP serves every receiver (``BUDSTIKKE_SMP_URL``): the same base
    URL for all; whether a participant is registered is the SMP's answer (404: not)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def __repr__(self) -> str:
        return f"FixedSmp({self.url!r})"

    async def smp_url(self, participant: Any) -> str:
        return self.url


def _with_decision(error: BusError, decision: RoutingDecision) -> BusError:
    error.decision = decision  # type: ignore[attr-defined]
    return error


def decision_of(error: BaseException) -> RoutingDecision | None:
    """The routing decision an error from :meth:`NetworkRoutes.route` carries, if any."""
    decision = getattr(error, "decision", None)
    return decision if isinstance(decision, RoutingDecision) else None
