"""A local entity register (Enhetsregisteret), over real HTTP, as Brønnøysund's open API answers.

* ``GET /enhetsregisteret/api/enheter/{orgnr}`` - a main unit;
* ``GET /enhetsregisteret/api/underenheter/{orgnr}`` - a sub-unit.

Each answers ``{"organisasjonsnummer", "navn", "organisasjonsform": {"kode", "beskrivelse"},
"postadresse", "forretningsadresse", "slettedato"}`` (the addresses as ``{"adresse": [...],
"postnummer", "poststed", "land", "landkode"}``; the ones a unit lacks, and ``slettedato`` when
it has none, are left out). 404 for a number the register does not hold *under that path*, 410
for a unit removed for legal reasons, 400 for a number that is not nine digits with a valid
check digit. Errors are ``application/problem+json``. The register is open data: no token.

The data (a JSON file) is ``{"enheter": [...], "underenheter": [...], "fjernet": [orgnr, ...]}``,
the records in the answer's shape; records are checked with the client's own parser when put in
(``check=False`` lets a test plant a broken one). :attr:`EntityRegister.outage` and
:attr:`EntityRegister.delay` make the register fail or slow for tests.

:func:`generate_entities` makes realistic data deterministically from a seed: organisation
numbers with valid mod-11 check digits, the common organisation forms, names, postal and
business addresses with real postcodes, sub-units of the main units, and a share of deleted
and removed units.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.standins.population import POSTCODES, STREETS
from elma.loopback import LoopbackHttpServer
from routing.registers import ENTITY_REGISTER_PATHS, parse_entity_record
from sbdh.errors import InvalidIdentifier
from sbdh.identifiers import OrganisationNumber, mod11_check_digit

__all__ = [
    "FIELDS",
    "ORGANISATION_FORMS",
    "EntityMix",
    "EntityRegister",
    "EntityRegisterStandin",
    "create_app",
    "generate_entities",
    "generate_organisation_number",
    "main",
    "present",
]

log = logging.getLogger("budstikke.standins.entities")

PROBLEM_JSON = "application/problem+json"
#: the fields the register gives out, in its order
FIELDS = (
    "organisasjonsnummer",
    "navn",
    "organisasjonsform",
    "postadresse",
    "forretningsadresse",
    "slettedato",
)
#: organisasjonsform codes and the register's descriptions
ORGANISATION_FORMS = {
    "AS": "Aksjeselskap",
    "ENK": "Enkeltpersonforetak",
    "KOMM": "Kommune",
    "STAT": "Staten",
    "ORGL": "Organisasjonsledd",
    "SA": "Samvirkeforetak",
    "FLI": "Forening/lag/innretning",
    "NUF": "Norskregistrert utenlandsk foretak",
    "BEDR": "Underenhet til næringsdrivende og offentlig forvaltning",
    "AAFY": "Underenhet til ikke-næringsdrivende",
}
# the organisation number's check-digit weights (Brønnøysundregistrene)
_ORGNR_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)


def present(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the register gives out for ``record``: the protocol's fields it has, no others."""
    return {key: copy.deepcopy(record[key]) for key in FIELDS if record.get(key) is not None}


class EntityRegister:
    """The stand-in's data: main units, sub-units and removed numbers. Change it freely while
    the server runs."""

    def __init__(
        self,
        units: Iterable[Mapping[str, Any]] = (),
        subunits: Iterable[Mapping[str, Any]] = (),
        removed: Iterable[str] = (),
    ) -> None:
        self._units: dict[str, dict[str, Any]] = {}
        self._subunits: dict[str, dict[str, Any]] = {}
        #: numbers answered 410 Gone, under both paths
        self.removed: set[str] = set(removed)
        #: answer every request with this HTTP status (e.g. 503) instead
        self.outage: int | None = None
        #: seconds to wait before answering
        self.delay: float = 0.0
        #: requests answered (any status, both paths)
        self.requests = 0
        for unit in units:
            self.put(unit)
        for subunit in subunits:
            self.put(subunit, subunit=True)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EntityRegister:
        return cls(data.get("enheter", ()), data.get("underenheter", ()), data.get("fjernet", ()))

    @classmethod
    def load(cls, path: str | Path) -> EntityRegister:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected {{'enheter': [...], 'underenheter': [...]}}")
        return cls.from_json(data)

    def as_json(self) -> dict[str, Any]:
        return {
            "enheter": [copy.deepcopy(u) for u in self._units.values()],
            "underenheter": [copy.deepcopy(u) for u in self._subunits.values()],
            "fjernet": sorted(self.removed),
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps(self.as_json(), ensure_ascii=False, indent=1), encoding="utf-8"
        )

    def put(self, record: Mapping[str, Any], *, subunit: bool = False, check: bool = True) -> None:
        """Add or replace a unit (a sub-unit with ``subunit``), by its organisation number."""
        number = record.get("organisasjonsnummer")
        if not isinstance(number, str):
            raise ValueError("a unit needs an organisasjonsnummer")
        if check:
            OrganisationNumber(number)
            # judged as of long ago, so that a unit with a slettedato can still be stored
            parse_entity_record(present(record), today=date.min, subunit=subunit)
        (self._subunits if subunit else self._units)[number] = copy.deepcopy(dict(record))

    def remove(self, number: str) -> None:
        """Forget a unit: it answers 404 from now on."""
        self._units.pop(number, None)
        self._subunits.pop(number, None)

    def __len__(self) -> int:
        return len(self._units) + len(self._subunits)

    def __contains__(self, number: object) -> bool:
        return number in self._units or number in self._subunits

    def answer(self, number: str, *, subunit: bool = False) -> tuple[int, dict[str, Any] | None]:
        """The HTTP status and body for one number under one path."""
        if number in self.removed:
            return 410, None
        record = (self._subunits if subunit else self._units).get(number)
        return (404, None) if record is None else (200, present(record))


