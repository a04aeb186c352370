"""The harness on its own: the ``as4`` peer talking to itself, without Budstikke's AS4 code.

If these fail, an interoperability failure elsewhere says nothing about Budstikke.
"""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from sbdh.pki import generate_dev_pki
from tests.interop.harness import (
    BUDSTIKKE_AP,
    PEER_AP,
    As4Peer,
    PeerPki,
    PeerRun,
    PeerServer,
    write_peer_pki,
)

pytestmark = pytest.mark.interop

SBD = Path(__file__).with_name("peppol_invoice.sbd.xml")
EB3 = "http://docs.oasis-open.org/ebxml-msg/ebms/v3.0/ns/core/200704/"


def _send(peer: As4Peer, pki: PeerPki, server: PeerServer, *extra: str, **kwargs: int) -> PeerRun:
    return peer.send(
        url=server.url,
        identity=pki.party(BUDSTIKKE_AP),
        receiver_cert=pki.party(PEER_AP).cert,
        sbd=SBD,
        trust=pki.trust,
        extra=extra,
        **kwargs,
    )


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _ebms_errors(signal: bytes) -> list[tuple[str | None, str | None]]:
    root = etree.fromstring(signal)
    return [
        (error.get("errorCode"), error.findtext(f"{{{EB3}}}ErrorDetail"))
        for error in root.iter(f"{{{EB3}}}Error")
    ]


def test_sbd_arrives_byte_identical_and_the_receipt_verifies(
    as4_peer: As4Peer, as4_peer_pki: PeerPki, as4_peer_server: PeerServer
) -> None:
    run = _send(as4_peer, as4_peer_pki, as4_peer_server)

    assert run.returncode == 0, run.explain()
    [sent] = run.messages
    assert sent["outcome"] == "receipt"
    assert sent["state"] == "acknowledged"  # signature, RefToMessageId and NRI all checked
    assert sent["http_status"] == 200
    assert sent["non_repudiated"] == 3  # eb:Messaging, SOAP Body, the payload part
    [received] = as4_peer_server.wait_received(1)
    assert received["outcome"] == "receipt"
    assert received["message_id"] == sent["message_id"]
    assert received["signer"] == BUDSTIKKE_AP
    assert received["sender"] == "0192:991825827"
    assert received["recipient"] == "0192:974760673"
    assert Path(received["sbd_path"]).read_bytes() == SBD.read_bytes()
    assert (
        sent["sbd_sha256"] == received["sbd_sha256"] == hashlib.sha256(SBD.read_bytes()).hexdigest()
    )
    assert run.summary["acknowledged"] == 1
    assert run.summary["messages_per_s"] > 0


def test_as4_can_build_the_sbdh_itself(
    as4_peer: As4Peer, as4_peer_pki: PeerPki, as4_peer_server: PeerServer
) -> None:
    run = _send(as4_peer, as4_peer_pki, as4_peer_server, "--rebuild-sbdh")

    assert run.returncode == 0, run.explain()
    [sent] = run.messages
    [received] = as4_peer_server.wait_received(1)
    arrived = Path(received["sbd_path"]).read_bytes()
    assert hashlib.sha256(arrived).hexdigest() == sent["sbd_sha256"]
    assert arrived != SBD.read_bytes()  # as4's own header, same invoice inside
    assert b"<cbc:ID>INTEROP-0001</cbc:ID>" in arrived
    assert received["recipient"] == "0192:974760673"


def test_concurrent_messages_are_each_acknowledged(
    as4_peer: As4Peer, as4_peer_pki: PeerPki, as4_peer_server: PeerServer
) -> None:
    run = _send(
        as4_peer, as4_peer_pki, as4_peer_server, "--fresh-instance-id", count=12, concurrency=4
    )

    assert run.returncode == 0, run.explain()
    assert run.summary["acknowledged"] == 12
    assert len({message["message_id"] for message in run.messages}) == 12
    assert len({message["sbd_sha256"] for message in run.messages}) == 12
    received = as4_peer_server.wait_received(12)
    assert {event["sbd_sha256"] for event in received} == {
        message["sbd_sha256"] for message in run.messages
    }


def _built(as4_peer: As4Peer, pki: PeerPki, tmp_path: Path) -> tuple[bytes, dict[str, str]]:
    run = as4_peer.build(
        out=tmp_path / "request.body",
        identity=pki.party(BUDSTIKKE_AP),
        receiver_cert=pki.party(PEER_AP).cert,
        sbd=SBD,
    )
    assert run.returncode == 0, run.explain()
    return (tmp_path / "request.body").read_bytes(), run.built["headers"]


def test_an_untouched_hand_posted_message_is_accepted(
    as4_peer: As4Peer, as4_peer_pki: PeerPki, as4_peer_server: PeerServer, tmp_path: Path
) -> None:
    body, headers = _built(as4_peer, as4_peer_pki, tmp_path)

    status, signal = _post(as4_peer_server.url, body, headers)

    assert status == 200
    assert _ebms_errors(signal) == []
    assert etree.fromstring(signal).find(f".//{{{EB3}}}Receipt") is not None


