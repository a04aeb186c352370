"""Has this certificate been revoked? OCSP (RFC 6960) and CRLs (RFC 5280), with no I/O.

Bytes and certificates in, frozen values out; the time is passed in. The I/O (posting the OCSP
request, downloading the CRL), the cache and the soft-/hard-fail policy live in
:mod:`access_point.revocation`; this module only builds requests and judges answers:

* :func:`ocsp_urls` and :func:`crl_urls` read where a certificate's issuer publishes its
  revocation information (the AIA extension's OCSP access method, the CRL distribution points);
* :func:`build_ocsp_request` makes the request for ``(cert, issuer)``, with a nonce if asked;
* :func:`read_ocsp_response` checks the answer: a successful basic response signed by the issuer
  itself, or by a responder certificate the issuer gave the OCSP-signing key purpose; the single
  response for exactly our certificate id; the nonce when both sides carry one; ``thisUpdate``,
  ``nextUpdate`` and ``producedAt`` against ``now`` with a small clock skew;
* :func:`check_crl` does the same for a CRL (DER or PEM): signed by the issuer, current, complete
  for this certificate, and whether the serial is listed.

The answer is a :class:`RevocationStatus`: GOOD, REVOKED (with the time and reason) or UNKNOWN.
What cannot be answered raises, split by what the caller does about it::

    BusError
    ├── InvalidInput
    │   ├── RevocationResponseError   the OCSP response or CRL is malformed, does not verify, is
    │   │                             stale, or does not answer for this certificate
    │   └── SignatureError
    │       └── UntrustedSigner
    │           └── RevocationRefused        the policy will not accept the certificate
    │               └── CertificateRevoked   ... because it is revoked (rule ``cert-revoked``)
    ├── NotFound
    │   └── NoRevocationSource        the certificate names no OCSP responder and no CRL
    └── TransientDeliveryError
        └── RevocationUnavailable     the responder could not be reached, timed out, answered
                                      5xx, or said tryLater / internalError

Not supported, on purpose: delta and indirect CRLs, partitioned CRLs (``onlySomeReasons``),
RSA-PSS signatures on OCSP responses; each is refused with a clear reason. A delegated
responder's own certificate is not checked for revocation (RFC 6960 4.2.2.2.1 leaves that to the
CA's choice; responder certificates are short-lived and usually carry ``id-pkix-ocsp-nocheck``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from sbdh.errors import (
    EbmsCode,
    InvalidInput,
    NotFound,
    TransientDeliveryError,
    UntrustedSigner,
)

__all__ = [
    "OCSP_REQUEST_MIME",
    "OCSP_RESPONSE_MIME",
    "CertStatus",
    "CertificateRevoked",
    "NoRevocationSource",
    "OcspRequest",
    "RevocationOptions",
    "RevocationRefused",
    "RevocationResponseError",
    "RevocationSource",
    "RevocationStatus",
    "RevocationUnavailable",
    "build_ocsp_request",
    "check_crl",
    "crl_urls",
    "issuer_hashes",
    "load_crl",
    "ocsp_urls",
    "read_ocsp_response",
]

OCSP_REQUEST_MIME = "application/ocsp-request"
OCSP_RESPONSE_MIME = "application/ocsp-response"


# --------------------------------------------------------------------------- errors


class RevocationResponseError(InvalidInput):
    """An OCSP response or CRL that cannot be relied on: malformed, not signed by the issuer
    (or its delegated responder), stale, or silent about the certificate asked about."""

    ebms_code = EbmsCode.FAILED_AUTHENTICATION
    code = "revocation-response-invalid"


class RevocationUnavailable(TransientDeliveryError):
    """The revocation status could not be obtained: the responder or CRL server was down, slow,
    answered an HTTP error, or said ``tryLater`` / ``internalError``. Soft-fail accepts this."""

    code = "revocation-unavailable"


class NoRevocationSource(NotFound):
    """The certificate names no OCSP responder and no CRL distribution point we can fetch."""

    code = "revocation-no-source"


class RevocationRefused(UntrustedSigner):
    """The revocation policy does not accept the certificate; the rule says why
    (``cert-revoked``, ``cert-status-unknown``, ``revocation-unavailable``,
    ``revocation-no-source``, ``revocation-response-invalid``)."""

    code = "revocation-refused"

    def __init__(
        self,
        message: str,
        *,
        rule: str | None = None,
        status: RevocationStatus | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message, rule=rule)
        #: the status that was established, when there is one
        self.status = status
        #: True when asking again later may give another answer (the responder was down)
        self.transient = transient


class CertificateRevoked(RevocationRefused):
    """The certificate is revoked: always refused, whatever the mode."""

    code = "certificate-revoked"


# --------------------------------------------------------------------------- values


class CertStatus(enum.StrEnum):
    """The three answers of RFC 6960 (a CRL gives only the first two)."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class RevocationSource(enum.StrEnum):
    OCSP = "ocsp"
    CRL = "crl"


