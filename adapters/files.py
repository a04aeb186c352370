"""File payloads on disk, streamed and encrypted at rest with the access point's storage key.

Format of one stored file (``<root>/<id[:2]>/<id>``, the id 32 random hex digits, never
derived from user input)::

    magic "BSF1" (4) | salt (16) | chunk 0 | chunk 1 | ... | final chunk

* The file key is HKDF-SHA256(storage key, salt, info = "budstikke-file-v1:" + id): a fresh
  key per file, bound to its id, so a file renamed to another id does not decrypt.
* Every chunk is AES-256-GCM over at most :data:`CHUNK_SIZE` plaintext bytes with the nonce
  ``0000 | counter (8 bytes, big-endian)`` and the associated data ``header | final flag``. The
  counter in the nonce stops reordering and dropping chunks; the final flag stops truncation
  (a file must end with exactly one chunk marked final, and that chunk is the only one shorter
  than :data:`CHUNK_SIZE`, possibly empty).
* Writers write to a temporary name and rename when the last chunk is written (and, when
  ``durable``, fsynced), so a reader never sees half a file.

A per-file key with a counter nonce is used instead of one key with random 96-bit nonces
because the number of chunks under the storage key is unbounded (random nonces under one key
are safe for about 2^32 messages only).

Nothing reads a whole file into memory: :meth:`FileStore.write` consumes an async iterator of
chunks, :meth:`FileStore.chunks` yields plaintext chunks, :meth:`FileStore.open` gives a
synchronous, decrypting binary reader for code that pulls (the ASiC-E writer on a thread).
Tampering, truncation and a wrong key raise :class:`~sbdh.errors.DecryptionError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sbdh.errors import ConfigurationError, DecryptionError, NotFound, PayloadTooLarge

__all__ = ["CHUNK_SIZE", "FileStore", "StoredFile"]

MAGIC: Final = b"BSF1"
SALT_SIZE: Final = 16
HEADER_SIZE: Final = len(MAGIC) + SALT_SIZE
TAG_SIZE: Final = 16
#: plaintext bytes per encrypted chunk
CHUNK_SIZE: Final = 256 * 1024
_FRAME: Final = CHUNK_SIZE + TAG_SIZE
_ID: Final = re.compile(r"^[0-9a-f]{32}$")
#: incoming pieces are gathered to this many bytes before a trip to the writer thread
_BATCH: Final = 4 * CHUNK_SIZE


@dataclass(frozen=True)
class StoredFile:
    """What the store knows about a file it wrote: its id, plaintext size and SHA-256."""

    storage_id: str
    size: int
    sha256: str


def _nonce(counter: int) -> bytes:
    return b"\0\0\0\0" + counter.to_bytes(8, "big")


class _Sealer:
    """Encrypts a stream into frames; feed plaintext with :meth:`feed`, end with :meth:`finish`."""

    def __init__(self, key: bytes, storage_id: str) -> None:
        salt = secrets.token_bytes(SALT_SIZE)
        self.header = MAGIC + salt
        self._aead = AESGCM(_file_key(key, salt, storage_id))
        self._counter = 0
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        out: list[bytes] = []
        # keep at least one byte back until the end: the final chunk must be the short one
        while len(self._pending) > CHUNK_SIZE:
            piece = bytes(self._pending[:CHUNK_SIZE])
            del self._pending[:CHUNK_SIZE]
            out.append(self._seal(piece, final=False))
        return out

    def finish(self) -> list[bytes]:
        out: list[bytes] = []
        if len(self._pending) == CHUNK_SIZE:
            out.append(self._seal(bytes(self._pending), final=False))
            self._pending.clear()
        out.append(self._seal(bytes(self._pending), final=True))
        self._pending.clear()
        return out

    def _seal(self, piece: bytes, *, final: bool) -> bytes:
        aad = self.header + (b"\x01" if final else b"\x00")
        frame = self._aead.encrypt(_nonce(self._counter), piece, aad)
        self._counter += 1
        return frame


def _file_key(key: bytes, salt: bytes, storage_id: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=salt,
        info=b"budstikke-file-v1:" + storage_id.encode("ascii"),
    ).derive(key)


class _DecryptingReader(io.RawIOBase):
    """A read-only binary stream of a stored file's plaintext, verified chunk by chunk."""

    def __init__(self, path: Path, key: bytes, storage_id: str) -> None:
        super().__init__()
        try:
            self._fh: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed in close()
        except FileNotFoundError as exc:
            raise NotFound(f"stored file {storage_id} is missing") from exc
        header = self._fh.read(HEADER_SIZE)
        if len(header) != HEADER_SIZE or not header.startswith(MAGIC):
            self._fh.close()
            raise DecryptionError(
                f"stored file {storage_id} has no valid header", rule="file-store"
            )
        self._header = header
        self._aead = AESGCM(_file_key(key, header[len(MAGIC) :], storage_id))
        self._storage_id = storage_id
        self._counter = 0
        self._buffer = b""
        self._offset = 0
        self._done = False
        self._next = self._fh.read(_FRAME)

    def readable(self) -> bool:
        return True

    def _advance(self) -> bool:
        """Decrypt the next frame into the buffer; False at the end."""
        if self._done:
            return False
        frame = self._next
        self._next = self._fh.read(_FRAME) if len(frame) == _FRAME else b""
        final = len(frame) < _FRAME
        if not final and not self._next:
            # a full frame cannot be the final one: the file was cut after it
            raise DecryptionError(
                f"stored file {self._storage_id} is truncated", rule="file-store-truncated"
            )
        try:
            plain = self._aead.decrypt(
                _nonce(self._counter), frame, self._header + (b"\x01" if final else b"\x00")
            )
        except InvalidTag as exc:
            raise DecryptionError(
                f"stored file {self._storage_id} is corrupt or was tampered with",
                rule="file-store-tampered",
            ) from exc
        self._counter += 1
        self._buffer, self._offset = plain, 0
        if final:
            self._done = True
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(CHUNK_SIZE):
                parts.append(chunk)
            return b"".join(parts)
        while self._offset >= len(self._buffer):
            if not self._advance():
                return b""
        end = self._offset + size
        piece = self._buffer[self._offset : end]
        self._offset += len(piece)
        return piece

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def chunks(self) -> Iterator[bytes]:
        """Whole plaintext chunks, as decrypted."""
        while self._offset < len(self._buffer) or self._advance():
            piece = self._buffer[self._offset :]
            self._offset = len(self._buffer)
            if piece:
                yield piece

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


