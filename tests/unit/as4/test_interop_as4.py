"""Interoperability with an independent implementation: the PyPI ``as4`` package (0.2.x).

It runs in its own virtual environment (it pins ``cryptography<47`` and needs pydantic), as a
subprocess: the ``as4_peer_python`` fixture (tests/conftest.py) makes and caches it.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from access_point.as4 import (
    ErrorSignalReceived,
    NotServiced,
    Routing,
    TrustPolicy,
    build_error,
    build_receipt,
    build_user_message,
    check_response,
    receive_user_message,
)
from sbdh.pki import Credential
from sbdh.trust import TrustStore
from tests.unit.as4.conftest import SBD, wire

PEER = Path(__file__).with_name("as4_peer.py")
INVOICE = (
    b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">'
    b"<ID>peer-1</ID></Invoice>"
)


pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def peer_python(as4_peer_python: Path) -> str:
    return str(as4_peer_python)


@pytest.fixture
def exchange_dir(tmp_path: Path, sender: Credential, receiver: Credential) -> Path:
    for cn, credential in (("PNO000001", sender), ("PNO000002", receiver)):
        (tmp_path / f"{cn}.pem").write_bytes(credential.cert_pem())
        (tmp_path / f"{cn}.key").write_bytes(credential.key_pem())
    return tmp_path


def peer(python: str, command: str, directory: Path) -> None:
    result = subprocess.run(
        [python, str(PEER), command, str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_we_receive_theirs_and_they_accept_our_receipt(
    peer_python: str, exchange_dir: Path, receiver: Credential, ap_trust: TrustStore, now: datetime
) -> None:
    (exchange_dir / "invoice.xml").write_bytes(INVOICE)
    peer(peer_python, "build", exchange_dir)
    body = (exchange_dir / "body").read_bytes()
    content_type = (exchange_dir / "content_type").read_text()
    with receive_user_message(
        body, content_type, credential=receiver, trust=ap_trust, now=now
    ) as inbound:
        assert inbound.message_id == (exchange_dir / "message_id").read_text()
        assert inbound.routing.receiver.value == "0192:974760673"
        assert inbound.routing.document_type.scheme == "busdox-docid-qns"
        assert b"<ID>peer-1</ID>" in inbound.payload.read_bytes()
        receipt = build_receipt(inbound.message_id, inbound.references, signer=receiver, now=now)
    (exchange_dir / "our_signal").write_bytes(receipt.body)
    peer(peer_python, "receipt", exchange_dir)
    outcome = json.loads((exchange_dir / "receipt.json").read_text())
    assert outcome == {"state": "acknowledged", "error": ""}


def test_they_receive_ours_and_we_accept_their_receipt(  # noqa: PLR0917 - fixtures
    peer_python: str,
    exchange_dir: Path,
    sender: Credential,
    receiver: Credential,
    routing: Routing,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    with build_user_message(
        SBD, routing=routing, sender=sender, receiver_certificate=receiver.certificate, now=now
    ) as message:
        (exchange_dir / "body").write_bytes(message.to_bytes())
        (exchange_dir / "content_type").write_text(message.content_type)
    peer(peer_python, "parse", exchange_dir)
    parsed = json.loads((exchange_dir / "parsed.json").read_text())
    assert parsed["error"] == ""
    assert parsed["payload"].encode() == SBD
    assert (parsed["sender"], parsed["recipient"]) == ("0192:991825827", "0192:974760673")
    verified = check_response(
        (exchange_dir / "signal").read_bytes(),
        "application/soap+xml",
        sent=message.sent,
        policy=TrustPolicy(store=ap_trust, pinned=(receiver.certificate,)),
        at=now,
    )
    assert verified.trust.trusted
    assert len(verified.signal.receipt_references) == 3


def test_they_refuse_a_tampered_message_and_we_see_why(  # noqa: PLR0917 - fixtures
    peer_python: str,
    exchange_dir: Path,
    sender: Credential,
    receiver: Credential,
    routing: Routing,
    ap_trust: TrustStore,
    now: datetime,
) -> None:
    with build_user_message(
        SBD, routing=routing, sender=sender, receiver_certificate=receiver.certificate, now=now
    ) as message:
        parts = wire(message)
    parts.soap = parts.soap.replace(b"billing:01:1.0", b"billing:02:1.0")
    (exchange_dir / "body").write_bytes(parts.join())
    (exchange_dir / "content_type").write_text(message.content_type)
    peer(peer_python, "parse", exchange_dir)
    assert json.loads((exchange_dir / "parsed.json").read_text())["error"]
    with pytest.raises(ErrorSignalReceived) as failed:
        check_response(
            (exchange_dir / "signal").read_bytes(),
            "application/soap+xml",
            sent=message.sent,
            policy=TrustPolicy(store=ap_trust, pinned=(receiver.certificate,)),
            at=now,
        )
    assert failed.value.errors
    assert failed.value.errors[0].code.startswith("EBMS:")


def test_they_understand_our_not_serviced_error(
    peer_python: str, exchange_dir: Path, receiver: Credential, ap_trust: TrustStore, now: datetime
) -> None:
    (exchange_dir / "invoice.xml").write_bytes(INVOICE)
    peer(peer_python, "build", exchange_dir)
    with pytest.raises(NotServiced) as refused:
        receive_user_message(
            (exchange_dir / "body").read_bytes(),
            (exchange_dir / "content_type").read_text(),
            credential=receiver,
            trust=ap_trust,
            now=now,
            serves=lambda routing: False,
        )
    signal = build_error(refused.value, signer=receiver, now=now)
    (exchange_dir / "our_signal").write_bytes(signal.body)
    peer(peer_python, "receipt", exchange_dir)
    outcome = json.loads((exchange_dir / "receipt.json").read_text())
    assert outcome == {"state": "rejected", "error": ""}
