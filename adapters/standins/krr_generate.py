"""Realistic KRR register files for the local network and for tests, deterministic from a seed.

:func:`generate_register` makes ``count`` person records in the register's answer shape, ready
for :class:`adapters.standins.krr.KrrRegister`: valid national ids (fødselsnummer and
D-nummer, both mod-11 check digits right), digital mailboxes at Digipost (984661185) and e-Boks
(922020175) with the provider's certificate, reserved persons, persons without contact data,
expired (stale) contact data, deleted entries and preferred languages, in the proportions of a
:class:`RegisterMix`. The same seed, time and certificates give the same register, byte for byte.

By default the ids are *synthetic* (month + 80, as in the Tenor test population), so that a
generated id can never be a real person's; ``synthetic=False`` gives ordinary dates. Stored
records may hold what the register would not give out (a mailbox for a reserved person,
expired contact data): the stand-in applies the register's rules when it answers.

Certificates are not made per person: :func:`provider_credentials` issues one development CA
and one certificate per provider (with ``sbdh.pki``), and every mailbox at that provider
carries it, Digipost's as bare base64 DER and e-Boks's as PEM (KRR answers use both).

``python -m adapters.standins.krr_generate --count 10000 --seed 7 --out register.json
--credentials DIR`` writes a register and keeps the providers' keys in ``DIR`` (reused on the
next run, so registers made at different times share certificates).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sbdh.identifiers import NationalId, mod11_check_digit
from sbdh.pki import Credential, generate_root_ca, issue_end_entity

__all__ = [
    "DIGIPOST",
    "EBOKS",
    "RegisterMix",
    "generate_national_id",
    "generate_register",
    "main",
    "provider_credentials",
]

#: Digipost's provider organisation number (Posten Norge AS)
DIGIPOST = "984661185"
#: e-Boks's provider organisation number
EBOKS = "922020175"
PROVIDER_NAMES = {DIGIPOST: "Digipost (test)", EBOKS: "e-Boks (test)"}

# the national id's check-digit weights (Skatteetaten; see testdata/README "Identifier facts")
_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_DAYS_PER_MONTH = 30.44

_FIRST_NAMES = (
    "ola", "kari", "per", "ingrid", "lars", "anne", "jon", "marit", "nils", "liv", "erik",
    "sigrid", "knut", "astrid", "ole", "hilde", "arne", "solveig", "bjørn", "ragnhild",
    "emma", "noah", "nora", "jakob", "sofie", "filip", "ella", "aksel", "maja", "lukas",
    "aisha", "ali", "maria", "piotr", "anna", "mohammed", "sara", "tomas",
)  # fmt: skip
_LAST_NAMES = (
    "nordmann", "hansen", "johansen", "olsen", "larsen", "andersen", "pedersen", "nilsen",
    "kristiansen", "jensen", "karlsen", "johnsen", "pettersen", "eriksen", "berg", "haugen",
    "hagen", "johannessen", "andreassen", "jacobsen", "dahl", "jørgensen", "halvorsen",
    "henriksen", "lund", "sørensen", "jakobsen", "moen", "gundersen", "iversen", "strand",
)  # fmt: skip
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
_MAILBOX_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_ASCII = str.maketrans({"æ": "ae", "ø": "o", "å": "a"})


@dataclass(frozen=True)
class RegisterMix:
    """The shares of each kind of person (each a fraction of all records, unless noted)."""

    #: ``status`` ``SLETTET``
    deleted: float = 0.02
    #: national ids that are D-numbers
    d_number: float = 0.05
    #: ``reservasjon`` ``JA`` (of the active)
    reserved: float = 0.06
    #: no contact data at all (of the active)
    no_contact: float = 0.04
    #: every contact channel expired: neither updated nor verified in 18 months (of the active)
    stale: float = 0.06
    #: e-mail and mobile both present, one of them expired (of the active)
    one_channel_stale: float = 0.04
    #: a mailbox at Digipost (of the active)
    digipost: float = 0.45
    #: a mailbox at e-Boks (of the active)
    eboks: float = 0.20
    #: preferred languages and their shares
    languages: tuple[tuple[str, float], ...] = (
        ("nb", 0.86),
        ("nn", 0.09),
        ("en", 0.04),
        ("se", 0.01),
    )

    def __post_init__(self) -> None:
        shares = (self.deleted, self.d_number, self.reserved, self.digipost, self.eboks)
        if any(not 0 <= s <= 1 for s in shares):
            raise ValueError("every share must be between 0 and 1")
        if self.no_contact + self.stale + self.one_channel_stale > 1:
            raise ValueError("no_contact + stale + one_channel_stale must not exceed 1")
        if self.digipost + self.eboks > 1:
            raise ValueError("digipost + eboks must not exceed 1")


def generate_national_id(
    rng: random.Random, *, d_number: bool = False, synthetic: bool = True
) -> str:
    """A random valid national id: a real calendar date of birth, an individual number in the
    range for its century, both check digits; a D-number adds 4 to the first digit, a synthetic
    id 8 to the third."""
    while True:
        born = datetime(1930, 1, 1) + timedelta(days=rng.randrange(0, 79 * 365))
        # 000-499 for births in 1900-1999, 500-999 for 2000-2039
        individual = rng.randrange(500, 1000) if born.year >= 2000 else rng.randrange(0, 500)
        day = born.day + (40 if d_number else 0)
        month = born.month + (80 if synthetic else 0)
        digits = f"{day:02d}{month:02d}{born.year % 100:02d}{individual:03d}"
        k1 = mod11_check_digit(digits, _K1_WEIGHTS)
        if k1 is None:
            continue
        k2 = mod11_check_digit(digits + str(k1), _K2_WEIGHTS)
        if k2 is None:
            continue
        value = f"{digits}{k1}{k2}"
        NationalId(value)  # the project's own validator has the last word
        return value


def provider_credentials(
    now: datetime, *, orgnrs: Sequence[str] = (DIGIPOST, EBOKS), key_size: int = 2048
) -> dict[str, Credential]:
    """One development CA and a certificate (with key) for each mailbox provider."""
    ca = generate_root_ca("Budstikke Dev Mailbox Provider CA", now=now, key_size=key_size)
    return {
        orgnr: issue_end_entity(
            ca,
            PROVIDER_NAMES.get(orgnr, f"Mailbox provider {orgnr}"),
            now=now,
            organisation=PROVIDER_NAMES.get(orgnr),
            organisation_number=orgnr,
            days=3 * 365,
            key_size=key_size,
        )
        for orgnr in orgnrs
    }


def _cert_text(orgnr: str, cert: x509.Certificate) -> str:
    if orgnr == DIGIPOST:
        return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _stamp(rng: random.Random, when: datetime) -> str:
    """``when`` in one of the register's two timestamp forms."""
    if rng.random() < 0.5:
        hours = 2 if 4 <= when.month <= 10 else 1  # Norwegian summer and winter time, roughly
        local = when.astimezone(timezone(timedelta(hours=hours)))
        return local.strftime("%Y-%m-%dT%H:%M:%S") + f"+{hours:02d}"
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"