class FileStore:
    """Encrypted files under ``root``, keyed by random ids."""

    def __init__(self, root: Path, key: bytes, *, durable: bool = True) -> None:
        if len(key) != 32:
            raise ConfigurationError("the storage key must be 32 bytes")
        self.root = Path(root)
        self._key = key
        self._durable = durable
        #: the 256 fan-out directories known to exist (a mkdir per file is a syscall each)
        self._made: set[Path] = set()

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r}, key=***)"

    def path(self, storage_id: str) -> Path:
        if not _ID.match(storage_id):
            raise NotFound(f"{storage_id!r} is not a stored file id")
        return self.root / storage_id[:2] / storage_id

    async def write(self, chunks: AsyncIterator[bytes], *, max_size: int) -> StoredFile:
        """Encrypt ``chunks`` to a new file; :class:`PayloadTooLarge` past ``max_size`` bytes.

        Nothing is left on disk when this raises.
        """
        storage_id = secrets.token_hex(16)
        path = self.path(storage_id)
        temporary = path.with_name(path.name + ".part")
        sealer = _Sealer(self._key, storage_id)
        digest = hashlib.sha256()
        size = 0
        fh = await asyncio.to_thread(self._create, temporary, sealer.header)
        try:
            batch = bytearray()
            async for piece in chunks:
                size += len(piece)
                if size > max_size:
                    raise PayloadTooLarge(
                        f"the file is larger than the limit of {max_size} bytes", rule="file-size"
                    )
                digest.update(piece)
                batch += piece
                if len(batch) >= _BATCH:
                    data, batch = bytes(batch), bytearray()
                    await asyncio.to_thread(self._write_frames, fh, sealer, data, final=False)
            await asyncio.to_thread(self._write_frames, fh, sealer, bytes(batch), final=True)
            await asyncio.to_thread(self._commit, fh, temporary, path)
        except BaseException:
            await asyncio.to_thread(self._abort, fh, temporary)
            raise
        return StoredFile(storage_id, size, digest.hexdigest())

    async def write_bytes(self, data: bytes, *, max_size: int | None = None) -> StoredFile:
        """Store a small, already-held payload (multipart parts, generated receipts, tests).

        The same file as :meth:`write` makes, in one trip to a worker thread instead of three.
        """
        if max_size is not None and len(data) > max_size:
            raise PayloadTooLarge(
                f"the file is larger than the limit of {max_size} bytes", rule="file-size"
            )
        return await asyncio.to_thread(self._write_whole, bytes(data))

    async def write_many_bytes(self, payloads: Sequence[bytes]) -> list[StoredFile]:
        """Store several small, already-held payloads in one trip to a worker thread (the
        files of a group-commit round): all or none; nothing is left on disk when this
        raises."""
        if not payloads:
            return []
        return await asyncio.to_thread(self._write_many, [bytes(p) for p in payloads])

    def _write_many(self, payloads: Sequence[bytes]) -> list[StoredFile]:
        stored: list[StoredFile] = []
        try:
            for data in payloads:
                stored.append(self._write_whole(data))
        except BaseException:
            for done in stored:
                self.path(done.storage_id).unlink(missing_ok=True)
            raise
        return stored

    def _write_whole(self, data: bytes) -> StoredFile:
        storage_id = secrets.token_hex(16)
        path = self.path(storage_id)
        temporary = path.with_name(path.name + ".part")
        sealer = _Sealer(self._key, storage_id)
        fh = self._create(temporary, sealer.header)
        try:
            self._write_frames(fh, sealer, data, final=True)
            self._commit(fh, temporary, path)
        except BaseException:
            self._abort(fh, temporary)
            raise
        return StoredFile(storage_id, len(data), hashlib.sha256(data).hexdigest())

    def _create(self, temporary: Path, header: bytes) -> BinaryIO:
        parent = temporary.parent
        if parent not in self._made:
            parent.mkdir(parents=True, exist_ok=True)
            self._made.add(parent)
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:  # the directory went away since (an operator's cleanup)
            parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fh = os.fdopen(fd, "wb")
        fh.write(header)
        return fh

    @staticmethod
    def _write_frames(fh: BinaryIO, sealer: _Sealer, data: bytes, *, final: bool) -> None:
        frames = sealer.feed(data)
        if final:
            frames += sealer.finish()
        fh.write(b"".join(frames))

    def _commit(self, fh: BinaryIO, temporary: Path, path: Path) -> None:
        fh.flush()
        if self._durable:
            os.fsync(fh.fileno())
        fh.close()
        os.replace(temporary, path)

    @staticmethod
    def _abort(fh: BinaryIO, temporary: Path) -> None:
        fh.close()
        temporary.unlink(missing_ok=True)

    def open(self, storage_id: str) -> BinaryIO:
        """A synchronous reader of the plaintext (blocking I/O: use it on a thread)."""
        reader = _DecryptingReader(self.path(storage_id), self._key, storage_id)
        return io.BufferedReader(reader, buffer_size=CHUNK_SIZE)

    async def chunks(self, storage_id: str) -> AsyncIterator[bytes]:
        """The plaintext in chunks, decrypted and verified on a worker thread."""
        reader = await asyncio.to_thread(
            _DecryptingReader, self.path(storage_id), self._key, storage_id
        )
        try:
            iterator = reader.chunks()
            while True:
                chunk = await asyncio.to_thread(next, iterator, None)
                if chunk is None:
                    return
                yield chunk
        finally:
            reader.close()

    async def read_bytes(self, storage_id: str, *, limit: int) -> bytes:
        """A small file whole (arkivmelding.xml); :class:`PayloadTooLarge` past ``limit``."""
        parts: list[bytes] = []
        total = 0
        async for chunk in self.chunks(storage_id):
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(f"stored file is larger than {limit} bytes", rule="file-size")
            parts.append(chunk)
        return b"".join(parts)

    async def delete(self, storage_id: str) -> None:
        """Remove a file; a missing one is not an error."""
        await asyncio.to_thread(self.path(storage_id).unlink, missing_ok=True)

    def exists(self, storage_id: str) -> bool:
        return self.path(storage_id).exists()
