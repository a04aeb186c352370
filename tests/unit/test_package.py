"""Document packages end to end: seal, open, and every way a package can be wrong."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import warnings
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sbdh import cms
from sbdh.asic import ASIC_E_MIME_TYPE, SIGNATURES_NAME
from sbdh.errors import (
    DecompressionError,
    DecryptionError,
    DigestMismatch,
    MissingFile,
    PackageError,
    SignatureError,
    UntrustedSigner,
)
from sbdh.identifiers import NationalId, ParticipantId
from sbdh.package import (
    MANIFEST_NAME,
    Document,
    Manifest,
    OpenedPackage,
    OpenLimits,
    PackageFile,
    open_package,
    read_container,
    seal_package,
)
from sbdh.pki import Credential, DevPki, generate_dev_pki, generate_root_ca, issue_end_entity
from sbdh.trust import TrustStore
from sbdh.xades import DataObject, build_signature
from sbdh.ziparchive import Compression, ZipWriter
from tests.unit.test_cms import ber_with_chunks

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SENDER = ParticipantId("0192:991825827")
RECEIVER = ParticipantId("0192:974760673")
PERSON = NationalId("01017000027")


@pytest.fixture(scope="module")
def pki() -> DevPki:
    return generate_dev_pki(now=NOW, ca_key_size=2048)


@pytest.fixture(scope="module")
def signer(pki: DevPki) -> Credential:
    return pki.organisations["991825827"]


@pytest.fixture(scope="module")
def recipient(pki: DevPki) -> Credential:
    return pki.organisations["974760673"]


@pytest.fixture(scope="module")
def trust(pki: DevPki) -> TrustStore:
    return TrustStore((pki.root.certificate,))


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("docs")
    files = {
        "vedtak.pdf": os.urandom(300_000),
        "vedlegg.txt": b"Vedlegg med tekst\n" * 2000,
        "bilde.png": os.urandom(5_000),
    }
    for name, data in files.items():
        (base / name).write_bytes(data)
    return {name: base / name for name in files}


def _files(documents: dict[str, Path]) -> list[PackageFile]:
    return [
        PackageFile("vedtak.pdf", documents["vedtak.pdf"], "application/pdf", "Vedtak"),
        PackageFile(
            "vedlegg/vedlegg.txt",
            documents["vedlegg.txt"],
            "text/plain",
            "Vedlegg 1",
            compression=Compression.DEFLATED,
        ),
        PackageFile("bilde.png", io.BytesIO(documents["bilde.png"].read_bytes()), "image/png"),
    ]


def _seal(
    files: list[PackageFile],
    signer: Credential,
    recipient: Credential,
    *,
    main: str = "vedtak.pdf",
    receiver: ParticipantId | NationalId = RECEIVER,
    now: datetime = NOW,
) -> bytes:
    out = io.BytesIO()
    seal_package(
        files,
        sender=SENDER,
        receiver=receiver,
        main_document=main,
        signer=signer,
        recipient_certificate=recipient.certificate,
        out=out,
        now=now,
    )
    return out.getvalue()


class _Pipe(io.RawIOBase):
    """Reads like a pipe: no seek, no tell."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        return self._data.readinto(buffer)


def _open(
    data: bytes,
    recipient: Credential,
    trust: TrustStore,
    out_dir: Path,
    *,
    now: datetime = NOW,
    limits: OpenLimits | None = None,
    pipe: bool = False,
) -> OpenedPackage:
    return open_package(
        io.BufferedReader(_Pipe(data)) if pipe else io.BytesIO(data),
        recipient=recipient,
        trust=trust,
        out_dir=out_dir,
        now=now,
        work_dir=out_dir.parent,
        **({"limits": limits} if limits else {}),
    )


#: tests that tamper with the ciphertext run on both ways of opening
SOURCES = pytest.mark.parametrize("pipe", [False, True], ids=["seekable", "pipe"])


