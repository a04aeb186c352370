"""An access log that never prints tokens or national ids.

aiohttp's default format logs the request line with its query string and lets a format name
any header; this logger writes a fixed set of fields instead: method, path, query with every
value that looks like a national id (11 digits) or a secret masked, status, size, time. The
``Authorization`` header is never read.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

__all__ = ["SafeAccessLogger", "mask"]

_NATIONAL_ID = re.compile(r"(?<!\d)\d{11}(?!\d)")
_SECRET_PARAM = re.compile(r"(?i)((?:token|secret|password|key)=)[^&]*")


def mask(text: str) -> str:
    """``text`` with 11-digit runs and secret-looking query values replaced by asterisks."""
    text = _NATIONAL_ID.sub("***********", text)
    return _SECRET_PARAM.sub(r"\1***", text)


class SafeAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        target = request.rel_url.raw_path
        if request.rel_url.raw_query_string:
            target += "?" + request.rel_url.raw_query_string
        self.logger.info(
            '%s "%s %s" %d %d %.1fms',
            request.remote or "-",
            request.method,
            mask(target),
            response.status,
            response.body_length,
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
