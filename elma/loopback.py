"""A loopback aiohttp server for the local stand-ins: the ELMA SMP (:class:`elma.server.ElmaServer`)
and the registers and OCSP responder of :mod:`adapters.standins`.

:class:`LoopbackHttpServer` serves one :class:`aiohttp.web.Application` on ``host:port`` (port 0
picks a free one, and :attr:`~LoopbackHttpServer.port` says which once it listens), with no
access log (request lines may carry national ids). :class:`Serving` is the ``async with`` part
alone, for servers that are not aiohttp (the SML's DNS stand-in).

It lives here, not in ``adapters``, because ``elma`` depends only on ``sbdh``; the stand-ins
import it from here.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from aiohttp import web

__all__ = ["LoopbackHttpServer", "Serving"]


class Serving:
    """``async with server:`` starts it and stops it again."""

    async def start(self) -> object:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class LoopbackHttpServer(Serving):
    """``app`` served on ``host:port`` (port 0 picks a free one).

    Subclasses name themselves in :attr:`server_name` (for the "not running" error) and announce
    themselves in :meth:`_started`, called once the port is known.
    """

    #: what the server is called in errors ("the KRR stand-in")
    server_name = "the server"

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.server_name} is not running")
        return self._port

    @property
    def url(self) -> str:
        """The base URL clients are given."""
        return f"http://{self.host}:{self.port}"

    def _started(self) -> None:
        """Called once the server listens (:attr:`port` is known), before :meth:`start`
        returns."""

    async def start(self) -> str:
        """Listen; returns :attr:`url`."""
        # no access log: the request line may hold a national id
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._started()
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._port = None
