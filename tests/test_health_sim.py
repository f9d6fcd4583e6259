"""Image health against a real camera plugin's simulator (Hikvision ISAPI, digest auth), and the
``anninh reference`` command line against the same simulator."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from hub.clock import ManualClock
from plugins.hikvision.simulator import HikvisionSimulator
from plugins.image_health.reference import ReferenceStore
from tests.support.health import make_clip
from tests.support.hubrun import hub_from_yaml, write_config
from tests.support.mqtt import Recorder

BASE = "anninh"
NOON = datetime(2024, 6, 1, 5, 0, tzinfo=UTC)


def _yaml(mqtt: str, port: int, interval: float = 0.4) -> str:
    return f"""
hub: {{latitude: 11.03, longitude: 106.76, data_dir: ./data}}
mqtt: {{server: "{mqtt}", discovery: false}}
sites: [{{id: kp3}}]
devices:
  - {{id: cam-kp3, platform: hikvision, site: kp3, host: 127.0.0.1, port: {port}, username: admin,
     password: !secret cam, event_stream: false, health_interval: {interval}}}
rules:
  image_health: {{blackspot_interval: 0}}
"""


async def test_hikvision_simulator_blurred_then_sharp(mosquitto: Any, tmp_path: Path) -> None:
    sim = await HikvisionSimulator("camera", username="admin", password="hik-pw-9").start()
    try:
        sim.set_picture(1, make_clip("blurred", 640, 360, frames=1)[0])
        rec = Recorder(mosquitto.port, topics=(f"{BASE}/#",))
        async with hub_from_yaml(_yaml(mosquitto.url, sim.port), tmp_path, clock=ManualClock(NOON),
                                 secrets={"cam": "hik-pw-9"}):
            ev = await asyncio.to_thread(rec.wait_event, BASE, "image_blurry", 10.0)
            assert ev["device"] == "cam-kp3" and ev["sharpness"] < 1.65
            # the simulator's still picture never changes: frozen too (a live camera's would)
            await asyncio.to_thread(rec.wait_event, BASE, "image_frozen", 10.0)
            mark = rec.count()
            sim.set_picture(1, make_clip("normal", 640, 360, frames=1)[0])
            await asyncio.to_thread(rec.wait_event, BASE, "image_blurry_cleared", 10.0, mark)
            st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/cam-kp3", lambda j: "blurry" not in j["image"],
                                         5.0, mark)
            assert st["brightness"] > 80 and st["sharpness"] > 1.72
        rec.close()
        assert all(b"hik-pw-9" not in m.payload for m in rec.messages)
    finally:
        await sim.stop()


async def _anninh(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hub.cli", "--lang", "en", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_reference_cli_set_show_clear(tmp_path: Path) -> None:
    sim = await HikvisionSimulator("camera", username="admin", password="hik-pw-9").start()
    try:
        config = write_config(tmp_path, _yaml("mqtt://127.0.0.1:1", sim.port, 600), {"cam": "hik-pw-9"})
        sim.set_picture(1, make_clip("dark", 640, 360, frames=1)[0])
        rc, out, err = await _anninh("reference", "set", "cam-kp3", "-c", str(config))
        assert rc == 1 and "dark" in err and "--force" in err, (out, err)
        sim.set_picture(1, make_clip("normal", 640, 360, frames=1)[0])
        rc, out, err = await _anninh("reference", "set", "cam-kp3", "-c", str(config))
        assert rc == 0, err
        store = ReferenceStore(tmp_path / "data")
        meta = store.meta("cam-kp3")
        assert meta is not None and meta["source"] == "cli"
        sim.set_picture(1, make_clip("shifted", 640, 360, frames=1)[0])
        png = tmp_path / "show.png"
        rc, out, err = await _anninh("reference", "show", "cam-kp3", "-c", str(config), "-o", str(png), "--live")
        assert rc == 0, err
        summary = json.loads(out.splitlines()[-1])
        assert 0.07 < summary["shift_x"] < 0.13, summary
        shown = cv2.imread(str(png))
        assert shown is not None and shown.shape == (360, 1920, 3)
        rc, out, err = await _anninh("reference", "show", "nope", "-c", str(config), "-o", str(png))
        assert rc == 2 and "cam-kp3" in err
        rc, out, err = await _anninh("reference", "clear", "cam-kp3", "-c", str(config))
        assert rc == 0 and not store.has("cam-kp3")
        assert "hik-pw-9" not in out + err
    finally:
        await sim.stop()
