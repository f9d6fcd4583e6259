"""A commune for the web console's tests: a real Mosquitto (the caller's), a UPS simulator, a relay
board simulator, a Hikvision camera simulator, the hub, and its web console on a free port."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from hub.app import RunningHub
from hub.web.server import WebConsole
from plugins.hikvision.simulator import HikvisionSimulator
from plugins.lighting.simulator import RelayBoardSimulator
from plugins.ups_modbus.simulator import UpsSimulator
from tests.support.hubrun import hub_from_yaml
from tests.support.hubrun import wait_until as hubrun_wait_until

XSS = "<script>alert(1)</script>"
CAM_PASSWORD = "cam-secret-9x"
PASSWORDS = {"an": "an-pass-1", "thau1": "thau-pass-2", "xem": "xem-pass-3"}


@dataclass
class Commune:
    running: RunningHub
    console: WebConsole
    url: str
    ups: UpsSimulator
    relays: RelayBoardSimulator
    cam: HikvisionSimulator

    @property
    def hub(self) -> Any:
        return self.running.hub


def config_text(mqtt_port: int, ups: int, relays: int, cam: int, extra: str = "") -> str:
    return extra + f"""
hub: {{data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mqtt_port}", discovery: false}}
web: {{port: 0}}
sites:
  - {{id: kp3, name: "{XSS}", latitude: 10.95, longitude: 106.82, blackspot: true}}
  - {{id: cho, name: "Chợ Mới", latitude: 10.96, longitude: 106.83}}
users:
  - {{name: an, role: officer, password: {PASSWORDS["an"]}}}
  - {{name: thau1, role: contractor, password: {PASSWORDS["thau1"]}, sites: [cho]}}
  - {{name: xem, role: viewer, password: {PASSWORDS["xem"]}}}
devices:
  - {{id: ups-kp3, name: UPS KP3, platform: ups_modbus, site: kp3, host: 127.0.0.1, port: {ups}, unit: 1,
      model: apc_smt, poll_interval: 0.2, timeout: 1}}
  - {{id: light-kp3, name: Đèn KP3, platform: lighting, site: kp3, driver: modbus_coil, host: 127.0.0.1,
      port: {relays}, unit: 1, channel: 0, poll_interval: 0.2}}
  - {{id: light-cho, name: Đèn chợ, platform: lighting, site: cho, driver: modbus_coil, host: 127.0.0.1,
      port: {relays}, unit: 1, channel: 1, poll_interval: 0.2}}
  - {{id: ups-cho, name: UPS chợ, platform: ups_modbus, site: cho, host: 127.0.0.1, port: {ups}, unit: 2,
      model: apc_smt, poll_interval: 0.2, timeout: 1}}
  - {{id: cam-kp3, name: Camera KP3, platform: hikvision, site: kp3, host: 127.0.0.1, port: {cam},
      username: admin, password: {CAM_PASSWORD}, poll_interval: 1, timeout: 3}}
rules:
  image_health: {{enabled: false}}
  night_light: {{enabled: false}}
"""


@contextlib.asynccontextmanager
async def commune(tmp_path: Path, mqtt_port: int, extra: str = "") -> AsyncIterator[Commune]:
    """``extra``: more top-level config sections (YAML), e.g. ``tickets:``."""
    ups = await UpsSimulator({1: "apc_smt", 2: "apc_smt"}, port=0).start()
    relays = await RelayBoardSimulator(port=0).start()
    cam = await HikvisionSimulator("camera", password=CAM_PASSWORD).start()
    try:
        async with hub_from_yaml(config_text(mqtt_port, ups.port, relays.port, cam.port, extra),
                                 tmp_path) as running:
            hub = running.hub
            console = WebConsole(hub)
            url = await console.start()
            try:
                import asyncio

                loop = asyncio.get_running_loop()
                t0 = loop.time()
                while not all(hub.availability.get(d) for d in hub.runners):
                    assert loop.time() - t0 < 15, hub.availability
                    await asyncio.sleep(0.05)
                yield Commune(running, console, url, ups, relays, cam)
            finally:
                await console.stop()
    finally:
        for sim in (ups, relays, cam):
            await sim.stop()


async def wait_until(predicate: Any, timeout: float = 5.0, what: str = "") -> None:
    """:func:`tests.support.hubrun.wait_until` with the console tests' 5 s."""
    await hubrun_wait_until(predicate, timeout, what)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def client() -> aiohttp.ClientSession:
    # the console is on 127.0.0.1: aiohttp keeps cookies of IP addresses only with unsafe=True
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(session: aiohttp.ClientSession, url: str, name: str, password: str | None = None) -> tuple[int, str]:
    async with session.get(url + "login") as r:
        csrf = csrf_of(await r.text())
    secret = password if password is not None else PASSWORDS[name]
    async with session.post(url + "login", data={"csrf": csrf, "name": name, "password": secret}) as r:
        return r.status, await r.text()
