"""Two Budstikke access points as separate processes on loopback, each with its own database,
keys and organisations, exchanging an arkivmelding over AS4.

Organisation A (991825827) is served by access point PNO000001, organisation B (974760673) by
PNO000002. Twice: once each knows the other from its configured directory, once nothing is
configured and each discovers the other as the network does, through the SML (a DNS server on
loopback answering U-NAPTR) and the SMP it names (a local ELMA serving signed answers). A's case
system sends an arkivmelding with a PDF to B; B's system peeks, pops the package (end-to-end
encrypted to B's own certificate, which A's directory holds), acknowledges and answers with a
kvittering; A sees OPPRETTET → SENDT → MOTTATT → LEVERT → LEST, and why each message went where.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from access_point.client import ApiClient
from access_point.commands.demo_network import eformidling_registration
from access_point.commands.exchange import nextmove_sbd
from adapters.noark import minimal_arkivmelding
from adapters.standins.dns import SmlStandin
from elma.registry import MemoryRegistry
from elma.server import ElmaServer
from routing.sml import SML_ZONE_TEST
from sbdh.package import open_package
from sbdh.pki import Credential, DevPki, init_pki, issue_end_entity
from sbdh.trust import TrustStore
from tests.e2e.smp_network import TOKEN, admin

ORG_A, ORG_B = "991825827", "974760673"
KVITTERING = "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering"
RESPONSE = "urn:no:difi:profile:arkivmelding:response:ver1.0"
PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
T = TypeVar("T")


@dataclass
class AccessPoint:
    name: str
    url: str
    token: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    #: found through SML and SMP rather than a configured directory
    discovered: bool = False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _budstikke(*args: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "access_point.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _wait_healthy(ap: AccessPoint, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{ap.url}/manage/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if ap.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{ap.name} did not come up:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.2)


@pytest.fixture(params=["directory", "discovered"])
async def access_points(
    request: pytest.FixtureRequest, tmp_path: Path, dev_pki: DevPki
) -> AsyncIterator[dict[str, AccessPoint]]:
    discovered = request.param == "discovered"
    pki = tmp_path / "pki"
    init_pki(pki, dev_pki)
    ports = {"PNO000001": _free_port(), "PNO000002": _free_port()}
    serves = {"PNO000001": ORG_A, "PNO000002": ORG_B}
    started: dict[str, AccessPoint] = {}
    async with contextlib.AsyncExitStack() as stack:
        network_env: dict[str, str] = {}
        if discovered:
            sml = await stack.enter_async_context(SmlStandin(zone=SML_ZONE_TEST))
            signer = issue_end_entity(
                dev_pki.ap_ca, "PNO000900", now=datetime.now(UTC), organisation="Local ELMA"
            )
            elma = await stack.enter_async_context(
                ElmaServer(MemoryRegistry(), signer, admin_token=TOKEN, sml=sml)
            )
            async with aiohttp.ClientSession() as session:
                for name, org in serves.items():
                    pem = (pki / "access-points" / f"{name}.pem").read_bytes()
                    body = eformidling_registration(pem, f"http://127.0.0.1:{ports[name]}/as4")
                    status, answer, _ = await admin(
                        session, elma.url, "PUT", f"iso6523-actorid-upis::0192:{org}", body=body
                    )
                    assert status in (200, 201), answer
            host, port = sml.address
            network_env = {
                "BUDSTIKKE_SML_ZONE": SML_ZONE_TEST,
                "BUDSTIKKE_SML_NAMESERVER": f"{host}:{port}",
                "BUDSTIKKE_REGISTRY_ALLOW_HTTP": "true",
            }
        try:
            for name, org in serves.items():
                other = next(n for n in serves if n != name)
                data = tmp_path / name
                data.mkdir()
                # discovered: the directory holds only B's own certificate (the SMP publishes
                # access points' certificates, not organisations'), for end-to-end encryption
                entry = {
                    "organisation_certificate": str(pki / "organisations" / f"{serves[other]}.pem")
                }
                if not discovered:
                    entry |= {
                        "endpoint": f"http://127.0.0.1:{ports[other]}/as4",
                        "access_point_certificate": str(pki / "access-points" / f"{other}.pem"),
                    }
                (data / "directory.json").write_text(
                    json.dumps({"participants": {f"0192:{serves[other]}": entry}})
                )
                env = {k: v for k, v in os.environ.items() if not k.startswith("BUDSTIKKE_")}
                env.update(
                    BUDSTIKKE_DATA_DIR=str(data),
                    BUDSTIKKE_PORT=str(ports[name]),
                    BUDSTIKKE_PKI_DIR=str(pki),
                    BUDSTIKKE_AP_NAME=name,
                    BUDSTIKKE_LIFETIME_SWEEP="3600",
                    **network_env,
                )
                _budstikke("db", "upgrade", env=env)
                token = json.loads(
                    _budstikke(
                        "client", "add", f"case system {org}", "--org", org, "--json", env=env
                    )
                )["token"]
                log = tmp_path / f"{name}.log"
                with log.open("wb") as out:
                    process = subprocess.Popen(
                        [sys.executable, "-m", "access_point.cli", "serve"],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                started[name] = AccessPoint(
                    name, f"http://127.0.0.1:{ports[name]}", token, env, process, discovered
                )
                _wait_healthy(started[name], log)
            yield started
        finally:
            for ap in started.values():
                ap.process.terminate()
            for ap in started.values():
                ap.process.wait(timeout=30)


async def _eventually(what: str, probe: Callable[[], Awaitable[T | None]]) -> T:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_an_arkivmelding_goes_to_another_access_point_and_back(
    access_points: dict[str, AccessPoint], dev_pki: DevPki, tmp_path: Path
) -> None:
    a, b = access_points["PNO000001"], access_points["PNO000002"]
    message_id, conversation = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    files = tmp_path / "outbox"
    files.mkdir()
    (files / "arkivmelding.xml").write_bytes(
        minimal_arkivmelding(
            message_id=message_id, title="Vedtak om skjenkebevilling", files=["vedtak.pdf"], now=now
        )
    )
    (files / "vedtak.pdf").write_bytes(PDF)
    async with ApiClient(a.url, a.token) as sender, ApiClient(b.url, b.token) as receiver:
        await sender.create(
            nextmove_sbd(
                sender=ORG_A,
                receiver=ORG_B,
                message_id=message_id,
                conversation_id=conversation,
                now=now,
            )
        )
        await sender.upload(message_id, files / "arkivmelding.xml", mime_type="application/xml")
        await sender.upload(message_id, files / "vedtak.pdf", mime_type="application/pdf")
        await sender.send(message_id)

        # B's case system takes it from B's access point
        peeked = await _eventually("the message at B", receiver.peek)
        header = peeked["standardBusinessDocumentHeader"]
        assert header["documentIdentification"]["instanceIdentifier"] == message_id
        assert header["sender"][0]["identifier"]["value"] == f"0192:{ORG_A}"
        package = tmp_path / "package.cms"
        assert await receiver.pop(message_id, package) > 0
        # end to end: only B's own key opens it (when A's directory knows B's certificate; the
        # SMP publishes access points' certificates, not organisations'); A's AP signed it
        # end to end: only B's own key opens it; the signature is A's access point's
        organisation: Credential = dev_pki.organisations[ORG_B]
        with package.open("rb") as source:
            opened = open_package(
                source,
                recipient=organisation,
                trust=TrustStore.from_pem(dev_pki.root.cert_pem()),
                out_dir=tmp_path / "opened",
                now=datetime.now(UTC),
            )
        assert {f.name for f in opened.files} == {"arkivmelding.xml", "vedtak.pdf"}
        assert (tmp_path / "opened" / "vedtak.pdf").read_bytes() == PDF
        await receiver.acknowledge(message_id)

        async def sender_sees(status: str) -> list[str] | None:
            seen = [s["status"] for s in await sender.statuses(message_id)]
            return seen if status in seen else None

        await _eventually("LEVERT at A", lambda: sender_sees("LEVERT"))

        # B's archive answers; the kvittering travels back over AS4 and marks LEST at A
        receipt_id = str(uuid.uuid4())
        await receiver.create(
            nextmove_sbd(
                sender=ORG_B,
                receiver=ORG_A,
                message_id=receipt_id,
                conversation_id=conversation,
                now=datetime.now(UTC),
                message_type="arkivmelding_kvittering",
                body={"receiptType": "OK", "relatedToMessageId": message_id},
                standard=KVITTERING,
                process=RESPONSE,
            )
        )
        await receiver.send(receipt_id)
        timeline = await _eventually("LEST at A", lambda: sender_sees("LEST"))
        assert timeline == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"]
        incoming: dict[str, Any] | None = await _eventually("the kvittering at A", sender.peek)
        assert incoming is not None
        assert (
            incoming["standardBusinessDocumentHeader"]["documentIdentification"][
                "instanceIdentifier"
            ]
            == receipt_id
        )
        on_b = [s["status"] for s in await receiver.statuses(message_id)]
        assert on_b == ["INNKOMMENDE_MOTTATT", "INNKOMMENDE_LEVERT"]
        # why it went there: A's decision names the rule and, when discovered, the SMP
        [decision] = await _routing(a, message_id)
        assert decision["channel"] == "AS4"
        if a.discovered:
            assert decision["rule"] == "ORG-SMP"
            assert decision["route"]["evidence"]["smp"].startswith("http://127.0.0.1")
        else:
            assert decision["rule"] == "ORG-OVERRIDE"
        # and what B can be sent, as A's case system asks before sending
        capabilities = await _capabilities(a, ORG_B)
        processes = {c["process"] for c in capabilities}
        if a.discovered:
            assert processes == {PROCESS, RESPONSE}
            assert all(c["transport"] == "as4" for c in capabilities)
        else:
            assert processes == set()  # not discoverable: only the directory knows B


async def _routing(ap: AccessPoint, message_id: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {ap.token}"}
    url = f"{ap.url}/api/messages/out/{message_id}/routing"
    async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as response:
        assert response.status == 200, await response.text()
        decisions: list[dict[str, Any]] = (await response.json())["decisions"]
        return decisions


async def _capabilities(ap: AccessPoint, receiver: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {ap.token}"}
    url = f"{ap.url}/api/capabilities/{receiver}"
    async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as response:
        assert response.status == 200, await response.text()
        found: list[dict[str, Any]] = (await response.json())["capabilities"]
        return found
