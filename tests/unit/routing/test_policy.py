"""The routing policy: every rule for its case, the sender's options, print's own checks, the
fallback to print, the record's masking and its JSON form."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from elma.errors import NoMatchingProcess, RedirectNotFollowed
from elma.model import DocumentTypeId, Endpoint, Process, ProcessId, Redirect, ServiceMetadata
from elma.model import ParticipantId as SmpParticipantId
from elma.select import SelectedEndpoint
from elma.spec import TransportProfile
from routing.decision import Channel, OrganisationRoute, PrintFallback, RoutingDecision
from routing.errors import (
    ParticipantNotRegistered,
    RegistryRefused,
    RegistryResponseError,
    RegistryUnavailable,
)
from routing.krr import (
    ContactInfo,
    ContactPoint,
    Mailbox,
    NotificationStatus,
    Person,
    PersonStatus,
    Reservation,
)
from routing.policy import (
    FallbackTrigger,
    LetterKind,
    NotRegistered,
    PersonOptions,
    Registry,
    Rule,
    SenderChoice,
    Unavailable,
    decide_fallback,
    decide_organisation,
    decide_person,
    needs_print_address,
    registry_outcome,
)
from routing.registers import (
    EntityRecord,
    PersonNotFound,
    PersonRecord,
    parse_entity_record,
    parse_person_record,
)
from sbdh.errors import InvalidInput, NoRoute, TransientDeliveryError
from sbdh.identifiers import NationalId, OrganisationNumber, ParticipantId

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NID = "02016126007"
RECEIVER = NationalId(NID)
MASKED = "020161*****"
ORG = ParticipantId("0192:974760673")
DIGIPOST = "984661185"
MAILBOX_ADDRESS = "ola.nordmann#9YDT"
EMAIL = "ola.nordmann@example.com"
STREET = "Storgata 12 H0201"
ELEVEN_DIGITS = re.compile(r"(?<!\d)\d{11}(?!\d)")
VEDTAK, INFO = LetterKind.VEDTAK, LetterKind.INFO


# -- inputs --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Provider")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


def krr_person(cert: x509.Certificate, **changes: Any) -> Person:
    """An active, notifiable person with a Digipost mailbox, changed by ``changes``."""
    person = Person(
        national_id=RECEIVER,
        status=PersonStatus.AKTIV,
        reservation=Reservation.NEI,
        notification=NotificationStatus.KAN_VARSLES,
        contact=ContactInfo(email=ContactPoint(EMAIL, NOW - timedelta(days=30), None, True)),
        mailbox=Mailbox(MAILBOX_ADDRESS, OrganisationNumber(DIGIPOST)),
        certificate=cert,
        language="nb",
    )
    return replace(person, **changes)


RESERVED: dict[str, Any] = {
    "reservation": Reservation.JA,
    "notification": NotificationStatus.KAN_IKKE_VARSLES,
    "mailbox": None,
    "certificate": None,
}
GONE: dict[str, Any] = {
    "reservation": None,
    "notification": None,
    "contact": None,
    "mailbox": None,
    "certificate": None,
}
STALE_CONTACT = ContactInfo(email=ContactPoint(EMAIL, NOW - timedelta(days=800), None, False))


def population(**changes: Any) -> PersonRecord:
    body: dict[str, Any] = {
        "personIdentifikator": NID,
        "navn": {"fornavn": "Ola", "mellomnavn": None, "etternavn": "Nordmann"},
        "postadresse": {
            "adresselinje": [STREET],
            "postnummer": "0150",
            "poststed": "OSLO",
            "landkode": "NO",
        },
    }
    body.update(changes)
    return parse_person_record(body, requested=RECEIVER)


def protected() -> PersonRecord:
    return population(postadresse=None, adressebeskyttelse="strengtFortrolig")


def sender(**changes: Any) -> EntityRecord:
    body: dict[str, Any] = {
        "organisasjonsnummer": "974760673",
        "navn": "REGISTERENHETEN I BRØNNØYSUND",
        "postadresse": {"adresse": ["Postboks 900"], "postnummer": "8910", "poststed": "X"},
    }
    body.update(changes)
    return parse_entity_record(body, today=date(2026, 5, 1))


def route(profile: str = TransportProfile.PEPPOL_AS4_V2, **evidence: str) -> OrganisationRoute:
    return OrganisationRoute(
        "https://ap.example.org/as4",
        "CN=PNO000002,O=Example AP,C=NO",
        profile,
        {"source": "smp", **evidence},
    )


OVERRIDE = OrganisationRoute(
    "https://override.example.org/as4",
    "CN=PNO000009,C=NO",
    TransportProfile.PEPPOL_AS4_V2,
    {"source": "directory"},
)


# -- persons: every rule -------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonCase:
    """KRR's answer (an active, notifiable person with a mailbox, changed by ``changes``) and
    the sender's options → the channel and the rule that chose it."""

    id: str
    kind: LetterKind
    changes: dict[str, Any]
    options: PersonOptions | None
    channel: Channel
    rule: Rule


