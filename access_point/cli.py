"""The ``budstikke`` command line: the composition root for one-shot jobs.

Each command group lives in its own module under :mod:`access_point.commands` and registers
itself here. Commands translate :class:`~sbdh.errors.BusError` into a message on stderr and a
non-zero exit status; nothing else is caught.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from access_point.commands import (
    admin,
    demo,
    elma,
    exchange,
    lookup,
    package,
    pki,
    registry,
    sbd,
    serve,
    worker,
)
from sbdh.errors import BusError

_GROUPS = (demo, serve, worker, exchange, admin, elma, sbd, package, pki, lookup, registry)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="budstikke",
        description="Budstikke: eDelivery access point for Peppol and eFormidling.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except BusError as exc:
        print(f"budstikke: error: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
