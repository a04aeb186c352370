"""A local population register (folkeregister) for print addresses, over real HTTP.

``GET /folkeregisteret/api/personer/{national id}`` answers, as PROTOCOLS.md says::

    {"personIdentifikator": "...",
     "navn": {"fornavn": "...", "mellomnavn": null, "etternavn": "..."},
     "postadresse": {"adresselinje": [...], "postnummer": "0150", "poststed": "OSLO",
                     "landkode": "NO"}}

with ``postadresse: null`` for a person whose address is protected. 404 for an id the register
does not hold, 400 for one that is not a valid national id, 401 when tokens are configured and
the request has none of them; errors are ``application/problem+json``.

The register is a list of records in the answer's shape plus one field only the stand-in reads,
``adressebeskyttelse`` (FREG's grading: ``ugradert``, ``klientadresse``, ``fortrolig``,
``strengtFortrolig``); a protected person's record keeps the address, and the stand-in withholds
it, as the real register does. Files are a list, or ``{"personer": [...]}``. Records are checked
with the client's own parser when put in, so the stand-in never serves what a client would
refuse (``check=False`` lets a test plant a broken one on purpose).

For tests, :attr:`PopulationRegister.outage` makes every request answer with that HTTP status,
and :attr:`PopulationRegister.delay` holds every answer back that many seconds. No access log is
written: the request line carries the national id.

:func:`generate_people` makes realistic records deterministically from a seed (synthetic
national ids, Norwegian names, streets, real postcode and place pairs, a share of protected
addresses and of addresses abroad).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import hmac
import json
import logging
import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.standins.krr_generate import generate_national_id
from elma.loopback import LoopbackHttpServer
from routing.registers import POPULATION_PATH, PROTECTED_GRADES, parse_person_record
from sbdh.errors import InvalidIdentifier
from sbdh.identifiers import NationalId

__all__ = [
    "POSTCODES",
    "STREETS",
    "PopulationMix",
    "PopulationRegister",
    "PopulationStandin",
    "create_app",
    "generate_people",
    "main",
    "present",
]

log = logging.getLogger("budstikke.standins.population")

PROBLEM_JSON = "application/problem+json"


def present(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the register gives out for ``record``: exactly the protocol's fields, and no
    address when it is protected."""
    grade = record.get("adressebeskyttelse")
    address = None if grade in PROTECTED_GRADES else record.get("postadresse")
    return {
        "personIdentifikator": record.get("personIdentifikator"),
        "navn": copy.deepcopy(record.get("navn")),
        "postadresse": copy.deepcopy(address),
    }


class PopulationRegister:
    """The stand-in's data: records by national id. Change it freely while the server runs."""

    def __init__(self, records: Iterable[Mapping[str, Any]] = ()) -> None:
        self._records: dict[str, dict[str, Any]] = {}
        #: answer every request with this HTTP status (e.g. 503) instead
        self.outage: int | None = None
        #: seconds to wait before answering
        self.delay: float = 0.0
        #: lookups answered (any status), for tests that count calls to the register
        self.requests = 0
        for record in records:
            self.put(record)

    @classmethod
    def load(cls, path: str | Path) -> PopulationRegister:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(data, Mapping):
            data = data.get("personer")
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a list of persons or {{'personer': [...]}}")
        return cls(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps({"personer": self.records()}, ensure_ascii=False, indent=1),
            encoding="utf-8",
        )

    def put(self, record: Mapping[str, Any], *, check: bool = True) -> None:
        """Add or replace a person (by ``personIdentifikator``)."""
        national_id = record.get("personIdentifikator")
        if not isinstance(national_id, str):
            raise ValueError("a person record needs a personIdentifikator")
        if check:
            NationalId(national_id)
            parse_person_record(dict(record))  # with the grading: refuses unknown ones too
        self._records[national_id] = copy.deepcopy(dict(record))

    def remove(self, national_id: str) -> None:
        self._records.pop(national_id, None)

    def protect(self, national_id: str, grade: str = "strengtFortrolig") -> None:
        """Give a person a protected address from now on (``ugradert`` lifts it)."""
        self._records[national_id]["adressebeskyttelse"] = grade

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, national_id: object) -> bool:
        return national_id in self._records

    def records(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(r) for r in self._records.values()]

    def answer(self, national_id: str) -> dict[str, Any] | None:
        """The answer for one id, or ``None`` when the register does not hold it."""
        record = self._records.get(national_id)
        return None if record is None else present(record)


