"""The routing decision: which channel a message goes to, the rule that chose it, and why.

A :class:`RoutingDecision` is the record :mod:`routing.policy` produces and the store keeps
beside the message, so that ops (and the sender) can answer "why did this letter go to print?"
long after the registries have changed their minds. It holds:

* ``channel`` - :class:`Channel`: ``LOCAL``, ``AS4``, ``DIGITAL_MAILBOX``, ``PRINT``,
  ``NO_ROUTE`` (the message fails before sending: FEIL, with ``reason``) or ``WAIT`` (a
  registry could not be asked: retry later, never fail);
* ``rule`` - the stable id of the rule that chose it (``ORG-SMP``, ``PERSON-VEDTAK-RESERVED``,
  ...; see :class:`routing.policy.Rule`), and ``trail``, every rule that fired on the way;
* ``reason`` / ``reason_nb`` - the answer in English and in Norwegian (bokmål);
* ``facts`` - flat, JSON-scalar facts: which registry said what (``krr.reservation``,
  ``population.protected``, ``smp.endpoint``, ...);
* ``route`` - for ``AS4``, where to send (:class:`OrganisationRoute`);
* ``fallback`` - for a ``DIGITAL_MAILBOX`` *vedtak*, when to fall back to print
  (:class:`PrintFallback`).

**No personal data in clear.** A person appears only as a masked national id (birth date and
``*****``); an address, a name or a mailbox address never enters the record - it says
``population.has_address: true``, and the print channel looks the address up again when it
prints. Every text and fact is passed through :func:`~routing.errors.mask_national_ids` when
the record is made, so an id quoted by a far party's error message is masked too.

:meth:`RoutingDecision.to_json` / :meth:`RoutingDecision.from_json` are the storage form
(``version`` 1).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from elma.select import SelectedEndpoint
from routing.errors import RegistryUnavailable, mask_national_ids
from sbdh.errors import InvalidInput, NoRoute

__all__ = [
    "DECISION_FORMAT_VERSION",
    "Channel",
    "Fact",
    "OrganisationRoute",
    "PrintFallback",
    "RoutingDecision",
]

#: the ``version`` of the JSON storage form written by :meth:`RoutingDecision.to_json`
DECISION_FORMAT_VERSION = 1

#: a fact's value: a JSON scalar
Fact = str | int | bool | None

_FACT_TYPES = (str, int, bool, type(None))


class Channel(enum.StrEnum):
    """Where a message goes (or why it goes nowhere yet)."""

    #: the receiving organisation is hosted on this access point
    LOCAL = "LOCAL"
    #: to another access point over AS4 (``RoutingDecision.route`` says where)
    AS4 = "AS4"
    #: to the person's digital mailbox (DPI ``digital``)
    DIGITAL_MAILBOX = "DIGITAL_MAILBOX"
    #: printed and posted (DPI ``utskrift``)
    PRINT = "PRINT"
    #: no way to deliver: the message fails before sending (FEIL), with the reason
    NO_ROUTE = "NO_ROUTE"
    #: a registry could not be asked: try again later; never a failure
    WAIT = "WAIT"


def _bad(message: str) -> InvalidInput:
    return InvalidInput(f"stored routing decision: {message}", rule="routing-decision-json")


def _aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True)
class OrganisationRoute:
    """An AS4 endpoint found for an organisation: from the SMP, or from the configured override
    directory.

    ``certificate_subject`` is the receiving access point's certificate subject (RFC 4514);
    ``evidence`` says where the endpoint came from (``source``, ``smp``, ``document_type``,
    ``process``, ``service_expiration``, ...), as strings. No personal data: these are
    organisations' endpoints.
    """

    endpoint_url: str
    certificate_subject: str
    transport_profile: str
    evidence: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if urlsplit(self.endpoint_url).scheme not in ("http", "https"):
            raise ValueError("an organisation route's endpoint must be an http(s) URL")
        if not self.certificate_subject:
            raise ValueError("an organisation route needs the access point's certificate subject")
        if not self.transport_profile:
            raise ValueError("an organisation route needs a transport profile")
        evidence = dict(self.evidence)
        for key, value in evidence.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError("an organisation route's evidence maps strings to strings")
        object.__setattr__(self, "evidence", MappingProxyType(evidence))

    @classmethod
    def from_selected(
        cls, selected: SelectedEndpoint, *, smp: str | None = None
    ) -> OrganisationRoute:
        """The route for an endpoint chosen by :func:`elma.select.select_endpoint`; ``smp`` is
        the SMP's URL, for the record.

        Raises :class:`~elma.errors.SmpDocumentError` when the endpoint publishes no (valid)
        certificate: AS4 cannot encrypt to it nor check its receipts.
        """
        endpoint = selected.endpoint
        subject = endpoint.x509_certificate().subject.rfc4514_string()
        evidence = {
            "source": "smp",
            "document_type": selected.document_type.uri(),
            "process": selected.process.process_id.uri()
            if selected.process.process_id is not None
            else "(any process)",
            "smp_format": selected.metadata.format.value,
        }
        if selected.metadata.participant is not None:
            evidence["participant"] = selected.metadata.participant.uri()
        if smp is not None:
            evidence["smp"] = smp
        if endpoint.service_activation is not None:
            evidence["service_activation"] = endpoint.service_activation.isoformat()
        if endpoint.service_expiration is not None:
            evidence["service_expiration"] = endpoint.service_expiration.isoformat()
        return cls(endpoint.address, subject, endpoint.transport_profile, evidence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "certificate_subject": self.certificate_subject,
            "transport_profile": self.transport_profile,
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: Any) -> OrganisationRoute:
        if not isinstance(data, Mapping):
            raise _bad("route must be an object")
        evidence = data.get("evidence", {})
        if not isinstance(evidence, Mapping):
            raise _bad("route.evidence must be an object")
        try:
            return cls(
                _text(data, "endpoint_url", "route"),
                _text(data, "certificate_subject", "route"),
                _text(data, "transport_profile", "route"),
                dict(evidence),
            )
        except ValueError as exc:
            raise _bad(f"route: {exc}") from exc


@dataclass(frozen=True)
class PrintFallback:
    """When a *vedtak* sent to a digital mailbox is printed after all (DESIGN §4, beyond the
    reference systems): on a permanent delivery failure (``on_failure``), and when it has not
    been opened within ``open_deadline`` of being made available. The digital channel must order
    an opening receipt (DPI ``aapningskvittering``) when ``open_deadline`` is set: without one,
    "not opened" cannot be told from "opened"."""

    on_failure: bool = True
    open_deadline: timedelta | None = None

    def __post_init__(self) -> None:
        if self.open_deadline is not None and self.open_deadline <= timedelta(0):
            raise ValueError("the open deadline must be positive")

    @property
    def needs_open_receipt(self) -> bool:
        return self.open_deadline is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "on_failure": self.on_failure,
            "open_deadline_seconds": None
            if self.open_deadline is None
            else int(self.open_deadline.total_seconds()),
        }

    @classmethod
    def from_dict(cls, data: Any) -> PrintFallback:
        if not isinstance(data, Mapping):
            raise _bad("fallback must be an object")
        on_failure = data.get("on_failure")
        seconds = data.get("open_deadline_seconds")
        if not isinstance(on_failure, bool):
            raise _bad("fallback.on_failure must be true or false")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
            raise _bad("fallback.open_deadline_seconds must be a whole number or null")
        try:
            return cls(on_failure, None if seconds is None else timedelta(seconds=seconds))
        except ValueError as exc:
            raise _bad(f"fallback: {exc}") from exc


def _mask_fact(value: Fact) -> Fact:
    return mask_national_ids(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class RoutingDecision:
    """Where a message goes, the rule that chose it, why, and the facts it rested on.

    Made by :mod:`routing.policy`; see the module docstring for the fields. ``receiver`` is the
    participant id of an organisation, or the *masked* national id of a person.
    """

    channel: Channel
    rule: str
    reason: str
    reason_nb: str
    decided_at: datetime
    receiver: str
    facts: Mapping[str, Fact] = field(default_factory=dict, hash=False)
    trail: tuple[str, ...] = ()
    route: OrganisationRoute | None = None
    fallback: PrintFallback | None = None

    def __post_init__(self) -> None:
        _aware("decided_at", self.decided_at)
        if not self.rule:
            raise ValueError("a routing decision names the rule that chose it")
        if not self.reason:
            raise ValueError("a routing decision says why")
        if (self.channel is Channel.AS4) != (self.route is not None):
            raise ValueError("an AS4 decision carries its route, and only an AS4 decision does")
        if self.fallback is not None and self.channel is not Channel.DIGITAL_MAILBOX:
            raise ValueError("only a digital mailbox decision carries a print fallback")
        facts: dict[str, Fact] = {}
        for key, value in self.facts.items():
            if not isinstance(key, str) or not isinstance(value, _FACT_TYPES):
                raise ValueError(f"fact {key!r} must be a JSON scalar")
            facts[key] = _mask_fact(value)
        object.__setattr__(self, "facts", MappingProxyType(facts))
        object.__setattr__(self, "reason", mask_national_ids(self.reason))
        object.__setattr__(self, "reason_nb", mask_national_ids(self.reason_nb))
        object.__setattr__(self, "receiver", mask_national_ids(self.receiver))
        trail = tuple(self.trail) or (self.rule,)
        if trail[-1] != self.rule:
            trail = (*trail, self.rule)
        object.__setattr__(self, "trail", trail)

    @property
    def fails(self) -> bool:
        """The message cannot be delivered: mark it FEIL with :attr:`reason`."""
        return self.channel is Channel.NO_ROUTE

    @property
    def waits(self) -> bool:
        """A registry could not be asked: decide again later."""
        return self.channel is Channel.WAIT

    def as_error(self) -> NoRoute | RegistryUnavailable | None:
        """The error to raise for this decision in the project's tree: :class:`NoRoute` for
        ``NO_ROUTE`` (never retried; FEIL), :class:`RegistryUnavailable` for ``WAIT``
        (retried with backoff), ``None`` for a channel to deliver to."""
        if self.channel is Channel.NO_ROUTE:
            return NoRoute(self.reason, rule=self.rule)
        if self.channel is Channel.WAIT:
            return RegistryUnavailable(self.reason, rule=self.rule)
        return None

    # -- storage ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": DECISION_FORMAT_VERSION,
            "channel": self.channel.value,
            "rule": self.rule,
            "reason": self.reason,
            "reason_nb": self.reason_nb,
            "decided_at": self.decided_at.isoformat(),
            "receiver": self.receiver,
            "facts": dict(self.facts),
            "trail": list(self.trail),
            "route": None if self.route is None else self.route.to_dict(),
            "fallback": None if self.fallback is None else self.fallback.to_dict(),
        }

    def to_json(self) -> str:
        """The storage form: compact JSON, keys in a fixed order, non-ASCII kept."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> RoutingDecision:
        """A decision from :meth:`to_dict`'s form; :class:`~sbdh.errors.InvalidInput` (rule
        ``routing-decision-json``) naming what is wrong."""
        if not isinstance(data, Mapping):
            raise _bad("must be an object")
        if data.get("version") != DECISION_FORMAT_VERSION:
            raise _bad(f"version must be {DECISION_FORMAT_VERSION}, not {data.get('version')!r}")
        try:
            channel = Channel(_text(data, "channel"))
        except ValueError:
            raise _bad(f"channel must be one of {', '.join(c.value for c in Channel)}") from None
        try:
            decided_at = datetime.fromisoformat(_text(data, "decided_at"))
        except ValueError:
            raise _bad("decided_at is not an ISO 8601 date and time") from None
        facts = data.get("facts", {})
        if not isinstance(facts, Mapping):
            raise _bad("facts must be an object")
        trail = data.get("trail", [])
        if not isinstance(trail, list) or not all(isinstance(r, str) for r in trail):
            raise _bad("trail must be a list of rule ids")
        route = data.get("route")
        fallback = data.get("fallback")
        reason_nb = data.get("reason_nb", "")
        if not isinstance(reason_nb, str):
            raise _bad("reason_nb must be a string")
        try:
            return cls(
                channel=channel,
                rule=_text(data, "rule"),
                reason=_text(data, "reason"),
                reason_nb=reason_nb,
                decided_at=decided_at,
                receiver=_text(data, "receiver"),
                facts=dict(facts),
                trail=tuple(trail),
                route=None if route is None else OrganisationRoute.from_dict(route),
                fallback=None if fallback is None else PrintFallback.from_dict(fallback),
            )
        except ValueError as exc:
            raise _bad(str(exc)) from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> RoutingDecision:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeError) as exc:
            raise _bad(f"not JSON: {exc}") from exc
        return cls.from_dict(data)


def _text(data: Mapping[str, Any], key: str, where: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        name = f"{where}.{key}" if where else key
        raise _bad(f"{name} must be a non-empty string")
    return value