PERSON_CASES = [
    PersonCase(
        "vedtak-reserved", VEDTAK, RESERVED, None, Channel.PRINT, Rule.PERSON_VEDTAK_RESERVED
    ),
    PersonCase(
        "vedtak-reserved-even-with-mailbox",
        VEDTAK,
        {"reservation": Reservation.JA},
        None,
        Channel.PRINT,
        Rule.PERSON_VEDTAK_RESERVED,
    ),
    PersonCase(
        "vedtak-kan-ikke-varsles-alone",
        VEDTAK,
        {"notification": NotificationStatus.KAN_IKKE_VARSLES},
        None,
        Channel.PRINT,
        Rule.PERSON_VEDTAK_NOT_NOTIFIABLE,
    ),
    PersonCase(
        "vedtak-stale-contact-data",
        VEDTAK,
        {"contact": STALE_CONTACT},
        None,
        Channel.PRINT,
        Rule.PERSON_VEDTAK_NOT_NOTIFIABLE,
    ),
    PersonCase(
        "vedtak-no-notification-status",
        VEDTAK,
        {"notification": None},
        None,
        Channel.PRINT,
        Rule.PERSON_VEDTAK_NOT_NOTIFIABLE,
    ),
    PersonCase(
        "vedtak-mailbox", VEDTAK, {}, None, Channel.DIGITAL_MAILBOX, Rule.PERSON_VEDTAK_MAILBOX
    ),
    PersonCase(
        "vedtak-no-mailbox",
        VEDTAK,
        {"mailbox": None, "certificate": None},
        None,
        Channel.PRINT,
        Rule.PERSON_VEDTAK_NO_MAILBOX,
    ),
    PersonCase(
        "vedtak-mailbox-without-certificate",
        VEDTAK,
        {"certificate": None},
        None,
        Channel.PRINT,
        Rule.PERSON_VEDTAK_NO_MAILBOX,
    ),
    PersonCase(
        "info-reserved-with-mailbox",
        INFO,
        {"reservation": Reservation.JA, "notification": NotificationStatus.KAN_IKKE_VARSLES},
        None,
        Channel.DIGITAL_MAILBOX,
        Rule.PERSON_INFO_MAILBOX,
    ),
    PersonCase(
        "info-not-notifiable-with-mailbox",
        INFO,
        {"notification": NotificationStatus.KAN_IKKE_VARSLES, "contact": None},
        None,
        Channel.DIGITAL_MAILBOX,
        Rule.PERSON_INFO_MAILBOX,
    ),
    PersonCase(
        "info-reserved-as-krr-answers",
        INFO,
        RESERVED,
        None,
        Channel.PRINT,
        Rule.PERSON_INFO_NO_MAILBOX,
    ),
    PersonCase(
        "info-no-mailbox",
        INFO,
        {"mailbox": None, "certificate": None},
        None,
        Channel.PRINT,
        Rule.PERSON_INFO_NO_MAILBOX,
    ),
    PersonCase(
        "vedtak-slettet",
        VEDTAK,
        {"status": PersonStatus.SLETTET, **GONE},
        None,
        Channel.PRINT,
        Rule.PERSON_KRR_SLETTET,
    ),
    PersonCase(
        "info-slettet-keeps-no-digital-even-with-stray-mailbox",
        INFO,
        {"status": PersonStatus.SLETTET},
        None,
        Channel.PRINT,
        Rule.PERSON_KRR_SLETTET,
    ),
    PersonCase(
        "vedtak-ikke-registrert",
        VEDTAK,
        {"status": PersonStatus.IKKE_REGISTRERT, **GONE},
        None,
        Channel.PRINT,
        Rule.PERSON_KRR_IKKE_REGISTRERT,
    ),
    PersonCase(
        "sender-forces-print-over-mailbox",
        VEDTAK,
        {},
        PersonOptions(choice=SenderChoice.PRINT),
        Channel.PRINT,
        Rule.PERSON_PRINT_REQUESTED,
    ),
    PersonCase(
        "digital-only-with-mailbox",
        VEDTAK,
        {},
        PersonOptions(choice=SenderChoice.DIGITAL_ONLY),
        Channel.DIGITAL_MAILBOX,
        Rule.PERSON_VEDTAK_MAILBOX,
    ),
    PersonCase(
        "digital-only-never-overrides-reservation",
        VEDTAK,
        RESERVED,
        PersonOptions(choice=SenderChoice.DIGITAL_ONLY),
        Channel.NO_ROUTE,
        Rule.PERSON_DIGITAL_ONLY,
    ),
    PersonCase(
        "digital-only-without-mailbox",
        INFO,
        {"mailbox": None},
        PersonOptions(choice=SenderChoice.DIGITAL_ONLY),
        Channel.NO_ROUTE,
        Rule.PERSON_DIGITAL_ONLY,
    ),
]