@dataclass(frozen=True)
class RevocationStatus:
    """What the issuer (or its responder) says about one certificate, and how long it holds."""

    status: CertStatus
    source: RevocationSource
    serial_number: int
    #: when the issuer last knew this to be true (OCSP thisUpdate, CRL lastUpdate)
    this_update: datetime
    #: when newer information will be available; None when the issuer does not say
    next_update: datetime | None = None
    revoked_at: datetime | None = None
    reason: x509.ReasonFlags | None = None

    @property
    def is_good(self) -> bool:
        return self.status is CertStatus.GOOD

    @property
    def is_revoked(self) -> bool:
        return self.status is CertStatus.REVOKED

    def describe(self) -> str:
        text = f"{self.status} by {self.source} (serial {self.serial_number:x})"
        if self.is_revoked:
            reason = self.reason.value if self.reason is not None else "no reason given"
            when = f"{self.revoked_at:%Y-%m-%d %H:%M:%SZ}" if self.revoked_at else "unknown time"
            text += f", revoked {when}: {reason}"
        return text


@dataclass(frozen=True)
class RevocationOptions:
    """How strictly answers are judged."""

    #: tolerated difference between our clock and the issuer's
    clock_skew: timedelta = timedelta(minutes=5)
    #: how old an answer without nextUpdate may be (such responders answer afresh each time)
    max_age: timedelta = timedelta(days=1)
    #: refuse an OCSP response that does not echo the nonce we sent. Off by default: RFC 5019
    #: responders (and CDN-cached ones) serve pre-produced responses without one; a nonce that
    #: *is* echoed must always match
    require_nonce: bool = False


DEFAULT_OPTIONS = RevocationOptions()


@dataclass(frozen=True)
class OcspRequest:
    """A DER OCSP request and what its answer must match."""

    der: bytes
    serial_number: int
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    algorithm: str
    nonce: bytes | None = None


# --------------------------------------------------------------------------- where to ask


def _uris(names: Iterable[x509.GeneralName]) -> list[str]:
    return [n.value for n in names if isinstance(n, x509.UniformResourceIdentifier)]


def ocsp_urls(cert: x509.Certificate) -> tuple[str, ...]:
    """The OCSP responder URLs in the certificate's Authority Information Access extension."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        uri
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        for uri in _uris([d.access_location])
    )


def crl_urls(cert: x509.Certificate) -> tuple[str, ...]:
    """The full-name URIs of the certificate's CRL distribution points (http, ldap, …)."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(uri for point in points for uri in _uris(point.full_name or ()))


# --------------------------------------------------------------------------- OCSP


def _cert_id(
    cert: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes]:
    # the builder computes the name hash and the hash of the issuer key's BIT STRING for us
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm).build()
    return request.issuer_name_hash, request.issuer_key_hash


