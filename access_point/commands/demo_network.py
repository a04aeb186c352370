"""``budstikke demo network``: two access points exchanging an arkivmelding over AS4.

Two access points (PNO000001 serving organisation A, PNO000002 serving organisation B), each
with its own database, files and key, on two local ports; each discovers the other as the
network does: the SML (a DNS server on loopback answering U-NAPTR) names the SMP (a local ELMA
serving signed answers), which names the endpoint for the document type and process. A's case
system sends an arkivmelding with a PDF to B; it travels over AS4 (signed,
encrypted, the document package end-to-end encrypted to B's own certificate); B's system pops
and opens it with B's key, acknowledges (LEVERT goes back over AS4) and answers with a
kvittering (LEST). The demo prints A's status timeline.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from access_point.app import Runtime, create_runtime
from access_point.client import ApiClient
from access_point.commands import demo_envelope
from access_point.commands.exchange import nextmove_sbd
from adapters.noark import minimal_arkivmelding
from adapters.standins.dns import SmlStandin
from elma.model import ParticipantId as ElmaParticipant
from elma.registry import MemoryRegistry, record_from_json
from elma.server import ElmaServer
from routing.sml import SML_ZONE_TEST
from sbdh.package import open_package
from sbdh.pki import Credential, generate_dev_pki, init_pki, issue_end_entity
from sbdh.trust import TrustStore

A, B = "991825827", "974760673"
KVITTERING = "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering"
RESPONSE = "urn:no:difi:profile:arkivmelding:response:ver1.0"
ARKIVMELDING_PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"


async def network_demo(base: Path, free_port: Any, step: Any, wait_for: Any) -> int:
    from access_point.settings import load_settings  # noqa: PLC0415

    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    pki_dir = base / "pki"
    pki = generate_dev_pki(now=datetime.now(UTC), ca_key_size=2048)
    init_pki(pki_dir, pki)
    names = {"PNO000001": A, "PNO000002": B}
    ports = {name: free_port() for name in names}
    runtimes: dict[str, Runtime] = {}
    runners: list[web.AppRunner] = []
    started = time.monotonic()
    sml = SmlStandin(zone=SML_ZONE_TEST)
    await sml.start()
    smp_signer = issue_end_entity(
        pki.ap_ca, "PNO000900", now=datetime.now(UTC), organisation="Local ELMA"
    )
    registry = MemoryRegistry()
    for name, org in names.items():
        pem = (pki_dir / "access-points" / f"{name}.pem").read_bytes()
        registry.put(
            record_from_json(
                eformidling_registration(pem, f"http://127.0.0.1:{ports[name]}/as4"),
                participant=ElmaParticipant.peppol(f"0192:{org}"),
            )
        )
    elma = ElmaServer(registry, smp_signer, sml=sml)  # publishes them in the SML as it starts
    await elma.start()
    try:
        print(f"SML (DNS) at {sml.address[0]}:{sml.address[1]}, SMP (ELMA) at {elma.url}")
        for name, org in names.items():
            other = next(n for n in names if n != name)
            data = base / name
            data.mkdir()
            # the SMP gives the endpoint; the directory adds the receiving organisation's own
            # certificate (which no SMP publishes) for end-to-end encryption of the package
            (data / "directory.json").write_text(
                json.dumps(
                    {
                        "participants": {
                            f"0192:{names[other]}": {
                                "organisation_certificate": str(
                                    pki_dir / "organisations" / f"{names[other]}.pem"
                                )
                            }
                        }
                    },
                    indent=2,
                )
            )
            settings = load_settings(
                {},
                data_dir=data,
                port=ports[name],
                pki_dir=pki_dir,
                ap_name=name,
                sml_zone=SML_ZONE_TEST,
                sml_nameserver=f"{sml.address[0]}:{sml.address[1]}",
                registry_allow_http=True,
            )
            runtime = await create_runtime(settings)
            runner = web.AppRunner(runtime.app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", ports[name]).start()
            runtimes[name], runners = runtime, [*runners, runner]
            print(f"access point {name} serving 0192:{org} at http://127.0.0.1:{ports[name]}")
        print(f"both up in {time.monotonic() - started:.1f}s; data in {base}")
        return await _exchange(
            runtimes,
            ports=ports,
            base=base,
            receiver_key=pki.organisations[B],
            pki_dir=pki_dir,
            step=step,
            wait_for=wait_for,
        )
    finally:
        for runner in runners:
            await runner.cleanup()
        await elma.stop()
        await sml.stop()


#: what each organisation receives: the arkivmelding (here in the administrasjon area), and in
#: the response process the kvittering and eFormidling's status messages
EFORMIDLING_RECEIVES = (
    ("urn:no:difi:arkivmelding:xsd::arkivmelding", ARKIVMELDING_PROCESS),
    (KVITTERING, RESPONSE),
    ("urn:no:difi:eformidling:xsd::status", RESPONSE),
)


def eformidling_registration(
    certificate_pem: bytes, url: str, receives: Any = EFORMIDLING_RECEIVES
) -> dict[str, Any]:
    """An ELMA registration (admin API JSON) of an organisation whose access point is at
    ``url`` with ``certificate_pem``: one AS4 endpoint for each (document type, process)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for document_type, process in receives:
        by_type.setdefault(document_type, []).append(
            {
                "process": f"cenbii-procid-ubl::{process}",
                "endpoints": [
                    {
                        "transport_profile": "peppol-transport-as4-v2_0",
                        "url": url,
                        "certificate": certificate_pem.decode("ascii"),
                        "description": "Budstikke",
                        "technical_contact": "mailto:drift@example.no",
                    }
                ],
            }
        )
    return {
        "services": [
            {"document_type": f"busdox-docid-qns::{d}", "processes": p} for d, p in by_type.items()
        ]
    }


