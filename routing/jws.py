"""JWS compact serialisation with RS256 and an ``x5c`` header, as KRR signs its answers.

``Accept: application/jose`` makes the register answer with ``<header>.<payload>.<signature>``
(RFC 7515), the header ``{"alg": "RS256", "x5c": [<base64 DER>, ...]}`` and the payload the
same JSON it would otherwise send plainly. :func:`verify_compact` checks the signature with the
leaf certificate of ``x5c`` and that certificate against the trust anchors it is given (a
certificate in a header proves nothing on its own); :func:`sign_compact` makes such a token
(the local KRR stand-in signs with it).

Only RS256 is accepted: no ``none``, no HMAC, no header extensions (``crit``), no detached or
JSON serialisations. Failures are :class:`~sbdh.errors.SignatureError` (the token is malformed
or does not verify) or :class:`~sbdh.errors.UntrustedSigner` (it verifies, but with a
certificate that does not chain to a trust anchor).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sbdh.errors import SignatureError
from sbdh.pki import Credential
from sbdh.trust import KeyPurpose, TrustStore, verify_certificate

__all__ = ["VerifiedJws", "sign_compact", "verify_compact"]

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_MAX_X5C = 10
_DEFAULT_MAX_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True)
class VerifiedJws:
    """What a verified token holds: the payload bytes, the signer and its path to an anchor."""

    payload: bytes
    signer: x509.Certificate
    path: tuple[x509.Certificate, ...]
    header: dict[str, Any]


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(part: str, what: str) -> bytes:
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise SignatureError(f"the JWS {what} is not base64url", rule="jws-encoding")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def sign_compact(payload: bytes, credential: Credential) -> str:
    """``payload`` signed RS256 by ``credential``, its certificate and chain in ``x5c``."""
    chain = (credential.certificate, *credential.chain)
    header = {
        "alg": "RS256",
        "x5c": [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii")
            for c in chain
        ],
    }
    signing_input = (
        _b64url_encode(json.dumps(header, separators=(",", ":")).encode("utf-8"))
        + "."
        + _b64url_encode(payload)
    )
    signature = credential.key.sign(
        signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
    )
    return signing_input + "." + _b64url_encode(signature)


def _header(part: str) -> dict[str, Any]:
    try:
        header = json.loads(_b64url_decode(part, "header"))
    except (ValueError, UnicodeError) as exc:
        raise SignatureError("the JWS header is not JSON", rule="jws-header") from exc
    if not isinstance(header, dict):
        raise SignatureError("the JWS header is not a JSON object", rule="jws-header")
    if header.get("alg") != "RS256":
        raise SignatureError(
            f"JWS algorithm {header.get('alg')!r} is not accepted (only RS256)", rule="jws-alg"
        )
    if "crit" in header:
        raise SignatureError("the JWS header has critical extensions", rule="jws-crit")
    return header


def _x5c(header: dict[str, Any]) -> list[x509.Certificate]:
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not 1 <= len(x5c) <= _MAX_X5C:
        raise SignatureError("the JWS header has no x5c certificate chain", rule="jws-x5c")
    certs = []
    for entry in x5c:
        if not isinstance(entry, str):
            raise SignatureError("an x5c entry is not a string", rule="jws-x5c")
        try:
            certs.append(x509.load_der_x509_certificate(base64.b64decode(entry, validate=True)))
        except (ValueError, binascii.Error) as exc:
            raise SignatureError("an x5c entry is not a certificate", rule="jws-x5c") from exc
    return certs


def verify_compact(
    token: str | bytes,
    *,
    trust: TrustStore,
    at: datetime,
    max_size: int = _DEFAULT_MAX_SIZE,
) -> VerifiedJws:
    """Verify a compact RS256 JWS whose signer chains to ``trust`` at time ``at``."""
    if isinstance(token, bytes):
        if len(token) > max_size:
            raise SignatureError("the JWS is too large", rule="jws-size")
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError as exc:
            raise SignatureError("the JWS is not ASCII", rule="jws-encoding") from exc
    token = token.strip()
    if len(token) > max_size:
        raise SignatureError("the JWS is too large", rule="jws-size")
    parts = token.split(".")
    if len(parts) != 3:
        raise SignatureError("not a compact JWS (three parts)", rule="jws-encoding")
    header_part, payload_part, signature_part = parts
    header = _header(header_part)
    payload = _b64url_decode(payload_part, "payload")
    signature = _b64url_decode(signature_part, "signature")
    certs = _x5c(header)
    leaf = certs[0]
    public_key = leaf.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SignatureError("the JWS signer's key is not RSA", rule="jws-key")
    try:
        public_key.verify(
            signature,
            f"{header_part}.{payload_part}".encode("ascii"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature as exc:
        raise SignatureError("the JWS signature does not verify", rule="jws-signature") from exc
    path = verify_certificate(leaf, trust, at=at, purpose=KeyPurpose.SIGNING, extra_chain=certs[1:])
    return VerifiedJws(payload, leaf, path, header)
