"""CMS EnvelopedData: streaming BER out, BER and DER in, RSAES-OAEP only, no padding oracle."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbdh import cms
from sbdh.cms import (
    CORRUPT_CONTENT,
    FRAGMENTED_RULE,
    ContentEncryption,
    EnvelopeReader,
    RecipientIdentifier,
)
from sbdh.errors import DecryptionError
from sbdh.pki import Credential, generate_root_ca, issue_end_entity

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def alice() -> Credential:
    root = generate_root_ca("CMS test root", now=NOW, key_size=2048)
    return issue_end_entity(root, "Alice", now=NOW)


@pytest.fixture(scope="module")
def bob() -> Credential:
    root = generate_root_ca("Other root", now=NOW, key_size=2048)
    return issue_end_entity(root, "Bob", now=NOW)


def _encrypt(data: bytes, cred: Credential, **kwargs: object) -> bytes:
    out = io.BytesIO()
    cms.encrypt(io.BytesIO(data), out, cred.certificate, **kwargs)  # type: ignore[arg-type]
    return out.getvalue()


def _decrypt(message: bytes, cred: Credential) -> bytes:
    out = io.BytesIO()
    cms.decrypt(io.BytesIO(message), out, certificate=cred.certificate, key=cred.key)
    return out.getvalue()


def _read(message: bytes, cred: Credential, **kwargs: int) -> bytes:
    """Decrypt with the random-access reader instead, reading it backwards in odd pieces."""
    with EnvelopeReader(
        io.BytesIO(message), certificate=cred.certificate, key=cred.key, **kwargs
    ) as reader:
        size = reader.seek(0, os.SEEK_END)
        assert size == reader.info.content_size
        pieces = []
        for start in range(size - size % 999, -1, -999):
            reader.seek(start)
            pieces.append(reader.read(999))
        return b"".join(reversed(pieces))


#: both ways to decrypt; every negative test runs against both
DECRYPTORS = pytest.mark.parametrize("decrypt", [_decrypt, _read], ids=["stream", "random"])
Decrypt = Callable[[bytes, Credential], bytes]


def ber_with_chunks(message: bytes, sizes: Iterable[int], *, nest: bool = False) -> bytes:
    """``message`` again as streamed BER, its ciphertext cut into chunks of ``sizes`` (cycled).

    With ``nest``, every third chunk is itself a constructed OCTET STRING of two chunks, and
    every fifth is preceded by an empty one: all legal BER that a reader must put together.
    """
    enveloped = asn1_cms.ContentInfo.load(message)["content"]
    eci = enveloped["encrypted_content_info"]
    ciphertext = eci["encrypted_content"].native
    chunks = []
    cycle = list(sizes)
    position = index = 0
    while position < len(ciphertext):
        piece = ciphertext[position : position + cycle[index % len(cycle)]]
        position += len(piece)
        index += 1
        if nest and index % 5 == 0:
            chunks.append(b"\x04\x00")
        if nest and index % 3 == 0 and len(piece) > 1:
            half = len(piece) // 2
            inner = _octets(piece[:half]) + _octets(piece[half:])
            chunks.append((b"\x24\x80" + inner + b"\x00\x00") if index % 2 else _tlv(0x24, inner))
        else:
            chunks.append(_octets(piece))
    return b"".join(
        [
            b"\x30\x80" + bytes(asn1_core.ObjectIdentifier("1.2.840.113549.1.7.3").dump()),
            b"\xa0\x80\x30\x80" + bytes(enveloped["version"].dump()),
            bytes(enveloped["recipient_infos"].dump()),
            b"\x30\x80" + bytes(eci["content_type"].dump()),
            bytes(eci["content_encryption_algorithm"].dump()),
            b"\xa0\x80",
            *chunks,
            b"\x00\x00" * 5,
        ]
    )


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    length = bytes([n]) if n < 0x80 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + content


def _octets(content: bytes) -> bytes:
    return _tlv(0x04, content)


def _der_envelope(
    ciphertext: bytes,
    cred: Credential,
    *,
    cek: bytes,
    iv: bytes,
    key_transport: str = "rsaes_oaep",
    corrupt_key: bool = False,
) -> bytes:
    """A definite-length DER EnvelopedData with a primitive encryptedContent, built by hand."""
    public = cred.certificate.public_key()
    if key_transport == "rsaes_oaep":
        wrapped = public.encrypt(  # type: ignore[union-attr]
            cek,
            asym_padding.OAEP(
                mgf=asym_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
            ),
        )
        algorithm = {
            "algorithm": "rsaes_oaep",
            "parameters": {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
            },
        }
    else:
        wrapped = public.encrypt(cek, asym_padding.PKCS1v15())  # type: ignore[union-attr]
        algorithm = {"algorithm": "rsaes_pkcs1v15"}
    if corrupt_key:
        wrapped = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    cert = asn1_x509.Certificate.load(cred.certificate.public_bytes(Encoding.DER))
    enveloped = asn1_cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [
                asn1_cms.RecipientInfo(
                    name="ktri",
                    value={
                        "version": "v0",
                        "rid": asn1_cms.RecipientIdentifier(
                            name="issuer_and_serial_number",
                            value={"issuer": cert.issuer, "serial_number": cert.serial_number},
                        ),
                        "key_encryption_algorithm": algorithm,
                        "encrypted_key": wrapped,
                    },
                )
            ],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {
                    "algorithm": "aes256_cbc",
                    "parameters": asn1_core.OctetString(iv),
                },
                "encrypted_content": ciphertext,
            },
        }
    )
    return bytes(
        asn1_cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()
    )


def _cbc(plaintext_padded: bytes, cek: bytes, iv: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    return encryptor.update(plaintext_padded) + encryptor.finalize()


@pytest.mark.parametrize(
    "size", [0, 1, 15, 16, 17, cms.CHUNK_SIZE - 1, cms.CHUNK_SIZE + 1, 3_000_001]
)
def test_round_trip(alice: Credential, size: int) -> None:
    data = os.urandom(size)
    message = _encrypt(data, alice)
    assert message.startswith(b"\x30\x80")  # streamed BER, indefinite length
    assert message.endswith(b"\x00\x00" * 5)
    assert _decrypt(message, alice) == data


def test_writes_rsaes_oaep_with_explicit_sha256_parameters(alice: Credential) -> None:
    message = _encrypt(b"x", alice)
    # re-read the small parts with asn1crypto, which reads BER
    info = asn1_cms.ContentInfo.load(message)
    ktri = info["content"]["recipient_infos"][0].chosen
    assert ktri["key_encryption_algorithm"]["algorithm"].dotted == "1.2.840.113549.1.1.7"
    params = ktri["key_encryption_algorithm"]["parameters"]
    assert params["hash_algorithm"]["algorithm"].native == "sha256"
    assert params["mask_gen_algorithm"]["parameters"]["algorithm"].native == "sha256"
    eci = info["content"]["encrypted_content_info"]
    assert eci["content_encryption_algorithm"]["algorithm"].dotted == (
        ContentEncryption.AES256_CBC.value
    )
    assert info["content"]["version"].native == "v0"


def test_subject_key_identifier_recipient(alice: Credential) -> None:
    message = _encrypt(b"by key id", alice, rid=RecipientIdentifier.SUBJECT_KEY_IDENTIFIER)
    out = io.BytesIO()
    info = cms.decrypt(io.BytesIO(message), out, certificate=alice.certificate, key=alice.key)
    assert out.getvalue() == b"by key id"
    assert info.recipient_identifier is RecipientIdentifier.SUBJECT_KEY_IDENTIFIER


def test_reads_definite_length_der_with_primitive_content(alice: Credential) -> None:
    cek, iv = os.urandom(32), os.urandom(16)
    data = b"definite length " * 100
    pad = 16 - len(data) % 16
    message = _der_envelope(_cbc(data + bytes([pad]) * pad, cek, iv), alice, cek=cek, iv=iv)
    assert message[1] != 0x80
    assert _decrypt(message, alice) == data


def test_not_addressed_to_us(alice: Credential, bob: Credential) -> None:
    with pytest.raises(DecryptionError, match="not addressed to this certificate") as err:
        _decrypt(_encrypt(b"secret", alice), bob)
    assert err.value.rule == "cms-recipient"


@DECRYPTORS
def test_bad_padding_is_reported_as_corrupt_content(alice: Credential, decrypt: Decrypt) -> None:
    cek, iv = os.urandom(32), os.urandom(16)
    bad = b"sixteen byte blk" + b"\x00" * 15 + b"\x11"  # 0x11 is no PKCS#7 padding
    with pytest.raises(DecryptionError) as err:
        decrypt(_der_envelope(_cbc(bad, cek, iv), alice, cek=cek, iv=iv), alice)
    assert err.value.rule == "cms-content"
    assert err.value.message == CORRUPT_CONTENT


@DECRYPTORS
def test_key_that_does_not_unwrap_fails_like_bad_padding(
    alice: Credential, monkeypatch: pytest.MonkeyPatch, decrypt: Decrypt
) -> None:
    """RFC 3218: a failed unwrap goes on with a random key; here that key is one that pads badly."""
    cek, iv = os.urandom(32), os.urandom(16)
    random_key = os.urandom(32)
    # a last block that decrypts to a bad padding under the random key
    last = Cipher(algorithms.AES(random_key), modes.CBC(iv)).encryptor().update(b"\x00" * 16)
    message = _der_envelope(last, alice, cek=cek, iv=iv, corrupt_key=True)
    monkeypatch.setattr("sbdh.cms.os.urandom", lambda n: random_key[:n])
    with pytest.raises(DecryptionError) as err:
        decrypt(message, alice)
    assert err.value.rule == "cms-content"
    assert err.value.message == CORRUPT_CONTENT


def test_pkcs1_v15_key_transport_is_refused(alice: Credential) -> None:
    cek, iv = os.urandom(32), os.urandom(16)
    message = _der_envelope(
        _cbc(b"\x10" * 16, cek, iv), alice, cek=cek, iv=iv, key_transport="pkcs1"
    )
    with pytest.raises(DecryptionError) as err:
        _decrypt(message, alice)
    assert err.value.rule == "cms-algorithm"


def test_cryptography_pkcs7_output_is_refused_for_its_pkcs1_v15(alice: Credential) -> None:
    message = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(b"hello")
        .add_recipient(alice.certificate)
        .encrypt(Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    with pytest.raises(DecryptionError) as err:
        _decrypt(message, alice)
    assert err.value.rule == "cms-algorithm"


@pytest.mark.parametrize(
    "message",
    [b"", b"\x30\x80", b"not cms at all", bytes.fromhex("3080060b2a864886f70d0109100117")],
)
@DECRYPTORS
def test_not_an_enveloped_data(alice: Credential, message: bytes, decrypt: Decrypt) -> None:
    with pytest.raises(DecryptionError) as err:
        decrypt(message, alice)
    assert err.value.rule == "cms-structure"


def test_other_content_type(alice: Credential) -> None:
    message = bytearray(_encrypt(b"x", alice))
    message[12] = 0x02  # id-signedData instead of id-envelopedData
    with pytest.raises(DecryptionError, match="id-envelopedData"):
        _decrypt(bytes(message), alice)


@DECRYPTORS
@pytest.mark.parametrize("cut", [1, 10, 11, 100])
def test_truncated(alice: Credential, cut: int, decrypt: Decrypt) -> None:
    message = _encrypt(os.urandom(5000), alice)
    with pytest.raises(DecryptionError):
        decrypt(message[:-cut], alice)


# --------------------------------------------------------------------------------------------
# random access: EnvelopeReader

PLAIN = os.urandom(3 * cms._WINDOW + 1234 + 7)  # reads both within and past one window


def _chunked_by_writer(data: bytes, cred: Credential) -> bytes:
    out = io.BytesIO()
    with cms.EnvelopeWriter(out, cred.certificate, chunk_size=1000) as writer:
        for start in range(0, len(data), 100):
            writer.write(data[start : start + 100])
    return out.getvalue()


def _der_primitive(data: bytes, cred: Credential) -> bytes:
    cek, iv = os.urandom(32), os.urandom(16)
    pad = 16 - len(data) % 16
    return _der_envelope(_cbc(data + bytes([pad]) * pad, cek, iv), cred, cek=cek, iv=iv)


def _odd_chunks(data: bytes, cred: Credential) -> bytes:
    # chunk sizes that are not multiples of the AES block, some nested, some empty
    return ber_with_chunks(_encrypt(data, cred), [1, 17, 5, 333, 4096, 1000, 15], nest=True)


ENCODINGS: dict[str, Callable[[bytes, Credential], bytes]] = {
    "ber-writer-chunks": _chunked_by_writer,
    "der-primitive": _der_primitive,
    "ber-odd-chunks": _odd_chunks,
}


_ENCODED: dict[str, bytes] = {}


def _encoded(encoding: str, cred: Credential) -> bytes:
    """``PLAIN`` in ``encoding``, made once; sequential decryption is the reference."""
    if encoding not in _ENCODED:
        _ENCODED[encoding] = ENCODINGS[encoding](PLAIN, cred)
        assert _decrypt(_ENCODED[encoding], cred) == PLAIN
    return _ENCODED[encoding]


_SIZE = len(PLAIN)
_OPERATION = st.one_of(
    st.tuples(st.just("seek"), st.integers(-_SIZE - 50, _SIZE + 50), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("read"), st.integers(-1, _SIZE + 50)),
    st.tuples(st.just("readinto"), st.integers(0, 5000)),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(encoding=st.sampled_from(sorted(ENCODINGS)), operations=st.lists(_OPERATION, max_size=25))
def test_random_access_reads_match_sequential_decryption(
    alice: Credential, encoding: str, operations: list[tuple[str, int, int] | tuple[str, int]]
) -> None:
    """Any sequence of seeks and reads gives what the same calls give on the plaintext."""
    model = io.BytesIO(PLAIN)
    reader = EnvelopeReader(
        io.BytesIO(_encoded(encoding, alice)), certificate=alice.certificate, key=alice.key
    )
    for operation in operations:
        if operation[0] == "seek":
            offset, whence = operation[1], operation[2]  # type: ignore[misc]
            target = offset + (0, model.tell(), len(PLAIN))[whence]
            if target < 0:  # files refuse it; BytesIO goes to 0 instead
                with pytest.raises(ValueError, match="negative"):
                    reader.seek(offset, whence)
                continue
            assert reader.seek(offset, whence) == model.seek(offset, whence) == target
        elif operation[0] == "read":
            assert reader.read(operation[1]) == model.read(operation[1]), operation
        else:
            mine, theirs = bytearray(operation[1]), bytearray(operation[1])
            assert reader.readinto(mine) == model.readinto(theirs)
            assert mine == theirs
        assert reader.tell() == model.tell()


def test_reader_describes_the_content(alice: Credential) -> None:
    data = os.urandom(5000)
    for message, segments in (
        (_der_primitive(data, alice), 1),
        (_chunked_by_writer(data, alice), 6),  # five of about 1000 bytes, then the last one
        (ber_with_chunks(_encrypt(data, alice), [7]), (len(data) // 16 + 1) * 16 // 7 + 1),
    ):
        with EnvelopeReader(
            io.BytesIO(message), certificate=alice.certificate, key=alice.key
        ) as reader:
            assert reader.info.content_size == len(data)
            assert reader.info.content_encryption is ContentEncryption.AES256_CBC
            assert reader.segments == segments
            assert reader.readable()
            assert reader.seekable()
            assert not reader.writable()
            assert reader.read() == data
            assert reader.read() == b""
        with pytest.raises(ValueError, match="closed"):
            reader.read(1)


def test_reader_starts_where_the_source_stands(alice: Credential) -> None:
    """A message that does not start the file: offsets are relative to where reading began."""
    message = _odd_chunks(PLAIN, alice)
    src = io.BytesIO(b"some prefix" + message + b"and a suffix")
    src.seek(len(b"some prefix"))
    reader = EnvelopeReader(src, certificate=alice.certificate, key=alice.key)
    reader.seek(12345)
    assert reader.read(4000) == PLAIN[12345:16345]


def test_empty_content(alice: Credential) -> None:
    assert _read(_encrypt(b"", alice), alice) == b""
    assert _read(ber_with_chunks(_encrypt(b"", alice), [3]), alice) == b""


@pytest.mark.parametrize("size", [1, 15, 16, 17, 4095, 4096, 4097])
def test_padding_sizes(alice: Credential, size: int) -> None:
    data = os.urandom(size)
    assert _read(_encrypt(data, alice), alice) == data
    assert _read(ber_with_chunks(_encrypt(data, alice), [5, 11]), alice) == data


def test_fragmentation_cap(alice: Credential) -> None:
    message = ber_with_chunks(_encrypt(os.urandom(3000), alice), [100])
    chunks = 3008 // 100 + 1
    assert _read(message, alice, max_segments=chunks) is not None
    with pytest.raises(DecryptionError, match=f"more than {chunks - 1} chunks") as err:
        _read(message, alice, max_segments=chunks - 1)
    assert err.value.rule == FRAGMENTED_RULE
    # empty chunks count: they cost a header read each
    padded = message.replace(b"\xa0\x80\x04", b"\xa0\x80" + b"\x04\x00" * 50 + b"\x04", 1)
    assert _decrypt(padded, alice) == _decrypt(message, alice)
    with pytest.raises(DecryptionError) as err:
        _read(padded, alice, max_segments=chunks)
    assert err.value.rule == FRAGMENTED_RULE


@DECRYPTORS
def test_chunks_nested_too_deeply_are_refused(alice: Credential, decrypt: Decrypt) -> None:
    message = ber_with_chunks(_encrypt(b"x" * 100, alice), [200])
    start = message.index(b"\xa0\x80\x04") + 2
    end = len(message) - 10
    deep = message[:start] + b"\x24\x80" * 50 + message[start:end] + b"\x00\x00" * 50
    deep += message[end:]
    with pytest.raises(DecryptionError, match="nested too deeply") as err:
        decrypt(deep, alice)
    assert err.value.rule == "cms-structure"


@DECRYPTORS
@pytest.mark.parametrize("chunk", [b"\x05\x00", b"\x04\x05abc"], ids=["not-octets", "overrun"])
def test_bad_chunks(alice: Credential, decrypt: Decrypt, chunk: bytes) -> None:
    message = _encrypt(b"y" * 100, alice)
    start = message.index(b"\xa0\x80\x04") + 2
    with pytest.raises(DecryptionError) as err:
        decrypt(message[:start] + chunk + message[start:], alice)
    assert err.value.rule == "cms-structure"


def test_every_byte_flip_fails_or_decrypts_alike(
    alice: Credential, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both readers agree on every message one flipped byte away from a good one."""
    message = _odd_chunks(os.urandom(200), alice)
    # the same "random" key for both after a failed unwrap: by chance it may even pad well
    monkeypatch.setattr("sbdh.cms.os.urandom", lambda n: b"\x5a" * n)
    rng = random.Random(5652)
    positions = sorted(
        set(range(0, len(message), 3)) | set(range(len(message) - 120, len(message)))
    )
    for position in positions:
        damaged = bytearray(message)
        damaged[position] ^= 1 << rng.randrange(8)
        outcomes = []
        for decrypt in (_decrypt, _read):
            try:
                outcomes.append(decrypt(bytes(damaged), alice))
            except DecryptionError as exc:
                outcomes.append(exc.rule)
        assert outcomes[0] == outcomes[1], position


