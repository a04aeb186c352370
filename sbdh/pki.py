"""A development PKI for the local network and the tests.

Shaped like the real ones: a self-signed root, an access-point CA under it that issues the
access points' certificates (CN in the Peppol form, ``PNO000001``), and enterprise
certificates for organisations with the organisation number in the subject's ``serialNumber``
attribute, as Norwegian *virksomhetssertifikater* carry it. Nothing here is fit for production:
the point is that every far party of the embedded network, and every test, has real keys and
real chains to verify.

:func:`init_pki` writes such a PKI to a directory (PEM files, keys mode 0600) with a
``pki.json`` index; :meth:`Credential.load` reads a certificate and key back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from sbdh.errors import ConfigurationError
from sbdh.identifiers import OrganisationNumber

__all__ = [
    "Credential",
    "DevPki",
    "generate_root_ca",
    "init_pki",
    "issue_end_entity",
    "issue_intermediate_ca",
]

_BACKDATE = timedelta(hours=1)  # tolerate clock skew between the parties of the local network


@dataclass(frozen=True, repr=False)
class Credential:
    """A certificate, its private key, and its issuers (leaf excluded, root included)."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def __repr__(self) -> str:
        return f"Credential({self.certificate.subject.rfc4514_string()!r}, key=***)"

    @property
    def common_name(self) -> str:
        attrs = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else ""

    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def key_pem(self, password: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    @classmethod
    def load(
        cls,
        cert_path: str | os.PathLike[str],
        key_path: str | os.PathLike[str],
        password: bytes | None = None,
    ) -> Credential:
        """Read a PEM certificate file (leaf first, then its issuers) and a PEM private key."""
        try:
            certs = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
            key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"cannot load credential {cert_path}: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError(f"{key_path}: only RSA keys are supported")
        if key.public_key().public_numbers() != certs[0].public_key().public_numbers():  # type: ignore[union-attr]
            raise ConfigurationError(f"{key_path} is not the key of {cert_path}")
        return cls(certs[0], key, tuple(certs[1:]))


def _name(common_name: str, organisation: str | None, serial_number: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "NO")]
    if organisation:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    if serial_number:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _new_key(key_size: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey, now: datetime, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def generate_root_ca(
    common_name: str, *, now: datetime, days: int = 3650, key_size: int = 3072
) -> Credential:
    key = _new_key(key_size)
    name = _name(common_name, "Budstikke development PKI", None)
    cert = (
        _builder(name, name, key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Credential(cert, key, ())


def _aki(issuer: Credential) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key())


def issue_intermediate_ca(
    issuer: Credential, common_name: str, *, now: datetime, days: int = 1825, key_size: int = 3072
) -> Credential:
    key = _new_key(key_size)
    cert = (
        _builder(
            _name(common_name, "Budstikke development PKI", None),
            issuer.certificate.subject,
            key.public_key(),
            now,
            days,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(_aki(issuer), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    return Credential(cert, key, (issuer.certificate, *issuer.chain))


def issue_end_entity(
    issuer: Credential,
    common_name: str,
    *,
    now: datetime,
    organisation: str | None = None,
    organisation_number: str | None = None,
    days: int = 365,
    key_size: int = 2048,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
) -> Credential:
    """An end-entity certificate usable for signing and for receiving encrypted content.

    ``ocsp_url`` and ``crl_url``, when given, are written into the Authority Information Access
    and CRL Distribution Points extensions, as a real CA's certificates carry them (the local
    OCSP responder and CRL server are :mod:`adapters.standins.ocsp`)."""
    if organisation_number is not None:
        OrganisationNumber(organisation_number)  # refuse a number that fails its check digit
    key = _new_key(key_size)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=True,
        data_encipherment=True,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        _builder(
            _name(common_name, organisation, organisation_number),
            issuer.certificate.subject,
            key.public_key(),
            now,
            days,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(_aki(issuer), critical=False)
    )
    cert = _with_revocation_urls(builder, ocsp_url, crl_url).sign(issuer.key, hashes.SHA256())
    return Credential(cert, key, (issuer.certificate, *issuer.chain))


def _with_revocation_urls(
    builder: x509.CertificateBuilder, ocsp_url: str | None, crl_url: str | None
) -> x509.CertificateBuilder:
    if ocsp_url is not None:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
                    )
                ]
            ),
            critical=False,
        )
    if crl_url is not None:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    return builder


@dataclass(frozen=True)
class DevPki:
    """A whole development PKI in memory."""

    root: Credential
    ap_ca: Credential
    org_ca: Credential
    access_points: dict[str, Credential]
    organisations: dict[str, Credential]


#: what ``budstikke pki init`` makes when asked for nothing in particular
DEFAULT_ACCESS_POINTS = ("PNO000001", "PNO000002")
DEFAULT_ORGANISATIONS = (
    ("991825827", "Digitaliseringsdirektoratet (test)"),
    ("974760673", "Registerenheten i Brønnøysund (test)"),
    ("910075918", "Test kommune"),
)


def generate_dev_pki(
    *,
    now: datetime,
    access_points: Sequence[str] = DEFAULT_ACCESS_POINTS,
    organisations: Sequence[tuple[str, str]] = DEFAULT_ORGANISATIONS,
    ca_key_size: int = 3072,
    key_size: int = 2048,
) -> DevPki:
    root = generate_root_ca("Budstikke Dev Root CA", now=now, key_size=ca_key_size)
    ap_ca = issue_intermediate_ca(
        root, "Budstikke Dev Access Point CA", now=now, key_size=ca_key_size
    )
    org_ca = issue_intermediate_ca(
        root, "Budstikke Dev Enterprise CA", now=now, key_size=ca_key_size
    )
    aps = {
        cn: issue_end_entity(ap_ca, cn, now=now, organisation="Budstikke", key_size=key_size)
        for cn in access_points
    }
    orgs = {
        orgnr: issue_end_entity(
            org_ca,
            name,
            now=now,
            organisation=name,
            organisation_number=orgnr,
            key_size=key_size,
        )
        for orgnr, name in organisations
    }
    return DevPki(root, ap_ca, org_ca, aps, orgs)


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def init_pki(directory: Path, pki: DevPki, *, force: bool = False) -> dict[str, object]:
    """Write ``pki`` under ``directory`` and return the index that is also saved as pki.json.

    Layout: ``root-ca.pem``, ``ap-ca.pem``, ``org-ca.pem`` (with their keys), and for each
    party ``access-points/<CN>.pem`` / ``organisations/<orgnr>.pem`` holding the leaf followed
    by its issuers, and ``….key``. Refuses to overwrite an existing PKI unless ``force``.
    """
    index_path = directory / "pki.json"
    if index_path.exists() and not force:
        raise ConfigurationError(f"{directory} already holds a PKI (use --force to replace it)")

    def save(rel: str, cred: Credential) -> dict[str, str]:
        _write(directory / f"{rel}.pem", cred.cert_pem() + cred.chain_pem())
        _write(directory / f"{rel}.key", cred.key_pem(), secret=True)
        return {
            "certificate": f"{rel}.pem",
            "key": f"{rel}.key",
            "subject": cred.certificate.subject.rfc4514_string(),
            "not_after": cred.certificate.not_valid_after_utc.isoformat(),
        }

    index: dict[str, object] = {
        "trust_anchor": "root-ca.pem",
        "root_ca": save("root-ca", pki.root),
        "ap_ca": save("ap-ca", pki.ap_ca),
        "org_ca": save("org-ca", pki.org_ca),
        "access_points": {
            cn: save(f"access-points/{cn}", c) for cn, c in pki.access_points.items()
        },
        "organisations": {
            nr: save(f"organisations/{nr}", c) for nr, c in pki.organisations.items()
        },
    }
    _write(index_path, json.dumps(index, indent=2, ensure_ascii=False).encode() + b"\n")
    return index
