"""CMS EnvelopedData (RFC 5652) for document packages, streamed both ways.

A package is encrypted to one recipient certificate: a fresh AES-256-CBC content-encryption key
(CEK) encrypts the content, and the CEK travels in a ``KeyTransRecipientInfo`` wrapped with
RSAES-OAEP (RFC 8017) with the explicit RFC 4055 parameters SHA-256 and MGF1-SHA-256.

Why not cryptography's ``pkcs7`` module: its builder only wraps keys with PKCS#1 v1.5 (the
padding Bleichenbacher's attack targets) and holds the whole content in memory. Here the small
parts (``RecipientInfo``, algorithm identifiers) are built and parsed with asn1crypto, and the
outer structure is written and read by hand so that a package of any size streams through:

* **writing** produces BER the way OpenSSL and BouncyCastle do in streaming mode: the
  ``ContentInfo``, ``EnvelopedData``, ``EncryptedContentInfo`` wrappers with indefinite length,
  and ``encryptedContent`` as a constructed ``[0]`` of definite-length OCTET STRING chunks;
* **reading** accepts that, and definite-length DER with a primitive ``encryptedContent``, and
  any mix of the two (each chunk may itself be constructed, as BER allows), either as a
  stream (:func:`decrypt`, which writes the plaintext out) or, from a seekable file, as a
  seekable plaintext that is decrypted on demand (:class:`EnvelopeReader`: CBC block *i*
  needs only ciphertext blocks *i-1* and *i*).

On reading, three failures are deliberately indistinguishable (one :class:`DecryptionError`
with the message :data:`CORRUPT_CONTENT` and rule ``cms-content``): the CEK does not unwrap, the
CBC padding is wrong, and (in :mod:`sbdh.package`) the plaintext is not a ZIP. An unwrap failure
does not stop processing: as RFC 3218 section 2.3 advises, a random CEK is used instead and the
content is decrypted anyway, so neither the error nor its timing tells an attacker which step
failed. That closes the padding oracle CBC would otherwise offer a peer who can submit crafted
ciphertexts. Integrity itself is the signature's job (the content is a signed ASiC-E), checked
after decryption.

A package not addressed to our certificate is a different, harmless case (the recipient ids are
public): it fails early with rule ``cms-recipient``.
"""

from __future__ import annotations

import array
import bisect
import enum
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Final, Protocol

from asn1crypto import algos as asn1_algos
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from sbdh.errors import DecryptionError, PackageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "CORRUPT_CONTENT",
    "FRAGMENTED_RULE",
    "MAX_SEGMENTS",
    "ContentEncryption",
    "EnvelopeInfo",
    "EnvelopeReader",
    "EnvelopeWriter",
    "KeyTransport",
    "OaepHash",
    "RecipientIdentifier",
    "decrypt",
    "encrypt",
]

#: the one message for every failure that could otherwise act as a decryption oracle
CORRUPT_CONTENT: Final = (
    "the encrypted content cannot be decrypted: it is corrupt or was not encrypted for this key"
)

ID_DATA: Final = "1.2.840.113549.1.7.1"
ID_ENVELOPED_DATA: Final = "1.2.840.113549.1.7.3"

#: plaintext is encrypted in chunks of this size; each becomes one OCTET STRING
CHUNK_SIZE: Final = 1 << 20
#: the parts read into memory (recipient infos, algorithm identifiers) may not exceed this
_MAX_HEADER_ELEMENT: Final = 1 << 20
#: nesting allowed in the small elements read whole, and in the chunks of encryptedContent
_MAX_ELEMENT_DEPTH: Final = 32
_MAX_CHUNK_DEPTH: Final = 8
_AES_BLOCK: Final = 16
#: an :class:`EnvelopeReader` indexes at most this many encryptedContent chunks by default
MAX_SEGMENTS: Final = 100_000
#: rule of the error an :class:`EnvelopeReader` raises for content in more chunks than that
FRAGMENTED_RULE: Final = "cms-fragmented"


