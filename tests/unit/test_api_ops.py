"""Tokens, aiohttp's own errors as problem details, the OpenAPI document, health, metrics and
the access log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from access_point.api import API_ROUTES, build_openapi
from access_point.api.accesslog import mask
from access_point.app import build_app
from sbdh.errors import TransientDeliveryError
from sbdh.pki import DevPki
from tests.unit.api_helpers import Wired, arkivmelding_sbd, settings_for, wired

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def setup(tmp_path: Path, dev_pki: DevPki) -> AsyncIterator[Wired]:
    async for value in wired(tmp_path, dev_pki.access_points["PNO000001"]):
        yield value


@pytest.fixture
async def http(setup: Wired, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    return await aiohttp_client(setup.runtime.app)


async def test_no_token_is_401_with_a_bearer_challenge(http: TestClient[Any, Any]) -> None:
    response = await http.get("/api/messages/in")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="budstikke"'
    assert response.content_type == "application/problem+json"


async def test_unknown_token_is_401_invalid_token(http: TestClient[Any, Any]) -> None:
    response = await http.get(
        "/api/messages/in", headers={"Authorization": "Bearer bsk_not-a-real-token"}
    )
    assert response.status == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    response = await http.get("/api/messages/in", headers={"Authorization": "Basic dTpw"})
    assert response.status == 401


async def test_unknown_path_and_wrong_method_are_problems(
    http: TestClient[Any, Any], setup: Wired
) -> None:
    response = await http.get("/api/nothing-here", headers=setup.sender)
    assert response.status == 404
    assert (await response.json())["code"] == "not-found"
    response = await http.patch("/api/messages/out", headers=setup.sender)
    assert response.status == 405
    problem = await response.json()
    assert problem["code"] == "method-not-allowed"
    assert "POST" in response.headers["Allow"]


async def test_body_over_the_limit_is_413(
    tmp_path: Path, dev_pki: DevPki, aiohttp_client: ClientFactory
) -> None:
    async for setup in wired(tmp_path, dev_pki.access_points["PNO000001"], max_multipart_size=1024):
        http = await aiohttp_client(setup.runtime.app)
        response = await http.post(
            "/api/messages/out",
            data=b"{" + b" " * (2 << 20) + b"}",
            headers={**setup.sender, "Content-Type": "application/json"},
        )
        assert response.status == 413
        assert (await response.json())["code"] == "payload-too-large"


async def test_openapi_document_is_valid_and_covers_every_route(
    http: TestClient[Any, Any],
) -> None:
    response = await http.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)
    assert document["openapi"].startswith("3.1")
    for route in API_ROUTES:
        operation = document["paths"][route.openapi_path][route.method.lower()]
        assert operation["summary"]
    assert document == build_openapi()


async def test_every_registered_route_is_in_the_document(setup: Wired) -> None:
    document = build_openapi()
    for resource in setup.runtime.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if path == "/as4":
            continue  # the AS4 endpoint speaks ebMS to other access points, not the business API
        assert path in document["paths"], path


async def test_health_reports_each_check(http: TestClient[Any, Any]) -> None:
    response = await http.get("/manage/health/liveness")
    assert (await response.json()) == {"status": "UP"}
    response = await http.get("/manage/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "UP"
    assert body["checks"]["database"]["status"] == "UP"
    assert body["checks"]["queue"]["status"] == "UP"


async def test_health_is_503_when_a_check_fails(
    tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    async def broken() -> None:
        raise TransientDeliveryError("the database is unavailable")

    async def authenticate(token: str) -> None:
        return None

    class Service:
        pass

    service = Service()
    service.authenticate = authenticate  # type: ignore[attr-defined]
    app = build_app(
        settings_for(tmp_path),
        service=service,
        webhooks=object(),
        readiness_checks=[("database", broken)],
    )
    http = await aiohttp_client(app)
    response = await http.get("/manage/health/readiness")
    assert response.status == 503
    body = await response.json()
    assert body["checks"]["database"]["status"] == "DOWN"


async def test_metrics_in_prometheus_text_format(http: TestClient[Any, Any], setup: Wired) -> None:
    await http.post("/api/messages/out", json=arkivmelding_sbd(), headers=setup.sender)
    response = await http.get("/manage/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    assert (
        'budstikke_messages{direction="OUTGOING",status="OPPRETTET",service_identifier="DPO"} 1'
        in text
    )
    assert "budstikke_queue_depth " in text
    assert 'budstikke_delivery_latency_seconds_bucket{le="+Inf"} 0' in text


def test_access_log_masks_national_ids_and_secrets() -> None:
    assert mask("/api/messages/in?receiverIdentifier=01017012345") == (
        "/api/messages/in?receiverIdentifier=***********"
    )
    assert mask("/x?token=abc&page=1") == "/x?token=***&page=1"
    uuid = "/api/messages/out/6f1c2b1e-1111-4c1b-9a57-123456789012"
    assert mask(uuid) == uuid


async def test_access_log_never_prints_the_token(
    setup: Wired, caplog: pytest.LogCaptureFixture
) -> None:
    from aiohttp.test_utils import TestServer

    from access_point.api import SafeAccessLogger

    server = TestServer(setup.runtime.app)
    await server.start_server(access_log_class=SafeAccessLogger)
    async with TestClient(server) as http:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            await http.get(
                "/api/messages/in?receiverIdentifier=01017012345", headers=setup.receiver
            )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/api/messages/in" in logged
    assert setup.receiver_token not in logged
    assert "01017012345" not in logged
