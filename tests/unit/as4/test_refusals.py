"""Every way a UserMessage is refused, with the ebMS error it is answered with."""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from access_point.as4 import (
    As4Error,
    BuildOptions,
    DecompressionFailure,
    ExternalPayloadError,
    FailedAuthentication,
    FailedDecryption,
    FeatureNotSupported,
    InvalidHeader,
    MimeInconsistency,
    OutboundMessage,
    PolicyNoncompliance,
    ReceiveOptions,
    UntrustedSender,
    ValueInconsistent,
    ValueNotRecognized,
    build_error,
    receive_user_message,
)
from sbdh.errors import EbmsCode, SignatureError, UntrustedSigner
from sbdh.pki import Credential, DevPki, generate_root_ca, issue_end_entity, issue_intermediate_ca
from sbdh.trust import TrustStore
from tests.unit.as4.conftest import EB, NSMAP, S12, WSU, Wire, find, resign, wire, xml

Build = Callable[..., OutboundMessage]


@pytest.fixture
def receive(receiver: Credential, ap_trust: TrustStore, now: datetime) -> Callable[..., object]:
    def call(body: bytes, content_type: str, **kwargs: object) -> object:
        args: dict[str, object] = {"credential": receiver, "trust": ap_trust, "now": now}
        args.update(kwargs)
        inbound = receive_user_message(body, content_type, **args)  # type: ignore[arg-type]
        inbound.close()
        return inbound

    return call


def refused(
    receive: Callable[..., object],
    body: bytes,
    content_type: str,
    kind: type[As4Error],
    **kw: object,
) -> As4Error:
    with pytest.raises(kind) as caught:
        receive(body, content_type, **kw)
    return caught.value


# --------------------------------------------------------------------------- MIME


def test_empty_body(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        error = refused(receive, b"", message.content_type, MimeInconsistency)
    assert error.ebms_code is EbmsCode.MIME_INCONSISTENCY


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/json; charset=utf-8",
        "multipart/mixed; boundary=x",
        "garbage",
    ],
)
def test_wrong_content_type(
    receive: Callable[..., object], build: Build, content_type: str | None
) -> None:
    with build() as message:
        refused(receive, message.to_bytes(), content_type, MimeInconsistency)  # type: ignore[arg-type]


def test_multipart_of_another_root_type(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        body = message.to_bytes()
        ctype = message.content_type.replace("application/soap+xml", "text/xml")
    refused(receive, body, ctype, MimeInconsistency)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda b, bd: b[: b.rindex(b"--" + bd.encode() + b"--")], id="no-close"),
        pytest.param(lambda b, bd: b.replace(bd.encode(), b"other-boundary"), id="boundary-absent"),
        pytest.param(
            lambda b, bd: b.replace(
                b"Content-Transfer-Encoding: binary", b"Content Transfer: x", 1
            ),
            id="bad-header-line",
        ),
        pytest.param(
            lambda b, bd: b.replace(
                b"Content-Transfer-Encoding: binary", b"Content-Transfer-Encoding: x-uu", 1
            ),
            id="unknown-encoding",
        ),
        pytest.param(lambda b, bd: b.split(b"\r\n\r\n", 1)[0], id="headers-never-end"),
    ],
)
def test_malformed_mime(
    receive: Callable[..., object], build: Build, mangle: Callable[[bytes, str], bytes]
) -> None:
    with build() as message:
        parts = wire(message)
        body = mangle(message.to_bytes(), parts.boundary)
    refused(receive, body, message.content_type, MimeInconsistency)


