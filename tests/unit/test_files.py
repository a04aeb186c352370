"""The encrypted file store: streamed, encrypted at rest, tamper-evident."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.files import CHUNK_SIZE, HEADER_SIZE, TAG_SIZE, FileStore
from sbdh.errors import DecryptionError, NotFound, PayloadTooLarge

FRAME = CHUNK_SIZE + TAG_SIZE


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "files", secrets.token_bytes(32), durable=False)


async def pieces(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(store: FileStore, storage_id: str) -> bytes:
    return b"".join([chunk async for chunk in store.chunks(storage_id)])


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 5 * CHUNK_SIZE + 7]
)
async def test_round_trip(store: FileStore, size: int) -> None:
    data = secrets.token_bytes(size)
    stored = await store.write(pieces(data), max_size=10 * CHUNK_SIZE)
    assert stored.size == size
    assert await read_all(store, stored.storage_id) == data
    with store.open(stored.storage_id) as fh:
        assert fh.read() == data


async def test_plaintext_never_on_disk(store: FileStore) -> None:
    marker = b"CONFIDENTIAL-MARKER-" * 1000
    stored = await store.write(pieces(marker), max_size=len(marker))
    raw = store.path(stored.storage_id).read_bytes()
    assert b"CONFIDENTIAL" not in raw
    assert len(raw) == HEADER_SIZE + len(marker) + TAG_SIZE


async def test_ids_are_random_hex_not_names(store: FileStore) -> None:
    first = await store.write_bytes(b"a")
    second = await store.write_bytes(b"a")
    assert first.storage_id != second.storage_id
    assert len(first.storage_id) == 32
    int(first.storage_id, 16)
    with pytest.raises(NotFound):
        store.path("../../etc/passwd")


async def test_tampered_chunk_is_refused(store: FileStore) -> None:
    data = secrets.token_bytes(2 * CHUNK_SIZE + 10)
    stored = await store.write(pieces(data), max_size=len(data))
    path = store.path(stored.storage_id)
    raw = bytearray(path.read_bytes())
    raw[HEADER_SIZE + FRAME + 5] ^= 1  # a byte of the second chunk
    path.write_bytes(bytes(raw))
    with pytest.raises(DecryptionError):
        await read_all(store, stored.storage_id)


async def test_reordered_chunks_are_refused(store: FileStore) -> None:
    data = secrets.token_bytes(2 * CHUNK_SIZE + 10)
    stored = await store.write(pieces(data), max_size=len(data))
    path = store.path(stored.storage_id)
    raw = path.read_bytes()
    header, first, second = raw[:HEADER_SIZE], raw[HEADER_SIZE:][:FRAME], raw[HEADER_SIZE:][FRAME:]
    path.write_bytes(header + second[:FRAME] + first + second[FRAME:])
    with pytest.raises(DecryptionError):
        await read_all(store, stored.storage_id)


@pytest.mark.parametrize("cut", ["last-chunk", "mid-frame"])
async def test_truncation_is_refused(store: FileStore, cut: str) -> None:
    data = secrets.token_bytes(2 * CHUNK_SIZE + 10)
    stored = await store.write(pieces(data), max_size=len(data))
    path = store.path(stored.storage_id)
    raw = path.read_bytes()
    keep = HEADER_SIZE + 2 * FRAME if cut == "last-chunk" else HEADER_SIZE + FRAME + 100
    path.write_bytes(raw[:keep])
    with pytest.raises(DecryptionError):
        await read_all(store, stored.storage_id)


async def test_wrong_key_and_swapped_id(store: FileStore, tmp_path: Path) -> None:
    stored = await store.write_bytes(b"secret letter")
    other = FileStore(store.root, secrets.token_bytes(32))
    with pytest.raises(DecryptionError):
        await read_all(other, stored.storage_id)
    # a file moved to another id does not decrypt: the id is bound into the key
    moved = "0" * 32
    store.path(moved).parent.mkdir(parents=True, exist_ok=True)
    store.path(stored.storage_id).rename(store.path(moved))
    with pytest.raises(DecryptionError):
        await read_all(store, moved)


async def test_size_limit_leaves_nothing(store: FileStore) -> None:
    with pytest.raises(PayloadTooLarge):
        await store.write(pieces(b"x" * 50_000), max_size=40_000)
    assert not [p for p in store.root.rglob("*") if p.is_file()]


async def test_missing_and_delete(store: FileStore) -> None:
    stored = await store.write_bytes(b"x")
    await store.delete(stored.storage_id)
    await store.delete(stored.storage_id)
    with pytest.raises(NotFound):
        await read_all(store, stored.storage_id)


async def test_read_bytes_limit(store: FileStore) -> None:
    stored = await store.write_bytes(b"x" * 1000)
    assert await store.read_bytes(stored.storage_id, limit=1000) == b"x" * 1000
    with pytest.raises(PayloadTooLarge):
        await store.read_bytes(stored.storage_id, limit=999)
