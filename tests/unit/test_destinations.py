"""Webhook push endpoints cannot be used to reach the metadata service or other forbidden hosts."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from access_point.destinations import DestinationPolicy
from access_point.webhooks import Webhooks
from sbdh.errors import PermanentDeliveryError


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),  # a case system on the same host
        ("10.1.2.3", True),  # inside the agency's network
        ("192.168.0.10", True),
        ("93.184.216.34", True),
        ("169.254.169.254", False),  # cloud metadata
        ("fe80::1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::ffff:169.254.169.254", False),  # IPv4-mapped does not get around it
        ("240.0.0.1", False),
    ],
)
def test_default_policy(address: str, allowed: bool) -> None:
    assert DestinationPolicy().allows(ipaddress.ip_address(address)) is allowed


def test_allow_list_narrows_to_its_networks() -> None:
    policy = DestinationPolicy.parse(" 10.0.0.0/8, 192.168.1.10 ")
    assert policy.allows(ipaddress.ip_address("10.9.9.9"))
    assert policy.allows(ipaddress.ip_address("192.168.1.10"))
    assert not policy.allows(ipaddress.ip_address("192.168.1.11"))
    assert not policy.allows(ipaddress.ip_address("127.0.0.1"))


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://localhost:{server.port}/hook", bodies
    finally:
        await server.close()


async def test_a_refused_host_is_never_contacted_and_not_retried(
    receiver: tuple[str, list[bytes]],
) -> None:
    url, bodies = receiver
    hooks = Webhooks(None, destinations=DestinationPolicy.parse("10.0.0.0/8"))  # type: ignore[arg-type]
    try:
        with pytest.raises(PermanentDeliveryError, match="refused"):
            await hooks._post(url, "secret", b"{}", delivery="1")
    finally:
        await hooks.close()
    assert bodies == []


async def test_an_allowed_host_gets_the_delivery(receiver: tuple[str, list[bytes]]) -> None:
    url, bodies = receiver
    hooks = Webhooks(None)  # type: ignore[arg-type]
    try:
        assert await hooks._post(url, "secret", b'{"a":1}', delivery="1") == 204
    finally:
        await hooks.close()
    assert bodies == [b'{"a":1}']
