"""The strict ZIP: the sequential writer and the reader that trusts nothing."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
from datetime import UTC, datetime

import pytest

from sbdh import ziparchive
from sbdh.asic import ASIC_E_MIME_TYPE
from sbdh.errors import DecompressionError, DigestMismatch, PackageError
from sbdh.ziparchive import (
    NOT_A_ZIP_RULE,
    Compression,
    ZipReader,
    ZipWriter,
    check_entry_name,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class _Unseekable:
    """Has nothing but ``write``: no seek, no tell, like a pipe."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.buffer += data
        return len(data)


def _zip(entries: list[tuple[str, bytes, Compression, bool]]) -> bytes:
    """Write (name, data, compression, streamed) entries with our writer to a pipe."""
    out = _Unseekable()
    writer = ZipWriter(out, modified=NOW)
    for name, data, compression, streamed in entries:
        if streamed:
            with writer.open(name, compression=compression) as entry:
                for i in range(0, len(data), 1000):
                    entry.write(data[i : i + 1000])
        else:
            writer.add(name, data, compression=compression)
    writer.close()
    return bytes(out.buffer)


def _stdlib_zip(entries: list[tuple[str, bytes]], *, compress: str = "") -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names, on purpose
        with zipfile.ZipFile(buffer, "w") as z:
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
                info.compress_type = (
                    zipfile.ZIP_DEFLATED if name == compress else zipfile.ZIP_STORED
                )
                z.writestr(info, data)
    return buffer.getvalue()


# ============================================================================================
# ZIP writer


def test_writer_output_is_a_zip_that_stdlib_reads() -> None:
    big = bytes(range(256)) * 400
    data = _zip(
        [
            ("mimetype", ASIC_E_MIME_TYPE.encode(), Compression.STORED, False),
            ("a.pdf", big, Compression.STORED, True),
            ("dir/ø.txt", "blåbær ".encode() * 500, Compression.DEFLATED, True),
            ("small.xml", b"<x/>", Compression.DEFLATED, False),
        ]
    )
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        assert z.namelist() == ["mimetype", "a.pdf", "dir/ø.txt", "small.xml"]
        assert z.read("a.pdf") == big
        assert z.read("dir/ø.txt") == "blåbær ".encode() * 500
        infos = {i.filename: i for i in z.infolist()}
        assert infos["dir/ø.txt"].flag_bits & 0x0800  # UTF-8 name
        assert infos["a.pdf"].flag_bits & 0x0008  # streamed: data descriptor
        assert not infos["small.xml"].flag_bits & 0x0008


def test_mimetype_entry_follows_the_asic_profile() -> None:
    data = _zip([("mimetype", ASIC_E_MIME_TYPE.encode(), Compression.STORED, False)])
    signature, _, flags, method, _, _, _, csize, size, _, extra_len = struct.unpack(
        "<IHHHHHIIIHH", data[:30]
    )
    assert (signature, flags, method, extra_len) == (0x04034B50, 0, 0, 0)
    assert csize == size == len(ASIC_E_MIME_TYPE)
    # the "magic number" readers look for at offsets 30 and 38
    assert data[30:38] == b"mimetype"
    assert data[38 : 38 + size] == ASIC_E_MIME_TYPE.encode()


def test_writer_refuses_duplicates_and_bad_names() -> None:
    writer = ZipWriter(_Unseekable(), modified=NOW)
    writer.add("A.pdf", b"x")
    with pytest.raises(PackageError) as err:
        writer.add("a.PDF", b"y")
    assert err.value.rule == "zip-duplicate"
    with pytest.raises(PackageError) as err:
        writer.open("../escape")
    assert err.value.rule == "zip-name"


def test_writer_refuses_what_needs_zip64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ziparchive, "_ZIP32_LIMIT", 1000)
    writer = ZipWriter(_Unseekable(), modified=NOW)
    with pytest.raises(PackageError, match="ZIP64") as err, writer.open("big.bin") as entry:
        entry.write(b"x" * 1001)
    assert err.value.rule == "zip64-unsupported"


@pytest.mark.parametrize(
    "name",
    ["", "/etc/passwd", "../up", "a/../../b", "a//b", "./a", "a/", "C:evil", "a\\b", "a\x00b"],
)
def test_unsafe_names(name: str) -> None:
    with pytest.raises(PackageError) as err:
        check_entry_name(name)
    assert err.value.rule == "zip-name"


@pytest.mark.parametrize("name", ["a.pdf", "vedlegg/b c.pdf", "æøå/ÆØÅ.txt", "a..b"])
def test_safe_names(name: str) -> None:
    assert check_entry_name(name) == name


# ============================================================================================
# ZIP reader


def test_reader_reads_writer_output_and_stdlib_output() -> None:
    ours = _zip(
        [
            ("mimetype", ASIC_E_MIME_TYPE.encode(), Compression.STORED, False),
            ("a.bin", b"a" * 5000, Compression.DEFLATED, True),
            ("b.bin", b"b" * 5000, Compression.STORED, True),
        ]
    )
    theirs = _stdlib_zip([("mimetype", b"x"), ("a.bin", b"a" * 5000)], compress="a.bin")
    for data in (ours, theirs):
        reader = ZipReader(io.BytesIO(data))
        entry = next(e for e in reader.entries if e.name == "a.bin")
        assert reader.read(entry, max_size=10_000) == b"a" * 5000