def _problem(status: int, title: str, detail: str) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return web.json_response(body, status=status, content_type=PROBLEM_JSON)


def create_app(register: EntityRegister) -> web.Application:
    """The register's HTTP API (both paths)."""

    def handler(subunit: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def unit(request: web.Request) -> web.Response:
            register.requests += 1
            if register.delay:
                await asyncio.sleep(register.delay)
            if register.outage is not None:
                return _problem(register.outage, "Unavailable", "the register is unavailable")
            number = request.match_info["id"]
            try:
                OrganisationNumber(number)
            except InvalidIdentifier as exc:
                return _problem(400, "Bad Request", f"invalid organisation number: {exc.rule}")
            status, body = register.answer(number, subunit=subunit)
            if status == 410:
                return _problem(410, "Gone", f"{number} is removed for legal reasons")
            if body is None:
                kind = "sub-unit" if subunit else "unit"
                return _problem(404, "Not Found", f"no {kind} with organisation number {number}")
            return web.json_response(body)

        return unit

    app = web.Application()
    units_path, subunits_path = ENTITY_REGISTER_PATHS
    app.router.add_get(units_path, handler(subunit=False))
    app.router.add_get(subunits_path, handler(subunit=True))
    return app


class EntityRegisterStandin(LoopbackHttpServer):
    """The entity register stand-in served on ``host:port`` (port 0 picks a free one);
    :attr:`url` is the base URL to give :class:`routing.registers.EntityRegisterClient`."""

    server_name = "the entity register stand-in"

    def __init__(self, register: EntityRegister, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.register = register
        super().__init__(create_app(register), host=host, port=port)

    def _started(self) -> None:
        log.info("entity register stand-in on %s with %d units", self.url, len(self.register))


# -- generated registers -------------------------------------------------------------------------

_WORDS = (
    "FJORDVIK", "NORDLYS", "BJØRKELI", "HAVBRIS", "SØRLANDS", "FJELLTOPP", "VESTKYST", "ELVEBAKKEN",
    "MIDTNORSK", "ISBJØRN", "LYNGHEI", "TINDEN", "SKOGLY", "BRYGGEN", "MOLO", "STAVKIRKE",
)  # fmt: skip
_TRADES = (
    "REGNSKAP", "BYGG", "ELEKTRO", "RØRLEGGER", "TRANSPORT", "EIENDOM", "IT", "CONSULTING",
    "MASKIN", "FISK", "TANNLEGE", "ARKITEKTER",
)  # fmt: skip
_PEOPLE = ("KARI HAUGEN", "OLA NORDMANN", "INGRID BERG", "EIRIK MOEN", "LIV STRAND", "ÅSE LIE")
_AGENCIES = ("DIREKTORATET FOR", "TILSYNET FOR", "ETATEN FOR")
_AGENCY_FIELDS = ("BYGGKVALITET", "DIGITALISERING", "FISKERI", "KYSTFORVALTNING", "ARKIVER")
#: main-unit forms and how common each is in the generated register
_FORMS = (("AS", 50), ("ENK", 20), ("FLI", 8), ("SA", 4), ("NUF", 4), ("KOMM", 6), ("STAT", 3),
          ("ORGL", 5))  # fmt: skip


@dataclass(frozen=True)
class EntityMix:
    """The shares of the generated register with each peculiarity."""

    subunits: float = 0.25  # of all units: sub-units of a main unit
    postal_address: float = 0.4  # units with a postadresse (a post box) besides the business one
    deleted: float = 0.03  # a slettedato in the past
    removed: float = 0.01  # 410 Gone


def generate_organisation_number(rng: random.Random) -> str:
    """A random valid organisation number (first digit 8 or 9, as issued)."""
    while True:
        digits = str(rng.choice((8, 9))) + "".join(str(rng.randrange(10)) for _ in range(7))
        check = mod11_check_digit(digits, _ORGNR_WEIGHTS)
        if check is None:
            continue
        value = f"{digits}{check}"
        OrganisationNumber(value)  # the project's own validator has the last word
        return value


def _address(rng: random.Random, *, near: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A street address; with ``near``, a post box in that address's town."""
    if near is None:
        postcode, city = rng.choice(POSTCODES)
        line = f"{rng.choice(STREETS)} {rng.randrange(1, 80)}"
    else:
        postcode, city = near["postnummer"], near["poststed"]
        line = f"Postboks {rng.randrange(1, 9999)}"
    return {
        "adresse": [line],
        "postnummer": postcode,
        "poststed": city,
        "land": "Norge",
        "landkode": "NO",
    }


def _name(rng: random.Random, form: str, city: str) -> str:
    if form == "ENK":
        return f"{rng.choice(_PEOPLE)} {rng.choice(_TRADES)}"
    if form == "KOMM":
        return f"{city.removesuffix(' S')} KOMMUNE"
    if form in ("STAT", "ORGL"):
        return f"{rng.choice(_AGENCIES)} {rng.choice(_AGENCY_FIELDS)}"
    if form == "FLI":
        return f"{rng.choice(_WORDS)} IDRETTSLAG"
    suffix = {"AS": "AS", "SA": "SA", "NUF": "NUF"}[form]
    return f"{rng.choice(_WORDS)} {rng.choice(_TRADES)} {suffix}"


def generate_entities(count: int, *, seed: int, mix: EntityMix | None = None) -> dict[str, Any]:
    """A register of ``count`` units, as :meth:`EntityRegister.from_json` reads it; the same
    for the same arguments."""
    mix = mix or EntityMix()
    rng = random.Random(seed)  # noqa: S311 -- test data, reproducible by design
    codes = [code for code, _ in _FORMS]
    weights = [weight for _, weight in _FORMS]
    seen: set[str] = set()
    units: list[dict[str, Any]] = []
    subunits: list[dict[str, Any]] = []
    removed: list[str] = []
    while len(units) + len(subunits) + len(removed) < count:
        number = generate_organisation_number(rng)
        if number in seen:
            continue
        seen.add(number)
        roll = rng.random()
        if roll < mix.removed:
            removed.append(number)
            continue
        business = _address(rng)
        if units and roll < mix.removed + mix.subunits:
            parent = rng.choice(units)
            code = "AAFY" if parent["organisasjonsform"]["kode"] == "FLI" else "BEDR"
            record: dict[str, Any] = {
                "organisasjonsnummer": number,
                "navn": f"{parent['navn']} AVD {business['poststed']}",
                "organisasjonsform": {"kode": code, "beskrivelse": ORGANISATION_FORMS[code]},
                "forretningsadresse": business,
            }
            subunits.append(record)
        else:
            code = rng.choices(codes, weights)[0]
            record = {
                "organisasjonsnummer": number,
                "navn": _name(rng, code, business["poststed"]),
                "organisasjonsform": {"kode": code, "beskrivelse": ORGANISATION_FORMS[code]},
                "forretningsadresse": business,
            }
            units.append(record)
        if rng.random() < mix.postal_address:
            record["postadresse"] = _address(rng, near=business)
        if rng.random() < mix.deleted:
            deleted = date(2015, 1, 1) + timedelta(days=rng.randrange(0, 8 * 365))
            record["slettedato"] = deleted.isoformat()
    return {"enheter": units, "underenheter": subunits, "fjernet": removed}


# -- command line --------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    if args.register:
        register = EntityRegister.load(args.register)
    else:
        register = EntityRegister.from_json(generate_entities(args.generate, seed=args.seed))
    async with EntityRegisterStandin(register, host=args.host, port=args.port) as standin:
        print(f"entity register stand-in on {standin.url}", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m adapters.standins.entities (--register FILE | --generate N) [--port N]``;
    ``--out FILE`` with ``--generate`` writes the generated register instead of serving it."""
    parser = argparse.ArgumentParser(
        prog="python -m adapters.standins.entities", description=__doc__
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--register", help="the register file (JSON)")
    source.add_argument("--generate", type=int, metavar="N", help="serve N generated units")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="write the generated register here and exit")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out:
        if not args.generate:
            parser.error("--out needs --generate")
        EntityRegister.from_json(generate_entities(args.generate, seed=args.seed)).save(args.out)
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