def test_start_parameter_naming_no_part(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        ctype = message.content_type.replace('start="<soap-', 'start="<nothing-')
        refused(receive, message.to_bytes(), ctype, MimeInconsistency)


def test_missing_attachment_part(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    del parts.parts[1]
    error = refused(receive, parts.join(), message.content_type, ExternalPayloadError)
    assert error.ebms_code is EbmsCode.EXTERNAL_PAYLOAD_ERROR
    assert error.ref_to_message_id == message.message_id


def test_stray_attachment_part(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    parts.parts.append(
        (b"Content-Type: application/octet-stream\r\nContent-ID: <extra@x>", b"junk")
    )
    refused(receive, parts.join(), message.content_type, MimeInconsistency)


def test_duplicate_content_ids(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    parts.parts.append(parts.parts[1])
    refused(receive, parts.join(), message.content_type, MimeInconsistency)


# --------------------------------------------------------------------------- SOAP and ebMS


def test_soap_part_not_xml(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    parts.soap = b"<S12:Envelope"
    error = refused(receive, parts.join(), message.content_type, InvalidHeader)
    assert error.ebms_code is EbmsCode.INVALID_HEADER


def test_entity_expansion_is_refused_before_expansion(
    receive: Callable[..., object], build: Build
) -> None:
    with build() as message:
        parts = wire(message)
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    )
    parts.soap = bomb + parts.soap.split(b"?>", 1)[1].replace(b"PNO000001", b"&b;", 1)
    error = refused(receive, parts.join(), message.content_type, PolicyNoncompliance)
    assert error.ebms_code is EbmsCode.POLICY_NONCOMPLIANCE
    assert error.rule == "xml-dtd"


def test_two_user_messages(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    messaging = find(root, "S12:Header/eb:Messaging")
    messaging.append(copy.deepcopy(find(messaging, "eb:UserMessage")))
    parts.soap = etree.tostring(root)
    error = refused(receive, parts.join(), message.content_type, FeatureNotSupported)
    assert error.ebms_code is EbmsCode.FEATURE_NOT_SUPPORTED
    assert error.ref_to_message_id == message.message_id


def test_user_message_bundled_with_a_signal(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    messaging = find(root, "S12:Header/eb:Messaging")
    etree.SubElement(messaging, f"{{{EB}}}SignalMessage")
    parts.soap = etree.tostring(root)
    refused(receive, parts.join(), message.content_type, FeatureNotSupported)


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("eb:MessageInfo/eb:MessageId", "MessageId"),
        ("eb:PartyInfo/eb:From/eb:PartyId", "PartyId"),
        ("eb:CollaborationInfo/eb:Action", "Action"),
        ("eb:MessageInfo/eb:Timestamp", "Timestamp"),
    ],
)
def test_missing_or_empty_header_values(
    receive: Callable[..., object], build: Build, path: str, what: str
) -> None:
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    find(root, f"S12:Header/eb:Messaging/eb:UserMessage/{path}").text = ""
    parts.soap = etree.tostring(root)
    error = refused(receive, parts.join(), message.content_type, InvalidHeader)
    assert what in error.message


def test_second_messaging_hidden_in_the_body(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    find(root, "S12:Body").append(copy.deepcopy(find(root, "S12:Header/eb:Messaging")))
    parts.soap = etree.tostring(root)
    refused(receive, parts.join(), message.content_type, InvalidHeader)


def test_unknown_must_understand_header(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    block = etree.SubElement(find(root, "S12:Header"), "{urn:x}Routing")
    block.set(f"{{{S12}}}mustUnderstand", "true")
    parts.soap = etree.tostring(root)
    refused(receive, parts.join(), message.content_type, InvalidHeader)


# --------------------------------------------------------------------------- signature


def test_unsigned_message(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    header = find(root, "S12:Header")
    header.remove(find(header, "wsse:Security"))
    parts.soap = etree.tostring(root)
    error = refused(receive, parts.join(), message.content_type, PolicyNoncompliance)
    assert error.rule == "as4-security-header"


def test_tampered_header(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    parts.soap = parts.soap.replace(b"0192:974760673", b"0192:910075918")
    error = refused(receive, parts.join(), message.content_type, FailedAuthentication)
    assert isinstance(error, SignatureError)
    assert error.ebms_code is EbmsCode.FAILED_AUTHENTICATION
    assert error.rule == "as4-digest-mismatch"


def test_tampered_signed_info(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    value = find(root, ".//ds:SignedInfo/ds:Reference/ds:DigestValue")
    value.text = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    parts.soap = etree.tostring(root)
    error = refused(receive, parts.join(), message.content_type, FailedAuthentication)
    assert error.rule == "as4-signature-invalid"


def test_tampered_attachment(receive: Callable[..., object], build: Build) -> None:
    with build() as message:
        parts = wire(message)
    blob = bytearray(parts.attachment)
    blob[40] ^= 0x01
    parts.attachment = bytes(blob)
    error = refused(receive, parts.join(), message.content_type, FailedDecryption)
    assert error.ebms_code is EbmsCode.FAILED_DECRYPTION


def test_attachment_replaced_under_the_same_key(
    receive: Callable[..., object], build: Build, receiver: Credential
) -> None:
    """Valid GCM (the attacker knows the content key) but not what was signed: EBMS:0101."""
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    wrapped = base64.b64decode(find(root, ".//xenc:EncryptedKey//xenc:CipherValue").text or "")
    key = receiver.key.decrypt(
        wrapped,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    iv = os.urandom(12)
    parts.attachment = iv + AESGCM(key).encrypt(iv, gzip.compress(b"<forged/>"), None)
    error = refused(receive, parts.join(), message.content_type, FailedAuthentication)
    assert error.rule == "as4-attachment-digest"


def test_duplicated_wsu_id(receive: Callable[..., object], build: Build) -> None:
    """The signed header's id on a second element too: which one a resolver picks is the
    attacker's game, so the message is refused before any digest is computed."""
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    messaging = find(root, "S12:Header/eb:Messaging")
    holder = etree.SubElement(find(root, "S12:Header/wsse:Security"), "{urn:x}Holder")
    holder.set(f"{{{WSU}}}Id", messaging.get(f"{{{WSU}}}Id", ""))
    parts.soap = etree.tostring(root)
    error = refused(receive, parts.join(), message.content_type, FailedAuthentication)
    assert error.rule == "as4-duplicate-id"


def test_signed_header_moved_and_replaced(receive: Callable[..., object], build: Build) -> None:
    """The signed eb:Messaging parked in another header block, a forged one in its place."""
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    header = find(root, "S12:Header")
    original = find(header, "eb:Messaging")
    forged = copy.deepcopy(original)
    find(forged, ".//eb:ConversationId").text = "forged"
    forged.set(f"{{{WSU}}}Id", "msg-forged")
    wrapper = etree.SubElement(header, "{urn:x}Wrapper")
    header.remove(original)
    wrapper.append(original)
    header.insert(0, forged)
    parts.soap = etree.tostring(root)
    refused(receive, parts.join(), message.content_type, InvalidHeader)


def test_reference_to_something_other_than_messaging_or_body(
    receive: Callable[..., object], build: Build, sender: Credential
) -> None:
    """Wrapping: the signature covers a harmless element carrying an id, not the header."""
    with build() as message:
        parts = wire(message)

    def cover(root: etree._Element) -> list[tuple[str, etree._Element]]:
        body = find(root, "S12:Body")
        token = find(root, "S12:Header/wsse:Security/wsse:BinarySecurityToken")
        messaging = find(root, "S12:Header/eb:Messaging")
        # the Messaging's id is moved to the token: the reference resolves, to the wrong element
        wid = messaging.attrib.pop(f"{{{WSU}}}Id")
        token.set(f"{{{WSU}}}Id", wid)
        return [(wid, token), (body.get(f"{{{WSU}}}Id", ""), body)]

    parts.soap = resign(parts.soap, sender, cover=cover)
    error = refused(receive, parts.join(), message.content_type, FailedAuthentication)
    assert error.rule == "as4-signature-wrapping"


def test_signature_that_does_not_cover_the_body(
    receive: Callable[..., object], build: Build, sender: Credential
) -> None:
    with build() as message:
        parts = wire(message)

    def cover(root: etree._Element) -> list[tuple[str, etree._Element]]:
        messaging = find(root, "S12:Header/eb:Messaging")
        return [(messaging.get(f"{{{WSU}}}Id", ""), messaging)]

    parts.soap = resign(parts.soap, sender, cover=cover)
    error = refused(receive, parts.join(), message.content_type, PolicyNoncompliance)
    assert error.rule == "as4-signature-coverage"


@pytest.mark.parametrize(
    ("path", "algorithm"),
    [
        (".//ds:SignedInfo/ds:SignatureMethod", "http://www.w3.org/2000/09/xmldsig#rsa-sha1"),
        (
            ".//ds:SignedInfo/ds:CanonicalizationMethod",
            "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        ),
        (".//ds:SignedInfo/ds:Reference/ds:DigestMethod", "http://www.w3.org/2000/09/xmldsig#sha1"),
        (
            ".//ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform",
            "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        ),
    ],
)
def test_algorithms_outside_the_profile(
    receive: Callable[..., object], build: Build, path: str, algorithm: str
) -> None:
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    find(root, path).set("Algorithm", algorithm)
    parts.soap = etree.tostring(root)
    error = refused(receive, parts.join(), message.content_type, PolicyNoncompliance)
    assert error.ebms_code is EbmsCode.POLICY_NONCOMPLIANCE


def test_untrusted_signer(receive: Callable[..., object], build: Build, now: datetime) -> None:
    other_root = generate_root_ca("Somebody Else Root", now=now, key_size=2048)
    with build() as message:
        error = refused(
            receive,
            message.to_bytes(),
            message.content_type,
            UntrustedSender,
            trust=TrustStore((other_root.certificate,)),
        )
    assert isinstance(error, UntrustedSigner)
    assert error.ebms_code is EbmsCode.FAILED_AUTHENTICATION
    assert error.rule == "chain-incomplete"


@pytest.mark.parametrize("first_verify_now", [True, False], ids=["path-cached", "path-fresh"])
def test_expired_signer(
    receive: Callable[..., object],
    build: Build,
    dev_pki: DevPki,
    now: datetime,
    first_verify_now: bool,
) -> None:
    # a fresh trust store object per case, so the path cache starts empty for "path-fresh"
    trust = TrustStore((dev_pki.root.certificate,), (dev_pki.ap_ca.certificate,))
    with build() as message:
        body = message.to_bytes()
        if first_verify_now:
            receive(body, message.content_type, trust=trust)
        error = refused(
            receive,
            body,
            message.content_type,
            UntrustedSender,
            trust=trust,
            now=now + timedelta(days=400),
        )
    assert error.rule == "cert-expired"


def test_signer_not_named_by_the_from_party(
    receive: Callable[..., object], build: Build, stranger: Credential
) -> None:
    """Signed by a trusted AP, but not the one the header says sent it."""
    with build() as message:
        parts = wire(message)
    parts.soap = resign(parts.soap, stranger)
    error = refused(receive, parts.join(), message.content_type, FailedAuthentication)
    assert error.rule == "as4-signer-party"
    assert "PNO000003" in error.message


def test_signer_from_another_hierarchy(
    receive: Callable[..., object], build: Build, now: datetime
) -> None:
    """An impostor certificate with the right CN from a CA we do not trust."""
    rogue_root = generate_root_ca("Rogue Root", now=now, key_size=2048)
    rogue_ca = issue_intermediate_ca(rogue_root, "Rogue AP CA", now=now, key_size=2048)
    impostor = issue_end_entity(rogue_ca, "PNO000001", now=now)
    with build() as message:
        parts = wire(message)
    parts.soap = resign(parts.soap, impostor)
    error = refused(receive, parts.join(), message.content_type, UntrustedSender)
    assert error.rule == "chain-incomplete"


# --------------------------------------------------------------------------- Peppol header


def _resigned_with(
    build: Build, sender: Credential, mutate: Callable[[etree._Element], None]
) -> tuple[OutboundMessage, bytes]:
    with build() as message:
        parts = wire(message)
    parts.soap = resign(parts.soap, sender, mutate)
    return message, parts.join()


@pytest.mark.parametrize(
    ("path", "value", "kind"),
    [
        ("eb:CollaborationInfo/eb:AgreementRef", "urn:other:agreement", ValueNotRecognized),
        ("eb:PartyInfo/eb:To/eb:Role", "urn:other:role", ValueNotRecognized),
        ("eb:CollaborationInfo/eb:Action", "no-scheme-here", ValueNotRecognized),
        ("eb:PartyInfo/eb:To/eb:PartyId", "PNO000009", ValueInconsistent),
    ],
)
def test_peppol_header_values(  # noqa: PLR0917 - fixtures
    receive: Callable[..., object],
    build: Build,
    sender: Credential,
    path: str,
    value: str,
    kind: type[As4Error],
) -> None:
    def mutate(root: etree._Element) -> None:
        find(root, f"S12:Header/eb:Messaging/eb:UserMessage/{path}").text = value

    message, body = _resigned_with(build, sender, mutate)
    error = refused(receive, body, message.content_type, kind)
    assert error.ref_to_message_id == message.message_id


def test_wrong_party_id_type(
    receive: Callable[..., object], build: Build, sender: Credential
) -> None:
    def mutate(root: etree._Element) -> None:
        find(root, ".//eb:From/eb:PartyId").set(
            "type", "urn:oasis:names:tc:ebcore:partyid-type:unregistered"
        )

    message, body = _resigned_with(build, sender, mutate)
    error = refused(receive, body, message.content_type, ValueNotRecognized)
    assert error.rule == "peppol-party"


def test_missing_final_recipient(
    receive: Callable[..., object], build: Build, sender: Credential
) -> None:
    def mutate(root: etree._Element) -> None:
        props = find(root, ".//eb:MessageProperties")
        for prop in props.findall("eb:Property", NSMAP):
            if prop.get("name") == "finalRecipient":
                props.remove(prop)

    message, body = _resigned_with(build, sender, mutate)
    error = refused(receive, body, message.content_type, InvalidHeader)
    assert "finalRecipient" in error.message


def test_body_payload_is_not_supported(
    receive: Callable[..., object], build: Build, sender: Credential
) -> None:
    def mutate(root: etree._Element) -> None:
        etree.SubElement(find(root, "S12:Body"), "{urn:x}Invoice")

    message, body = _resigned_with(build, sender, mutate)
    refused(receive, body, message.content_type, FeatureNotSupported)


def test_two_payloads_are_not_supported(
    receive: Callable[..., object], build: Build, sender: Credential
) -> None:
    def mutate(root: etree._Element) -> None:
        info = find(root, ".//eb:PayloadInfo")
        info.append(copy.deepcopy(find(info, "eb:PartInfo")))

    message, body = _resigned_with(build, sender, mutate)
    refused(receive, body, message.content_type, FeatureNotSupported)


# --------------------------------------------------------------------------- decryption


def test_message_for_another_access_point(
    receive: Callable[..., object], build: Build, stranger: Credential
) -> None:
    with build() as message:
        body = message.to_bytes()
    # addressed (To) to PNO000002, so the header check refuses first ...
    refused(receive, body, message.content_type, ValueInconsistent, credential=stranger)
    # ... and without it the key names another certificate
    error = refused(
        receive,
        body,
        message.content_type,
        FailedDecryption,
        credential=stranger,
        options=ReceiveOptions(check_to_party=False),
    )
    assert error.rule == "as4-key-recipient"


def test_wrong_private_key(
    receive: Callable[..., object], build: Build, receiver: Credential, stranger: Credential
) -> None:
    """Our certificate, somebody else's key: the key cannot be unwrapped."""
    with build() as message:
        body = message.to_bytes()
    mixed = Credential(receiver.certificate, stranger.key, receiver.chain)
    error = refused(receive, body, message.content_type, FailedDecryption, credential=mixed)
    assert error.rule == "as4-key-transport"


def test_unencrypted_payload(
    receive: Callable[..., object], build: Build, sender: Credential
) -> None:
    def mutate(root: etree._Element) -> None:
        security = find(root, "S12:Header/wsse:Security")
        security.remove(find(security, "xenc:EncryptedKey"))

    message, body = _resigned_with(build, sender, mutate)
    error = refused(receive, body, message.content_type, PolicyNoncompliance)
    assert error.rule == "as4-encryption"


def _zeros(total: int) -> Iterator[bytes]:
    chunk = b"\0" * (1024 * 1024)
    for _ in range(total // len(chunk)):
        yield chunk


def test_gzip_bomb(receive: Callable[..., object], build: Build) -> None:
    with build(_zeros(64 * 1024 * 1024), options=BuildOptions(compression_level=9)) as message:
        body = message.to_bytes()
    assert len(body) < 200_000  # 64 MiB of zeros deflates to ~64 KiB
    error = refused(
        receive,
        body,
        message.content_type,
        DecompressionFailure,
        options=ReceiveOptions(max_payload_bytes=4 * 1024 * 1024),
    )
    assert error.ebms_code is EbmsCode.DECOMPRESSION_FAILURE
    assert error.rule == "as4-gzip-bomb"


def test_corrupt_gzip(
    receive: Callable[..., object], build: Build, sender: Credential, receiver: Credential
) -> None:
    """Signed and encrypted correctly, but what was signed is not gzip: EBMS:0303."""
    with build() as message:
        parts = wire(message)
    root = xml(parts.soap)
    wrapped = base64.b64decode(find(root, ".//xenc:EncryptedKey//xenc:CipherValue").text or "")
    key = receiver.key.decrypt(
        wrapped,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    not_gzip = b"this is not a gzip stream"
    iv = os.urandom(12)
    parts.attachment = iv + AESGCM(key).encrypt(iv, not_gzip, None)
    cid_ref = root.findall(".//ds:SignedInfo/ds:Reference", NSMAP)[-1]
    cid_ref.find("ds:DigestValue", NSMAP).text = base64.b64encode(  # type: ignore[union-attr]
        hashlib.sha256(not_gzip).digest()
    ).decode()
    parts.soap = etree.tostring(root)
    parts.soap = resign(parts.soap, sender)
    error = refused(receive, parts.join(), message.content_type, DecompressionFailure)
    assert error.rule == "as4-gzip"


def test_refusals_become_signed_error_signals(
    receive: Callable[..., object], build: Build, receiver: Credential, now: datetime
) -> None:
    with build() as message:
        parts = wire(message)
    parts.soap = parts.soap.replace(b"0192:974760673", b"0192:910075918")
    error = refused(receive, parts.join(), message.content_type, FailedAuthentication)
    signal = build_error(error, signer=receiver, now=now)
    root = xml(signal.body)
    eb_error = find(root, ".//eb:Error")
    assert eb_error.attrib["errorCode"] == "EBMS:0101"
    assert eb_error.attrib["shortDescription"] == "FailedAuthentication"
    assert eb_error.attrib["category"] == "Processing"
    assert eb_error.attrib["refToMessageInError"] == message.message_id
    assert find(root, ".//eb:RefToMessageId").text == message.message_id
    assert root.find(".//ds:Signature", NSMAP) is not None


def _key_reference(issuer_serial: Credential | None = None, ski: Credential | None = None) -> str:
    ds, wsse = NSMAP["ds"], NSMAP["wsse"]
    if issuer_serial is not None:
        cert = issuer_serial.certificate
        return (
            f'<wsse:SecurityTokenReference xmlns:wsse="{wsse}" xmlns:ds="{ds}"><ds:X509Data>'
            f"<ds:X509IssuerSerial><ds:X509IssuerName>{cert.issuer.rfc4514_string()}"
            f"</ds:X509IssuerName><ds:X509SerialNumber>{cert.serial_number}"
            "</ds:X509SerialNumber></ds:X509IssuerSerial></ds:X509Data>"
            "</wsse:SecurityTokenReference>"
        )
    assert ski is not None
    value = base64.b64encode(
        ski.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    ).decode()
    return (
        f'<wsse:SecurityTokenReference xmlns:wsse="{wsse}"><wsse:KeyIdentifier '
        'EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-'
        'security-1.0#Base64Binary" ValueType="http://docs.oasis-open.org/wss/2004/01/oasis-'
        f'200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier">{value}</wsse:KeyIdentifier>'
        "</wsse:SecurityTokenReference>"
    )


@pytest.mark.parametrize("form", ["issuer-serial", "ski"])
def test_key_identified_the_wss4j_ways(
    receive: Callable[..., object],
    build: Build,
    receiver: Credential,
    stranger: Credential,
    form: str,
) -> None:
    """WSS4J senders name the key's certificate by issuer and serial or by SKI, not by token:
    ours is accepted, another certificate is refused before any decryption is tried."""
    with build() as message:
        parts = wire(message)

    def with_reference(credential: Credential) -> bytes:
        root = xml(parts.soap)
        key_info = find(root, ".//xenc:EncryptedKey/ds:KeyInfo")
        key_info.remove(key_info[0])
        kwargs = {"issuer_serial": credential} if form == "issuer-serial" else {"ski": credential}
        key_info.append(etree.fromstring(_key_reference(**kwargs)))
        variant = Wire(parts.join(), message.content_type)
        variant.soap = etree.tostring(root)
        return variant.join()

    receive(with_reference(receiver), message.content_type)
    error = refused(receive, with_reference(stranger), message.content_type, FailedDecryption)
    assert error.rule == "as4-key-recipient"
