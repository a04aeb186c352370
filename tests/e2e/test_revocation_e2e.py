"""Revocation checking of peer access points over real sockets: the local OCSP responder, the
service's ``POST /as4``, and the AS4 channel sending to another in-process access point.

The sending access point's certificate is issued by the development AP CA with the stand-in as
its OCSP responder (and CRL distribution point). Revoked: the message is refused with EBMS:0101
and nothing is delivered, in either mode. Responder down: soft-fail accepts, hard-fail refuses.
Outbound, nothing is sent to an access point whose certificate is revoked.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from access_point.app import Runtime, create_runtime
from access_point.as4 import (
    Identifier,
    OutboundMessage,
    Routing,
    TrustPolicy,
    build_user_message,
    check_response,
)
from access_point.messages import Client
from access_point.settings import Settings
from adapters.standins.ocsp import OcspStandin, RevocationAuthority
from sbdh.errors import PermanentDeliveryError, TransientDeliveryError
from sbdh.pki import Credential, DevPki, init_pki, issue_end_entity
from sbdh.trust import TrustStore
from tests.unit.as4.conftest import DOCTYPE, PROCESS, RECEIVER_ID, SBD, SENDER_ID

ROUTING = Routing(
    sender=Identifier.participant(SENDER_ID),
    receiver=Identifier.participant(RECEIVER_ID),
    document_type=Identifier.document_type(DOCTYPE),
    process=Identifier.process(PROCESS),
)
INVOICE_SBD = Path(__file__).parent.parent / "interop" / "peppol_invoice.sbd.xml"


@pytest.fixture
async def ocsp(dev_pki: DevPki) -> AsyncIterator[OcspStandin]:
    authority = RevocationAuthority({"ap-ca": dev_pki.ap_ca})
    async with OcspStandin(authority) as standin:
        yield standin


@pytest.fixture
def peer(dev_pki: DevPki, ocsp: OcspStandin) -> Credential:
    """Access point PNO000002, its certificate pointing at the stand-in."""
    return issue_end_entity(
        dev_pki.ap_ca,
        "PNO000002",
        now=datetime.now(UTC),
        organisation="Budstikke",
        ocsp_url=ocsp.ocsp_url,
        crl_url=ocsp.crl_url("ap-ca"),
    )


@contextlib.asynccontextmanager
async def _receiving(
    tmp_path: Path, dev_pki: DevPki, mode: str
) -> AsyncIterator[tuple[Runtime, Client, TestClient[Any, Any]]]:
    """Access point PNO000001 serving the receiver, checking revocation in ``mode``."""
    pki = tmp_path / "pki"
    if not (pki / "pki.json").exists():
        init_pki(pki, dev_pki)
    settings = Settings(
        data_dir=tmp_path / f"data-{mode}",
        pki_dir=pki,
        ap_name="PNO000001",
        revocation=mode,
        revocation_timeout=timedelta(seconds=2),
    )
    runtime = await create_runtime(settings, run_workers=False)
    client, _ = await runtime.service.create_client("finance", [RECEIVER_ID.split(":")[1]])
    async with TestClient(TestServer(runtime.app)) as http:
        yield runtime, client, http


def _message(sender: Credential, dev_pki: DevPki) -> OutboundMessage:
    return build_user_message(
        SBD,
        routing=ROUTING,
        sender=sender,
        receiver_certificate=dev_pki.access_points["PNO000001"].certificate,
        now=datetime.now(UTC),
    )


async def _post(
    http: TestClient[Any, Any], sender: Credential, dev_pki: DevPki
) -> tuple[int, str, bool]:
    """(HTTP status, answer text, whether the answer is a valid receipt for the message)."""
    with _message(sender, dev_pki) as message:
        answer = await http.post(
            "/as4", data=message.to_bytes(), headers={"Content-Type": message.content_type}
        )
        body = await answer.read()
        try:
            check_response(
                body,
                answer.headers["Content-Type"],
                sent=message.sent,
                policy=TrustPolicy(
                    store=TrustStore((dev_pki.root.certificate,), (dev_pki.ap_ca.certificate,)),
                    pinned=(dev_pki.access_points["PNO000001"].certificate,),
                ),
                at=datetime.now(UTC),
            )
            receipted = True
        except PermanentDeliveryError:
            receipted = False
    return answer.status, body.decode("utf-8", "replace"), receipted


MODES = ["soft-fail", "hard-fail"]


# --------------------------------------------------------------------------- inbound


@pytest.mark.parametrize("mode", MODES)
async def test_a_good_sender_is_accepted(
    mode: str, tmp_path: Path, dev_pki: DevPki, ocsp: OcspStandin, peer: Credential
) -> None:
    async with _receiving(tmp_path, dev_pki, mode) as (runtime, client, http):
        status, _, receipted = await _post(http, peer, dev_pki)
        assert status == 200
        assert receipted
        assert (await runtime.service.find_incoming(client)).total_elements == 1
    assert ocsp.authority.ocsp_requests == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_revoked_sender_gets_ebms_0101_and_nothing_is_delivered(
    mode: str, tmp_path: Path, dev_pki: DevPki, ocsp: OcspStandin, peer: Credential
) -> None:
    ocsp.authority.revoke(peer.certificate)
    async with _receiving(tmp_path, dev_pki, mode) as (runtime, client, http):
        status, text, receipted = await _post(http, peer, dev_pki)
        assert status == 200
        assert not receipted
        assert "EBMS:0101" in text
        assert "revoked" in text
        assert (await runtime.service.find_incoming(client)).total_elements == 0


async def test_a_sender_revoked_meanwhile_is_refused_once_the_cached_answer_expires(
    tmp_path: Path, dev_pki: DevPki, ocsp: OcspStandin, peer: Credential
) -> None:
    async with _receiving(tmp_path, dev_pki, "soft-fail") as (runtime, client, http):
        assert (await _post(http, peer, dev_pki))[2]
        ocsp.authority.revoke(peer.certificate)
        assert runtime.network is not None
        assert runtime.network.revocation is not None
        # the cached GOOD holds until its nextUpdate; an operator (or the expiry) clears it
        checker = runtime.network.revocation.checker
        checker.clear()  # type: ignore[attr-defined]
        _, text, receipted = await _post(http, peer, dev_pki)
        assert not receipted
        assert "EBMS:0101" in text
        assert (await runtime.service.find_incoming(client)).total_elements == 1


async def test_responder_down_soft_fail_accepts(
    tmp_path: Path, dev_pki: DevPki, ocsp: OcspStandin, peer: Credential
) -> None:
    await ocsp.stop()
    async with _receiving(tmp_path, dev_pki, "soft-fail") as (runtime, client, http):
        status, _, receipted = await _post(http, peer, dev_pki)
        assert status == 200
        assert receipted
        assert (await runtime.service.find_incoming(client)).total_elements == 1
        assert runtime.network is not None
        assert runtime.network.revocation is not None
        assert runtime.network.revocation.counts["soft-fail"] == 1


async def test_responder_down_hard_fail_refuses(
    tmp_path: Path, dev_pki: DevPki, ocsp: OcspStandin, peer: Credential
) -> None:
    await ocsp.stop()
    async with _receiving(tmp_path, dev_pki, "hard-fail") as (runtime, client, http):
        _, text, receipted = await _post(http, peer, dev_pki)
        assert not receipted
        assert "EBMS:0101" in text
        assert (await runtime.service.find_incoming(client)).total_elements == 0


async def test_revocation_off_asks_nobody(
    tmp_path: Path, dev_pki: DevPki, ocsp: OcspStandin, peer: Credential
) -> None:
    ocsp.authority.revoke(peer.certificate)
    async with _receiving(tmp_path, dev_pki, "off") as (_, _client, http):
        assert (await _post(http, peer, dev_pki))[2]
    assert ocsp.authority.ocsp_requests == 0


async def test_the_dev_pki_default_asks_nobody_and_accepts(
    tmp_path: Path, dev_pki: DevPki, ocsp: OcspStandin
) -> None:
    """The embedded default (soft-fail) with the development PKI's certificates, which name
    no responder: accepted, and no network call is made."""
    async with _receiving(tmp_path, dev_pki, "soft-fail") as (runtime, _client, http):
        assert (await _post(http, dev_pki.access_points["PNO000002"], dev_pki))[2]
        assert runtime.network is not None
        assert runtime.network.revocation is not None
        assert runtime.network.revocation.counts["no-source"] == 1
    assert ocsp.authority.ocsp_requests == 0


# --------------------------------------------------------------------------- outbound


@contextlib.asynccontextmanager
async def _two_access_points(
    tmp_path: Path, dev_pki: DevPki, peer: Credential, mode: str
) -> AsyncIterator[tuple[Runtime, Client, Runtime, Client]]:
    """A (PNO000001, revocation ``mode``) sends to B (PNO000002, the stand-in's certificate)."""
    pki = tmp_path / "pki"
    init_pki(pki, dev_pki)
    receiver = await create_runtime(
        Settings(data_dir=tmp_path / "b", pki_dir=pki, ap_name="PNO000002", revocation="off"),
        run_workers=False,
        ap_credential=peer,
    )
    b_client, _ = await receiver.service.create_client("finance", [RECEIVER_ID.split(":")[1]])
    async with TestServer(receiver.app) as server:
        peer_pem = tmp_path / "PNO000002.pem"
        peer_pem.write_bytes(peer.cert_pem())
        directory = tmp_path / "directory.json"
        directory.write_text(
            json.dumps(
                {
                    "participants": {
                        RECEIVER_ID: {
                            "endpoint": str(server.make_url("/as4")),
                            "access_point_certificate": str(peer_pem),
                        }
                    }
                }
            )
        )
        sender = await create_runtime(
            Settings(
                data_dir=tmp_path / "a",
                pki_dir=pki,
                ap_name="PNO000001",
                as4_directory=str(directory),
                revocation=mode,
                revocation_timeout=timedelta(seconds=2),
            ),
            run_workers=False,
        )
        a_client, _ = await sender.service.create_client("finance", [SENDER_ID.split(":")[1]])
        try:
            yield sender, a_client, receiver, b_client
        finally:
            await sender.close()  # the receiver closes with its server (the app's cleanup)


async def test_a_message_goes_to_an_access_point_in_good_standing(
    tmp_path: Path, dev_pki: DevPki, ocsp: OcspStandin, peer: Credential
) -> None:
    async with _two_access_points(tmp_path, dev_pki, peer, "hard-fail") as (a, a_client, b, b_c):
        view = await a.service.create_and_send(a_client, INVOICE_SBD.read_bytes(), [])
        assert a.network is not None
        assert await a.network.send(view.message_id)
        assert (await b.service.find_incoming(b_c)).total_elements == 1
    assert ocsp.authority.ocsp_requests == 1


@pytest.mark.parametrize("mode", MODES)
async def test_nothing_is_sent_to_an_access_point_whose_certificate_is_revoked(
    mode: str, tmp_path: Path, dev_pki: DevPki, ocsp: OcspStandin, peer: Credential
) -> None:
    ocsp.authority.revoke(peer.certificate)
    async with _two_access_points(tmp_path, dev_pki, peer, mode) as (a, a_client, b, b_c):
        view = await a.service.create_and_send(a_client, INVOICE_SBD.read_bytes(), [])
        assert a.network is not None
        with pytest.raises(PermanentDeliveryError, match="revoked"):
            await a.network.send(view.message_id)
        assert (await b.service.find_incoming(b_c)).total_elements == 0


async def test_sending_with_the_responder_down_waits_in_hard_fail(
    tmp_path: Path, dev_pki: DevPki, ocsp: OcspStandin, peer: Credential
) -> None:
    await ocsp.stop()
    async with _two_access_points(tmp_path, dev_pki, peer, "hard-fail") as (a, a_client, b, b_c):
        view = await a.service.create_and_send(a_client, INVOICE_SBD.read_bytes(), [])
        assert a.network is not None
        with pytest.raises(TransientDeliveryError, match="cannot be obtained"):
            await a.network.send(view.message_id)
        assert (await b.service.find_incoming(b_c)).total_elements == 0