@pytest.mark.parametrize("case", PERSON_CASES, ids=lambda case: case.id)
def test_person_rule_fires_for_its_case(cert: x509.Certificate, case: PersonCase) -> None:
    decision = decide_person(
        RECEIVER,
        case.kind,
        at=NOW,
        krr=krr_person(cert, **case.changes),
        population=population(),
        options=case.options,
    )
    assert decision.channel is case.channel
    assert decision.rule == case.rule
    assert decision.trail[-1] == case.rule
    assert decision.receiver == MASKED
    assert decision.decided_at == NOW
    assert decision.facts["letter.kind"] == case.kind.short
    assert decision.reason
    assert decision.reason_nb


def test_print_decision_says_why_it_went_to_print(cert: x509.Certificate) -> None:
    decision = decide_person(
        RECEIVER, VEDTAK, at=NOW, krr=krr_person(cert, **RESERVED), population=population()
    )
    assert decision.channel is Channel.PRINT
    assert "reserved" in decision.reason
    assert "reservert" in decision.reason_nb
    assert decision.facts["krr.reservation"] == "JA"
    assert decision.facts["krr.mailbox"] is False
    assert decision.facts["population.has_address"] is True
    assert decision.facts["population.protected"] is False


def test_not_notifiable_reason_names_the_cause(cert: x509.Certificate) -> None:
    status = decide_person(
        RECEIVER,
        VEDTAK,
        at=NOW,
        krr=krr_person(cert, notification=NotificationStatus.KAN_IKKE_VARSLES),
        population=population(),
    )
    stale = decide_person(
        RECEIVER,
        VEDTAK,
        at=NOW,
        krr=krr_person(cert, contact=STALE_CONTACT),
        population=population(),
    )
    assert "KAN_IKKE_VARSLES" in status.reason
    assert "18 months" in stale.reason
    assert stale.facts["krr.notification"] == "KAN_VARSLES"
    assert stale.facts["krr.contact_current"] is False


def test_digital_decision_records_the_provider_not_the_mailbox(cert: x509.Certificate) -> None:
    decision = decide_person(RECEIVER, VEDTAK, at=NOW, krr=krr_person(cert))
    assert decision.channel is Channel.DIGITAL_MAILBOX
    assert decision.facts["krr.mailbox_provider"] == DIGIPOST
    assert DIGIPOST in decision.reason
    assert MAILBOX_ADDRESS not in decision.to_json()


def test_protected_address_does_not_stop_digital(cert: x509.Certificate) -> None:
    decision = decide_person(RECEIVER, VEDTAK, at=NOW, krr=krr_person(cert), population=protected())
    assert decision.channel is Channel.DIGITAL_MAILBOX


def test_digital_only_keeps_the_reason_print_was_chosen(cert: x509.Certificate) -> None:
    decision = decide_person(
        RECEIVER,
        VEDTAK,
        at=NOW,
        krr=krr_person(cert, **RESERVED),
        options=PersonOptions(choice=SenderChoice.DIGITAL_ONLY),
    )
    assert decision.fails
    assert decision.trail == (Rule.PERSON_VEDTAK_RESERVED, Rule.PERSON_DIGITAL_ONLY)
    assert "digital delivery only" in decision.reason
    assert "reserved" in decision.reason


@pytest.mark.parametrize(
    "krr",
    [None, Unavailable(Registry.KRR, "timeout")],
    ids=["krr-not-asked", "krr-down"],
)
def test_forced_print_does_not_need_krr(krr: Unavailable | None) -> None:
    decision = decide_person(
        RECEIVER,
        INFO,
        at=NOW,
        krr=krr,
        population=population(),
        options=PersonOptions(choice=SenderChoice.PRINT),
    )
    assert decision.channel is Channel.PRINT
    assert decision.rule == Rule.PERSON_PRINT_REQUESTED


def test_wait_when_krr_is_unavailable() -> None:
    decision = decide_person(
        RECEIVER, VEDTAK, at=NOW, krr=Unavailable(Registry.KRR, "HTTP 503"), population=population()
    )
    assert decision.channel is Channel.WAIT
    assert decision.rule == Rule.PERSON_KRR_UNAVAILABLE
    assert decision.waits
    assert not decision.fails
    assert decision.facts["krr.unavailable"] == "HTTP 503"
    assert isinstance(decision.as_error(), TransientDeliveryError)


# -- persons: print's own checks -----------------------------------------------------------------


@dataclass(frozen=True)
class PrintCase:
    """A *vedtak* the KRR rules send to print, and what the registers say about the address."""

    id: str
    changes: dict[str, Any]
    population: Callable[[], Any]
    sender: Callable[[], Any] | None
    channel: Channel
    rule: Rule
    trail: tuple[Rule, ...]


