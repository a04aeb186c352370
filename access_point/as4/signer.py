"""Who signed: the certificate in a BinarySecurityToken, and whether we trust it.

Certificates are parsed once per distinct DER (peers send the same token with every message),
and a certificate's path to the anchors is built once per trust store; only the validity
periods are checked again for each verification time.
"""

from __future__ import annotations

import base64
import binascii
import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from sbdh.errors import UntrustedSigner
from sbdh.trust import KeyPurpose, TrustStore, verify_certificate

from .errors import FailedAuthentication, UntrustedSender

__all__ = [
    "TrustPolicy",
    "TrustVerdict",
    "certificate_b64",
    "common_name",
    "evaluate_trust",
    "load_token_certificate",
    "trusted_path",
]


@functools.lru_cache(maxsize=512)
def _load_der(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def load_token_certificate(text: str | None) -> x509.Certificate:
    """The certificate in a base64 BinarySecurityToken value."""
    try:
        der = base64.b64decode("".join((text or "").split()), validate=True)
        return _load_der(der)
    except (binascii.Error, ValueError) as exc:
        raise FailedAuthentication(
            f"the BinarySecurityToken is not an X.509 certificate: {exc}", rule="as4-token"
        ) from exc


@functools.lru_cache(maxsize=64)
def certificate_b64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


@functools.lru_cache(maxsize=512)
def common_name(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


_paths: OrderedDict[tuple[x509.Certificate, TrustStore, KeyPurpose], tuple[x509.Certificate, ...]]
_paths = OrderedDict()
_paths_lock = threading.Lock()
_MAX_PATHS = 256


def _check_period(path: tuple[x509.Certificate, ...], at: datetime) -> None:
    for cert in path:
        if at < cert.not_valid_before_utc:
            raise UntrustedSigner(
                f"certificate {cert.subject.rfc4514_string()} is not valid before "
                f"{cert.not_valid_before_utc:%Y-%m-%d}",
                rule="cert-not-yet-valid",
            )
        if at > cert.not_valid_after_utc:
            raise UntrustedSigner(
                f"certificate {cert.subject.rfc4514_string()} expired "
                f"{cert.not_valid_after_utc:%Y-%m-%d}",
                rule="cert-expired",
            )


def trusted_path(
    certificate: x509.Certificate,
    trust: TrustStore,
    *,
    at: datetime,
    purpose: KeyPurpose = KeyPurpose.SIGNING,
) -> tuple[x509.Certificate, ...]:
    """:func:`sbdh.trust.verify_certificate`, with the path remembered per trust store.

    Raises :class:`UntrustedSender` (EBMS:0101) with the rule of the failed check.
    """
    key = (certificate, trust, purpose)
    with _paths_lock:
        path = _paths.get(key)
        if path is not None:
            _paths.move_to_end(key)
    try:
        if path is None:
            path = verify_certificate(certificate, trust, at=at, purpose=purpose)
            with _paths_lock:
                _paths[key] = path
                while len(_paths) > _MAX_PATHS:
                    _paths.popitem(last=False)
        else:
            _check_period(path, at)
    except UntrustedSigner as exc:
        raise UntrustedSender(exc.message, rule=exc.rule) from exc
    return path


@dataclass(frozen=True)
class TrustPolicy:
    """Which signers of signals (receipts, errors) to accept.

    ``store``: the signer must chain to these anchors at the verification time.
    ``pinned``: the signer must be one of these certificates (the receiver's certificate from
    its SMP entry, typically) and be within its validity period.
    Both may be given; then both must hold. With neither, only the signature's integrity is
    checked (against the certificate it carries) and the verdict says the signer is untrusted;
    ``required=False`` reports an untrusted signer in the verdict instead of raising.
    """

    store: TrustStore | None = None
    pinned: tuple[x509.Certificate, ...] = ()
    required: bool = True


@dataclass(frozen=True)
class TrustVerdict:
    trusted: bool
    #: the signer's path to an anchor, leaf first (empty when not chained)
    chain: tuple[x509.Certificate, ...] = ()
    #: why the signer is not trusted
    problem: str | None = None


def evaluate_trust(
    certificate: x509.Certificate, policy: TrustPolicy, at: datetime
) -> TrustVerdict:
    """Judge ``certificate`` under ``policy`` at ``at``; never raises for an untrusted signer."""
    if policy.store is None and not policy.pinned:
        try:
            _check_period((certificate,), at)
        except UntrustedSigner as exc:
            return TrustVerdict(False, (), str(exc))
        return TrustVerdict(False, (), "no trust anchors or pinned certificates configured")
    chain: tuple[x509.Certificate, ...] = ()
    if policy.pinned:
        if certificate not in policy.pinned:
            return TrustVerdict(
                False,
                (),
                f"signer {certificate.subject.rfc4514_string()} is not the expected certificate",
            )
        try:
            _check_period((certificate,), at)
        except UntrustedSigner as exc:
            return TrustVerdict(False, (), str(exc))
    if policy.store is not None:
        try:
            chain = trusted_path(certificate, policy.store, at=at)
        except UntrustedSender as exc:
            return TrustVerdict(False, (), str(exc))
    return TrustVerdict(True, chain, None)
