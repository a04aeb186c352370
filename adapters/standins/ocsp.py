"""A local OCSP responder and CRL server for the development PKI, over real HTTP.

* ``POST /ocsp`` - an ``application/ocsp-request`` (RFC 6960 A.1); ``GET /ocsp/{base64}`` too;
* ``GET /crl/{name}.crl`` - the DER CRL of the CA registered under ``name``.

:class:`RevocationAuthority` holds the revocation state of one or more CAs (``revoke``,
``reinstate``, ``mark_unknown`` change it while the stand-in runs) and makes the answers: OCSP
responses signed by the CA itself, or by a delegated responder certificate the CA issued with
the OCSP-signing key purpose (``delegated=True``), echoing the request's nonce; CRLs signed by
the CA. A request about a CA it does not hold is answered ``unauthorized``, as real responders do.

Certificates point here when issued with
``issue_end_entity(ca, cn, now=now, ocsp_url=standin.ocsp_url, crl_url=standin.crl_url("ap-ca"))``
(start the stand-in first: port 0 picks a free port, and the URL is known once it listens).
:attr:`OcspStandin.outage` answers 503 and :attr:`OcspStandin.delay` answers slowly, for tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from elma.loopback import LoopbackHttpServer
from sbdh.pki import Credential
from sbdh.revocation import OCSP_REQUEST_MIME, OCSP_RESPONSE_MIME, issuer_hashes

__all__ = [
    "OcspStandin",
    "RevocationAuthority",
    "create_app",
    "issue_ocsp_responder",
]

log = logging.getLogger("budstikke.standins.ocsp")

_MAX_REQUEST = 64 * 1024
_BACKDATE = timedelta(minutes=1)


def issue_ocsp_responder(
    issuer: Credential, *, now: datetime, days: int = 30, key_size: int = 2048
) -> Credential:
    """A delegated OCSP responder certificate for ``issuer``: OCSP-signing key purpose and
    ``id-pkix-ocsp-nocheck`` (nobody asks about the responder's own status)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    cn = issuer.common_name or "CA"
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "NO"),
                    x509.NameAttribute(x509.NameOID.COMMON_NAME, f"{cn} OCSP Responder"),
                ]
            )
        )
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        .sign(issuer.key, hashes.SHA256())
    )
    return Credential(cert, key, (issuer.certificate, *issuer.chain))


@dataclass(frozen=True)
class _Revoked:
    at: datetime
    reason: x509.ReasonFlags | None


@dataclass(frozen=True)
class _Ca:
    name: str
    credential: Credential
    #: who signs OCSP responses: the CA itself or its delegated responder
    signer: Credential


