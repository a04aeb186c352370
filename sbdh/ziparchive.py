"""A small, strict ZIP: a writer that never seeks and a reader that trusts nothing.

:class:`ZipWriter` writes strictly sequentially (into a CMS encryptor, a pipe, a socket) and
still suits profiles such as ASiC that want some entries without a data descriptor: entries
whose bytes are known up front (:meth:`ZipWriter.add`) get sizes and CRC in the local header
and no data descriptor; entries streamed in (:meth:`ZipWriter.open`) get a data descriptor.
(:mod:`zipfile` on an unseekable stream puts a data descriptor on every entry.) ZIP64 is not
written and not read: an entry or archive past 4 GiB is refused with rule ``zip64-unsupported``.

:class:`ZipReader` reads from anything with ``seek``, ``tell`` and ``read`` (a file, or the
decrypting view of :class:`sbdh.cms.EnvelopeReader`) and trusts nothing: the end record must sit
exactly at the end, entries may not overlap, local headers must agree with the central
directory, names may not escape the output directory or collide (also case-insensitively), and
inflation is capped.
"""

from __future__ import annotations

import enum
import struct
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Protocol

from sbdh.errors import DecompressionError, DigestMismatch, PackageError

__all__ = [
    "NOT_A_ZIP_RULE",
    "Compression",
    "EntryWriter",
    "RandomAccessSource",
    "ZipEntry",
    "ZipReader",
    "ZipWriter",
    "check_entry_name",
    "entry_key",
]

#: rule of the error raised when the bytes are not a ZIP at all (no valid end record)
NOT_A_ZIP_RULE: Final = "zip-end-record"

CHUNK_SIZE: Final = 1 << 20
_ZIP32_LIMIT: Final = 0xFFFFFFFF
_MAX_NAME_BYTES: Final = 1024

# ============================================================================================
# entry names


def entry_key(name: str) -> str:
    """Names that would land on the same file on a case-insensitive file system."""
    return unicodedata.normalize("NFC", name).casefold()


