"""``budstikke sbd``: judge Standard Business Documents and convert them between XML and JSON.

``validate FILE...`` prints ``OK file`` or ``INVALID file: <rule>: <reason>`` (the first, most
specific violation) per file and exits 0 only when every file is valid; ``--json`` prints one
JSON object per file instead. ``convert FILE --to json|xml`` prints the other form.

Bad input is a verdict, never a traceback: unreadable files, refused XML (DTD, entities, size)
and broken JSON are reported like any other broken rule.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from sbdh.errors import BusError, Violation
from sbdh.jsonform import sbd_from_json, sbd_to_json
from sbdh.rules import Profile, ValidationReport, validate_sbd
from sbdh.xmlform import sbd_from_xml, sbd_to_xml
from sbdh.xmlsafe import DEFAULT_LIMITS

#: exit status when a file cannot be read or converted
_EXIT_ERROR = 2


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "sbd", help="validate and convert Standard Business Documents (XML or NextMove JSON)"
    )
    actions = parser.add_subparsers(dest="sbd_command", required=True, metavar="ACTION")

    validate = actions.add_parser("validate", help="judge SBD files by SBDH 1.3 and network rules")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--json", action="store_true", help="one JSON object per file")
    validate.add_argument(
        "--profile",
        choices=[p.value for p in Profile],
        default=Profile.AUTO.value,
        help="rules to apply (default: chosen from each document)",
    )
    validate.set_defaults(handler=_validate)

    convert = actions.add_parser("convert", help="print an SBD in XML or NextMove JSON form")
    convert.add_argument("file", metavar="FILE")
    convert.add_argument("--to", choices=("json", "xml"), required=True)
    convert.set_defaults(handler=_convert)


def _read(path: str) -> bytes:
    """The file's bytes; refuses, by its size, a file the parsers would refuse anyway."""
    size = os.stat(path).st_size
    if size > DEFAULT_LIMITS.max_bytes:
        raise _TooLarge(size)
    with open(path, "rb") as handle:
        return handle.read()


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"file is {size} bytes; the limit is {DEFAULT_LIMITS.max_bytes}")


def _judge(path: str, profile: Profile) -> ValidationReport:
    try:
        data = _read(path)
    except _TooLarge as exc:
        return ValidationReport(profile, (Violation("xml-size", str(exc)),))
    except OSError as exc:
        return ValidationReport(profile, (Violation("file-unreadable", exc.strerror or str(exc)),))
    return validate_sbd(data, profile)


def _validate(args: argparse.Namespace) -> int:
    profile = Profile(args.profile)
    all_valid = True
    for path in args.files:
        report = _judge(path, profile)
        all_valid = all_valid and report.valid
        if args.json:
            line = {"file": path, **report.as_dict()}
            print(json.dumps(line, ensure_ascii=False))
        elif report.valid:
            print(f"OK {path}")
        else:
            first = report.violations[0]
            print(f"INVALID {path}: {first.rule}: {first.message}")
    return 0 if all_valid else 1


def _convert(args: argparse.Namespace) -> int:
    try:
        data = _read(args.file)
        is_json = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")
        document = sbd_from_json(data) if is_json else sbd_from_xml(data)
        output = sbd_to_json(document) + b"\n" if args.to == "json" else sbd_to_xml(document)
    except (OSError, _TooLarge) as exc:
        print(f"budstikke: error: {args.file}: {exc}", file=sys.stderr)
        return _EXIT_ERROR
    except BusError as exc:
        print(f"budstikke: error: {args.file}: {exc}", file=sys.stderr)
        return _EXIT_ERROR
    sys.stdout.write(output.decode("utf-8"))
    return 0
