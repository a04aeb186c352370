"""The document package: business files in a signed ASiC-E, encrypted to the receiver with CMS.

This is what documents travel in when they go to a person's digital mailbox or to another
agency, shaped like the DPI *dokumentpakke*:

* :func:`seal_package` streams the files, in one pass, through SHA-256 into a ZIP writer that
  writes straight into the CMS encryptor that writes ``out``. Nothing is held in memory but a
  chunk, so packages of hundreds of MB seal in bounded memory and without temporary files.
* :func:`open_package` reads the container where it lies, in the encrypted package: a ZIP is
  read from its end, so it cannot be verified as a stream, but CBC decrypts at random
  (:class:`~sbdh.cms.EnvelopeReader`). It verifies the XAdES signature and the signer's chain,
  and then extracts each file while checking its digest: one pass of AES over each file, and
  one write, to its destination. Only a package that cannot be read at random (from a pipe,
  or split into very many chunks) is first decrypted to a private temporary directory. On any
  failure the files already extracted are deleted again.

The layers: :mod:`sbdh.ziparchive` (the ZIP), :mod:`sbdh.xades` (the signature),
:mod:`sbdh.asic` (the container rules), :mod:`sbdh.cms` (the encryption); this module puts
them together with the manifest.

The manifest (``manifest.xml``, namespace :data:`MANIFEST_NS`) follows DPI's: ``avsender`` and
``mottaker`` (an organisation by participant id, or a person by national id), one
``hoveddokument`` and any number of ``vedlegg``, each with ``href``, ``mime``, ``tittel`` and
``lang``. It sits in the container root as in DPI: ``META-INF/manifest.xml`` is reserved by
ASiC-E for the OpenDocument manifest, which validators such as DSS parse as such.

Every entry in the container except ``mimetype`` and the signature itself must be signed and
every signed entry must be present; every business file must be in the manifest and the other
way round. Errors (all :class:`~sbdh.errors.PackageError` or :class:`SignatureError`):

=============================================  ===============================================
what                                           error (rule)
=============================================  ===============================================
not for our certificate                        DecryptionError (``cms-recipient``)
bad key unwrap / padding / not a ZIP           DecryptionError (``cms-content``), one message
a file differs from what was signed            DigestMismatch (``asic-digest``, ``zip-crc``)
signature or signed properties do not verify   SignatureError (``xades-…``)
signer not trusted, expired, wrong key usage   UntrustedSigner (``chain-…``, ``cert-…``)
a signed or listed file is absent              MissingFile
an entry nobody signed                         PackageError (``asic-unsigned-file``)
unsafe, duplicate names; ZIP structure         PackageError (``zip-…``)
``mimetype`` not first, compressed, wrong      PackageError (``asic-mimetype``)
inflates past its declared size or the cap     DecompressionError (``zip-bomb``, ``…-cap``)
=============================================  ===============================================
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Final, Protocol, TypeAlias

from cryptography import x509
from lxml import etree

from sbdh.asic import (
    MIMETYPE_NAME,
    SIGNATURES_NAME,
    check_coverage,
    check_mimetype,
    write_mimetype,
)
from sbdh.cms import (
    CHUNK_SIZE,
    CORRUPT_CONTENT,
    FRAGMENTED_RULE,
    MAX_SEGMENTS,
    EnvelopeReader,
    EnvelopeWriter,
    decrypt,
)
from sbdh.errors import (
    DecompressionError,
    DecryptionError,
    DigestMismatch,
    InvalidIdentifier,
    InvalidInput,
    MissingFile,
    PackageError,
    SignatureError,
)
from sbdh.identifiers import PARTICIPANT_SCHEME, NationalId, ParticipantId
from sbdh.pki import Credential
from sbdh.trust import TrustStore
from sbdh.xades import DataObject, SignedReference, build_signature, verify_signature
from sbdh.xmlsafe import XmlLimits, parse_xml
from sbdh.ziparchive import (
    NOT_A_ZIP_RULE,
    Compression,
    RandomAccessSource,
    ZipEntry,
    ZipReader,
    ZipWriter,
    check_entry_name,
)

__all__ = [
    "DEFAULT_OPEN_LIMITS",
    "MANIFEST_NAME",
    "MANIFEST_NS",
    "Compression",
    "Document",
    "Manifest",
    "OpenLimits",
    "OpenedPackage",
    "PackageFile",
    "PackedFile",
    "Party",
    "SealedPackage",
    "open_package",
    "read_container",
    "seal_package",
    "write_container",
]

MANIFEST_NAME: Final = "manifest.xml"
MANIFEST_NS: Final = "urn:budstikke:dokumentpakke:manifest:v1"

#: who sends or receives a package: an organisation by participant id, or a person
Party: TypeAlias = ParticipantId | NationalId


# ============================================================================================
# manifest


@dataclass(frozen=True)
class Document:
    """A document as the manifest lists it."""

    href: str
    mime_type: str
    title: str
    lang: str = "no"


@dataclass(frozen=True)
class Manifest:
    """Who the package is from and to, and what is in it."""

    sender: Party
    receiver: Party
    main_document: Document
    attachments: tuple[Document, ...] = ()

    @property
    def documents(self) -> tuple[Document, ...]:
        return (self.main_document, *self.attachments)

    def to_xml(self) -> bytes:
        def m(tag: str) -> str:
            return f"{{{MANIFEST_NS}}}{tag}"

        root = etree.Element(m("manifest"), nsmap={None: MANIFEST_NS})
        for tag, party in (("avsender", self.sender), ("mottaker", self.receiver)):
            holder = etree.SubElement(root, m(tag))
            if isinstance(party, NationalId):
                etree.SubElement(holder, m("person")).text = party.value
            else:
                org = etree.SubElement(holder, m("organisasjon"), authority=party.scheme)
                org.text = party.value
        for tag, doc in (
            ("hoveddokument", self.main_document),
            *(("vedlegg", a) for a in self.attachments),
        ):
            element = etree.SubElement(root, m(tag), href=doc.href, mime=doc.mime_type)
            etree.SubElement(element, m("tittel"), lang=doc.lang).text = doc.title
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

    @classmethod
    def from_xml(cls, data: bytes, limits: XmlLimits | None = None) -> Manifest:
        """Parse a manifest with the hardened parser; anything unexpected is refused."""
        try:
            root = parse_xml(data, limits) if limits else parse_xml(data)
        except InvalidInput as exc:
            raise PackageError(f"manifest cannot be parsed: {exc}", rule="manifest") from exc
        if root.tag != f"{{{MANIFEST_NS}}}manifest":
            raise PackageError(f"manifest root must be {{{MANIFEST_NS}}}manifest", rule="manifest")
        children = [c for c in root if isinstance(c.tag, str)]
        known = {"avsender", "mottaker", "hoveddokument", "vedlegg"}
        for child in children:
            if etree.QName(child).namespace != MANIFEST_NS or etree.QName(child).localname not in (
                known
            ):
                raise PackageError(
                    f"unexpected manifest element {etree.QName(child).text}", rule="manifest"
                )

        def only(name: str) -> etree._Element:
            found = [c for c in children if etree.QName(c).localname == name]
            if len(found) != 1:
                raise PackageError(f"manifest needs exactly one {name}", rule="manifest")
            return found[0]

        return cls(
            sender=_party(only("avsender")),
            receiver=_party(only("mottaker")),
            main_document=_document(only("hoveddokument")),
            attachments=tuple(
                _document(c) for c in children if etree.QName(c).localname == "vedlegg"
            ),
        )


def _party(holder: etree._Element) -> Party:
    inner = [c for c in holder if isinstance(c.tag, str)]
    if len(inner) != 1:
        raise PackageError(f"{etree.QName(holder).localname} names no party", rule="manifest")
    element = inner[0]
    kind = etree.QName(element).localname
    text = (element.text or "").strip()
    try:
        if kind == "person":
            return NationalId(text)
        if kind == "organisasjon":
            return ParticipantId(text, element.get("authority", PARTICIPANT_SCHEME))
    except InvalidIdentifier as exc:
        raise PackageError(f"manifest {kind}: {exc}", rule="manifest-party") from exc
    raise PackageError(f"unknown party kind {kind!r}", rule="manifest")


def _document(element: etree._Element) -> Document:
    href, mime = element.get("href"), element.get("mime")
    titles = [c for c in element if etree.QName(c).localname == "tittel"]
    if not href or not mime or len(titles) != 1:
        raise PackageError(
            f"{etree.QName(element).localname} needs href, mime and one tittel", rule="manifest"
        )
    check_entry_name(href)
    return Document(href, mime, (titles[0].text or "").strip(), titles[0].get("lang", "no"))


# ============================================================================================
# values


@dataclass(frozen=True)
class PackageFile:
    """A file to put in a package: from a path (streamed) or an open binary stream."""

    name: str
    source: Path | BinaryIO = field(repr=False)
    mime_type: str = "application/pdf"
    title: str | None = None
    lang: str = "no"
    #: STORED by default: PDFs are compressed already and deflate would dominate the time
    compression: Compression = Compression.STORED


@dataclass(frozen=True)
class PackedFile:
    """A file in a sealed or opened package."""

    name: str
    size: int
    sha256: bytes
    mime_type: str
    #: where :func:`open_package` extracted it; ``None`` when sealing
    path: Path | None = None


@dataclass(frozen=True)
class SealedPackage:
    manifest: Manifest
    files: tuple[PackedFile, ...]
    signing_time: datetime
    #: bytes of the (unencrypted) ASiC-E container
    container_size: int
    #: bytes written to ``out`` (the CMS message); equal to container_size for a bare container
    size: int


@dataclass(frozen=True)
class OpenedPackage:
    manifest: Manifest
    files: tuple[PackedFile, ...]
    signer: x509.Certificate
    #: the signer's certificate path, leaf first, trust anchor last
    chain: tuple[x509.Certificate, ...]
    signing_time: datetime

    @property
    def main_document(self) -> PackedFile:
        return next(f for f in self.files if f.name == self.manifest.main_document.href)


@dataclass(frozen=True)
class OpenLimits:
    """Caps for opening a package from a stranger."""

    #: entries in the container
    max_entries: int = 1000
    #: total bytes extracted (the zip-bomb cap): also bounds what a DEFLATED entry may inflate to
    max_unpacked_bytes: int = 4 * 1024**3
    #: size of manifest.xml and signatures.xml
    max_xml_bytes: int = 16 * 1024**2
    #: chunks of encrypted content indexed for decryption on demand; a package in more chunks
    #: is decrypted to a temporary file instead, so that a hostile one cannot grow the index
    max_segments: int = MAX_SEGMENTS


DEFAULT_OPEN_LIMITS: Final = OpenLimits()


# ============================================================================================
# sealing


class _Sink(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


class _BackgroundWriter:
    """Writes to ``out`` on a thread of its own, so that disk writes overlap hashing and AES.

    At most ``depth`` chunks wait in the queue (a few MB). Chunks must be immutable ``bytes``:
    the producers here (cipher and inflater output) make new ones for every call. An error on
    the writer thread is raised again by the next :meth:`write` or by :meth:`close`.
    """

    def __init__(self, out: _Sink, depth: int = 8) -> None:
        self._out = out
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)  # None: stop
        self._error: BaseException | None = None
        self._small = bytearray()
        self._thread = threading.Thread(target=self._run, name="budstikke-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._out.write(item)
                except BaseException as exc:  # handed over to the producing thread
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._raise()
        n = len(data)
        if n < 65536:  # coalesce headers and other small pieces
            self._small += data
            if len(self._small) >= 65536:
                self._queue.put(bytes(self._small))
                self._small.clear()
            return n
        if self._small:
            self._queue.put(bytes(self._small))
            self._small.clear()
        self._queue.put(data if isinstance(data, bytes) else bytes(data))
        return n

    def close(self) -> None:
        """Wait until everything is written; raise what went wrong on the way, if anything."""
        if self._thread.is_alive():
            if self._small:
                self._queue.put(bytes(self._small))
                self._small.clear()
            self._queue.put(None)
            self._thread.join()
        self._raise()


#: extracted files at least this large are written by a :class:`_BackgroundWriter`
_BACKGROUND_WRITE: Final = 4 * CHUNK_SIZE


class _Counter:
    """Counts what passes through to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.count = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._out.write(data)
        self.count += len(data)
        return len(data)