PRINT_CASES = [
    PrintCase(
        "protected-address",
        RESERVED,
        protected,
        None,
        Channel.NO_ROUTE,
        Rule.PERSON_PRINT_PROTECTED,
        (Rule.PERSON_VEDTAK_RESERVED, Rule.PERSON_PRINT_PROTECTED),
    ),
    PrintCase(
        "not-in-population-register",
        RESERVED,
        lambda: NotRegistered(Registry.POPULATION, "no such person", code="person-not-found"),
        None,
        Channel.NO_ROUTE,
        Rule.PERSON_PRINT_NOT_FOUND,
        (Rule.PERSON_VEDTAK_RESERVED, Rule.PERSON_PRINT_NOT_FOUND),
    ),
    PrintCase(
        "population-register-down",
        RESERVED,
        lambda: Unavailable(Registry.POPULATION, "circuit open"),
        None,
        Channel.WAIT,
        Rule.PERSON_POPULATION_UNAVAILABLE,
        (Rule.PERSON_VEDTAK_RESERVED, Rule.PERSON_POPULATION_UNAVAILABLE),
    ),
    PrintCase(
        "no-address-unprotected",
        RESERVED,
        lambda: replace(population(), address=None),
        None,
        Channel.NO_ROUTE,
        Rule.PERSON_PRINT_NO_ADDRESS,
        (Rule.PERSON_VEDTAK_RESERVED, Rule.PERSON_PRINT_NO_ADDRESS),
    ),
    PrintCase(
        "slettet-with-address",
        {"status": PersonStatus.SLETTET, **GONE},
        population,
        None,
        Channel.PRINT,
        Rule.PERSON_KRR_SLETTET,
        (Rule.PERSON_KRR_SLETTET,),
    ),
    PrintCase(
        "slettet-without-address",
        {"status": PersonStatus.SLETTET, **GONE},
        protected,
        None,
        Channel.NO_ROUTE,
        Rule.PERSON_PRINT_PROTECTED,
        (Rule.PERSON_KRR_SLETTET, Rule.PERSON_PRINT_PROTECTED),
    ),
    PrintCase(
        "ikke-registrert-not-in-population-register",
        {"status": PersonStatus.IKKE_REGISTRERT, **GONE},
        lambda: NotRegistered(Registry.POPULATION, "no such person"),
        None,
        Channel.NO_ROUTE,
        Rule.PERSON_PRINT_NOT_FOUND,
        (Rule.PERSON_KRR_IKKE_REGISTRERT, Rule.PERSON_PRINT_NOT_FOUND),
    ),
    PrintCase(
        "sender-has-return-address",
        RESERVED,
        population,
        sender,
        Channel.PRINT,
        Rule.PERSON_VEDTAK_RESERVED,
        (Rule.PERSON_VEDTAK_RESERVED,),
    ),
    PrintCase(
        "sender-without-return-address",
        RESERVED,
        population,
        lambda: sender(postadresse=None),
        Channel.NO_ROUTE,
        Rule.PERSON_PRINT_NO_RETURN_ADDRESS,
        (Rule.PERSON_VEDTAK_RESERVED, Rule.PERSON_PRINT_NO_RETURN_ADDRESS),
    ),
    PrintCase(
        "sender-not-in-entity-register",
        RESERVED,
        population,
        lambda: NotRegistered(Registry.ENTITY, "no unit"),
        Channel.NO_ROUTE,
        Rule.PERSON_PRINT_NO_RETURN_ADDRESS,
        (Rule.PERSON_VEDTAK_RESERVED, Rule.PERSON_PRINT_NO_RETURN_ADDRESS),
    ),
    PrintCase(
        "entity-register-down",
        RESERVED,
        population,
        lambda: Unavailable(Registry.ENTITY, "HTTP 502"),
        Channel.WAIT,
        Rule.PERSON_SENDER_UNAVAILABLE,
        (Rule.PERSON_VEDTAK_RESERVED, Rule.PERSON_SENDER_UNAVAILABLE),
    ),
]


def _print_decision(cert: x509.Certificate, case: PrintCase) -> RoutingDecision:
    return decide_person(
        RECEIVER,
        VEDTAK,
        at=NOW,
        krr=krr_person(cert, **case.changes),
        population=case.population(),
        sender=None if case.sender is None else case.sender(),
    )


@pytest.mark.parametrize("case", PRINT_CASES, ids=lambda case: case.id)
def test_print_needs_an_address_and_a_return_address(
    cert: x509.Certificate, case: PrintCase
) -> None:
    decision = _print_decision(cert, case)
    assert decision.channel is case.channel
    assert decision.rule == case.rule
    assert decision.trail == case.trail


def test_protected_address_means_manual_handling(cert: x509.Certificate) -> None:
    decision = decide_person(
        RECEIVER, VEDTAK, at=NOW, krr=krr_person(cert, **RESERVED), population=protected()
    )
    assert decision.reason.startswith("protected address: manual handling")
    assert decision.reason_nb.startswith("beskyttet adresse: manuell behandling")
    assert decision.facts["population.protected"] is True
    assert decision.facts["population.has_address"] is False
    error = decision.as_error()
    assert isinstance(error, NoRoute)
    assert error.rule == Rule.PERSON_PRINT_PROTECTED


