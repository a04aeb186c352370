"""A local KRR (contact and reservation register) speaking the register's REST API.

* ``POST /rest/v1/personer`` (and ``/rest/v2/personer``, the same shape):
  ``Authorization: Bearer <token>`` (one of the accepted tokens), body
  ``{"personidentifikatorer": [...]}`` with 1 to 1000 valid national ids, answer
  ``{"personer": [...]}`` with one person per distinct id, in the order asked. ``Accept:
  application/jose`` gets the same JSON as an RS256 JWS with ``x5c`` when the stand-in has a
  signing credential (406 otherwise).
* ``GET /rest/v2/printSertifikat`` (no token): ``{"postkasseleverandoerAdresse",
  "x509Sertifikat"}`` of the configured print provider (404 when there is none).

Errors are ``application/problem+json``: 401 without an accepted token, 400 for a body that is
not the request shape (too few or too many ids, an invalid national id, named by its index only).

The register is a list of records in exactly the answer's shape (a JSON file: a list, or
``{"personer": [...]}``), which may hold more than the register would give out. What it gives
out follows the register's rules, judged at the stand-in's clock (:func:`present`):

* ``SLETTET`` / ``IKKE_REGISTRERT``: no contact data, mailbox, certificate or language;
  ids not in the register are ``IKKE_REGISTRERT``;
* ``reservasjon`` ``JA``: ``KAN_IKKE_VARSLES``, and no mailbox or certificate;
* a contact channel (e-mail, mobile) neither updated nor verified in 18 months is withheld;
  when every channel has expired the person is ``KAN_IKKE_VARSLES`` and contact data, mailbox
  and certificate are all withheld;
* ``varslingsstatus`` is worked out, not taken from the file: ``KAN_VARSLES`` for an active,
  unreserved person with at least one current channel.

Only the fields of PROTOCOLS.md are ever emitted. The records are checked with the client's own
parser when loaded, so the stand-in never serves what a client would refuse.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hmac
import json
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from elma.loopback import LoopbackHttpServer
from routing.errors import RegistryResponseError
from routing.jws import sign_compact
from routing.krr import (
    KRR_MAX_IDS,
    NotificationStatus,
    PersonStatus,
    Reservation,
    contact_cutoff,
    parse_person,
    parse_timestamp,
)
from sbdh.errors import ConfigurationError, InvalidIdentifier
from sbdh.identifiers import NationalId, OrganisationNumber
from sbdh.pki import Credential

__all__ = [
    "KrrRegister",
    "KrrStandin",
    "PrintProviderEntry",
    "create_app",
    "main",
    "not_registered",
    "present",
]

log = logging.getLogger("budstikke.standins.krr")

PROBLEM_JSON = "application/problem+json"
JOSE = "application/jose"
_CHANNELS = ("epostadresse", "mobiltelefonnummer")
_CHANNEL_FIELDS = ("", "_oppdatert", "_sist_verifisert")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def not_registered(national_id: str) -> dict[str, Any]:
    """The answer for an id the register does not know."""
    return {
        "personidentifikator": national_id,
        "reservasjon": Reservation.NEI.value,
        "status": PersonStatus.IKKE_REGISTRERT.value,
        "varslingsstatus": NotificationStatus.KAN_IKKE_VARSLES.value,
    }


def _current(kontakt: Mapping[str, Any], channel: str, cutoff: datetime) -> bool:
    stamps = [
        parse_timestamp(kontakt[channel + suffix])
        for suffix in ("_oppdatert", "_sist_verifisert")
        if isinstance(kontakt.get(channel + suffix), str)
    ]
    return bool(stamps) and max(stamps) >= cutoff


def present(record: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """What the register gives out about the person in ``record`` at time ``now``."""
    status = record.get("status") or PersonStatus.AKTIV.value
    reservation = record.get("reservasjon") or Reservation.NEI.value
    out: dict[str, Any] = {"personidentifikator": record["personidentifikator"]}
    out["reservasjon"] = reservation
    if reservation == Reservation.JA.value and record.get("reservasjonstidspunkt"):
        out["reservasjonstidspunkt"] = record["reservasjonstidspunkt"]
    if record.get("reservasjon_oppdatert"):
        out["reservasjon_oppdatert"] = record["reservasjon_oppdatert"]
    out["status"] = status
    out["varslingsstatus"] = NotificationStatus.KAN_IKKE_VARSLES.value
    if status != PersonStatus.AKTIV.value:
        return out

    cutoff = contact_cutoff(now)
    kontakt = record.get("kontaktinformasjon") or {}
    present_channels = [c for c in _CHANNELS if kontakt.get(c)]
    current_channels = [c for c in present_channels if _current(kontakt, c, cutoff)]
    expired = bool(present_channels) and not current_channels
    if current_channels:
        out["kontaktinformasjon"] = {
            channel + suffix: kontakt[channel + suffix]
            for channel in current_channels
            for suffix in _CHANNEL_FIELDS
            if kontakt.get(channel + suffix)
        }
    reserved = reservation == Reservation.JA.value
    if current_channels and not reserved:
        out["varslingsstatus"] = NotificationStatus.KAN_VARSLES.value
    if not reserved and not expired:
        post = record.get("digital_post")
        if post:
            out["digital_post"] = {
                "postkasseadresse": post["postkasseadresse"],
                "postkasseleverandoeradresse": post["postkasseleverandoeradresse"],
            }
        if record.get("sertifikat"):
            out["sertifikat"] = record["sertifikat"]
    if record.get("spraak"):
        out["spraak"] = record["spraak"]
    return out


class KrrRegister:
    """The stand-in's data: national id -> stored record; may be changed while serving."""

    def __init__(self, records: Iterable[Mapping[str, Any]] = (), *, now: datetime | None = None):
        self._records: dict[str, dict[str, Any]] = {}
        for record in records:
            self.put(record, now=now)

    @classmethod
    def load(cls, path: str | Path, *, now: datetime | None = None) -> KrrRegister:
        """Read a register file: a JSON list of person records, or ``{"personer": [...]}``."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the KRR register {path}: {exc}") from exc
        if isinstance(data, Mapping):
            data = data.get("personer")
        if not isinstance(data, list):
            raise ConfigurationError(f"{path}: a KRR register is a JSON list of person records")
        try:
            return cls(data, now=now)
        except RegistryResponseError as exc:
            raise ConfigurationError(f"{path}: {exc}", rule=exc.rule) from exc

    def put(self, record: Mapping[str, Any], *, now: datetime | None = None) -> None:
        """Add or replace a person; refuses a record the client would not accept."""
        parse_person(record, now=now or _utcnow(), path=f"record[{len(self._records)}]")
        self._records[str(record["personidentifikator"])] = dict(record)

    def remove(self, national_id: str) -> None:
        self._records.pop(national_id, None)

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, national_id: object) -> bool:
        return national_id in self._records

    def records(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._records.values()]

    def answer(self, national_ids: Sequence[str], *, now: datetime) -> dict[str, Any]:
        """``{"personer": [...]}`` for these ids (repeats answered once)."""
        personer = []
        for nid in dict.fromkeys(national_ids):
            record = self._records.get(nid)
            personer.append(not_registered(nid) if record is None else present(record, now=now))
        return {"personer": personer}


@dataclass(frozen=True)
class PrintProviderEntry:
    """What ``/rest/v2/printSertifikat`` gives out."""

    orgnr: str
    certificate: x509.Certificate

    def as_json(self) -> dict[str, str]:
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return {
            "postkasseleverandoerAdresse": self.orgnr,
            "x509Sertifikat": base64.b64encode(der).decode("ascii"),
        }


def _problem(status: int, title: str, detail: str, **headers: str) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return web.json_response(body, status=status, content_type=PROBLEM_JSON, headers=headers)


def _ids(body: Any) -> list[str] | web.Response:
    if not isinstance(body, Mapping) or not isinstance(body.get("personidentifikatorer"), list):
        return _problem(400, "Bad Request", 'the body must be {"personidentifikatorer": [...]}')
    ids: list[Any] = body["personidentifikatorer"]
    if not 1 <= len(ids) <= KRR_MAX_IDS:
        return _problem(
            400,
            "Bad Request",
            f"personidentifikatorer must hold 1 to {KRR_MAX_IDS} national ids, not {len(ids)}",
        )
    checked: list[str] = []
    for index, value in enumerate(ids):
        try:
            if not isinstance(value, str):
                raise InvalidIdentifier("not a string", rule="nid-type")
            checked.append(NationalId(value).value)
        except InvalidIdentifier:
            return _problem(
                400, "Bad Request", f"personidentifikatorer[{index}] is not a valid national id"
            )
    return checked


@dataclass
class _Stats:
    #: the number of ids in each ``personer`` request answered, in order
    batches: list[int]


STATS = web.AppKey("krr_stats", _Stats)


def create_app(
    register: KrrRegister,
    *,
    tokens: Collection[str],
    clock: Callable[[], datetime] = _utcnow,
    signer: Credential | None = None,
    print_provider: PrintProviderEntry | None = None,
) -> web.Application:
    """The stand-in's aiohttp application."""
    if not tokens or not all(tokens):
        raise ConfigurationError("the KRR stand-in needs at least one non-empty token")
    accepted = [t.encode("utf-8") for t in tokens]
    stats = _Stats([])

    def authorised(request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        given = token.strip().encode("utf-8")
        return any(hmac.compare_digest(given, t) for t in accepted)

    async def personer(request: web.Request) -> web.Response:
        if not authorised(request):
            return _problem(
                401,
                "Unauthorized",
                "a valid bearer token is required",
                **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        try:
            body = await request.json()
        except (ValueError, UnicodeError):
            return _problem(400, "Bad Request", "the body is not JSON")
        ids = _ids(body)
        if isinstance(ids, web.Response):
            return ids
        stats.batches.append(len(ids))
        answer = register.answer(ids, now=clock())
        if JOSE in request.headers.get("Accept", ""):
            if signer is None:
                return _problem(406, "Not Acceptable", "this register does not sign its answers")
            payload = json.dumps(answer, ensure_ascii=False).encode("utf-8")
            return web.Response(text=sign_compact(payload, signer), content_type=JOSE)
        return web.json_response(answer, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def print_certificate(request: web.Request) -> web.Response:
        if print_provider is None:
            return _problem(404, "Not Found", "no print provider is configured")
        return web.json_response(print_provider.as_json())

    app = web.Application()
    app[STATS] = stats
    for version in ("v1", "v2"):
        app.router.add_post(f"/rest/{version}/personer", personer)
    app.router.add_get("/rest/v2/printSertifikat", print_certificate)
    return app


class KrrStandin(LoopbackHttpServer):
    """The KRR stand-in served on ``host:port`` (port 0 picks a free one); :attr:`url` is the
    base URL to give :class:`routing.krr_client.KrrClient`."""

    server_name = "the KRR stand-in"

    def __init__(
        self,
        register: KrrRegister,
        *,
        tokens: Collection[str],
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], datetime] = _utcnow,
        signer: Credential | None = None,
        print_provider: PrintProviderEntry | None = None,
    ) -> None:
        if print_provider is not None:
            OrganisationNumber(print_provider.orgnr)
        self.register = register
        app = create_app(
            register, tokens=tokens, clock=clock, signer=signer, print_provider=print_provider
        )
        super().__init__(app, host=host, port=port)

    @property
    def batches(self) -> list[int]:
        """The number of ids in each ``personer`` request answered so far."""
        return self.app[STATS].batches

    def _started(self) -> None:
        log.info("KRR stand-in on %s with %d persons", self.url, len(self.register))


async def _serve(args: argparse.Namespace) -> None:
    register = KrrRegister.load(args.register)
    print_provider = None
    if args.print_cert:
        if not args.print_orgnr:
            raise ConfigurationError("--print-cert needs --print-orgnr")
        cert = x509.load_pem_x509_certificate(Path(args.print_cert).read_bytes())
        print_provider = PrintProviderEntry(args.print_orgnr, cert)
    standin = KrrStandin(
        register, tokens=args.token, host=args.host, port=args.port, print_provider=print_provider
    )
    async with standin:
        print(standin.url, flush=True)  # the one line a caller waits for
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m adapters.standins.krr --register FILE --token T [--port N]``."""
    parser = argparse.ArgumentParser(prog="python -m adapters.standins.krr", description=__doc__)
    parser.add_argument("--register", required=True, help="the register file (JSON)")
    parser.add_argument("--token", action="append", required=True, help="an accepted token")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--print-cert", help="PEM certificate of the print provider")
    parser.add_argument("--print-orgnr", help="the print provider's organisation number")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
