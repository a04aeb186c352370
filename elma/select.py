"""Choose the endpoint to deliver to, from (verified) service metadata.

Selection goes document type → process → transport profile → time, and says which step found
nothing, each a :class:`~sbdh.errors.NoRoute`:

1. **Document type.** ``busdox-docid-qns`` matches exactly. ``peppol-doctype-wildcard`` follows
   the Peppol Policy for use of Identifiers 4.3+: the document's own id (customization id
   ``C``, a trailing ``*`` ignored) is looked for as is, then as ``C*``, then with the last
   ``@…`` part of ``C`` cut off and ``*`` added, again and again; the first one published wins,
   so the most specific registration is chosen. ``urn:peppol:pint:billing-1*`` thus serves
   ``urn:peppol:pint:billing-1@jp-1``, and ``…billing-1@jp-1*`` wins over it when both exist.
   Schemes never match across each other.
2. **Process.** Exact scheme and value; an SMP 2.0 entry without a process serves any process,
   after the exact ones.
3. **Transport profile.** Exact (``peppol-transport-as4-v2_0`` by default).
4. **Time.** The endpoint must be activated at or before ``at`` and not expired at ``at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from elma.errors import (
    NoActiveEndpoint,
    NoMatchingDocumentType,
    NoMatchingProcess,
    NoMatchingTransportProfile,
    RedirectNotFollowed,
)
from elma.model import (
    DocumentTypeId,
    Endpoint,
    Process,
    ProcessId,
    ServiceMetadata,
)
from elma.spec import (
    DOCTYPE_SCHEME_WILDCARD,
    WILDCARD_INDICATOR,
    WILDCARD_PART_SEPARATOR,
    TransportProfile,
)
from sbdh.errors import InvalidIdentifier

__all__ = ["SelectedEndpoint", "match_document_type", "select_endpoint", "wildcard_candidates"]


@dataclass(frozen=True)
class SelectedEndpoint:
    """The endpoint chosen, and the entries of the SMP answer that led to it."""

    endpoint: Endpoint
    #: the document type as the SMP published it (a wildcard id when one matched)
    document_type: DocumentTypeId
    process: Process
    metadata: ServiceMetadata


def wildcard_candidates(wanted: DocumentTypeId) -> tuple[DocumentTypeId, ...]:
    """The ids, most specific first, under which a ``peppol-doctype-wildcard`` document may be
    published. Raises :class:`~sbdh.errors.InvalidIdentifier` for a customization id with a
    ``*`` anywhere but at its end."""
    parts = wanted.parts()
    if parts is None:
        return (wanted,)
    customization = parts.customization_id.removesuffix(WILDCARD_INDICATOR)
    if WILDCARD_INDICATOR in customization:
        raise InvalidIdentifier(
            f"customization id {parts.customization_id!r} has a '*' before its end",
            rule="doctype-wildcard-indicator",
        )
    values = [customization, customization + WILDCARD_INDICATOR]
    while WILDCARD_PART_SEPARATOR in customization:
        customization = customization.rsplit(WILDCARD_PART_SEPARATOR, 1)[0]
        values.append(customization + WILDCARD_INDICATOR)
    return tuple(DocumentTypeId(wanted.scheme, parts.with_customization(v).value()) for v in values)


def match_document_type(
    published: Iterable[DocumentTypeId], wanted: DocumentTypeId
) -> DocumentTypeId:
    """The published document type ``wanted`` is delivered under (see the module notes).

    Raises :class:`NoMatchingDocumentType` when there is none.
    """
    available = set(published)
    candidates = (
        wildcard_candidates(wanted) if wanted.scheme == DOCTYPE_SCHEME_WILDCARD else (wanted,)
    )
    for candidate in candidates:
        if candidate in available:
            return candidate
    raise NoMatchingDocumentType(
        f"the receiver publishes no document type matching {wanted.uri()}",
        rule="smp-no-document-type",
    )


def _processes_for(metadata: ServiceMetadata, process: ProcessId) -> list[Process]:
    exact = [p for p in metadata.processes if p.process_id == process]
    return exact + [p for p in metadata.processes if p.process_id is None]


def _describe(endpoint: Endpoint) -> str:
    start = endpoint.service_activation.isoformat() if endpoint.service_activation else "always"
    end = endpoint.service_expiration.isoformat() if endpoint.service_expiration else "never"
    return f"{endpoint.address} (active from {start}, expires {end})"


def select_endpoint(
    metadata: ServiceMetadata | Sequence[ServiceMetadata],
    *,
    document_type: DocumentTypeId,
    process: ProcessId,
    at: datetime,
    transport_profile: str = TransportProfile.PEPPOL_AS4_V2,
) -> SelectedEndpoint:
    """The endpoint for ``document_type`` in ``process`` over ``transport_profile`` at ``at``.

    ``metadata`` is one verified answer or several (one per published document type); the one
    whose document type matches best is used. Raises :class:`NoMatchingDocumentType`,
    :class:`NoMatchingProcess`, :class:`NoMatchingTransportProfile`, :class:`NoActiveEndpoint`,
    or :class:`RedirectNotFollowed` for a redirect answer.
    """
    if at.tzinfo is None:
        raise ValueError("the selection time must be timezone-aware")
    answers = [metadata] if isinstance(metadata, ServiceMetadata) else list(metadata)
    for answer in answers:
        if answer.redirect is not None:
            raise RedirectNotFollowed(
                f"the SMP redirects to {answer.redirect.href}; fetch and verify that first",
                redirect=answer.redirect,
                rule="smp-redirect",
            )
    by_type = {a.document_type: a for a in answers if a.document_type is not None}
    matched = match_document_type(by_type, document_type)
    chosen = by_type[matched]

    processes = _processes_for(chosen, process)
    if not processes:
        published = ", ".join(str(p.process_id) for p in chosen.processes)
        raise NoMatchingProcess(
            f"{matched.uri()} is received in processes {published}, not in {process.uri()}",
            rule="smp-no-process",
        )
    for candidate in processes:
        if candidate.redirect is not None:
            raise RedirectNotFollowed(
                f"process {process.uri()} redirects to {candidate.redirect.href}; fetch and "
                "verify that first",
                redirect=candidate.redirect,
                rule="smp-redirect",
            )
    endpoints = [
        (p, e) for p in processes for e in p.endpoints if e.transport_profile == transport_profile
    ]
    if not endpoints:
        offered = sorted({e.transport_profile for p in processes for e in p.endpoints})
        raise NoMatchingTransportProfile(
            f"no endpoint for {process.uri()} speaks {transport_profile}; offered: "
            f"{', '.join(offered)}",
            rule="smp-no-transport-profile",
        )
    for chosen_process, endpoint in endpoints:
        if endpoint.is_active(at):
            return SelectedEndpoint(endpoint, matched, chosen_process, chosen)
    raise NoActiveEndpoint(
        f"no {transport_profile} endpoint is active at {at.isoformat()}: "
        + "; ".join(_describe(e) for _, e in endpoints),
        rule="smp-no-active-endpoint",
    )