def _months_ago(rng: random.Random, now: datetime, low: float, high: float) -> datetime:
    days = rng.uniform(low, high) * _DAYS_PER_MONTH
    return (now - timedelta(days=days)).replace(microsecond=rng.randrange(1000) * 1000)


def _channel(
    rng: random.Random, now: datetime, key: str, address: str, *, fresh: bool
) -> dict[str, str]:
    if fresh:
        confirmed = _months_ago(rng, now, 0.1, 16.5)
        updated = _months_ago(rng, now, 0.1, 60) if rng.random() < 0.6 else confirmed
    else:
        confirmed = _months_ago(rng, now, 19, 60)
        updated = confirmed - timedelta(days=rng.uniform(0, 700))
    out = {key: address, f"{key}_oppdatert": _stamp(rng, min(updated, confirmed))}
    out[f"{key}_sist_verifisert"] = _stamp(rng, confirmed)
    return out


def _pick_language(rng: random.Random, languages: tuple[tuple[str, float], ...]) -> str:
    codes = [code for code, _ in languages]
    weights = [share for _, share in languages]
    return rng.choices(codes, weights)[0]


def _person(
    rng: random.Random,
    national_id: str,
    now: datetime,
    certificates: Mapping[str, x509.Certificate],
    mix: RegisterMix,
) -> dict[str, Any]:
    record: dict[str, Any] = {"personidentifikator": national_id}
    if rng.random() < mix.deleted:
        record.update(reservasjon="NEI", status="SLETTET", varslingsstatus="KAN_IKKE_VARSLES")
        return record
    reserved = rng.random() < mix.reserved
    record["reservasjon"] = "JA" if reserved else "NEI"
    if reserved:
        record["reservasjonstidspunkt"] = _stamp(rng, _months_ago(rng, now, 1, 120))
    record["reservasjon_oppdatert"] = _stamp(rng, _months_ago(rng, now, 0.5, 120))
    record["status"] = "AKTIV"

    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    roll = rng.random()
    kontakt: dict[str, str] = {}
    any_fresh = False
    if roll >= mix.no_contact:
        all_stale = roll < mix.no_contact + mix.stale
        one_stale = not all_stale and roll < mix.no_contact + mix.stale + mix.one_channel_stale
        channels = rng.choices(("both", "mobile", "email"), (0.85, 0.10, 0.05))[0]
        if one_stale:
            channels = "both"
        stale_channel = rng.choice(("epostadresse", "mobiltelefonnummer")) if one_stale else ""
        if channels in ("both", "email"):
            email = f"{first}.{last}{rng.randrange(1, 999)}@{rng.choice(_EMAIL_DOMAINS)}"
            fresh = not all_stale and stale_channel != "epostadresse"
            any_fresh = any_fresh or fresh
            kontakt |= _channel(rng, now, "epostadresse", email.translate(_ASCII), fresh=fresh)
        if channels in ("both", "mobile"):
            mobile = f"+47{rng.choice('49')}{rng.randrange(10**6, 10**7):07d}"
            fresh = not all_stale and stale_channel != "mobiltelefonnummer"
            any_fresh = any_fresh or fresh
            kontakt |= _channel(rng, now, "mobiltelefonnummer", mobile, fresh=fresh)
        record["kontaktinformasjon"] = kontakt
    notifiable = any_fresh and not reserved
    record["varslingsstatus"] = "KAN_VARSLES" if notifiable else "KAN_IKKE_VARSLES"

    roll = rng.random()
    provider = DIGIPOST if roll < mix.digipost else EBOKS if roll < mix.digipost + mix.eboks else ""
    if provider:
        suffix = "".join(rng.choice(_MAILBOX_ALPHABET) for _ in range(4))
        record["digital_post"] = {
            "postkasseadresse": f"{first}.{last}#{suffix}".translate(_ASCII),
            "postkasseleverandoeradresse": provider,
        }
        record["sertifikat"] = _cert_text(provider, certificates[provider])
    record["spraak"] = _pick_language(rng, mix.languages)
    return record


