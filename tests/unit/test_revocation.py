"""The pure revocation core (sbdh/revocation.py): OCSP requests and responses, CRLs, and the
URLs a certificate names; keys and certificates made at test time, answers made by the
stand-in's authority or by hand where a test needs a broken one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

from adapters.standins.ocsp import RevocationAuthority, issue_ocsp_responder
from sbdh.errors import TransientDeliveryError, UntrustedSigner
from sbdh.pki import Credential, DevPki, issue_end_entity
from sbdh.revocation import (
    CertificateRevoked,
    CertStatus,
    RevocationOptions,
    RevocationRefused,
    RevocationResponseError,
    RevocationSource,
    RevocationStatus,
    RevocationUnavailable,
    build_ocsp_request,
    check_crl,
    crl_urls,
    load_crl,
    ocsp_urls,
    read_ocsp_response,
)

OCSP_URL = "http://ocsp.test.invalid/ocsp"
CRL_URL = "http://crl.test.invalid/ap-ca.crl"


@pytest.fixture(scope="module")
def leaf(dev_pki: DevPki, now: datetime) -> Credential:
    return issue_end_entity(dev_pki.ap_ca, "PNO000042", now=now, ocsp_url=OCSP_URL, crl_url=CRL_URL)


@pytest.fixture(scope="module")
def other_leaf(dev_pki: DevPki, now: datetime) -> Credential:
    return issue_end_entity(dev_pki.ap_ca, "PNO000043", now=now)


@pytest.fixture
def authority(dev_pki: DevPki) -> RevocationAuthority:
    return RevocationAuthority({"ap-ca": dev_pki.ap_ca, "org-ca": dev_pki.org_ca})


def _ask(
    authority: RevocationAuthority,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    nonce: bytes | None = b"0123456789abcdef",
    now: datetime | None = None,
    options: RevocationOptions | None = None,
) -> RevocationStatus:
    request = build_ocsp_request(cert, issuer, nonce=nonce)
    answer = authority.ocsp_answer(request.der)
    return read_ocsp_response(
        answer,
        request=request,
        issuer=issuer,
        now=now or datetime.now(UTC),
        options=options or RevocationOptions(),
    )


# --------------------------------------------------------------------------- where to ask


def test_the_urls_come_from_aia_and_the_distribution_points(
    leaf: Credential, other_leaf: Credential
) -> None:
    assert ocsp_urls(leaf.certificate) == (OCSP_URL,)
    assert crl_urls(leaf.certificate) == (CRL_URL,)
    assert ocsp_urls(other_leaf.certificate) == ()
    assert crl_urls(other_leaf.certificate) == ()


def test_the_dev_pki_default_is_unchanged_no_revocation_pointers(dev_pki: DevPki) -> None:
    for credential in [*dev_pki.access_points.values(), *dev_pki.organisations.values()]:
        assert ocsp_urls(credential.certificate) == ()
        assert crl_urls(credential.certificate) == ()


def test_a_request_for_a_certificate_and_the_wrong_issuer_is_a_mistake(
    leaf: Credential, dev_pki: DevPki
) -> None:
    with pytest.raises(ValueError, match="not the issuer"):
        build_ocsp_request(leaf.certificate, dev_pki.org_ca.certificate)


# --------------------------------------------------------------------------- OCSP round trips


def test_ocsp_round_trip_good(
    authority: RevocationAuthority, leaf: Credential, dev_pki: DevPki
) -> None:
    status = _ask(authority, leaf.certificate, dev_pki.ap_ca.certificate)
    assert status.status is CertStatus.GOOD
    assert status.source is RevocationSource.OCSP
    assert status.serial_number == leaf.certificate.serial_number
    assert status.next_update is not None


def test_ocsp_round_trip_revoked_with_reason_and_time(
    authority: RevocationAuthority, leaf: Credential, dev_pki: DevPki
) -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    authority.revoke(leaf.certificate, at=when, reason=x509.ReasonFlags.superseded)
    status = _ask(authority, leaf.certificate, dev_pki.ap_ca.certificate)
    assert status.status is CertStatus.REVOKED
    assert status.revoked_at == when
    assert status.reason is x509.ReasonFlags.superseded
    assert "superseded" in status.describe()
    authority.reinstate(leaf.certificate)
    assert _ask(authority, leaf.certificate, dev_pki.ap_ca.certificate).is_good


def test_ocsp_unknown_is_reported_as_unknown(
    authority: RevocationAuthority, leaf: Credential, dev_pki: DevPki
) -> None:
    authority.mark_unknown(leaf.certificate)
    status = _ask(authority, leaf.certificate, dev_pki.ap_ca.certificate)
    assert status.status is CertStatus.UNKNOWN


def test_ocsp_without_a_nonce_round_trips(
    authority: RevocationAuthority, leaf: Credential, dev_pki: DevPki
) -> None:
    assert _ask(authority, leaf.certificate, dev_pki.ap_ca.certificate, nonce=None).is_good


def test_a_delegated_responder_certified_by_the_issuer_is_accepted(
    dev_pki: DevPki, leaf: Credential
) -> None:
    authority = RevocationAuthority({"ap-ca": dev_pki.ap_ca}, delegated=True)
    responder = authority.responder("ap-ca")
    assert responder.certificate != dev_pki.ap_ca.certificate
    authority.revoke(leaf.certificate)
    status = _ask(authority, leaf.certificate, dev_pki.ap_ca.certificate)
    assert status.status is CertStatus.REVOKED


def test_the_responder_may_answer_with_another_hash_algorithm(
    authority: RevocationAuthority, leaf: Credential, dev_pki: DevPki
) -> None:
    request = build_ocsp_request(
        leaf.certificate, dev_pki.ap_ca.certificate, algorithm=hashes.SHA256()
    )
    answer = authority.ocsp_answer(request.der)
    status = read_ocsp_response(
        answer, request=request, issuer=dev_pki.ap_ca.certificate, now=datetime.now(UTC)
    )
    assert status.is_good


# --------------------------------------------------------------------------- hand-made answers


def _hand_made(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    signer: Credential,
    responder: x509.Certificate | None = None,
    include: list[x509.Certificate] | None = None,
    this_update: datetime | None = None,
    next_update: datetime | None = None,
    nonce: bytes | None = None,
) -> bytes:
    now = datetime.now(UTC)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=issuer,
        algorithm=hashes.SHA1(),
        cert_status=ocsp.OCSPCertStatus.GOOD,
        this_update=this_update or now - timedelta(minutes=1),
        next_update=next_update,
        revocation_time=None,
        revocation_reason=None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder or signer.certificate)
    if include:
        builder = builder.certificates(include)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    response = builder.sign(signer.key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


def _read(
    der: bytes, cert: x509.Certificate, issuer: x509.Certificate, **kw: object
) -> RevocationStatus:
    nonce = kw.pop("nonce", None)
    options = kw.pop("options", RevocationOptions())
    now = kw.pop("now", datetime.now(UTC))
    assert isinstance(options, RevocationOptions)
    assert isinstance(now, datetime)
    assert nonce is None or isinstance(nonce, bytes)
    request = build_ocsp_request(cert, issuer, nonce=nonce)
    return read_ocsp_response(der, request=request, issuer=issuer, now=now, options=options)


def test_a_hand_made_answer_signed_by_the_issuer_is_good(leaf: Credential, dev_pki: DevPki) -> None:
    ca = dev_pki.ap_ca
    der = _hand_made(leaf.certificate, ca.certificate, signer=ca)
    assert _read(der, leaf.certificate, ca.certificate).is_good


def test_an_answer_signed_by_another_ca_is_rejected(leaf: Credential, dev_pki: DevPki) -> None:
    ca = dev_pki.ap_ca
    der = _hand_made(leaf.certificate, ca.certificate, signer=dev_pki.org_ca)
    with pytest.raises(RevocationResponseError, match="neither the issuer") as caught:
        _read(der, leaf.certificate, ca.certificate)
    assert caught.value.rule == "ocsp-signer"


def test_an_answer_naming_the_issuer_whose_signature_does_not_verify_is_rejected(
    leaf: Credential, dev_pki: DevPki
) -> None:
    ca = dev_pki.ap_ca
    der = bytearray(_hand_made(leaf.certificate, ca.certificate, signer=ca))
    der[-1] ^= 0x01  # no certificates follow: the last byte is the signature's
    with pytest.raises(RevocationResponseError) as caught:
        _read(bytes(der), leaf.certificate, ca.certificate)
    assert caught.value.rule == "ocsp-signature"


def test_a_delegated_responder_without_the_ocsp_signing_purpose_is_rejected(
    leaf: Credential, other_leaf: Credential, dev_pki: DevPki
) -> None:
    ca = dev_pki.ap_ca
    der = _hand_made(
        leaf.certificate, ca.certificate, signer=other_leaf, include=[other_leaf.certificate]
    )
    with pytest.raises(RevocationResponseError, match="OCSP-signing"):
        _read(der, leaf.certificate, ca.certificate)


def test_a_delegated_responder_certified_by_another_ca_is_rejected(
    leaf: Credential, dev_pki: DevPki, now: datetime
) -> None:
    ca = dev_pki.ap_ca
    stranger = issue_ocsp_responder(dev_pki.org_ca, now=now)
    der = _hand_made(
        leaf.certificate, ca.certificate, signer=stranger, include=[stranger.certificate]
    )
    with pytest.raises(RevocationResponseError, match="not certified by"):
        _read(der, leaf.certificate, ca.certificate)


def test_an_expired_delegated_responder_is_rejected(leaf: Credential, dev_pki: DevPki) -> None:
    ca = dev_pki.ap_ca
    long_ago = datetime.now(UTC) - timedelta(days=400)
    expired = issue_ocsp_responder(ca, now=long_ago, days=30)
    der = _hand_made(
        leaf.certificate, ca.certificate, signer=expired, include=[expired.certificate]
    )
    with pytest.raises(RevocationResponseError, match="not valid now"):
        _read(der, leaf.certificate, ca.certificate)


def test_a_stale_answer_is_rejected(leaf: Credential, dev_pki: DevPki) -> None:
    ca = dev_pki.ap_ca
    now = datetime.now(UTC)
    der = _hand_made(
        leaf.certificate,
        ca.certificate,
        signer=ca,
        this_update=now - timedelta(days=2),
        next_update=now - timedelta(hours=1),
    )
    with pytest.raises(RevocationResponseError, match="stale") as caught:
        _read(der, leaf.certificate, ca.certificate)
    assert caught.value.rule == "ocsp-freshness"


def test_the_clock_skew_is_tolerated_both_ways(leaf: Credential, dev_pki: DevPki) -> None:
    ca = dev_pki.ap_ca
    now = datetime.now(UTC)
    der = _hand_made(
        leaf.certificate,
        ca.certificate,
        signer=ca,
        this_update=now - timedelta(hours=2),
        next_update=now - timedelta(minutes=2),
    )
    assert _read(der, leaf.certificate, ca.certificate, now=now).is_good
    # an answer dated a little ahead of our clock is fine, one far ahead is not
    ahead = _hand_made(
        leaf.certificate, ca.certificate, signer=ca, this_update=now + timedelta(minutes=2)
    )
    assert _read(ahead, leaf.certificate, ca.certificate, now=now).is_good
    with pytest.raises(RevocationResponseError, match="future"):
        _read(ahead, leaf.certificate, ca.certificate, now=now - timedelta(hours=1))


def test_an_old_answer_without_next_update_is_rejected(leaf: Credential, dev_pki: DevPki) -> None:
    ca = dev_pki.ap_ca
    now = datetime.now(UTC)
    der = _hand_made(
        leaf.certificate, ca.certificate, signer=ca, this_update=now - timedelta(days=3)
    )
    with pytest.raises(RevocationResponseError, match="no next update"):
        _read(der, leaf.certificate, ca.certificate, now=now)
    fresh = _hand_made(leaf.certificate, ca.certificate, signer=ca)
    assert _read(fresh, leaf.certificate, ca.certificate, now=now).is_good


def test_a_nonce_that_is_not_ours_is_rejected(leaf: Credential, dev_pki: DevPki) -> None:
    ca = dev_pki.ap_ca
    der = _hand_made(leaf.certificate, ca.certificate, signer=ca, nonce=b"someone else's")
    with pytest.raises(RevocationResponseError, match="nonce") as caught:
        _read(der, leaf.certificate, ca.certificate, nonce=b"ours, sixteen by")
    assert caught.value.rule == "ocsp-nonce"
    echoed = _hand_made(leaf.certificate, ca.certificate, signer=ca, nonce=b"ours, sixteen by")
    assert _read(echoed, leaf.certificate, ca.certificate, nonce=b"ours, sixteen by").is_good


def test_a_missing_nonce_is_refused_only_when_required(leaf: Credential, dev_pki: DevPki) -> None:
    ca = dev_pki.ap_ca
    der = _hand_made(leaf.certificate, ca.certificate, signer=ca)
    assert _read(der, leaf.certificate, ca.certificate, nonce=b"n" * 16).is_good
    with pytest.raises(RevocationResponseError, match="does not echo"):
        _read(
            der,
            leaf.certificate,
            ca.certificate,
            nonce=b"n" * 16,
            options=RevocationOptions(require_nonce=True),
        )


def test_an_answer_about_another_certificate_is_rejected(
    leaf: Credential, other_leaf: Credential, dev_pki: DevPki
) -> None:
    ca = dev_pki.ap_ca
    der = _hand_made(other_leaf.certificate, ca.certificate, signer=ca)
    with pytest.raises(RevocationResponseError, match="does not answer") as caught:
        _read(der, leaf.certificate, ca.certificate)
    assert caught.value.rule == "ocsp-cert-id"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (ocsp.OCSPResponseStatus.TRY_LATER, RevocationUnavailable),
        (ocsp.OCSPResponseStatus.INTERNAL_ERROR, RevocationUnavailable),
        (ocsp.OCSPResponseStatus.UNAUTHORIZED, RevocationResponseError),
        (ocsp.OCSPResponseStatus.MALFORMED_REQUEST, RevocationResponseError),
        (ocsp.OCSPResponseStatus.SIG_REQUIRED, RevocationResponseError),
    ],
)
def test_unsuccessful_answers(
    status: ocsp.OCSPResponseStatus,
    error: type[Exception],
    leaf: Credential,
    dev_pki: DevPki,
) -> None:
    der = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
    with pytest.raises(error):
        _read(der, leaf.certificate, dev_pki.ap_ca.certificate)
    # tryLater is worth retrying; a refusal is not
    assert issubclass(error, TransientDeliveryError) == (error is RevocationUnavailable)


@pytest.mark.parametrize("garbage", [b"", b"\x30\x03\x0a\x01", b"not DER at all", b"\x30" * 40])
def test_malformed_ocsp_answers_are_errors(
    garbage: bytes, leaf: Credential, dev_pki: DevPki
) -> None:
    with pytest.raises(RevocationResponseError) as caught:
        _read(garbage, leaf.certificate, dev_pki.ap_ca.certificate)
    assert caught.value.rule == "ocsp-malformed"


def test_an_unknown_ca_is_answered_unauthorized_by_the_authority(
    dev_pki: DevPki, now: datetime
) -> None:
    authority = RevocationAuthority({"org-ca": dev_pki.org_ca})
    cert = issue_end_entity(dev_pki.ap_ca, "PNO000044", now=now).certificate
    with pytest.raises(RevocationResponseError, match="UNAUTHORIZED"):
        _ask(authority, cert, dev_pki.ap_ca.certificate)


# --------------------------------------------------------------------------- CRL


def test_a_crl_without_the_serial_says_good(
    authority: RevocationAuthority, leaf: Credential, dev_pki: DevPki
) -> None:
    status = check_crl(
        authority.crl("ap-ca"), leaf.certificate, dev_pki.ap_ca.certificate, now=datetime.now(UTC)
    )
    assert status.is_good
    assert status.source is RevocationSource.CRL


def test_a_crl_listing_the_serial_says_revoked_with_reason(
    authority: RevocationAuthority, leaf: Credential, other_leaf: Credential, dev_pki: DevPki
) -> None:
    when = datetime(2025, 6, 1, tzinfo=UTC)
    authority.revoke(leaf.certificate, at=when, reason=x509.ReasonFlags.key_compromise)
    crl = authority.crl("ap-ca")
    now = datetime.now(UTC)
    status = check_crl(crl, leaf.certificate, dev_pki.ap_ca.certificate, now=now)
    assert status.is_revoked
    assert status.revoked_at == when
    assert status.reason is x509.ReasonFlags.key_compromise
    assert check_crl(crl, other_leaf.certificate, dev_pki.ap_ca.certificate, now=now).is_good


def test_a_pem_crl_is_read_too(
    authority: RevocationAuthority, leaf: Credential, dev_pki: DevPki
) -> None:
    authority.revoke(leaf.certificate)
    pem = load_crl(authority.crl("ap-ca")).public_bytes(serialization.Encoding.PEM)
    assert check_crl(
        pem, leaf.certificate, dev_pki.ap_ca.certificate, now=datetime.now(UTC)
    ).is_revoked


def test_a_crl_of_another_ca_is_rejected(
    authority: RevocationAuthority, leaf: Credential, dev_pki: DevPki
) -> None:
    with pytest.raises(RevocationResponseError, match="issued by") as caught:
        check_crl(
            authority.crl("org-ca"),
            leaf.certificate,
            dev_pki.ap_ca.certificate,
            now=datetime.now(UTC),
        )
    assert caught.value.rule == "crl-issuer"


def _crl(
    issuer: x509.Name,
    key: rsa.RSAPrivateKey,
    *,
    last: datetime,
    next_: datetime,
    delta: bool = False,
) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(last)
        .next_update(next_)
    )
    if delta:
        builder = builder.add_extension(x509.DeltaCRLIndicator(1), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_a_crl_in_the_issuers_name_signed_by_another_key_is_rejected(
    leaf: Credential, dev_pki: DevPki
) -> None:
    now = datetime.now(UTC)
    forged = _crl(
        dev_pki.ap_ca.certificate.subject,
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        last=now - timedelta(minutes=1),
        next_=now + timedelta(hours=1),
    )
    with pytest.raises(RevocationResponseError) as caught:
        check_crl(forged, leaf.certificate, dev_pki.ap_ca.certificate, now=now)
    assert caught.value.rule == "crl-signature"


def test_a_stale_crl_is_rejected(leaf: Credential, dev_pki: DevPki) -> None:
    now = datetime.now(UTC)
    stale = _crl(
        dev_pki.ap_ca.certificate.subject,
        dev_pki.ap_ca.key,
        last=now - timedelta(days=8),
        next_=now - timedelta(days=1),
    )
    with pytest.raises(RevocationResponseError, match="stale") as caught:
        check_crl(stale, leaf.certificate, dev_pki.ap_ca.certificate, now=now)
    assert caught.value.rule == "crl-freshness"


def test_a_delta_crl_alone_is_not_an_answer(leaf: Credential, dev_pki: DevPki) -> None:
    now = datetime.now(UTC)
    delta = _crl(
        dev_pki.ap_ca.certificate.subject,
        dev_pki.ap_ca.key,
        last=now - timedelta(minutes=1),
        next_=now + timedelta(hours=1),
        delta=True,
    )
    with pytest.raises(RevocationResponseError, match="delta"):
        check_crl(delta, leaf.certificate, dev_pki.ap_ca.certificate, now=now)


@pytest.mark.parametrize(
    "garbage", [b"", b"garbage", b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"]
)
def test_malformed_crls_are_errors(garbage: bytes, leaf: Credential, dev_pki: DevPki) -> None:
    with pytest.raises(RevocationResponseError) as caught:
        check_crl(garbage, leaf.certificate, dev_pki.ap_ca.certificate, now=datetime.now(UTC))
    assert caught.value.rule == "crl-malformed"


# --------------------------------------------------------------------------- the error tree


def test_refusals_are_untrusted_signers_and_carry_their_status() -> None:
    assert issubclass(CertificateRevoked, RevocationRefused)
    assert issubclass(RevocationRefused, UntrustedSigner)
    refusal = RevocationRefused("down", rule="revocation-unavailable", transient=True)
    assert refusal.transient
    assert refusal.ebms_code == "EBMS:0101"
