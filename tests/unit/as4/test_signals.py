"""The sender judging the answer: receipts must prove exactly what was sent."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from access_point.as4 import (
    EbmsError,
    ErrorSignalReceived,
    InboundMessage,
    InvalidReceipt,
    OutboundMessage,
    SendFailed,
    SignedReference,
    TrustPolicy,
    build_error,
    build_receipt,
    check_response,
    nri_mismatch,
    receive_user_message,
)
from access_point.as4.signals import SIGNAL_CONTENT_TYPE
from sbdh.errors import EbmsCode, PermanentDeliveryError
from sbdh.pki import Credential
from sbdh.trust import TrustStore

Build = Callable[..., OutboundMessage]


@pytest.fixture
def exchange(
    build: Build, receiver: Credential, ap_trust: TrustStore, now: datetime
) -> tuple[OutboundMessage, InboundMessage]:
    with build() as message:
        inbound = receive_user_message(
            message.to_bytes(), message.content_type, credential=receiver, trust=ap_trust, now=now
        )
    inbound.close()
    return message, inbound


def _check(
    body: bytes, message: OutboundMessage, trust: TrustStore, now: datetime, **kw: object
) -> object:
    policy = kw.pop("policy", TrustPolicy(store=trust))
    return check_response(
        body,
        SIGNAL_CONTENT_TYPE,
        sent=message.sent,
        policy=policy,
        at=now,  # type: ignore[arg-type]
    )


def _altered(reference: SignedReference, **changes: object) -> SignedReference:
    # rebuilt from values (no XML), as if restored from storage and then altered
    return dataclasses.replace(reference, xml=b"", **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda refs: refs[:-1], id="attachment-not-acknowledged"),
        pytest.param(lambda refs: refs[1:], id="header-not-acknowledged"),
        pytest.param(
            lambda refs: [
                *refs[:-1],
                _altered(refs[-1], digest_value="AAAA" + refs[-1].digest_value[4:]),
            ],
            id="other-attachment-digest",
        ),
        pytest.param(
            lambda refs: [_altered(refs[0], uri="#msg-other"), *refs[1:]], id="other-header-uri"
        ),
        pytest.param(
            lambda refs: [*refs, _altered(refs[0], uri="cid:extra@x")], id="extra-reference"
        ),
        pytest.param(lambda refs: [*refs, refs[0]], id="listed-twice"),
        pytest.param(
            lambda refs: [
                _altered(refs[0], transforms=("http://www.w3.org/TR/2001/REC-xml-c14n-20010315",)),
                *refs[1:],
            ],
            id="other-transform",
        ),
    ],
)
def test_nri_mismatch_fails_the_send(
    exchange: tuple[OutboundMessage, InboundMessage],
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
    tamper: Callable[[list[SignedReference]], list[SignedReference]],
) -> None:
    message, inbound = exchange
    receipt = build_receipt(
        inbound.message_id, tamper(list(inbound.references)), signer=receiver, now=now
    )
    with pytest.raises(InvalidReceipt) as failed:
        _check(receipt.body, message, ap_trust, now)
    assert failed.value.rule == "as4-receipt-nri"
    assert failed.value.ebms_code is EbmsCode.INVALID_RECEIPT
    assert isinstance(failed.value, PermanentDeliveryError)
    assert message.message_id in failed.value.reason


def test_references_restored_from_values_still_match(
    exchange: tuple[OutboundMessage, InboundMessage],
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    """A receipt rebuilt from stored values (no XML kept) proves the same delivery."""
    message, inbound = exchange
    restored = [_altered(r) for r in inbound.references]
    receipt = build_receipt(inbound.message_id, restored, signer=receiver, now=now)
    _check(receipt.body, message, ap_trust, now)


def test_receipt_for_another_message(
    exchange: tuple[OutboundMessage, InboundMessage],
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    message, inbound = exchange
    receipt = build_receipt("other@x", inbound.references, signer=receiver, now=now)
    with pytest.raises(InvalidReceipt) as failed:
        _check(receipt.body, message, ap_trust, now)
    assert failed.value.rule == "as4-receipt-ref"


def test_receipt_from_an_unexpected_signer(
    exchange: tuple[OutboundMessage, InboundMessage],
    receiver: Credential,
    stranger: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    """Trusted PKI, but not the access point we sent to (the SMP's certificate is pinned)."""
    message, inbound = exchange
    receipt = build_receipt(inbound.message_id, inbound.references, signer=stranger, now=now)
    policy = TrustPolicy(store=ap_trust, pinned=(receiver.certificate,))
    with pytest.raises(InvalidReceipt) as failed:
        _check(receipt.body, message, ap_trust, now, policy=policy)
    assert failed.value.rule == "as4-receipt-signature"
    assert "not the expected certificate" in failed.value.reason


def test_receipt_from_an_expired_signer(
    exchange: tuple[OutboundMessage, InboundMessage],
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    message, inbound = exchange
    receipt = build_receipt(inbound.message_id, inbound.references, signer=receiver, now=now)
    with pytest.raises(InvalidReceipt) as failed:
        _check(receipt.body, message, ap_trust, now + timedelta(days=3650))
    assert "expired" in failed.value.reason


def test_tampered_receipt(
    exchange: tuple[OutboundMessage, InboundMessage],
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    message, inbound = exchange
    receipt = build_receipt(inbound.message_id, inbound.references, signer=receiver, now=now)
    forged = receipt.body.replace(inbound.message_id.encode(), b"forged@x", 1)
    assert forged != receipt.body
    with pytest.raises(InvalidReceipt) as failed:
        _check(forged, message, ap_trust, now)
    assert failed.value.rule == "as4-receipt-signature"


def test_unsigned_receipt(
    exchange: tuple[OutboundMessage, InboundMessage],
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    message, inbound = exchange
    receipt = build_receipt(inbound.message_id, inbound.references, signer=receiver, now=now)
    start = receipt.body.index(b"<wsse:Security")
    end = receipt.body.index(b"</wsse:Security>") + len(b"</wsse:Security>")
    unsigned = receipt.body[:start] + receipt.body[end:]
    with pytest.raises(InvalidReceipt):
        _check(unsigned, message, ap_trust, now)


def test_error_signal_fails_the_send_with_its_reason(
    exchange: tuple[OutboundMessage, InboundMessage],
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    message, _ = exchange
    error = EbmsError(
        code="EBMS:0202",
        short_description="DeliveryFailure",
        category="Communication",
        description="the back end is down",
    )
    signal = build_error(error, signer=receiver, now=now, ref_to_message_id=message.message_id)
    with pytest.raises(ErrorSignalReceived) as failed:
        _check(signal.body, message, ap_trust, now)
    assert isinstance(failed.value, SendFailed)
    (got,) = failed.value.errors
    assert (got.code, got.short_description, got.description) == (
        "EBMS:0202",
        "DeliveryFailure",
        "the back end is down",
    )
    assert got.ref_to_message_in_error == message.message_id
    assert "the back end is down" in failed.value.reason


def test_a_warning_alone_does_not_fail_but_is_no_receipt(
    exchange: tuple[OutboundMessage, InboundMessage],
    receiver: Credential,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    message, _ = exchange
    warning = EbmsError(
        code="EBMS:0006", severity="warning", short_description="EmptyMessagePartitionChannel"
    )
    signal = build_error(warning, signer=receiver, now=now, ref_to_message_id=message.message_id)
    with pytest.raises(InvalidReceipt) as failed:
        _check(signal.body, message, ap_trust, now)
    assert failed.value.rule == "as4-receipt-missing"


def test_soap_fault(
    exchange: tuple[OutboundMessage, InboundMessage], ap_trust: TrustStore, now: datetime
) -> None:
    message, _ = exchange
    fault = (
        b'<S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope"><S:Body><S:Fault>'
        b"<S:Code><S:Value>S:Receiver</S:Value></S:Code>"
        b'<S:Reason><S:Text xml:lang="en">Internal error</S:Text></S:Reason>'
        b"</S:Fault></S:Body></S:Envelope>"
    )
    with pytest.raises(ErrorSignalReceived) as failed:
        _check(fault, message, ap_trust, now)
    assert "Internal error" in failed.value.reason


def test_garbage_answer(
    exchange: tuple[OutboundMessage, InboundMessage], ap_trust: TrustStore, now: datetime
) -> None:
    message, _ = exchange
    with pytest.raises(InvalidReceipt) as failed:
        _check(b"<html>Bad gateway</html>", message, ap_trust, now)
    assert failed.value.rule == "as4-response-unreadable"


def test_nri_mismatch_values() -> None:
    a = SignedReference("#m", "sha256", "AAA=", ("c14n",))
    b = SignedReference("cid:x", "sha256", "BBB=", ("att",))
    assert nri_mismatch([a, b], [b, a]) is None  # order does not matter
    assert nri_mismatch([a, b], []) == "it carries no NonRepudiationInformation references"
    assert "does not acknowledge cid:x" in (nri_mismatch([a, b], [a]) or "")
    assert "another digest" in (
        nri_mismatch([a], [dataclasses.replace(a, digest_value="CCC=")]) or ""
    )
    assert "other algorithms" in (
        nri_mismatch([a], [dataclasses.replace(a, digest_method="sha1")]) or ""
    )
    assert "was not sent" in (nri_mismatch([a], [a, b]) or "")
