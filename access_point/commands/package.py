"""``budstikke package seal|open``: document packages (signed ASiC-E, encrypted with CMS).

``seal`` signs files into an ASiC-E container and encrypts it to the receiver's certificate;
``open`` decrypts one, verifies the signature and the signer's chain, and extracts the files.
Both stream: packages of hundreds of MB take a few MB of memory. Errors are one line on stderr
and a non-zero exit status (see :mod:`access_point.cli`).
"""

from __future__ import annotations

import argparse
import contextlib
import mimetypes
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sbdh.errors import ConfigurationError, InvalidInput
from sbdh.identifiers import NationalId, OrganisationNumber, ParticipantId
from sbdh.package import (
    Compression,
    OpenedPackage,
    PackageFile,
    Party,
    open_package,
    seal_package,
)
from sbdh.pki import Credential
from sbdh.trust import TrustStore, load_certificates

_PARTY_HELP = (
    "a participant id (0192:991825827), an organisation number (991825827) or a national "
    "id (11 digits)"
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "package",
        help="seal and open document packages (signed ASiC-E encrypted with CMS)",
        description=(
            "Document packages carry business documents to a digital mailbox or another "
            "agency: the files and a manifest in an ASiC-E container with a XAdES signature, "
            "encrypted (CMS EnvelopedData, AES-256-CBC, RSAES-OAEP) to the receiver."
        ),
    )
    actions = p.add_subparsers(dest="package_command", required=True, metavar="ACTION")

    seal = actions.add_parser(
        "seal",
        help="sign FILES into a package and encrypt it to a receiver",
        description=(
            "Sign FILES (with a manifest naming sender, receiver and main document) into an "
            "ASiC-E container and encrypt it to the receiver's certificate. Files are stored, "
            "not compressed, unless --deflate is given. OUT is written only when sealing "
            "succeeds."
        ),
    )
    seal.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to package")
    seal.add_argument(
        "--sign-cert",
        required=True,
        type=Path,
        metavar="PEM",
        help="the signer's certificate, PEM (leaf first, then its issuers)",
    )
    seal.add_argument(
        "--sign-key", required=True, type=Path, metavar="PEM", help="the signer's private key"
    )
    seal.add_argument(
        "--to",
        required=True,
        type=Path,
        dest="recipient",
        metavar="CERT",
        help="the receiver's encryption certificate (PEM or DER; the first one in the file)",
    )
    seal.add_argument("--sender", required=True, metavar="ID", help=f"sender: {_PARTY_HELP}")
    seal.add_argument("--receiver", required=True, metavar="ID", help=f"receiver: {_PARTY_HELP}")
    seal.add_argument(
        "--main",
        metavar="FILE",
        help="which FILE is the main document (hoveddokument); default: the first",
    )
    seal.add_argument(
        "--title", help="title of the main document; default: its file name (others: theirs)"
    )
    seal.add_argument("--lang", default="no", help="language of the titles (default: no)")
    seal.add_argument(
        "--deflate",
        action="store_true",
        help="deflate the files (default: store them; PDFs are compressed already)",
    )
    seal.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUT", help="the package to write"
    )
    seal.set_defaults(handler=_seal)

    open_ = actions.add_parser(
        "open",
        help="decrypt and verify PACKAGE and extract its files",
        description=(
            "Decrypt PACKAGE with the receiver's key, verify the XAdES signature, the signer's "
            "chain to a trust anchor and every file's digest, and extract the files into "
            "OUTDIR. Nothing is left in OUTDIR when any check fails; existing files are never "
            "overwritten."
        ),
    )
    open_.add_argument("package", type=Path, metavar="PACKAGE", help="the package to open")
    open_.add_argument(
        "--cert", required=True, type=Path, metavar="PEM", help="the receiver's certificate"
    )
    open_.add_argument(
        "--key", required=True, type=Path, metavar="PEM", help="the receiver's private key"
    )
    open_.add_argument(
        "--trust",
        required=True,
        action="append",
        type=Path,
        metavar="ANCHOR_PEM",
        help="trust anchor(s) for the signer, PEM (repeatable; a file may hold several)",
    )
    open_.add_argument(
        "--intermediate",
        action="append",
        default=[],
        type=Path,
        metavar="PEM",
        help="intermediate CA certificates to help build the signer's path (repeatable)",
    )
    open_.add_argument(
        "--at",
        metavar="TIME",
        help="verify as of this ISO 8601 time with offset (default: now)",
    )
    open_.add_argument(
        "--work-dir",
        type=Path,
        metavar="DIR",
        help=(
            "where the decrypted container is kept while it is verified, when PACKAGE cannot "
            "be read at random (a pipe such as /dev/stdin); default: system temp"
        ),
    )
    open_.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUTDIR", help="where to put the files"
    )
    open_.set_defaults(handler=_open)