# --------------------------------------------------------------------------------------------
# interoperability with the OpenSSL command line

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl command line not installed")


def _openssl(*args: str) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], check=True, capture_output=True)


def _pem_files(tmp_path: Path, cred: Credential) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cred.cert_pem())
    key.write_bytes(cred.key_pem())
    return cert, key


@needs_openssl
def test_openssl_decrypts_what_we_encrypt(tmp_path: Path, alice: Credential) -> None:
    cert, key = _pem_files(tmp_path, alice)
    data = os.urandom(2 * cms.CHUNK_SIZE + 5)
    (tmp_path / "msg.der").write_bytes(_encrypt(data, alice))
    _openssl(
        "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(tmp_path / "msg.der"),
        "-recip", str(cert), "-inkey", str(key), "-out", str(tmp_path / "plain"),
    )  # fmt: skip
    assert (tmp_path / "plain").read_bytes() == data


@needs_openssl
@pytest.mark.parametrize("stream", [False, True], ids=["der", "ber-stream"])
@pytest.mark.parametrize("keyid", [False, True], ids=["issuer-serial", "ski"])
def test_we_decrypt_what_openssl_encrypts(
    tmp_path: Path, alice: Credential, stream: bool, keyid: bool
) -> None:
    cert, _ = _pem_files(tmp_path, alice)
    data = os.urandom(cms.CHUNK_SIZE + 12345)
    (tmp_path / "plain").write_bytes(data)
    _openssl(
        "cms", "-encrypt", "-binary", "-outform", "DER", "-aes256",
        "-in", str(tmp_path / "plain"), "-out", str(tmp_path / "msg.der"),
        *(["-stream"] if stream else []), *(["-keyid"] if keyid else []),
        "-recip", str(cert),
        "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256",
        "-keyopt", "rsa_mgf1_md:sha256",
    )  # fmt: skip
    message = (tmp_path / "msg.der").read_bytes()
    assert (message[1] == 0x80) is stream
    assert _decrypt(message, alice) == data
    assert _read(message, alice) == data
    with EnvelopeReader(io.BytesIO(message), certificate=alice.certificate, key=alice.key) as r:
        # DER: one primitive encryptedContent; -stream: chunks of 4096 bytes (some shorter)
        if stream:
            assert r.segments > len(data) // 4096
        else:
            assert r.segments == 1
    # openssl's chunks are whole blocks; cut them anywhere, and nest some
    for sizes in ([4095], [1, 7, 100, 4099]):
        assert _read(ber_with_chunks(message, sizes, nest=True), alice) == data


@needs_openssl
def test_openssl_default_sha1_oaep_is_refused(tmp_path: Path, alice: Credential) -> None:
    cert, _ = _pem_files(tmp_path, alice)
    (tmp_path / "plain").write_bytes(b"x")
    _openssl(
        "cms", "-encrypt", "-binary", "-outform", "DER", "-aes256",
        "-in", str(tmp_path / "plain"), "-out", str(tmp_path / "msg.der"),
        "-recip", str(cert), "-keyopt", "rsa_padding_mode:oaep",
    )  # fmt: skip
    with pytest.raises(DecryptionError) as err:
        _decrypt((tmp_path / "msg.der").read_bytes(), alice)
    assert err.value.rule == "cms-algorithm"