def issuer_hashes(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """The issuer name and key hashes of an OCSP certificate id, for any certificate ``issuer``
    issued (what a responder matches a request against)."""
    digest = hashes.Hash(algorithm)
    digest.update(issuer.subject.public_bytes())
    return digest.finalize(), _cert_id(issuer, issuer, algorithm)[1]


def _check_issuer(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    if cert.issuer != issuer.subject:
        raise ValueError(
            f"{issuer.subject.rfc4514_string()} is not the issuer of "
            f"{cert.subject.rfc4514_string()}"
        )


def build_ocsp_request(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    nonce: bytes | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> OcspRequest:
    """An OCSP request for ``cert``. The certificate id is hashed with SHA-1 by default: the
    only algorithm RFC 5019 responders are required to understand."""
    _check_issuer(cert, issuer)
    algorithm = algorithm or hashes.SHA1()  # noqa: S303 - an identifier, not a signature
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    request = builder.build()
    return OcspRequest(
        der=request.public_bytes(serialization.Encoding.DER),
        serial_number=cert.serial_number,
        issuer_name_hash=request.issuer_name_hash,
        issuer_key_hash=request.issuer_key_hash,
        algorithm=algorithm.name,
        nonce=nonce,
    )


def _key_hash(cert: x509.Certificate) -> bytes:
    """SHA-1 of the certificate's public key BIT STRING (an OCSP ResponderID byKey)."""
    return _cert_id(cert, cert, hashes.SHA1())[1]  # noqa: S303 - fixed by RFC 6960


def _verify_signature(
    key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> None:
    """Raises InvalidSignature, or RevocationResponseError for a key or algorithm we do not
    support."""
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, data)
        return
    if algorithm is None:
        raise RevocationResponseError("the signature names no hash algorithm", rule="ocsp-alg")
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, dsa.DSAPublicKey):
        key.verify(signature, data, algorithm)
    else:
        raise RevocationResponseError(
            f"unsupported responder key type {type(key).__name__}", rule="ocsp-alg"
        )


def _is_ocsp_signer(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        return False
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ku.digital_signature or ku.content_commitment


def _within(cert: x509.Certificate, now: datetime, skew: timedelta) -> bool:
    return cert.not_valid_before_utc - skew <= now <= cert.not_valid_after_utc + skew


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _responder(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime, skew: timedelta
) -> x509.Certificate:
    """The certificate whose key must have signed ``response``: the issuer, or a delegated
    responder certificate the issuer gave the OCSP-signing key purpose."""
    name, key_hash = response.responder_name, response.responder_key_hash

    def named(cert: x509.Certificate) -> bool:
        if name is not None:
            return cert.subject == name
        return key_hash is not None and _key_hash(cert) == key_hash

    if named(issuer):
        return issuer
    for candidate in response.certificates:
        if not named(candidate):
            continue
        if candidate == issuer:
            return issuer
        who = candidate.subject.rfc4514_string()
        if not _issued_by(candidate, issuer):
            raise RevocationResponseError(
                f"the OCSP responder {who} is not certified by the certificate's issuer",
                rule="ocsp-signer",
            )
        if not _is_ocsp_signer(candidate):
            raise RevocationResponseError(
                f"the OCSP responder {who} lacks the OCSP-signing key purpose", rule="ocsp-signer"
            )
        if not _within(candidate, now, skew):
            raise RevocationResponseError(
                f"the OCSP responder certificate {who} is not valid now", rule="ocsp-signer"
            )
        return candidate
    described = name.rfc4514_string() if name is not None else f"key {(key_hash or b'').hex()}"
    raise RevocationResponseError(
        f"the OCSP response is signed by {described}: neither the issuer nor a responder it "
        "certified (in the response)",
        rule="ocsp-signer",
    )


def _fresh(  # noqa: PLR0917 - one call shape for OCSP and CRL
    what: str,
    this_update: datetime,
    next_update: datetime | None,
    now: datetime,
    options: RevocationOptions,
    rule: str,
) -> None:
    skew = options.clock_skew
    if this_update > now + skew:
        raise RevocationResponseError(
            f"the {what} is dated {this_update:%Y-%m-%d %H:%M:%SZ}, in the future", rule=rule
        )
    if next_update is not None and next_update < now - skew:
        raise RevocationResponseError(
            f"the {what} is stale: its next update was due {next_update:%Y-%m-%d %H:%M:%SZ}",
            rule=rule,
        )
    if next_update is None and this_update < now - options.max_age - skew:
        raise RevocationResponseError(
            f"the {what} from {this_update:%Y-%m-%d %H:%M:%SZ} names no next update and is "
            f"older than {options.max_age}",
            rule=rule,
        )


def read_ocsp_response(
    der: bytes,
    *,
    request: OcspRequest,
    issuer: x509.Certificate,
    now: datetime,
    options: RevocationOptions = DEFAULT_OPTIONS,
) -> RevocationStatus:
    """Judge the DER OCSP response to ``request`` about a certificate ``issuer`` issued.

    Raises :class:`RevocationUnavailable` for ``tryLater`` / ``internalError`` and
    :class:`RevocationResponseError` for anything that cannot be relied on.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise RevocationResponseError(
            f"not a DER OCSP response: {exc}", rule="ocsp-malformed"
        ) from exc
    status = response.response_status
    if status in (ocsp.OCSPResponseStatus.TRY_LATER, ocsp.OCSPResponseStatus.INTERNAL_ERROR):
        raise RevocationUnavailable(f"the OCSP responder answered {status.name}")
    if status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise RevocationResponseError(
            f"the OCSP responder answered {status.name}", rule="ocsp-unsuccessful"
        )
    skew = options.clock_skew
    try:
        signer = _responder(response, issuer, now, skew)
        try:
            algorithm = response.signature_hash_algorithm
        except UnsupportedAlgorithm as exc:
            raise RevocationResponseError(
                "unsupported OCSP signature algorithm "
                + response.signature_algorithm_oid.dotted_string,
                rule="ocsp-alg",
            ) from exc
        try:
            _verify_signature(
                signer.public_key(), response.signature, response.tbs_response_bytes, algorithm
            )
        except InvalidSignature as exc:
            raise RevocationResponseError(
                f"the OCSP response's signature does not verify with the key of "
                f"{signer.subject.rfc4514_string()}",
                rule="ocsp-signature",
            ) from exc
        single = _single_response(response, request, issuer)
        nonce = _nonce(response)
    except ValueError as exc:  # a malformed extension or field, read lazily by cryptography
        raise RevocationResponseError(
            f"the OCSP response cannot be read: {exc}", rule="ocsp-malformed"
        ) from exc
    if nonce is not None and request.nonce is not None and nonce != request.nonce:
        raise RevocationResponseError(
            "the OCSP response's nonce is not ours (a replayed answer?)", rule="ocsp-nonce"
        )
    if nonce is None and request.nonce is not None and options.require_nonce:
        raise RevocationResponseError(
            "the OCSP response does not echo our nonce", rule="ocsp-nonce"
        )
    if response.produced_at_utc > now + skew:
        raise RevocationResponseError(
            f"the OCSP response was produced in the future ({response.produced_at_utc})",
            rule="ocsp-freshness",
        )
    _fresh(
        "OCSP response",
        single.this_update_utc,
        single.next_update_utc,
        now,
        options,
        "ocsp-freshness",
    )
    cert_status = single.certificate_status
    if cert_status is ocsp.OCSPCertStatus.REVOKED:
        return RevocationStatus(
            CertStatus.REVOKED,
            RevocationSource.OCSP,
            request.serial_number,
            single.this_update_utc,
            single.next_update_utc,
            revoked_at=single.revocation_time_utc,
            reason=single.revocation_reason,
        )
    return RevocationStatus(
        CertStatus.GOOD if cert_status is ocsp.OCSPCertStatus.GOOD else CertStatus.UNKNOWN,
        RevocationSource.OCSP,
        request.serial_number,
        single.this_update_utc,
        single.next_update_utc,
    )


def _single_response(
    response: ocsp.OCSPResponse, request: OcspRequest, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    ids: dict[str, tuple[bytes, bytes]] = {
        request.algorithm: (request.issuer_name_hash, request.issuer_key_hash)
    }
    for single in response.responses:
        if single.serial_number != request.serial_number:
            continue
        name = single.hash_algorithm.name
        if name not in ids:
            # a responder may answer with another hash; the id is the same certificate's
            ids[name] = issuer_hashes(issuer, single.hash_algorithm)
        if (single.issuer_name_hash, single.issuer_key_hash) == ids[name]:
            return single
    raise RevocationResponseError(
        f"the OCSP response does not answer for serial {request.serial_number:x} of "
        f"{issuer.subject.rfc4514_string()}",
        rule="ocsp-cert-id",
    )


def _nonce(response: ocsp.OCSPResponse) -> bytes | None:
    try:
        return response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


# --------------------------------------------------------------------------- CRL


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL in DER or PEM form."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise RevocationResponseError(
            f"not a CRL (DER or PEM): {exc}", rule="crl-malformed"
        ) from exc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _check_crl_scope(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> None:
    try:
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    except x509.ExtensionNotFound:
        pass
    else:
        raise RevocationResponseError(
            "a delta CRL is not a complete answer (delta CRLs are not supported)",
            rule="crl-scope",
        )
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return
    if idp.indirect_crl:
        raise RevocationResponseError("indirect CRLs are not supported", rule="crl-scope")
    if idp.only_some_reasons:
        raise RevocationResponseError(
            "the CRL covers only some revocation reasons (partitioned CRLs are not supported)",
            rule="crl-scope",
        )
    ca = _is_ca(cert)
    if (
        (idp.only_contains_ca_certs and not ca)
        or (idp.only_contains_user_certs and ca)
        or idp.only_contains_attribute_certs
    ):
        raise RevocationResponseError(
            "the CRL does not cover certificates of this kind", rule="crl-scope"
        )


def check_crl(
    crl: bytes | x509.CertificateRevocationList,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    now: datetime,
    options: RevocationOptions = DEFAULT_OPTIONS,
) -> RevocationStatus:
    """Whether the CRL ``crl``, which must be ``issuer``'s, signed and current, lists ``cert``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    _check_issuer(cert, issuer)
    crl = load_crl(crl) if isinstance(crl, bytes) else crl
    if crl.issuer != issuer.subject:
        raise RevocationResponseError(
            f"the CRL is issued by {crl.issuer.rfc4514_string()}, not by "
            f"{issuer.subject.rfc4514_string()}",
            rule="crl-issuer",
        )
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.crl_sign:
        raise RevocationResponseError(
            f"{issuer.subject.rfc4514_string()} may not sign CRLs (no cRLSign)", rule="crl-issuer"
        )
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, UnsupportedAlgorithm, ValueError) as exc:
        raise RevocationResponseError(
            f"the CRL's signature cannot be checked: {exc}", rule="crl-signature"
        ) from exc
    if not valid:
        raise RevocationResponseError(
            "the CRL's signature does not verify with the key of "
            + issuer.subject.rfc4514_string(),
            rule="crl-signature",
        )
    try:
        _check_crl_scope(crl, cert)
        _fresh("CRL", crl.last_update_utc, crl.next_update_utc, now, options, "crl-freshness")
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        reason: x509.ReasonFlags | None = None
        if entry is not None:
            try:
                reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            except x509.ExtensionNotFound:
                reason = None
    except ValueError as exc:
        raise RevocationResponseError(
            f"the CRL cannot be read: {exc}", rule="crl-malformed"
        ) from exc
    if entry is None or reason is x509.ReasonFlags.remove_from_crl:
        return RevocationStatus(
            CertStatus.GOOD,
            RevocationSource.CRL,
            cert.serial_number,
            crl.last_update_utc,
            crl.next_update_utc,
        )
    return RevocationStatus(
        CertStatus.REVOKED,
        RevocationSource.CRL,
        cert.serial_number,
        crl.last_update_utc,
        crl.next_update_utc,
        revoked_at=entry.revocation_date_utc,
        reason=reason,
    )
