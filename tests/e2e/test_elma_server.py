"""The local SMP/ELMA server over real sockets on loopback: the admin API, signed answers in the
three SMP formats verified with elma against the SMP certificate's CA, percent-encoding, the
plain SMP status codes, SML publication, the file-backed registry, and the runnable module."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from yarl import URL

from adapters.standins.dns import SmlStandin
from elma import (
    DocumentTypeId,
    ParticipantId,
    SmpFormat,
    parse_service_group,
    service_group_path,
    service_metadata_path,
    verify_service_group,
    verify_service_metadata,
)
from elma.cli import add_commands
from elma.registry import JsonFileRegistry, MemoryRegistry
from elma.server import ElmaServer
from routing.errors import ParticipantNotRegistered
from routing.sml import SML_ZONE_TEST, SmlClient
from sbdh.errors import UntrustedSigner
from sbdh.identifiers import ParticipantId as PeppolParticipantId
from sbdh.pki import Credential, DevPki, issue_end_entity
from sbdh.trust import TrustStore
from tests.e2e.smp_network import (
    AP_URL,
    BILLING,
    CREDIT_NOTE,
    INVOICE,
    ORG,
    OTHER,
    TOKEN,
    admin,
    registration,
)

ROOT = Path(__file__).resolve().parents[2]
PARTICIPANT = ParticipantId.peppol(ORG)
INVOICE_ID = DocumentTypeId.from_uri(INVOICE)
FORMATS = [SmpFormat.PEPPOL, SmpFormat.BDXR1, SmpFormat.SMP2]


@pytest.fixture(scope="module")
def smp_signer(dev_pki: DevPki, now: datetime) -> Credential:
    return issue_end_entity(dev_pki.ap_ca, "PNO000900", now=now, organisation="Test SMP")


@pytest.fixture(scope="module")
def smp_trust(dev_pki: DevPki) -> TrustStore:
    """The SMP certificate's CA, and nothing else."""
    return TrustStore((dev_pki.ap_ca.certificate,))


@pytest.fixture(scope="module")
def ap(dev_pki: DevPki) -> Credential:
    return dev_pki.access_points["PNO000001"]


@pytest.fixture
async def server(smp_signer: Credential) -> AsyncIterator[ElmaServer]:
    async with ElmaServer(MemoryRegistry(), smp_signer, admin_token=TOKEN) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def registered(
    server: ElmaServer, session: aiohttp.ClientSession, ap: Credential, now: datetime
) -> ElmaServer:
    body = registration(ap.cert_pem(), document_types=(INVOICE, CREDIT_NOTE))
    status, answer, _ = await admin(session, server.url, "PUT", ORG, body=body)
    assert status == 201, answer
    return server


def _base(server: ElmaServer, smp_format: SmpFormat) -> str:
    return server.bdxr1_url if smp_format is SmpFormat.BDXR1 else server.url


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes, str]:
    async with session.get(URL(url, encoded=True)) as response:
        return response.status, await response.read(), response.headers.get("Content-Type", "")


# --------------------------------------------------------------------------- SMP answers


@pytest.mark.parametrize("smp_format", FORMATS, ids=lambda f: f.value)
async def test_registered_participant_is_served_signed_in_every_format(
    *,
    registered: ElmaServer,
    session: aiohttp.ClientSession,
    smp_format: SmpFormat,
    smp_trust: TrustStore,
    smp_signer: Credential,
    ap: Credential,
    now: datetime,
) -> None:
    base = _base(registered, smp_format)

    status, body, content_type = await _get(
        session, base + service_group_path(PARTICIPANT, smp_format)
    )
    assert status == 200
    if smp_format is SmpFormat.SMP2:
        assert content_type.startswith("application/xml")
        group = verify_service_group(body, smp_trust, at=now).group
    else:
        assert content_type.startswith("text/xml")
        group = parse_service_group(body)
    assert group.format is smp_format
    assert group.participant == PARTICIPANT
    assert set(group.document_types()) == {INVOICE_ID, DocumentTypeId.from_uri(CREDIT_NOTE)}

    url = base + service_metadata_path(PARTICIPANT, INVOICE_ID, smp_format)
    status, body, content_type = await _get(session, url)
    assert status == 200
    assert content_type.startswith(
        "application/xml" if smp_format is SmpFormat.SMP2 else "text/xml"
    )
    verified = verify_service_metadata(body, smp_trust, at=now)
    assert verified.signer == smp_signer.certificate
    metadata = verified.metadata
    assert metadata.format is smp_format
    assert metadata.participant == PARTICIPANT
    assert metadata.document_type == INVOICE_ID
    (process,) = metadata.processes
    assert str(process.process_id) == BILLING
    (endpoint,) = process.endpoints
    assert endpoint.address == AP_URL
    assert endpoint.certificate == ap.certificate.public_bytes(Encoding.DER)


