"""A second payload after the SBD (eFormidling's document package, as DPI carries it): built,
received, refused and acknowledged."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from access_point.as4 import (
    As4Error,
    Attachment,
    BuildOptions,
    DecompressionFailure,
    FailedAuthentication,
    FailedDecryption,
    FeatureNotSupported,
    InboundMessage,
    InvalidReceipt,
    OutboundMessage,
    ReceiveOptions,
    TrustPolicy,
    build_receipt,
    check_response,
    receive_user_message,
)
from access_point.as4.spec import GZIP_MIME, Algorithm
from sbdh.errors import EbmsCode
from sbdh.pki import Credential
from sbdh.trust import TrustStore
from tests.unit.as4.conftest import NSMAP, SBD, find, resign, wire, xml

Build = Callable[..., OutboundMessage]
ASIC_E = "application/vnd.etsi.asic-e+zip"
CMS = "application/cms"
TWO = ReceiveOptions(max_payloads=2)
PACKAGE = b"PK\x03\x04" + b"mimetypeapplication/vnd.etsi.asic-e+zip" + bytes(range(256)) * 64


@pytest.fixture
def receive(
    receiver: Credential, ap_trust: TrustStore, now: datetime
) -> Callable[..., InboundMessage]:
    def call(body: bytes, content_type: str, **kwargs: object) -> InboundMessage:
        args: dict[str, object] = {
            "credential": receiver,
            "trust": ap_trust,
            "now": now,
            "options": TWO,
        }
        args.update(kwargs)
        return receive_user_message(body, content_type, **args)  # type: ignore[arg-type]

    return call


def refused(
    receive: Callable[..., InboundMessage],
    body: bytes,
    content_type: str,
    kind: type[As4Error],
    **kwargs: object,
) -> As4Error:
    with pytest.raises(kind) as caught:
        receive(body, content_type, **kwargs).close()
    return caught.value


def content_key(soap: bytes, receiver: Credential) -> bytes:
    wrapped = base64.b64decode(find(xml(soap), ".//xenc:EncryptedKey//xenc:CipherValue").text or "")
    return receiver.key.decrypt(
        wrapped,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )


def with_package(build: Build, package: object = PACKAGE, **kwargs: object) -> OutboundMessage:
    return build(attachments=[Attachment(package, ASIC_E)], **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- round trips


def test_two_payloads_round_trip(
    build: Build, receive: Callable[..., InboundMessage], sender: Credential
) -> None:
    with with_package(build) as message:
        body = message.to_bytes()
        assert message.payload_size == len(SBD)
        assert message.attachment_sizes == (len(PACKAGE),)
        with receive(body, message.content_type) as inbound:
            assert [p.read_bytes() for p in inbound.payloads] == [SBD, PACKAGE]
            assert [p.mime_type for p in inbound.payloads] == ["application/xml", ASIC_E]
            assert inbound.payload is inbound.payloads[0]
            assert inbound.content_id == inbound.payloads[0].content_id
            assert [f"cid:{p.content_id}" for p in inbound.payloads] == [
                part.href for part in inbound.user_message.parts
            ]
            assert inbound.signer == sender.certificate
            # Messaging, Body and both attachments
            assert len(inbound.references) == 4
            assert [r.digest_value for r in inbound.references] == [
                r.digest_value for r in message.references
            ]


def test_the_second_payload_is_declared_signed_and_encrypted_like_the_first(
    build: Build, receiver: Credential
) -> None:
    with with_package(build) as message:
        parts = wire(message)
    root = xml(parts.soap)
    infos = root.findall(".//eb:PayloadInfo/eb:PartInfo", NSMAP)
    assert len(infos) == 2
    properties = {
        p.get("name"): p.text for p in infos[1].iterfind("eb:PartProperties/eb:Property", NSMAP)
    }
    assert properties == {"MimeType": ASIC_E, "CompressionType": GZIP_MIME}
    cids = [info.get("href") for info in infos]
    assert len(set(cids)) == 2
    # one EncryptedKey listing one EncryptedData per payload
    (encrypted_key,) = root.findall(".//xenc:EncryptedKey", NSMAP)
    data_refs = [
        r.get("URI") for r in encrypted_key.iterfind("xenc:ReferenceList/xenc:DataReference", NSMAP)
    ]
    encrypted = root.findall(".//xenc:EncryptedData", NSMAP)
    assert data_refs == [f"#{e.get('Id')}" for e in encrypted]
    assert [e.find(".//xenc:CipherReference", NSMAP).get("URI") for e in encrypted] == cids  # type: ignore[union-attr]
    signed = [
        (r.get("URI"), r.find("ds:Transforms/ds:Transform", NSMAP).get("Algorithm"))  # type: ignore[union-attr]
        for r in root.iterfind(".//ds:SignedInfo/ds:Reference", NSMAP)
    ]
    assert signed[2:] == [(cid, Algorithm.ATTACHMENT_CONTENT_SIGNATURE.value) for cid in cids]
    # the same key, a fresh IV for each
    key = content_key(parts.soap, receiver)
    sbd_blob, package_blob = parts.parts[1][1], parts.parts[2][1]
    assert sbd_blob[:12] != package_blob[:12]
    assert gzip.decompress(AESGCM(key).decrypt(sbd_blob[:12], sbd_blob[12:], None)) == SBD
    assert gzip.decompress(AESGCM(key).decrypt(package_blob[:12], package_blob[12:], None)) == (
        PACKAGE
    )


def _write_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for at in range(0, size, 1024 * 1024):
            out.write(hashlib.sha256(at.to_bytes(8, "big")).digest() * (1024 * 1024 // 32))


def test_a_large_package_from_a_file_uncompressed(
    build: Build, receive: Callable[..., InboundMessage], tmp_path: Path
) -> None:
    """A CMS-encrypted package (incompressible, so sent as it is) read from a file, through
    spools that spill to disk on both sides."""
    source = tmp_path / "package.cms"
    _write_file(source, 24 * 1024 * 1024)
    small = 1024 * 1024
    with (
        source.open("rb") as package,
        build(
            attachments=[Attachment(package, CMS, compress=False)],
            options=BuildOptions(spool_threshold=small, spool_dir=str(tmp_path)),
        ) as message,
    ):
        wire_file = tmp_path / "request.bin"
        with wire_file.open("wb") as out:
            for chunk in message.iter_chunks():
                out.write(chunk)
        assert message.attachment_sizes == (source.stat().st_size,)
        content_type = message.content_type
        info = message.user_message.parts[1]
        assert info.property_value("MimeType") == CMS
        assert info.property_value("CompressionType") is None
    with (
        wire_file.open("rb") as body,
        receive(
            body,
            content_type,
            options=ReceiveOptions(max_payloads=2, spool_threshold=small, spool_dir=str(tmp_path)),
        ) as inbound,
    ):
        sbd, received = inbound.payloads
        assert sbd.read_bytes() == SBD
        assert received.mime_type == CMS
        assert not received.in_memory
        digest = hashlib.sha256()
        for chunk in received.iter_chunks():
            digest.update(chunk)
        assert digest.digest() == hashlib.sha256(source.read_bytes()).digest()


def test_iterable_and_several_attachments(
    build: Build, receive: Callable[..., InboundMessage]
) -> None:
    chunks = iter([b"first ", b"second ", b"third"])
    with build(
        attachments=[Attachment(chunks, ASIC_E), Attachment(io.BytesIO(b"cms"), CMS, False)]
    ) as message:
        body = message.to_bytes()
    with receive(body, message.content_type, options=ReceiveOptions(max_payloads=3)) as inbound:
        assert [p.read_bytes() for p in inbound.payloads] == [SBD, b"first second third", b"cms"]
        assert [p.mime_type for p in inbound.payloads] == ["application/xml", ASIC_E, CMS]
    # two are not enough for three
    error = refused(receive, body, message.content_type, FeatureNotSupported)
    assert "3 payloads" in error.message


def test_attachment_rejects_a_non_media_type() -> None:
    with pytest.raises(ValueError, match="media type"):
        Attachment(b"x", "asic-e\r\nX-Injected: 1")


# --------------------------------------------------------------------------- refusals


def test_a_second_payload_is_refused_by_default(
    build: Build, receive: Callable[..., InboundMessage]
) -> None:
    with with_package(build) as message:
        body = message.to_bytes()
    error = refused(
        receive, body, message.content_type, FeatureNotSupported, options=ReceiveOptions()
    )
    assert error.ebms_code is EbmsCode.FEATURE_NOT_SUPPORTED
    assert error.ref_to_message_id == message.message_id


def test_a_second_payload_replaced_under_the_same_key(
    build: Build, receive: Callable[..., InboundMessage], receiver: Credential
) -> None:
    """Valid GCM (the attacker knows the content key) but not what was signed: EBMS:0101."""
    with with_package(build) as message:
        parts = wire(message)
    key = content_key(parts.soap, receiver)
    iv = os.urandom(12)
    forged = iv + AESGCM(key).encrypt(iv, gzip.compress(b"PK forged package"), None)
    parts.parts[2] = (parts.parts[2][0], forged)
    error = refused(receive, parts.join(), message.content_type, FailedAuthentication)
    assert error.ebms_code is EbmsCode.FAILED_AUTHENTICATION
    assert error.rule == "as4-attachment-digest"


def test_a_second_payload_with_a_flipped_bit(
    build: Build, receive: Callable[..., InboundMessage]
) -> None:
    with with_package(build) as message:
        parts = wire(message)
    blob = bytearray(parts.parts[2][1])
    blob[40] ^= 0x01
    parts.parts[2] = (parts.parts[2][0], bytes(blob))
    error = refused(receive, parts.join(), message.content_type, FailedDecryption)
    assert error.ebms_code is EbmsCode.FAILED_DECRYPTION


def test_a_second_payload_under_another_key(
    build: Build, receive: Callable[..., InboundMessage]
) -> None:
    """Encrypted with a key the EncryptedKey does not hold: EBMS:0102."""
    with with_package(build) as message:
        parts = wire(message)
    iv = os.urandom(12)
    other = iv + AESGCM(AESGCM.generate_key(128)).encrypt(iv, gzip.compress(PACKAGE), None)
    parts.parts[2] = (parts.parts[2][0], other)
    error = refused(receive, parts.join(), message.content_type, FailedDecryption)
    assert error.ebms_code is EbmsCode.FAILED_DECRYPTION
    assert error.rule == "as4-ciphertext"


def test_wrong_private_key_with_two_payloads(
    build: Build,
    receive: Callable[..., InboundMessage],
    receiver: Credential,
    stranger: Credential,
) -> None:
    with with_package(build) as message:
        body = message.to_bytes()
    mixed = Credential(receiver.certificate, stranger.key, receiver.chain)
    error = refused(receive, body, message.content_type, FailedDecryption, credential=mixed)
    assert error.rule == "as4-key-transport"


def test_a_second_payload_not_encrypted(
    build: Build, receive: Callable[..., InboundMessage], sender: Credential
) -> None:
    """Its EncryptedData and DataReference removed (and the header signed again)."""
    with with_package(build) as message:
        parts = wire(message)

    def mutate(root: etree._Element) -> None:
        security = find(root, "S12:Header/wsse:Security")
        second = security.findall("xenc:EncryptedData", NSMAP)[1]
        reference = security.findall(".//xenc:DataReference", NSMAP)[1]
        reference.getparent().remove(reference)  # type: ignore[union-attr]
        security.remove(second)

    parts.soap = resign(parts.soap, sender, mutate)
    error = refused(receive, parts.join(), message.content_type, As4Error)
    assert error.ebms_code is EbmsCode.POLICY_NONCOMPLIANCE
    assert error.rule == "as4-encryption"


def _zeros(total: int) -> Iterator[bytes]:
    chunk = b"\0" * (1024 * 1024)
    for _ in range(total // len(chunk)):
        yield chunk


def test_gzip_bomb_in_the_second_payload(
    build: Build, receive: Callable[..., InboundMessage]
) -> None:
    with with_package(
        build, _zeros(64 * 1024 * 1024), options=BuildOptions(compression_level=9)
    ) as message:
        body = message.to_bytes()
    assert len(body) < 200_000
    error = refused(
        receive,
        body,
        message.content_type,
        DecompressionFailure,
        options=ReceiveOptions(max_payloads=2, max_payload_bytes=4 * 1024 * 1024),
    )
    assert error.ebms_code is EbmsCode.DECOMPRESSION_FAILURE
    assert error.rule == "as4-gzip-bomb"


def test_the_cap_bounds_the_total(build: Build, receive: Callable[..., InboundMessage]) -> None:
    """Each payload under the cap, both together over it."""
    cap = 3 * 1024 * 1024
    with build(
        b"<a/>" * (cap // 4 - 16), attachments=[Attachment(b"\0" * (cap // 2), ASIC_E)]
    ) as m:
        body = m.to_bytes()
    error = refused(
        receive,
        body,
        m.content_type,
        DecompressionFailure,
        options=ReceiveOptions(max_payloads=2, max_payload_bytes=cap),
    )
    assert error.rule == "as4-gzip-bomb"
    with receive(
        body, m.content_type, options=ReceiveOptions(max_payloads=2, max_payload_bytes=2 * cap)
    ) as inbound:
        assert sum(p.size for p in inbound.payloads) > cap


def test_tampering_outranks_a_bomb_in_an_earlier_payload(
    build: Build, receive: Callable[..., InboundMessage]
) -> None:
    """The SBD inflates past the cap, the package is altered: the answer is the tampering."""
    with build(
        _zeros(64 * 1024 * 1024),
        attachments=[Attachment(PACKAGE, ASIC_E)],
        options=BuildOptions(compression_level=9),
    ) as message:
        parts = wire(message)
    blob = bytearray(parts.parts[2][1])
    blob[-20] ^= 0x01
    parts.parts[2] = (parts.parts[2][0], bytes(blob))
    refused(
        receive,
        parts.join(),
        message.content_type,
        FailedDecryption,
        options=ReceiveOptions(max_payloads=2, max_payload_bytes=4 * 1024 * 1024),
    )


# --------------------------------------------------------------------------- receipts


def test_a_receipt_with_four_references_is_checked(
    build: Build,
    receive: Callable[..., InboundMessage],
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    with with_package(build) as message:
        body = message.to_bytes()
    with receive(body, message.content_type) as inbound:
        references = inbound.references
    assert len(references) == 4
    policy = TrustPolicy(store=ap_trust, pinned=(receiver.certificate,))
    receipt = build_receipt(message.message_id, references, signer=receiver, now=now)
    verified = check_response(
        receipt.body, receipt.content_type, sent=message.sent, policy=policy, at=now
    )
    assert [r.uri for r in verified.signal.receipt_references] == [
        r.uri for r in message.references
    ]
    assert [r.digest_value for r in verified.signal.receipt_references] == [
        r.digest_value for r in message.references
    ]
    # a receipt that leaves out the package proves nothing about it
    partial = build_receipt(message.message_id, references[:3], signer=receiver, now=now)
    with pytest.raises(InvalidReceipt) as caught:
        check_response(partial.body, partial.content_type, sent=message.sent, policy=policy, at=now)
    assert caught.value.rule == "as4-receipt-nri"
    assert references[3].uri in str(caught.value)
