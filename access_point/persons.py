"""Where a letter to a person goes: KRR, then (for print) the population register, then the
rules of :func:`routing.decide_person`; the decision is stored with the message.

This version decides and records; the digital-mailbox and print channels that carry the letter
come later. A letter decided for one of them therefore ends ``FEIL`` with a reason that says
which channel was chosen, by which rule, and that the channel is not available yet - never
silently. A register that cannot be asked makes the message wait (the job is retried), and
no route (protected address, unknown person) fails it with the reason.

KRR answers go through a :class:`routing.RegistryGuard` (batched lookups, a cache of minutes,
not-registered remembered briefly, a circuit breaker), and the population register likewise;
national ids never appear in clear in logs or in the stored decision.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from routing.decision import Channel, RoutingDecision
from routing.guard import RegistryGuard, RegistryPolicy
from routing.krr import Person
from routing.krr_client import KrrClient
from routing.policy import (
    LetterKind,
    NotRegistered,
    Registry,
    Unavailable,
    decide_person,
    needs_print_address,
    registry_outcome,
)
from routing.registers import PersonRecord, PopulationRegisterClient
from sbdh.errors import BusError, InvalidIdentifier, PermanentDeliveryError
from sbdh.identifiers import NationalId

__all__ = ["PersonRoutes", "national_id_of", "undeliverable"]

#: KRR: reservations change; five minutes of cache, an unknown person asked again after one
KRR_POLICY = RegistryPolicy(name="krr", ttl=300.0, negative_ttl=60.0, timeout=10.0, retries=2)
POPULATION_POLICY = RegistryPolicy(
    name="population", ttl=900.0, negative_ttl=300.0, timeout=10.0, retries=2
)


def national_id_of(receiver: str) -> NationalId | None:
    """The national id (fødselsnummer or D-number) a receiver value names, or None for an
    organisation (whose numbers have nine digits)."""
    value = receiver.split(":", 1)[1] if ":" in receiver else receiver
    if len(value) != 11 or not value.isdigit():
        return None
    try:
        return NationalId(value)
    except InvalidIdentifier:
        return None


def _now() -> datetime:
    return datetime.now(UTC)


class PersonRoutes:
    """KRR and the population register, guarded, and the person rules."""

    def __init__(
        self,
        krr: KrrClient | None,
        population: PopulationRegisterClient | None = None,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.krr = krr
        self.population = population
        self.clock = clock
        self.krr_guard: RegistryGuard[NationalId, Any] = RegistryGuard(KRR_POLICY)
        self.population_guard: RegistryGuard[NationalId, Any] = RegistryGuard(POPULATION_POLICY)

    async def close(self) -> None:
        for client in (self.krr, self.population):
            if client is not None:
                await client.close()

    async def decide(self, national_id: NationalId, process: str) -> RoutingDecision:
        """The decision for a letter to ``national_id`` sent in ``process``."""
        at = self.clock()
        kind = LetterKind.VEDTAK if process == LetterKind.VEDTAK.value else LetterKind.INFO
        krr = await self._krr(national_id)
        population: PersonRecord | NotRegistered | Unavailable | None = None
        if needs_print_address(kind, krr):
            population = await self._population(national_id)
        return decide_person(national_id, kind, at=at, krr=krr, population=population)

    async def _krr(self, national_id: NationalId) -> Person | Unavailable:
        if self.krr is None:
            return Unavailable(Registry.KRR, "no contact and reservation register is configured")
        krr = self.krr
        try:
            found = await self.krr_guard.lookup_many([national_id], krr.lookup)
        except BusError as exc:
            outcome = registry_outcome(exc, Registry.KRR)
            if isinstance(outcome, Unavailable):
                return outcome
            raise
        answer = found.get(national_id)
        if isinstance(answer, Person):
            return answer
        # KRR answers every id it is asked (IKKE_REGISTRERT at worst): a gap is its fault
        return Unavailable(Registry.KRR, "the register left the person out of its answer")

    async def _population(
        self, national_id: NationalId
    ) -> PersonRecord | NotRegistered | Unavailable:
        if self.population is None:
            return Unavailable(Registry.POPULATION, "no population register is configured")
        population = self.population
        try:
            record: PersonRecord = await self.population_guard.lookup(
                national_id, population.lookup
            )
        except BusError as exc:  # not found included: NotFound is a BusError
            return registry_outcome(exc, Registry.POPULATION)
        return record


def undeliverable(decision: RoutingDecision) -> BusError:
    """The error a decided letter ends with while its channel is not part of this version."""
    failure = decision.as_error()
    if failure is not None:
        return failure
    channel = {Channel.DIGITAL_MAILBOX: "digital mailbox", Channel.PRINT: "print"}.get(
        decision.channel, decision.channel.value
    )
    return PermanentDeliveryError(
        f"routed to {channel} by rule {decision.rule} ({decision.reason}); the {channel} "
        "channel is not available in this version of Budstikke",
        rule=decision.rule,
    )
