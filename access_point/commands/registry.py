"""``budstikke registry krr|population|entities|sml …``: the local registry stand-ins.

Thin wrappers around the stand-ins' own command lines, so that one command starts the whole
local network (the SMP is ``budstikke elma``):

``krr serve …``            :func:`adapters.standins.krr.main` (``--register FILE --token T``)
``krr generate …``         :func:`adapters.standins.krr_generate.main` (``--count N --out FILE``)
``krr list FILE``          the national ids in a KRR register file
``population serve …``     :func:`adapters.standins.population.main` (``--register`` or
                           ``--generate N``)
``population generate``    ``--count N --out FILE``: a generated register file
``population list FILE``   the national ids in a population register file
``entities serve …``       :func:`adapters.standins.entities.main`
``entities generate``      ``--count N --out FILE``: a generated register file
``sml serve``              :class:`adapters.standins.dns.SmlStandin` on loopback, with
                           ``--participant ID=SMP_URL`` registrations

The arguments after ``serve`` (and after ``krr generate``) go to the stand-in's parser as they
are; ``… serve --help`` shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from adapters.standins import entities, krr, krr_generate, population
from adapters.standins.dns import SmlStandin
from routing.sml import SML_ZONE_TEST
from sbdh.errors import InvalidInput
from sbdh.identifiers import ParticipantId

__all__ = ["register"]


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "registry",
        help="run the local registry stand-ins (KRR, population, entities, SML)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="registry", required=True, metavar="REGISTRY")

    krr_parser = kinds.add_parser("krr", help="the contact and reservation register (KRR)")
    krr_commands = krr_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    _passthrough(krr_commands, "serve", "serve a KRR register file", krr.main)
    _passthrough(krr_commands, "generate", "write a generated KRR register file", krr_generate.main)
    _lister(krr_commands, lambda path: [str(r["personidentifikator"]) for r in _krr(path)])

    pop_parser = kinds.add_parser("population", help="the population register (folkeregisteret)")
    pop_commands = pop_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    _passthrough(pop_commands, "serve", "serve a population register", population.main)
    _generator(pop_commands, population.main)
    _lister(
        pop_commands,
        lambda path: [
            str(r["personIdentifikator"])
            for r in population.PopulationRegister.load(path).records()
        ],
    )

    ent_parser = kinds.add_parser("entities", help="the entity register (enhetsregisteret)")
    ent_commands = ent_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    _passthrough(ent_commands, "serve", "serve an entity register", entities.main)
    _generator(ent_commands, entities.main)

    sml_parser = kinds.add_parser("sml", help="the SML: a DNS server for one SML zone")
    sml_commands = sml_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = sml_commands.add_parser("serve", help="serve the SML zone on loopback")
    serve.add_argument("--zone", default=SML_ZONE_TEST)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument(
        "--participant",
        action="append",
        default=[],
        metavar="ID=SMP_URL",
        help="a participant (0192:<orgnr>) and its SMP's URL; repeatable",
    )
    serve.set_defaults(handler=_serve_sml)


def _passthrough(
    commands: Any, name: str, help_text: str, main: Any, *, prefix: Sequence[str] = ()
) -> None:
    # no option of its own: every argument, "--help" too, goes to the stand-in's parser
    parser = commands.add_parser(name, help=help_text, add_help=False, prefix_chars="\0")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=lambda args: int(main([*prefix, *args.rest])))


def _generator(commands: Any, main: Any) -> None:
    parser = commands.add_parser("generate", help="write a generated register file")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help="the register file to write")

    def run(args: argparse.Namespace) -> int:
        argv = ["--generate", str(args.count), "--seed", str(args.seed), "--out", args.out]
        return int(main(argv))

    parser.set_defaults(handler=run)


def _lister(commands: Any, ids: Any) -> None:
    parser = commands.add_parser("list", help="the national ids in a register file")
    parser.add_argument("register_file", help="the register file (JSON)")

    def run(args: argparse.Namespace) -> int:
        for value in ids(args.register_file):
            print(value)
        return 0

    parser.set_defaults(handler=run)


def _krr(path: str) -> list[dict[str, Any]]:
    return krr.KrrRegister.load(path).records()


def _entries(values: Sequence[str]) -> dict[ParticipantId | str, str]:
    entries: dict[ParticipantId | str, str] = {}
    for value in values:
        participant, sep, url = value.partition("=")
        if not sep or not participant or not url:
            raise InvalidInput(f"--participant {value!r}: expected ID=SMP_URL")
        entries[participant] = url
    return entries


def _serve_sml(args: argparse.Namespace) -> int:
    entries = _entries(args.participant)

    async def serve() -> None:
        standin = SmlStandin(entries, zone=args.zone, host=args.host, port=args.port)
        async with standin:
            host, port = standin.address
            print(f"SML stand-in for {args.zone} on {host}:{port}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