def _party(text: str) -> Party:
    value = text.strip()
    if value.isdigit() and len(value) == 11:
        return NationalId(value)
    if value.isdigit() and len(value) == 9:
        return OrganisationNumber(value).participant_id()
    return ParticipantId.parse(value)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from exc


def _seal(args: argparse.Namespace) -> int:
    signer = Credential.load(args.sign_cert, args.sign_key)
    recipient = load_certificates(_read(args.recipient))[0]
    sender, receiver = _party(args.sender), _party(args.receiver)
    paths: list[Path] = args.files
    main = args.main.name if args.main else paths[0].name
    compression = Compression.DEFLATED if args.deflate else Compression.STORED
    files = []
    for path in paths:
        if not path.is_file():
            raise ConfigurationError(f"cannot read {path}: not a file")
        files.append(
            PackageFile(
                path.name,
                path,
                mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                args.title if args.title and path.name == main else None,
                args.lang,
                compression,
            )
        )
    output: Path = args.output
    partial = output.with_name(f".{output.name}.partial")
    try:
        with open(partial, "wb") as out:
            sealed = seal_package(
                files,
                sender=sender,
                receiver=receiver,
                main_document=main,
                signer=signer,
                recipient_certificate=recipient,
                out=out,
                now=datetime.now(UTC),
            )
        os.replace(partial, output)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {output}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    print(
        f"sealed {output}: {len(sealed.files)} file(s), {sealed.size} bytes, "
        f"from {sealed.manifest.sender} to {sealed.manifest.receiver}, "
        f"encrypted to {recipient.subject.rfc4514_string()}"
    )
    for f in sealed.files:
        print(f"  {f.name}  {f.size} bytes  sha256:{f.sha256.hex()}")
    return 0


def _at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"--at {text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise InvalidInput(f"--at {text!r} needs a UTC offset (for example Z or +01:00)")
    return moment


def _open(args: argparse.Namespace) -> int:
    recipient = Credential.load(args.cert, args.key)
    trust = TrustStore.from_pem(
        *(_read(p) for p in args.trust), intermediates=[_read(p) for p in args.intermediate]
    )
    at = _at(args.at)
    try:
        with open(args.package, "rb") as src:
            opened = open_package(
                src,
                recipient=recipient,
                trust=trust,
                out_dir=args.output,
                now=at,
                work_dir=args.work_dir,
            )
    except OSError as exc:
        raise ConfigurationError(
            f"cannot open {args.package} into {args.output}: {exc.strerror or exc}"
        ) from exc
    _summary(opened)
    return 0


def _summary(opened: OpenedPackage) -> None:
    manifest = opened.manifest
    print(
        f"opened: signed by {opened.signer.subject.rfc4514_string()} "
        f"at {opened.signing_time.isoformat()}"
    )
    print(f"  sender    {manifest.sender}")
    print(f"  receiver  {manifest.receiver}")
    titles = {d.href: d.title for d in manifest.documents}
    for f in opened.files:
        role = "main" if f.name == manifest.main_document.href else "attachment"
        print(
            f"  {role:<10} {f.path}  {f.size} bytes  {f.mime_type}  "
            f"{titles[f.name]!r}  sha256:{f.sha256.hex()}"
        )
