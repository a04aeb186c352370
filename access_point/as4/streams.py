"""Bytes that may be too large for memory: sources to read from, spools to write to.

A received HTTP body is either ``bytes`` or a seekable binary file (the edge spools large
uploads to disk); :func:`as_source` gives both the same random-access face, and a
:class:`Window` is a slice of it read in chunks, never copied whole. A :class:`Spool` collects
bytes written once (in memory up to a threshold, then in an anonymous temp file) and reads them
back in chunks; :class:`Payload` is the read-only face of one handed to callers.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO, Protocol

__all__ = ["ByteSource", "Payload", "Spool", "Window", "as_source", "iter_chunks"]


class ByteSource(Protocol):
    """Random access to an immutable run of bytes."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, length: int) -> bytes: ...

    def find_all(self, needle: bytes, start: int = 0) -> Iterator[int]:
        """Every offset at which ``needle`` starts, in increasing order."""
        ...


class _BytesSource:
    __slots__ = ("_data", "_view")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = bytes(data) if not isinstance(data, bytes) else data
        self._view = memoryview(self._data)

    @property
    def size(self) -> int:
        return len(self._data)

    def read_at(self, offset: int, length: int) -> bytes:
        return self._view[offset : offset + length].tobytes()

    def find_all(self, needle: bytes, start: int = 0) -> Iterator[int]:
        find = self._data.find
        at = find(needle, start)
        while at >= 0:
            yield at
            at = find(needle, at + 1)


class _FileSource:
    """A seekable binary file read with positioned reads; the file's position is not relied on."""

    __slots__ = ("_chunk", "_file", "_size")

    def __init__(self, file: IO[bytes], chunk_size: int) -> None:
        self._file = file
        self._chunk = chunk_size
        file.seek(0, os.SEEK_END)
        self._size = file.tell()

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(length)

    def find_all(self, needle: bytes, start: int = 0) -> Iterator[int]:
        # scan in chunks that overlap by len(needle) - 1 so no occurrence straddles unseen
        overlap = len(needle) - 1
        offset = start
        while offset < self._size:
            chunk = self.read_at(offset, self._chunk + overlap)
            if not chunk:
                return
            at = chunk.find(needle)
            while at >= 0:
                if at < self._chunk or offset + len(chunk) >= self._size:
                    yield offset + at
                at = chunk.find(needle, at + 1)
            offset += self._chunk


def as_source(body: bytes | bytearray | memoryview | IO[bytes], chunk_size: int) -> ByteSource:
    """Random access over ``body``: bytes, or a seekable binary file (read, never closed)."""
    if isinstance(body, bytes | bytearray | memoryview):
        return _BytesSource(body)
    if not (body.readable() and body.seekable()):
        raise TypeError("a file body must be readable and seekable (spool the request first)")
    return _FileSource(body, chunk_size)


@dataclass(frozen=True)
class Window:
    """The bytes ``[start, end)`` of a source."""

    source: ByteSource
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    def read(self) -> bytes:
        return self.source.read_at(self.start, self.size)

    def read_at(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` within the window (clipped to it)."""
        offset = max(0, offset)
        length = max(0, min(length, self.size - offset))
        return self.source.read_at(self.start + offset, length)

    def sub(self, start: int, end: int) -> Window:
        return Window(self.source, self.start + start, self.start + end)

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        at = self.start
        while at < self.end:
            n = min(chunk_size, self.end - at)
            chunk = self.source.read_at(at, n)
            if len(chunk) != n:
                raise OSError("source ended before the window did")
            yield chunk
            at += n


class Spool:
    """Write once, then read back: memory up to ``threshold`` bytes, then an anonymous temp file.

    Not thread-safe; one reader at a time (every read seeks first).
    """

    def __init__(self, threshold: int, directory: str | None = None) -> None:
        # lives as long as the spool; close() ends it
        self._file: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=threshold, mode="w+b", dir=directory
        )
        self._threshold = threshold
        self._size = 0
        self._closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self._file.write(data)
            self._size += len(data)

    @property
    def size(self) -> int:
        return self._size

    @property
    def in_memory(self) -> bool:
        # SpooledTemporaryFile rolls over to disk once a write takes it past max_size
        return self._size <= self._threshold

    def read_at(self, offset: int, length: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(length)

    def read_bytes(self) -> bytes:
        return self.read_at(0, self._size)

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        at = 0
        while at < self._size:
            chunk = self.read_at(at, min(chunk_size, self._size - at))
            if not chunk:
                raise OSError("spool ended early")
            yield chunk
            at += len(chunk)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._file.close()


class Payload:
    """A payload handed to a caller: read it whole, in chunks, or as a file. Close it when done.

    ``content_id`` is its MIME Content-ID and ``mime_type`` the MimeType part property its
    PartInfo declares (None when it declares none).
    """

    def __init__(
        self, spool: Spool, *, content_id: str | None = None, mime_type: str | None = None
    ) -> None:
        self._spool = spool
        self.content_id = content_id
        self.mime_type = mime_type

    @property
    def size(self) -> int:
        return self._spool.size

    @property
    def in_memory(self) -> bool:
        return self._spool.in_memory

    def read_bytes(self) -> bytes:
        return self._spool.read_bytes()

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        return self._spool.iter_chunks(chunk_size)

    def copy_to(self, out: BinaryIO, chunk_size: int = 1024 * 1024) -> int:
        for chunk in self.iter_chunks(chunk_size):
            out.write(chunk)
        return self.size

    def close(self) -> None:
        self._spool.close()

    def __repr__(self) -> str:
        where = "memory" if self.in_memory else "temp file"
        return f"Payload({self.mime_type or 'untyped'}, {self.size} bytes in {where})"


def iter_chunks(
    data: bytes | bytearray | memoryview | IO[bytes] | Iterable[bytes], chunk_size: int
) -> Iterator[bytes]:
    """``data`` (bytes, a binary file read from its position, or chunks) as chunks."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for at in range(0, len(view), chunk_size):
            yield bytes(view[at : at + chunk_size])
        return
    read = getattr(data, "read", None)
    if read is not None:
        while True:
            chunk = read(chunk_size)
            if not chunk:
                return
            yield chunk
    else:
        for chunk in data:
            if chunk:
                yield bytes(chunk)
