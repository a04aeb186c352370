"""Build → receive → receipt → check, with the development PKI: the whole exchange works, and
what each side ends up with is what the other meant."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
from collections.abc import Callable
from datetime import datetime

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from access_point.as4 import (
    BuildOptions,
    ErrorSignalReceived,
    NotServiced,
    OutboundMessage,
    ReceiveOptions,
    Routing,
    TrustPolicy,
    build_error,
    build_receipt,
    check_response,
    parse_envelope,
    receive_user_message,
)
from access_point.as4.spec import (
    AGREEMENT_TIA_AP_PROVIDER,
    AP_PARTY_TYPE,
    PEPPOL_NOT_SERVICED,
    Algorithm,
    Role,
)
from sbdh.errors import EbmsCode, NoRoute
from sbdh.pki import Credential
from sbdh.trust import TrustStore
from tests.unit.as4.conftest import DOCTYPE, NSMAP, PROCESS, SBD, find, wire, xml


def test_a_built_message_is_received_intact(  # noqa: PLR0917 - fixtures
    build: Callable[..., OutboundMessage],
    receiver: Credential,
    sender: Credential,
    ap_trust: TrustStore,
    routing: Routing,
    now: datetime,
) -> None:
    with build() as message:
        body = message.to_bytes()
        assert len(body) == message.content_length
        with receive_user_message(
            body, message.content_type, credential=receiver, trust=ap_trust, now=now
        ) as inbound:
            assert inbound.payload.read_bytes() == SBD
            assert inbound.message_id == message.message_id
            assert inbound.routing == routing
            assert inbound.signer == sender.certificate
            assert inbound.chain[-1].subject == ap_trust.anchors[0].subject
            assert [r.uri for r in inbound.references] == [r.uri for r in message.references]
            assert [r.digest_value for r in inbound.references] == [
                r.digest_value for r in message.references
            ]


def test_the_header_carries_the_peppol_values(
    build: Callable[..., OutboundMessage], sender: Credential, receiver: Credential
) -> None:
    with build() as message:
        parsed = parse_envelope(wire(message).soap)
    header = parsed.user_message
    assert header is not None
    assert header.message_id.endswith("@budstikke")
    assert (header.from_party.party_id, header.from_party.type, header.from_party.role) == (
        "PNO000001",
        AP_PARTY_TYPE,
        Role.INITIATOR,
    )
    assert (header.to_party.party_id, header.to_party.role) == ("PNO000002", Role.RESPONDER)
    assert header.agreement_ref == AGREEMENT_TIA_AP_PROVIDER
    assert (header.service, header.service_type) == (PROCESS, "cenbii-procid-ubl")
    assert header.action == f"busdox-docid-qns::{DOCTYPE}"
    props = {p.name: (p.value, p.type) for p in header.properties}
    assert props == {
        "originalSender": ("0192:991825827", "iso6523-actorid-upis"),
        "finalRecipient": ("0192:974760673", "iso6523-actorid-upis"),
    }
    (part,) = header.parts
    assert part.href == f"cid:{part.content_id}"
    assert part.property_value("MimeType") == "application/xml"
    assert part.property_value("CompressionType") == "application/gzip"


def test_the_wire_format_follows_phase4_and_oxalis(build: Callable[..., OutboundMessage]) -> None:
    with build() as message:
        parts = wire(message)
    assert 'type="application/soap+xml"' in message.content_type
    soap_head, attachment_head = (head.decode() for head, _ in parts.parts)
    assert "Content-Type: application/soap+xml; charset=UTF-8" in soap_head
    assert "Content-Type: application/octet-stream" in attachment_head
    assert "Content-Transfer-Encoding: binary" in attachment_head
    cid = message.user_message.parts[0].content_id
    assert f"Content-ID: <{cid}>" in attachment_head
    root = xml(parts.soap)
    security = find(root, "S12:Header/wsse:Security")
    assert security.get(f"{{{NSMAP['S12']}}}mustUnderstand") == "true"
    assert find(root, "S12:Header/eb:Messaging").get(f"{{{NSMAP['S12']}}}mustUnderstand") == "true"
    children = [etree.QName(c).localname for c in security]
    assert children == [
        "BinarySecurityToken",
        "EncryptedKey",
        "EncryptedData",
        "BinarySecurityToken",
        "Signature",
    ]
    method = find(security, "xenc:EncryptedKey/xenc:EncryptionMethod")
    assert method.get("Algorithm") == Algorithm.RSA_OAEP
    assert {c.get("Algorithm") for c in method} == {Algorithm.SHA256, Algorithm.MGF1_SHA256}
    data = find(security, "xenc:EncryptedData")
    assert data.get("Type") == Algorithm.ATTACHMENT_CONTENT_ONLY
    assert find(data, "xenc:EncryptionMethod").get("Algorithm") == Algorithm.AES128_GCM
    assert find(data, "xenc:CipherData/xenc:CipherReference").get("URI") == f"cid:{cid}"
    refs = security.findall("ds:Signature/ds:SignedInfo/ds:Reference", NSMAP)
    assert [r.get("URI", "")[:4] for r in refs] == ["#msg", "#bod", "cid:"]
    # the attachment is IV ‖ ciphertext ‖ tag: 12 + (gzip size) + 16
    assert len(parts.attachment) > 28
    assert find(root, "S12:Body").text is None
    assert len(find(root, "S12:Body")) == 0


def test_a_file_payload_is_streamed_through(
    build: Callable[..., OutboundMessage], receiver: Credential, ap_trust: TrustStore, now: datetime
) -> None:
    big = SBD.replace(b"<ID>\xc3\x86-1</ID>", b"<ID>" + b"x" * 3_000_000 + b"</ID>")
    options = BuildOptions(spool_threshold=64 * 1024, chunk_size=64 * 1024)
    with build(io.BytesIO(big), options=options) as message:
        spooled = io.BytesIO()
        for chunk in message.iter_chunks(64 * 1024):
            spooled.write(chunk)
        assert spooled.tell() == message.content_length
        with receive_user_message(
            spooled,
            message.content_type,
            credential=receiver,
            trust=ap_trust,
            now=now,
            options=ReceiveOptions(spool_threshold=64 * 1024, chunk_size=64 * 1024),
        ) as inbound:
            assert not inbound.payload.in_memory
            assert inbound.payload.size == len(big)
            assert b"".join(inbound.payload.iter_chunks(100_000)) == big


def test_receipt_round_trip_proves_delivery(
    build: Callable[..., OutboundMessage],
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    with (
        build() as message,
        receive_user_message(
            message.to_bytes(), message.content_type, credential=receiver, trust=ap_trust, now=now
        ) as inbound,
    ):
        receipt = build_receipt(inbound.message_id, inbound.references, signer=receiver, now=now)
    verified = check_response(
        receipt.body,
        receipt.content_type,
        sent=message.sent,
        policy=TrustPolicy(store=ap_trust, pinned=(receiver.certificate,)),
        at=now,
    )
    assert verified.signed
    assert verified.trust.trusted
    assert verified.signer == receiver.certificate
    assert verified.signal.ref_to_message_id == message.message_id
    assert [r.uri for r in verified.signal.receipt_references] == [
        r.uri for r in message.references
    ]
    # the NRI holds the request's ds:Reference elements verbatim
    root = xml(receipt.body)
    nri = root.findall(".//{*}MessagePartNRInformation/ds:Reference", NSMAP)
    assert [etree.tostring(r, method="c14n", exclusive=True) for r in nri] == [
        r.xml for r in inbound.references
    ]


def test_not_serviced_is_answered_with_peppol_not_serviced(
    build: Callable[..., OutboundMessage],
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    asked: list[Routing] = []

    def serves(routing: Routing) -> bool:
        asked.append(routing)
        return False

    with build() as message, pytest.raises(NotServiced) as refused:
        receive_user_message(
            message.to_bytes(),
            message.content_type,
            credential=receiver,
            trust=ap_trust,
            now=now,
            serves=serves,
        )
    assert asked
    assert asked[0].receiver.value == "0192:974760673"
    error = refused.value
    assert isinstance(error, NoRoute)
    assert error.ebms_code is EbmsCode.OTHER
    assert error.ref_to_message_id == message.message_id
    signal = build_error(error, signer=receiver, now=now)
    root = xml(signal.body)
    eb_error = find(root, ".//eb:Error")
    assert eb_error.get("errorCode") == "EBMS:0004"
    assert eb_error.get("severity") == "failure"
    assert eb_error.get("refToMessageInError") == message.message_id
    assert eb_error.findtext("eb:ErrorDetail", None, NSMAP) == PEPPOL_NOT_SERVICED
    assert eb_error.findtext("eb:Description", None, NSMAP) == PEPPOL_NOT_SERVICED
    # and the sender sees a failed send that names the reason
    with pytest.raises(ErrorSignalReceived) as failed:
        check_response(
            signal.body,
            signal.content_type,
            sent=message.sent,
            policy=TrustPolicy(store=ap_trust),
            at=now,
        )
    assert failed.value.errors[0].detail == PEPPOL_NOT_SERVICED
    assert "EBMS:0004" in failed.value.reason
    assert PEPPOL_NOT_SERVICED in failed.value.reason


def test_the_attachment_layout_is_iv_ciphertext_tag_of_a_gzip_stream(
    build: Callable[..., OutboundMessage], receiver: Credential
) -> None:
    """Decrypt by hand, with nothing of the core: RSA-OAEP(SHA-256) key, 12-byte IV first,
    16-byte tag last, plaintext a gzip stream whose SHA-256 the signature carries."""
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    wrapped = base64.b64decode(
        find(root, ".//xenc:EncryptedKey/xenc:CipherData/xenc:CipherValue").text or ""
    )
    key = receiver.key.decrypt(
        wrapped,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    assert len(key) == 16
    blob = parts.attachment
    plain = AESGCM(key).decrypt(blob[:12], blob[12:], None)
    assert gzip.decompress(plain) == SBD
    cid_ref = root.findall(".//ds:SignedInfo/ds:Reference", NSMAP)[-1]
    digest = base64.b64decode(cid_ref.findtext("ds:DigestValue", "", NSMAP))
    assert digest == hashlib.sha256(plain).digest()