async def test_answers_do_not_verify_against_another_ca(
    registered: ElmaServer, session: aiohttp.ClientSession, dev_pki: DevPki, now: datetime
) -> None:
    url = registered.url + service_metadata_path(PARTICIPANT, INVOICE_ID)
    _, body, _ = await _get(session, url)
    with pytest.raises(UntrustedSigner):
        verify_service_metadata(body, TrustStore((dev_pki.org_ca.certificate,)), at=now)


async def test_a_bis_billing_document_type_round_trips_through_percent_encoding(
    registered: ElmaServer, session: aiohttp.ClientSession, smp_trust: TrustStore, now: datetime
) -> None:
    path = service_metadata_path(PARTICIPANT, INVOICE_ID)
    assert path == (
        "/iso6523-actorid-upis%3A%3A0192%3A991825827/services/busdox-docid-qns%3A%3A"
        "urn%3Aoasis%3Anames%3Aspecification%3Aubl%3Aschema%3Axsd%3AInvoice-2%3A%3AInvoice"
        "%23%23urn%3Acen.eu%3Aen16931%3A2017%23compliant%23urn%3Afdc%3Apeppol.eu%3A2017%3A"
        "poacc%3Abilling%3A3.0%3A%3A2.1"
    )
    # the group's href is exactly that path, and following it gives the answer for that id
    _, body, _ = await _get(session, registered.url + service_group_path(PARTICIPANT))
    hrefs = [r.href for r in parse_service_group(body).references]
    assert registered.url + path in hrefs
    status, body, _ = await _get(session, registered.url + path)
    assert status == 200
    assert verify_service_metadata(body, smp_trust, at=now).metadata.document_type == INVOICE_ID
    # percent-encoded twice, as some service groups publish it, and lower-case escapes
    twice = path.replace("%", "%25")
    status, body, _ = await _get(session, registered.url + twice)
    assert status == 200
    assert verify_service_metadata(body, smp_trust, at=now).metadata.document_type == INVOICE_ID
    status, _, _ = await _get(session, registered.url + path.replace("%3A", "%3a"))
    assert status == 200


async def test_participant_ids_are_case_insensitive(
    registered: ElmaServer, session: aiohttp.ClientSession
) -> None:
    upper = ParticipantId("ISO6523-ACTORID-UPIS", ORG)
    status, _, _ = await _get(session, registered.url + service_metadata_path(upper, INVOICE_ID))
    assert status == 200


@pytest.mark.parametrize("smp_format", FORMATS, ids=lambda f: f.value)
async def test_unknown_participant_and_document_type_are_404(
    registered: ElmaServer, session: aiohttp.ClientSession, smp_format: SmpFormat
) -> None:
    base = _base(registered, smp_format)
    unknown = ParticipantId.peppol(OTHER)
    for path in (
        service_group_path(unknown, smp_format),
        service_metadata_path(unknown, INVOICE_ID, smp_format),
        service_metadata_path(
            PARTICIPANT, DocumentTypeId("busdox-docid-qns", "urn:example:Order"), smp_format
        ),
    ):
        status, body, content_type = await _get(session, base + path)
        assert status == 404, path
        assert content_type.startswith("application/problem+json")
        assert json.loads(body)["status"] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/iso6523-actorid-upis%3A%3A0192%3A991825828",  # organisation number check digit
        "/iso6523-actorid-upis%3A%3A0192%3A991825827/services/no-scheme-separator",
        "/0192%3A991825827",  # no scheme
        "/iso6523-actorid-upis%3A%3A0192%3A991825827/service/x%3A%3Ay",
        "/iso6523-actorid-upis%3A%3A0192%3A991825827/services/a%3A%3Ab/extra",
        "/bdxr-smp-2/iso6523-actorid-upis%3A%3A%FF",  # not UTF-8
        "/bdxr-smp-1/bdxr-smp-2/iso6523-actorid-upis%3A%3A0192%3A991825827",  # two prefixes
        "/",
    ],
)
async def test_malformed_paths_and_identifiers_are_400(
    registered: ElmaServer, session: aiohttp.ClientSession, path: str
) -> None:
    status, body, content_type = await _get(session, registered.url + path)
    assert status == 400, body
    assert content_type.startswith("application/problem+json")
    assert json.loads(body)["code"] == "invalid-identifier"


