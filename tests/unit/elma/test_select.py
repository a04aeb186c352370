"""Endpoint selection: wildcards, processes, transport profiles, activation and expiration."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from elma.errors import (
    NoActiveEndpoint,
    NoMatchingDocumentType,
    NoMatchingProcess,
    NoMatchingTransportProfile,
    RedirectNotFollowed,
    SmpNoRoute,
)
from elma.model import (
    DocumentTypeId,
    Endpoint,
    ParticipantId,
    Process,
    ProcessId,
    Redirect,
    ServiceMetadata,
)
from elma.parse import parse_service_metadata
from elma.select import match_document_type, select_endpoint, wildcard_candidates
from elma.spec import SmpFormat, TransportProfile
from sbdh.errors import InvalidIdentifier, NoRoute

WILDCARD = "peppol-doctype-wildcard"
BUSDOX = "busdox-docid-qns"
INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice"
BILLING = ProcessId("cenbii-procid-ubl", "urn:peppol:bis:billing")
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def pint(customization: str, scheme: str = WILDCARD) -> DocumentTypeId:
    return DocumentTypeId(scheme, f"{INVOICE}##{customization}::2.1")


def customization(document_type: DocumentTypeId) -> str:
    parts = document_type.parts()
    assert parts is not None
    return parts.customization_id


def endpoint(
    address: str = "https://ap.example/as4",
    profile: str = TransportProfile.PEPPOL_AS4_V2,
    activation: datetime | None = None,
    expiration: datetime | None = None,
) -> Endpoint:
    return Endpoint(profile, address, b"der", activation, expiration)


def metadata(
    document_type: DocumentTypeId, *processes: Process, smp_format: SmpFormat = SmpFormat.PEPPOL
) -> ServiceMetadata:
    return ServiceMetadata(
        ParticipantId.peppol("0192:991825827"),
        document_type,
        processes or (Process(BILLING, (endpoint(),)),),
        format=smp_format,
    )


# --------------------------------------------------------------------------- document types


def test_wildcard_candidates_go_from_specific_to_general() -> None:
    candidates = wildcard_candidates(pint("urn:peppol:pint:billing-1@jp-1@acme-2"))
    assert [customization(c) for c in candidates] == [
        "urn:peppol:pint:billing-1@jp-1@acme-2",
        "urn:peppol:pint:billing-1@jp-1@acme-2*",
        "urn:peppol:pint:billing-1@jp-1*",
        "urn:peppol:pint:billing-1*",
    ]
    assert {c.scheme for c in candidates} == {WILDCARD}


def test_a_star_inside_a_customization_id_is_invalid() -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        wildcard_candidates(pint("urn:peppol:pint:*@jp-1"))
    assert caught.value.rule == "doctype-wildcard-indicator"


def test_the_most_specific_wildcard_registration_wins() -> None:
    published = [
        pint("urn:peppol:pint:billing-1*"),
        pint("urn:peppol:pint:billing-1@jp-1*"),
        pint("urn:peppol:pint:billing-1@aunz-1*"),
    ]
    wanted = pint("urn:peppol:pint:billing-1@jp-1@acme-2")
    assert match_document_type(published, wanted) == pint("urn:peppol:pint:billing-1@jp-1*")
    other = pint("urn:peppol:pint:billing-1@sg-1")
    assert match_document_type(published, other) == pint("urn:peppol:pint:billing-1*")


def test_an_exact_wildcard_registration_beats_a_star() -> None:
    published = [pint("urn:peppol:pint:billing-1*"), pint("urn:peppol:pint:billing-1@jp-1")]
    wanted = pint("urn:peppol:pint:billing-1@jp-1")
    assert match_document_type(published, wanted) == wanted


def test_a_star_registration_serves_its_own_customization() -> None:
    published = [pint("urn:peppol:pint:billing-1*")]
    assert match_document_type(published, pint("urn:peppol:pint:billing-1")) == published[0]


def test_a_more_general_document_does_not_match_a_specific_registration() -> None:
    published = [pint("urn:peppol:pint:billing-1@jp-1*")]
    with pytest.raises(NoMatchingDocumentType) as caught:
        match_document_type(published, pint("urn:peppol:pint:billing-1"))
    assert caught.value.rule == "smp-no-document-type"
    assert isinstance(caught.value, NoRoute)
    assert caught.value.http_status == 404


def test_version_and_root_must_match_for_wildcards() -> None:
    published = [DocumentTypeId(WILDCARD, f"{INVOICE}##urn:peppol:pint:billing-1*::2.2")]
    with pytest.raises(NoMatchingDocumentType):
        match_document_type(published, pint("urn:peppol:pint:billing-1@jp-1"))


def test_busdox_matches_exactly_and_never_across_schemes() -> None:
    exact = pint("urn:cen.eu:en16931:2017", scheme=BUSDOX)
    assert match_document_type([exact], exact) == exact
    with pytest.raises(NoMatchingDocumentType):
        match_document_type([pint("urn:cen.eu:en16931:2017*")], exact)
    with pytest.raises(NoMatchingDocumentType):
        match_document_type([exact], pint("urn:cen.eu:en16931:2017"))
    # busdox ids are not wildcards, even with a star
    with pytest.raises(NoMatchingDocumentType):
        match_document_type(
            [pint("urn:cen.eu:en16931*", scheme=BUSDOX)],
            pint("urn:cen.eu:en16931@x", scheme=BUSDOX),
        )


@pytest.mark.testdata
def test_the_pint_sample_serves_specialisations(smp_samples: Path) -> None:
    answer = parse_service_metadata(
        (smp_samples / "vefa_peppol-doctype-wildcard-servicemetadata-pint.xml").read_bytes()
    )
    process = ProcessId("cenbii-procid-ubl", "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0")
    for customization in (
        "urn:peppol:pint:billing-3.0@jp:peppol-1",
        "urn:peppol:pint:billing-3.0@jp:peppol-1@acme-1",
    ):
        chosen = select_endpoint(answer, document_type=pint(customization), process=process, at=NOW)
        assert chosen.endpoint.address == "https://c3.pint.playground.sandbox.peppol.eu/as4"
        assert chosen.document_type == answer.document_type
    with pytest.raises(NoMatchingDocumentType):
        select_endpoint(
            answer, document_type=pint("urn:peppol:pint:billing-3.0"), process=process, at=NOW
        )


def test_selection_uses_the_best_matching_answer() -> None:
    general = metadata(
        pint("urn:peppol:pint:billing-1*"), Process(BILLING, (endpoint("https://general/as4"),))
    )
    specific = metadata(
        pint("urn:peppol:pint:billing-1@jp-1*"), Process(BILLING, (endpoint("https://jp/as4"),))
    )
    chosen = select_endpoint(
        [general, specific],
        document_type=pint("urn:peppol:pint:billing-1@jp-1"),
        process=BILLING,
        at=NOW,
    )
    assert chosen.endpoint.address == "https://jp/as4"
    assert chosen.metadata is specific


# --------------------------------------------------------------------------- processes, profiles


def test_the_process_must_match_exactly() -> None:
    answer = metadata(pint("urn:x", BUSDOX))
    other = ProcessId("cenbii-procid-ubl", "urn:peppol:bis:BILLING")  # case matters
    with pytest.raises(NoMatchingProcess, match="urn:peppol:bis:billing") as caught:
        select_endpoint(answer, document_type=pint("urn:x", BUSDOX), process=other, at=NOW)
    assert caught.value.rule == "smp-no-process"


def test_an_smp2_entry_without_process_serves_any_process_after_exact_ones() -> None:
    answer = metadata(
        pint("urn:x", BUSDOX),
        Process(None, (endpoint("https://any/as4"),)),
        Process(BILLING, (endpoint("https://billing/as4"),)),
        smp_format=SmpFormat.SMP2,
    )
    billing = select_endpoint(answer, document_type=pint("urn:x", BUSDOX), process=BILLING, at=NOW)
    assert billing.endpoint.address == "https://billing/as4"
    other = ProcessId("cenbii-procid-ubl", "urn:other")
    assert (
        select_endpoint(
            answer, document_type=pint("urn:x", BUSDOX), process=other, at=NOW
        ).endpoint.address
        == "https://any/as4"
    )


def test_the_transport_profile_must_match() -> None:
    answer = metadata(
        pint("urn:x", BUSDOX),
        Process(BILLING, (endpoint("https://as2", TransportProfile.AS2_V1),)),
    )
    with pytest.raises(NoMatchingTransportProfile, match="busdox-transport-as2-ver1p0") as caught:
        select_endpoint(answer, document_type=pint("urn:x", BUSDOX), process=BILLING, at=NOW)
    assert caught.value.rule == "smp-no-transport-profile"
    chosen = select_endpoint(
        answer,
        document_type=pint("urn:x", BUSDOX),
        process=BILLING,
        at=NOW,
        transport_profile=TransportProfile.AS2_V1,
    )
    assert chosen.endpoint.address == "https://as2"


def test_as4_is_chosen_among_several_profiles() -> None:
    answer = metadata(
        pint("urn:x", BUSDOX),
        Process(
            BILLING,
            (
                endpoint("https://as2", TransportProfile.AS2_V2),
                endpoint("https://as4", TransportProfile.PEPPOL_AS4_V2),
            ),
        ),
    )
    chosen = select_endpoint(answer, document_type=pint("urn:x", BUSDOX), process=BILLING, at=NOW)
    assert chosen.endpoint.address == "https://as4"
    assert chosen.process.process_id == BILLING


# --------------------------------------------------------------------------- time


@pytest.mark.parametrize(
    ("activation", "expiration", "active"),
    [
        (None, None, True),
        (datetime(2025, 6, 1, 12, tzinfo=UTC), None, True),  # activated at that very moment
        (datetime(2025, 6, 1, 12, 0, 1, tzinfo=UTC), None, False),  # one second early
        (None, datetime(2025, 6, 1, 12, tzinfo=UTC), False),  # expired at that very moment
        (None, datetime(2025, 6, 1, 12, 0, 1, tzinfo=UTC), True),
        (datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC), True),
    ],
)
def test_activation_and_expiration(
    activation: datetime | None, expiration: datetime | None, active: bool
) -> None:
    assert endpoint(activation=activation, expiration=expiration).is_active(NOW) is active


def test_an_expired_endpoint_is_skipped_for_an_active_one() -> None:
    answer = metadata(
        pint("urn:x", BUSDOX),
        Process(
            BILLING,
            (
                endpoint("https://old", expiration=datetime(2025, 1, 1, tzinfo=UTC)),
                endpoint("https://new", activation=datetime(2025, 1, 1, tzinfo=UTC)),
            ),
        ),
    )
    chosen = select_endpoint(answer, document_type=pint("urn:x", BUSDOX), process=BILLING, at=NOW)
    assert chosen.endpoint.address == "https://new"
    early = datetime(2024, 6, 1, tzinfo=UTC)
    chosen = select_endpoint(answer, document_type=pint("urn:x", BUSDOX), process=BILLING, at=early)
    assert chosen.endpoint.address == "https://old"


def test_no_active_endpoint_names_the_windows() -> None:
    answer = metadata(
        pint("urn:x", BUSDOX),
        Process(BILLING, (endpoint("https://later", activation=datetime(2026, 1, 1, tzinfo=UTC)),)),
    )
    with pytest.raises(NoActiveEndpoint, match="https://later \\(active from 2026-01-01") as caught:
        select_endpoint(answer, document_type=pint("urn:x", BUSDOX), process=BILLING, at=NOW)
    assert caught.value.rule == "smp-no-active-endpoint"
    assert isinstance(caught.value, SmpNoRoute)


@pytest.mark.testdata
def test_the_elma_sample_selects_as4_within_its_window(smp_samples: Path) -> None:
    answer = parse_service_metadata(
        (smp_samples / "vefa_busdox-servicemetadata-0192-991825827_ELMA_as4.xml").read_bytes()
    )
    assert answer.document_type is not None
    process = ProcessId("cenbii-procid-ubl", "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0")
    chosen = select_endpoint(
        answer,
        document_type=answer.document_type,
        process=process,
        at=datetime(2021, 6, 1, tzinfo=UTC),
    )
    assert chosen.endpoint.address == "https://ectrade.ec.evry.com/peppol/as4"
    with pytest.raises(NoActiveEndpoint):
        select_endpoint(answer, document_type=answer.document_type, process=process, at=NOW)


# --------------------------------------------------------------------------- redirects


def test_a_redirect_must_be_followed_first() -> None:
    redirect = Redirect("https://other-smp.example/x", certificate_uid="CN=PNO000179")
    answer = ServiceMetadata(None, None, redirect=redirect)
    with pytest.raises(RedirectNotFollowed) as caught:
        select_endpoint(answer, document_type=pint("urn:x", BUSDOX), process=BILLING, at=NOW)
    assert caught.value.redirect == redirect
    assert caught.value.rule == "smp-redirect"


def test_an_smp2_process_redirect_must_be_followed_first() -> None:
    redirect = Redirect("https://other-smp.example/bdxr-smp-2/x")
    answer = metadata(
        pint("urn:x", BUSDOX), Process(BILLING, redirect=redirect), smp_format=SmpFormat.SMP2
    )
    with pytest.raises(RedirectNotFollowed) as caught:
        select_endpoint(answer, document_type=pint("urn:x", BUSDOX), process=BILLING, at=NOW)
    assert caught.value.redirect == redirect


def test_a_naive_time_is_refused() -> None:
    answer = metadata(pint("urn:x", BUSDOX))
    with pytest.raises(ValueError, match="timezone-aware"):
        select_endpoint(
            answer,
            document_type=pint("urn:x", BUSDOX),
            process=BILLING,
            at=datetime(2025, 1, 1),
        )
