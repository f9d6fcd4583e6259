"""A Shelly Gen2 relay (Plus 1 / Plus 2PM style) answering its HTTP RPC API, for tests and
`anninh simulate shelly_light`.

Written from Shelly's Gen2 API documentation (shelly-api-docs.shelly.cloud/gen2):

* ``GET /rpc/Shelly.GetDeviceInfo`` → ``{"id", "mac", "model", "gen": 2, "fw_id", "ver", "app",
  "auth_en"}``;
* ``GET /rpc/Switch.GetStatus?id=N`` → ``{"id", "source", "output", "apower", "voltage", "current",
  "aenergy": {"total", "by_minute", "minute_ts"}, "temperature": {"tC", "tF"}}``, plus
  ``timer_started_at`` / ``timer_duration`` while a flip-back timer runs;
* ``GET /rpc/Switch.Set?id=N&on=true|false[&toggle_after=S]`` → ``{"was_on": bool}``; the output
  flips back after ``toggle_after`` seconds (``source`` then ``"timer"``);
* an error is an RPC error object ``{"code", "message"}`` with HTTP status 500 (``-103`` invalid
  argument, ``-105`` component not found, ``404`` unknown method).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

MODEL = "SNSW-102P16EU"  # Shelly Plus 2PM: two switch components
INVALID_ARGUMENT, NOT_FOUND = -103, -105


class ShellySimulator:
    """Relays ``switch:0..channels-1``; ``stuck`` makes a channel ignore Switch.Set (a welded relay)."""

    def __init__(self, channels: int = 2, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.output = [False] * channels
        self.source = ["init"] * channels
        self.stuck: set[int] = set()
        self.timers: dict[int, tuple[float, float, asyncio.TimerHandle]] = {}
        self.requests: list[str] = []
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ behaviour
    def press(self, channel: int) -> None:
        """Someone pressed the wall switch wired to the device's input."""
        self._set(channel, not self.output[channel], "switch")

    def _set(self, channel: int, on: bool, source: str) -> None:
        old = self.timers.pop(channel, None)
        if old:
            old[2].cancel()
        if channel not in self.stuck:
            self.output[channel] = on
        self.source[channel] = source

    def _status(self, n: int) -> dict[str, Any]:
        watts = 48.2 if self.output[n] else 0.0
        st: dict[str, Any] = {
            "id": n, "source": self.source[n], "output": self.output[n], "apower": watts, "voltage": 229.8,
            "current": round(watts / 229.8, 3), "aenergy": {"total": 1234.5, "by_minute": [0.0, 0.0, 0.0],
                                                           "minute_ts": int(time.time()) // 60 * 60},
            "temperature": {"tC": 41.3, "tF": 106.3}}
        if n in self.timers:
            st["timer_started_at"], st["timer_duration"] = self.timers[n][:2]
        return st

    # ------------------------------------------------------------------ HTTP
    @staticmethod
    def _error(code: int, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message}, status=500)

    def _channel(self, request: web.Request) -> int | web.Response:
        raw = request.query.get("id")
        if raw is None:
            return self._error(INVALID_ARGUMENT, "Missing required argument 'id'!")
        if not raw.isdigit() or int(raw) >= len(self.output):
            return self._error(NOT_FOUND, f"Argument 'id', value {raw} not found!")
        return int(raw)

    async def _rpc(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.requests.append(method)
        handler = {"Shelly.GetDeviceInfo": self._device_info, "Switch.GetStatus": self._get_status,
                   "Switch.Set": self._switch_set}.get(method)
        if handler is None:
            return self._error(404, f"No handler for {method}")
        return handler(request)

    def _device_info(self, request: web.Request) -> web.Response:
        return web.json_response({"name": None, "id": "shellyplus2pm-a8032ab12345", "mac": "A8032AB12345",
                                  "model": MODEL, "gen": 2, "fw_id": "20231107-164738/1.0.8-g0d5d5e1",
                                  "ver": "1.0.8", "app": "Plus2PM", "auth_en": False, "auth_domain": None})

    def _get_status(self, request: web.Request) -> web.Response:
        n = self._channel(request)
        return n if isinstance(n, web.Response) else web.json_response(self._status(n))

    def _switch_set(self, request: web.Request) -> web.Response:
        n = self._channel(request)
        if isinstance(n, web.Response):
            return n
        on = request.query.get("on")
        if on not in ("true", "false"):
            return self._error(INVALID_ARGUMENT, "Missing or invalid argument 'on'!")
        after = request.query.get("toggle_after")
        try:
            delay = float(after) if after is not None else None
        except ValueError:
            return self._error(INVALID_ARGUMENT, "Invalid argument 'toggle_after'!")
        was_on = self.output[n]
        self._set(n, on == "true", "http")
        if delay is not None and delay > 0:
            handle = asyncio.get_running_loop().call_later(delay, self._set, n, on != "true", "timer")
            self.timers[n] = (round(time.time(), 2), delay, handle)
        return web.json_response({"was_on": was_on})

    async def start(self) -> ShellySimulator:
        app = web.Application()
        app.router.add_get("/rpc/{method}", self._rpc)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for _, _, handle in self.timers.values():
            handle.cancel()
        if self._runner is not None:
            await self._runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="anninh simulate shelly_light",
                                description="A Shelly Gen2 relay answering /rpc/Switch.GetStatus and /rpc/Switch.Set.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--channels", type=int, default=2, help="switch components (default 2)")
    args = p.parse_args(argv)

    async def serve() -> None:
        sim = await ShellySimulator(args.channels, args.host, args.port).start()
        print(f"Shelly Gen2 simulator on http://{args.host}:{sim.port}/rpc/Switch.GetStatus?id=0", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
