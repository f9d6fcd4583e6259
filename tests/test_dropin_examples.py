"""The two example drop-in plugins (examples/plugins/shelly_light, examples/plugins/nut_ups), written
only against hub.api, copied into a data dir and run by `anninh run` as a real process against a
real Mosquitto and their own simulators over real sockets: state, officer commands with holds
that survive a restart, the night rule switching the light, power_lost from the UPS, and
`anninh simulate` / `anninh plugins` finding them."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest

from hub.plugins import PluginManager
from hub.process import stop_process
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Recorder

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "plugins"
BASE = "anninh"


def _install(data: Path, *names: str) -> dict[str, ModuleType]:
    """Copy the drop-ins into ``data/plugins`` and import their simulators the way the hub imports
    the drop-ins (so the test uses the folder's own simulator)."""
    for name in names:
        shutil.copytree(EXAMPLES / name, data / "plugins" / name)
    pm = PluginManager().discover(data, builtin=False, entry_points=False)
    assert set(pm.plugins) == set(names), pm.problems
    return {n: importlib.import_module(f"anninh_dropin_{n}.simulator") for n in names}


def _night_longitude(now: datetime) -> float:
    """A longitude where it is local solar midnight now: the night rule sees night at once."""
    hours = now.hour + now.minute / 60
    return round((-hours * 15 + 180) % 360 - 180, 2)


def _write(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    cfg.chmod(0o600)
    return cfg


@contextmanager
def _hub(cfg: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = open(cfg.parent / "hub.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "-c", str(cfg)], stdout=log, stderr=log,
                            cwd=cfg.parent)
    try:
        yield proc
    finally:
        stop_process(proc)
        log.close()


async def _wait(rec: Recorder, topic: str, pred: Any, after: int, timeout: float = 20) -> dict[str, Any]:
    return await asyncio.to_thread(rec.wait_topic, topic, pred, timeout, after)


LIGHT = """\
hub: {{data_dir: ./data, latitude: 0.0, longitude: {lon}, timezone: Asia/Ho_Chi_Minh, language: en}}
mqtt: {{server: "mqtt://127.0.0.1:{mqtt}", discovery: false}}
sites: [{{id: kp3, name: Khu pho 3, blackspot: true}}]
devices:
  - {{id: light-kp3, platform: shelly_light, site: kp3, host: 127.0.0.1, port: {port}, channel: 1,
     poll_interval: 0.3, timeout: 2}}
users: [{{name: an, role: officer, password: officer-pw-1}}]
rules: {{night_light: {{min_switch_interval: 0, evaluate_interval: 0.5}}}}
"""


async def test_shelly_light_dropin(tmp_path: Path, mosquitto: Mosquitto) -> None:
    sims = _install(tmp_path / "data", "shelly_light")
    sim = await sims["shelly_light"].ShellySimulator(channels=2).start()
    light = f"{BASE}/light-kp3"
    rec = await asyncio.to_thread(Recorder, mosquitto.port, (light, f"{light}/availability", f"{BASE}/bridge/event"))
    cfg = _write(tmp_path, LIGHT.format(lon=_night_longitude(datetime.now(UTC)), mqtt=mosquitto.port, port=sim.port))
    try:
        with _hub(cfg):
            # the night rule switches the light on (auto mode, its reason)
            st = await _wait(rec, light, lambda j: j.get("state") == "ON", 0)
            assert st["mode"] == "auto" and "night" in st["reason"], st
            assert sim.output == [False, True]
            # an officer switches it off for an hour: manual, held, and the relay really off
            mark = rec.count()
            rec.publish(f"{light}/set/an", json.dumps({"state": "OFF", "hold": 3600}))
            st = await _wait(rec, light, lambda j: j.get("mode") == "manual", mark)
            assert st["state"] == "OFF" and st["hold_until"] and "officer an" in st["reason"], st
            assert sim.output[1] is False
            held = st["hold_until"]
        # a restarted hub keeps the hold: the light stays off at night
        mark = rec.count()
        with _hub(cfg):
            st = await _wait(rec, light, lambda j: j.get("state") is not None and "restart" in (j.get("reason") or ""),
                             mark)
            assert st["mode"] == "manual" and st["hold_until"] == held and st["state"] == "OFF", st
            await asyncio.sleep(1.5)  # three night-rule evaluations
            assert sim.output[1] is False and rec.last(light)["state"] == "OFF"
            # handed back to automatic: the night rule switches it on again
            mark = rec.count()
            rec.publish(f"{light}/set/an", json.dumps({"mode": "auto"}))
            st = await _wait(rec, light, lambda j: j.get("mode") == "auto" and j.get("state") == "ON", mark)
            assert sim.output[1] is True
            # a timed ON arms the relay's own flip-back timer (toggle_after)
            mark = rec.count()
            rec.publish(f"{light}/set/an", json.dumps({"state": "ON", "hold": 600}))
            await _wait(rec, light, lambda j: j.get("mode") == "manual", mark)
            assert sim.timers[1][1] == 600
            # a welded relay: the hub says so and publishes the real state
            sim.stuck.add(1)
            mark = rec.count()
            rec.publish(f"{light}/set/an", json.dumps({"state": "OFF"}))
            ev = await asyncio.to_thread(rec.wait_event, BASE, "relay_mismatch", 20, mark)
            assert (ev["requested"], ev["actual"], ev["channel"], ev["device"]) == ("OFF", "ON", 1, "light-kp3")
            st = await _wait(rec, light, lambda j: "did not follow" in (j.get("reason") or ""), mark)
            assert st["state"] == "ON"
            # someone presses the wall switch
            sim.stuck.clear()
            mark = rec.count()
            sim.press(1)
            st = await _wait(rec, light, lambda j: j.get("state") == "OFF", mark)
            assert "outside the hub" in st["reason"]
            # the device goes away: offline, state unknown
            mark = rec.count()
            await sim.stop()
            await _wait(rec, f"{light}/availability", lambda j: j["state"] == "offline", mark)
    finally:
        await sim.stop()
        rec.close()


UPS = """\
hub: {{data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mqtt}", discovery: false}}
sites: [{{id: kp3, name: Khu pho 3}}]
devices:
  - {{id: ups-kp3, platform: nut_ups, site: kp3, host: 127.0.0.1, port: {port}, ups: ups1,
     username: monuser, password: !secret nut_pw, low_battery_charge: 50, poll_interval: 0.3, timeout: 2}}
"""


async def test_nut_ups_dropin(tmp_path: Path, mosquitto: Mosquitto) -> None:
    sims = _install(tmp_path / "data", "nut_ups")
    nut = sims["nut_ups"]
    server = await nut.NutServer(users={"monuser": ("s3cret-nut-pw", {"ups1"})}).start()
    ups = f"{BASE}/ups-kp3"
    rec = await asyncio.to_thread(Recorder, mosquitto.port, (ups, f"{ups}/availability", f"{BASE}/bridge/event",
                                                              f"{BASE}/site/kp3"))
    cfg = _write(tmp_path, UPS.format(mqtt=mosquitto.port, port=server.port))
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("nut_pw: s3cret-nut-pw\n")
    secrets.chmod(0o600)
    try:
        with _hub(cfg):
            st = await _wait(rec, ups, lambda j: j.get("status") is not None, 0)
            assert st == {**st, "status": "OL CHRG", "on_battery": False, "low_battery": False, "alarm": None,
                          "battery_charge": 100, "battery_runtime": 2400, "input_voltage": 229.5, "load": 23}
            assert server.logins == [("monuser", "ups1")]
            await _wait(rec, f"{BASE}/site/kp3", lambda j: j.get("power") == "ok", 0)
            # mains lost: status from upsd, on_battery, the site's power_lost
            mark = rec.count()
            server.mains_lost(charge=80)
            st = await _wait(rec, ups, lambda j: j.get("on_battery") is True, mark)
            assert st["status"] == "OB DISCHRG" and st["low_battery"] is False
            ev = await asyncio.to_thread(rec.wait_event, BASE, "power_lost", 20, mark)
            assert ev["site"] == "kp3"
            await asyncio.to_thread(rec.wait_event, BASE, "on_battery", 20, mark, device="ups-kp3")
            # below the configured threshold the base sets LB (NUT ignorelb), and an alarm leads the status
            mark = rec.count()
            server.units["ups1"].update({"battery.charge": "40", "ups.alarm": "Replace battery!"})
            st = await _wait(rec, ups, lambda j: j.get("low_battery") is True, mark)
            assert st["status"] == "ALARM OB DISCHRG LB" and st["alarm"] == "Replace battery!", st
            await asyncio.to_thread(rec.wait_event, BASE, "low_battery", 20, mark)
            # mains back
            mark = rec.count()
            server.units["ups1"].pop("ups.alarm")
            server.units["ups1"]["battery.charge"] = "90"
            server.mains_back()
            await asyncio.to_thread(rec.wait_event, BASE, "power_restored", 20, mark)
            # the driver loses its UPS: upsd says DATA-STALE, the device goes offline, fields null
            mark = rec.count()
            server.stale.add("ups1")
            await _wait(rec, f"{ups}/availability", lambda j: j["state"] == "offline", mark)
        log = (tmp_path / "hub.log").read_text()
        assert "s3cret-nut-pw" not in log and "DATA-STALE" in log
        assert all("s3cret-nut-pw" not in m.payload.decode() for m in rec.messages)
    finally:
        await server.stop()
        rec.close()


async def test_nut_wrong_password_is_an_auth_error(tmp_path: Path, mosquitto: Mosquitto) -> None:
    sims = _install(tmp_path / "data", "nut_ups")
    server = await sims["nut_ups"].NutServer(users={"monuser": ("right-pw", {"ups1"})}).start()
    cfg = _write(tmp_path, UPS.replace("!secret nut_pw", "wrong-pw-123").format(mqtt=mosquitto.port,
                                                                                port=server.port))
    rec = await asyncio.to_thread(Recorder, mosquitto.port, (f"{BASE}/ups-kp3/availability",))
    try:
        with _hub(cfg):
            await _wait(rec, f"{BASE}/ups-kp3/availability", lambda j: j["state"] == "offline", 0)
            await asyncio.sleep(0.5)
        log = (tmp_path / "hub.log").read_text()
        assert "refused the login of 'monuser'" in log and "wrong-pw-123" not in log
        assert server.logins == []
    finally:
        await server.stop()
        rec.close()


def _cli(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], capture_output=True, text=True, timeout=60,
                           cwd=cwd).stdout


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "hub.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(probe: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await probe()
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_cli_simulate_and_plugins_find_dropins(tmp_path: Path) -> None:
    _install(tmp_path / "data", "shelly_light", "nut_ups")
    cfg = _write(tmp_path, "hub: {data_dir: ./data, language: en}\n")
    out, listed, listed_here = await asyncio.gather(
        asyncio.to_thread(_cli, "plugins", "-c", str(cfg)),
        asyncio.to_thread(_cli, "simulate", "-c", str(cfg), "list"),
        asyncio.to_thread(_cli, "simulate", "list", cwd=tmp_path))  # without -c: ./data/plugins of the cwd
    assert "platform shelly_light" in out and "platform nut_ups" in out, out
    assert {"shelly_light", "nut_ups"} <= set(listed.split())
    assert {"shelly_light", "nut_ups"} <= set(listed_here.split())

    shelly_port, nut_port = _free_port(), _free_port()
    procs = [_spawn("simulate", "-c", str(cfg), "shelly_light", "--port", str(shelly_port)),
             _spawn("simulate", "-c", str(cfg), "nut_ups", "--port", str(nut_port))]
    try:
        async def shelly() -> Any:
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{shelly_port}/rpc/Switch.Set", params={"id": 0, "on": "true"}) as r:
                    assert r.status == 200 and await r.json() == {"was_on": False}
                async with s.get(f"http://127.0.0.1:{shelly_port}/rpc/Switch.GetStatus", params={"id": 0}) as r:
                    return await r.json()
        status = await _until(shelly)
        assert status["id"] == 0 and status["output"] is True and status["source"] == "http"

        async def upsd() -> list[str]:
            reader, writer = await asyncio.open_connection("127.0.0.1", nut_port)
            writer.write(b"LIST VAR ups1\nGET VAR ups1 ups.status\nGET VAR nope ups.status\nLOGOUT\n")
            lines = (await asyncio.wait_for(reader.read(), 5)).decode().splitlines()
            writer.close()
            return lines
        lines = await _until(upsd)
        assert lines[0] == "BEGIN LIST VAR ups1" and 'VAR ups1 ups.status "OL CHRG"' in lines
        assert lines[-4:] == ["END LIST VAR ups1", 'VAR ups1 ups.status "OL CHRG"', "ERR UNKNOWN-UPS", "OK Goodbye"]
    finally:
        for p in procs:
            stop_process(p)


def test_docs_tutorial_is_the_example_plugin() -> None:
    """docs/plugins.md teaches the Shelly light plugin: its code block is the example file, and it
    stays under 60 lines (everything else comes from hub.api.lights)."""
    code = (EXAMPLES / "shelly_light" / "__init__.py").read_text()
    docs = (ROOT / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", docs, re.S)
    assert code in blocks, "docs/plugins.md does not show examples/plugins/shelly_light/__init__.py as it is"
    assert len(code.splitlines()) < 60
    for folder in ("shelly_light", "nut_ups"):
        for path in (EXAMPLES / folder).glob("*.py"):
            imports = re.findall(r"^\s*(?:from|import) (hub[\w.]*)", path.read_text(), re.M)
            assert set(imports) <= {"hub.api", "hub.api.lights", "hub.api.ups", "hub.hookspecs"}, (path, imports)


async def test_nut_simulator_speaks_to_nuts_own_client(tmp_path: Path) -> None:
    """upsc (NUT's own client, package nut-client) reads the simulator as it reads a real upsd."""
    upsc = shutil.which("upsc")
    if upsc is None:
        pytest.skip("upsc missing: apt-get install nut-client (scripts/test.sh installs it)")
    sims = _install(tmp_path / "data", "nut_ups")
    server = await sims["nut_ups"].NutServer().start()
    server.units["ups1"]["ups.alarm"] = 'Say "hi" \\ back'  # quotes and backslashes escaped on the wire
    try:
        def run(*args: str) -> str:
            return subprocess.run([upsc, *args], capture_output=True, text=True, timeout=20, check=True).stdout
        listing = await asyncio.to_thread(run, "-l", f"127.0.0.1:{server.port}")
        assert listing.split() == ["ups1"]
        text = await asyncio.to_thread(run, f"ups1@127.0.0.1:{server.port}")
        got = dict(line.split(": ", 1) for line in text.splitlines())
        assert got["ups.status"] == "OL CHRG" and got["battery.charge"] == "100"
        assert got["ups.alarm"] == 'Say "hi" \\ back'
        one = await asyncio.to_thread(run, f"ups1@127.0.0.1:{server.port}", "input.voltage")
        assert one.strip() == "229.5"
    finally:
        await server.stop()
