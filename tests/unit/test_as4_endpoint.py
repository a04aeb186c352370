"""``POST /as4`` of the running service, over a real socket: what it answers to a good message,
a repeat, and broken or hostile requests, and that nothing broken is ever delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer

from access_point.app import Runtime, create_runtime
from access_point.as4 import (
    Identifier,
    Routing,
    TrustPolicy,
    build_user_message,
    check_response,
)
from access_point.messages import Client
from access_point.settings import Settings
from adapters.db.schema import as4_refusals
from sbdh.pki import DevPki, init_pki
from sbdh.trust import TrustStore
from tests.unit.as4.conftest import DOCTYPE, PROCESS, RECEIVER_ID, SBD, SENDER_ID

ROUTING = Routing(
    sender=Identifier.participant(SENDER_ID),
    receiver=Identifier.participant(RECEIVER_ID),
    document_type=Identifier.document_type(DOCTYPE),
    process=Identifier.process(PROCESS),
)


@pytest.fixture
async def endpoint(
    tmp_path: Path, dev_pki: DevPki
) -> AsyncIterator[tuple[Runtime, Client, TestClient[Any, Any]]]:
    init_pki(tmp_path / "pki", dev_pki)
    settings = Settings(data_dir=tmp_path / "data", pki_dir=tmp_path / "pki", ap_name="PNO000001")
    runtime = await create_runtime(settings, run_workers=False)
    client, _ = await runtime.service.create_client("finance", [RECEIVER_ID.split(":")[1]])
    async with TestClient(TestServer(runtime.app)) as http:
        yield runtime, client, http


def _message(dev_pki: DevPki, sbd: bytes = SBD) -> Any:
    return build_user_message(
        sbd,
        routing=ROUTING,
        sender=dev_pki.access_points["PNO000002"],
        receiver_certificate=dev_pki.access_points["PNO000001"].certificate,
        now=datetime.now(UTC),
    )


async def test_a_good_message_is_stored_then_receipted_and_a_repeat_gets_that_receipt(
    endpoint: tuple[Runtime, Client, TestClient[Any, Any]], dev_pki: DevPki
) -> None:
    runtime, client, http = endpoint
    with _message(dev_pki) as message:
        body = message.to_bytes()
        answer = await http.post("/as4", data=body, headers={"Content-Type": message.content_type})
        receipt = await answer.read()
        assert answer.status == 200
        check_response(
            receipt,
            answer.headers["Content-Type"],
            sent=message.sent,
            policy=TrustPolicy(
                store=TrustStore.from_pem(
                    dev_pki.root.cert_pem(), intermediates=[dev_pki.ap_ca.cert_pem()]
                ),
                pinned=(dev_pki.access_points["PNO000001"].certificate,),
            ),
            at=datetime.now(UTC),
        )
        again = await http.post("/as4", data=body, headers={"Content-Type": message.content_type})
        assert await again.read() == receipt
    found = await runtime.service.find_incoming(client)
    assert found.total_elements == 1


@pytest.mark.parametrize(
    ("content_type", "body", "code"),
    [
        ("multipart/related; boundary=x", b"", "EBMS:0007"),
        ("text/plain", b"hello", "EBMS:0007"),
        ('multipart/related; type="application/soap+xml"; boundary=b', b"--b\r\n\r\n--b--", None),
        (
            "application/soap+xml",
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
            None,
        ),
    ],
)
async def test_broken_requests_get_an_ebms_error_and_deliver_nothing(
    endpoint: tuple[Runtime, Client, TestClient[Any, Any]],
    content_type: str,
    body: bytes,
    code: str | None,
) -> None:
    runtime, client, http = endpoint
    answer = await http.post("/as4", data=body, headers={"Content-Type": content_type})
    text = await answer.text()
    assert answer.status == 200
    assert "SignalMessage" in text
    assert "eb:Error" in text or ":Error " in text or "<Error" in text
    assert "EBMS:0" in text
    if code is not None:
        assert code in text
    assert (await runtime.service.find_incoming(client)).total_elements == 0
    # recorded for ops: when, which code, why, how big; never the body
    [refusal] = await refusals(runtime)
    assert refusal.ebms_code.startswith("EBMS:0")
    if code is not None:
        assert refusal.ebms_code == code
    assert refusal.body_size == len(body)
    assert refusal.content_type == content_type
    assert refusal.description
    metrics = await (await http.get("/manage/metrics")).text()
    assert f'budstikke_as4_refusals{{ebms_code="{refusal.ebms_code}"}} 1' in metrics


async def test_a_tampered_message_is_refused_and_not_delivered(
    endpoint: tuple[Runtime, Client, TestClient[Any, Any]], dev_pki: DevPki
) -> None:
    runtime, client, http = endpoint
    with _message(dev_pki) as message:
        body = bytearray(message.to_bytes())
    at = body.index(b"<eb:Timestamp>") + len(b"<eb:Timestamp>") + 3
    body[at] = ord("9") if body[at] != ord("9") else ord("8")
    answer = await http.post(
        "/as4", data=bytes(body), headers={"Content-Type": message.content_type}
    )
    text = await answer.text()
    assert "EBMS:0101" in text
    assert (await runtime.service.find_incoming(client)).total_elements == 0
    [refusal] = await refusals(runtime)
    assert refusal.ebms_code == "EBMS:0101"
    assert refusal.as4_message_id == message.message_id


async def test_a_request_past_the_size_limit_is_refused_and_recorded(
    tmp_path: Path, dev_pki: DevPki
) -> None:
    init_pki(tmp_path / "pki", dev_pki)
    settings = Settings(
        data_dir=tmp_path / "data",
        pki_dir=tmp_path / "pki",
        ap_name="PNO000001",
        as4_max_request=1000,
    )
    runtime = await create_runtime(settings, run_workers=False)
    try:
        async with TestClient(TestServer(runtime.app)) as http:
            answer = await http.post(
                "/as4", data=b"x" * 5000, headers={"Content-Type": "multipart/related; boundary=b"}
            )
            assert answer.status == 413
        [refusal] = await refusals(runtime)
        assert refusal.ebms_code == "HTTP-413"
        assert refusal.body_size > 1000
    finally:
        await runtime.close()


async def refusals(runtime: Runtime) -> list[Any]:
    async with runtime.service.database.read() as connection:
        return list((await connection.execute(sa.select(as4_refusals))).all())


async def test_a_receiver_not_served_here_is_not_serviced(
    endpoint: tuple[Runtime, Client, TestClient[Any, Any]], dev_pki: DevPki
) -> None:
    runtime, client, http = endpoint
    other = SBD.replace(RECEIVER_ID.encode(), b"0192:910075918")
    message = build_user_message(
        other,
        routing=Routing(
            sender=ROUTING.sender,
            receiver=Identifier.participant("0192:910075918"),
            document_type=ROUTING.document_type,
            process=ROUTING.process,
        ),
        sender=dev_pki.access_points["PNO000002"],
        receiver_certificate=dev_pki.access_points["PNO000001"].certificate,
        now=datetime.now(UTC),
    )
    with message:
        answer = await http.post(
            "/as4", data=message.to_bytes(), headers={"Content-Type": message.content_type}
        )
    text = await answer.text()
    assert "EBMS:0004" in text
    assert "PEPPOL:NOT_SERVICED" in text
    assert (await runtime.service.find_incoming(client)).total_elements == 0