def _decrypt(data: bytes, recipient: Credential) -> bytes:
    out = io.BytesIO()
    cms.decrypt(io.BytesIO(data), out, certificate=recipient.certificate, key=recipient.key)
    return out.getvalue()


def _encrypt(container: bytes, recipient: Credential) -> bytes:
    out = io.BytesIO()
    cms.encrypt(io.BytesIO(container), out, recipient.certificate)
    return out.getvalue()


def _entries(container: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(container)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _zip(entries: dict[str, bytes], *, deflate: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    writer = ZipWriter(out, modified=NOW)
    for name, data in entries.items():
        compression = Compression.DEFLATED if name in deflate else Compression.STORED
        writer.add(name, data, compression=compression)
    writer.close()
    return out.getvalue()


def _signed_container(
    files: dict[str, bytes],
    signer: Credential,
    *,
    manifest: Manifest | None = None,
    sign: tuple[str, ...] | None = None,
    deflate: tuple[str, ...] = (),
    digests: dict[str, bytes] | None = None,
) -> bytes:
    """A container built by hand: any files, any manifest, a signature over ``sign``."""
    names = list(files)
    if manifest is None:
        manifest = Manifest(
            SENDER,
            RECEIVER,
            Document(names[0], "application/pdf", "Main"),
            tuple(Document(n, "application/octet-stream", n) for n in names[1:]),
        )
    entries = {"mimetype": ASIC_E_MIME_TYPE.encode(), **files, MANIFEST_NAME: manifest.to_xml()}
    signed = sign if sign is not None else (*names, MANIFEST_NAME)
    digests = digests or {}
    objects = [
        DataObject(n, digests.get(n, hashlib.sha256(entries[n]).digest()), "application/pdf")
        for n in signed
    ]
    entries[SIGNATURES_NAME] = build_signature(objects, signer, signing_time=NOW)
    return _zip(entries, deflate=deflate)


# ============================================================================================
# round trips


def test_round_trip_multi_file(
    tmp_path: Path,
    documents: dict[str, Path],
    signer: Credential,
    recipient: Credential,
    trust: TrustStore,
) -> None:
    sealed_bytes = _seal(_files(documents), signer, recipient)
    opened = _open(sealed_bytes, recipient, trust, tmp_path / "out")
    assert opened.manifest.sender == SENDER
    assert opened.manifest.receiver == RECEIVER
    assert opened.manifest.main_document == Document("vedtak.pdf", "application/pdf", "Vedtak")
    assert [d.title for d in opened.manifest.attachments] == ["Vedlegg 1", "bilde.png"]
    assert opened.signer == signer.certificate
    assert opened.chain[-1] == trust.anchors[0]
    assert opened.signing_time == NOW
    by_name = {f.name: f for f in opened.files}
    assert set(by_name) == {"vedtak.pdf", "vedlegg/vedlegg.txt", "bilde.png"}
    for name, source in [
        ("vedtak.pdf", "vedtak.pdf"),
        ("vedlegg/vedlegg.txt", "vedlegg.txt"),
        ("bilde.png", "bilde.png"),
    ]:
        original = documents[source].read_bytes()
        extracted = by_name[name]
        assert extracted.path == tmp_path / "out" / name
        assert extracted.path.read_bytes() == original
        assert extracted.sha256 == hashlib.sha256(original).digest()
        assert extracted.size == len(original)
        assert stat.S_IMODE(extracted.path.stat().st_mode) == 0o600
    assert opened.main_document.name == "vedtak.pdf"
    # the decrypted container did not outlive the call
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_sealed_package_reports_what_it_holds(
    documents: dict[str, Path], signer: Credential, recipient: Credential
) -> None:
    out = io.BytesIO()
    sealed = seal_package(
        _files(documents)[:1],
        sender=SENDER,
        receiver=RECEIVER,
        main_document="vedtak.pdf",
        signer=signer,
        recipient_certificate=recipient.certificate,
        out=out,
        now=NOW,
    )
    assert sealed.size == len(out.getvalue())
    assert sealed.container_size == len(_decrypt(out.getvalue(), recipient))
    [packed] = sealed.files
    assert packed.sha256 == hashlib.sha256(documents["vedtak.pdf"].read_bytes()).digest()


def test_container_layout(
    documents: dict[str, Path], signer: Credential, recipient: Credential
) -> None:
    container = _decrypt(_seal(_files(documents), signer, recipient), recipient)
    assert container[30:38] == b"mimetype"
    with zipfile.ZipFile(io.BytesIO(container)) as z:
        assert z.testzip() is None
        names = z.namelist()
        infos = {i.filename: i for i in z.infolist()}
    assert names == [
        "mimetype",
        "vedtak.pdf",
        "vedlegg/vedlegg.txt",
        "bilde.png",
        MANIFEST_NAME,
        SIGNATURES_NAME,
    ]
    assert infos["vedtak.pdf"].compress_type == zipfile.ZIP_STORED
    assert infos["vedlegg/vedlegg.txt"].compress_type == zipfile.ZIP_DEFLATED
    assert infos["mimetype"].compress_type == zipfile.ZIP_STORED
    assert not infos["mimetype"].flag_bits & 0x08
    assert infos["mimetype"].extra == b""


def test_person_receiver(
    tmp_path: Path,
    documents: dict[str, Path],
    signer: Credential,
    recipient: Credential,
    trust: TrustStore,
) -> None:
    data = _seal(_files(documents)[:1], signer, recipient, receiver=PERSON)
    opened = _open(data, recipient, trust, tmp_path / "out")
    assert opened.manifest.receiver == PERSON
    assert PERSON.value not in repr(opened.manifest)


def test_manifest_xml_round_trip() -> None:
    manifest = Manifest(
        SENDER,
        PERSON,
        Document("a.pdf", "application/pdf", "Vedtak om støtte", "nb"),
        (Document("b/c.pdf", "application/pdf", "Vedlegg"),),
    )
    assert Manifest.from_xml(manifest.to_xml()) == manifest


@pytest.mark.parametrize(
    ("xml", "rule"),
    [
        (b"<manifest/>", "manifest"),
        (b'<manifest xmlns="urn:budstikke:dokumentpakke:manifest:v1"/>', "manifest"),
        (
            b'<manifest xmlns="urn:budstikke:dokumentpakke:manifest:v1"><avsender>'
            b"<person>12345678901</person></avsender><mottaker><person>01017000027</person>"
            b'</mottaker><hoveddokument href="a" mime="b"><tittel>t</tittel></hoveddokument>'
            b"</manifest>",
            "manifest-party",
        ),
        (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e "x">]><m>&e;</m>', "manifest"),
    ],
)
def test_bad_manifests(xml: bytes, rule: str) -> None:
    with pytest.raises(PackageError) as err:
        Manifest.from_xml(xml)
    assert err.value.rule == rule


@pytest.mark.parametrize(
    ("names", "main", "rule"),
    [
        (["a.pdf", "A.PDF"], "a.pdf", "zip-duplicate"),
        (["a.pdf", "manifest.xml"], "a.pdf", "package-reserved-name"),
        (["a.pdf", "META-INF/x.xml"], "a.pdf", "package-reserved-name"),
        (["mimetype"], "mimetype", "package-reserved-name"),
        (["a.pdf"], "b.pdf", "package-main-document"),
        (["../a.pdf"], "../a.pdf", "zip-name"),
        ([], "a.pdf", "package-empty"),
    ],
)
def test_seal_refuses_bad_file_lists(
    names: list[str], main: str, rule: str, signer: Credential, recipient: Credential
) -> None:
    files = [PackageFile(n, io.BytesIO(b"x")) for n in names]
    with pytest.raises(PackageError) as err:
        _seal(files, signer, recipient, main=main)
    assert err.value.rule == rule


# ============================================================================================
# what goes wrong, and how it is reported


@pytest.fixture(scope="module")
def sealed(documents: dict[str, Path], signer: Credential, recipient: Credential) -> bytes:
    return _seal(_files(documents), signer, recipient)


@pytest.fixture(scope="module")
def container(sealed: bytes, recipient: Credential) -> bytes:
    return _decrypt(sealed, recipient)


def test_wrong_recipient(tmp_path: Path, sealed: bytes, pki: DevPki, trust: TrustStore) -> None:
    other = pki.organisations["910075918"]
    with pytest.raises(DecryptionError, match="not addressed to this certificate") as err:
        _open(sealed, other, trust, tmp_path / "out")
    assert err.value.rule == "cms-recipient"
    assert not (tmp_path / "out").exists()


@SOURCES
def test_right_certificate_wrong_key(
    tmp_path: Path,
    sealed: bytes,
    *,
    recipient: Credential,
    pki: DevPki,
    trust: TrustStore,
    pipe: bool,
) -> None:
    impostor = Credential(recipient.certificate, pki.organisations["910075918"].key)
    with pytest.raises(DecryptionError) as err:
        _open(sealed, impostor, trust, tmp_path / "out", pipe=pipe)
    assert err.value.rule == "cms-content"
    assert err.value.message == cms.CORRUPT_CONTENT


@SOURCES
def test_flipped_ciphertext_in_a_file_is_caught_by_its_digest(
    tmp_path: Path, sealed: bytes, recipient: Credential, trust: TrustStore, pipe: bool
) -> None:
    damaged = bytearray(sealed)
    damaged[len(sealed) // 3] ^= 0x01  # inside vedtak.pdf: one block garbled, one bit flipped
    with pytest.raises(DigestMismatch):
        _open(bytes(damaged), recipient, trust, tmp_path / "out", pipe=pipe)
    assert list((tmp_path / "out").iterdir()) == []


@SOURCES
@pytest.mark.parametrize("back", range(16))
def test_any_change_to_the_last_block_is_one_indistinguishable_error(
    tmp_path: Path,
    sealed: bytes,
    recipient: Credential,
    trust: TrustStore,
    *,
    back: int,
    pipe: bool,
) -> None:
    """Bad padding and a garbled ZIP end record look the same: no padding oracle."""
    damaged = bytearray(sealed)
    damaged[len(sealed) - 10 - 1 - back] ^= 0x5A  # before the five end-of-contents octets
    with pytest.raises(DecryptionError) as err:
        _open(bytes(damaged), recipient, trust, tmp_path / "out", pipe=pipe)
    assert (err.value.rule, err.value.message) == ("cms-content", cms.CORRUPT_CONTENT)


@SOURCES
def test_not_a_zip_is_the_same_error_as_a_bad_padding(
    tmp_path: Path, recipient: Credential, trust: TrustStore, pipe: bool
) -> None:
    with pytest.raises(DecryptionError) as err:
        _open(_encrypt(b"not a zip" * 1000, recipient), recipient, trust, tmp_path / "o", pipe=pipe)
    assert (err.value.rule, err.value.message) == ("cms-content", cms.CORRUPT_CONTENT)


@SOURCES
def test_bit_flips_anywhere_are_caught(
    tmp_path: Path, sealed: bytes, recipient: Credential, trust: TrustStore, pipe: bool
) -> None:
    """The IV, every chunk header, the ZIP structure, the files, the signature, the trailer.

    (Before the IV the message is not protected and need not be: a flip there breaks the
    structure or the key unwrap, or changes what is not used, like the inner content type.)
    """
    package = ber_with_chunks(sealed, [4093, 16, 20_000])  # chunk headers everywhere
    assert _open(package, recipient, trust, tmp_path / "ok", pipe=pipe).files
    iv = package.index(bytes.fromhex("060960864801650304012a0410")) + 13
    positions = {*range(iv, iv + 16), *range(iv, iv + 900, 5)}
    positions |= set(range(iv, len(package), (len(package) - iv) // 97))
    positions |= set(range(len(package) - 120, len(package)))
    for chunk_header in (package.find(b"\x04\x82\x0f\xfd"), package.find(b"\x04\x10")):
        positions |= set(range(chunk_header, chunk_header + 4))
    for position in sorted(positions):
        damaged = bytearray(package)
        damaged[position] ^= 1 << (position % 8)
        out = tmp_path / f"out-{position}"
        with pytest.raises((PackageError, SignatureError)):
            _open(bytes(damaged), recipient, trust, out, pipe=pipe)
        assert not out.exists() or not any(out.rglob("*")), position


def test_seekable_packages_are_not_decrypted_to_disk(
    tmp_path: Path,
    sealed: bytes,
    recipient: Credential,
    trust: TrustStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_decrypt(*args: object, **kwargs: object) -> None:
        raise AssertionError("decrypted sequentially")

    monkeypatch.setattr("sbdh.package.decrypt", no_decrypt)
    assert len(_open(sealed, recipient, trust, tmp_path / "out").files) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


class _Spy:
    """Counts the calls to the sequential decryption and the temporary directories it used."""

    def __init__(self, work_dir: Path) -> None:
        self.calls = 0
        self.seen: list[str] = []
        self._work_dir = work_dir

    def __call__(self, *args: object, **kwargs: object) -> cms.EnvelopeInfo:
        self.calls += 1
        self.seen = [p.name for p in self._work_dir.iterdir()]
        return cms.decrypt(*args, **kwargs)  # type: ignore[arg-type]


def test_a_pipe_is_decrypted_to_a_temporary_file(
    tmp_path: Path,
    sealed: bytes,
    recipient: Credential,
    trust: TrustStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = _Spy(tmp_path)
    monkeypatch.setattr("sbdh.package.decrypt", spy)
    opened = _open(sealed, recipient, trust, tmp_path / "out", pipe=True)
    assert len(opened.files) == 3
    assert spy.calls == 1
    assert any(name.startswith("budstikke-open-") for name in spy.seen)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # and it is gone again


def test_a_package_in_too_many_chunks_is_decrypted_to_a_temporary_file(
    tmp_path: Path,
    sealed: bytes,
    recipient: Credential,
    trust: TrustStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = ber_with_chunks(sealed, [1000])
    spy = _Spy(tmp_path)
    monkeypatch.setattr("sbdh.package.decrypt", spy)
    with cms.EnvelopeReader(
        io.BytesIO(package), certificate=recipient.certificate, key=recipient.key
    ) as reader:
        chunks = reader.segments
    assert chunks > 100
    opened = _open(
        package, recipient, trust, tmp_path / "a", limits=OpenLimits(max_segments=chunks)
    )
    assert len(opened.files) == 3
    assert spy.calls == 0
    opened = _open(
        package, recipient, trust, tmp_path / "b", limits=OpenLimits(max_segments=chunks - 1)
    )
    assert len(opened.files) == 3
    assert spy.calls == 1


def test_tampered_file_in_a_re_encrypted_container(
    tmp_path: Path, container: bytes, recipient: Credential, trust: TrustStore
) -> None:
    entries = _entries(container)
    entries["bilde.png"] = b"not the signed picture"
    with pytest.raises(DigestMismatch) as err:
        _open(_encrypt(_zip(entries), recipient), recipient, trust, tmp_path / "out")
    assert err.value.rule == "asic-digest"
    assert not any((tmp_path / "out").rglob("*.*")), "extracted files must be removed"


def test_tampered_manifest(
    tmp_path: Path, container: bytes, recipient: Credential, trust: TrustStore
) -> None:
    entries = _entries(container)
    entries[MANIFEST_NAME] = entries[MANIFEST_NAME].replace(b"974760673", b"910075918")
    with pytest.raises(DigestMismatch):
        _open(_encrypt(_zip(entries), recipient), recipient, trust, tmp_path / "out")


def test_tampered_signature(
    tmp_path: Path, container: bytes, recipient: Credential, trust: TrustStore
) -> None:
    entries = _entries(container)
    entries[SIGNATURES_NAME] = entries[SIGNATURES_NAME].replace(
        b'URI="bilde.png"', b'URI="bilde2.png"'
    )
    with pytest.raises(SignatureError) as err:
        _open(_encrypt(_zip(entries), recipient), recipient, trust, tmp_path / "out")
    assert err.value.rule == "xades-signature-value"


def test_missing_file(
    tmp_path: Path, container: bytes, recipient: Credential, trust: TrustStore
) -> None:
    entries = _entries(container)
    del entries["bilde.png"]
    with pytest.raises(MissingFile, match=r"bilde\.png"):
        _open(_encrypt(_zip(entries), recipient), recipient, trust, tmp_path / "out")


def test_missing_signature(
    tmp_path: Path, container: bytes, recipient: Credential, trust: TrustStore
) -> None:
    entries = _entries(container)
    del entries[SIGNATURES_NAME]
    with pytest.raises(SignatureError) as err:
        _open(_encrypt(_zip(entries), recipient), recipient, trust, tmp_path / "out")
    assert err.value.rule == "asic-unsigned"


def test_extra_unsigned_file(
    tmp_path: Path, container: bytes, recipient: Credential, trust: TrustStore
) -> None:
    entries = _entries(container)
    entries["smuggled.exe"] = b"MZ"
    with pytest.raises(PackageError) as err:
        _open(_encrypt(_zip(entries), recipient), recipient, trust, tmp_path / "out")
    assert type(err.value) is PackageError
    assert err.value.rule == "asic-unsigned-file"


def test_signed_file_missing_from_the_manifest(
    tmp_path: Path, signer: Credential, recipient: Credential, trust: TrustStore
) -> None:
    manifest = Manifest(SENDER, RECEIVER, Document("a.pdf", "application/pdf", "A"))
    container = _signed_container({"a.pdf": b"a", "b.pdf": b"b"}, signer, manifest=manifest)
    with pytest.raises(PackageError) as err:
        _open(_encrypt(container, recipient), recipient, trust, tmp_path / "out")
    assert err.value.rule == "manifest-unlisted-file"


def test_manifest_lists_a_file_the_package_lacks(
    tmp_path: Path, signer: Credential, recipient: Credential, trust: TrustStore
) -> None:
    manifest = Manifest(
        SENDER,
        RECEIVER,
        Document("a.pdf", "application/pdf", "A"),
        (Document("ghost.pdf", "application/pdf", "B"),),
    )
    container = _signed_container({"a.pdf": b"a"}, signer, manifest=manifest)
    with pytest.raises(MissingFile) as err:
        _open(_encrypt(container, recipient), recipient, trust, tmp_path / "out")
    assert err.value.rule == "manifest-missing-file"


def test_untrusted_signer(
    tmp_path: Path,
    documents: dict[str, Path],
    recipient: Credential,
    trust: TrustStore,
) -> None:
    stranger_root = generate_root_ca("Stranger root", now=NOW, key_size=2048)
    stranger = issue_end_entity(stranger_root, "Stranger", now=NOW)
    data = _seal(_files(documents)[:1], stranger, recipient)
    with pytest.raises(UntrustedSigner) as err:
        _open(data, recipient, trust, tmp_path / "out")
    assert err.value.rule == "chain-incomplete"


def test_expired_signer(
    tmp_path: Path, sealed: bytes, recipient: Credential, trust: TrustStore
) -> None:
    with pytest.raises(UntrustedSigner) as err:
        _open(sealed, recipient, trust, tmp_path / "out", now=NOW + timedelta(days=400))
    assert err.value.rule == "cert-expired"


def _stdlib_container(entries: list[tuple[str, bytes]], *, deflate: str = "") -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buffer, "w") as z:
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED if name == deflate else zipfile.ZIP_STORED
                z.writestr(info, data)
    return buffer.getvalue()


MIMETYPE = ("mimetype", ASIC_E_MIME_TYPE.encode())


@pytest.mark.parametrize(
    ("entries", "deflate", "rule"),
    [
        ([MIMETYPE, ("../../etc/cron.d/evil", b"x")], "", "zip-name"),
        ([MIMETYPE, ("/etc/passwd", b"x")], "", "zip-name"),
        ([MIMETYPE, ("a.pdf", b"1"), ("a.pdf", b"2")], "", "zip-duplicate"),
        ([("a.pdf", b"1"), MIMETYPE], "", "asic-mimetype"),
        ([("mimetype", b"application/zip"), ("a.pdf", b"1")], "", "asic-mimetype"),
        ([MIMETYPE, ("a.pdf", b"1")], "mimetype", "asic-mimetype"),
        ([("a.pdf", b"1")], "", "asic-mimetype"),
    ],
)
def test_structurally_bad_containers(
    tmp_path: Path,
    recipient: Credential,
    trust: TrustStore,
    *,
    entries: list[tuple[str, bytes]],
    deflate: str,
    rule: str,
) -> None:
    data = _encrypt(_stdlib_container(entries, deflate=deflate), recipient)
    with pytest.raises(PackageError) as err:
        _open(data, recipient, trust, tmp_path / "out")
    assert err.value.rule == rule


def test_zip_bomb_over_the_cap(
    tmp_path: Path, signer: Credential, recipient: Credential, trust: TrustStore
) -> None:
    container = _signed_container(
        {"a.pdf": b"a", "zeros.bin": b"\0" * 20_000_000}, signer, deflate=("zeros.bin",)
    )
    assert len(container) < 100_000
    data = _encrypt(container, recipient)
    with pytest.raises(DecompressionError) as err:
        _open(data, recipient, trust, tmp_path / "out", limits=OpenLimits(max_unpacked_bytes=10**7))
    assert err.value.rule == "package-size-cap"


def test_zip_bomb_lying_about_its_size(
    tmp_path: Path, signer: Credential, recipient: Credential, trust: TrustStore
) -> None:
    zeros = b"\0" * 20_000_000
    container = bytearray(
        _signed_container({"a.pdf": b"a", "zeros.bin": zeros}, signer, deflate=("zeros.bin",))
    )
    # declare 1000 bytes in both headers of zeros.bin
    local = container.index(b"zeros.bin") - 30  # its name comes first in its local header
    central = container.rindex(b"zeros.bin") - 46  # and last in the central directory
    assert container[local : local + 4] == b"PK\x03\x04"
    assert container[central : central + 4] == b"PK\x01\x02"
    container[local + 22 : local + 26] = (1000).to_bytes(4, "little")
    container[central + 24 : central + 28] = (1000).to_bytes(4, "little")
    with pytest.raises(DecompressionError) as err:
        _open(_encrypt(bytes(container), recipient), recipient, trust, tmp_path / "out")
    assert err.value.rule == "zip-bomb"
    assert list((tmp_path / "out").iterdir()) == []


def test_existing_files_are_not_overwritten(
    tmp_path: Path, sealed: bytes, recipient: Credential, trust: TrustStore
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "bilde.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        _open(sealed, recipient, trust, out)
    assert (out / "bilde.png").read_bytes() == b"mine"
    assert sorted(p.name for p in out.iterdir()) == ["bilde.png"]


def test_read_container_without_encryption(
    tmp_path: Path, container: bytes, trust: TrustStore
) -> None:
    opened = read_container(io.BytesIO(container), trust=trust, out_dir=tmp_path, now=NOW)
    assert len(opened.files) == 3


# ============================================================================================
# interoperability with the OpenSSL command line

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl command line not installed")


@needs_openssl
def test_openssl_opens_our_package_and_we_open_openssl_encrypted_ones(
    tmp_path: Path, sealed: bytes, container: bytes, recipient: Credential, trust: TrustStore
) -> None:
    assert OPENSSL is not None
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(recipient.cert_pem())
    key.write_bytes(recipient.key_pem())
    (tmp_path / "package.cms").write_bytes(sealed)
    subprocess.run(
        [OPENSSL, "cms", "-decrypt", "-binary", "-inform", "DER",
         "-in", str(tmp_path / "package.cms"), "-recip", str(cert), "-inkey", str(key),
         "-out", str(tmp_path / "container.asice")],
        check=True, capture_output=True,
    )  # fmt: skip
    assert (tmp_path / "container.asice").read_bytes() == container
    subprocess.run(
        [OPENSSL, "cms", "-encrypt", "-binary", "-stream", "-outform", "DER", "-aes256",
         "-in", str(tmp_path / "container.asice"), "-out", str(tmp_path / "theirs.cms"),
         "-recip", str(cert), "-keyopt", "rsa_padding_mode:oaep",
         "-keyopt", "rsa_oaep_md:sha256", "-keyopt", "rsa_mgf1_md:sha256"],
        check=True, capture_output=True,
    )  # fmt: skip
    opened = _open((tmp_path / "theirs.cms").read_bytes(), recipient, trust, tmp_path / "out")
    assert len(opened.files) == 3


# ============================================================================================
# large packages: bounded memory, streaming speed

_LARGE = textwrap.dedent(
    """
    import io, json, os, resource, sys, time
    from datetime import UTC, datetime
    from pathlib import Path

    from sbdh.identifiers import ParticipantId
    from sbdh.package import PackageFile, open_package, seal_package
    from sbdh.pki import generate_dev_pki
    from sbdh.trust import TrustStore

    work, size = Path(sys.argv[1]), int(sys.argv[2])
    now = datetime.now(UTC)
    pki = generate_dev_pki(now=now, ca_key_size=2048)
    a, b = pki.organisations["991825827"], pki.organisations["974760673"]
    block = os.urandom(1 << 20)
    with open(work / "big.pdf", "wb") as fh:
        for _ in range(size >> 20):
            fh.write(block)
    t0 = time.perf_counter()
    with open(work / "package.cms", "wb") as out:
        seal_package(
            [PackageFile("big.pdf", work / "big.pdf", "application/pdf")],
            sender=ParticipantId("0192:991825827"), receiver=ParticipantId("0192:974760673"),
            main_document="big.pdf", signer=a, recipient_certificate=b.certificate, out=out,
            now=now,
        )
    t1 = time.perf_counter()
    with open(work / "package.cms", "rb") as src:
        opened = open_package(
            src, recipient=b, trust=TrustStore((pki.root.certificate,)), out_dir=work / "out",
            now=now, work_dir=work,
        )
    t2 = time.perf_counter()
    assert opened.files[0].size == size
    # VmHWM, not ru_maxrss: Linux carries the forking parent's high-water mark into
    # ru_maxrss across exec, so a big pytest parent would be counted as ours
    with open("/proc/self/status") as status:
        rss = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) * 1024
    print(json.dumps({"seal": t1 - t0, "open": t2 - t1, "peak_rss": rss}))
    """
)


@pytest.mark.slow
def test_large_package_streams_in_bounded_memory(tmp_path: Path) -> None:
    size = 200 << 20
    result = subprocess.run(
        [sys.executable, "-c", _LARGE, str(tmp_path), str(size)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures = json.loads(result.stdout)
    assert figures["peak_rss"] < 200 << 20, figures
    print(
        f"\n200 MB package: seal {size / figures['seal'] / 1e6:.0f} MB/s, "
        f"open {size / figures['open'] / 1e6:.0f} MB/s, "
        f"peak RSS {figures['peak_rss'] / 1e6:.0f} MB"
    )
