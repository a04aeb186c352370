"""The revocation checkers around the pure core: the cache and the soft-/hard-fail policy with
the in-memory double, and the HTTP checker against the local OCSP/CRL stand-in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from access_point.revocation import (
    CachingRevocationChecker,
    HttpRevocationChecker,
    InMemoryRevocationChecker,
    RevocationMode,
    RevocationPolicy,
)
from access_point.settings import Settings, load_settings
from adapters.standins.ocsp import OcspStandin, RevocationAuthority
from sbdh.errors import ConfigurationError
from sbdh.pki import Credential, DevPki, issue_end_entity
from sbdh.revocation import (
    CertificateRevoked,
    CertStatus,
    NoRevocationSource,
    RevocationRefused,
    RevocationResponseError,
    RevocationSource,
    RevocationStatus,
    RevocationUnavailable,
)


@pytest.fixture(scope="module")
def leaf(dev_pki: DevPki, now: datetime) -> Credential:
    return issue_end_entity(dev_pki.ap_ca, "PNO000050", now=now)


@pytest.fixture(scope="module")
def issuer(dev_pki: DevPki) -> x509.Certificate:
    return dev_pki.ap_ca.certificate


# --------------------------------------------------------------------------- the double


async def test_the_double_says_good_until_told_otherwise(
    leaf: Credential, issuer: x509.Certificate
) -> None:
    double = InMemoryRevocationChecker()
    now = datetime.now(UTC)
    assert (await double.check(leaf.certificate, issuer, now=now)).is_good
    double.revoke(leaf.certificate, issuer, reason=x509.ReasonFlags.affiliation_changed)
    status = await double.check(leaf.certificate, issuer, now=now)
    assert status.is_revoked
    assert status.reason is x509.ReasonFlags.affiliation_changed
    double.set_status(leaf.certificate, issuer, CertStatus.UNKNOWN)
    assert (await double.check(leaf.certificate, issuer, now=now)).status is CertStatus.UNKNOWN
    double.fail_with(RevocationUnavailable("down"))
    with pytest.raises(RevocationUnavailable):
        await double.check(leaf.certificate, issuer, now=now)
    assert double.calls == 4


# --------------------------------------------------------------------------- the cache


async def test_the_cache_answers_until_next_update(
    leaf: Credential, issuer: x509.Certificate
) -> None:
    double = InMemoryRevocationChecker(validity=timedelta(minutes=30))
    cache = CachingRevocationChecker(double)
    now = datetime.now(UTC)
    first = await cache.check(leaf.certificate, issuer, now=now)
    assert await cache.check(leaf.certificate, issuer, now=now + timedelta(minutes=29)) == first
    assert double.calls == 1
    # past nextUpdate the responder is asked again, and what it says now is what counts
    double.revoke(leaf.certificate, issuer)
    later = await cache.check(leaf.certificate, issuer, now=now + timedelta(minutes=31))
    assert later.is_revoked
    assert double.calls == 2


async def test_the_cache_holds_an_answer_at_most_max_ttl(
    leaf: Credential, issuer: x509.Certificate
) -> None:
    double = InMemoryRevocationChecker(validity=timedelta(days=7))
    cache = CachingRevocationChecker(double, max_ttl=timedelta(hours=1))
    now = datetime.now(UTC)
    await cache.check(leaf.certificate, issuer, now=now)
    await cache.check(leaf.certificate, issuer, now=now + timedelta(minutes=59))
    assert double.calls == 1
    await cache.check(leaf.certificate, issuer, now=now + timedelta(minutes=61))
    assert double.calls == 2


async def test_the_cache_is_per_certificate_and_bounded(
    dev_pki: DevPki, issuer: x509.Certificate, now: datetime
) -> None:
    certs = [issue_end_entity(dev_pki.ap_ca, f"PNO00006{i}", now=now).certificate for i in range(3)]
    double = InMemoryRevocationChecker()
    cache = CachingRevocationChecker(double, max_entries=2)
    at = datetime.now(UTC)
    for cert in certs:
        await cache.check(cert, issuer, now=at)
    assert len(cache) == 2
    assert double.calls == 3
    await cache.check(certs[2], issuer, now=at)  # the most recent: still cached
    assert double.calls == 3
    await cache.check(certs[0], issuer, now=at)  # the oldest was dropped
    assert double.calls == 4


async def test_the_cache_remembers_an_unreachable_responder_briefly(
    leaf: Credential, issuer: x509.Certificate
) -> None:
    double = InMemoryRevocationChecker()
    double.fail_with(RevocationUnavailable("responder down"))
    cache = CachingRevocationChecker(double, failure_ttl=timedelta(seconds=60))
    now = datetime.now(UTC)
    for seconds in (0, 30):
        with pytest.raises(RevocationUnavailable):
            await cache.check(leaf.certificate, issuer, now=now + timedelta(seconds=seconds))
    assert double.calls == 1
    double.fail_with(None)
    assert (await cache.check(leaf.certificate, issuer, now=now + timedelta(seconds=61))).is_good
    assert double.calls == 2


async def test_the_cache_does_not_keep_an_answer_that_could_not_be_relied_on(
    leaf: Credential, issuer: x509.Certificate
) -> None:
    double = InMemoryRevocationChecker()
    double.fail_with(RevocationResponseError("bad signature", rule="ocsp-signature"))
    cache = CachingRevocationChecker(double)
    now = datetime.now(UTC)
    with pytest.raises(RevocationResponseError):
        await cache.check(leaf.certificate, issuer, now=now)
    double.fail_with(None)
    assert (await cache.check(leaf.certificate, issuer, now=now)).is_good
    assert double.calls == 2


class _Slow:
    """Answers after a moment, counting the questions."""

    def __init__(self) -> None:
        self.calls = 0

    async def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, *, now: datetime
    ) -> RevocationStatus:
        self.calls += 1
        await asyncio.sleep(0.05)
        return RevocationStatus(
            CertStatus.GOOD, RevocationSource.OCSP, cert.serial_number, now, now + timedelta(1)
        )


async def test_concurrent_checks_of_one_certificate_share_one_question(
    leaf: Credential, issuer: x509.Certificate
) -> None:
    slow = _Slow()
    cache = CachingRevocationChecker(slow)
    now = datetime.now(UTC)
    results = await asyncio.gather(
        *(cache.check(leaf.certificate, issuer, now=now) for _ in range(10))
    )
    assert all(r.is_good for r in results)
    assert slow.calls == 1


# --------------------------------------------------------------------------- the policy


def _policy(mode: RevocationMode) -> tuple[RevocationPolicy, InMemoryRevocationChecker]:
    double = InMemoryRevocationChecker()
    return RevocationPolicy(mode, double), double


async def test_off_asks_nobody(leaf: Credential, issuer: x509.Certificate) -> None:
    policy, double = _policy(RevocationMode.OFF)
    double.revoke(leaf.certificate, issuer)
    verdict = await policy.verify(leaf.certificate, issuer, now=datetime.now(UTC))
    assert verdict.status is None
    assert verdict.unchecked == "revocation checking is off"
    assert double.calls == 0


@pytest.mark.parametrize("mode", [RevocationMode.SOFT_FAIL, RevocationMode.HARD_FAIL])
async def test_good_is_accepted_in_both_modes(
    mode: RevocationMode, leaf: Credential, issuer: x509.Certificate
) -> None:
    policy, _ = _policy(mode)
    verdict = await policy.verify(leaf.certificate, issuer, now=datetime.now(UTC))
    assert verdict.status is not None
    assert verdict.status.is_good
    assert policy.counts["good"] == 1


@pytest.mark.parametrize("mode", [RevocationMode.SOFT_FAIL, RevocationMode.HARD_FAIL])
async def test_revoked_is_always_refused(
    mode: RevocationMode, leaf: Credential, issuer: x509.Certificate
) -> None:
    policy, double = _policy(mode)
    double.revoke(leaf.certificate, issuer)
    with pytest.raises(CertificateRevoked) as caught:
        await policy.verify(leaf.certificate, issuer, now=datetime.now(UTC))
    assert caught.value.rule == "cert-revoked"
    assert caught.value.status is not None
    assert caught.value.status.is_revoked
    assert not caught.value.transient
    assert policy.counts["revoked"] == 1


@pytest.mark.parametrize("mode", [RevocationMode.SOFT_FAIL, RevocationMode.HARD_FAIL])
async def test_unknown_is_refused(
    mode: RevocationMode, leaf: Credential, issuer: x509.Certificate
) -> None:
    policy, double = _policy(mode)
    double.set_status(leaf.certificate, issuer, CertStatus.UNKNOWN)
    with pytest.raises(RevocationRefused) as caught:
        await policy.verify(leaf.certificate, issuer, now=datetime.now(UTC))
    assert caught.value.rule == "cert-status-unknown"


async def test_soft_fail_accepts_an_unreachable_responder_with_a_warning_and_a_count(
    leaf: Credential, issuer: x509.Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    policy, double = _policy(RevocationMode.SOFT_FAIL)
    double.fail_with(RevocationUnavailable("http://ocsp.invalid/ did not answer"))
    with caplog.at_level(logging.WARNING, logger="access_point.revocation"):
        verdict = await policy.verify(leaf.certificate, issuer, now=datetime.now(UTC))
    assert verdict.status is None
    assert verdict.unchecked is not None
    assert "soft-fail" in verdict.unchecked
    assert policy.counts["soft-fail"] == 1
    assert any("soft-fail" in r.getMessage() for r in caplog.records)


async def test_hard_fail_refuses_an_unreachable_responder_as_transient(
    leaf: Credential, issuer: x509.Certificate
) -> None:
    policy, double = _policy(RevocationMode.HARD_FAIL)
    double.fail_with(RevocationUnavailable("timeout"))
    with pytest.raises(RevocationRefused) as caught:
        await policy.verify(leaf.certificate, issuer, now=datetime.now(UTC))
    assert caught.value.rule == "revocation-unavailable"
    assert caught.value.transient
    assert policy.counts["unavailable"] == 1


@pytest.mark.parametrize("mode", [RevocationMode.SOFT_FAIL, RevocationMode.HARD_FAIL])
async def test_an_answer_that_cannot_be_relied_on_is_refused_even_in_soft_fail(
    mode: RevocationMode, leaf: Credential, issuer: x509.Certificate
) -> None:
    policy, double = _policy(mode)
    double.fail_with(RevocationResponseError("forged", rule="ocsp-signature"))
    with pytest.raises(RevocationRefused) as caught:
        await policy.verify(leaf.certificate, issuer, now=datetime.now(UTC))
    assert caught.value.rule == "revocation-response-invalid"
    assert not caught.value.transient


async def test_no_revocation_source_soft_accepts_and_hard_refuses(
    leaf: Credential, issuer: x509.Certificate
) -> None:
    soft, soft_double = _policy(RevocationMode.SOFT_FAIL)
    soft_double.fail_with(NoRevocationSource("names no responder"))
    assert (await soft.verify(leaf.certificate, issuer, now=datetime.now(UTC))).status is None
    assert soft.counts["no-source"] == 1
    hard, hard_double = _policy(RevocationMode.HARD_FAIL)
    hard_double.fail_with(NoRevocationSource("names no responder"))
    with pytest.raises(RevocationRefused) as caught:
        await hard.verify(leaf.certificate, issuer, now=datetime.now(UTC))
    assert caught.value.rule == "revocation-no-source"


# --------------------------------------------------------------------------- HTTP, real sockets


@pytest.fixture
async def standin(dev_pki: DevPki) -> AsyncIterator[OcspStandin]:
    authority = RevocationAuthority({"ap-ca": dev_pki.ap_ca})
    async with OcspStandin(authority) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[HttpRevocationChecker]:
    checker = HttpRevocationChecker(timeout=2.0)
    yield checker
    await checker.close()


def _issue(
    dev_pki: DevPki, standin: OcspStandin, *, ocsp: bool = True, crl: bool = True
) -> x509.Certificate:
    return issue_end_entity(
        dev_pki.ap_ca,
        "PNO000070",
        now=datetime.now(UTC),
        ocsp_url=standin.ocsp_url if ocsp else None,
        crl_url=standin.crl_url("ap-ca") if crl else None,
    ).certificate


async def test_http_asks_the_ocsp_responder(
    dev_pki: DevPki, standin: OcspStandin, http: HttpRevocationChecker, issuer: x509.Certificate
) -> None:
    cert = _issue(dev_pki, standin)
    status = await http.check(cert, issuer, now=datetime.now(UTC))
    assert status.is_good
    assert status.source is RevocationSource.OCSP
    standin.authority.revoke(cert)
    assert (await http.check(cert, issuer, now=datetime.now(UTC))).is_revoked
    assert standin.authority.ocsp_requests == 2
    assert standin.authority.crl_requests == 0


async def test_http_falls_back_to_the_crl_without_an_ocsp_url(
    dev_pki: DevPki, standin: OcspStandin, http: HttpRevocationChecker, issuer: x509.Certificate
) -> None:
    cert = _issue(dev_pki, standin, ocsp=False)
    standin.authority.revoke(cert)
    status = await http.check(cert, issuer, now=datetime.now(UTC))
    assert status.is_revoked
    assert status.source is RevocationSource.CRL
    # the CRL is kept until its nextUpdate: one download serves the CA's certificates
    await http.check(cert, issuer, now=datetime.now(UTC))
    assert standin.authority.crl_requests == 1


async def test_http_falls_back_to_the_crl_when_the_responder_fails(
    dev_pki: DevPki, http: HttpRevocationChecker, issuer: x509.Certificate
) -> None:
    authority = RevocationAuthority({"ap-ca": dev_pki.ap_ca})
    async with OcspStandin(authority) as crl_server:
        cert = issue_end_entity(
            dev_pki.ap_ca,
            "PNO000071",
            now=datetime.now(UTC),
            ocsp_url="http://127.0.0.1:9/ocsp",  # discard port: nothing listens
            crl_url=crl_server.crl_url("ap-ca"),
        ).certificate
        status = await http.check(cert, issuer, now=datetime.now(UTC))
    assert status.source is RevocationSource.CRL
    assert status.is_good


async def test_http_without_any_source(
    dev_pki: DevPki, http: HttpRevocationChecker, issuer: x509.Certificate
) -> None:
    cert = issue_end_entity(
        dev_pki.ap_ca,
        "PNO000072",
        now=datetime.now(UTC),
        ocsp_url="ldap://ldap.invalid/cn=ocsp",  # not fetchable over HTTP
    ).certificate
    with pytest.raises(NoRevocationSource):
        await http.check(cert, issuer, now=datetime.now(UTC))


async def test_http_reports_an_outage_as_unavailable(
    dev_pki: DevPki, standin: OcspStandin, http: HttpRevocationChecker, issuer: x509.Certificate
) -> None:
    cert = _issue(dev_pki, standin)
    standin.outage = True
    with pytest.raises(RevocationUnavailable, match="503"):
        await http.check(cert, issuer, now=datetime.now(UTC))


async def test_http_reports_a_slow_responder_as_unavailable(
    dev_pki: DevPki, standin: OcspStandin, issuer: x509.Certificate
) -> None:
    cert = _issue(dev_pki, standin, crl=False)
    standin.delay = 1.0
    checker = HttpRevocationChecker(timeout=0.2)
    try:
        with pytest.raises(RevocationUnavailable, match="did not answer"):
            await checker.check(cert, issuer, now=datetime.now(UTC))
    finally:
        await checker.close()


async def test_http_caps_the_answer_size(
    dev_pki: DevPki, standin: OcspStandin, issuer: x509.Certificate
) -> None:
    cert = _issue(dev_pki, standin, crl=False)
    checker = HttpRevocationChecker(max_ocsp_bytes=100)
    try:
        with pytest.raises(RevocationResponseError) as caught:
            await checker.check(cert, issuer, now=datetime.now(UTC))
    finally:
        await checker.close()
    assert caught.value.rule == "revocation-size"


async def test_http_stops_asking_a_dead_responder_for_a_while(
    dev_pki: DevPki, standin: OcspStandin, http: HttpRevocationChecker, issuer: x509.Certificate
) -> None:
    cert = _issue(dev_pki, standin, crl=False)
    standin.outage = True
    for _ in range(3):
        with pytest.raises(RevocationUnavailable):
            await http.check(cert, issuer, now=datetime.now(UTC))
    asked = standin.authority.ocsp_requests
    standin.outage = False
    with pytest.raises(RevocationUnavailable, match="circuit open"):
        await http.check(cert, issuer, now=datetime.now(UTC))
    assert standin.authority.ocsp_requests == asked


async def test_a_delegated_responder_over_http(
    dev_pki: DevPki, http: HttpRevocationChecker, issuer: x509.Certificate
) -> None:
    authority = RevocationAuthority({"ap-ca": dev_pki.ap_ca}, delegated=True)
    async with OcspStandin(authority) as standin:
        cert = _issue(dev_pki, standin, crl=False)
        authority.revoke(cert)
        status = await http.check(cert, issuer, now=datetime.now(UTC))
    assert status.is_revoked


async def test_the_production_wiring_caches_over_http(
    dev_pki: DevPki, standin: OcspStandin, issuer: x509.Certificate
) -> None:
    cert = _issue(dev_pki, standin)
    policy = RevocationPolicy.create("hard-fail", timeout=2.0)
    try:
        for _ in range(3):
            verdict = await policy.verify(cert, issuer, now=datetime.now(UTC))
            assert verdict.status is not None
            assert verdict.status.is_good
    finally:
        await policy.close()
    assert standin.authority.ocsp_requests == 1


# --------------------------------------------------------------------------- settings


def test_the_setting_defaults_to_soft_fail_and_is_read_from_the_environment() -> None:
    assert Settings().revocation == "soft-fail"
    settings = load_settings(
        {"BUDSTIKKE_REVOCATION": "hard-fail", "BUDSTIKKE_REVOCATION_TIMEOUT": "2.5"}
    )
    assert settings.revocation == "hard-fail"
    assert settings.revocation_timeout == timedelta(seconds=2.5)
    with pytest.raises(ConfigurationError, match="BUDSTIKKE_REVOCATION"):
        load_settings({"BUDSTIKKE_REVOCATION": "sometimes"})