def test_print_without_the_population_answer_is_refused(cert: x509.Certificate) -> None:
    with pytest.raises(ValueError, match="population register"):
        decide_person(RECEIVER, VEDTAK, at=NOW, krr=krr_person(cert, **RESERVED))


def test_a_person_without_krr_answer_is_refused() -> None:
    with pytest.raises(ValueError, match="KRR"):
        decide_person(RECEIVER, VEDTAK, at=NOW, krr=None, population=population())


def test_krr_answer_about_someone_else_is_refused(cert: x509.Certificate) -> None:
    other = krr_person(cert, national_id=NationalId("31129956715"))
    with pytest.raises(ValueError, match="another person"):
        decide_person(RECEIVER, VEDTAK, at=NOW, krr=other, population=population())


def test_naive_time_is_refused(cert: x509.Certificate) -> None:
    with pytest.raises(ValueError, match="timezone"):
        decide_person(RECEIVER, VEDTAK, at=datetime(2026, 5, 1), krr=krr_person(cert))


@pytest.mark.parametrize(
    ("kind", "changes", "options", "expected"),
    [
        pytest.param(VEDTAK, {}, None, False, id="mailbox"),
        pytest.param(VEDTAK, RESERVED, None, True, id="reserved"),
        pytest.param(INFO, {"reservation": Reservation.JA}, None, False, id="info-mailbox"),
        pytest.param(
            VEDTAK, RESERVED, PersonOptions(choice=SenderChoice.DIGITAL_ONLY), False, id="no-print"
        ),
        pytest.param(VEDTAK, {}, PersonOptions(choice=SenderChoice.PRINT), True, id="forced"),
    ],
)
def test_needs_print_address(
    cert: x509.Certificate,
    kind: LetterKind,
    changes: dict[str, Any],
    options: PersonOptions | None,
    expected: bool,
) -> None:
    assert needs_print_address(kind, krr_person(cert, **changes), options) is expected


def test_needs_print_address_agrees_with_the_decision(cert: x509.Certificate) -> None:
    for case in PERSON_CASES:
        person = krr_person(cert, **case.changes)
        wanted = needs_print_address(case.kind, person, case.options)
        assert wanted is (case.channel is Channel.PRINT), case.id


# -- organisations -------------------------------------------------------------------------------

ORG_CASES = [
    # (id, hosted, override, smp, channel, rule)
    ("hosted", True, None, None, Channel.LOCAL, Rule.ORG_HOSTED),
    ("hosted-beats-override-and-smp", True, OVERRIDE, route(), Channel.LOCAL, Rule.ORG_HOSTED),
    ("smp", False, None, route(), Channel.AS4, Rule.ORG_SMP),
    ("override-beats-smp", False, OVERRIDE, route(), Channel.AS4, Rule.ORG_OVERRIDE),
    (
        "override-needs-no-smp",
        False,
        OVERRIDE,
        Unavailable(Registry.SMP, "timeout"),
        Channel.AS4,
        Rule.ORG_OVERRIDE,
    ),
    (
        "nothing-registered",
        False,
        None,
        NotRegistered(Registry.SML, "no NAPTR record", code="participant-not-registered"),
        Channel.NO_ROUTE,
        Rule.ORG_NONE,
    ),
    (
        "smp-down",
        False,
        None,
        Unavailable(Registry.SMP, "HTTP 503"),
        Channel.WAIT,
        Rule.ORG_REGISTRY_UNAVAILABLE,
    ),
    (
        "sml-down",
        False,
        None,
        Unavailable(Registry.SML, "SERVFAIL"),
        Channel.WAIT,
        Rule.ORG_REGISTRY_UNAVAILABLE,
    ),
    (
        "as2-only",
        False,
        None,
        route(TransportProfile.AS2_V2),
        Channel.NO_ROUTE,
        Rule.ORG_TRANSPORT_UNSUPPORTED,
    ),
]


@pytest.mark.parametrize(
    ("hosted", "override", "smp", "channel", "rule"),
    [pytest.param(*case[1:], id=case[0]) for case in ORG_CASES],
)
def test_organisation_rule_fires_for_its_case(
    hosted: bool,
    override: OrganisationRoute | None,
    smp: Any,
    channel: Channel,
    rule: Rule,
) -> None:
    decision = decide_organisation(
        ORG,
        at=NOW,
        hosted_here=hosted,
        override=override,
        smp=smp,
        document_type="urn:doc",
        process="urn:proc",
    )
    assert decision.channel is channel
    assert decision.rule == rule
    assert decision.receiver == "0192:974760673"
    assert decision.facts["hosted_here"] is hosted


def test_override_wins_over_smp_and_is_the_route() -> None:
    smp = route()
    decision = decide_organisation(ORG, at=NOW, override=OVERRIDE, smp=smp)
    assert decision.route == OVERRIDE
    assert decision.facts["override"] is True
    assert decision.facts["override.endpoint"] == OVERRIDE.endpoint_url
    assert "wins over the SMP" in decision.reason