def _check_files(files: Sequence[PackageFile], main_document: str) -> None:
    if not files:
        raise PackageError("a package needs at least one file", rule="package-empty")
    seen: set[str] = set()
    for f in files:
        check_entry_name(f.name)
        key = f.name.casefold()
        if key in (MIMETYPE_NAME, MANIFEST_NAME) or key.startswith("meta-inf/"):
            raise PackageError(f"file name {f.name!r} is reserved", rule="package-reserved-name")
        if key in seen:
            raise PackageError(f"file name {f.name!r} is used twice", rule="zip-duplicate")
        seen.add(key)
    if main_document not in {f.name for f in files}:
        raise PackageError(
            f"main document {main_document!r} is not among the files", rule="package-main-document"
        )


def write_container(
    files: Sequence[PackageFile],
    *,
    sender: Party,
    receiver: Party,
    main_document: str,
    signer: Credential,
    out: _Sink,
    now: datetime,
) -> SealedPackage:
    """Write the signed ASiC-E container for ``files`` to ``out``, sequentially, in one pass."""
    _check_files(files, main_document)
    documents = {f.name: Document(f.name, f.mime_type, f.title or f.name, f.lang) for f in files}
    manifest = Manifest(
        sender,
        receiver,
        documents[main_document],
        tuple(documents[f.name] for f in files if f.name != main_document),
    )
    writer = ZipWriter(out, modified=now)
    write_mimetype(writer)
    packed: list[PackedFile] = []
    signed: list[DataObject] = []
    for f in files:
        digest = hashlib.sha256()
        with contextlib.ExitStack() as stack:
            source: BinaryIO = (
                stack.enter_context(open(f.source, "rb"))
                if isinstance(f.source, Path)
                else f.source
            )
            with writer.open(f.name, compression=f.compression) as entry:
                while chunk := source.read(CHUNK_SIZE):
                    digest.update(chunk)
                    entry.write(chunk)
                size = entry.size
        packed.append(PackedFile(f.name, size, digest.digest(), f.mime_type))
        signed.append(DataObject(f.name, digest.digest(), f.mime_type))
    manifest_xml = manifest.to_xml()
    writer.add(MANIFEST_NAME, manifest_xml)
    signed.append(DataObject(MANIFEST_NAME, hashlib.sha256(manifest_xml).digest(), "text/xml"))
    writer.add(SIGNATURES_NAME, build_signature(signed, signer, signing_time=now))
    writer.close()
    return SealedPackage(manifest, tuple(packed), now, writer.offset, writer.offset)


