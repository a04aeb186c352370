"""Route resolution end to end over real sockets: the SML stand-in (DNS on loopback) -> the ELMA
server -> SmpClient / RouteResolver. Found, not found at each step, tampered and replayed
answers, redirects, an SMP that is down, slow or refusing, expired endpoints, wildcards, and
the capabilities of a participant."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from adapters.standins.dns import SmlStandin
from elma import (
    DocumentTypeId,
    NoActiveEndpoint,
    NoMatchingProcess,
    NoMatchingTransportProfile,
    ParticipantId,
    ProcessId,
    SmpFormat,
    parse_service_metadata,
    sign_service_metadata,
)
from elma.loopback import LoopbackHttpServer
from elma.registry import MemoryRegistry
from elma.server import ElmaServer
from routing.errors import (
    ParticipantNotRegistered,
    RegistryRefused,
    RegistryResponseError,
    RegistryUnavailable,
)
from routing.resolver import Capability, ResolvedEndpoint, RouteResolver
from routing.sml import SML_ZONE_TEST, SmlClient, participant_dns_name
from routing.smp_client import SmpClient, SmpDocumentTypeNotFound, SmpParticipantNotFound
from sbdh.errors import InvalidIdentifier, NoRoute, TransientDeliveryError
from sbdh.identifiers import ParticipantId as PeppolParticipantId
from sbdh.pki import Credential, DevPki, generate_root_ca, issue_end_entity
from sbdh.trust import TrustStore
from tests.e2e.smp_network import (
    AP_URL,
    AS4,
    BILLING,
    CREDIT_NOTE,
    INVOICE,
    ORG,
    OTHER,
    admin,
    redirect_registration,
    registration,
)

PEPPOL_ORG = PeppolParticipantId(ORG)
AP_B_URL = "https://ap-b.example.no/as4"


@pytest.fixture(scope="module")
def smp_signer(dev_pki: DevPki, now: datetime) -> Credential:
    return issue_end_entity(dev_pki.ap_ca, "PNO000900", now=now, organisation="Test SMP")


@pytest.fixture(scope="module")
def other_smp_signer(dev_pki: DevPki, now: datetime) -> Credential:
    return issue_end_entity(dev_pki.ap_ca, "PNO000901", now=now, organisation="Other SMP")


@pytest.fixture(scope="module")
def smp_trust(dev_pki: DevPki) -> TrustStore:
    return TrustStore((dev_pki.ap_ca.certificate,))


@pytest.fixture(scope="module")
def ap(dev_pki: DevPki) -> Credential:
    return dev_pki.access_points["PNO000001"]


@pytest.fixture
async def sml() -> AsyncIterator[SmlStandin]:
    async with SmlStandin(zone=SML_ZONE_TEST) as server:
        yield server


@pytest.fixture
async def elma(sml: SmlStandin, smp_signer: Credential) -> AsyncIterator[ElmaServer]:
    async with ElmaServer(
        MemoryRegistry(), smp_signer, admin_token="elma-admin-token", sml=sml
    ) as s:
        yield s


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


Make = Callable[..., Awaitable[RouteResolver]]


@pytest.fixture
async def make_resolver(sml: SmlStandin, smp_trust: TrustStore) -> AsyncIterator[Make]:
    clients: list[SmpClient] = []

    async def make(
        *,
        smp_format: SmpFormat = SmpFormat.PEPPOL,
        timeout: float = 3.0,
        max_response_bytes: int = 4 * 1024 * 1024,
        ap_trust: TrustStore | None = None,
    ) -> RouteResolver:
        lookup = SmlClient(zone=SML_ZONE_TEST, nameserver=sml.address, allow_http=True, timeout=2)
        client = SmpClient(
            smp_trust,
            smp_format=smp_format,
            timeout=timeout,
            max_response_bytes=max_response_bytes,
            allow_http=True,
        )
        clients.append(client)
        return RouteResolver(lookup, client, ap_trust=ap_trust)

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def resolver(make_resolver: Make) -> RouteResolver:
    return await make_resolver()


async def _register(
    session: aiohttp.ClientSession, server: ElmaServer, body: dict[str, object], who: str = ORG
) -> None:
    status, answer, _ = await admin(session, server.url, "PUT", who, body=body)
    assert status in (200, 201), answer


class _Server(LoopbackHttpServer):
    """A small aiohttp server on loopback whose one handler answers every path."""

    def __init__(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        super().__init__(app)


def _man_in_the_middle(
    upstream: str,
    *,
    edit: Callable[[bytes], bytes] = lambda body: body,
    path: Callable[[str], str] = lambda raw: raw,
) -> _Server:
    """Passes requests on to ``upstream`` and edits what comes back."""

    async def relay(request: web.Request) -> web.Response:
        async with (
            aiohttp.ClientSession() as client,
            client.get(URL(upstream + path(request.rel_url.raw_path), encoded=True)) as answer,
        ):
            body = await answer.read()
            return web.Response(
                status=answer.status, body=edit(body), content_type="text/xml", charset="utf-8"
            )

    return _Server(relay)


# --------------------------------------------------------------------------- found


async def test_resolve_finds_the_endpoint_through_sml_and_smp(
    elma: ElmaServer,
    session: aiohttp.ClientSession,
    resolver: RouteResolver,
    ap: Credential,
    smp_signer: Credential,
) -> None:
    await _register(session, elma, registration(ap.cert_pem()))
    resolved = await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)

    assert isinstance(resolved, ResolvedEndpoint)
    assert resolved.endpoint_url == AP_URL
    assert resolved.certificate == ap.certificate
    assert resolved.transport_profile == AS4
    assert resolved.smp_url == elma.url
    assert resolved.smp_signer == smp_signer.certificate.subject.rfc4514_string()
    assert resolved.participant == ParticipantId.peppol(ORG)

    evidence = json.loads(json.dumps(resolved.evidence.as_json()))
    assert evidence["participant"] == f"iso6523-actorid-upis::{ORG}"
    assert evidence["sml"] == {
        "name": participant_dns_name(PEPPOL_ORG, SML_ZONE_TEST),
        "smp_url": elma.url,
    }
    assert evidence["smp"]["url"].startswith(elma.url + "/iso6523-actorid-upis%3A%3A0192")
    assert evidence["smp"]["redirected_from"] is None
    assert evidence["smp"]["format"] == "peppol"
    assert evidence["smp"]["signer"] == resolved.smp_signer
    assert evidence["match"] == {
        "document_type_requested": INVOICE,
        "document_type_published": INVOICE,
        "process_requested": BILLING,
        "process_published": BILLING,
        "transport_profile": AS4,
    }
    assert evidence["endpoint"]["url"] == AP_URL
    assert evidence["endpoint"]["certificate"]["subject"] == (
        ap.certificate.subject.rfc4514_string()
    )


@pytest.mark.parametrize("smp_format", [SmpFormat.BDXR1, SmpFormat.SMP2], ids=lambda f: f.value)
async def test_resolve_in_the_oasis_formats(
    *,
    elma: ElmaServer,
    sml: SmlStandin,
    session: aiohttp.ClientSession,
    make_resolver: Make,
    ap: Credential,
    smp_format: SmpFormat,
) -> None:
    await _register(session, elma, registration(ap.cert_pem()))
    if smp_format is SmpFormat.BDXR1:
        sml.register(ORG, elma.bdxr1_url)
    resolver = await make_resolver(smp_format=smp_format)
    resolved = await resolver.resolve(ParticipantId.peppol(ORG), INVOICE, BILLING)
    assert resolved.endpoint_url == AP_URL
    assert resolved.evidence.smp_format == smp_format.value


async def test_a_wildcard_document_type_finds_its_most_specific_registration(
    elma: ElmaServer, session: aiohttp.ClientSession, resolver: RouteResolver, ap: Credential
) -> None:
    root = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2::Invoice"
    broad = f"peppol-doctype-wildcard::{root}##urn:peppol:pint:billing-1*::2.1"
    specific = f"peppol-doctype-wildcard::{root}##urn:peppol:pint:billing-1@jp-1*::2.1"
    body = registration(
        ap.cert_pem(), document_types=(broad,), process="cenbii-procid-ubl::urn:peppol:bis:billing"
    )
    body["services"].append(
        registration(
            ap.cert_pem(),
            document_types=(specific,),
            process="cenbii-procid-ubl::urn:peppol:bis:billing",
            url=AP_B_URL,
        )["services"][0]
    )
    await _register(session, elma, body)

    wanted = f"peppol-doctype-wildcard::{root}##urn:peppol:pint:billing-1@jp-1::2.1"
    resolved = await resolver.resolve(
        PEPPOL_ORG, wanted, "cenbii-procid-ubl::urn:peppol:bis:billing"
    )
    assert resolved.endpoint_url == AP_B_URL
    assert resolved.evidence.document_type_published == specific

    other = f"peppol-doctype-wildcard::{root}##urn:peppol:pint:billing-1@aunz-1::2.1"
    resolved = await resolver.resolve(
        PEPPOL_ORG, other, "cenbii-procid-ubl::urn:peppol:bis:billing"
    )
    assert resolved.endpoint_url == AP_URL
    assert resolved.evidence.document_type_published == broad


async def test_the_ap_certificate_can_be_required_to_chain_to_the_ap_ca(
    elma: ElmaServer,
    session: aiohttp.ClientSession,
    make_resolver: Make,
    ap: Credential,
    dev_pki: DevPki,
) -> None:
    await _register(session, elma, registration(ap.cert_pem()))
    trusted = await make_resolver(ap_trust=TrustStore((dev_pki.ap_ca.certificate,)))
    assert (await trusted.resolve(PEPPOL_ORG, INVOICE, BILLING)).certificate == ap.certificate
    other_ca = await make_resolver(ap_trust=TrustStore((dev_pki.org_ca.certificate,)))
    with pytest.raises(RegistryResponseError) as caught:
        await other_ca.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert caught.value.rule == "chain-incomplete"


# --------------------------------------------------------------------------- no route


async def test_unknown_participant_is_nxdomain_and_no_route(
    elma: ElmaServer, resolver: RouteResolver
) -> None:
    with pytest.raises(ParticipantNotRegistered) as caught:
        await resolver.resolve(PeppolParticipantId(OTHER), INVOICE, BILLING)
    assert caught.value.rule == "sml-nxdomain"
    assert isinstance(caught.value, NoRoute)


async def test_participant_in_the_sml_but_not_in_the_smp_is_no_route(
    elma: ElmaServer, sml: SmlStandin, resolver: RouteResolver
) -> None:
    sml.register(OTHER, elma.url)
    with pytest.raises(NoRoute):
        await resolver.resolve(PeppolParticipantId(OTHER), INVOICE, BILLING)
    with pytest.raises(SmpParticipantNotFound):
        await resolver.capabilities(PeppolParticipantId(OTHER))


async def test_document_type_not_registered_is_no_route(
    elma: ElmaServer, session: aiohttp.ClientSession, resolver: RouteResolver, ap: Credential
) -> None:
    await _register(session, elma, registration(ap.cert_pem()))
    with pytest.raises(SmpDocumentTypeNotFound) as caught:
        await resolver.resolve(PEPPOL_ORG, CREDIT_NOTE, BILLING)
    assert isinstance(caught.value, NoRoute)


async def test_process_or_transport_profile_not_published_is_no_route(
    elma: ElmaServer, session: aiohttp.ClientSession, resolver: RouteResolver, ap: Credential
) -> None:
    await _register(session, elma, registration(ap.cert_pem()))
    with pytest.raises(NoMatchingProcess):
        await resolver.resolve(PEPPOL_ORG, INVOICE, "cenbii-procid-ubl::urn:example:other")
    with pytest.raises(NoMatchingTransportProfile):
        await resolver.resolve(
            PEPPOL_ORG, INVOICE, BILLING, transport_profile="busdox-transport-as2-ver2p0"
        )


async def test_expired_and_future_endpoints_are_no_route(
    elma: ElmaServer, session: aiohttp.ClientSession, resolver: RouteResolver, ap: Credential
) -> None:
    now = datetime.now(UTC)
    await _register(session, elma, registration(ap.cert_pem(), expiration=now - timedelta(days=1)))
    with pytest.raises(NoActiveEndpoint) as caught:
        await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert isinstance(caught.value, NoRoute)
    # the same answer was valid before it expired
    resolved = await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING, at=now - timedelta(days=2))
    assert resolved.evidence.endpoint_expiration == now - timedelta(days=1)

    await _register(session, elma, registration(ap.cert_pem(), activation=now + timedelta(days=1)))
    with pytest.raises(NoActiveEndpoint):
        await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)


async def test_a_participant_outside_the_peppol_scheme_is_refused(resolver: RouteResolver) -> None:
    with pytest.raises(InvalidIdentifier):
        await resolver.resolve(ParticipantId("other-scheme", "x"), INVOICE, BILLING)
    with pytest.raises(InvalidIdentifier):
        await resolver.resolve(PEPPOL_ORG, "no-separator", BILLING)


# --------------------------------------------------------------------------- refused answers


async def test_a_tampered_answer_is_rejected(
    elma: ElmaServer,
    sml: SmlStandin,
    session: aiohttp.ClientSession,
    resolver: RouteResolver,
    ap: Credential,
) -> None:
    await _register(session, elma, registration(ap.cert_pem()))

    def redirect_traffic(body: bytes) -> bytes:
        return body.replace(AP_URL.encode(), b"https://evil.example/as4")

    async with _man_in_the_middle(elma.url, edit=redirect_traffic) as mitm:
        sml.register(ORG, mitm.url)
        with pytest.raises(RegistryResponseError) as caught:
            await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert caught.value.rule == "smp-signature-invalid"
    assert not isinstance(caught.value, TransientDeliveryError)


async def test_an_answer_re_signed_by_an_untrusted_key_is_rejected(
    *,
    elma: ElmaServer,
    sml: SmlStandin,
    session: aiohttp.ClientSession,
    resolver: RouteResolver,
    ap: Credential,
    now: datetime,
) -> None:
    await _register(session, elma, registration(ap.cert_pem()))
    evil_ca = generate_root_ca("Evil CA", now=now, key_size=2048)
    evil = issue_end_entity(evil_ca, "PNO000900", now=now, organisation="Test SMP")

    def re_sign(body: bytes) -> bytes:
        metadata = parse_service_metadata(body)
        (process,) = metadata.processes
        (endpoint,) = process.endpoints
        endpoint = replace(endpoint, address="https://evil.example/as4")
        process = replace(process, endpoints=(endpoint,))
        return sign_service_metadata(replace(metadata, processes=(process,)), evil)

    async with _man_in_the_middle(elma.url, edit=re_sign) as mitm:
        sml.register(ORG, mitm.url)
        with pytest.raises(RegistryResponseError) as caught:
            await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert caught.value.rule == "chain-incomplete"


async def test_a_replayed_answer_for_another_participant_is_rejected(
    elma: ElmaServer,
    sml: SmlStandin,
    session: aiohttp.ClientSession,
    resolver: RouteResolver,
    ap: Credential,
) -> None:
    await _register(session, elma, registration(ap.cert_pem()))
    await _register(session, elma, registration(ap.cert_pem(), url=AP_B_URL), who=OTHER)

    def ask_for_other(raw: str) -> str:
        return raw.replace("0192%3A991825827", "0192%3A974760673")

    async with _man_in_the_middle(elma.url, path=ask_for_other) as mitm:
        sml.register(ORG, mitm.url)
        with pytest.raises(RegistryResponseError) as caught:
            await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert caught.value.rule == "smp-answer-mismatch"


async def test_an_answer_over_the_size_cap_is_rejected(
    elma: ElmaServer,
    sml: SmlStandin,
    session: aiohttp.ClientSession,
    make_resolver: Make,
    ap: Credential,
) -> None:
    await _register(session, elma, registration(ap.cert_pem()))
    resolver = await make_resolver(max_response_bytes=64 * 1024)
    async with _man_in_the_middle(elma.url, edit=lambda body: body + b" " * 100_000) as mitm:
        sml.register(ORG, mitm.url)
        with pytest.raises(RegistryResponseError) as caught:
            await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert caught.value.rule == "smp-too-large"


# --------------------------------------------------------------------------- redirects


@pytest.fixture
async def other_elma(other_smp_signer: Credential) -> AsyncIterator[ElmaServer]:
    async with ElmaServer(MemoryRegistry(), other_smp_signer, admin_token="elma-admin-token") as s:
        yield s


async def _redirect_to_other(
    session: aiohttp.ClientSession,
    elma: ElmaServer,
    other_elma: ElmaServer,
    ap: Credential,
    other_smp_signer: Credential,
) -> None:
    """``ap`` registered at ``other_elma``, and ``elma`` redirecting there."""
    await _register(session, other_elma, registration(ap.cert_pem(), url=AP_B_URL))
    await _register(
        session,
        elma,
        redirect_registration(other_elma.url, certificate_pem=other_smp_signer.cert_pem()),
    )


@pytest.mark.parametrize("smp_format", [SmpFormat.PEPPOL, SmpFormat.SMP2], ids=lambda f: f.value)
async def test_a_redirect_is_followed_once_to_the_smp_it_names(
    *,
    elma: ElmaServer,
    other_elma: ElmaServer,
    session: aiohttp.ClientSession,
    make_resolver: Make,
    ap: Credential,
    other_smp_signer: Credential,
    smp_format: SmpFormat,
) -> None:
    await _redirect_to_other(session, elma, other_elma, ap, other_smp_signer)
    resolver = await make_resolver(smp_format=smp_format)
    resolved = await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert resolved.endpoint_url == AP_B_URL
    assert resolved.smp_url == elma.url  # what the SML said
    assert resolved.smp_signer == other_smp_signer.certificate.subject.rfc4514_string()
    assert resolved.evidence.redirected_from is not None
    assert resolved.evidence.redirected_from.startswith(elma.url)
    assert resolved.evidence.metadata_url.startswith(other_elma.url)


async def test_a_redirect_whose_target_is_signed_by_another_smp_is_rejected(
    elma: ElmaServer,
    other_elma: ElmaServer,
    session: aiohttp.ClientSession,
    resolver: RouteResolver,
    ap: Credential,
) -> None:
    await _register(session, other_elma, registration(ap.cert_pem(), url=AP_B_URL))
    uid = "C=NO,O=Some Other SMP,CN=PNO000999"  # names an SMP that is not the one answering
    await _register(session, elma, redirect_registration(other_elma.url, certificate_uid=uid))
    with pytest.raises(RegistryResponseError) as caught:
        await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert caught.value.rule == "smp-redirect-signer"


async def test_the_certificate_uid_matches_in_any_order_and_case(
    elma: ElmaServer,
    other_elma: ElmaServer,
    session: aiohttp.ClientSession,
    resolver: RouteResolver,
    ap: Credential,
) -> None:
    await _register(session, other_elma, registration(ap.cert_pem(), url=AP_B_URL))
    uid = "c=no, o=other smp, cn=pno000901"
    await _register(session, elma, redirect_registration(other_elma.url, certificate_uid=uid))
    assert (await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)).endpoint_url == AP_B_URL


async def test_a_second_redirect_is_an_error(
    *,
    elma: ElmaServer,
    other_elma: ElmaServer,
    session: aiohttp.ClientSession,
    resolver: RouteResolver,
    smp_signer: Credential,
    other_smp_signer: Credential,
) -> None:
    await _register(
        session,
        elma,
        redirect_registration(other_elma.url, certificate_pem=other_smp_signer.cert_pem()),
    )
    await _register(
        session,
        other_elma,
        redirect_registration(elma.url, certificate_pem=smp_signer.cert_pem()),
    )
    with pytest.raises(RegistryResponseError) as caught:
        await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert caught.value.rule == "smp-redirect-twice"


# --------------------------------------------------------------------------- unavailable


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_smp_down_is_transient(
    elma: ElmaServer,
    sml: SmlStandin,
    session: aiohttp.ClientSession,
    resolver: RouteResolver,
    ap: Credential,
) -> None:
    await _register(session, elma, registration(ap.cert_pem()))
    sml.register(ORG, f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(RegistryUnavailable) as caught:
        await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert caught.value.rule == "smp-unreachable"
    assert isinstance(caught.value, TransientDeliveryError)


@pytest.mark.parametrize(
    ("status", "error", "rule"),
    [
        (503, RegistryUnavailable, "smp-http-503"),
        (500, RegistryUnavailable, "smp-http-500"),
        (429, RegistryUnavailable, "smp-http-429"),
        (403, RegistryRefused, "smp-http-403"),
        (301, RegistryRefused, "smp-http-301"),
    ],
)
async def test_http_failures_are_translated(
    sml: SmlStandin, resolver: RouteResolver, status: int, error: type[Exception], rule: str
) -> None:
    async def answer(request: web.Request) -> web.Response:
        headers = {"Location": "http://127.0.0.1:1/"} if status == 301 else None
        return web.Response(status=status, text="no", headers=headers)

    async with _Server(answer) as broken:
        sml.register(ORG, broken.url)
        with pytest.raises(error) as caught:
            await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert getattr(caught.value, "rule", None) == rule


async def test_a_slow_smp_times_out_as_transient(sml: SmlStandin, make_resolver: Make) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    resolver = await make_resolver(timeout=0.3)
    async with _Server(slow) as server:
        sml.register(ORG, server.url)
        with pytest.raises(RegistryUnavailable) as caught:
            await resolver.resolve(PEPPOL_ORG, INVOICE, BILLING)
    assert caught.value.rule == "smp-timeout"


async def test_an_smp_url_that_is_not_https_is_refused_before_any_request(
    smp_trust: TrustStore,
) -> None:
    client = SmpClient(smp_trust)  # https only
    try:
        with pytest.raises(RegistryResponseError) as caught:
            await client.service_metadata(
                "http://127.0.0.1:1", ParticipantId.peppol(ORG), DocumentTypeId.from_uri(INVOICE)
            )
        assert caught.value.rule == "smp-url"
    finally:
        await client.close()


# --------------------------------------------------------------------------- capabilities


async def test_capabilities_list_document_types_processes_and_active_profiles(
    elma: ElmaServer, session: aiohttp.ClientSession, resolver: RouteResolver, ap: Credential
) -> None:
    body = registration(ap.cert_pem(), document_types=(INVOICE,))
    expired = registration(
        ap.cert_pem(),
        document_types=(CREDIT_NOTE,),
        expiration=datetime.now(UTC) - timedelta(days=1),
    )
    body["services"].extend(expired["services"])
    await _register(session, elma, body)

    capabilities = await resolver.capabilities(PEPPOL_ORG)
    assert sorted(capabilities, key=lambda c: c.document_type.value) == sorted(
        [
            Capability(DocumentTypeId.from_uri(INVOICE), ProcessId.from_uri(BILLING), (AS4,)),
            Capability(DocumentTypeId.from_uri(CREDIT_NOTE), ProcessId.from_uri(BILLING), ()),
        ],
        key=lambda c: c.document_type.value,
    )
    assert capabilities[0].as_json()["process"] == BILLING


async def test_capabilities_follow_redirects(
    *,
    elma: ElmaServer,
    other_elma: ElmaServer,
    session: aiohttp.ClientSession,
    make_resolver: Make,
    ap: Credential,
    other_smp_signer: Credential,
) -> None:
    await _redirect_to_other(session, elma, other_elma, ap, other_smp_signer)
    for smp_format in (SmpFormat.PEPPOL, SmpFormat.SMP2):
        resolver = await make_resolver(smp_format=smp_format)
        (capability,) = await resolver.capabilities(PEPPOL_ORG)
        assert capability.document_type == DocumentTypeId.from_uri(INVOICE)
        assert capability.transport_profiles == (AS4,)