class ContentEncryption(enum.Enum):
    """Content-encryption algorithms, by OID (NIST CSOR). Only AES-256-CBC is written."""

    AES128_CBC = "2.16.840.1.101.3.4.1.2"
    AES192_CBC = "2.16.840.1.101.3.4.1.22"
    AES256_CBC = "2.16.840.1.101.3.4.1.42"

    @property
    def key_size(self) -> int:
        return {"AES128_CBC": 16, "AES192_CBC": 24, "AES256_CBC": 32}[self.name]


class KeyTransport(enum.Enum):
    """Key-transport algorithms, by OID. PKCS#1 v1.5 (``rsaEncryption``) is refused on read."""

    RSAES_OAEP = "1.2.840.113549.1.1.7"  # RFC 4055 id-RSAES-OAEP


class OaepHash(enum.Enum):
    """Hash functions accepted in the RSAES-OAEP parameters (and MGF1), by OID."""

    SHA256 = "2.16.840.1.101.3.4.2.1"
    SHA384 = "2.16.840.1.101.3.4.2.2"
    SHA512 = "2.16.840.1.101.3.4.2.3"

    def hash(self) -> hashes.HashAlgorithm:
        if self is OaepHash.SHA384:
            return hashes.SHA384()
        if self is OaepHash.SHA512:
            return hashes.SHA512()
        return hashes.SHA256()


class RecipientIdentifier(enum.Enum):
    """How a ``KeyTransRecipientInfo`` names the recipient's certificate (RFC 5652 6.2.1)."""

    ISSUER_AND_SERIAL_NUMBER = "issuerAndSerialNumber"
    SUBJECT_KEY_IDENTIFIER = "subjectKeyIdentifier"


@dataclass(frozen=True)
class EnvelopeInfo:
    """What an encryption or decryption did."""

    content_encryption: ContentEncryption
    recipient_identifier: RecipientIdentifier
    #: bytes of plaintext (content before padding)
    content_size: int


def _corrupt() -> DecryptionError:
    return DecryptionError(CORRUPT_CONTENT, rule="cms-content")


def _structure(message: str) -> DecryptionError:
    return DecryptionError(f"not a CMS EnvelopedData: {message}", rule="cms-structure")


# --------------------------------------------------------------------------------------------
# DER/BER helpers


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _oid(dotted: str) -> bytes:
    return bytes(asn1_core.ObjectIdentifier(dotted).dump())


_EOC: Final = b"\x00\x00"


def _oaep_parameters(digest: OaepHash) -> asn1_algos.RSAESOAEPParams:
    hash_name = digest.name.lower()
    return asn1_algos.RSAESOAEPParams(
        {
            "hash_algorithm": {"algorithm": hash_name},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": hash_name}},
        }
    )