async def test_smp2_carries_whole_days_narrowed_inwards(
    server: ElmaServer,
    session: aiohttp.ClientSession,
    ap: Credential,
    smp_trust: TrustStore,
    now: datetime,
) -> None:
    activation = datetime(2025, 3, 4, 10, 30, tzinfo=UTC)
    expiration = datetime(2031, 5, 6, 23, 0, tzinfo=UTC)
    body = registration(ap.cert_pem(), activation=activation, expiration=expiration)
    assert (await admin(session, server.url, "PUT", ORG, body=body))[0] == 201
    at = now  # the signer's validity; the endpoint's dates are only compared

    _, peppol, _ = await _get(session, server.url + service_metadata_path(PARTICIPANT, INVOICE_ID))
    endpoint = verify_service_metadata(peppol, smp_trust, at=at).metadata.processes[0].endpoints[0]
    assert (endpoint.service_activation, endpoint.service_expiration) == (activation, expiration)

    url = server.url + service_metadata_path(PARTICIPANT, INVOICE_ID, SmpFormat.SMP2)
    _, smp2, _ = await _get(session, url)
    endpoint = verify_service_metadata(smp2, smp_trust, at=at).metadata.processes[0].endpoints[0]
    assert endpoint.service_activation == datetime(2025, 3, 5, tzinfo=UTC)
    assert endpoint.service_expiration == datetime(2031, 5, 6, tzinfo=UTC)


# --------------------------------------------------------------------------- admin API


async def test_admin_register_replace_list_get_and_delete(
    server: ElmaServer, session: aiohttp.ClientSession, ap: Credential
) -> None:
    status, answer, _ = await admin(
        session, server.url, "PUT", ORG, body=registration(ap.cert_pem())
    )
    assert status == 201
    assert answer["participant"] == f"iso6523-actorid-upis::{ORG}"
    assert answer["links"]["peppol"] == server.url + service_group_path(PARTICIPANT)
    assert answer["links"]["smp2"] == server.url + service_group_path(PARTICIPANT, SmpFormat.SMP2)

    body = registration(ap.cert_pem(), document_types=(CREDIT_NOTE,), name="Digdir")
    status, answer, _ = await admin(
        session, server.url, "PUT", f"iso6523-actorid-upis::{ORG}", body=body
    )
    assert status == 200  # replaced
    assert [s["document_type"] for s in answer["services"]] == [CREDIT_NOTE]

    status, listing, _ = await admin(session, server.url, "GET")
    assert status == 200
    assert listing == {
        "participants": [
            {
                "participant": f"iso6523-actorid-upis::{ORG}",
                "name": "Digdir",
                "document_types": [CREDIT_NOTE],
            }
        ]
    }
    status, one, _ = await admin(session, server.url, "GET", ORG)
    assert status == 200
    assert one["services"][0]["processes"][0]["endpoints"][0]["url"] == AP_URL

    status, _, _ = await _get(session, server.url + service_metadata_path(PARTICIPANT, INVOICE_ID))
    assert status == 404  # replaced, not merged

    assert (await admin(session, server.url, "DELETE", ORG))[0] == 204
    assert (await admin(session, server.url, "DELETE", ORG))[0] == 404
    assert (await admin(session, server.url, "GET", ORG))[0] == 404
    status, _, _ = await _get(session, server.url + service_group_path(PARTICIPANT))
    assert status == 404


@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_admin_needs_the_token(
    registered: ElmaServer, session: aiohttp.ClientSession, ap: Credential, token: str | None
) -> None:
    for method, participant in (("GET", None), ("GET", ORG), ("PUT", OTHER), ("DELETE", ORG)):
        body = registration(ap.cert_pem()) if method == "PUT" else None
        status, problem, headers = await admin(
            session, registered.url, method, participant, body=body, token=token
        )
        assert status == 401, (method, participant)
        assert problem["code"] == "unauthorized"
        assert headers["WWW-Authenticate"].startswith("Bearer")
    # nothing changed
    assert (await admin(session, registered.url, "GET", ORG))[0] == 200
    assert (await admin(session, registered.url, "GET", OTHER))[0] == 404


