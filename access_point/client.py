"""A client for the business API (the NextMove REST API), as a case or archive system uses it.

The CLI (``budstikke send``, ``status``, ``inbox``), the demo and the service benchmark talk
to a running access point through this, over HTTP, exactly as an integrating system would.
Errors come back as RFC 7807 problem details and are translated here, at the boundary, into
the :mod:`sbdh.errors` tree; connection failures become :class:`TransientDeliveryError`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp

from sbdh.errors import (
    BusError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TransientDeliveryError,
    Unauthorized,
)

__all__ = ["ApiClient"]

_CHUNK = 1 << 20
_BY_STATUS: Mapping[int, type[BusError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
}


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


class ApiClient:
    """One client (one API token) of one access point."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._own_session = session is None
        self._session = session or aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout)
        )

    def __repr__(self) -> str:
        return f"ApiClient({self.base_url!r}, token=***)"

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session:
            await self._session.close()

    # ------------------------------------------------------------------ plumbing

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        headers.update(extra or {})
        return headers

    async def _raise_for(self, response: aiohttp.ClientResponse) -> None:
        if response.status < 400:
            return
        text = await response.text()
        detail = text
        rule: str | None = None
        try:
            problem = json.loads(text)
        except ValueError:
            problem = None
        if isinstance(problem, dict):
            detail = str(problem.get("detail") or problem.get("title") or text)
            errors = problem.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                rule = errors[0].get("rule") or None
        error = _BY_STATUS.get(response.status)
        if error is None:
            if response.status >= 500:
                raise TransientDeliveryError(f"{response.status} from {response.url}: {detail}")
            raise InvalidInput(f"{response.status} from {response.url}: {detail}", rule=rule)
        raise error(detail, rule=rule)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                params=params,
                data=data,
                json=json_body,
                headers=self._headers(headers),
            ) as response:
                await self._raise_for(response)
                if response.status == 204 or response.content_length == 0:
                    return None
                if response.content_type.endswith("json"):
                    return await response.json()
                return await response.read()
        except aiohttp.ClientError as exc:
            raise TransientDeliveryError(f"{method} {path}: {exc}") from exc

    # ------------------------------------------------------------------ outgoing

    async def create(self, sbd: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/messages/out``: create a message from its SBD (bare NextMove JSON)."""
        result: dict[str, Any] = await self._request("POST", "/api/messages/out", json_body=sbd)
        return result

    async def upload(
        self,
        message_id: str,
        path: Path,
        *,
        filename: str | None = None,
        mime_type: str = "application/octet-stream",
        title: str | None = None,
    ) -> None:
        """``PUT /api/messages/out/{id}``: stream one file; Content-Disposition names it."""
        name = filename or path.name
        disposition = f"attachment; filename*=UTF-8''{quote(name)}"
        if name.isascii() and '"' not in name:
            disposition = f'attachment; filename="{name}"'
        params = {"title": title} if title else None
        headers = {"Content-Type": mime_type, "Content-Disposition": disposition}
        await self._request(
            "PUT",
            f"/api/messages/out/{quote(message_id)}",
            params=params,
            data=_file_chunks(path),
            headers=headers,
        )

    async def send(self, message_id: str) -> None:
        """``POST /api/messages/out/{id}``: send a created message with its files."""
        await self._request("POST", f"/api/messages/out/{quote(message_id)}")

    async def get_outgoing(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._request(
            "GET", f"/api/messages/out/{quote(message_id)}"
        )
        return result

    # ------------------------------------------------------------------ incoming

    async def peek(self, **filters: str) -> dict[str, Any] | None:
        """``GET /api/messages/in/peek``: the next message for us, locked; None when none."""
        try:
            result: dict[str, Any] | None = await self._request(
                "GET", "/api/messages/in/peek", params=filters or None
            )
        except NotFound:
            return None
        return result or None

    async def pop(self, message_id: str, destination: Path) -> int:
        """``GET /api/messages/in/pop/{id}``: stream the message's ASiC-E to ``destination``."""
        url = f"{self.base_url}/api/messages/in/pop/{quote(message_id)}"
        written = 0
        try:
            async with self._session.get(
                url, headers=self._headers({"Accept": "application/octet-stream"})
            ) as response:
                await self._raise_for(response)
                with destination.open("wb") as out:
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        out.write(chunk)
                        written += len(chunk)
        except aiohttp.ClientError as exc:
            raise TransientDeliveryError(f"GET {url}: {exc}") from exc
        return written

    async def acknowledge(self, message_id: str) -> None:
        """``DELETE /api/messages/in/{id}``: we have the message; the sender sees LEVERT."""
        await self._request("DELETE", f"/api/messages/in/{quote(message_id)}")

    # ------------------------------------------------------------------ statuses

    async def statuses(self, message_id: str) -> list[dict[str, Any]]:
        """``GET /api/statuses/{id}``: the message's status history, oldest first."""
        result = await self._request("GET", f"/api/statuses/{quote(message_id)}")
        if isinstance(result, dict) and "content" in result:
            items: list[dict[str, Any]] = result["content"]
            return items
        return list(result or [])