def _recipient_info(
    certificate: x509.Certificate, cek: bytes, rid: RecipientIdentifier, digest: OaepHash
) -> asn1_cms.RecipientInfo:
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise PackageError(
            "the recipient certificate must hold an RSA key for RSAES-OAEP key transport",
            rule="cms-recipient-key",
        )
    wrapped = public_key.encrypt(
        cek,
        asym_padding.OAEP(
            mgf=asym_padding.MGF1(digest.hash()), algorithm=digest.hash(), label=None
        ),
    )
    if rid is RecipientIdentifier.ISSUER_AND_SERIAL_NUMBER:
        asn1_cert = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
        rid_value = asn1_cms.RecipientIdentifier(
            name="issuer_and_serial_number",
            value=asn1_cms.IssuerAndSerialNumber(
                {"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number}
            ),
        )
        version = "v0"
    else:
        rid_value = asn1_cms.RecipientIdentifier(
            name="subject_key_identifier", value=_subject_key_identifier(certificate)
        )
        version = "v2"
    ktri = asn1_cms.KeyTransRecipientInfo(
        {
            "version": version,
            "rid": rid_value,
            "key_encryption_algorithm": {
                "algorithm": "rsaes_oaep",
                "parameters": _oaep_parameters(digest),
            },
            "encrypted_key": wrapped,
        }
    )
    return asn1_cms.RecipientInfo(name="ktri", value=ktri)


def _subject_key_identifier(certificate: x509.Certificate) -> bytes:
    try:
        ext = certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
    value = ext.value
    assert isinstance(value, x509.SubjectKeyIdentifier)
    return value.digest


# --------------------------------------------------------------------------------------------
# writing


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class EnvelopeWriter:
    """A write-only stream: what is written to it leaves, encrypted, as CMS BER on ``out``.

    Call :meth:`finish` (or leave the ``with`` block without an exception) to write the final
    padded block and the end-of-contents octets; without it the output is truncated and will
    not decrypt. ``out`` is written strictly sequentially, so a pipe or socket will do.
    """

    def __init__(
        self,
        out: _Sink,
        recipient: x509.Certificate,
        *,
        rid: RecipientIdentifier = RecipientIdentifier.ISSUER_AND_SERIAL_NUMBER,
        oaep_hash: OaepHash = OaepHash.SHA256,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._out = out
        self._rid = rid
        self._chunk = chunk_size
        self._size = 0
        self._buffer = bytearray()
        self._finished = False
        cek = os.urandom(ContentEncryption.AES256_CBC.key_size)
        iv = os.urandom(_AES_BLOCK)
        self._cipher: CipherContext = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
        self._padder = padding.PKCS7(128).padder()
        recipient_infos = asn1_cms.RecipientInfos([_recipient_info(recipient, cek, rid, oaep_hash)])
        algorithm = asn1_cms.EncryptionAlgorithm(
            {"algorithm": "aes256_cbc", "parameters": asn1_core.OctetString(iv)}
        )
        # version 0: no originatorInfo, no unprotectedAttrs, every RecipientInfo is a v0 ktri
        version = 0 if rid is RecipientIdentifier.ISSUER_AND_SERIAL_NUMBER else 2
        header = b"".join(
            (
                b"\x30\x80",  # ContentInfo
                _oid(ID_ENVELOPED_DATA),
                b"\xa0\x80",  # [0] EXPLICIT content
                b"\x30\x80",  # EnvelopedData
                bytes(asn1_core.Integer(version).dump()),
                bytes(recipient_infos.dump()),
                b"\x30\x80",  # EncryptedContentInfo
                _oid(ID_DATA),
                bytes(algorithm.dump()),
                b"\xa0\x80",  # [0] IMPLICIT encryptedContent, constructed
            )
        )
        out.write(header)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._finished:
            raise ValueError("write to a finished CMS envelope")
        n = len(data)
        self._size += n
        if not self._buffer and n >= self._chunk:
            self._emit(self._cipher.update(self._padder.update(data)))
        else:
            self._buffer += data
            if len(self._buffer) >= self._chunk:
                self._flush()
        return n

    def _flush(self) -> None:
        if self._buffer:
            self._emit(self._cipher.update(self._padder.update(bytes(self._buffer))))
            self._buffer.clear()

    def _emit(self, ciphertext: bytes) -> None:
        if ciphertext:
            self._out.write(b"\x04" + _der_length(len(ciphertext)))
            self._out.write(ciphertext)

    def finish(self) -> EnvelopeInfo:
        """Write the last block and close every wrapper. Does not close ``out``."""
        if not self._finished:
            self._flush()
            self._emit(self._cipher.update(self._padder.finalize()) + self._cipher.finalize())
            # encryptedContent, EncryptedContentInfo, EnvelopedData, [0], ContentInfo
            self._out.write(_EOC * 5)
            self._finished = True
        return EnvelopeInfo(ContentEncryption.AES256_CBC, self._rid, self._size)

    def __enter__(self) -> EnvelopeWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()


def encrypt(
    src: BinaryIO,
    out: BinaryIO,
    recipient: x509.Certificate,
    *,
    rid: RecipientIdentifier = RecipientIdentifier.ISSUER_AND_SERIAL_NUMBER,
) -> EnvelopeInfo:
    """Encrypt everything readable from ``src`` to ``recipient``, writing CMS BER to ``out``."""
    with EnvelopeWriter(out, recipient, rid=rid) as writer:
        while chunk := src.read(CHUNK_SIZE):
            writer.write(chunk)
    return writer.finish()


# --------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class _Header:
    tag: int  # the identifier octet (low-tag-number form only)
    length: int | None  # None: indefinite
    raw: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)


class _BerReader:
    """Just enough BER to walk the outer structure of a CMS message from a stream.

    ``size`` is how many bytes the stream holds from where reading starts, when that is known
    (a seekable source): then :meth:`skip` seeks instead of reading.
    """

    def __init__(self, stream: BinaryIO, size: int | None = None) -> None:
        self._stream = stream
        self._size = size
        self.position = 0

    def read_exact(self, n: int) -> bytes:
        data = self._stream.read(n)
        if data is None or len(data) != n:
            raise _structure("truncated")
        self.position += n
        return data

    def skip(self, n: int) -> None:
        """Move past ``n`` content octets without reading them (the stream must be seekable)."""
        if self._size is None or self.position + n > self._size:
            raise _structure("truncated")
        self._stream.seek(n, os.SEEK_CUR)
        self.position += n

    def header(self) -> _Header:
        first = self.read_exact(2)
        tag, length_octet = first[0], first[1]
        if tag & 0x1F == 0x1F:
            raise _structure("high tag numbers are not used in CMS")
        if length_octet < 0x80:
            return _Header(tag, length_octet, first)
        if length_octet == 0x80:
            if not tag & 0x20:
                raise _structure("indefinite length on a primitive element")
            return _Header(tag, None, first)
        count = length_octet & 0x7F
        if count > 8:
            raise _structure("length field too long")
        body = self.read_exact(count)
        return _Header(tag, int.from_bytes(body, "big"), first + body)

    def element(self, max_size: int = _MAX_HEADER_ELEMENT) -> bytes:
        """The complete encoding (BER, possibly indefinite) of the next element."""
        return self._element_after(self.header(), max_size)

    def _element_after(self, header: _Header, max_size: int, depth: int = 0) -> bytes:
        if header.length is not None:
            if header.length > max_size:
                raise _structure(f"element of {header.length} bytes exceeds {max_size}")
            return header.raw + self.read_exact(header.length)
        if depth >= _MAX_ELEMENT_DEPTH:
            raise _structure("elements nested too deeply")
        parts = [header.raw]
        size = len(header.raw)
        while True:
            child = self.header()
            if child.tag == 0 and child.length == 0:
                parts.append(child.raw)
                return b"".join(parts)
            encoded = self._element_after(child, max_size - size, depth + 1)
            size += len(encoded)
            if size > max_size:
                raise _structure(f"element exceeds {max_size} bytes")
            parts.append(encoded)

    def skip_to_end(self, end: int | None) -> None:
        """Skip what is left of an element ending at ``end`` (or indefinite, at its EOC)."""
        if end is None:
            while True:
                header = self.header()
                if header.tag == 0 and header.length == 0:
                    return
                self._element_after(header, _MAX_HEADER_ELEMENT)
        while self.position < end:
            self.element()
        if self.position != end:
            raise _structure("element overruns its enclosing length")

    def octet_pieces(self, header: _Header, depth: int = 0) -> Iterator[int]:
        """The primitive pieces of an OCTET STRING (or ``[0] IMPLICIT`` one), by length.

        Each time a length is yielded the stream is at the start of that piece's content, and
        the consumer must move past exactly that many octets (:meth:`read_exact` or
        :meth:`skip`) before asking for the next piece.
        """
        if not header.constructed:
            assert header.length is not None
            yield header.length
            return
        if depth >= _MAX_CHUNK_DEPTH:
            raise _structure("encryptedContent chunks nested too deeply")
        end = None if header.length is None else self.position + header.length
        while True:
            if end is not None and self.position >= end:
                if self.position != end:
                    raise _structure("element overruns its enclosing length")
                return
            child = self.header()
            if end is None and child.tag == 0 and child.length == 0:
                return
            if child.tag not in (0x04, 0x24):
                raise _structure("encryptedContent chunk is not an OCTET STRING")
            yield from self.octet_pieces(child, depth + 1)

    def octet_chunks(self, header: _Header) -> Iterator[bytes]:
        """The content octets of an OCTET STRING (or ``[0] IMPLICIT`` one), primitive or not."""
        for length in self.octet_pieces(header):
            remaining = length
            while remaining:
                piece = self.read_exact(min(remaining, CHUNK_SIZE))
                remaining -= len(piece)
                yield piece


def _end(reader: _BerReader, header: _Header) -> int | None:
    return None if header.length is None else reader.position + header.length


def _expect(reader: _BerReader, tag: int, what: str) -> _Header:
    header = reader.header()
    if header.tag != tag:
        raise _structure(f"expected {what}")
    return header


def _read_oid(reader: _BerReader) -> str:
    encoded = reader.element(256)
    if encoded[0] != 0x06:
        raise _structure("expected an OBJECT IDENTIFIER")
    try:
        return str(asn1_core.ObjectIdentifier.load(encoded).dotted)
    except ValueError as exc:
        raise _structure("malformed OBJECT IDENTIFIER") from exc


def _matches(rid: asn1_cms.RecipientIdentifier, certificate: x509.Certificate) -> bool:
    if rid.name == "issuer_and_serial_number":
        asn1_cert = asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))
        value = rid.chosen
        return bool(
            value["serial_number"].native == asn1_cert.serial_number
            and value["issuer"] == asn1_cert.issuer
        )
    if rid.name == "subject_key_identifier":
        return bool(rid.chosen.native == _subject_key_identifier(certificate))
    return False