async def test_admin_is_off_without_a_token(
    smp_signer: Credential, session: aiohttp.ClientSession
) -> None:
    async with ElmaServer(MemoryRegistry(), smp_signer) as server:
        status, problem, _ = await admin(session, server.url, "GET")
        assert status == 403
        assert problem["code"] == "forbidden"


async def test_admin_errors_are_problem_details_naming_the_field(
    server: ElmaServer, session: aiohttp.ClientSession, ap: Credential
) -> None:
    body = registration(ap.cert_pem())
    body["services"][0]["processes"][0]["endpoints"][0]["certificate"] = "garbage"
    status, problem, _ = await admin(session, server.url, "PUT", ORG, body=body)
    assert status == 400
    assert problem["type"] == "urn:budstikke:problem:invalid-registration"
    assert problem["errors"] == [
        {
            "field": "services[0].processes[0].endpoints[0].certificate",
            "rule": "elma-certificate",
            "message": problem["detail"],
        }
    ]

    status, problem, _ = await admin(session, server.url, "PUT", "0192:991825828", body={})
    assert status == 400
    assert problem["errors"][0]["field"] == "path.participant"

    status, problem, _ = await admin(
        session, server.url, "PUT", ORG, body={"participant": OTHER, "services": []}
    )
    assert status == 400
    assert problem["errors"][0]["field"] == "participant"

    async with session.put(
        f"{server.url}/admin/participants/{ORG}",
        data=b"{not json",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as response:
        assert response.status == 400
        assert (await response.json(content_type=None))["errors"][0]["field"] == "body"

    async with session.put(
        f"{server.url}/admin/participants/{ORG}",
        data=b"[" + b"1," * 600_000 + b"1]",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as response:
        assert response.status == 413
    assert (await admin(session, server.url, "GET"))[1] == {"participants": []}


# --------------------------------------------------------------------------- SML


async def test_registration_is_published_in_the_sml(
    smp_signer: Credential, session: aiohttp.ClientSession, ap: Credential
) -> None:
    peppol = PeppolParticipantId(ORG)
    async with SmlStandin(zone=SML_ZONE_TEST) as sml:
        lookup = SmlClient(zone=SML_ZONE_TEST, nameserver=sml.address, allow_http=True, timeout=2)
        async with ElmaServer(MemoryRegistry(), smp_signer, admin_token=TOKEN, sml=sml) as server:
            with pytest.raises(ParticipantNotRegistered):
                await lookup.smp_url(peppol)
            await admin(session, server.url, "PUT", ORG, body=registration(ap.cert_pem()))
            assert await lookup.smp_url(peppol) == server.url
            await admin(session, server.url, "DELETE", ORG)
            with pytest.raises(ParticipantNotRegistered):
                await lookup.smp_url(peppol)


async def test_the_file_registry_survives_a_restart_and_is_republished(
    tmp_path: Path, smp_signer: Credential, session: aiohttp.ClientSession, ap: Credential
) -> None:
    data = tmp_path / "elma.json"
    async with ElmaServer(JsonFileRegistry(data), smp_signer, admin_token=TOKEN) as server:
        await admin(session, server.url, "PUT", ORG, body=registration(ap.cert_pem()))
    async with (
        SmlStandin(zone=SML_ZONE_TEST) as sml,
        ElmaServer(JsonFileRegistry(data), smp_signer, sml=sml) as server,
    ):
        assert ORG in sml
        status, _, _ = await _get(
            session, server.url + service_metadata_path(PARTICIPANT, INVOICE_ID)
        )
        assert status == 200


# --------------------------------------------------------------------------- the commands


def _parse(argv: list[str]) -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def test_commands_through_the_admin_api(
    server: ElmaServer, session: aiohttp.ClientSession, ap: Credential, tmp_path: Path
) -> None:
    cert = tmp_path / "ap.pem"
    cert.write_bytes(ap.cert_pem())
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    where = ["--url", server.url, "--admin-token-file", str(token)]
    common = ["--process", BILLING, "--endpoint-url", AP_URL, "--ap-cert", str(cert)]

    args = _parse(
        ["elma", "register", *where, "--participant", ORG, "--document-type", INVOICE, *common]
    )
    assert await asyncio.to_thread(args.handler, args) == 0
    args = _parse(
        ["elma", "register", *where, "--participant", ORG, "--document-type", CREDIT_NOTE, *common]
    )
    assert await asyncio.to_thread(args.handler, args) == 0  # added, Invoice kept
    _, one, _ = await admin(session, server.url, "GET", ORG)
    assert [s["document_type"] for s in one["services"]] == [INVOICE, CREDIT_NOTE]

    listing = tmp_path / "listing.txt"
    args = _parse(["elma", "list", *where])

    def run_list() -> int:
        with listing.open("w") as out:
            return int(args.handler(args, out=out))

    assert await asyncio.to_thread(run_list) == 0
    assert listing.read_text().startswith(f"iso6523-actorid-upis::{ORG}\t")

    args = _parse(["elma", "remove", *where, "--participant", ORG])
    assert await asyncio.to_thread(args.handler, args) == 0
    assert (await admin(session, server.url, "GET", ORG))[0] == 404


def test_commands_on_the_registry_file(tmp_path: Path, ap: Credential) -> None:
    import io

    from sbdh.errors import NotFound

    data = tmp_path / "elma.json"
    cert = tmp_path / "ap.pem"
    cert.write_bytes(ap.cert_pem())
    registration_file = tmp_path / "registration.json"
    registration_file.write_text(json.dumps({"participant": OTHER, **registration(ap.cert_pem())}))

    args = _parse(["elma", "register", "--data", str(data), "--json", str(registration_file)])
    assert args.handler(args, out=io.StringIO()) == 0
    args = _parse(
        [
            "elma", "register", "--data", str(data), "--participant", ORG, "--name", "Digdir",
            "--document-type", INVOICE, "--process", BILLING, "--endpoint-url", AP_URL,
            "--ap-cert", str(cert),
        ]
    )  # fmt: skip
    assert args.handler(args, out=io.StringIO()) == 0
    out = io.StringIO()
    args = _parse(["elma", "list", "--data", str(data), "--json"])
    assert args.handler(args, out=out) == 0
    listed = json.loads(out.getvalue())["participants"]
    assert [p["participant"].split("::")[1] for p in listed] == [OTHER, ORG]

    args = _parse(["elma", "remove", "--data", str(data), "--participant", OTHER])
    assert args.handler(args, out=io.StringIO()) == 0
    with pytest.raises(NotFound):
        args.handler(args, out=io.StringIO())


async def test_python_m_elma_server_serves_the_data_file(
    *,
    tmp_path: Path,
    smp_signer: Credential,
    session: aiohttp.ClientSession,
    ap: Credential,
    smp_trust: TrustStore,
    now: datetime,
) -> None:
    key = tmp_path / "smp.key"
    key.write_bytes(smp_signer.key_pem())
    cert = tmp_path / "smp.pem"
    cert.write_bytes(smp_signer.cert_pem() + smp_signer.chain_pem())
    data = tmp_path / "elma.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "elma.server",
        "--data", str(data), "--key", str(key), "--cert", str(cert),
        "--port", "0", "--admin-token", TOKEN,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        status, _, _ = await admin(session, url, "PUT", ORG, body=registration(ap.cert_pem()))
        assert status == 201
        status, body, _ = await _get(session, url + service_metadata_path(PARTICIPANT, INVOICE_ID))
        assert status == 200
        assert verify_service_metadata(body, smp_trust, at=now).metadata.participant == PARTICIPANT
        assert json.loads(data.read_text())["participants"][0]["participant"].endswith(ORG)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


async def test_an_endpoint_registered_as_expired_is_still_published(
    server: ElmaServer, session: aiohttp.ClientSession, ap: Credential, smp_trust: TrustStore
) -> None:
    expired = datetime.now(UTC) - timedelta(days=1)
    body = registration(ap.cert_pem(), expiration=expired)
    assert (await admin(session, server.url, "PUT", ORG, body=body))[0] == 201
    status, answer, _ = await _get(
        session, server.url + service_metadata_path(PARTICIPANT, INVOICE_ID)
    )
    assert status == 200  # the SMP publishes what is registered; the sender judges the time
    metadata = verify_service_metadata(answer, smp_trust, at=datetime.now(UTC)).metadata
    assert metadata.processes[0].endpoints[0].service_expiration is not None