def seal_package(
    files: Sequence[PackageFile],
    *,
    sender: Party,
    receiver: Party,
    main_document: str,
    signer: Credential,
    recipient_certificate: x509.Certificate,
    out: BinaryIO,
    now: datetime,
) -> SealedPackage:
    """Sign ``files`` as ``signer`` into an ASiC-E and encrypt it to ``recipient_certificate``.

    ``out`` receives the CMS EnvelopedData (BER) strictly sequentially; on an error it holds a
    truncated message and the caller must discard it.
    """
    counter = _Counter(out)
    background = _BackgroundWriter(counter)
    try:
        envelope = EnvelopeWriter(background, recipient_certificate)
        sealed = write_container(
            files,
            sender=sender,
            receiver=receiver,
            main_document=main_document,
            signer=signer,
            out=envelope,
            now=now,
        )
        envelope.finish()
    finally:
        background.close()
    return SealedPackage(
        sealed.manifest, sealed.files, sealed.signing_time, sealed.container_size, counter.count
    )


# ============================================================================================
# opening


class _Extraction:
    """Files and directories created under ``root``, to be removed again on failure."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[Path] = []
        self.directories: list[Path] = []

    def target(self, name: str) -> Path:
        parts = name.split("/")
        directory = self.root
        for part in parts[:-1]:
            directory = directory / part
            if not directory.exists():
                directory.mkdir(mode=0o700)
                self.directories.append(directory)
        path = directory / parts[-1]
        if not path.parent.resolve().is_relative_to(self.root.resolve()):
            raise PackageError(f"entry {name!r} would land outside {self.root}", rule="zip-name")
        return path

    def create(self, path: Path) -> BinaryIO:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o600)
        self.files.append(path)
        return os.fdopen(fd, "wb")

    def undo(self) -> None:
        for path in reversed(self.files):
            with contextlib.suppress(OSError):
                path.unlink()
        for directory in reversed(self.directories):
            with contextlib.suppress(OSError):
                directory.rmdir()


def read_container(
    container: BinaryIO,
    *,
    trust: TrustStore,
    out_dir: Path,
    now: datetime,
    limits: OpenLimits = DEFAULT_OPEN_LIMITS,
) -> OpenedPackage:
    """Verify the ASiC-E in the seekable ``container`` and extract its files into ``out_dir``."""
    reader = ZipReader(container, max_entries=limits.max_entries)
    return _verify_and_extract(reader, trust=trust, out_dir=out_dir, now=now, limits=limits)


def _verify_and_extract(
    reader: ZipReader, *, trust: TrustStore, out_dir: Path, now: datetime, limits: OpenLimits
) -> OpenedPackage:
    check_mimetype(reader)
    entries = {e.name: e for e in reader.entries if not e.is_directory}
    signature_entry = entries.get(SIGNATURES_NAME)
    if signature_entry is None:
        raise SignatureError(
            f"the package is not signed: no {SIGNATURES_NAME}", rule="asic-unsigned"
        )
    xml_limits = XmlLimits(max_bytes=limits.max_xml_bytes)
    verified = verify_signature(
        reader.read(signature_entry, max_size=limits.max_xml_bytes),
        trust=trust,
        now=now,
        limits=xml_limits,
    )
    references = {r.name: r for r in verified.references}
    content = check_coverage(entries, verified.references)
    if MANIFEST_NAME not in content:
        raise MissingFile(f"the package has no {MANIFEST_NAME}", rule="package-manifest")
    manifest_xml = reader.read(entries[MANIFEST_NAME], max_size=limits.max_xml_bytes)
    _check_digest(references[MANIFEST_NAME], manifest_xml)
    manifest = Manifest.from_xml(manifest_xml, xml_limits)

    business = content - {MANIFEST_NAME}
    listed = {d.href: d for d in manifest.documents}
    if missing := sorted(set(listed) - business):
        raise MissingFile(
            f"the manifest lists files the package lacks: {', '.join(missing)}",
            rule="manifest-missing-file",
        )
    if unlisted := sorted(business - set(listed)):
        raise PackageError(
            f"files not in the manifest: {', '.join(unlisted)}", rule="manifest-unlisted-file"
        )
    ordered = sorted((entries[name] for name in business), key=lambda e: e.header_offset)
    declared = sum(e.size for e in ordered)
    if declared > limits.max_unpacked_bytes:
        raise DecompressionError(
            f"the package would unpack to {declared} bytes; the cap is {limits.max_unpacked_bytes}",
            rule="package-size-cap",
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    extraction = _Extraction(out_dir)
    files: list[PackedFile] = []
    try:
        for entry in ordered:
            files.append(
                _extract(reader, entry, references[entry.name], listed[entry.name], extraction)
            )
    except BaseException:
        extraction.undo()
        raise
    return OpenedPackage(
        manifest, tuple(files), verified.signer, verified.chain, verified.signing_time
    )


def _check_digest(reference: SignedReference, data: bytes) -> None:
    if reference.digest_method.digest(data) != reference.digest:
        raise DigestMismatch(f"{reference.name} differs from what was signed", rule="asic-digest")


def _extract(
    reader: ZipReader,
    entry: ZipEntry,
    reference: SignedReference,
    document: Document,
    extraction: _Extraction,
) -> PackedFile:
    path = extraction.target(entry.name)
    signed_digest = reference.digest_method.new()
    sha256 = signed_digest if reference.digest_method.name == "SHA256" else hashlib.sha256()
    with extraction.create(path) as fh:
        # a large file is written on a thread of its own, while the next chunks are decrypted
        out = _BackgroundWriter(fh) if entry.size >= _BACKGROUND_WRITE else fh
        try:
            for chunk in reader.chunks(entry):
                signed_digest.update(chunk)
                if sha256 is not signed_digest:
                    sha256.update(chunk)
                out.write(chunk)
        finally:
            if isinstance(out, _BackgroundWriter):
                out.close()
    if signed_digest.digest() != reference.digest:
        raise DigestMismatch(f"{entry.name} differs from what was signed", rule="asic-digest")
    return PackedFile(entry.name, entry.size, sha256.digest(), document.mime_type, path)


def open_package(
    src: BinaryIO,
    *,
    recipient: Credential,
    trust: TrustStore,
    out_dir: Path,
    now: datetime,
    limits: OpenLimits = DEFAULT_OPEN_LIMITS,
    work_dir: Path | None = None,
) -> OpenedPackage:
    """Decrypt, verify and extract the package readable from ``src``.

    A seekable ``src`` (a file) is decrypted on demand as the container is read, so the
    plaintext is never written but to the extracted files. An unseekable one (a pipe), or a
    package whose ciphertext is split into more than ``limits.max_segments`` chunks, is
    decrypted to a private temporary directory under ``work_dir`` (the system's by default)
    that is deleted before this returns. Files land in ``out_dir`` (created if needed; existing
    files are never overwritten) and are removed again if any check fails.
    """
    if _seekable(src):
        start = src.tell()
        try:
            content = EnvelopeReader(
                src,
                certificate=recipient.certificate,
                key=recipient.key,
                max_segments=limits.max_segments,
            )
        except DecryptionError as exc:
            if exc.rule != FRAGMENTED_RULE:
                raise
            src.seek(start)
        else:
            with content:
                return _open_container(
                    content, trust=trust, out_dir=out_dir, now=now, limits=limits
                )
    with (
        tempfile.TemporaryDirectory(prefix="budstikke-open-", dir=work_dir) as tmp,
        open(Path(tmp) / "container.asice", "w+b") as container,
    ):
        decrypt(src, container, certificate=recipient.certificate, key=recipient.key)
        container.flush()
        return _open_container(container, trust=trust, out_dir=out_dir, now=now, limits=limits)


def _seekable(src: BinaryIO) -> bool:
    try:
        return bool(src.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _open_container(
    container: RandomAccessSource,
    *,
    trust: TrustStore,
    out_dir: Path,
    now: datetime,
    limits: OpenLimits,
) -> OpenedPackage:
    """:func:`read_container` on decrypted content: not-a-ZIP looks like a bad padding."""
    try:
        reader = ZipReader(container, max_entries=limits.max_entries)
    except PackageError as exc:
        if exc.rule == NOT_A_ZIP_RULE:
            # indistinguishable from a bad padding: no oracle for crafted ciphertexts
            raise DecryptionError(CORRUPT_CONTENT, rule="cms-content") from exc
        raise
    return _verify_and_extract(reader, trust=trust, out_dir=out_dir, now=now, limits=limits)
