"""Camera-measured darkness switches a black spot's light (image_health + night_light + lighting):
a camera at a black-spot site serving a dark picture in the daytime turns the site's light on with
a reason naming the camera; a bright picture lets it go off again after the minimum switch
interval. Real parts: Mosquitto, the lighting plugin's Modbus relay-board simulator, an HTTP
snapshot server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tests.support.health as testcam
from hub.clock import ManualClock
from plugins.lighting.simulator import RelayBoardSimulator
from tests.support.health import SnapshotServer, make_clip
from tests.support.hubrun import hub_from_yaml, make_plugins
from tests.support.mqtt import Recorder

BASE = "anninh"
NOON = datetime(2024, 6, 1, 5, 0, tzinfo=UTC)  # 12:00 in Ho Chi Minh City


def _yaml(mqtt_port: int, relay_port: int, snapshot_url: str) -> str:
    return f"""
hub: {{name: Test post, latitude: 11.03, longitude: 106.76, language: en, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mqtt_port}", discovery: false}}
sites:
  - {{id: kp3-tam, blackspot: true}}
  - {{id: cho, blackspot: false}}
devices:
  - {{id: light-kp3, platform: lighting, driver: modbus_coil, host: 127.0.0.1, port: {relay_port}, unit: 1,
     channel: 0, site: kp3-tam, poll_interval: 0.25, timeout: 1}}
  - {{id: cam-kp3, platform: testcam, site: kp3-tam, health_interval: 600, snapshot_url: "{snapshot_url}"}}
rules:
  night_light: {{min_switch_interval: 300, evaluate_interval: 0.2}}
  image_health: {{blackspot_interval: 0.4, raise_after: 2, clear_after: 2}}
"""


async def test_dark_picture_in_daytime_turns_blackspot_light_on_then_off(mosquitto: Any, tmp_path: Path) -> None:
    clock = ManualClock(NOON)
    srv = await SnapshotServer().start()
    srv.set_clip("cam", make_clip("dark"))
    try:
        async with RelayBoardSimulator({1: "waveshare"}, port=0) as sim:
            rec = await asyncio.to_thread(Recorder, mosquitto.port)
            try:
                async with hub_from_yaml(_yaml(mosquitto.port, sim.port, srv.url("cam")), tmp_path, clock=clock,
                                         plugins=make_plugins(("testcam", testcam))):
                    st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3",
                                                 lambda j: j.get("state") == "ON", 10.0)
                    assert "camera cam-kp3 sees darkness (brightness" in st["reason"], st
                    assert sim.relay(1, 0) is True
                    cam = rec.last(f"{BASE}/cam-kp3")
                    assert cam["dark"] is True and cam["brightness"] < 40 and "dark" in cam["image"]
                    ev = rec.events(BASE, "image_dark")
                    assert ev and ev[0]["device"] == "cam-kp3" and ev[0]["site"] == "kp3-tam"

                    # the street lamp is repaired: the camera sees again, but the light holds for
                    # the minimum switch interval
                    srv.set_clip("cam", make_clip("normal"))
                    await asyncio.to_thread(rec.wait_topic, f"{BASE}/cam-kp3", lambda j: j.get("dark") is False,
                                            10.0)
                    await asyncio.to_thread(rec.wait_event, BASE, "image_dark_cleared", 5.0, 0, device="cam-kp3")
                    await asyncio.sleep(0.6)
                    assert rec.last(f"{BASE}/light-kp3")["state"] == "ON" and sim.relay(1, 0) is True
                    mark = rec.count()
                    clock.advance(301)
                    st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3",
                                                 lambda j: j.get("state") == "OFF", 5.0, mark)
                    assert "daylight" in st["reason"], st
                    assert sim.relay(1, 0) is False
            finally:
                rec.close()
    finally:
        await srv.stop()
