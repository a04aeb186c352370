"""``budstikke lookup ID``: where Budstikke would send a message to ``ID``, without sending.

``ID`` is an organisation (``0192:<orgnr>`` or a bare nine-digit organisation number) or a
person (an eleven-digit national id). The settings are read as ``budstikke serve`` reads them
(:func:`~access_point.settings.load_settings`), and the route is decided by the code the send
job uses: an organisation hosted here (``BUDSTIKKE_ORGANISATIONS``) is delivered locally,
otherwise :meth:`NetworkRoutes.route <access_point.routes.NetworkRoutes.route>` asks the
override directory, then the SML and SMP; a person goes through
:meth:`PersonRoutes.decide <access_point.persons.PersonRoutes.decide>` (KRR, then the population
register when the letter would be printed).

The decision is printed whatever it is: channel, endpoint, the receiving access point's
certificate subject, the rule, the reason and what the registries answered (the decision's
facts and the route's evidence); ``--json`` prints one JSON object instead. Exit status: 0 for
a route, 2 for ``NO_ROUTE``, 3 for ``WAIT`` (a registry could not be asked).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from access_point.app import load_ap_trust, load_directory, load_people, load_routes
from access_point.persons import national_id_of
from access_point.routes import NetworkRoutes, Route, decision_of
from access_point.settings import Settings, load_settings
from routing.decision import Channel, RoutingDecision
from routing.policy import decide_organisation
from sbdh.errors import BusError, NoRoute
from sbdh.identifiers import NationalId, ParticipantId

__all__ = [
    "ORG_DOCUMENT_TYPE",
    "ORG_PROCESS",
    "PERSON_PROCESS",
    "exit_status",
    "lookup",
    "register",
    "summary",
]

#: the defaults for an organisation: arkivmelding in the administrasjon process
ORG_PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
ORG_DOCUMENT_TYPE = "urn:no:difi:arkivmelding:xsd::arkivmelding"
#: the default for a person: a vedtak (digital post)
PERSON_PROCESS = "urn:no:difi:profile:digitalpost:vedtak:ver1.0"

_STATUS = {Channel.NO_ROUTE: 2, Channel.WAIT: 3}


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "lookup",
        help="print the route a message to a participant or person would take (sends nothing)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("id", help="0192:<orgnr>, a 9-digit orgnr, or an 11-digit national id")
    parser.add_argument("--process", help="the process (default: by the kind of receiver)")
    parser.add_argument(
        "--document-type", help="the document type (organisations; default: arkivmelding)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    decision = asyncio.run(lookup(settings, args.id, args.process, args.document_type))
    if args.json:
        json.dump(summary(decision), sys.stdout, indent=2, sort_keys=False, default=str)
        sys.stdout.write("\n")
    else:
        show(decision, sys.stdout)
    return exit_status(decision)


def exit_status(decision: RoutingDecision) -> int:
    return _STATUS.get(decision.channel, 0)


def _participant(value: str) -> ParticipantId:
    text = value.strip()
    if text.isdigit() and len(text) == 9:
        text = f"0192:{text}"
    return ParticipantId(text)


def _hosted(settings: Settings, participant: ParticipantId) -> bool:
    number = participant.value.rsplit(":", 1)[-1]
    return any(org.value == number for org in settings.organisations)


async def lookup(
    settings: Settings,
    receiver: str,
    process: str | None = None,
    document_type: str | None = None,
) -> RoutingDecision:
    """The decision for a message to ``receiver`` (never sent): the send job's code, asked."""
    person = national_id_of(receiver)
    if person is not None:
        return await _person(settings, person, process or PERSON_PROCESS)
    return await _organisation(
        settings, _participant(receiver), process or ORG_PROCESS, document_type or ORG_DOCUMENT_TYPE
    )


async def _person(settings: Settings, person: NationalId, process: str) -> RoutingDecision:
    people = load_people(settings)
    if people is None or people.krr is None:
        raise NoRoute(
            "letters to persons need the contact and reservation register "
            "(BUDSTIKKE_KRR_URL): no route",
            rule="PERSON-NO-KRR",
        )
    try:
        return await people.decide(person, process)
    finally:
        await people.close()


async def _organisation(
    settings: Settings, participant: ParticipantId, process: str, document_type: str
) -> RoutingDecision:
    if _hosted(settings, participant):
        return decide_organisation(
            participant,
            at=datetime.now(UTC),
            hosted_here=True,
            document_type=document_type,
            process=process,
        )
    directory = load_directory(settings)
    routes: NetworkRoutes = (
        load_routes(settings, directory, load_ap_trust(settings))
        if settings.discovers
        else NetworkRoutes(directory)
    )
    try:
        route: Route = await routes.route(participant.value, document_type, process)
    except BusError as exc:
        failed: RoutingDecision | None = decision_of(exc)
        if failed is None:
            raise
        return failed
    finally:
        await routes.close()
    decision: RoutingDecision = route.decision
    return decision


def _registries(decision: RoutingDecision) -> dict[str, Any]:
    """What the registries said: the decision's facts, and the route's evidence (the SMP
    lookup's own record decoded from its JSON text)."""
    out: dict[str, Any] = dict(decision.facts)
    if decision.route is not None:
        evidence: dict[str, Any] = dict(decision.route.evidence)
        text = evidence.get("lookup")
        if isinstance(text, str):
            with contextlib.suppress(ValueError):
                evidence["lookup"] = json.loads(text)
        out["route"] = {"transport_profile": decision.route.transport_profile, **evidence}
    return out


def summary(decision: RoutingDecision) -> dict[str, Any]:
    """The ``--json`` form: channel, endpoint, certificate, rule, reason, registries."""
    route = decision.route
    return {
        "receiver": decision.receiver,
        "channel": decision.channel.value,
        "endpoint": route.endpoint_url if route is not None else None,
        "certificate": route.certificate_subject if route is not None else None,
        "rule": decision.rule,
        "reason": decision.reason,
        "trail": list(decision.trail),
        "registries": _registries(decision),
        "decided_at": decision.decided_at.isoformat(),
    }


def show(decision: RoutingDecision, out: TextIO) -> None:
    """The human form: one ``label: value`` line each, then the registry answers."""
    data = summary(decision)
    rows = [
        ("receiver", data["receiver"]),
        ("channel", data["channel"]),
        ("endpoint", data["endpoint"] or "-"),
        ("certificate", data["certificate"] or "-"),
        ("rule", data["rule"]),
        ("trail", " → ".join(data["trail"]) or "-"),
        ("reason", data["reason"]),
        ("decided at", data["decided_at"]),
    ]
    for label, value in rows:
        out.write(f"{label + ':':<13}{value}\n")
    out.write("registries:\n")
    for key, value in sorted(data["registries"].items()):
        if isinstance(value, dict):
            out.write(f"  {key}:\n")
            for inner, item in value.items():
                text = item if isinstance(item, str) else json.dumps(item, default=str)
                out.write(f"    {inner}: {text}\n")
        else:
            out.write(f"  {key}: {json.dumps(value)}\n")
