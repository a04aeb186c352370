"""The routing policy: which channel a message goes to, as a pure function of what the
registries said.

No I/O and no clock: the caller asks the registries (SML/SMP, KRR, the population and entity
registers) through their clients, turns each answer or error into a value here, and passes the
time in. Every function returns a :class:`~routing.decision.RoutingDecision` naming the rule
that chose the channel (:class:`Rule`), why, and the facts it rested on - never a national id,
name or address in clear.

**Organisations** (:func:`decide_organisation`), first match wins:

==============================  ===========  =================================================
``ORG-HOSTED``                  LOCAL        the receiver is hosted on this access point
``ORG-OVERRIDE``                AS4          the configured override directory names an
                                             endpoint; it wins over the SMP
``ORG-TRANSPORT-UNSUPPORTED``   NO_ROUTE     the endpoint found speaks no AS4 profile we speak
``ORG-SMP``                     AS4          the SMP publishes an endpoint for the document
                                             type and process
``ORG-REGISTRY-UNAVAILABLE``    WAIT         the SML or SMP could not be asked: retry
``ORG-NONE``                    NO_ROUTE     nothing registered: the message fails (FEIL)
                                             before sending, with the registry's own words
==============================  ===========  =================================================

**Persons** (:func:`decide_person`) follow DESIGN §4 and what Digdir's reference does:
``DpiMessageRouter`` of felleslosninger/efm-service-registry, and the pages "Vedtak til
innbygger" and "Informasjon til innbygger" of felleslosninger/docs (eFormidling/Funksjonalitet).

* The sender's choice (:class:`SenderChoice`) comes first: ``PRINT`` sends to print whatever
  KRR says (``PERSON-PRINT-REQUESTED``; the reference's ``print`` document type);
  ``DIGITAL_ONLY`` never prints (the reference's capability lookup with ``print=false``): where
  the rules below say print, the letter has no route (``PERSON-DIGITAL-ONLY``). Neither choice
  overrides a reservation: a reserved person never gets a *vedtak* digitally.
* KRR could not be asked: ``PERSON-KRR-UNAVAILABLE`` (WAIT).
* KRR ``status`` ``SLETTET`` / ``IKKE_REGISTRERT``: no digital post to a deleted or unknown
  person; print (``PERSON-KRR-SLETTET``, ``PERSON-KRR-IKKE-REGISTRERT``).
* *vedtak* (the reference's ``Notification.OBLIGATED``, process
  ``urn:no:difi:profile:digitalpost:vedtak:ver1.0``): reserved → print
  (``PERSON-VEDTAK-RESERVED``); not notifiable → print (``PERSON-VEDTAK-NOT-NOTIFIABLE``);
  an active mailbox → digital (``PERSON-VEDTAK-MAILBOX``); otherwise print
  (``PERSON-VEDTAK-NO-MAILBOX``; the reference offers Altinn Digital Post (DPV) or print
  there, and Budstikke has no DPV channel). "Not notifiable" is
  :attr:`routing.krr.Person.notifiable`: ``varslingsstatus`` ``KAN_VARSLES`` *and* a contact
  channel updated or verified within 18 months. ``KAN_IKKE_VARSLES`` alone is enough to print,
  as in the reference (``isNotifiable()`` reads only ``varslingsstatus``) and the docs'
  "ikke kan varsles på grunn av manglende kontaktinformasjon skal i alle tilfeller motta fysisk
  post"; the 18-month check is the register's own rule applied again to a stale answer.
* *info* (``NOT_OBLIGATED``, process ``urn:no:difi:profile:digitalpost:info:ver1.0``):
  reservation and notifiability are ignored ("reservasjon og mulighet til å varsle innbygger
  ignoreres"): an active mailbox → digital (``PERSON-INFO-MAILBOX``), otherwise print
  (``PERSON-INFO-NO-MAILBOX``). KRR gives a reserved person no mailbox, so in practice a
  reserved person's information letter is printed too.
* Print needs a postal address from the population register (as the reference's
  ``createPrintServiceRecord`` does, which skips receivers with a secret address): the register
  down → WAIT (``PERSON-POPULATION-UNAVAILABLE``); the person unknown → NO_ROUTE
  (``PERSON-PRINT-NOT-FOUND``); a protected address (``fortrolig`` / ``strengt fortrolig``) →
  NO_ROUTE, "protected address: manual handling" (``PERSON-PRINT-PROTECTED``); no address →
  NO_ROUTE (``PERSON-PRINT-NO-ADDRESS``). When the sender's entity-register entry is passed, a
  print also needs its return address (DPI ``utskrift`` requires ``retur.mottaker``; the
  reference fails without it): ``PERSON-SENDER-UNAVAILABLE`` (WAIT) or
  ``PERSON-PRINT-NO-RETURN-ADDRESS`` (NO_ROUTE).

A PRINT decision keeps the rule that sent the letter to print (``PERSON-VEDTAK-RESERVED``), so
the record answers "why print?"; the ``trail`` lists every rule that fired.

**Fallback** (:func:`decide_fallback`, DESIGN §4, beyond the reference systems): a *vedtak*
delivered to a digital mailbox is printed after all when delivery fails permanently
(``PERSON-FALLBACK-FAILED``) or when it is not opened within the configured deadline
(``PERSON-FALLBACK-UNOPENED``); Digipost's own API offers the same (``print-if-unread``).
"""

