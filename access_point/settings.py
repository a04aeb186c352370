"""Settings: read once, in the composition root, into a frozen value.

Every setting comes from an environment variable ``BUDSTIKKE_<NAME>`` (upper case), with a
default that gives the embedded default: SQLite and the database queue under ``var/``, no
server to install. Nothing below the composition root reads the environment; it is handed a
:class:`Settings`. Secrets are masked in ``repr``.

==============================  =================================================================
variable                        meaning (default)
==============================  =================================================================
BUDSTIKKE_DATA_DIR              where the embedded database, files and keys live (``var``)
BUDSTIKKE_DATABASE_URL          SQLAlchemy async URL (``sqlite+aiosqlite:///<data_dir>/budstikke.db``);
                                PostgreSQL: ``postgresql+asyncpg://user:pw@host/db``
BUDSTIKKE_AMQP_URL              RabbitMQ URL; unset = the embedded queue on the database
BUDSTIKKE_QUEUE_NAME            the job queue's name: RabbitMQ queues ``<name>``, ``<name>.dead``, …
                                (``budstikke.jobs``), the embedded queue's rows (``default``); give
                                instances sharing one broker or database different names
BUDSTIKKE_QUEUE_LEASE           seconds a job claimed from the embedded queue is held before a
                                crashed worker's job is handed out again; renewed while it runs (60)
BUDSTIKKE_STORAGE_KEY           base64 of the 32-byte key that encrypts files at rest; unset = a key
                                generated once into ``<data_dir>/storage.key`` (mode 0600)
BUDSTIKKE_HOST / _PORT          where ``budstikke serve`` listens (``127.0.0.1`` / ``9093``)
BUDSTIKKE_ORGANISATIONS         organisation numbers hosted here, comma-separated
BUDSTIKKE_DEFAULT_LIFETIME      seconds a message lives without expectedResponseDateTime (86400)
BUDSTIKKE_INBOX_LOCK_TIMEOUT    seconds a peeked message stays locked (300)
BUDSTIKKE_MAX_FILE_SIZE         largest uploaded file, bytes (1 GiB)
BUDSTIKKE_MAX_MULTIPART_SIZE    largest one-step multipart request, bytes (5 MiB, as the reference)
BUDSTIKKE_WORKER_CONCURRENCY    jobs a worker runs at once (8)
BUDSTIKKE_DATABASE_POOL_SIZE    PostgreSQL connections a process keeps (10; as many again on a
                                burst; a process running workers keeps at least concurrency + 2)
BUDSTIKKE_LIFETIME_SWEEP        seconds between sweeps that mark expired messages (60)
BUDSTIKKE_WEBHOOK_TIMEOUT       seconds a webhook receiver gets to answer (10)
BUDSTIKKE_WEBHOOK_MAX_ATTEMPTS  attempts before a webhook delivery is given up (12)
BUDSTIKKE_WEBHOOK_ALLOWED_NETWORKS
                                CIDRs push endpoints may resolve to (default: any address but
                                link-local, multicast, unspecified and reserved ones)
BUDSTIKKE_PKI_DIR               the access point's keys and certificates (``budstikke pki init``
                                layout; ``<data_dir>/pki``)
BUDSTIKKE_AP_NAME               which access point this is: its certificate's CN (PNO000001)
BUDSTIKKE_AP_TRUST              PEM files other access points' certificates must chain to, the
                                anchor first, then intermediates, separated by ``:`` (default:
                                the PKI's root, AP CA and organisation CA)
BUDSTIKKE_AS4_DIRECTORY         participant → AS4 endpoint directory, JSON (see
                                docs/configuration.md; ``<data_dir>/directory.json`` if present)
BUDSTIKKE_AS4_MAX_REQUEST       largest AS4 request accepted, bytes (1 GiB)
BUDSTIKKE_SBD_STREAM_THRESHOLD  SBDs (XML) larger than this, bytes, are read streamed and kept as a
                                file, never whole in memory; smaller ones are parsed whole (16 MiB)
BUDSTIKKE_MAX_SBD_SIZE          largest SBD accepted on the streamed path, bytes (1 GiB); the
                                whole-document path keeps the XML parser's 64 MiB
BUDSTIKKE_SML_ZONE              the SML zone receivers not in the directory are looked up in, e.g.
                                ``participant.sml.test.tech.peppol.org`` (unset: no SML)
BUDSTIKKE_SML_NAMESERVER        ``host:port`` of the DNS server for SML lookups (system resolver)
BUDSTIKKE_SMP_URL               one SMP for every receiver instead of the SML (unset)
BUDSTIKKE_SMP_TRUST             PEM files SMP signatures must chain to, anchor first, separated by
                                ``:`` (the PKI's root and AP CA)
BUDSTIKKE_REGISTRY_ALLOW_HTTP   ``true``: SML/SMP may point at plain-http URLs (local networks)
BUDSTIKKE_KRR_URL               the contact and reservation register (KRR) letters to persons are
                                routed by (unset: letters to persons have no route)
BUDSTIKKE_KRR_TOKEN             the bearer token KRR is asked with
BUDSTIKKE_POPULATION_URL        the population register print addresses come from
BUDSTIKKE_REVOCATION            revocation checking of other access points' certificates (OCSP, then
                                CRL): ``off``, ``soft-fail`` or ``hard-fail`` (``soft-fail``)
BUDSTIKKE_REVOCATION_TIMEOUT    seconds an OCSP responder or CRL server gets to answer (10)
==============================  =================================================================
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path

from sbdh.errors import ConfigurationError
from sbdh.identifiers import OrganisationNumber

__all__ = ["Secret", "Settings", "load_settings"]

_PREFIX = "BUDSTIKKE_"


@dataclass(frozen=True)
class Secret:
    """A secret value that never shows itself in ``repr`` or ``str``."""

    value: bytes = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str = ""
    amqp_url: Secret | None = None
    queue_name: str = ""
    queue_lease: timedelta = timedelta(seconds=60)
    storage_key: Secret | None = None
    host: str = "127.0.0.1"
    port: int = 9093
    organisations: tuple[OrganisationNumber, ...] = ()
    default_lifetime: timedelta = timedelta(hours=24)
    inbox_lock_timeout: timedelta = timedelta(minutes=5)
    max_file_size: int = 1 << 30
    max_multipart_size: int = 5 << 20
    worker_concurrency: int = 8
    database_pool_size: int = 10
    lifetime_sweep: timedelta = timedelta(seconds=60)
    webhook_timeout: timedelta = timedelta(seconds=10)
    webhook_max_attempts: int = 12
    #: networks webhook push endpoints may resolve to; empty = any but link-local, multicast,
    #: unspecified and reserved addresses (see access_point/destinations.py)
    webhook_allowed_networks: str = ""
    #: where the access point's keys live (``budstikke pki init`` layout); default data_dir/pki
    pki_dir: Path | None = None
    #: which access point this is: its certificate's CN, ``<pki_dir>/access-points/<name>.pem``
    ap_name: str = "PNO000001"
    #: PEM files (separated by ``os.pathsep``) of the trust anchors and intermediates other
    #: access points' certificates must chain to; default the PKI's root and AP CA
    ap_trust: str = ""
    #: the participant → AS4 endpoint directory (JSON, see docs/configuration.md); default
    #: ``<data_dir>/directory.json`` when it exists
    as4_directory: str = ""
    #: largest AS4 request accepted (bytes; larger requests are refused before reading)
    as4_max_request: int = 1 << 30
    #: SBDs (XML) larger than this many bytes take the streamed path: read without being held,
    #: kept as a file of the message, only the header in the database (sbdh.stream)
    sbd_stream_threshold: int = 16 << 20
    #: largest SBD accepted on the streamed path (API create, AS4 receive), in bytes
    max_sbd_size: int = 1 << 30
    #: the SML zone receivers are looked up in (U-NAPTR); empty = no SML
    sml_zone: str = ""
    #: the DNS server for SML lookups, ``host:port``; empty = the system's resolver
    sml_nameserver: str = ""
    #: one SMP asked for every receiver, instead of the SML (a national registry like ELMA)
    smp_url: str = ""
    #: PEM files (``os.pathsep``) SMP signing certificates must chain to, the anchor first;
    #: default the PKI's root and AP CA (the development PKI issues the local SMP's certificate)
    smp_trust: str = ""
    #: let SML and SMP answers point at plain-http URLs (the local network; never production)
    registry_allow_http: bool = False
    #: the contact and reservation register (KRR) letters to persons are routed by; empty = none
    krr_url: str = ""
    #: the bearer token KRR is asked with (a Maskinporten token in production)
    krr_token: Secret | None = None
    #: the population register print addresses come from; empty = none
    population_url: str = ""
    #: revocation checking of peer AP certificates: off | soft-fail | hard-fail. soft-fail
    #: accepts a certificate whose status cannot be obtained (responder down) or that names no
    #: responder at all (the development PKI's), so the embedded default asks nobody
    revocation: str = "soft-fail"
    revocation_timeout: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        if not self.database_url:
            url = f"sqlite+aiosqlite:///{self.data_dir / 'budstikke.db'}"
            object.__setattr__(self, "database_url", url)
        if self.storage_key is not None and len(self.storage_key.value) != 32:
            raise ConfigurationError("BUDSTIKKE_STORAGE_KEY must be 32 bytes (base64)")
        for name in (
            "port",
            "max_file_size",
            "max_multipart_size",
            "worker_concurrency",
            "database_pool_size",
            "as4_max_request",
            "sbd_stream_threshold",
            "max_sbd_size",
        ):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"BUDSTIKKE_{name.upper()} must be positive")
        if self.revocation not in ("off", "soft-fail", "hard-fail"):
            raise ConfigurationError(
                f"BUDSTIKKE_REVOCATION must be off, soft-fail or hard-fail, not {self.revocation!r}"
            )

    @property
    def embedded(self) -> bool:
        """True for the embedded default: the queue lives in the database."""
        return self.amqp_url is None

    @property
    def pki_path(self) -> Path:
        return self.pki_dir if self.pki_dir is not None else self.data_dir / "pki"

    @property
    def directory_path(self) -> Path | None:
        """The AS4 directory file, when there is one."""
        if self.as4_directory:
            return Path(self.as4_directory)
        default = self.data_dir / "directory.json"
        return default if default.exists() else None

    @property
    def discovers(self) -> bool:
        """Whether receivers not hosted here nor in the directory are looked up (SML/SMP)."""
        return bool(self.sml_zone or self.smp_url)

    @property
    def database_is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_storage_key(self) -> Settings:
        """These settings with a storage key: the configured one, or one kept under data_dir."""
        if self.storage_key is not None:
            return self
        path = self.data_dir / "storage.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(base64.b64encode(secrets.token_bytes(32)) + b"\n")
        return replace(self, storage_key=Secret(_b64_key(path.read_text().strip(), str(path))))


def _b64_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"{where}: storage key is not base64") from exc
    if len(key) != 32:
        raise ConfigurationError(f"{where}: storage key must be 32 bytes, got {len(key)}")
    return key


def _seconds(name: str, text: str) -> timedelta:
    try:
        value = float(text)
    except ValueError as exc:
        raise ConfigurationError(f"{_PREFIX}{name} must be a number of seconds") from exc
    if value <= 0:
        raise ConfigurationError(f"{_PREFIX}{name} must be positive")
    return timedelta(seconds=value)


def _boolean(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{_PREFIX}{name} must be true or false")


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise ConfigurationError(f"{_PREFIX}{name} must be a whole number") from exc


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Settings from ``environ`` (``os.environ`` by default); ``overrides`` win."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for f in fields(Settings):
        text = env.get(_PREFIX + f.name.upper())
        if text is None or text == "":
            continue
        name = f.name.upper()
        if f.name in ("data_dir", "pki_dir"):
            values[f.name] = Path(text)
        elif f.name in (
            "database_url",
            "host",
            "queue_name",
            "webhook_allowed_networks",
            "ap_name",
            "ap_trust",
            "as4_directory",
            "revocation",
            "sml_zone",
            "sml_nameserver",
            "smp_url",
            "smp_trust",
            "krr_url",
            "population_url",
        ):
            values[f.name] = text
        elif f.type in ("bool", bool):
            values[f.name] = _boolean(name, text)
        elif f.name in ("amqp_url", "krr_token"):
            values[f.name] = Secret(text.encode())
        elif f.name == "storage_key":
            values[f.name] = Secret(_b64_key(text, _PREFIX + name))
        elif f.name == "organisations":
            values[f.name] = tuple(
                OrganisationNumber.parse(part) for part in text.split(",") if part.strip()
            )
        elif f.type in ("timedelta", timedelta):
            values[f.name] = _seconds(name, text)
        else:
            values[f.name] = _integer(name, text)
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
