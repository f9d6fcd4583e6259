"""Home Assistant's rules (tests/ha_rules.py) applied to everything a real hub announces and publishes.

A hub process (``anninh run``) with every device kind the simulators offer runs against Mosquitto;
every discovery config and every message on a topic an entity listens to is checked as Home
Assistant would read it. Then the hub is killed with SIGKILL and started again on the same data
directory and broker: the retained messages Home Assistant reads at that moment, and everything the
new process publishes (its first states above all), must pass the same rules.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.ha_rules import Checker, render
from tests.support.hubrun import write_config
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Msg, Recorder

BASE = "anninh"
PREFIX = "homeassistant"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "home-assistant.md"

# device id -> the kind's title in docs/home-assistant.md (one device of each kind is documented)
KINDS = {
    "bridge": "The hub itself (device `anninh_bridge`)",
    "ups-apc": "UPS (APC Smart-UPS, Modbus)",
    "ups-huawei": "UPS (Huawei UPS2000, Modbus)",
    "meter": "Power meter (Eastron SDM120)",
    "light": "Black-spot light (relay board)",
    "cam-hik": "Camera (Hikvision)",
    "nvr-hik": "Recorder (Hikvision NVR, 4 channels)",
    "cam-dahua": "Camera (Dahua)",
    "cam-onvif": "Camera (any ONVIF)",
}
DEVICES = [d for d in KINDS if d != "bridge"]


async def _start_simulators(stack: list[Any], password: str) -> dict[str, int]:
    from plugins.dahua.simulator import DahuaSimulator
    from plugins.generic_onvif.simulator import OnvifSimulator
    from plugins.hikvision.simulator import HikvisionSimulator
    from plugins.lighting.simulator import RelayBoardSimulator
    from plugins.ups_modbus.simulator import UpsSimulator

    ups = await UpsSimulator({1: "apc_smt", 2: "huawei_ups2000", 3: "sdm120"}).start()
    stack.append(ups)
    relays = await RelayBoardSimulator({1: "waveshare"}).start()
    stack.append(relays)
    cam = await HikvisionSimulator("camera", password=password).start()
    stack.append(cam)
    nvr = await HikvisionSimulator("nvr", channels=4, password=password).start()
    stack.append(nvr)
    for ch, days in ((1, 31), (2, 12), (3, 31), (4, 31)):
        nvr.set_recordings(ch, days)
    dahua = await DahuaSimulator("camera", password=password).start()
    stack.append(dahua)
    onvif = await OnvifSimulator(password=password).start()
    stack.append(onvif)
    return {"ups": ups.port, "relays": relays.port, "cam": cam.port, "nvr": nvr.port, "dahua": dahua.port,
            "onvif": onvif.port}


def _config(broker: int, p: dict[str, int]) -> str:
    cam = "host: 127.0.0.1, username: admin, password: !secret cam_password, poll_interval: 1, timeout: 3, " \
          "health_interval: 0"
    return f"""