def test_smp_route_carries_its_evidence() -> None:
    decision = decide_organisation(
        ORG, at=NOW, smp=route(smp="https://smp.example.org"), document_type="urn:doc"
    )
    assert decision.route is not None
    assert decision.route.endpoint_url == "https://ap.example.org/as4"
    assert decision.facts["smp.certificate_subject"] == "CN=PNO000002,O=Example AP,C=NO"
    assert decision.facts["smp.evidence.smp"] == "https://smp.example.org"
    assert decision.facts["override"] is False


def test_no_route_fails_with_the_registry_reason() -> None:
    decision = decide_organisation(
        ORG,
        at=NOW,
        smp=registry_outcome(
            NoMatchingProcess(
                "urn:doc is received in processes A, not in B", rule="smp-no-process"
            ),
            Registry.SMP,
        ),
        document_type="urn:doc",
        process="B",
    )
    assert decision.fails
    assert decision.reason.startswith("no route:")
    assert "not in B" in decision.reason
    assert decision.facts["smp.rule"] == "smp-no-process"
    error = decision.as_error()
    assert isinstance(error, NoRoute)
    assert not error.retry


def test_unavailable_registry_waits_and_never_fails() -> None:
    decision = decide_organisation(
        ORG, at=NOW, smp=registry_outcome(RegistryUnavailable("SERVFAIL"), Registry.SML)
    )
    assert decision.waits
    assert not decision.fails
    assert decision.facts["sml.unavailable"] == "SERVFAIL"
    error = decision.as_error()
    assert isinstance(error, RegistryUnavailable)
    assert error.retry


def test_organisation_needs_the_smp_answer_when_not_hosted_or_overridden() -> None:
    with pytest.raises(ValueError, match="SMP"):
        decide_organisation(ORG, at=NOW)


# -- registry errors to outcomes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(ParticipantNotRegistered("NXDOMAIN"), NotRegistered, id="sml-nxdomain"),
        pytest.param(NoMatchingProcess("no process"), NotRegistered, id="smp-no-process"),
        pytest.param(PersonNotFound("no person"), NotRegistered, id="person-not-found"),
        pytest.param(RegistryResponseError("bad field"), NotRegistered, id="bad-answer"),
        pytest.param(InvalidInput("bad signature"), NotRegistered, id="bad-smp-document"),
        pytest.param(RegistryUnavailable("timeout"), Unavailable, id="timeout"),
    ],
)
def test_registry_outcome(error: Any, expected: type) -> None:
    assert isinstance(registry_outcome(error, Registry.SMP), expected)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(RegistryRefused("401", status=401), id="our-token"),
        pytest.param(
            RedirectNotFollowed("redirect", redirect=Redirect("https://smp2.example.org")),
            id="redirect",
        ),
    ],
)
def test_registry_outcome_does_not_guess_about_our_own_problems(error: Any) -> None:
    with pytest.raises(type(error)):
        registry_outcome(error, Registry.SMP)


def test_outcome_details_are_masked() -> None:
    outcome = registry_outcome(PersonNotFound(f"no person {NID} here"), Registry.POPULATION)
    assert NID not in outcome.detail
    assert MASKED in outcome.detail


# -- the route from an SMP answer ----------------------------------------------------------------


def test_route_from_selected_endpoint(cert: x509.Certificate) -> None:
    endpoint = Endpoint(
        TransportProfile.PEPPOL_AS4_V2,
        "https://ap.example.org/as4",
        certificate=cert.public_bytes(serialization.Encoding.DER),
        service_expiration=NOW + timedelta(days=30),
    )
    process = Process(ProcessId("cenbii-procid-ubl", "urn:proc"), endpoints=(endpoint,))
    doctype = DocumentTypeId("busdox-docid-qns", "urn:doc::Invoice##x::2.1")
    metadata = ServiceMetadata(SmpParticipantId.peppol("0192:974760673"), doctype, (process,))
    selected = SelectedEndpoint(endpoint, doctype, process, metadata)

    built = OrganisationRoute.from_selected(selected, smp="https://smp.example.org")

    assert built.endpoint_url == "https://ap.example.org/as4"
    assert built.certificate_subject == "CN=Test Provider"
    assert built.transport_profile == TransportProfile.PEPPOL_AS4_V2
    assert built.evidence["source"] == "smp"
    assert built.evidence["document_type"] == doctype.uri()
    assert built.evidence["process"] == "cenbii-procid-ubl::urn:proc"
    assert built.evidence["smp"] == "https://smp.example.org"
    assert "service_expiration" in built.evidence
    decision = decide_organisation(ORG, at=NOW, smp=built)
    assert decision.rule == Rule.ORG_SMP
    assert decision.route == built


def test_route_refuses_a_non_http_endpoint() -> None:
    with pytest.raises(ValueError, match="http"):
        OrganisationRoute("ftp://x", "CN=x", TransportProfile.PEPPOL_AS4_V2)


# -- fallback to print ---------------------------------------------------------------------------