@pytest.mark.parametrize(
    ("entries", "rule"),
    [
        ([("../evil.txt", b"x")], "zip-name"),
        ([("/abs.txt", b"x")], "zip-name"),
        ([("a\\..\\b", b"x")], "zip-name"),
        ([("same.txt", b"1"), ("same.txt", b"2")], "zip-duplicate"),
        ([("Same.txt", b"1"), ("same.TXT", b"2")], "zip-duplicate"),
    ],
)
def test_reader_refuses_unsafe_archives(entries: list[tuple[str, bytes]], rule: str) -> None:
    with pytest.raises(PackageError) as err:
        ZipReader(io.BytesIO(_stdlib_zip(entries)))
    assert err.value.rule == rule


@pytest.mark.parametrize(
    "data", [b"", b"PK", b"not a zip at all" * 10, _stdlib_zip([("a", b"b")]) + b"trailing"]
)
def test_not_a_zip(data: bytes) -> None:
    with pytest.raises(PackageError) as err:
        ZipReader(io.BytesIO(data))
    assert err.value.rule == NOT_A_ZIP_RULE


def test_local_header_must_agree_with_central_directory() -> None:
    data = bytearray(_stdlib_zip([("good.txt", b"x")]))
    data[30:38] = b"evil.txt"  # the local header's name only
    with pytest.raises(PackageError) as err:
        ZipReader(io.BytesIO(bytes(data)))
    assert err.value.rule == "zip-inconsistent"


@pytest.mark.parametrize(("offset", "field"), [(4, "version"), (6, "flags"), (10, "time")])
def test_every_shared_header_field_must_agree(offset: int, field: str) -> None:
    """What nothing else checks must still match: a flip there would otherwise go unnoticed."""
    data = bytearray(_stdlib_zip([("a.txt", b"x")]))
    data[offset] ^= 0x02  # the local header only
    with pytest.raises(PackageError, match="disagrees") as err:
        ZipReader(io.BytesIO(bytes(data)))
    assert err.value.rule == "zip-inconsistent", field


def test_overlapping_entries_are_refused() -> None:
    data = bytearray(_stdlib_zip([("a.txt", b"x" * 100), ("b.txt", b"y" * 100)]))
    cd = data.rindex(b"PK\x01\x02")  # the second central directory record
    struct.pack_into("<I", data, cd + 42, 0)  # point b.txt at a.txt's local header
    with pytest.raises(PackageError):
        ZipReader(io.BytesIO(bytes(data)))


def test_encrypted_entries_are_refused() -> None:
    data = bytearray(_stdlib_zip([("a.txt", b"x")]))
    cd = data.rindex(b"PK\x01\x02")
    data[cd + 8] |= 0x01
    data[6] |= 0x01
    with pytest.raises(PackageError) as err:
        ZipReader(io.BytesIO(bytes(data)))
    assert err.value.rule == "zip-encrypted"


def test_crc_mismatch_is_a_digest_mismatch() -> None:
    data = bytearray(_stdlib_zip([("a.txt", b"hello world")]))
    data[data.index(b"hello")] = ord("j")
    reader = ZipReader(io.BytesIO(bytes(data)))
    with pytest.raises(DigestMismatch) as err:
        reader.read(reader.entries[0], max_size=100)
    assert err.value.rule == "zip-crc"


def _lie_about_size(data: bytes, name: bytes, size: int) -> bytes:
    """Patch the uncompressed size of the only entry, in its local and central headers."""
    patched = bytearray(data)
    central = patched.rindex(b"PK\x01\x02")
    assert patched.startswith(b"PK\x03\x04")
    assert name in patched[central : central + 100]
    struct.pack_into("<I", patched, 22, size)
    struct.pack_into("<I", patched, central + 24, size)
    return bytes(patched)


def test_deflate_bomb_past_its_declared_size() -> None:
    bomb = _stdlib_zip([("zeros.bin", b"\x00" * 5_000_000)], compress="zeros.bin")
    assert len(bomb) < 20_000
    reader = ZipReader(io.BytesIO(_lie_about_size(bomb, b"zeros.bin", 1000)))
    with pytest.raises(DecompressionError) as err:
        reader.read(reader.entries[0], max_size=10_000_000)
    assert err.value.rule == "zip-bomb"


def test_inflation_cap() -> None:
    data = _stdlib_zip([("zeros.bin", b"\x00" * 5_000_000)], compress="zeros.bin")
    reader = ZipReader(io.BytesIO(data))
    with pytest.raises(DecompressionError):
        reader.read(reader.entries[0], max_size=1_000_000)


def test_corrupt_deflate_stream() -> None:
    data = bytearray(_stdlib_zip([("t.txt", b"some text " * 200)], compress="t.txt"))
    data[40:48] = b"\xff" * 8
    reader = ZipReader(io.BytesIO(bytes(data)))
    with pytest.raises((DecompressionError, DigestMismatch)):
        reader.read(reader.entries[0], max_size=10_000)


def test_too_many_entries() -> None:
    data = _stdlib_zip([(f"f{i}", b"") for i in range(20)])
    with pytest.raises(PackageError) as err:
        ZipReader(io.BytesIO(data), max_entries=10)
    assert err.value.rule == "zip-entries"


def test_oversized_central_directory_is_refused_before_it_is_read() -> None:
    data = _stdlib_zip([(f"{'n' * 200}{i}", b"") for i in range(20)])
    with pytest.raises(PackageError, match="central directory") as err:
        ZipReader(io.BytesIO(data), max_central_directory=1024)
    assert err.value.rule == "zip-entries"
    assert len(ZipReader(io.BytesIO(data)).entries) == 20