from __future__ import annotations

import enum
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from elma.errors import RedirectNotFollowed
from elma.spec import TransportProfile
from routing.decision import Channel, Fact, OrganisationRoute, PrintFallback, RoutingDecision
from routing.errors import mask_national_ids
from routing.krr import NotificationStatus, Person, PersonStatus
from sbdh.errors import (
    BusError,
    InvalidInput,
    NotFound,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from sbdh.identifiers import NationalId, ParticipantId

__all__ = [
    "AS4_TRANSPORT_PROFILES",
    "FallbackTrigger",
    "LetterKind",
    "NotRegistered",
    "PersonOptions",
    "PopulationEntry",
    "Registry",
    "Rule",
    "SenderChoice",
    "SenderEntry",
    "Unavailable",
    "decide_fallback",
    "decide_organisation",
    "decide_person",
    "needs_print_address",
    "registry_outcome",
]

#: the transport profiles this access point sends with
AS4_TRANSPORT_PROFILES: frozenset[str] = frozenset(
    {TransportProfile.PEPPOL_AS4_V2.value, TransportProfile.BDXR_AS4.value}
)


class Rule(enum.StrEnum):
    """The stable ids of the routing rules (stored in decisions: never rename one)."""

    ORG_HOSTED = "ORG-HOSTED"
    ORG_OVERRIDE = "ORG-OVERRIDE"
    ORG_SMP = "ORG-SMP"
    ORG_TRANSPORT_UNSUPPORTED = "ORG-TRANSPORT-UNSUPPORTED"
    ORG_REGISTRY_UNAVAILABLE = "ORG-REGISTRY-UNAVAILABLE"
    ORG_NONE = "ORG-NONE"

    PERSON_PRINT_REQUESTED = "PERSON-PRINT-REQUESTED"
    PERSON_KRR_UNAVAILABLE = "PERSON-KRR-UNAVAILABLE"
    PERSON_KRR_SLETTET = "PERSON-KRR-SLETTET"
    PERSON_KRR_IKKE_REGISTRERT = "PERSON-KRR-IKKE-REGISTRERT"
    PERSON_VEDTAK_RESERVED = "PERSON-VEDTAK-RESERVED"
    PERSON_VEDTAK_NOT_NOTIFIABLE = "PERSON-VEDTAK-NOT-NOTIFIABLE"
    PERSON_VEDTAK_MAILBOX = "PERSON-VEDTAK-MAILBOX"
    PERSON_VEDTAK_NO_MAILBOX = "PERSON-VEDTAK-NO-MAILBOX"
    PERSON_INFO_MAILBOX = "PERSON-INFO-MAILBOX"
    PERSON_INFO_NO_MAILBOX = "PERSON-INFO-NO-MAILBOX"
    PERSON_DIGITAL_ONLY = "PERSON-DIGITAL-ONLY"
    PERSON_POPULATION_UNAVAILABLE = "PERSON-POPULATION-UNAVAILABLE"
    PERSON_PRINT_NOT_FOUND = "PERSON-PRINT-NOT-FOUND"
    PERSON_PRINT_PROTECTED = "PERSON-PRINT-PROTECTED"
    PERSON_PRINT_NO_ADDRESS = "PERSON-PRINT-NO-ADDRESS"
    PERSON_SENDER_UNAVAILABLE = "PERSON-SENDER-UNAVAILABLE"
    PERSON_PRINT_NO_RETURN_ADDRESS = "PERSON-PRINT-NO-RETURN-ADDRESS"
    PERSON_FALLBACK_FAILED = "PERSON-FALLBACK-FAILED"
    PERSON_FALLBACK_UNOPENED = "PERSON-FALLBACK-UNOPENED"


# -- inputs --------------------------------------------------------------------------------------


class Registry(enum.StrEnum):
    """The far parties whose answers the policy weighs."""

    SML = "SML"
    SMP = "SMP"
    KRR = "KRR"
    POPULATION = "population register"
    ENTITY = "entity register"


@dataclass(frozen=True)
class NotRegistered:
    """The registry answered, and its answer gives no way on: no entry (the SML knows no SMP,
    the SMP publishes nothing for this document type and process, the population register knows
    no such person), or an answer that cannot be used (a broken or badly signed document).
    ``detail`` is the registry's or the client's own words (national ids masked)."""

    registry: Registry
    detail: str
    code: str | None = None
    rule: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", mask_national_ids(self.detail))


@dataclass(frozen=True)
class Unavailable:
    """The registry could not be asked right now (timeout, 5xx, circuit open): try later."""

    registry: Registry
    detail: str
    code: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", mask_national_ids(self.detail))


def registry_outcome(error: BusError, registry: Registry) -> NotRegistered | Unavailable:
    """What a lookup's error means for routing: transient → :class:`Unavailable`; not found, no
    route, or an unusable answer (bad input from the far party, a permanent error) →
    :class:`NotRegistered`. Anything else - a configuration error (our token refused), a
    redirect the resolver should have followed - is raised again: the policy does not guess
    about problems on our side."""
    if isinstance(error, RedirectNotFollowed):
        raise error
    if isinstance(error, TransientDeliveryError):
        return Unavailable(registry, error.message, code=error.code)
    if isinstance(error, NotFound | InvalidInput | PermanentDeliveryError):
        return NotRegistered(registry, error.message, code=error.code, rule=error.rule)
    raise error


class PopulationEntry(Protocol):
    """What print needs from the population register (:class:`routing.registers.PersonRecord`):
    whether there is an address, and whether it is protected - never the address itself."""

    @property
    def address(self) -> object | None: ...

    @property
    def address_protected(self) -> bool: ...


class SenderEntry(Protocol):
    """What print needs from the sender's entity-register entry
    (:class:`routing.registers.EntityRecord`): whether it has a return address."""

    @property
    def return_address(self) -> object | None: ...


class LetterKind(enum.StrEnum):
    """The kind of letter to a person, by the eFormidling process it is sent in."""

    #: a decision letter or other important message: reservation and notifiability count
    VEDTAK = "urn:no:difi:profile:digitalpost:vedtak:ver1.0"
    #: information: reservation does not stop digital delivery
    INFO = "urn:no:difi:profile:digitalpost:info:ver1.0"

    @property
    def short(self) -> str:
        return self.name.lower()


class SenderChoice(enum.StrEnum):
    """What the sender asked for."""

    #: follow the rules
    AUTO = "auto"
    #: paper, whatever KRR says
    PRINT = "print"
    #: never paper: where the rules say print, the letter has no route
    DIGITAL_ONLY = "digital-only"


@dataclass(frozen=True)
class PersonOptions:
    """The sender's options for a letter to a person.

    ``fallback_to_print`` (DESIGN §4; *vedtak* only, ignored with ``DIGITAL_ONLY``): print a
    digital *vedtak* that fails permanently; ``open_deadline``: also print one not opened within
    this long of being made available.
    """

    choice: SenderChoice = SenderChoice.AUTO
    fallback_to_print: bool = True
    open_deadline: timedelta | None = None

    def __post_init__(self) -> None:
        if self.open_deadline is not None and self.open_deadline <= timedelta(0):
            raise ValueError("the open deadline must be positive")

    def print_fallback(self, kind: LetterKind) -> PrintFallback | None:
        if (
            kind is not LetterKind.VEDTAK
            or not self.fallback_to_print
            or self.choice is SenderChoice.DIGITAL_ONLY
        ):
            return None
        return PrintFallback(on_failure=True, open_deadline=self.open_deadline)


class FallbackTrigger(enum.StrEnum):
    """What happened to a letter delivered to a digital mailbox."""

    #: delivery failed for good (a ``feil`` receipt, a permanent error from the provider)
    DELIVERY_FAILED = "delivery-failed"
    #: the deadline to open it has passed without an opening receipt
    NOT_OPENED = "not-opened"


# -- building decisions --------------------------------------------------------------------------


@dataclass
class _Draft:
    """A decision being made: the facts gathered and the rules fired so far."""

    receiver: str
    at: datetime
    facts: dict[str, Fact] = field(default_factory=dict)
    trail: list[str] = field(default_factory=list)

    def decide(
        self,
        channel: Channel,
        rule: Rule,
        reason: str,
        reason_nb: str,
        *,
        route: OrganisationRoute | None = None,
        fallback: PrintFallback | None = None,
    ) -> RoutingDecision:
        if not self.trail or self.trail[-1] != rule:
            self.trail.append(rule)
        return RoutingDecision(
            channel=channel,
            rule=rule.value,
            reason=reason,
            reason_nb=reason_nb,
            decided_at=self.at,
            receiver=self.receiver,
            facts=self.facts,
            trail=tuple(self.trail),
            route=route,
            fallback=fallback,
        )


def _check_time(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the decision time must be timezone-aware")


# -- organisations -------------------------------------------------------------------------------


def _route_facts(prefix: str, route: OrganisationRoute) -> dict[str, Fact]:
    facts: dict[str, Fact] = {
        f"{prefix}.endpoint": route.endpoint_url,
        f"{prefix}.certificate_subject": route.certificate_subject,
        f"{prefix}.transport_profile": route.transport_profile,
    }
    facts.update({f"{prefix}.evidence.{k}": v for k, v in route.evidence.items()})
    return facts


def _what(document_type: str | None, process: str | None) -> str:
    parts = [p for p in (document_type, process) if p]
    return " in ".join(parts) if parts else "this message"


def decide_organisation(
    receiver: ParticipantId,
    *,
    at: datetime,
    hosted_here: bool = False,
    override: OrganisationRoute | None = None,
    smp: OrganisationRoute | NotRegistered | Unavailable | None = None,
    document_type: str | None = None,
    process: str | None = None,
    transport_profiles: AbstractSet[str] = AS4_TRANSPORT_PROFILES,
) -> RoutingDecision:
    """Where a message to an organisation goes.

    ``hosted_here``: the receiver is one of this access point's organisations. ``override``: the
    configured directory's endpoint for the receiver, if any. ``smp``: what the SML/SMP lookup
    gave for ``document_type`` in ``process`` - the endpoint found
    (:meth:`OrganisationRoute.from_selected`), or the lookup's error as
    :func:`registry_outcome` translates it. It may be left out (``None``) only when the receiver
    is hosted here or overridden; otherwise that is a ``ValueError``: a route is never decided
    without asking.
    """
    _check_time(at)
    draft = _Draft(receiver.value, at)
    draft.facts["receiver.kind"] = "organisation"
    draft.facts["hosted_here"] = hosted_here
    if document_type is not None:
        draft.facts["document_type"] = document_type
    if process is not None:
        draft.facts["process"] = process
    what = _what(document_type, process)

    if hosted_here:
        return draft.decide(
            Channel.LOCAL,
            Rule.ORG_HOSTED,
            f"receiver {receiver} is hosted on this access point: delivered locally",
            f"mottakeren {receiver} er på dette aksesspunktet: leveres lokalt",
        )

    if override is not None:
        draft.facts["override"] = True
        draft.facts.update(_route_facts("override", override))
        if override.transport_profile not in transport_profiles:
            return _unsupported(draft, override, "the override directory's")
        return draft.decide(
            Channel.AS4,
            Rule.ORG_OVERRIDE,
            f"the configured override directory names {override.endpoint_url} for {receiver}; "
            "it wins over the SMP",
            f"den konfigurerte overstyringen i adressekatalogen gir {override.endpoint_url} for "
            f"{receiver}; den går foran SMP",
            route=override,
        )
    draft.facts["override"] = False

    if smp is None:
        raise ValueError(
            "an organisation that is neither hosted here nor overridden needs the SMP's answer"
        )
    if isinstance(smp, Unavailable):
        draft.facts[f"{smp.registry.name.lower()}.unavailable"] = smp.detail
        return draft.decide(
            Channel.WAIT,
            Rule.ORG_REGISTRY_UNAVAILABLE,
            f"the {smp.registry.value} could not be asked about {receiver} ({smp.detail}); "
            "routing is tried again later",
            f"{smp.registry.value} kunne ikke spørres om {receiver} ({smp.detail}); "
            "rutingen prøves igjen senere",
        )
    if isinstance(smp, NotRegistered):
        key = smp.registry.name.lower()
        draft.facts[f"{key}.found"] = False
        draft.facts[f"{key}.detail"] = smp.detail
        if smp.rule is not None:
            draft.facts[f"{key}.rule"] = smp.rule
        return draft.decide(
            Channel.NO_ROUTE,
            Rule.ORG_NONE,
            f"no route: the {smp.registry.value} has no way to deliver {what} to {receiver} "
            f"({smp.detail})",
            f"ingen rute: {smp.registry.value} gir ingen vei for {what} til {receiver} "
            f"({smp.detail})",
        )

    draft.facts["smp.found"] = True
    draft.facts.update(_route_facts("smp", smp))
    if smp.transport_profile not in transport_profiles:
        return _unsupported(draft, smp, "the SMP's")
    return draft.decide(
        Channel.AS4,
        Rule.ORG_SMP,
        f"the SMP publishes an AS4 endpoint for {what} to {receiver}: {smp.endpoint_url}",
        f"SMP oppgir et AS4-endepunkt for {what} til {receiver}: {smp.endpoint_url}",
        route=smp,
    )


def _unsupported(draft: _Draft, route: OrganisationRoute, whose: str) -> RoutingDecision:
    return draft.decide(
        Channel.NO_ROUTE,
        Rule.ORG_TRANSPORT_UNSUPPORTED,
        f"no route: {whose} endpoint {route.endpoint_url} uses transport profile "
        f"{route.transport_profile}, which this access point does not send with",
        f"ingen rute: endepunktet {route.endpoint_url} bruker transportprofilen "
        f"{route.transport_profile}, som dette aksesspunktet ikke sender med",
    )


# -- persons -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    """Where the KRR rules point, before print's own checks."""

    channel: Channel
    rule: Rule
    reason: str
    reason_nb: str


def _krr_facts(person: Person) -> dict[str, Fact]:
    return {
        "krr.status": person.status.value,
        "krr.reservation": None if person.reservation is None else person.reservation.value,
        "krr.notification": None if person.notification is None else person.notification.value,
        "krr.contact_current": person.contact is not None and person.contact.current,
        "krr.notifiable": person.notifiable,
        "krr.mailbox": person.has_mailbox,
        "krr.mailbox_provider": None if person.mailbox is None else person.mailbox.provider.value,
    }


def _why_not_notifiable(person: Person) -> tuple[str, str]:
    if person.notification is NotificationStatus.KAN_IKKE_VARSLES:
        return "KRR: varslingsstatus KAN_IKKE_VARSLES", "KRR: varslingsstatus KAN_IKKE_VARSLES"
    if person.notification is None:
        return "KRR gives no varslingsstatus", "KRR oppgir ingen varslingsstatus"
    return (
        "no contact data updated or verified in the last 18 months",
        "ingen kontaktinformasjon er oppdatert eller bekreftet de siste 18 månedene",
    )


def _provider(person: Person) -> tuple[str, str]:
    """`` (provider 984661185)`` in English and Norwegian, or nothing."""
    if person.mailbox is None:
        return "", ""
    orgnr = person.mailbox.provider
    return f" (provider {orgnr})", f" (leverandør {orgnr})"


def _krr_step(kind: LetterKind, person: Person) -> _Step:
    """The KRR rules: DESIGN §4, as efm-service-registry's ``DpiMessageRouter`` applies them."""
    if person.status is PersonStatus.SLETTET:
        return _Step(
            Channel.PRINT,
            Rule.PERSON_KRR_SLETTET,
            "KRR: the person is deleted (status SLETTET): no digital post; the letter goes to "
            "print",
            "KRR: personen er slettet (status SLETTET): ingen digital post; brevet sendes på papir",
        )
    if person.status is PersonStatus.IKKE_REGISTRERT:
        return _Step(
            Channel.PRINT,
            Rule.PERSON_KRR_IKKE_REGISTRERT,
            "KRR: the person is not registered (status IKKE_REGISTRERT): no digital post; the "
            "letter goes to print",
            "KRR: personen er ikke registrert (status IKKE_REGISTRERT): ingen digital post; "
            "brevet sendes på papir",
        )
    provider, provider_nb = _provider(person)
    if kind is LetterKind.VEDTAK:
        if person.reserved:
            return _Step(
                Channel.PRINT,
                Rule.PERSON_VEDTAK_RESERVED,
                "vedtak: the person has reserved themselves against digital communication in "
                "KRR, so the letter goes to print",
                "vedtak: personen har reservert seg mot digital kommunikasjon i KRR, så brevet "
                "sendes på papir",
            )
        if not person.notifiable:
            why, why_nb = _why_not_notifiable(person)
            return _Step(
                Channel.PRINT,
                Rule.PERSON_VEDTAK_NOT_NOTIFIABLE,
                f"vedtak: the person cannot be notified ({why}), so the letter goes to print",
                f"vedtak: personen kan ikke varsles ({why_nb}), så brevet sendes på papir",
            )
        if person.has_mailbox:
            return _Step(
                Channel.DIGITAL_MAILBOX,
                Rule.PERSON_VEDTAK_MAILBOX,
                "vedtak: the person is not reserved, can be notified and has an active digital "
                f"mailbox{provider}",
                "vedtak: personen er ikke reservert, kan varsles og har en aktiv digital "
                f"postkasse{provider_nb}",
            )
        return _Step(
            Channel.PRINT,
            Rule.PERSON_VEDTAK_NO_MAILBOX,
            "vedtak: the person has no active digital mailbox, so the letter goes to print",
            "vedtak: personen har ingen aktiv digital postkasse, så brevet sendes på papir",
        )
    if person.has_mailbox:
        return _Step(
            Channel.DIGITAL_MAILBOX,
            Rule.PERSON_INFO_MAILBOX,
            f"info: the person has an active digital mailbox{provider}; reservation does not "
            "stop digital delivery of information",
            f"informasjon: personen har en aktiv digital postkasse{provider_nb}; reservasjon "
            "hindrer ikke digital "
            "levering av informasjon",
        )
    return _Step(
        Channel.PRINT,
        Rule.PERSON_INFO_NO_MAILBOX,
        "info: the person has no active digital mailbox, so the letter goes to print",
        "informasjon: personen har ingen aktiv digital postkasse, så brevet sendes på papir",
    )


def _first_step(
    kind: LetterKind, krr: Person | Unavailable | None, options: PersonOptions
) -> _Step:
    if options.choice is SenderChoice.PRINT:
        return _Step(
            Channel.PRINT,
            Rule.PERSON_PRINT_REQUESTED,
            "the sender asked for the letter to be printed",
            "avsenderen ba om at brevet sendes på papir",
        )
    if krr is None:
        raise ValueError("a letter to a person needs KRR's answer unless the sender asks for print")
    if isinstance(krr, Unavailable):
        return _Step(
            Channel.WAIT,
            Rule.PERSON_KRR_UNAVAILABLE,
            f"KRR could not be asked ({krr.detail}); routing is tried again later",
            f"KRR kunne ikke spørres ({krr.detail}); rutingen prøves igjen senere",
        )
    return _krr_step(kind, krr)


def needs_print_address(
    kind: LetterKind, krr: Person | Unavailable | None, options: PersonOptions | None = None
) -> bool:
    """Whether :func:`decide_person` will want the population register's answer: the rules send
    the letter to print (and the sender allows print). Ask the register only then."""
    options = options or PersonOptions()
    if options.choice is SenderChoice.DIGITAL_ONLY:
        return False
    return _first_step(kind, krr, options).channel is Channel.PRINT


def _population_facts(population: PopulationEntry | NotRegistered | Unavailable) -> dict[str, Fact]:
    if isinstance(population, Unavailable):
        return {"population.unavailable": population.detail}
    if isinstance(population, NotRegistered):
        return {"population.found": False, "population.detail": population.detail}
    return {
        "population.found": True,
        "population.has_address": population.address is not None,
        "population.protected": population.address_protected,
    }


def _to_print(
    draft: _Draft,
    step: _Step,
    *,
    population: PopulationEntry | NotRegistered | Unavailable | None,
    sender: SenderEntry | NotRegistered | Unavailable | None,
) -> RoutingDecision:
    """Print's own checks, then PRINT under the rule that chose print.

    ``population`` ``None`` is allowed only for a fallback decision: the print channel looks
    the address up again when it prints, and checks protection then.
    """
    draft.trail.append(step.rule)
    if population is None:
        draft.facts["population.checked"] = False
    else:
        draft.facts.update(_population_facts(population))
        if isinstance(population, Unavailable):
            return draft.decide(
                Channel.WAIT,
                Rule.PERSON_POPULATION_UNAVAILABLE,
                f"{step.reason}; the population register could not be asked for the address "
                f"({population.detail}); routing is tried again later",
                f"{step.reason_nb}; folkeregisteret kunne ikke spørres om adressen "
                f"({population.detail}); rutingen prøves igjen senere",
            )
        if isinstance(population, NotRegistered):
            return draft.decide(
                Channel.NO_ROUTE,
                Rule.PERSON_PRINT_NOT_FOUND,
                f"no route: {step.reason}, but the population register does not know the person "
                f"({population.detail})",
                f"ingen rute: {step.reason_nb}, men folkeregisteret kjenner ikke personen "
                f"({population.detail})",
            )
        if population.address_protected:
            return draft.decide(
                Channel.NO_ROUTE,
                Rule.PERSON_PRINT_PROTECTED,
                f"protected address: manual handling ({step.reason}, but the person's address "
                "is confidential or strictly confidential in the population register: no "
                "automatic print)",
                f"beskyttet adresse: manuell behandling ({step.reason_nb}, men personen har "
                "fortrolig eller strengt fortrolig adresse i folkeregisteret: ingen automatisk "
                "utskrift)",
            )
        if population.address is None:
            return draft.decide(
                Channel.NO_ROUTE,
                Rule.PERSON_PRINT_NO_ADDRESS,
                f"no route: {step.reason}, but the population register has no postal address "
                "for the person",
                f"ingen rute: {step.reason_nb}, men folkeregisteret har ingen postadresse for "
                "personen",
            )
    if sender is not None:
        if isinstance(sender, Unavailable):
            draft.facts["sender.unavailable"] = sender.detail
            return draft.decide(
                Channel.WAIT,
                Rule.PERSON_SENDER_UNAVAILABLE,
                f"{step.reason}; the entity register could not be asked for the sender's return "
                f"address ({sender.detail}); routing is tried again later",
                f"{step.reason_nb}; Enhetsregisteret kunne ikke spørres om avsenderens "
                f"returadresse ({sender.detail}); rutingen prøves igjen senere",
            )
        has_return = not isinstance(sender, NotRegistered) and sender.return_address is not None
        draft.facts["sender.return_address"] = has_return
        if not has_return:
            return draft.decide(
                Channel.NO_ROUTE,
                Rule.PERSON_PRINT_NO_RETURN_ADDRESS,
                f"no route: {step.reason}, but the sender has no return address in the entity "
                "register, and a printed letter needs one",
                f"ingen rute: {step.reason_nb}, men avsenderen har ingen returadresse i "
                "Enhetsregisteret, og et brev på papir må ha en",
            )
    return draft.decide(Channel.PRINT, step.rule, step.reason, step.reason_nb)


def decide_person(
    receiver: NationalId,
    kind: LetterKind,
    *,
    at: datetime,
    krr: Person | Unavailable | None,
    population: PopulationEntry | NotRegistered | Unavailable | None = None,
    sender: SenderEntry | NotRegistered | Unavailable | None = None,
    options: PersonOptions | None = None,
) -> RoutingDecision:
    """Where a letter to a person goes (see the module docstring for the rules).

    ``krr``: KRR's answer about the person (:class:`~routing.krr.Person`), or
    :class:`Unavailable`; it may be ``None`` only when the sender asks for print.
    ``population``: the population register's answer (:class:`~routing.registers.PersonRecord`,
    or :class:`NotRegistered` / :class:`Unavailable`); needed whenever the letter goes to print
    (:func:`needs_print_address` says when): without it such a letter is a ``ValueError``.
    ``sender``: the sending organisation's entity-register entry; when given, print also needs
    its return address.
    """
    _check_time(at)
    options = options or PersonOptions()
    if isinstance(krr, Person) and krr.national_id != receiver:
        raise ValueError("KRR's answer is about another person")
    draft = _Draft(receiver.masked(), at)
    draft.facts.update(
        {
            "receiver.kind": "person",
            "letter.kind": kind.short,
            "sender.choice": options.choice.value,
        }
    )
    if isinstance(krr, Person):
        draft.facts.update(_krr_facts(krr))
    elif isinstance(krr, Unavailable):
        draft.facts["krr.unavailable"] = krr.detail

    step = _first_step(kind, krr, options)
    if step.channel is Channel.WAIT:
        return draft.decide(step.channel, step.rule, step.reason, step.reason_nb)
    if step.channel is Channel.DIGITAL_MAILBOX:
        fallback = options.print_fallback(kind)
        draft.facts["fallback.to_print"] = fallback is not None
        if fallback is not None and fallback.open_deadline is not None:
            draft.facts["fallback.open_deadline_seconds"] = int(
                fallback.open_deadline.total_seconds()
            )
        return draft.decide(step.channel, step.rule, step.reason, step.reason_nb, fallback=fallback)
    if options.choice is SenderChoice.DIGITAL_ONLY:
        draft.trail.append(step.rule)
        return draft.decide(
            Channel.NO_ROUTE,
            Rule.PERSON_DIGITAL_ONLY,
            f"no route: the sender asked for digital delivery only, but {step.reason}",
            f"ingen rute: avsenderen ba om kun digital levering, men {step.reason_nb}",
        )
    if population is None:
        raise ValueError(
            "this letter goes to print: ask the population register first (needs_print_address)"
        )
    return _to_print(draft, step, population=population, sender=sender)


# -- fallback to print ---------------------------------------------------------------------------


def decide_fallback(
    original: RoutingDecision,
    trigger: FallbackTrigger,
    *,
    at: datetime,
    available_since: datetime | None = None,
    population: PopulationEntry | NotRegistered | Unavailable | None = None,
    sender: SenderEntry | NotRegistered | Unavailable | None = None,
) -> RoutingDecision | None:
    """Whether a letter sent to a digital mailbox now goes to print (DESIGN §4), or ``None``.

    Only a decision that carries a :class:`~routing.decision.PrintFallback` (a *vedtak* to a
    digital mailbox, fallback not switched off) falls back. ``DELIVERY_FAILED`` prints when
    ``on_failure``; ``NOT_OPENED`` prints once ``open_deadline`` has passed at ``at``, counted
    from ``available_since`` (the delivery receipt's time) or else from the original decision.
    ``population`` and ``sender``, when given, are checked as for any print (a protected address
    is then NO_ROUTE); without them the decision is PRINT and the print channel checks the
    address when it looks it up.
    """
    _check_time(at)
    fallback = original.fallback
    if original.channel is not Channel.DIGITAL_MAILBOX or fallback is None:
        return None
    if trigger is FallbackTrigger.DELIVERY_FAILED:
        if not fallback.on_failure:
            return None
        step = _Step(
            Channel.PRINT,
            Rule.PERSON_FALLBACK_FAILED,
            "digital delivery of the vedtak failed permanently, so it goes to print instead",
            "digital levering av vedtaket feilet permanent, så det sendes på papir i stedet",
        )
    else:
        if fallback.open_deadline is None:
            return None
        start = available_since or original.decided_at
        _check_time(start)
        if at < start + fallback.open_deadline:
            return None
        days = fallback.open_deadline / timedelta(days=1)
        step = _Step(
            Channel.PRINT,
            Rule.PERSON_FALLBACK_UNOPENED,
            f"the vedtak was not opened within {days:g} days of being made available, so it "
            "goes to print as well",
            f"vedtaket ble ikke åpnet innen {days:g} dager etter at det ble tilgjengelig, så "
            "det sendes også på papir",
        )
    draft = _Draft(original.receiver, at, dict(original.facts), list(original.trail))
    draft.facts.update(
        {
            "fallback.trigger": trigger.value,
            "fallback.of": original.rule,
            "fallback.original_decided_at": original.decided_at.isoformat(),
        }
    )
    if available_since is not None:
        draft.facts["fallback.available_since"] = available_since.isoformat()
    return _to_print(draft, step, population=population, sender=sender)