def _digital(cert: x509.Certificate, kind: LetterKind = VEDTAK, **options: Any) -> RoutingDecision:
    decision = decide_person(
        RECEIVER, kind, at=NOW, krr=krr_person(cert), options=PersonOptions(**options)
    )
    assert decision.channel is Channel.DIGITAL_MAILBOX
    return decision


def test_vedtak_falls_back_to_print_when_delivery_fails(cert: x509.Certificate) -> None:
    original = _digital(cert)
    later = NOW + timedelta(hours=3)
    decision = decide_fallback(original, FallbackTrigger.DELIVERY_FAILED, at=later)
    assert decision is not None
    assert decision.channel is Channel.PRINT
    assert decision.rule == Rule.PERSON_FALLBACK_FAILED
    assert decision.trail == (Rule.PERSON_VEDTAK_MAILBOX, Rule.PERSON_FALLBACK_FAILED)
    assert decision.decided_at == later
    assert decision.receiver == MASKED
    assert decision.facts["fallback.of"] == Rule.PERSON_VEDTAK_MAILBOX
    assert decision.facts["fallback.trigger"] == "delivery-failed"
    assert decision.facts["population.checked"] is False
    assert "failed permanently" in decision.reason


def test_fallback_checks_the_address_when_given_one(cert: x509.Certificate) -> None:
    original = _digital(cert)
    decision = decide_fallback(
        original, FallbackTrigger.DELIVERY_FAILED, at=NOW, population=protected()
    )
    assert decision is not None
    assert decision.channel is Channel.NO_ROUTE
    assert decision.rule == Rule.PERSON_PRINT_PROTECTED
    assert decision.trail == (
        Rule.PERSON_VEDTAK_MAILBOX,
        Rule.PERSON_FALLBACK_FAILED,
        Rule.PERSON_PRINT_PROTECTED,
    )


def test_unopened_vedtak_goes_to_print_after_the_deadline(cert: x509.Certificate) -> None:
    week = timedelta(days=7)
    original = _digital(cert, open_deadline=week)
    assert original.fallback == PrintFallback(on_failure=True, open_deadline=week)
    assert original.fallback.needs_open_receipt
    assert original.facts["fallback.open_deadline_seconds"] == 7 * 86400

    early = decide_fallback(
        original, FallbackTrigger.NOT_OPENED, at=NOW + week - timedelta(seconds=1)
    )
    assert early is None
    due = decide_fallback(original, FallbackTrigger.NOT_OPENED, at=NOW + week)
    assert due is not None
    assert due.channel is Channel.PRINT
    assert due.rule == Rule.PERSON_FALLBACK_UNOPENED
    assert "7 days" in due.reason


def test_deadline_counts_from_when_the_letter_was_made_available(cert: x509.Certificate) -> None:
    original = _digital(cert, open_deadline=timedelta(days=7))
    delivered = NOW + timedelta(days=2)
    at = NOW + timedelta(days=8)
    assert (
        decide_fallback(original, FallbackTrigger.NOT_OPENED, at=at, available_since=delivered)
        is None
    )
    decision = decide_fallback(
        original, FallbackTrigger.NOT_OPENED, at=at + timedelta(days=1), available_since=delivered
    )
    assert decision is not None
    assert decision.facts["fallback.available_since"] == delivered.isoformat()


@pytest.mark.parametrize(
    ("kind", "options", "trigger"),
    [
        pytest.param(INFO, {}, FallbackTrigger.DELIVERY_FAILED, id="info-never-falls-back"),
        pytest.param(
            VEDTAK, {"fallback_to_print": False}, FallbackTrigger.DELIVERY_FAILED, id="switched-off"
        ),
        pytest.param(
            VEDTAK,
            {"choice": SenderChoice.DIGITAL_ONLY},
            FallbackTrigger.DELIVERY_FAILED,
            id="digital-only",
        ),
        pytest.param(VEDTAK, {}, FallbackTrigger.NOT_OPENED, id="no-open-deadline"),
    ],
)
def test_no_fallback(
    cert: x509.Certificate, kind: LetterKind, options: dict[str, Any], trigger: FallbackTrigger
) -> None:
    original = _digital(cert, kind, **options)
    assert decide_fallback(original, trigger, at=NOW + timedelta(days=365)) is None


def test_no_fallback_from_a_print_decision(cert: x509.Certificate) -> None:
    printed = decide_person(
        RECEIVER, VEDTAK, at=NOW, krr=krr_person(cert, **RESERVED), population=population()
    )
    assert decide_fallback(printed, FallbackTrigger.DELIVERY_FAILED, at=NOW) is None


def test_fallback_works_on_a_stored_decision(cert: x509.Certificate) -> None:
    stored = RoutingDecision.from_json(_digital(cert, open_deadline=timedelta(days=7)).to_json())
    decision = decide_fallback(stored, FallbackTrigger.NOT_OPENED, at=NOW + timedelta(days=7))
    assert decision is not None
    assert decision.rule == Rule.PERSON_FALLBACK_UNOPENED


# -- the record: masking and JSON ----------------------------------------------------------------