class RevocationAuthority:
    """The revocation state of the CAs in ``issuers`` (name → CA credential) and the answers.

    ``validity`` is how far ahead each answer's nextUpdate lies; ``clock`` is the time answers
    are dated with (a test may hand in an old one to get a stale answer).
    """

    def __init__(
        self,
        issuers: Mapping[str, Credential],
        *,
        delegated: bool = False,
        validity: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not issuers:
            raise ValueError("a revocation authority needs at least one CA")
        self.validity = validity
        self.clock = clock
        now = clock()
        self._cas = {
            name: _Ca(name, ca, issue_ocsp_responder(ca, now=now) if delegated else ca)
            for name, ca in issuers.items()
        }
        self._revoked: dict[tuple[str, int], _Revoked] = {}
        self._unknown: set[tuple[str, int]] = set()
        #: how many OCSP requests and CRL downloads were answered
        self.ocsp_requests = 0
        self.crl_requests = 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._cas)

    def responder(self, name: str) -> Credential:
        """Who signs the OCSP answers for the CA ``name``."""
        return self._cas[name].signer

    def _ca_of(self, cert: x509.Certificate) -> _Ca:
        for ca in self._cas.values():
            if cert.issuer == ca.credential.certificate.subject:
                return ca
        raise ValueError(f"{cert.subject.rfc4514_string()} is not issued by a CA held here")

    def revoke(
        self,
        cert: x509.Certificate,
        *,
        at: datetime | None = None,
        reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise,
    ) -> None:
        ca = self._ca_of(cert)
        self._revoked[(ca.name, cert.serial_number)] = _Revoked(at or self.clock(), reason)

    def reinstate(self, cert: x509.Certificate) -> None:
        ca = self._ca_of(cert)
        self._revoked.pop((ca.name, cert.serial_number), None)
        self._unknown.discard((ca.name, cert.serial_number))

    def mark_unknown(self, cert: x509.Certificate) -> None:
        """Answer UNKNOWN about ``cert`` (as a responder does for a serial it never issued)."""
        self._unknown.add((self._ca_of(cert).name, cert.serial_number))

    # ------------------------------------------------------------------ OCSP

    def ocsp_answer(self, request_der: bytes) -> bytes:
        """The DER OCSP response to a DER OCSP request."""
        self.ocsp_requests += 1
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
            asked = (request.issuer_name_hash, request.issuer_key_hash)
            serial = request.serial_number
        except ValueError:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        ca = next((c for c in self._cas.values() if _hashes(c, algorithm) == asked), None)
        if ca is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        now = self.clock()
        revoked = self._revoked.get((ca.name, serial))
        if revoked is not None:
            status = ocsp.OCSPCertStatus.REVOKED
        elif (ca.name, serial) in self._unknown:
            status = ocsp.OCSPCertStatus.UNKNOWN
        else:
            status = ocsp.OCSPCertStatus.GOOD
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=asked[0],
            issuer_key_hash=asked[1],
            serial_number=serial,
            algorithm=algorithm,
            cert_status=status,
            this_update=now - _BACKDATE,
            next_update=now + self.validity,
            revocation_time=revoked.at if revoked is not None else None,
            revocation_reason=revoked.reason if revoked is not None else None,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, ca.signer.certificate)
        if ca.signer is not ca.credential:
            builder = builder.certificates([ca.signer.certificate])
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
        except x509.ExtensionNotFound:
            pass
        else:
            builder = builder.add_extension(nonce, critical=False)
        response = builder.sign(ca.signer.key, hashes.SHA256())
        return response.public_bytes(serialization.Encoding.DER)

    # ------------------------------------------------------------------ CRL

    def crl(self, name: str) -> bytes:
        """The DER CRL of the CA ``name`` (KeyError when there is none)."""
        ca = self._cas[name]
        self.crl_requests += 1
        now = self.clock()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.credential.certificate.subject)
            .last_update(now - _BACKDATE)
            .next_update(now + self.validity)
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.credential.key.public_key()),
                critical=False,
            )
        )
        for (ca_name, serial), revoked in sorted(self._revoked.items()):
            if ca_name != name:
                continue
            entry = (
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked.at)
            )
            if revoked.reason is not None:
                entry = entry.add_extension(x509.CRLReason(revoked.reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        crl = builder.sign(ca.credential.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.DER)


def _hashes(ca: _Ca, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    return issuer_hashes(ca.credential.certificate, algorithm)


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )


# --------------------------------------------------------------------------- HTTP


def create_app(
    authority: RevocationAuthority, standin: OcspStandin | None = None
) -> web.Application:
    async def gate() -> web.Response | None:
        if standin is not None and standin.delay:
            await asyncio.sleep(standin.delay)
        if standin is not None and standin.outage:
            return web.Response(status=503, text="responder down (outage)")
        return None

    def ocsp_response(request_der: bytes) -> web.Response:
        return web.Response(
            body=authority.ocsp_answer(request_der),
            headers={"Content-Type": OCSP_RESPONSE_MIME, "Cache-Control": "no-store"},
        )

    async def ocsp_post(request: web.Request) -> web.StreamResponse:
        refused = await gate()
        if refused is not None:
            return refused
        if request.content_type != OCSP_REQUEST_MIME:
            return web.Response(status=415, text=f"expected {OCSP_REQUEST_MIME}")
        if request.content_length is not None and request.content_length > _MAX_REQUEST:
            return web.Response(status=413)
        body = await request.content.read(_MAX_REQUEST + 1)
        if len(body) > _MAX_REQUEST:
            return web.Response(status=413)
        return ocsp_response(body)

    async def ocsp_get(request: web.Request) -> web.StreamResponse:
        refused = await gate()
        if refused is not None:
            return refused
        try:
            der = base64.b64decode(request.match_info["encoded"], validate=True)
        except (binascii.Error, ValueError):
            return web.Response(status=400, text="not base64")
        return ocsp_response(der)

    async def crl_get(request: web.Request) -> web.StreamResponse:
        refused = await gate()
        if refused is not None:
            return refused
        name = request.match_info["name"]
        if name not in authority.names:
            return web.Response(status=404, text=f"no CRL named {name}")
        return web.Response(
            body=authority.crl(name), headers={"Content-Type": "application/pkix-crl"}
        )

    app = web.Application(client_max_size=_MAX_REQUEST)
    app.router.add_post("/ocsp", ocsp_post)
    app.router.add_get("/ocsp/{encoded:.+}", ocsp_get)
    app.router.add_get("/crl/{name}.crl", crl_get)
    return app


class OcspStandin(LoopbackHttpServer):
    """The OCSP responder and CRL server on ``host:port`` (port 0 picks a free one)."""

    server_name = "the OCSP stand-in"

    def __init__(
        self, authority: RevocationAuthority, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.authority = authority
        #: answer every request with 503 while set
        self.outage = False
        #: seconds to wait before answering (a slow responder)
        self.delay = 0.0
        super().__init__(create_app(authority, self), host=host, port=port)

    @property
    def ocsp_url(self) -> str:
        """The responder URL to put in certificates' AIA extension."""
        return f"{self.url}/ocsp"

    def crl_url(self, name: str) -> str:
        """The distribution point of the CA registered as ``name``."""
        return f"{self.url}/crl/{name}.crl"

    def _started(self) -> None:
        log.info("OCSP/CRL stand-in on %s for %s", self.url, ", ".join(self.authority.names))
