"""The KRR client against the local KRR stand-in over real sockets on loopback: batching,
tokens, the request limits, the presence rules as a client sees them, signed answers, the print
provider, and every way the register can fail to answer."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.standins.krr import KrrRegister, KrrStandin, PrintProviderEntry
from adapters.standins.krr_generate import (
    DIGIPOST,
    EBOKS,
    generate_national_id,
    generate_register,
    provider_credentials,
)
from routing.errors import RegistryRefused, RegistryResponseError, RegistryUnavailable
from routing.krr import PersonStatus
from routing.krr_client import KrrClient
from sbdh.errors import ConfigurationError, TransientDeliveryError
from sbdh.identifiers import NationalId
from sbdh.pki import Credential, DevPki, generate_root_ca
from sbdh.trust import TrustStore

TOKEN = "krr-test-token"
NOW = datetime.now(UTC).replace(microsecond=0)
DIGDIR = "991825827"  # signs the register's answers in the dev PKI


@pytest.fixture(scope="module")
def providers() -> dict[str, Credential]:
    return provider_credentials(NOW - timedelta(days=1))


@pytest.fixture(scope="module")
def records(providers: dict[str, Credential]) -> list[dict[str, Any]]:
    certs = {orgnr: cred.certificate for orgnr, cred in providers.items()}
    return generate_register(2400, seed=11, now=NOW, certificates=certs)


def _unknown_ids(count: int, known: set[str]) -> list[str]:
    rng = random.Random(99)
    out: list[str] = []
    while len(out) < count:
        nid = generate_national_id(rng)
        if nid not in known and nid not in out:
            out.append(nid)
    return out


@pytest.fixture
async def krr(
    records: list[dict[str, Any]], providers: dict[str, Credential], dev_pki: DevPki
) -> AsyncIterator[KrrStandin]:
    register = KrrRegister(records, now=NOW)
    standin = KrrStandin(
        register,
        tokens=[TOKEN, "second-token"],
        signer=dev_pki.organisations[DIGDIR],
        print_provider=PrintProviderEntry(EBOKS, providers[EBOKS].certificate),
    )
    async with standin:
        yield standin


async def test_2500_ids_go_in_3_requests(krr: KrrStandin, records: list[dict[str, Any]]) -> None:
    known = [r["personidentifikator"] for r in records]
    unknown = _unknown_ids(100, set(known))
    ids = [NationalId(n) for n in [*known, *unknown]]
    async with KrrClient(krr.url, TOKEN) as client:
        answer = await client.lookup(ids)
    assert krr.batches == [1000, 1000, 500]
    assert list(answer) == ids
    assert all(answer[NationalId(n)].status is PersonStatus.IKKE_REGISTRERT for n in unknown)
    statuses = {answer[NationalId(n)].status for n in known}
    assert statuses == {PersonStatus.AKTIV, PersonStatus.SLETTET}


async def test_presence_rules_as_the_client_sees_them(
    krr: KrrStandin, records: list[dict[str, Any]]
) -> None:
    ids = [NationalId(r["personidentifikator"]) for r in records[:1000]]
    async with KrrClient(krr.url, TOKEN) as client:
        answer = await client.lookup(ids)
    by_id = {r["personidentifikator"]: r for r in records}
    persons = list(answer.values())
    # reserved persons never get a mailbox, even where the register file holds one
    reserved_with_stored_mailbox = [
        p for p in persons if p.reserved and "digital_post" in by_id[p.national_id.value]
    ]
    assert reserved_with_stored_mailbox
    assert not any(p.has_mailbox or p.notifiable for p in reserved_with_stored_mailbox)
    # deleted persons carry nothing
    deleted = [p for p in persons if p.status is PersonStatus.SLETTET]
    assert deleted
    assert all(p.contact is None and p.mailbox is None for p in deleted)
    # expired contact data: not notifiable, nothing given out
    expired = [
        p
        for p in persons
        if p.active and by_id[p.national_id.value].get("kontaktinformasjon") and p.contact is None
    ]
    assert expired
    assert not any(p.notifiable or p.has_mailbox for p in expired)
    # everything that is given out is current
    assert all(
        c.current
        for p in persons
        if p.contact is not None
        for c in (p.contact.email, p.contact.mobile)
        if c is not None
    )
    # and there are plenty of ordinary people with mailboxes at both providers
    providers = {p.mailbox.provider.value for p in persons if p.has_mailbox and p.mailbox}
    assert providers == {DIGIPOST, EBOKS}
    assert sum(p.notifiable for p in persons) > 700


async def test_registration_changes_while_running(
    krr: KrrStandin, records: list[dict[str, Any]]
) -> None:
    nid = records[0]["personidentifikator"]
    async with KrrClient(krr.url, TOKEN) as client:
        assert (await client.person(NationalId(nid))).status is not PersonStatus.IKKE_REGISTRERT
        krr.register.remove(nid)
        assert (await client.person(NationalId(nid))).status is PersonStatus.IKKE_REGISTRERT


async def test_a_token_from_a_provider_function(krr: KrrStandin) -> None:
    calls = 0

    async def token() -> str:
        nonlocal calls
        calls += 1
        return "second-token"

    async with KrrClient(krr.url, token) as client:
        person = await client.person(NationalId("02016126007"))
    assert person.status is PersonStatus.IKKE_REGISTRERT
    assert calls == 1


@pytest.mark.parametrize("token", ["wrong-token", "krr-test-token-but-longer"])
async def test_a_bad_token_is_a_configuration_error(krr: KrrStandin, token: str) -> None:
    async with KrrClient(krr.url, token) as client:
        with pytest.raises(RegistryRefused) as info:
            await client.person(NationalId("02016126007"))
    assert isinstance(info.value, ConfigurationError)
    assert info.value.status == 401
    assert "bearer token" in info.value.message
    assert not info.value.retry


async def test_no_token_is_refused_by_the_client_and_the_standin(krr: KrrStandin) -> None:
    async with KrrClient(krr.url, "") as client:
        with pytest.raises(ConfigurationError):
            await client.person(NationalId("02016126007"))
    async with aiohttp.ClientSession() as session:
        body = {"personidentifikatorer": ["02016126007"]}
        async with session.post(f"{krr.url}/rest/v1/personer", json=body) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def _post(krr: KrrStandin, body: Any) -> tuple[int, str, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{krr.url}/rest/v1/personer", json=body, headers=headers) as response,
    ):
        return response.status, response.content_type, await response.json(content_type=None)


async def test_the_standin_refuses_1001_ids(krr: KrrStandin, records: list[dict[str, Any]]) -> None:
    ids = [r["personidentifikator"] for r in records[:1001]]
    status, media_type, problem = await _post(krr, {"personidentifikatorer": ids})
    assert status == 400
    assert media_type == "application/problem+json"
    assert "1 to 1000" in problem["detail"]
    status, _, _ = await _post(krr, {"personidentifikatorer": ids[:1000]})
    assert status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"personidentifikatorer": []},
        {"personidentifikatorer": "02016126007"},
        {"personidentifikatorer": [20914695016]},
        {"personidentifikatorer": ["02016126008"]},
        {"ids": ["02016126007"]},
        [],
    ],
)
async def test_the_standin_refuses_bad_requests_without_echoing_ids(
    krr: KrrStandin, body: Any
) -> None:
    status, media_type, problem = await _post(krr, body)
    assert status == 400
    assert media_type == "application/problem+json"
    assert problem["status"] == 400
    assert "0201612600" not in json.dumps(problem)


async def test_v2_has_the_same_shape(krr: KrrStandin) -> None:
    async with KrrClient(krr.url, TOKEN, personer_path="/rest/v2/personer") as client:
        person = await client.person(NationalId("31129956715"))
    assert person.status is PersonStatus.IKKE_REGISTRERT


async def test_signed_answers_verify_against_the_registers_certificate(
    krr: KrrStandin, records: list[dict[str, Any]], trust: TrustStore
) -> None:
    ids = [NationalId(r["personidentifikator"]) for r in records[:50]]
    async with KrrClient(krr.url, TOKEN, jose_trust=trust, jose_signer_orgnr=DIGDIR) as client:
        answer = await client.lookup(ids)
    assert list(answer) == ids
    assert any(p.has_mailbox for p in answer.values())


async def test_signed_answers_from_the_wrong_signer_are_refused(
    krr: KrrStandin, trust: TrustStore, now: datetime
) -> None:
    nid = NationalId("02016126007")
    async with KrrClient(krr.url, TOKEN, jose_trust=trust, jose_signer_orgnr="974760673") as c:
        with pytest.raises(RegistryResponseError) as info:
            await c.person(nid)
    assert info.value.rule == "krr-jws-signer"
    other = TrustStore((generate_root_ca("Some other root", now=now, key_size=2048).certificate,))
    async with KrrClient(krr.url, TOKEN, jose_trust=other) as client:
        with pytest.raises(RegistryResponseError) as info:
            await client.person(nid)
    assert info.value.rule == "krr-jws"


async def test_print_provider_needs_no_token(
    krr: KrrStandin, providers: dict[str, Credential]
) -> None:
    async with KrrClient(krr.url, "unused") as client:
        provider = await client.print_provider()
    assert provider.orgnr.value == EBOKS
    assert provider.certificate == providers[EBOKS].certificate


async def test_server_down_is_transient(records: list[dict[str, Any]]) -> None:
    standin = KrrStandin(KrrRegister(records[:5], now=NOW), tokens=[TOKEN])
    url = await standin.start()
    await standin.stop()
    async with KrrClient(url, TOKEN, timeout=2) as client:
        with pytest.raises(RegistryUnavailable) as info:
            await client.person(NationalId("02016126007"))
    assert isinstance(info.value, TransientDeliveryError)
    assert info.value.retry
    assert info.value.rule == "krr-unreachable"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def fake_krr() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def serve(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield serve
    for runner in runners:
        await runner.cleanup()


async def test_no_answer_in_time_is_transient(
    fake_krr: Callable[[Handler], Awaitable[str]],
) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 5)
        return web.json_response({"personer": []})

    url = await fake_krr(slow)
    async with KrrClient(url, TOKEN, timeout=0.3) as client:
        with pytest.raises(RegistryUnavailable) as info:
            await client.person(NationalId("02016126007"))
    release.set()
    assert info.value.rule == "krr-timeout"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, RegistryUnavailable),
        (503, RegistryUnavailable),
        (429, RegistryUnavailable),
        (400, RegistryRefused),
        (403, RegistryRefused),
    ],
)
async def test_http_errors_are_sorted_by_what_to_do(
    fake_krr: Callable[[Handler], Awaitable[str]], status: int, error: type[Exception]
) -> None:
    async def failing(request: web.Request) -> web.Response:
        problem = {"title": "Nope", "detail": "person 02016126007 is not available here"}
        return web.json_response(problem, status=status, content_type="application/problem+json")

    url = await fake_krr(failing)
    async with KrrClient(url, TOKEN) as client:
        with pytest.raises(error) as info:
            await client.person(NationalId("02016126007"))
    assert "is not available here" in str(info.value)
    assert "02016126007" not in str(info.value)  # the register's words, with the id masked


async def test_an_answer_about_someone_else_is_refused(
    fake_krr: Callable[[Handler], Awaitable[str]],
) -> None:
    async def confused(request: web.Request) -> web.Response:
        other = {"personidentifikator": "31129956715", "status": "IKKE_REGISTRERT"}
        return web.json_response({"personer": [other]})

    url = await fake_krr(confused)
    async with KrrClient(url, TOKEN) as client:
        with pytest.raises(RegistryResponseError) as info:
            await client.person(NationalId("02016126007"))
    assert info.value.rule == "krr-missing-person"


async def test_a_redirect_is_not_followed(fake_krr: Callable[[Handler], Awaitable[str]]) -> None:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://elsewhere.example/rest/v1/personer")

    url = await fake_krr(redirect)
    async with KrrClient(url, TOKEN) as client:
        with pytest.raises(RegistryRefused) as info:
            await client.person(NationalId("02016126007"))
    assert info.value.status == 302


async def test_lookups_log_no_national_id(
    krr: KrrStandin, records: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ids = [NationalId(r["personidentifikator"]) for r in records[:1200]]
    async with KrrClient(krr.url, TOKEN) as client:
        await client.lookup(ids)
    assert "request 2 of 2" in caplog.text
    assert not any(nid.value in caplog.text for nid in ids)
    assert TOKEN not in caplog.text


def test_client_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        KrrClient("ftp://krr.example", TOKEN)
    with pytest.raises(ConfigurationError):
        KrrClient("https://krr.example", TOKEN, batch_size=1001)
    with pytest.raises(ConfigurationError):
        KrrClient("https://krr.example", TOKEN, jose_signer_orgnr=DIGDIR)
    assert TOKEN not in repr(KrrClient("https://krr.example", TOKEN))