def test_a_tampered_ebms_header_is_refused(
    as4_peer: As4Peer, as4_peer_pki: PeerPki, as4_peer_server: PeerServer, tmp_path: Path
) -> None:
    body, headers = _built(as4_peer, as4_peer_pki, tmp_path)
    # one character of the signed eb:ConversationId (inside eb:Messaging) changes
    tampered, flips = re.subn(
        rb"(<eb3:ConversationId>as4@)([0-9a-f])",
        lambda match: match[1] + (b"a" if match[2] != b"a" else b"b"),
        body,
    )
    assert flips == 1

    status, signal = _post(as4_peer_server.url, tampered, headers)

    [(code, detail)] = _ebms_errors(signal)
    assert code == "EBMS:0101"  # FailedAuthentication
    assert detail is not None
    assert detail.startswith("Digest mismatch for signature reference #")
    [received] = as4_peer_server.wait_received(1)
    assert received["outcome"] == "error"
    assert received["error_code"] == "EBMS:0101"
    assert status == received["http_status"]
    assert not list(as4_peer_server.out.glob("*.xml"))


def test_a_tampered_payload_is_refused(
    as4_peer: As4Peer, as4_peer_pki: PeerPki, as4_peer_server: PeerServer, tmp_path: Path
) -> None:
    body, headers = _built(as4_peer, as4_peer_pki, tmp_path)
    start = body.index(b"Content-Type: application/octet-stream")
    at = body.index(b"\r\n\r\n", start) + 4 + 40  # a byte of AES-GCM ciphertext
    tampered = body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]

    _status, signal = _post(as4_peer_server.url, tampered, headers)

    assert _ebms_errors(signal) == [("EBMS:0102", "Could not decrypt the message payload")]
    assert as4_peer_server.wait_received(1)[0]["outcome"] == "error"
    assert not list(as4_peer_server.out.glob("*.xml"))


def test_a_signer_outside_the_trusted_pki_is_refused(
    as4_peer: As4Peer,
    as4_peer_pki: PeerPki,
    as4_peer_server: PeerServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    stranger = write_peer_pki(
        tmp_path_factory.mktemp("stranger-pki"),
        generate_dev_pki(now=datetime.now(UTC), ca_key_size=2048),
    )

    run = as4_peer.send(
        url=as4_peer_server.url,
        identity=stranger.party(BUDSTIKKE_AP),  # same CN, other PKI
        receiver_cert=as4_peer_pki.party(PEER_AP).cert,
        sbd=SBD,
    )

    assert run.returncode == 1, run.explain()
    [sent] = run.messages
    assert sent["outcome"] == "error"  # a signed, verified ebMS error signal
    assert sent["error_code"] == "EBMS:0101"
    assert sent["error_detail"] == "Signing certificate rejected"


def test_the_sender_refuses_a_signal_from_an_unexpected_certificate(
    as4_peer: As4Peer, as4_peer_pki: PeerPki, as4_peer_server: PeerServer
) -> None:
    run = as4_peer.send(
        url=as4_peer_server.url,
        identity=as4_peer_pki.party(BUDSTIKKE_AP),
        receiver_cert=as4_peer_pki.party(BUDSTIKKE_AP).cert,  # not the server's certificate
        sbd=SBD,
        extra=["--to-party", PEER_AP],
    )

    assert run.returncode == 1, run.explain()
    [sent] = run.messages
    assert sent["outcome"] == "unverified-signal"
    assert "is signed by CN=PNO000002" in sent["error_detail"]


def test_not_serviced_and_inconsistent_participants_are_answered_with_ebms_errors(
    as4_peer: As4Peer, as4_peer_pki: PeerPki, tmp_path: Path
) -> None:
    with as4_peer.serve(
        identity=as4_peer_pki.party(PEER_AP),
        trust=as4_peer_pki.trust,
        out=tmp_path / "inbox",
        extra=["--not-serviced", "0192:974760673", "--error-status", "500"],
    ) as server:
        not_serviced = _send(as4_peer, as4_peer_pki, server)
        mismatch = _send(as4_peer, as4_peer_pki, server, "--original-sender", "0192:910075918")

    [sent] = not_serviced.messages
    assert (sent["http_status"], sent["error_code"], sent["error_detail"]) == (
        500,
        "EBMS:0004",
        "PEPPOL:NOT_SERVICED",
    )
    [sent] = mismatch.messages
    assert sent["error_code"] == "EBMS:0004"
    assert "originalSender" in sent["error_detail"]


async def test_the_async_driver_leaves_the_event_loop_free(
    as4_peer: As4Peer, as4_peer_pki: PeerPki, as4_peer_server: PeerServer
) -> None:
    # for tests whose own event loop serves Budstikke's side of the exchange
    run = await as4_peer.send_async(
        url=as4_peer_server.url,
        identity=as4_peer_pki.party(BUDSTIKKE_AP),
        receiver_cert=as4_peer_pki.party(PEER_AP).cert,
        sbd=SBD,
    )

    assert run.returncode == 0, run.explain()
    [received] = await as4_peer_server.wait_received_async(1)
    assert received["message_id"] == run.messages[0]["message_id"]