def _oaep_padding(parameters: asn1_algos.RSAESOAEPParams) -> asym_padding.OAEP:
    try:
        digest = OaepHash(parameters["hash_algorithm"]["algorithm"].dotted)
        mgf = parameters["mask_gen_algorithm"]
        if mgf["algorithm"].native != "mgf1":
            raise ValueError("mask generation function is not MGF1")
        mgf_hash = OaepHash(mgf["parameters"]["algorithm"].dotted)
        label = parameters["p_source_algorithm"]["parameters"].native
    except (ValueError, KeyError, TypeError) as exc:
        raise DecryptionError(
            f"unsupported RSAES-OAEP parameters ({exc}); SHA-256/384/512 with MGF1 are accepted",
            rule="cms-algorithm",
        ) from exc
    return asym_padding.OAEP(
        mgf=asym_padding.MGF1(mgf_hash.hash()), algorithm=digest.hash(), label=label or None
    )


def _unwrap_key(
    recipient_infos: asn1_cms.RecipientInfos,
    certificate: x509.Certificate,
    key: rsa.RSAPrivateKey,
    key_size: int,
) -> tuple[bytes, RecipientIdentifier]:
    for info in recipient_infos:
        if info.name != "ktri":
            continue
        ktri = info.chosen
        if not _matches(ktri["rid"], certificate):
            continue
        algorithm = ktri["key_encryption_algorithm"]
        if algorithm["algorithm"].dotted != KeyTransport.RSAES_OAEP.value:
            raise DecryptionError(
                f"key transport {algorithm['algorithm'].dotted} is refused: only RSAES-OAEP "
                "is accepted (PKCS#1 v1.5 invites Bleichenbacher's attack)",
                rule="cms-algorithm",
            )
        oaep = _oaep_padding(algorithm["parameters"])
        rid = (
            RecipientIdentifier.ISSUER_AND_SERIAL_NUMBER
            if ktri["rid"].name == "issuer_and_serial_number"
            else RecipientIdentifier.SUBJECT_KEY_IDENTIFIER
        )
        try:
            cek = key.decrypt(ktri["encrypted_key"].native, oaep)
        except ValueError:
            cek = b""
        if len(cek) != key_size:
            # RFC 3218 2.3: carry on with a random key, so that a bad unwrap fails exactly
            # like a bad padding or garbled content does, later and with the same error
            cek = os.urandom(key_size)
        return cek, rid
    raise DecryptionError(
        "the package is not addressed to this certificate "
        f"({certificate.subject.rfc4514_string()}, serial {certificate.serial_number:x})",
        rule="cms-recipient",
    )


