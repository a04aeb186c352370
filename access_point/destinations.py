"""Where the access point may send HTTP requests on a client's say-so (webhook push endpoints).

A push endpoint is chosen by an API client, so without a rule it could make the access point
POST to anything it can reach: the cloud metadata service at 169.254.169.254, or an internal
admin interface. The rule is applied to the addresses a host name resolves to, inside the
resolver the HTTP client connects through, so the address checked is the address connected to
(no DNS-rebinding window). By default loopback and private networks are allowed (case systems
usually live inside the agency's network, often on the same host) and link-local, multicast,
unspecified and reserved addresses are refused; ``BUDSTIKKE_WEBHOOK_ALLOWED_NETWORKS`` narrows
that to a list of networks.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

__all__ = ["DestinationPolicy", "RefusedDestination", "guarded_connector", "refused"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedDestination(OSError):
    """Every address of the host is outside what the policy allows."""


@dataclass(frozen=True)
class DestinationPolicy:
    #: when set, only addresses inside these networks are allowed
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> DestinationPolicy:
        """``10.0.0.0/8, 192.168.1.10`` (a comma-separated list of networks or addresses)."""
        networks = tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in text.split(",")
            if part.strip()
        )
        return cls(networks)

    def allows(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if self.allowed_networks:
            return any(address in network for network in self.allowed_networks)
        return not (
            address.is_link_local
            or address.is_multicast
            or address.is_unspecified
            or address.is_reserved
        )


class _GuardedResolver(AbstractResolver):
    def __init__(self, policy: DestinationPolicy) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._policy.allows(ipaddress.ip_address(r["host"]))]
        if not allowed:
            raise RefusedDestination(
                f"{host} resolves only to addresses webhooks may not be sent to"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def guarded_connector(policy: DestinationPolicy, **kwargs: Any) -> aiohttp.TCPConnector:
    """A connector whose every connection goes to an address ``policy`` allows."""
    return aiohttp.TCPConnector(resolver=_GuardedResolver(policy), **kwargs)


def refused(exc: BaseException) -> RefusedDestination | None:
    """The policy refusal behind an aiohttp connection error, if that is what it was."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, RefusedDestination):
            return current
        seen.add(id(current))
        os_error = getattr(current, "os_error", None)
        current = os_error if isinstance(os_error, BaseException) else current.__cause__
    return None
