"""Where a message goes, and why.

One module per idea; pure cores beside small I/O edges:

================  ==============================================================================
``errors``        registry failures in the project's error tree (not registered, unavailable, …)
``guard``         every registry call: TTL and negative cache, single flight, retries, breaker
``sml``           the SML: participant → DNS name → U-NAPTR → SMP base URL (dnspython)
``smp_client``    the SMP over HTTP: signed service metadata fetched, verified, redirect followed
``resolver``      SML → SMP → the endpoint for a document type, process and transport profile
``krr``           the contact and reservation register's answers (pure) …
``krr_client``    … and its HTTP client (batched, optional JWS answers)
``registers``     population register (print address) and entity register (names, return address)
``decision``      the routing decision as stored with the message: channel, rule, reason, facts
``policy``        the rules: organisation → local / AS4 / no route / wait; person → mailbox / print
``jws``           compact JWS (RS256, ``x5c``) for registers that sign their answers
================  ==============================================================================

Depends on ``sbdh`` and ``elma`` only. The names below are importable from ``routing``
directly and load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # errors
    "ParticipantNotRegistered": "errors",
    "RegistryRefused": "errors",
    "RegistryResponseError": "errors",
    "RegistryUnavailable": "errors",
    # guard
    "BreakerState": "guard",
    "CircuitBreaker": "guard",
    "GuardStats": "guard",
    "RegistryCircuitOpen": "guard",
    "RegistryGuard": "guard",
    "RegistryPolicy": "guard",
    "RegistryTimeout": "guard",
    # sml
    "MemorySml": "sml",
    "NaptrRecord": "sml",
    "SML_ZONE_PRODUCTION": "sml",
    "SML_ZONE_TEST": "sml",
    "SmlClient": "sml",
    "SmlLookup": "sml",
    "participant_dns_name": "sml",
    "smp_url_from_naptr": "sml",
    # smp_client and resolver
    "SmpAnswer": "smp_client",
    "SmpClient": "smp_client",
    "SmpDocumentTypeNotFound": "smp_client",
    "SmpParticipantNotFound": "smp_client",
    "SmpSource": "smp_client",
    "Capability": "resolver",
    "ResolvedEndpoint": "resolver",
    "RouteEvidence": "resolver",
    "RouteResolver": "resolver",
    # krr
    "KRR_MAX_IDS": "krr",
    "ContactInfo": "krr",
    "ContactPoint": "krr",
    "Mailbox": "krr",
    "NotificationStatus": "krr",
    "Person": "krr",
    "PersonStatus": "krr",
    "PrintProvider": "krr",
    "Reservation": "krr",
    "build_request": "krr",
    "parse_response": "krr",
    "KrrClient": "krr_client",
    "TokenSource": "krr_client",
    # registers
    "ENTITY_POLICY": "registers",
    "POPULATION_POLICY": "registers",
    "EntityDeleted": "registers",
    "EntityNotFound": "registers",
    "EntityRecord": "registers",
    "EntityRegisterClient": "registers",
    "EntityRemoved": "registers",
    "OrganisationForm": "registers",
    "PersonNotFound": "registers",
    "PersonRecord": "registers",
    "PopulationRegisterClient": "registers",
    "PostalAddress": "registers",
    "parse_entity_record": "registers",
    "parse_person_record": "registers",
    # decision and policy
    "Channel": "decision",
    "OrganisationRoute": "decision",
    "PrintFallback": "decision",
    "RoutingDecision": "decision",
    "AS4_TRANSPORT_PROFILES": "policy",
    "FallbackTrigger": "policy",
    "LetterKind": "policy",
    "NotRegistered": "policy",
    "PersonOptions": "policy",
    "Registry": "policy",
    "Rule": "policy",
    "SenderChoice": "policy",
    "Unavailable": "policy",
    "decide_fallback": "policy",
    "decide_organisation": "policy",
    "decide_person": "policy",
    "needs_print_address": "policy",
    "registry_outcome": "policy",
}

__all__ = sorted(_EXPORTS)  # noqa: PLE0605 - the table above is the list


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'routing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"routing.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
