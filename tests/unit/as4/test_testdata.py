"""Real AS4 messages from other implementations (phase4, Governikus, Holodeck B2B)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from access_point.as4 import (
    FailedAuthentication,
    FeatureNotSupported,
    InvalidHeader,
    TrustPolicy,
    parse_envelope,
    read_signal,
    receive_user_message,
)
from access_point.as4.errors import As4Error
from sbdh.errors import EbmsCode
from sbdh.pki import Credential
from sbdh.trust import TrustStore

pytestmark = pytest.mark.testdata

#: receipts that must verify: file, signer CN, the day they were captured
GOOD_RECEIPTS = [
    ("phase4_governikus.as4in", "POP000260", datetime(2022, 3, 7, 17, 42, tzinfo=UTC)),
    ("phase4_helger.as4in", "POP000306", datetime(2022, 3, 7, 17, 36, tzinfo=UTC)),
    (
        "phase4_dataport1-mustunderstand.as4in",
        "PDE000357",
        datetime(2022, 3, 7, 16, 36, tzinfo=UTC),
    ),
]


def http_capture(path: Path) -> tuple[str | None, bytes]:
    """The Content-Type and the body of a captured HTTP response."""
    raw = path.read_bytes()
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, sep, body = raw.partition(separator)
        if sep:
            break
    content_type = None
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-type":
            content_type = value.strip()
    return content_type, body


@pytest.mark.parametrize(("name", "cn", "captured"), GOOD_RECEIPTS)
def test_captured_receipts_verify(testdata: Path, name: str, cn: str, captured: datetime) -> None:
    content_type, body = http_capture(testdata / "as4/receipts" / name)
    verified = read_signal(body, content_type, policy=TrustPolicy(required=False), at=captured)
    assert verified.signed
    assert verified.signer is not None
    assert verified.signer.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == cn
    # integrity holds, but nothing we trust vouches for these test-PKI certificates
    assert not verified.trust.trusted
    assert verified.signal.is_receipt
    assert verified.signal.ref_to_message_id
    assert len(verified.signal.receipt_references) >= 2
    assert all(r.digest_value for r in verified.signal.receipt_references)


@pytest.mark.parametrize(("name", "cn", "captured"), GOOD_RECEIPTS)
def test_captured_receipts_at_a_pinned_time(
    testdata: Path, name: str, cn: str, captured: datetime
) -> None:
    """Pinning the peer's certificate (as from its SMP entry): trusted when the receipt was
    made, refused today, when that certificate has long expired."""
    content_type, body = http_capture(testdata / "as4/receipts" / name)
    signer = read_signal(body, content_type, policy=TrustPolicy(required=False), at=captured).signer
    assert signer is not None
    pinned = TrustPolicy(pinned=(signer,))
    then = read_signal(body, content_type, policy=pinned, at=captured)
    assert then.trust.trusted
    with pytest.raises(FailedAuthentication) as refused:
        read_signal(body, content_type, policy=pinned, at=datetime(2026, 1, 1, tzinfo=UTC))
    assert "expired" in refused.value.message


def test_receipt_signed_by_another_than_pinned_is_refused(testdata: Path) -> None:
    gov_type, gov = http_capture(testdata / "as4/receipts/phase4_governikus.as4in")
    hel_type, hel = http_capture(testdata / "as4/receipts/phase4_helger.as4in")
    at = datetime(2022, 3, 7, tzinfo=UTC)
    helger = read_signal(hel, hel_type, policy=TrustPolicy(required=False), at=at).signer
    assert helger is not None
    with pytest.raises(FailedAuthentication):
        read_signal(gov, gov_type, policy=TrustPolicy(pinned=(helger,)), at=at)


def test_receipt_chain_is_checked_against_our_anchors(testdata: Path, trust: TrustStore) -> None:
    content_type, body = http_capture(testdata / "as4/receipts/phase4_helger.as4in")
    at = datetime(2022, 3, 7, tzinfo=UTC)
    verdict = read_signal(
        body, content_type, policy=TrustPolicy(store=trust, required=False), at=at
    )
    assert not verdict.trust.trusted
    assert verdict.trust.problem is not None
    assert "chain-incomplete" in verdict.trust.problem


def test_the_broken_dataport_capture_is_rejected(testdata: Path) -> None:
    """Holodeck rewrote the mustUnderstand prefix after signing: the Messaging digest fails."""
    content_type, body = http_capture(testdata / "as4/receipts/phase4_dataport1.as4in")
    with pytest.raises(FailedAuthentication) as refused:
        read_signal(
            body,
            content_type,
            policy=TrustPolicy(required=False),
            at=datetime(2022, 3, 7, tzinfo=UTC),
        )
    assert refused.value.rule == "as4-digest-mismatch"
    assert "Messaging" in refused.value.message


def test_phase4_test_receipt_verifies(testdata: Path) -> None:
    body = (testdata / "as4/soap/phase4_TestReceipt12.xml").read_bytes()
    verified = read_signal(
        body,
        "application/soap+xml",
        policy=TrustPolicy(required=False),
        at=datetime(2025, 12, 5, 15, tzinfo=UTC),
    )
    assert verified.signed
    uris = [r.uri for r in verified.signal.receipt_references]
    assert len(uris) == 3
    assert uris[2].startswith("cid:")


def test_soap_user_message_parses(testdata: Path) -> None:
    parsed = parse_envelope((testdata / "as4/soap/phase4_UserMessage12.xml").read_bytes())
    header = parsed.user_message
    assert header is not None
    assert header.message_id == "2011-921@5209999001264.example.com"
    assert header.from_party.party_id == "5209999001264"
    assert header.to_party.role == "Buyer"
    assert header.service == "http://docs.oasis-open.org/ebxml-msg/as4/200902/service"
    assert header.conversation_id == "2011-921"
    assert header.parts[0].href == "#_f8aa8b55-b31c-4364-94d0-3615ca65aa40"
    assert header.timestamp == datetime(2011, 4, 3, 14, 49, 28, 886000, tzinfo=UTC)


def test_soap_error_message_parses(testdata: Path) -> None:
    parsed = parse_envelope((testdata / "as4/soap/phase4_ErrorMessage.xml").read_bytes())
    signal = parsed.signal
    assert signal is not None
    assert not signal.is_receipt
    (error,) = signal.errors
    assert error.code == "EBMS:0001"
    assert error.short_description == "ValueNotRecognized"
    assert error.ref_to_message_in_error == "ph-as4@42ec020f-9553-4b6d-ba8e-265cf1f6fd34"
    assert error.detail
    assert error.detail.startswith("Although the message document")
    # the timestamp carries no offset: ebMS timestamps are UTC
    assert signal.timestamp == datetime(2017, 6, 13, 11, 39, 52, 967000, tzinfo=UTC)


def test_soap_receipt_parses(testdata: Path) -> None:
    parsed = parse_envelope((testdata / "as4/soap/phase4_TestReceipt12.xml").read_bytes())
    assert parsed.signal is not None
    assert parsed.signal.is_receipt
    assert parsed.has_security
    assert parsed.signal.ref_to_message_id == "035e0a83-6dc5-427b-bcee-483475c65153@phase4"


@pytest.mark.parametrize(
    ("name", "kind", "code"),
    [
        ("phase4_TwoUserMessages.xml", FeatureNotSupported, EbmsCode.FEATURE_NOT_SUPPORTED),
        ("phase4_UserMessageNoPartyID.xml", InvalidHeader, EbmsCode.INVALID_HEADER),
        ("phase4_UserMessageWithCompressedPayload12.xml", InvalidHeader, EbmsCode.INVALID_HEADER),
    ],
)
def test_soap_envelopes_refused(
    testdata: Path, name: str, kind: type[As4Error], code: EbmsCode
) -> None:
    with pytest.raises(kind) as refused:
        parse_envelope((testdata / "as4/soap" / name).read_bytes())
    assert refused.value.ebms_code is code


def test_two_user_messages_refused_by_the_receiver(
    testdata: Path, receiver: Credential, ap_trust: TrustStore
) -> None:
    body = (testdata / "as4/soap/phase4_TwoUserMessages.xml").read_bytes()
    with pytest.raises(FeatureNotSupported) as refused:
        receive_user_message(
            body,
            "application/soap+xml; charset=UTF-8",
            credential=receiver,
            trust=ap_trust,
            now=datetime(2024, 1, 1, tzinfo=UTC),
        )
    assert refused.value.ref_to_message_id == "UUID-2@receiver.example.com"


def test_unsigned_body_payload_message_refused_by_the_receiver(
    testdata: Path, receiver: Credential, ap_trust: TrustStore
) -> None:
    body = (testdata / "as4/soap/phase4_UserMessage12.xml").read_bytes()
    with pytest.raises(FeatureNotSupported) as refused:
        receive_user_message(
            body,
            "application/soap+xml",
            credential=receiver,
            trust=ap_trust,
            now=datetime(2024, 1, 1, tzinfo=UTC),
        )
    # its payload is in the SOAP Body: not how Peppol carries it
    assert refused.value.rule == "as4-payload"
    assert refused.value.ref_to_message_id == "2011-921@5209999001264.example.com"