hub: {{name: Khanh Binh post, latitude: 11.03, longitude: 106.76, timezone: Asia/Ho_Chi_Minh, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{broker}", discovery: true}}
sites: [{{id: kp3, blackspot: true}}]
devices:
  - {{id: ups-apc, name: UPS APC SMT1500, platform: ups_modbus, site: kp3, host: 127.0.0.1, port: {p['ups']},
     unit: 1, model: apc_smt, poll_interval: 1}}
  - {{id: ups-huawei, platform: ups_modbus, site: kp3, host: 127.0.0.1, port: {p['ups']}, unit: 2,
     model: huawei_ups2000, poll_interval: 1}}
  - {{id: meter, platform: ups_modbus, site: kp3, host: 127.0.0.1, port: {p['ups']}, unit: 3, model: sdm120,
     poll_interval: 1}}
  - {{id: light, platform: lighting, site: kp3, driver: modbus_coil, host: 127.0.0.1, port: {p['relays']},
     unit: 1, channel: 0, poll_interval: 1}}
  - {{id: cam-hik, platform: hikvision, site: kp3, port: {p['cam']}, {cam}}}
  - {{id: nvr-hik, platform: hikvision, site: kp3, port: {p['nvr']}, {cam}, retention_interval: 60}}
  - {{id: cam-dahua, platform: dahua, site: kp3, port: {p['dahua']}, {cam}}}
  - {{id: cam-onvif, platform: generic_onvif, site: kp3, port: {p['onvif']}, {cam}}}
"""


def _start_hub(cfg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "hub.cli", "-q", "run", "-c", str(cfg)],
                            cwd=cfg.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def _wait(pred: Any, what: Any, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the hub exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.05)


def _msgs(rec: Recorder, after: int = 0) -> list[Msg]:
    with rec._lock:
        return list(rec.messages[after:])


def _online_after(rec: Recorder, mark: int) -> set[str]:
    return {m.topic.split("/")[1] for m in _msgs(rec, mark)
            if m.topic.endswith("/availability") and m.json() == {"state": "online"}}


def _states_after(rec: Recorder, mark: int) -> dict[str, list[Msg]]:
    out: dict[str, list[Msg]] = {}
    for m in _msgs(rec, mark):
        parts = m.topic.split("/")
        if len(parts) == 2 and parts[0] == BASE and parts[1] in DEVICES:
            out.setdefault(parts[1], []).append(m)
    return out


def _seen(rec: Recorder, mark: int, device: str, pred: Any) -> bool:
    return any(pred(m.json()) for m in _states_after(rec, mark).get(device, []))


def _check_all(checker: Checker, msgs: list[Msg], label: str) -> int:
    """Configs first (Home Assistant subscribes to discovery first), then every other message."""
    for m in msgs:
        if m.topic.startswith(f"{PREFIX}/") and m.topic.endswith("/config"):
            checker.add_config(m.topic, m.payload, PREFIX)
    n = 0
    for m in msgs:
        if not m.topic.startswith(f"{PREFIX}/"):
            n += checker.check_message(m.topic, m.payload, label) > 0
    return n


@pytest.mark.slow
async def test_home_assistant_reads_everything_before_and_after_a_restart(mosquitto: Mosquitto,
                                                                           tmp_path: Path) -> None:
    stack: list[Any] = []
    procs: list[subprocess.Popen[bytes]] = []
    rec = Recorder(mosquitto.port)
    try:
        ports = await _start_simulators(stack, "cam-secret-1")
        cfg = write_config(tmp_path, _config(mosquitto.port, ports), {"cam_password": "cam-secret-1"})

        # ---- first run: every device online, its state published, a light switched the way HA does it
        procs.append(_start_hub(cfg))
        await _wait(lambda: _online_after(rec, 0) >= set(DEVICES),
                    lambda: f"every device online; online: {sorted(_online_after(rec, 0))}; "
                            f"offline: {[m.json() for m in _msgs(rec) if m.topic.endswith('/event')][:8]}",
                    procs[0], 60)
        await _wait(lambda: set(_states_after(rec, 0)) >= set(DEVICES), "every device's state", procs[0])
        mark = rec.count()
        rec.publish(f"{BASE}/light/set", json.dumps({"state": "ON"}))  # what a JSON-schema light sends
        await _wait(lambda: _seen(rec, mark, "light", lambda j: j.get("state") == "ON"), "the light on", procs[0])
        stack[0].set_state(1, mains=False, battery_charge=85)  # the APC UPS on battery, for a while
        await _wait(lambda: _seen(rec, mark, "ups-apc", lambda j: j.get("on_battery") is True), "on battery", procs[0])
        mark = rec.count()
        stack[0].set_state(1, mains=True)
        await _wait(lambda: _seen(rec, mark, "ups-apc", lambda j: j.get("on_battery") is False), "mains back", procs[0])
        first_run = rec.count()

        # ---- kill -9, then what Home Assistant reads when it (re)subscribes: the retained messages
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(10)
        await _wait(lambda: rec.last(f"{BASE}/bridge/state") == {"state": "offline"}, "the last will")
        retained = Recorder(mosquitto.port)
        await _wait(lambda: set(_states_after(retained, 0)) >= set(DEVICES), "the retained states")
        await asyncio.sleep(0.2)  # the rest of the retained messages, which the broker sends together
        retained_msgs = _msgs(retained)
        retained.close()
        assert all(m.retain for m in retained_msgs)

        # ---- second run on the same data directory and broker
        restart = rec.count()
        procs.append(_start_hub(cfg))
        await _wait(lambda: _online_after(rec, restart) >= set(DEVICES), "every device online again", procs[1], 60)
        await _wait(lambda: set(_states_after(rec, restart)) >= set(DEVICES), "every device's state again",
                    procs[1])
        await _wait(lambda: _seen(rec, restart, "nvr-hik", lambda j: "retention_days" in j), "retention", procs[1])
        all_msgs = _msgs(rec)

        # ---- Home Assistant's rules on all of it
        checker = Checker()
        n1 = _check_all(checker, all_msgs[:first_run], "run 1 ")
        checker.check_devices()
        n_retained = _check_all(checker, retained_msgs, "retained after kill -9 ")
        first_states = {d: ms[0] for d, ms in _states_after(rec, restart).items()}
        n2 = _check_all(checker, all_msgs[restart:], "run 2 ")
        checker.check_devices()
        assert not checker.failures, "\n".join(checker.failures[:60])

        # every entity announced, every device's state seen before and after the restart
        announced = {(a.config.get("device") or {}).get("identifiers", [""])[0] for a in checker.entities.values()}
        assert announced == {"anninh_bridge", *(f"anninh_{d}" for d in DEVICES)}
        assert set(first_states) == set(DEVICES)
        # the first state after the restart is the complete one (not the inventory from connect())
        for dev, m in first_states.items():
            listeners = [a for a in checker.entities.values() if a.config.get("state_topic") == m.topic]
            assert listeners, dev
        # mains stayed on through the restart: "Mains power" of both UPS units never left "on" (the
        # partial first state made it flip, and an automation on mains loss fired)
        for dev in ("ups-apc", "ups-huawei"):
            mains = [a for a in checker.entities.values()
                     if a.config.get("default_entity_id") == f"binary_sensor.{dev.replace('-', '_')}_mains_power"]
            assert len(mains) == 1, dev
            seen = [render(mains[0].config["value_template"], m.payload)
                    for m in [*retained_msgs, *all_msgs[restart:]] if m.topic == f"{BASE}/{dev}"]
            assert seen and set(seen) == {"ON"}, (dev, seen)
        assert retained_msgs and n1 >= 2 * len(DEVICES) and n_retained >= len(DEVICES) and n2 >= len(DEVICES), (
            n1, n_retained, n2)
        light = [a for a in checker.entities.values() if a.component == "light"]
        assert len(light) == 1 and light[0].config["schema"] == "json"

        # ---- docs/home-assistant.md shows exactly these entities
        table = checker.entity_table(KINDS)
        (tmp_path / "entities.md").write_text(table)
        assert table in DOCS.read_text(), (
            f"docs/home-assistant.md does not show the entities the hub announces; the table is in "
            f"{tmp_path / 'entities.md'}:\n{table}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        rec.close()
        for sim in reversed(stack):
            await sim.stop()


def test_the_rules_reject_what_home_assistant_rejects() -> None:
    """The checker itself, on the configs and states the issue reported (fast, no hub)."""
    dev = {"identifiers": ["anninh_l1"], "name": "L1", "via_device": "anninh_bridge"}
    c = Checker()
    # the old light: default schema, templated state compared with a JSON payload_on; object_id
    c.add_config("homeassistant/light/l1/state/config", json.dumps({
        "name": "Light", "unique_id": "u1", "object_id": "l1_state", "device": dev, "state_topic": "anninh/l1",
        "command_topic": "anninh/l1/set", "state_value_template": "{{ value_json.state }}",
        "payload_on": '{"state":"ON"}', "state_on": "ON"}).encode())
    c.add_config("homeassistant/sensor/l1/load/config", json.dumps({
        "name": "Load", "unique_id": "u2", "device": dev, "state_topic": "anninh/l1",
        "value_template": "{{ value_json.load }}", "device_class": "voltage", "unit_of_measurement": "%",
        "state_class": "total_increasing"}).encode())
    c.add_config("homeassistant/sensor/l1/since/config", json.dumps({
        "name": "Since", "unique_id": "u3", "device": dev, "state_topic": "anninh/l1",
        "value_template": "{{ value_json.since }}", "device_class": "timestamp"}).encode())
    c.add_config("homeassistant/binary_sensor/l1/mains/config", json.dumps({
        "name": "Mains", "unique_id": "u4", "default_entity_id": "sensor.L1 mains", "device": dev,
        "state_topic": "anninh/l1", "value_template": "{{ value_json.on_battery }}", "device_class": "mains"}).encode())
    c.check_devices()
    c.check_message("anninh/l1", b'{"model":"X"}')  # the partial state after a start
    c.check_message("anninh/l1", b'{"state":"on","load":"high","since":"2026-01-01T10:00:00","on_battery":true}')
    text = "\n".join(c.failures)
    for expected in ("schema must be 'json'", "'object_id' is not an option", "'state_value_template' is not",
                     "unit '%' is not a unit of device_class 'voltage'",
                     "state_class 'total_increasing' is not allowed",
                     "device_class 'mains' does not exist", "not a valid binary_sensor entity id",
                     "via_device 'anninh_bridge' is announced by no entity", "has no attribute 'load'",
                     "light state 'on' is not ON/OFF/null", "rendered 'high', not a number", "has no time zone",
                     "rendered 'True': no matching payload"):
        assert expected in text, f"{expected!r} not found in:\n{text}"
    # and what the hub publishes now passes
    ok = Checker()
    ok.add_config("homeassistant/sensor/l1/load/config", json.dumps({
        "name": "Load", "unique_id": "u2", "default_entity_id": "sensor.l1_load", "state_topic": "anninh/l1",
        "value_template": "{{ value_json.load if value_json.load is defined else '' }}", "unit_of_measurement": "%",
        "state_class": "measurement"}).encode())
    ok.check_message("anninh/l1", b'{"model":"X"}')
    ok.check_message("anninh/l1", b'{"load":31}')
    ok.check_message("anninh/l1", b'{"load":null}')
    assert not ok.failures and ok.states_checked == 3


async def test_no_state_is_published_before_the_first_successful_poll(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """connect() works, poll() fails: the inventory from connect() is not published as the state (it
    would replace the complete retained state of the previous run); the first poll publishes it all."""
    from tests import plugin_echo
    from tests.support.hubrun import hub_from_yaml, make_plugins

    plugin_echo.BEHAVIOUR.clear()
    plugin_echo.BEHAVIOUR["e1"] = {"raise": "no reading yet", "value": 7}
    rec = Recorder(mosquitto.port)
    yaml = f"""
hub: {{name: Test post, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}", discovery: true}}
devices: [{{id: e1, platform: echo}}]
"""
    try:
        async with hub_from_yaml(yaml, tmp_path, plugins=make_plugins(("echo", plugin_echo), builtin=False)):
            await _wait(lambda: plugin_echo.BEHAVIOUR["e1"].get("polls", 0) >= 3, "three failed polls")
            await asyncio.to_thread(rec.wait_topic, f"{PREFIX}/switch/e1/state/config")  # announced meanwhile
            assert not [m for m in _msgs(rec) if m.topic == f"{BASE}/e1"]
            plugin_echo.BEHAVIOUR["e1"]["raise"] = None
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1/availability", lambda j: j["state"] == "online")
            states = [m for m in _msgs(rec) if m.topic == f"{BASE}/e1"]
            assert states
            assert states[0].json() == {"model": "Echo-1", "serial": "SN-e1", "firmware": "1.0", "value": 7,
                                        "state": "OFF"}
            # the state goes out before "online", so nothing reads an online device with an old state
            seq = [m for m in _msgs(rec) if m.topic == f"{BASE}/e1" or (m.topic == f"{BASE}/e1/availability"
                                                           and m.payload == b'{"state": "online"}')]
            assert seq[0].topic == f"{BASE}/e1" and seq[1].topic == f"{BASE}/e1/availability", seq[:2]
            # from then on every change is published, the stale null when it goes offline too
            plugin_echo.BEHAVIOUR["e1"]["raise"] = "gone"
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", lambda j: j.get("value") is None)
            checker = Checker()
            _check_all(checker, _msgs(rec), "")
            checker.check_devices()
            assert not checker.failures, checker.failures
    finally:
        plugin_echo.BEHAVIOUR.clear()
        rec.close()
