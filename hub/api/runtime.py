"""Small asyncio and error helpers a plugin may use (part of plugin API v1).

``cancel_and_wait`` stops a plugin's own tasks the way the hub stops its device runners;
``describe_error`` turns an exception into the short, password-free cause the hub logs and
publishes (``timed out after 5 s``, ``ConnectionRefusedError: ...``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hub.api import DeviceError
from hub.redact import redact

log = logging.getLogger("hub.core")


async def cancel_and_wait(tasks: list[asyncio.Task[Any]], what: str, limit: float = 10.0) -> None:
    """Cancel tasks and wait for them, cancelling again while they run: on Python 3.11 a
    cancellation that lands as an ``asyncio.timeout`` expires can be turned into a TimeoutError
    and lost (seen: a device runner that kept polling and a hub stop that never returned)."""
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while pending and loop.time() < deadline:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.2)
    if pending:
        log.error("%d %s task(s) did not stop within %.0f s", len(pending), what, limit)


def describe_error(exc: BaseException, timeout: float | None = None) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s" if timeout else "timed out"
    if isinstance(exc, DeviceError):
        return redact(str(exc)) or type(exc).__name__
    text = str(exc)
    return redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
