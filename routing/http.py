"""What the registry HTTP clients share (KRR, the SMP, the population and entity registers).

:class:`RegistryHttp` is their base:

* the session: one given is shared and left open; one made on first use is the client's, and
  :meth:`~RegistryHttp.close` (or leaving ``async with client:``) closes it;
* one request at a time, HTTP redirects not followed, bounded by ``timeout`` when one is set, and
  the driver's failures (timeout, connection refused or reset) translated into
  :class:`~routing.errors.RegistryUnavailable` in the registry's own words;
* the body read with a size cap (:class:`~routing.errors.RegistryResponseError` beyond it).

What a status means, and what the body must be, stays with each client; :func:`is_transient`
says which statuses are worth trying again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from routing.errors import RegistryResponseError, RegistryUnavailable

__all__ = ["TRANSIENT_4XX", "RegistryHttp", "TokenSource", "is_transient", "resolve_token"]

#: a fixed bearer token, or an async function returning a fresh one (e.g. from Maskinporten)
TokenSource = str | Callable[[], Awaitable[str]]

#: 4xx statuses that say "not now" rather than "not this request"
TRANSIENT_4XX = (408, 429)
_CHUNK = 64 * 1024


def is_transient(status: int) -> bool:
    """HTTP 5xx, 408 and 429: the registry may answer if asked again later."""
    return status >= 500 or status in TRANSIENT_4XX


async def resolve_token(source: TokenSource) -> str:
    """The token itself (possibly empty: the caller says what that means)."""
    return source if isinstance(source, str) else await source()


class RegistryHttp:
    """The HTTP edge of one registry client.

    ``timeout`` bounds each request (``None``: only ``session_timeout``, the timeout of a
    session the client makes itself); ``max_response_bytes`` caps what :meth:`_read` accepts.
    Errors name the registry by :attr:`registry_name` and start their rules with
    :attr:`rule_prefix`; a client words them otherwise by overriding :meth:`_unreachable`,
    :meth:`_timed_out` and :meth:`_too_large`.
    """

    #: how errors name the registry ("KRR", "the SMP")
    registry_name = "the registry"
    #: how errors name an answer that is too large ("the SMP answer")
    answer_name = "the answer"
    #: the start of the errors' rules ("krr" gives ``krr-timeout``)
    rule_prefix = "registry"

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        *,
        timeout: float | None,
        max_response_bytes: int,
        session_timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._session = session
        self._own_session = session is None
        self._session_timeout = session_timeout

    # -- the session -------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            if self._session_timeout is None:
                self._session = aiohttp.ClientSession()
            else:
                self._session = aiohttp.ClientSession(timeout=self._session_timeout)
            self._own_session = True
        return self._session

    async def close(self) -> None:
        """Close the session if the client made it (a shared one is left to its owner)."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- how failures are worded -------------------------------------------------------------

    def _unreachable(self, exc: BaseException, what: str) -> Exception:
        """The error for a connection that failed (``exc``, the driver's; its message may
        carry the URL, so only its type is named) while asking for ``what``."""
        return RegistryUnavailable(
            f"{self.registry_name} cannot be reached: {type(exc).__name__}",
            rule=f"{self.rule_prefix}-unreachable",
        )

    def _timed_out(self, exc: TimeoutError, what: str) -> Exception:
        """The error for a request that took longer than allowed."""
        if self.timeout is None:
            return self._unreachable(exc, what)
        return RegistryUnavailable(
            f"{self.registry_name} did not answer within {self.timeout:g} s",
            rule=f"{self.rule_prefix}-timeout",
        )

    def _too_large(self, what: str) -> Exception:
        """The error for an answer over :attr:`max_response_bytes`."""
        return RegistryResponseError(
            f"{self.answer_name} is larger than {self.max_response_bytes} bytes",
            rule=f"{self.rule_prefix}-too-large",
        )

    # -- one request -------------------------------------------------------------------------

    @asynccontextmanager
    async def _request(
        self,
        method: str,
        url: str | URL,
        *,
        headers: Mapping[str, str],
        data: bytes | None = None,
        what: str = "",
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """``async with self._request(...) as response:`` one request, redirects not
        followed; a driver failure, in the request or while reading the response in the
        block, comes out as :meth:`_timed_out` or :meth:`_unreachable` (about ``what``)."""
        options: dict[str, Any] = {}
        if self.timeout is not None:
            options["timeout"] = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self._get_session().request(
                method, url, data=data, headers=headers, allow_redirects=False, **options
            ) as response:
                yield response
        except TimeoutError as exc:
            raise self._timed_out(exc, what) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc, what) from exc

    async def _read(self, response: aiohttp.ClientResponse, what: str = "") -> bytes:
        """The whole body, refused (:meth:`_too_large`) beyond :attr:`max_response_bytes`."""
        if (response.content_length or 0) > self.max_response_bytes:
            raise self._too_large(what)
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self.max_response_bytes:
                raise self._too_large(what)
        return bytes(body)