async def _exchange(
    runtimes: dict[str, Runtime],
    *,
    ports: dict[str, int],
    base: Path,
    receiver_key: Credential,
    pki_dir: Path,
    step: Any,
    wait_for: Any,
) -> int:
    _, token_a = await runtimes["PNO000001"].service.create_client("Sak/arkiv A", [A])
    _, token_b = await runtimes["PNO000002"].service.create_client("Sak/arkiv B", [B])
    url_a = f"http://127.0.0.1:{ports['PNO000001']}"
    url_b = f"http://127.0.0.1:{ports['PNO000002']}"
    message_id, conversation = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC)
    outbox = base / "outbox"
    outbox.mkdir()
    (outbox / "vedtak.pdf").write_bytes(demo_envelope.minimal_pdf("Vedtak om byggetillatelse"))
    (outbox / "arkivmelding.xml").write_bytes(
        minimal_arkivmelding(
            message_id=message_id, title="Vedtak om byggetillatelse", files=["vedtak.pdf"], now=now
        )
    )
    async with ApiClient(url_a, token_a) as sender, ApiClient(url_b, token_b) as receiver:
        step("A's case system sends an arkivmelding with a PDF to B (on the other access point)")
        await sender.create(
            nextmove_sbd(
                sender=A, receiver=B, message_id=message_id, conversation_id=conversation, now=now
            )
        )
        await sender.upload(message_id, outbox / "arkivmelding.xml", mime_type="application/xml")
        await sender.upload(message_id, outbox / "vedtak.pdf", mime_type="application/pdf")
        await sender.send(message_id)

        step("it travels over AS4; B's case system peeks, pops and opens it with B's own key")
        await wait_for("the message at B", receiver.peek)
        package = base / "inbox" / f"{message_id}.cms"
        package.parent.mkdir()
        size = await receiver.pop(message_id, package)
        with package.open("rb") as source:
            opened = open_package(
                source,
                recipient=receiver_key,
                trust=TrustStore.load(pki_dir / "root-ca.pem"),
                out_dir=base / "inbox" / message_id,
                now=datetime.now(UTC),
            )
        print(f"  a CMS-encrypted package, {size} bytes, only B's key opens it; files:")
        for packed in opened.files:
            print(f"    {packed.name:<18} {packed.size:>6} bytes")
        await receiver.acknowledge(message_id)

        step("B's archive answers with a kvittering; it travels back over AS4")
        receipt_id = str(uuid.uuid4())
        await receiver.create(
            nextmove_sbd(
                sender=B,
                receiver=A,
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

        async def timeline() -> list[dict[str, Any]] | None:
            statuses = await sender.statuses(message_id)
            seen = {s["status"] for s in statuses}
            return statuses if {"LEVERT", "LEST"} <= seen else None

        statuses = await wait_for("LEVERT and LEST at A", timeline)
        step(f"A's status timeline for {message_id}")
        for status in statuses:
            note = status.get("description") or ""
            print(f"  {status['lastUpdate']:<26} {status['status']:<10} {note}")
        seen = [s["status"] for s in statuses]
        return 0 if seen == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"] else 1
