"""``budstikke pki init DIR``: a development PKI for the local network and tests."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sbdh.errors import InvalidInput
from sbdh.pki import DEFAULT_ACCESS_POINTS, DEFAULT_ORGANISATIONS, generate_dev_pki, init_pki


def _org(text: str) -> tuple[str, str]:
    number, sep, name = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected ORGNR:NAME, got {text!r}")
    return number.strip(), name.strip()


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "pki",
        help="development PKI (root CA, access-point CA, certificates for APs and organisations)",
    )
    cmds = p.add_subparsers(dest="pki_command", required=True, metavar="SUBCOMMAND")
    init = cmds.add_parser(
        "init",
        help="create a development PKI in DIR",
        description=(
            "Create a root CA, an access-point CA and an enterprise CA, and certificates with "
            "keys for access points and organisations. Writes PEM files and pki.json (an index) "
            "to DIR; keys are written with mode 0600. Not for production use."
        ),
    )
    init.add_argument("directory", type=Path, metavar="DIR")
    init.add_argument(
        "--ap",
        action="append",
        metavar="CN",
        help="access point certificate CN (repeatable; default "
        f"{', '.join(DEFAULT_ACCESS_POINTS)})",
    )
    init.add_argument(
        "--org",
        action="append",
        type=_org,
        metavar="ORGNR:NAME",
        help="organisation certificate (repeatable; default three test organisations)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing PKI in DIR")
    init.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> int:
    aps = tuple(args.ap or DEFAULT_ACCESS_POINTS)
    orgs = tuple(args.org or DEFAULT_ORGANISATIONS)
    if len(set(aps)) != len(aps) or len({o for o, _ in orgs}) != len(orgs):
        raise InvalidInput("access point CNs and organisation numbers must be unique")
    pki = generate_dev_pki(now=datetime.now(UTC), access_points=aps, organisations=orgs)
    index = init_pki(args.directory, pki, force=args.force)
    print(f"development PKI written to {args.directory}")
    print(f"  trust anchor: {args.directory / str(index['trust_anchor'])}")
    for cn in pki.access_points:
        print(f"  access point {cn}: access-points/{cn}.pem")
    for nr, cred in pki.organisations.items():
        print(f"  organisation {nr} ({cred.common_name}): organisations/{nr}.pem")
    return 0
