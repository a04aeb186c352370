"""ASiC-E container rules: the ``mimetype`` entry and what the signature must cover."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime

import pytest

from sbdh.asic import (
    ASIC_E_MIME_TYPE,
    MIMETYPE_NAME,
    SIGNATURES_NAME,
    check_coverage,
    check_mimetype,
    write_mimetype,
)
from sbdh.errors import MissingFile, PackageError
from sbdh.xades import DigestMethod, SignedReference
from sbdh.ziparchive import Compression, ZipReader, ZipWriter

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _container(entries: list[tuple[str, bytes, Compression]], *, mimetype: bool = True) -> bytes:
    out = io.BytesIO()
    writer = ZipWriter(out, modified=NOW)
    if mimetype:
        write_mimetype(writer)
    for name, data, compression in entries:
        writer.add(name, data, compression=compression)
    writer.close()
    return out.getvalue()


def _reference(name: str) -> SignedReference:
    return SignedReference(name, DigestMethod.SHA256, hashlib.sha256(b"").digest(), None)


def test_written_mimetype_passes_the_check() -> None:
    data = _container([("a.pdf", b"a", Compression.STORED)])
    assert data[30:38] == b"mimetype"
    assert data[38 : 38 + len(ASIC_E_MIME_TYPE)] == ASIC_E_MIME_TYPE.encode()
    check_mimetype(ZipReader(io.BytesIO(data)))


def test_mimetype_must_come_first() -> None:
    writer = ZipWriter(io.BytesIO(), modified=NOW)
    writer.add("a.pdf", b"a")
    with pytest.raises(ValueError, match="first"):
        write_mimetype(writer)


@pytest.mark.parametrize(
    "entries",
    [
        [("a.pdf", b"a", Compression.STORED), (MIMETYPE_NAME, b"x", Compression.STORED)],
        [(MIMETYPE_NAME, b"application/zip", Compression.STORED)],
        [(MIMETYPE_NAME, ASIC_E_MIME_TYPE.encode(), Compression.DEFLATED)],
        [],
    ],
    ids=["not-first", "wrong-type", "deflated", "absent"],
)
def test_bad_mimetype(entries: list[tuple[str, bytes, Compression]]) -> None:
    reader = ZipReader(io.BytesIO(_container(entries, mimetype=False)))
    with pytest.raises(PackageError) as err:
        check_mimetype(reader)
    assert err.value.rule == "asic-mimetype"


def test_coverage() -> None:
    names = [MIMETYPE_NAME, "a.pdf", "manifest.xml", SIGNATURES_NAME]
    signed = [_reference("a.pdf"), _reference("manifest.xml")]
    assert check_coverage(names, signed) == {"a.pdf", "manifest.xml"}
    with pytest.raises(PackageError) as err:
        check_coverage([*names, "smuggled.exe"], signed)
    assert err.value.rule == "asic-unsigned-file"
    with pytest.raises(MissingFile) as missing:
        check_coverage(names, [*signed, _reference("ghost.pdf")])
    assert missing.value.rule == "asic-missing-file"
