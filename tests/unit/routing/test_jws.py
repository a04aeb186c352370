"""Compact RS256 JWS with x5c: what KRR's ``application/jose`` answers are."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import pytest

from routing.jws import sign_compact, verify_compact
from sbdh.errors import SignatureError, UntrustedSigner
from sbdh.pki import DevPki, generate_root_ca
from sbdh.trust import TrustStore

ORG = "991825827"
PAYLOAD = b'{"personer": []}'


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip(dev_pki: DevPki, trust: TrustStore, now: datetime) -> None:
    signer = dev_pki.organisations[ORG]
    token = sign_compact(PAYLOAD, signer)
    verified = verify_compact(token, trust=trust, at=now)
    assert verified.payload == PAYLOAD
    assert verified.signer == signer.certificate
    assert verified.path[-1] == dev_pki.root.certificate
    assert verified.header["alg"] == "RS256"
    assert verify_compact(token.encode(), trust=trust, at=now).payload == PAYLOAD


def test_changed_payload_does_not_verify(dev_pki: DevPki, trust: TrustStore, now: datetime) -> None:
    header, _, signature = sign_compact(PAYLOAD, dev_pki.organisations[ORG]).split(".")
    changed = _b64url(b'{"personer": [1]}')
    forged = f"{header}.{changed}.{signature}"
    with pytest.raises(SignatureError) as info:
        verify_compact(forged, trust=trust, at=now)
    assert info.value.rule == "jws-signature"


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", None])
def test_only_rs256_is_accepted(
    dev_pki: DevPki, trust: TrustStore, now: datetime, alg: str | None
) -> None:
    header, payload, signature = sign_compact(PAYLOAD, dev_pki.organisations[ORG]).split(".")
    fields = json.loads(base64.urlsafe_b64decode(header + "=="))
    fields["alg"] = alg
    with pytest.raises(SignatureError) as info:
        verify_compact(
            f"{_b64url(json.dumps(fields).encode())}.{payload}.{signature}", trust=trust, at=now
        )
    assert info.value.rule == "jws-alg"


def test_a_signer_outside_the_trust_anchors_is_refused(dev_pki: DevPki, now: datetime) -> None:
    other = TrustStore((generate_root_ca("Other root", now=now, key_size=2048).certificate,))
    token = sign_compact(PAYLOAD, dev_pki.organisations[ORG])
    with pytest.raises(UntrustedSigner):
        verify_compact(token, trust=other, at=now)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.e30.AA",
        _b64url(b"[]") + ".e30.AA",
        _b64url(b'{"alg":"RS256"}') + ".e30.AA",  # no x5c
        _b64url(b'{"alg":"RS256","x5c":["AAAA"]}') + ".e30.AA",
    ],
)
def test_malformed_tokens_are_refused(trust: TrustStore, now: datetime, token: str) -> None:
    with pytest.raises(SignatureError):
        verify_compact(token, trust=trust, at=now)


def test_critical_extensions_are_refused(dev_pki: DevPki, trust: TrustStore, now: datetime) -> None:
    header, payload, signature = sign_compact(PAYLOAD, dev_pki.organisations[ORG]).split(".")
    fields = json.loads(base64.urlsafe_b64decode(header + "=="))
    fields["crit"] = ["b64"]
    with pytest.raises(SignatureError) as info:
        verify_compact(
            f"{_b64url(json.dumps(fields).encode())}.{payload}.{signature}", trust=trust, at=now
        )
    assert info.value.rule == "jws-crit"