@dataclass(frozen=True)
class _Envelope:
    """What the part of a CMS message before the ciphertext says, and the unwrapped key."""

    algorithm: ContentEncryption
    rid: RecipientIdentifier
    cek: bytes = field(repr=False)
    iv: bytes
    #: the header of ``[0] encryptedContent``: the reader stands right after it
    content: _Header
    #: where EncryptedContentInfo, EnvelopedData, ``[0]`` and ContentInfo end (None: at an EOC)
    ends: tuple[int | None, ...]


def _read_envelope(
    reader: _BerReader, certificate: x509.Certificate, key: rsa.RSAPrivateKey
) -> _Envelope:
    content_info = _expect(reader, 0x30, "ContentInfo SEQUENCE")
    content_info_end = _end(reader, content_info)
    if _read_oid(reader) != ID_ENVELOPED_DATA:
        raise _structure("content type is not id-envelopedData")
    explicit = _expect(reader, 0xA0, "[0] content")
    explicit_end = _end(reader, explicit)
    enveloped = _expect(reader, 0x30, "EnvelopedData SEQUENCE")
    enveloped_end = _end(reader, enveloped)
    reader.element(16)  # version: the structure, not the number, decides how we read
    encoded = reader.element()
    if encoded[0] == 0xA0:  # originatorInfo: certificates and CRLs we do not need
        encoded = reader.element()
    if encoded[0] != 0x31:
        raise _structure("expected recipientInfos SET")
    try:
        recipient_infos = asn1_cms.RecipientInfos.load(encoded)
        recipient_infos.native  # noqa: B018 - parse it all here, not lazily later
    except (ValueError, TypeError) as exc:
        raise _structure(f"malformed recipientInfos: {exc}") from exc
    eci = _expect(reader, 0x30, "EncryptedContentInfo SEQUENCE")
    eci_end = _end(reader, eci)
    _read_oid(reader)  # the inner content type; the signed container says what it is
    try:
        algorithm = asn1_cms.EncryptionAlgorithm.load(reader.element())
        algorithm_oid = str(algorithm["algorithm"].dotted)
        iv = algorithm["parameters"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise _structure(f"malformed contentEncryptionAlgorithm: {exc}") from exc
    try:
        content_algorithm = ContentEncryption(algorithm_oid)
    except ValueError as exc:
        raise DecryptionError(
            f"content encryption {algorithm_oid} is not supported (AES-CBC is)",
            rule="cms-algorithm",
        ) from exc
    if not isinstance(iv, bytes) or len(iv) != _AES_BLOCK:
        raise _structure("AES-CBC needs a 16-byte IV")
    cek, rid = _unwrap_key(recipient_infos, certificate, key, content_algorithm.key_size)
    if eci_end is not None and reader.position == eci_end:
        raise _structure("detached content is not supported")
    content = reader.header()
    if content.tag not in (0x80, 0xA0):
        raise _structure("expected [0] encryptedContent")
    return _Envelope(
        content_algorithm,
        rid,
        cek,
        iv,
        content,
        (eci_end, enveloped_end, explicit_end, content_info_end),
    )


def decrypt(
    src: BinaryIO,
    out: _Sink,
    *,
    certificate: x509.Certificate,
    key: rsa.RSAPrivateKey,
) -> EnvelopeInfo:
    """Decrypt the CMS EnvelopedData readable from ``src`` (BER or DER) into ``out``.

    ``src`` is read strictly sequentially, so a pipe will do; for a seekable ``src``,
    :class:`EnvelopeReader` decrypts on demand instead, without a copy of the plaintext.

    Raises :class:`DecryptionError`: rule ``cms-recipient`` when no recipient info names
    ``certificate``; ``cms-algorithm`` for a refused algorithm; ``cms-structure`` when ``src``
    is not an EnvelopedData; ``cms-content`` (:data:`CORRUPT_CONTENT`) for a key that does not
    unwrap or a bad padding. Everything but the last block has reached ``out`` by then: the
    caller must discard ``out`` on any error.
    """
    reader = _BerReader(src)
    envelope = _read_envelope(reader, certificate, key)
    size = _decrypt_chunks(reader.octet_chunks(envelope.content), envelope.cek, envelope.iv, out)
    for end in envelope.ends:
        reader.skip_to_end(end)  # unprotectedAttrs, if any, are ignored
    return EnvelopeInfo(envelope.algorithm, envelope.rid, size)


def _decrypt_chunks(chunks: Iterator[bytes], cek: bytes, iv: bytes, out: _Sink) -> int:
    decryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
    total_in = 0
    size = 0
    held = b""  # the last whole block decrypted so far: it may be the padding
    for chunk in chunks:
        total_in += len(chunk)
        plain = decryptor.update(chunk)  # keeps partial blocks back itself
        if not plain:
            continue
        if held:
            out.write(held)
            size += len(held)
        if len(plain) > _AES_BLOCK:
            out.write(plain[:-_AES_BLOCK])
            size += len(plain) - _AES_BLOCK
        held = plain[-_AES_BLOCK:]
    if total_in == 0 or total_in % _AES_BLOCK:
        raise _corrupt()
    decryptor.finalize()
    # PKCS#7 checked by cryptography's constant-time unpadder, on the last block only
    unpadder = padding.PKCS7(128).unpadder()
    try:
        last = unpadder.update(held) + unpadder.finalize()
    except ValueError:
        raise _corrupt() from None
    out.write(last)
    return size + len(last)


# --------------------------------------------------------------------------------------------
# random access

#: plaintext decrypted at least this much at a time and kept for the next read
_WINDOW: Final = 1 << 16


class EnvelopeReader(io.RawIOBase):
    """A read-only, seekable file over the plaintext of a CMS EnvelopedData in a seekable file.

    In CBC, plaintext block *i* depends only on ciphertext blocks *i-1* and *i*, so the content
    can be decrypted anywhere, on demand. Opening walks the message once: the small parts are
    read as :func:`decrypt` reads them, but the ciphertext is only indexed (one segment for a
    primitive ``encryptedContent``, one per chunk of a constructed one, found by reading the
    chunk headers and seeking over their contents) and its last block decrypted, to check the
    padding and so learn the size. After that, :meth:`read` decrypts the aligned blocks it
    covers (at least :data:`_WINDOW` bytes, kept for the next read), so the plaintext is never
    written anywhere and reading it sequentially costs one pass of AES.

    The same errors as :func:`decrypt`, raised by the constructor, the padding included: a key
    that does not unwrap and a bad padding stay one :data:`CORRUPT_CONTENT`. Content split into
    more than ``max_segments`` chunks is refused with rule :data:`FRAGMENTED_RULE`, so that a
    hostile message cannot make the index large; :func:`decrypt` reads such a message in bounded
    memory. Reading may also raise :class:`DecryptionError` (``cms-structure``) should ``src``
    be truncated meanwhile. Closing does not close ``src``, which must outlive this reader and
    not be used by anybody else while it is read.
    """

    def __init__(
        self,
        src: BinaryIO,
        *,
        certificate: x509.Certificate,
        key: rsa.RSAPrivateKey,
        max_segments: int = MAX_SEGMENTS,
    ) -> None:
        super().__init__()
        self._src = src
        base = src.tell()
        reader = _BerReader(src, src.seek(0, os.SEEK_END) - base)
        src.seek(base)
        envelope = _read_envelope(reader, certificate, key)
        # segment i: ciphertext octets starts[i]..starts[i+1] sit in src from offsets[i] on
        self._starts = array.array("q")
        self._offsets = array.array("q")
        total = 0
        for count, length in enumerate(reader.octet_pieces(envelope.content), 1):
            if count > max_segments:
                raise DecryptionError(
                    f"the encrypted content is split into more than {max_segments} chunks; "
                    "it is not indexed for random access",
                    rule=FRAGMENTED_RULE,
                )
            if length:
                self._starts.append(total)
                self._offsets.append(base + reader.position)
                total += length
            reader.skip(length)
        for end in envelope.ends:
            reader.skip_to_end(end)  # unprotectedAttrs, if any, are ignored
        if total == 0 or total % _AES_BLOCK:
            raise _corrupt()
        self._cipher_size = total
        self._aes = algorithms.AES(envelope.cek)
        self._iv = envelope.iv
        self._decryptor: CipherContext | None = None
        self._next_block = -1  # where self._decryptor continues
        self._window = b""
        self._window_view = memoryview(self._window)
        self._window_start = 0
        self._position = 0
        self._buffer = bytearray()  # ciphertext, reused from one read to the next
        self._readinto = src.readinto if isinstance(src, io.BufferedIOBase | io.RawIOBase) else None
        # PKCS#7 checked by cryptography's constant-time unpadder, on the last block only
        unpadder = padding.PKCS7(128).unpadder()
        try:
            last = unpadder.update(self._decrypt(total - _AES_BLOCK, total)) + unpadder.finalize()
        except ValueError:
            raise _corrupt() from None
        self._size = total - _AES_BLOCK + len(last)
        self._info = EnvelopeInfo(envelope.algorithm, envelope.rid, self._size)

    @property
    def info(self) -> EnvelopeInfo:
        return self._info

    @property
    def segments(self) -> int:
        """How many pieces the ciphertext is stored in."""
        return len(self._starts)

    # -- io.RawIOBase --------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        self._check_open()
        if whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self._position + offset
        elif whence == os.SEEK_END:
            target = self._size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._position = target
        return target

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left if negative); fewer only at the end."""
        self._check_open()
        start = self._position
        stop = self._size if size is None or size < 0 else min(self._size, start + size)
        if stop <= start:
            return b""
        window_stop = self._window_start + len(self._window)
        if not self._window_start <= start or stop > window_stop:
            # one window per read, even if that decrypts a block twice: no joining of pieces
            self._fill(start, stop)
        self._position = stop
        offset = start - self._window_start
        if offset == 0 and stop - start == len(self._window):
            return self._window
        return bytes(self._window_view[offset : offset + stop - start])

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        target = memoryview(buffer).cast("B")
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._window = b""
        self._window_view = memoryview(self._window)
        self._buffer = bytearray()
        self._decryptor = None
        super().close()

    # -- decryption ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a closed EnvelopeReader")

    def _fill(self, start: int, stop: int) -> None:
        """Decrypt the whole blocks holding ``start..stop``, at least :data:`_WINDOW` bytes."""
        first = start - start % _AES_BLOCK
        wanted = max(stop + -stop % _AES_BLOCK, first + _WINDOW)
        self._window = self._decrypt(first, min(wanted, self._cipher_size))
        self._window_view = memoryview(self._window)
        self._window_start = first

    def _decrypt(self, first: int, stop: int) -> bytes:
        """The plaintext of ciphertext octets ``first..stop``, both multiples of the block."""
        if self._decryptor is not None and first == self._next_block:
            plain = self._decryptor.update(self._ciphertext(first, stop))
        else:
            # a fresh CBC decryptor whose IV is the ciphertext block before ``first``
            if first == 0:
                iv, ciphertext = self._iv, self._ciphertext(0, stop)
            else:
                ciphertext = self._ciphertext(first - _AES_BLOCK, stop)
                iv, ciphertext = bytes(ciphertext[:_AES_BLOCK]), ciphertext[_AES_BLOCK:]
            self._decryptor = Cipher(self._aes, modes.CBC(iv)).decryptor()
            plain = self._decryptor.update(ciphertext)
        self._next_block = stop
        return plain

    def _ciphertext(self, first: int, stop: int) -> memoryview:
        """Ciphertext octets ``first..stop``, gathered from the segments that hold them.

        The result is a view of a buffer that the next call overwrites.
        """
        n = stop - first
        if len(self._buffer) < n:
            self._buffer = bytearray(n)
        view = memoryview(self._buffer)[:n]
        index = bisect.bisect_right(self._starts, first) - 1
        filled = 0
        while filled < n:
            segment_start = self._starts[index]
            segment_stop = (
                self._starts[index + 1] if index + 1 < len(self._starts) else self._cipher_size
            )
            take = min(stop, segment_stop) - (first + filled)
            self._src.seek(self._offsets[index] + first + filled - segment_start)
            self._read_into(view[filled : filled + take])
            filled += take
            index += 1
        return view

    def _read_into(self, target: memoryview) -> None:
        done = 0
        while done < len(target):
            if self._readinto is not None:
                got = self._readinto(target[done:])
            else:
                data = self._src.read(len(target) - done)
                got = len(data) if data else 0
                target[done : done + got] = data
            if not got:
                raise _structure("truncated")
            done += got
