"""A cheap "is it listening again?" check used between reconnect attempts: a bare TCP connect,
closed at once. No protocol, no login, so it costs the device or broker almost nothing and can run
every few seconds while the capped backoff keeps the real (re)connects rare."""

from __future__ import annotations

import asyncio


async def tcp_probe(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts a TCP connection at ``host:port`` within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True