def _problem(status: int, title: str, detail: str) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return web.json_response(body, status=status, content_type=PROBLEM_JSON)


def create_app(register: PopulationRegister, *, tokens: Collection[str] = ()) -> web.Application:
    """The register's HTTP API. With ``tokens``, a bearer token from them is required."""

    def authorised(request: web.Request) -> bool:
        if not tokens:
            return True
        header = request.headers.get("Authorization", "")
        given = header[7:] if header[:7].lower() == "bearer " else ""
        return any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens)

    async def person(request: web.Request) -> web.Response:
        register.requests += 1
        if register.delay:
            await asyncio.sleep(register.delay)
        if register.outage is not None:
            return _problem(register.outage, "Unavailable", "the register is having a bad day")
        if not authorised(request):
            return _problem(401, "Unauthorized", "a valid bearer token is required")
        national_id = request.match_info["id"]
        try:
            NationalId(national_id)
        except InvalidIdentifier as exc:
            return _problem(400, "Bad Request", f"not a national id: {exc.rule}")
        answer = register.answer(national_id)
        if answer is None:
            return _problem(404, "Not Found", "no person with this national id")
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get(POPULATION_PATH, person)
    return app


class PopulationStandin(LoopbackHttpServer):
    """The population register stand-in served on ``host:port`` (port 0 picks a free one);
    :attr:`url` is the base URL to give :class:`routing.registers.PopulationRegisterClient`."""

    server_name = "the population register stand-in"

    def __init__(
        self,
        register: PopulationRegister,
        *,
        tokens: Collection[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.register = register
        super().__init__(create_app(register, tokens=tokens), host=host, port=port)

    def _started(self) -> None:
        log.info("population register stand-in on %s with %d persons", self.url, len(self.register))


# -- generated populations -----------------------------------------------------------------------

_FIRST_NAMES = (
    "Ola", "Kari", "Nora", "Emma", "Jakob", "Lukas", "Ingrid", "Astrid", "Sindre", "Håkon",
    "Sigrid", "Aksel", "Maja", "Ella", "Olav", "Liv", "Bjørn", "Solveig", "Eirik", "Tone",
    "Marius", "Ida", "Magnus", "Thea", "Henrik", "Sofie", "Even", "Ragnhild", "Øystein", "Åse",
)  # fmt: skip
_MIDDLE_NAMES = ("Marie", "Johan", "Elise", "Andreas", "Kristine", "Nikolai", "Sofie", "Emil")
_LAST_NAMES = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen",
    "Johannessen", "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen", "Henriksen",
    "Lund", "Sørensen", "Moen", "Strand", "Solberg", "Bakken", "Lie", "Ødegård", "Nordmann",
)  # fmt: skip
STREETS = (
    "Storgata", "Kirkegata", "Skolegata", "Fjordveien", "Bjørkeveien", "Granveien", "Solbakken",
    "Parkveien", "Møllevegen", "Sjøgata", "Kongens gate", "Dronningens gate", "Strandveien",
    "Nordre gate", "Haugveien", "Furuvegen", "Elvegata", "Løkkeveien", "Åsveien", "Torggata",
)  # fmt: skip
#: real postcode and place pairs, spread over the country
POSTCODES = (
    ("0150", "OSLO"), ("0558", "OSLO"), ("0661", "OSLO"), ("1337", "SANDVIKA"), ("1530", "MOSS"),
    ("1606", "FREDRIKSTAD"), ("2000", "LILLESTRØM"), ("2317", "HAMAR"), ("2609", "LILLEHAMMER"),
    ("3015", "DRAMMEN"), ("3110", "TØNSBERG"), ("3210", "SANDEFJORD"), ("3717", "SKIEN"),
    ("4006", "STAVANGER"), ("4307", "SANDNES"), ("4610", "KRISTIANSAND S"), ("4836", "ARENDAL"),
    ("5003", "BERGEN"), ("5527", "HAUGESUND"), ("6002", "ÅLESUND"), ("6413", "MOLDE"),
    ("6800", "FØRDE"), ("7010", "TRONDHEIM"), ("7600", "LEVANGER"), ("8006", "BODØ"),
    ("8514", "NARVIK"), ("8900", "BRØNNØYSUND"), ("9008", "TROMSØ"), ("9600", "HAMMERFEST"),
    ("9900", "KIRKENES"),
)  # fmt: skip
_ABROAD = (
    ("SE", ["Drottninggatan 5"], "111 51", "STOCKHOLM"),
    ("DK", ["Nørregade 12, 2. th."], "1165", "KØBENHAVN K"),
    ("DE", ["Hauptstraße 7"], "10827", "BERLIN"),
    ("ES", ["Calle Mayor 3"], "29640", "FUENGIROLA"),
)


@dataclass(frozen=True)
class PopulationMix:
    """The shares of the generated population with each peculiarity."""

    protected: float = 0.05
    strictly_protected: float = 0.4  # of the protected: strengtFortrolig rather than fortrolig
    abroad: float = 0.03
    middle_name: float = 0.3
    care_of: float = 0.05
    d_number: float = 0.02


def _norwegian_address(rng: random.Random, mix: PopulationMix) -> dict[str, Any]:
    postcode, city = rng.choice(POSTCODES)
    number = f"{rng.randrange(1, 120)}{rng.choice(('', '', '', 'A', 'B'))}"
    street = f"{rng.choice(STREETS)} {number}"
    if rng.random() < 0.3:  # a flat: its bolignummer after the street address
        street += f" H{rng.randrange(1, 6):02d}{rng.randrange(1, 4):02d}"
    lines = [street]
    if rng.random() < mix.care_of:
        lines.insert(0, f"c/o {rng.choice(_LAST_NAMES)}")
    return {"adresselinje": lines, "postnummer": postcode, "poststed": city, "landkode": "NO"}


def _address_abroad(rng: random.Random) -> dict[str, Any]:
    country, lines, postcode, city = rng.choice(_ABROAD)
    return {
        "adresselinje": list(lines),
        "postnummer": postcode,
        "poststed": city,
        "landkode": country,
    }


def generate_people(
    count: int,
    *,
    seed: int,
    mix: PopulationMix | None = None,
    national_ids: Sequence[str] = (),
    synthetic: bool = True,
) -> list[dict[str, Any]]:
    """``count`` person records, the same for the same arguments.

    ``national_ids`` gives the first ids to use (for example those of a generated KRR register,
    so that both registers describe the same people); the rest are drawn from ``seed``.
    """
    mix = mix or PopulationMix()
    rng = random.Random(seed)  # noqa: S311 -- test data, reproducible by design
    seen: set[str] = set()
    people: list[dict[str, Any]] = []
    given = iter(national_ids)
    while len(people) < count:
        national_id = next(given, None) or generate_national_id(
            rng, d_number=rng.random() < mix.d_number, synthetic=synthetic
        )
        if national_id in seen:
            continue
        seen.add(national_id)
        navn = {
            "fornavn": rng.choice(_FIRST_NAMES),
            "mellomnavn": rng.choice(_MIDDLE_NAMES) if rng.random() < mix.middle_name else None,
            "etternavn": rng.choice(_LAST_NAMES),
        }
        abroad = rng.random() < mix.abroad
        record: dict[str, Any] = {
            "personIdentifikator": national_id,
            "navn": navn,
            "postadresse": _address_abroad(rng) if abroad else _norwegian_address(rng, mix),
        }
        if rng.random() < mix.protected:
            strict = rng.random() < mix.strictly_protected
            record["adressebeskyttelse"] = "strengtFortrolig" if strict else "fortrolig"
        people.append(record)
    return people


# -- command line --------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    if args.register:
        register = PopulationRegister.load(args.register)
    else:
        register = PopulationRegister(generate_people(args.generate, seed=args.seed))
    async with PopulationStandin(
        register, tokens=args.token or (), host=args.host, port=args.port
    ) as standin:
        print(f"population register stand-in on {standin.url}", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m adapters.standins.population (--register FILE | --generate N) [--port N]``;
    ``--out FILE`` with ``--generate`` writes the generated register instead of serving it."""
    parser = argparse.ArgumentParser(
        prog="python -m adapters.standins.population", description=__doc__
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--register", help="the register file (JSON)")
    source.add_argument("--generate", type=int, metavar="N", help="serve N generated persons")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="write the generated register here and exit")
    parser.add_argument("--token", action="append", help="an accepted bearer token")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out:
        if not args.generate:
            parser.error("--out needs --generate")
        PopulationRegister(generate_people(args.generate, seed=args.seed)).save(args.out)
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
