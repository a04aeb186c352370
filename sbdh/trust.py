"""Is this certificate one we trust, for this purpose, at this time?

A small, strict path validator for the closed PKIs an access point deals with (the Peppol AP and
SMP hierarchies, Norwegian enterprise certificates, the development PKI): build the path from
the leaf through the known intermediates to a configured trust anchor, check every signature,
validity period and CA constraint on the way, and the leaf's key usage for the purpose asked.
Revocation is not checked here; the AS4 layer adds OCSP/CRL where it is configured.

Everything is passed in, the time included, so verification is repeatable (and a signature made
in 2020 can be checked as of 2020).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID

from sbdh.errors import ConfigurationError, UntrustedSigner

__all__ = ["KeyPurpose", "TrustStore", "load_certificates", "verify_certificate"]

_MAX_PATH = 8


class KeyPurpose(enum.Enum):
    """What the leaf's key is about to be used for."""

    #: signatures on messages, packages, receipts (digitalSignature or nonRepudiation)
    SIGNING = "signing"
    #: a content-encryption key is wrapped to it (keyEncipherment)
    ENCRYPTION = "encryption"


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """All certificates in ``data``: one or more PEM blocks, or a single DER certificate."""
    try:
        if b"-----BEGIN" in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ConfigurationError(f"not a certificate (PEM or DER): {exc}") from exc


@dataclass(frozen=True)
class TrustStore:
    """Trust anchors (self-signed roots or pinned CAs) and intermediates known to help paths."""

    anchors: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        if not self.anchors:
            raise ConfigurationError("a trust store needs at least one trust anchor")

    @classmethod
    def from_pem(cls, *pem: bytes, intermediates: Iterable[bytes] = ()) -> TrustStore:
        anchors = tuple(c for blob in pem for c in load_certificates(blob))
        inter = tuple(c for blob in intermediates for c in load_certificates(blob))
        return cls(anchors, inter)

    @classmethod
    def load(cls, *paths: str | Path, intermediates: Iterable[str | Path] = ()) -> TrustStore:
        return cls.from_pem(
            *(Path(p).read_bytes() for p in paths),
            intermediates=[Path(p).read_bytes() for p in intermediates],
        )


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    if child.issuer != issuer.subject:
        return False
    try:
        child.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial {cert.serial_number}"


def _check_validity(cert: x509.Certificate, at: datetime) -> None:
    if at < cert.not_valid_before_utc:
        raise UntrustedSigner(
            f"certificate {_describe(cert)} is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d}",
            rule="cert-not-yet-valid",
        )
    if at > cert.not_valid_after_utc:
        raise UntrustedSigner(
            f"certificate {_describe(cert)} expired {cert.not_valid_after_utc:%Y-%m-%d}",
            rule="cert-expired",
        )


def _check_ca(cert: x509.Certificate, below: int) -> None:
    """``cert`` issues a certificate with ``below`` CA certificates under it in the path."""
    try:
        bc = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    except x509.ExtensionNotFound as exc:
        raise UntrustedSigner(
            f"issuer {_describe(cert)} has no basicConstraints: not a CA", rule="ca-constraint"
        ) from exc
    if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
        raise UntrustedSigner(f"issuer {_describe(cert)} is not a CA", rule="ca-constraint")
    if bc.path_length is not None and below > bc.path_length:
        raise UntrustedSigner(
            f"issuer {_describe(cert)} allows {bc.path_length} CAs below it, path has {below}",
            rule="ca-constraint",
        )
    try:
        ku = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
    except x509.ExtensionNotFound:
        return
    if isinstance(ku, x509.KeyUsage) and not ku.key_cert_sign:
        raise UntrustedSigner(
            f"issuer {_describe(cert)} may not sign certificates (keyCertSign)",
            rule="ca-constraint",
        )


def _check_purpose(cert: x509.Certificate, purpose: KeyPurpose) -> None:
    try:
        ku = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
    except x509.ExtensionNotFound as exc:
        raise UntrustedSigner(
            f"certificate {_describe(cert)} has no keyUsage extension", rule="key-usage"
        ) from exc
    assert isinstance(ku, x509.KeyUsage)
    if purpose is KeyPurpose.SIGNING and not (ku.digital_signature or ku.content_commitment):
        raise UntrustedSigner(
            f"certificate {_describe(cert)} is not for signatures "
            "(needs digitalSignature or nonRepudiation)",
            rule="key-usage",
        )
    if purpose is KeyPurpose.ENCRYPTION and not ku.key_encipherment:
        raise UntrustedSigner(
            f"certificate {_describe(cert)} is not for key transport (needs keyEncipherment)",
            rule="key-usage",
        )


def verify_certificate(
    cert: x509.Certificate,
    trust: TrustStore,
    *,
    at: datetime,
    purpose: KeyPurpose,
    extra_chain: Sequence[x509.Certificate] = (),
) -> tuple[x509.Certificate, ...]:
    """Validate ``cert`` and return its path, leaf first, trust anchor last.

    ``extra_chain`` holds intermediates that came with the signature (KeyInfo, BST). Raises
    :class:`UntrustedSigner` with rule ``chain-incomplete``, ``cert-expired``,
    ``cert-not-yet-valid``, ``ca-constraint`` or ``key-usage``.
    """
    if at.tzinfo is None:
        raise ValueError("verification time must be timezone-aware")
    anchors = {_fingerprint(a): a for a in trust.anchors}
    pool = [*extra_chain, *trust.intermediates]
    path = [cert]
    current = cert
    while _fingerprint(current) not in anchors:
        if len(path) > _MAX_PATH:
            raise UntrustedSigner("certificate path too long", rule="chain-incomplete")
        issuer = next((a for a in trust.anchors if _issued_by(current, a)), None)
        if issuer is None:
            seen = {_fingerprint(c) for c in path}
            issuer = next(
                (c for c in pool if _fingerprint(c) not in seen and _issued_by(current, c)), None
            )
        if issuer is None:
            raise UntrustedSigner(
                f"no path from {_describe(cert)} to a trust anchor "
                f"(no trusted issuer for {_describe(current)})",
                rule="chain-incomplete",
            )
        path.append(issuer)
        current = issuer
    for cert_in_path in path:
        _check_validity(cert_in_path, at)
    for below, issuer in enumerate(path[1:]):
        _check_ca(issuer, below)
    _check_purpose(cert, purpose)
    return tuple(path)
