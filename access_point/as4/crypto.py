"""The payload's journey through gzip, SHA-256 and AES-128-GCM, streamed in chunks.

Sending (:func:`seal`): SBD → gzip → the SHA-256 the signature's attachment reference carries
(AS4 signs the compressed payload) → AES-128-GCM → ``IV (12) ‖ ciphertext ‖ tag (16)``, as the
eDelivery AS4 profile lays out the encrypted attachment (Attachment-Content-Only).

Receiving (:func:`unseal`): the reverse, over a window of the received body. Plaintext leaves
GCM before the tag is checked, so nothing is released until the whole attachment has been
authenticated (tag), matched against the signed digest and decompressed within its cap; a
failure anywhere discards the spool. When several things are wrong the most basic one is
reported: a bad tag (EBMS:0102) before a digest mismatch (EBMS:0101) before a decompression
failure or bomb (EBMS:0303), so tampering is never mistaken for a corrupt archive.

The content key travels RSA-OAEP-wrapped (XML Encryption 1.1 ``rsa-oaep`` with SHA-256 and
MGF1-SHA-256).
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import DecompressionFailure, FailedAuthentication, FailedDecryption
from .mime import MimePart
from .streams import Spool

__all__ = [
    "IV_BYTES",
    "KEY_BYTES",
    "TAG_BYTES",
    "Sealed",
    "seal",
    "unseal",
    "unwrap_key",
    "wrap_key",
]

KEY_BYTES = 16  # AES-128
IV_BYTES = 12
TAG_BYTES = 16

_OAEP = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)


def wrap_key(key: bytes, public_key: rsa.RSAPublicKey) -> bytes:
    return public_key.encrypt(key, _OAEP)


def unwrap_key(wrapped: bytes, private_key: rsa.RSAPrivateKey) -> bytes:
    try:
        key = private_key.decrypt(wrapped, _OAEP)
    except ValueError as exc:
        raise FailedDecryption(
            "the content key cannot be unwrapped with our private key", rule="as4-key-transport"
        ) from exc
    if len(key) != KEY_BYTES:
        raise FailedDecryption(
            f"the content key is {len(key)} bytes; AES-128-GCM needs {KEY_BYTES}",
            rule="as4-key-transport",
        )
    return key


@dataclass(frozen=True)
class Sealed:
    key: bytes
    #: SHA-256 of the compressed payload (what the signature's cid: reference covers)
    digest: bytes
    #: size of the payload before compression
    plain_size: int


def seal(
    chunks: Iterable[bytes], out: Spool, *, compress: bool, level: int, key: bytes | None = None
) -> Sealed:
    """Compress, digest and encrypt ``chunks`` into ``out`` as IV ‖ ciphertext ‖ tag.

    ``key``: the content key, when several attachments share one (each gets its own IV);
    a fresh one otherwise.
    """
    if key is None:
        key = os.urandom(KEY_BYTES)
    elif len(key) != KEY_BYTES:
        raise ValueError(f"the content key must be {KEY_BYTES} bytes")
    iv = os.urandom(IV_BYTES)
    encryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    digest = hashlib.sha256()
    out.write(iv)
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31) if compress else None
    plain_size = 0

    def emit(data: bytes) -> None:
        if data:
            digest.update(data)
            out.write(encryptor.update(data))

    for chunk in chunks:
        plain_size += len(chunk)
        emit(compressor.compress(chunk) if compressor is not None else chunk)
    if compressor is not None:
        emit(compressor.flush())
    out.write(encryptor.finalize())
    out.write(encryptor.tag)
    return Sealed(key=key, digest=digest.digest(), plain_size=plain_size)


class _Gunzip:
    """Streaming gzip (one or more members) with an output cap; records the first problem."""

    def __init__(self, out: Spool, cap: int, step: int) -> None:
        self._out = out
        self._cap = cap
        self._step = step
        self._inflate = zlib.decompressobj(31)
        self._member_done = False
        self.problem: str | None = None
        self.bomb = False

    def feed(self, data: bytes) -> None:
        if self.problem is None:
            self._pump(data, final=False)

    def finish(self) -> None:
        if self.problem is None:
            self._pump(b"", final=True)

    def _pump(self, data: bytes, *, final: bool) -> None:
        try:
            while True:
                if self._member_done:
                    if not data:
                        return  # a clean end between gzip members
                    # another member follows; anything else is trailing garbage (zlib.error)
                    self._inflate = zlib.decompressobj(31)
                    self._member_done = False
                # bounded output per call: a small input may inflate enormously
                produced = self._inflate.decompress(data, self._step)
                if self._out.size + len(produced) > self._cap:
                    self.bomb = True
                    self.problem = f"the payload inflates beyond the limit of {self._cap} bytes"
                    return
                self._out.write(produced)
                if self._inflate.eof:
                    self._member_done = True
                    data = self._inflate.unused_data
                    continue
                data = self._inflate.unconsumed_tail
                if not data and not produced:
                    if final:
                        self.problem = "the gzip stream is truncated"
                    return
        except zlib.error as exc:
            self.problem = f"the payload is not valid gzip: {exc}"


def _spool_range(spool: Spool, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
    try:
        at = start
        while at < end:
            chunk = spool.read_at(at, min(chunk_size, end - at))
            yield chunk
            at += len(chunk)
    finally:
        spool.close()


def unseal(
    part: MimePart,
    key: bytes,
    out: Spool,
    *,
    expected_digest: bytes,
    compressed: bool,
    cap: int,
    chunk_size: int,
) -> None:
    """Decrypt, check and decompress one attachment into ``out`` (which the caller discards on
    error). Raises :class:`FailedDecryption`, :class:`FailedAuthentication` or
    :class:`DecompressionFailure`."""
    if part.transfer_encoding in ("binary", "8bit", "7bit"):
        window = part.content
        if window.size < IV_BYTES + TAG_BYTES:
            raise FailedDecryption(
                "the encrypted attachment is shorter than IV and tag", rule="as4-ciphertext"
            )
        iv = window.read_at(0, IV_BYTES)
        tag = window.read_at(window.size - TAG_BYTES, TAG_BYTES)
        body = window.sub(IV_BYTES, window.size - TAG_BYTES).iter_chunks(chunk_size)
    else:
        # rare (a base64 attachment): decode it to a spool first, then read that in chunks
        decoded = Spool(threshold=chunk_size * 8)
        for piece in part.iter_decoded(chunk_size):
            decoded.write(piece)
        if decoded.size < IV_BYTES + TAG_BYTES:
            decoded.close()
            raise FailedDecryption(
                "the encrypted attachment is shorter than IV and tag", rule="as4-ciphertext"
            )
        iv = decoded.read_at(0, IV_BYTES)
        tag = decoded.read_at(decoded.size - TAG_BYTES, TAG_BYTES)
        body = _spool_range(decoded, IV_BYTES, decoded.size - TAG_BYTES, chunk_size)

    decryptor = Cipher(algorithms.AES(key), modes.GCM(iv, tag)).decryptor()
    digest = hashlib.sha256()
    if compressed:
        gunzip: _Gunzip | None = _Gunzip(out, cap, step=chunk_size)
    else:
        gunzip = None
    too_large = False
    for chunk in body:
        plain = decryptor.update(chunk)
        digest.update(plain)
        if gunzip is not None:
            gunzip.feed(plain)
        elif out.size + len(plain) <= cap and not too_large:
            out.write(plain)
        else:
            too_large = True
    try:
        decryptor.finalize()
    except InvalidTag as exc:
        raise FailedDecryption(
            "the attachment's authentication tag does not verify (wrong key or altered data)",
            rule="as4-ciphertext",
        ) from exc
    if digest.digest() != expected_digest:
        raise FailedAuthentication(
            "the attachment differs from what was signed (digest mismatch)",
            rule="as4-attachment-digest",
        )
    if too_large:
        raise DecompressionFailure(
            f"the payload exceeds the limit of {cap} bytes", rule="as4-payload-size"
        )
    if gunzip is not None:
        gunzip.finish()
        if gunzip.problem is not None:
            raise DecompressionFailure(
                gunzip.problem, rule="as4-gzip-bomb" if gunzip.bomb else "as4-gzip"
            )