def check_entry_name(name: str) -> str:
    """Return ``name`` if it is a safe relative path inside the container, else raise.

    Refused (rule ``zip-name``): empty names, absolute paths, drive letters, backslashes,
    ``.``/``..``/empty segments, control characters, and names over 1024 bytes.
    """

    def refuse(why: str) -> PackageError:
        return PackageError(f"entry name {name!r} {why}", rule="zip-name")

    if not name:
        raise refuse("is empty")
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        raise refuse(f"is longer than {_MAX_NAME_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise refuse("contains control characters")
    if "\\" in name or ":" in name:
        raise refuse("contains a backslash or colon")
    if name.startswith("/"):
        raise refuse("is absolute")
    if any(segment in ("", ".", "..") for segment in name.split("/")):
        raise refuse("has an empty, '.' or '..' path segment")
    return name


# ============================================================================================
# ZIP writing

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_END = struct.Struct("<IHHHHIIH")
_DESCRIPTOR = struct.Struct("<IIII")
_LOCAL_SIG: Final = 0x04034B50
_CENTRAL_SIG: Final = 0x02014B50
_END_SIG: Final = 0x06054B50
_DESCRIPTOR_SIG: Final = 0x08074B50
_ZIP64_LOCATOR_SIG: Final = 0x07064B50
_FLAG_ENCRYPTED: Final = 0x0001
_FLAG_DESCRIPTOR: Final = 0x0008
_FLAG_STRONG_ENCRYPTION: Final = 0x0040
_FLAG_UTF8: Final = 0x0800
_FLAG_MASKED_HEADER: Final = 0x2000
_VERSION_NEEDED: Final = 20  # 2.0: deflate, data descriptors
_VERSION_MADE_BY: Final = (3 << 8) | 20  # Unix, 2.0
_UNIX_FILE_MODE: Final = 0o100644 << 16


class Compression(enum.IntEnum):
    """ZIP compression methods (APPNOTE 4.4.5) that containers may use."""

    STORED = 0
    DEFLATED = 8


class _Sink(Protocol):
    def write(self, data: bytes | bytearray | memoryview, /) -> object: ...


def _dos_datetime(moment: datetime) -> tuple[int, int]:
    moment = moment.astimezone(UTC)
    year = min(max(moment.year, 1980), 2107)
    time = (moment.hour << 11) | (moment.minute << 5) | (moment.second // 2)
    date = ((year - 1980) << 9) | (moment.month << 5) | moment.day
    return time, date


@dataclass(frozen=True)
class _Record:
    name: bytes
    flags: int
    method: Compression
    crc: int
    compressed_size: int
    size: int
    offset: int


def _zip64_refused(what: str) -> PackageError:
    return PackageError(
        f"{what} exceeds 4 GiB; ZIP64 is not supported by document packages",
        rule="zip64-unsupported",
    )


class ZipWriter:
    """Write a ZIP strictly sequentially into ``out`` (no seeking, no reading back)."""

    def __init__(self, out: _Sink, *, modified: datetime) -> None:
        self._out = out
        self._time, self._date = _dos_datetime(modified)
        self._offset = 0
        self._records: list[_Record] = []
        self._keys: set[str] = set()
        self._open_entry = False
        self._closed = False

    @property
    def offset(self) -> int:
        """Bytes written so far."""
        return self._offset

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._out.write(data)
        self._offset += len(data)

    def _start(self, name: str) -> bytes:
        if self._closed or self._open_entry:
            raise ValueError("ZIP writer is closed or an entry is still open")
        key = entry_key(name)
        if key in self._keys:
            raise PackageError(f"entry name {name!r} is used twice", rule="zip-duplicate")
        self._keys.add(key)
        if self._offset >= _ZIP32_LIMIT:
            raise _zip64_refused("the container")
        return name.encode("utf-8")

    @staticmethod
    def _flags(encoded: bytes, descriptor: bool) -> int:
        flags = _FLAG_DESCRIPTOR if descriptor else 0
        if not encoded.isascii():
            flags |= _FLAG_UTF8
        return flags

    def add(self, name: str, data: bytes, *, compression: Compression = Compression.STORED) -> None:
        """Add an entry whose bytes are all known: sizes and CRC go in the local header."""
        check_entry_name(name)
        encoded = self._start(name)
        payload = data
        if compression is Compression.DEFLATED:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            payload = compressor.compress(data) + compressor.flush()
        if len(data) >= _ZIP32_LIMIT or len(payload) >= _ZIP32_LIMIT:
            raise _zip64_refused(f"entry {name!r}")
        record = _Record(
            encoded,
            self._flags(encoded, descriptor=False),
            compression,
            zlib.crc32(data),
            len(payload),
            len(data),
            self._offset,
        )
        self._local_header(record)
        self._write(payload)
        self._records.append(record)

    def _local_header(self, record: _Record) -> None:
        self._write(
            _LOCAL.pack(
                _LOCAL_SIG,
                _VERSION_NEEDED,
                record.flags,
                record.method,
                self._time,
                self._date,
                record.crc,
                record.compressed_size,
                record.size,
                len(record.name),
                0,
            )
            + record.name
        )

    def open(self, name: str, *, compression: Compression = Compression.STORED) -> EntryWriter:
        """Start an entry streamed in by :meth:`EntryWriter.write`; sizes follow the data."""
        check_entry_name(name)
        encoded = self._start(name)
        flags = self._flags(encoded, descriptor=True)
        self._local_header(_Record(encoded, flags, compression, 0, 0, 0, self._offset))
        self._open_entry = True
        return EntryWriter(self, encoded, flags, compression, self._offset - 30 - len(encoded))

    def _finish_entry(self, record: _Record) -> None:
        self._write(
            _DESCRIPTOR.pack(_DESCRIPTOR_SIG, record.crc, record.compressed_size, record.size)
        )
        self._records.append(record)
        self._open_entry = False

    def close(self) -> None:
        """Write the central directory and the end record. Does not close ``out``."""
        if self._closed:
            return
        if self._open_entry:
            raise ValueError("an entry is still open")
        start = self._offset
        for r in self._records:
            self._write(
                _CENTRAL.pack(
                    _CENTRAL_SIG,
                    _VERSION_MADE_BY,
                    _VERSION_NEEDED,
                    r.flags,
                    r.method,
                    self._time,
                    self._date,
                    r.crc,
                    r.compressed_size,
                    r.size,
                    len(r.name),
                    0,
                    0,
                    0,
                    0,
                    _UNIX_FILE_MODE,
                    r.offset,
                )
                + r.name
            )
        size = self._offset - start
        if self._offset >= _ZIP32_LIMIT or len(self._records) > 0xFFFE:
            raise _zip64_refused("the container")
        count = len(self._records)
        self._write(_END.pack(_END_SIG, 0, 0, count, count, size, start, 0))
        self._closed = True


class EntryWriter:
    """One streamed entry; close it (or leave its ``with`` block) to write its descriptor."""

    def __init__(
        self, zip_writer: ZipWriter, name: bytes, flags: int, method: Compression, offset: int
    ) -> None:
        self._zip = zip_writer
        self._name = name
        self._flags = flags
        self._method = method
        self._offset = offset
        self._crc = 0
        self._size = 0
        self._compressed = 0
        self._compressor = (
            zlib.compressobj(6, zlib.DEFLATED, -15) if method is Compression.DEFLATED else None
        )
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        self._crc = zlib.crc32(data, self._crc)
        self._size += n
        if self._size >= _ZIP32_LIMIT:
            raise _zip64_refused(f"entry {self._name.decode()!r}")
        if self._compressor is None:
            self._zip._write(data)
            self._compressed += n
        else:
            out = self._compressor.compress(data)
            if out:
                self._zip._write(out)
                self._compressed += len(out)
        return n

    def close(self) -> None:
        if self._closed:
            return
        if self._compressor is not None:
            tail = self._compressor.flush()
            self._zip._write(tail)
            self._compressed += len(tail)
        self._closed = True
        self._zip._finish_entry(
            _Record(
                self._name,
                self._flags,
                self._method,
                self._crc,
                self._compressed,
                self._size,
                self._offset,
            )
        )

    def __enter__(self) -> EntryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()


# ============================================================================================
# ZIP reading


@dataclass(frozen=True)
class ZipEntry:
    """One entry as the central directory describes it (checked against its local header)."""

    name: str
    compression: Compression
    crc32: int
    compressed_size: int
    size: int
    header_offset: int
    data_offset: int
    #: where the entry ends, its data descriptor included
    end_offset: int
    #: length of the extra field in the local header
    extra_length: int

    @property
    def is_directory(self) -> bool:
        return self.name.endswith("/")


def _bad_zip(message: str, rule: str = "zip-structure") -> PackageError:
    return PackageError(message, rule=rule)


class RandomAccessSource(Protocol):
    """What :class:`ZipReader` reads from: a binary file, or anything that reads like one."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def tell(self) -> int: ...

    def read(self, size: int = -1, /) -> bytes: ...


class ZipReader:
    """A strict reader over a seekable file holding a whole ZIP."""

    def __init__(
        self,
        file: RandomAccessSource,
        *,
        max_entries: int = 10_000,
        max_central_directory: int = 4 << 20,
    ) -> None:
        self._file = file
        file.seek(0, 2)
        self._size = file.tell()
        cd_offset, cd_size, count = self._end_record()
        if count > max_entries:
            raise _bad_zip(f"{count} entries; at most {max_entries} are accepted", "zip-entries")
        if cd_size > max_central_directory:
            # read whole into memory below: anyone can encrypt a package to us, so cap it
            raise _bad_zip(
                f"central directory is {cd_size} bytes; at most {max_central_directory} "
                "are accepted",
                "zip-entries",
            )
        entries = self._central_directory(cd_offset, cd_size, count)
        self.entries: tuple[ZipEntry, ...] = tuple(entries)
        self._check_layout(cd_offset)

    # -- structure ---------------------------------------------------------------------------

    def _read_at(self, offset: int, n: int) -> bytes:
        self._file.seek(offset)
        data = self._file.read(n)
        if len(data) != n:
            raise _bad_zip("truncated")
        return data

    def _end_record(self) -> tuple[int, int, int]:
        tail_size = min(self._size, _END.size + 0xFFFF)
        tail = self._read_at(self._size - tail_size, tail_size)
        position = tail.rfind(struct.pack("<I", _END_SIG))
        while position >= 0:
            if position + _END.size <= len(tail):
                fields = _END.unpack_from(tail, position)
                comment_length = fields[7]
                if position + _END.size + comment_length == len(tail):
                    break
            position = tail.rfind(struct.pack("<I", _END_SIG), 0, position)
        if position < 0:
            raise _bad_zip("no ZIP end-of-central-directory record at the end", NOT_A_ZIP_RULE)
        _, disk, cd_disk, on_disk, count, cd_size, cd_offset, _ = fields
        end_offset = self._size - tail_size + position
        if disk or cd_disk or on_disk != count:
            raise _bad_zip("multi-disk ZIP", NOT_A_ZIP_RULE)
        if 0xFFFF in (count, on_disk) or _ZIP32_LIMIT in (cd_size, cd_offset):
            raise _zip64_refused("the container")
        if position >= 20 and struct.unpack_from("<I", tail, position - 20)[0] == (
            _ZIP64_LOCATOR_SIG
        ):
            raise _zip64_refused("the container")
        if cd_offset + cd_size != end_offset:
            raise _bad_zip("central directory does not end at the end record", NOT_A_ZIP_RULE)
        return cd_offset, cd_size, count

    def _central_directory(self, cd_offset: int, cd_size: int, count: int) -> list[ZipEntry]:
        data = self._read_at(cd_offset, cd_size)
        position = 0
        entries: list[ZipEntry] = []
        keys: set[str] = set()
        for _ in range(count):
            if position + _CENTRAL.size > len(data):
                raise _bad_zip("central directory is truncated")
            (
                signature,
                _made_by,
                needed,
                flags,
                method,
                time,
                date,
                crc,
                compressed_size,
                size,
                name_length,
                extra_length,
                comment_length,
                _disk,
                _internal,
                _external,
                offset,
            ) = _CENTRAL.unpack_from(data, position)
            if signature != _CENTRAL_SIG:
                raise _bad_zip("bad central directory header")
            position += _CENTRAL.size
            raw_name = data[position : position + name_length]
            position += name_length + extra_length + comment_length
            if position > len(data):
                raise _bad_zip("central directory is truncated")
            name = self._decode_name(raw_name, flags)
            if flags & (_FLAG_ENCRYPTED | _FLAG_STRONG_ENCRYPTION | _FLAG_MASKED_HEADER):
                raise _bad_zip(f"entry {name!r} is encrypted", "zip-encrypted")
            if _ZIP32_LIMIT in (compressed_size, size, offset):
                raise _zip64_refused(f"entry {name!r}")
            try:
                compression = Compression(method)
            except ValueError:
                raise _bad_zip(
                    f"entry {name!r} uses compression method {method}; only STORED and "
                    "DEFLATED are accepted",
                    "zip-compression",
                ) from None
            if compression is Compression.STORED and compressed_size != size:
                raise _bad_zip(f"stored entry {name!r} has two different sizes")
            check_entry_name(name[:-1] if name.endswith("/") and size == 0 else name)
            key = entry_key(name)
            if key in keys:
                raise _bad_zip(f"entry name {name!r} occurs twice", "zip-duplicate")
            keys.add(key)
            data_offset, end_offset, extra_length = self._check_local_header(
                offset,
                raw_name=raw_name,
                common=(needed, flags, time, date),
                flags=flags,
                compression=compression,
                crc=crc,
                compressed_size=compressed_size,
                size=size,
            )
            entries.append(
                ZipEntry(
                    name,
                    compression,
                    crc,
                    compressed_size,
                    size,
                    offset,
                    data_offset,
                    end_offset,
                    extra_length,
                )
            )
        if position != len(data):
            raise _bad_zip("central directory has trailing bytes")
        entries.sort(key=lambda e: e.header_offset)
        return entries

    @staticmethod
    def _decode_name(raw: bytes, flags: int) -> str:
        try:
            return raw.decode("utf-8") if flags & _FLAG_UTF8 else raw.decode("cp437")
        except UnicodeDecodeError:
            raise _bad_zip(f"entry name {raw!r} is not valid UTF-8", "zip-name") from None

    def _check_local_header(
        self,
        offset: int,
        *,
        raw_name: bytes,
        common: tuple[int, int, int, int],
        flags: int,
        compression: Compression,
        crc: int,
        compressed_size: int,
        size: int,
    ) -> tuple[int, int, int]:
        if offset + _LOCAL.size > self._size:
            raise _bad_zip("local header outside the file")
        header = _LOCAL.unpack(self._read_at(offset, _LOCAL.size))
        signature, needed, local_flags, method, time, date, l_crc, l_csize, l_size, n_len, e_len = (
            header
        )
        if signature != _LOCAL_SIG:
            raise _bad_zip("bad local header")
        if self._read_at(offset + _LOCAL.size, n_len) != raw_name:
            raise _bad_zip(
                f"local header name differs from central directory name {raw_name!r}",
                "zip-inconsistent",
            )
        # every field the two headers share must agree: what nothing else checks (the version,
        # flags, time) would otherwise be free to change, in the clear or under CBC
        if method != compression or (needed, local_flags, time, date) != common:
            raise _bad_zip(f"local header of {raw_name!r} disagrees", "zip-inconsistent")
        if not flags & _FLAG_DESCRIPTOR and (l_crc, l_csize, l_size) != (
            crc,
            compressed_size,
            size,
        ):
            raise _bad_zip(f"local header sizes of {raw_name!r} disagree", "zip-inconsistent")
        data_offset = offset + _LOCAL.size + n_len + e_len
        end_offset = data_offset + compressed_size
        if flags & _FLAG_DESCRIPTOR:
            end_offset += self._check_descriptor(end_offset, raw_name, crc, compressed_size, size)
        return data_offset, end_offset, e_len

    def _check_descriptor(
        self, position: int, raw_name: bytes, crc: int, compressed_size: int, size: int
    ) -> int:
        raw = self._read_at(position, min(16, max(0, self._size - position)))
        length = 12
        if len(raw) >= 4 and struct.unpack_from("<I", raw)[0] == _DESCRIPTOR_SIG:
            raw, length = raw[4:], 16
        if len(raw) < 12 or struct.unpack_from("<III", raw) != (crc, compressed_size, size):
            raise _bad_zip(f"data descriptor of {raw_name!r} disagrees", "zip-inconsistent")
        return length

    def _check_layout(self, cd_offset: int) -> None:
        previous_end = 0
        for entry in self.entries:
            if entry.header_offset < previous_end:
                raise _bad_zip(f"entry {entry.name!r} overlaps the one before it", "zip-overlap")
            if entry.end_offset > cd_offset:
                raise _bad_zip(
                    f"entry {entry.name!r} runs into the central directory", "zip-overlap"
                )
            previous_end = entry.end_offset

    # -- content -----------------------------------------------------------------------------

    def chunks(self, entry: ZipEntry, *, max_size: int | None = None) -> Iterator[bytes]:
        """The bytes of ``entry``, inflated; CRC and size are checked after the last chunk.

        Raises :class:`DecompressionError` when inflation goes past the declared size or
        ``max_size``, or the deflate stream is corrupt; :class:`DigestMismatch` (rule
        ``zip-crc``) when the CRC-32 does not match.
        """
        cap = entry.size if max_size is None else min(entry.size, max_size)
        if entry.size > cap:
            raise DecompressionError(
                f"entry {entry.name!r} declares {entry.size} bytes; the cap is {cap}",
                rule="zip-size-cap",
            )
        crc = 0
        produced = 0
        inflater = zlib.decompressobj(-15) if entry.compression is Compression.DEFLATED else None
        remaining = entry.compressed_size
        while remaining:
            # seek every time: the caller may use the file between two chunks
            self._file.seek(entry.data_offset + entry.compressed_size - remaining)
            raw = self._file.read(min(CHUNK_SIZE, remaining))
            if not raw:
                raise _bad_zip(f"entry {entry.name!r} is truncated")
            remaining -= len(raw)
            if inflater is None:
                crc = zlib.crc32(raw, crc)
                produced += len(raw)
                yield raw
                continue
            pending: bytes = raw
            while pending:
                try:
                    out = inflater.decompress(pending, CHUNK_SIZE)
                except zlib.error as exc:
                    raise DecompressionError(
                        f"entry {entry.name!r}: corrupt deflate data ({exc})", rule="zip-inflate"
                    ) from exc
                pending = inflater.unconsumed_tail
                produced += len(out)
                if produced > cap:
                    raise DecompressionError(
                        f"entry {entry.name!r} inflates past {cap} bytes (declared "
                        f"{entry.size}): refused as a decompression bomb",
                        rule="zip-bomb",
                    )
                crc = zlib.crc32(out, crc)
                if out:
                    yield out
                if inflater.eof:
                    break
        if inflater is not None and (not inflater.eof or inflater.unused_data or remaining):
            raise DecompressionError(
                f"entry {entry.name!r}: deflate stream is truncated or has trailing data",
                rule="zip-inflate",
            )
        if produced != entry.size:
            raise DecompressionError(
                f"entry {entry.name!r} holds {produced} bytes, declares {entry.size}",
                rule="zip-size",
            )
        if crc != entry.crc32:
            raise DigestMismatch(f"entry {entry.name!r} fails its CRC-32 check", rule="zip-crc")

    def read(self, entry: ZipEntry, *, max_size: int) -> bytes:
        """The whole content of a small entry."""
        return b"".join(self.chunks(entry, max_size=max_size))