def generate_register(
    count: int,
    *,
    seed: int,
    now: datetime,
    certificates: Mapping[str, x509.Certificate],
    mix: RegisterMix | None = None,
    synthetic: bool = True,
) -> list[dict[str, Any]]:
    """``count`` person records, the same for the same arguments. ``certificates`` maps each
    provider's orgnr (:data:`DIGIPOST`, :data:`EBOKS`) to its certificate."""
    if count < 0:
        raise ValueError("count must not be negative")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    mix = mix or RegisterMix()
    missing = [
        p
        for p, share in ((DIGIPOST, mix.digipost), (EBOKS, mix.eboks))
        if share and p not in certificates
    ]
    if missing:
        raise ValueError(f"no certificate for mailbox provider(s) {', '.join(missing)}")
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    seen: set[str] = set()
    records: list[dict[str, Any]] = []
    while len(records) < count:
        nid = generate_national_id(rng, d_number=rng.random() < mix.d_number, synthetic=synthetic)
        if nid in seen:
            continue
        seen.add(nid)
        records.append(_person(rng, nid, now, certificates, mix))
    return records


def _credentials(directory: Path | None, now: datetime) -> dict[str, Credential]:
    """The providers' credentials kept in ``directory`` (made there on first use)."""
    if directory is not None:
        paths = {
            o: (directory / f"{o}.cert.pem", directory / f"{o}.key.pem") for o in PROVIDER_NAMES
        }
        if all(c.exists() and k.exists() for c, k in paths.values()):
            return {o: Credential.load(c, k) for o, (c, k) in paths.items()}
    made = provider_credentials(now)
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        for orgnr, cred in made.items():
            (directory / f"{orgnr}.cert.pem").write_bytes(cred.cert_pem() + cred.chain_pem())
            key_path = directory / f"{orgnr}.key.pem"
            key_path.write_bytes(cred.key_pem())
            key_path.chmod(0o600)
    return made


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.standins.krr_generate",
        description="Write a realistic KRR register file for the local KRR stand-in.",
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="the register file to write")
    parser.add_argument("--now", help="ISO time the register is made at (default: now)")
    parser.add_argument(
        "--credentials", type=Path, help="folder keeping the providers' certificates and keys"
    )
    parser.add_argument(
        "--real-dates", action="store_true", help="ordinary (not synthetic) national ids"
    )
    args = parser.parse_args(argv)
    now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    creds = _credentials(args.credentials, now)
    records = generate_register(
        args.count,
        seed=args.seed,
        now=now,
        certificates={o: c.certificate for o, c in creds.items()},
        synthetic=not args.real_dates,
    )
    args.out.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{len(records)} persons written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
