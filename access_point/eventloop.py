"""The event loop the long-running commands (``serve``, ``worker``) run on.

uvloop (a dependency on every platform but Windows), asyncio's own loop where it is missing.
Every request and every job is a handful of database and broker round trips, and on the
default loop each one costs a trip through Python-level transport code; uvloop does that part
in C (libuv), which leaves more of each core to the service itself. Nothing depends on it:
the code is plain asyncio and the tests run on the default loop.
"""

from __future__ import annotations

import asyncio
import logging

__all__ = ["use_fast_loop"]

log = logging.getLogger(__name__)


def use_fast_loop() -> str:
    """Make new event loops uvloop's when it is installed; the name of the loop in use."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