def _all_decisions(cert: x509.Certificate) -> list[RoutingDecision]:
    decisions = [
        decide_person(
            RECEIVER,
            case.kind,
            at=NOW,
            krr=krr_person(cert, **case.changes),
            population=population(),
            sender=sender(),
            options=case.options,
        )
        for case in PERSON_CASES
    ]
    decisions += [_print_decision(cert, case) for case in PRINT_CASES]
    decisions += [
        decide_organisation(ORG, at=NOW, hosted_here=hosted, override=override, smp=smp)
        for _, hosted, override, smp, *_ in ORG_CASES
    ]
    digital = _digital(cert, open_deadline=timedelta(days=7))
    fallback = decide_fallback(
        digital, FallbackTrigger.DELIVERY_FAILED, at=NOW, population=population()
    )
    assert fallback is not None
    return [*decisions, digital, fallback]


def test_no_national_id_name_or_address_in_the_record(cert: x509.Certificate) -> None:
    for decision in _all_decisions(cert):
        text = decision.to_json()
        assert not ELEVEN_DIGITS.search(text), text
        shown = repr(decision)
        for secret in (NID, STREET, "Storgata", "Nordmann", MAILBOX_ADDRESS, EMAIL):
            assert secret not in text, (secret, decision.rule)
            assert secret not in shown, (secret, decision.rule)


def test_ids_quoted_by_a_registry_are_masked(cert: x509.Certificate) -> None:
    decision = decide_person(
        RECEIVER,
        VEDTAK,
        at=NOW,
        krr=krr_person(cert, **RESERVED),
        population=NotRegistered(Registry.POPULATION, f"person {NID} not found"),
    )
    text = decision.to_json()
    assert NID not in text
    assert MASKED in decision.reason


def test_a_record_made_by_hand_is_masked_too() -> None:
    decision = RoutingDecision(
        Channel.NO_ROUTE,
        "X",
        f"about {NID}",
        f"om {NID}",
        NOW,
        NID,
        facts={"who": NID, "count": 3, "flag": True, "none": None},
    )
    assert NID not in decision.to_json()
    assert decision.receiver == MASKED
    assert decision.facts["who"] == MASKED
    assert decision.facts["count"] == 3


def test_json_round_trip(cert: x509.Certificate) -> None:
    for decision in _all_decisions(cert):
        text = decision.to_json()
        again = RoutingDecision.from_json(text)
        assert again == decision
        assert again.to_json() == text
        assert json.loads(text)["version"] == 1


def test_json_form() -> None:
    decision = decide_organisation(ORG, at=NOW, smp=route())
    data = json.loads(decision.to_json())
    assert data["channel"] == "AS4"
    assert data["rule"] == "ORG-SMP"
    assert data["decided_at"] == "2026-05-01T12:00:00+00:00"
    assert data["route"]["endpoint_url"] == "https://ap.example.org/as4"
    assert data["trail"] == ["ORG-SMP"]
    assert data["fallback"] is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(lambda d: d.update(version=2), "version", id="version"),
        pytest.param(lambda d: d.update(channel="FAX"), "channel", id="channel"),
        pytest.param(lambda d: d.update(decided_at="yesterday"), "decided_at", id="time"),
        pytest.param(lambda d: d.update(decided_at="2026-05-01T12:00:00"), "timezone", id="naive"),
        pytest.param(lambda d: d.update(rule=""), "rule", id="rule"),
        pytest.param(lambda d: d["facts"].update(x=[1]), "scalar", id="fact"),
        pytest.param(lambda d: d.update(route=None), "route", id="as4-without-route"),
    ],
)
def test_bad_stored_decision(mutate: Callable[[dict[str, Any]], None], message: str) -> None:
    data = decide_organisation(ORG, at=NOW, smp=route()).to_dict()
    mutate(data)
    with pytest.raises(InvalidInput, match=message):
        RoutingDecision.from_json(json.dumps(data))


def test_not_json() -> None:
    with pytest.raises(InvalidInput, match="not JSON"):
        RoutingDecision.from_json(b"{")


def test_decision_invariants() -> None:
    with pytest.raises(ValueError, match="route"):
        RoutingDecision(Channel.AS4, "X", "why", "hvorfor", NOW, "0192:974760673")
    with pytest.raises(ValueError, match="fallback"):
        RoutingDecision(Channel.PRINT, "X", "why", "hvorfor", NOW, MASKED, fallback=PrintFallback())
    with pytest.raises(ValueError, match="timezone"):
        RoutingDecision(Channel.PRINT, "X", "why", "hvorfor", datetime(2026, 1, 1), MASKED)


def test_decision_is_frozen_and_hashable(cert: x509.Certificate) -> None:
    decision = _digital(cert)
    with pytest.raises(AttributeError):
        decision.channel = Channel.PRINT  # type: ignore[misc]
    with pytest.raises(TypeError):
        decision.facts["krr.mailbox"] = False  # type: ignore[index]
    assert {decision, RoutingDecision.from_json(decision.to_json())} == {decision}
