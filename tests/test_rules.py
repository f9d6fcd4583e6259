"""Default rules end to end: real pymodbus UPS and relay-board simulators, real Mosquitto, a full hub."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.api import DeviceConfig, Driver, PlatformSpec
from hub.clock import ManualClock
from hub.hookspecs import hookimpl
from hub.plugins import PluginManager
from plugins.lighting.simulator import RelayBoardSimulator
from plugins.ups_modbus.simulator import UpsSimulator
from tests.support.hubrun import hub_from_yaml, make_plugins
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Recorder

BASE = "anninh"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
# Khanh Binh (11.03N 106.76E): civil dusk ~17:59 in late November, dawn ~05:35
NIGHT = datetime(2026, 11, 23, 22, 0, tzinfo=TZ)
DAY = datetime(2026, 11, 23, 12, 0, tzinfo=TZ)
DUSK = datetime(2026, 11, 23, 17, 15, tzinfo=TZ)


def _yaml(mq: int, ups_port: int, relay_port: int, rules: str = "") -> str:
    return f"""
hub: {{name: Test post, latitude: 11.03, longitude: 106.76, timezone: Asia/Ho_Chi_Minh, language: en, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mq}", discovery: false}}
sites:
  - {{id: kp3, blackspot: true}}
  - {{id: cho, blackspot: false}}
  - {{id: xom, blackspot: true}}
devices:
  - {{id: ups-kp3, platform: ups_modbus, site: kp3, host: 127.0.0.1, port: {ups_port}, unit: 1, model: apc_smt,
      poll_interval: 0.3, timeout: 1}}
  - {{id: meter-cho, platform: ups_modbus, site: cho, host: 127.0.0.1, port: {ups_port}, unit: 2, model: sdm120,
      poll_interval: 0.3, timeout: 1}}
  - {{id: light-kp3, platform: lighting, site: kp3, driver: modbus_coil, host: 127.0.0.1, port: {relay_port},
      unit: 1, channel: 0, poll_interval: 0.3}}
  - {{id: light-cho, platform: lighting, site: cho, driver: modbus_coil, host: 127.0.0.1, port: {relay_port},
      unit: 1, channel: 1, poll_interval: 0.3}}
rules:
  night_light: {{evaluate_interval: 0.2, min_switch_interval: 600}}
  offline_cause: {{enabled: false}}
{rules}
"""


def _darkness_camera(scene: dict[str, bool], dark_brightness: int, bright_brightness: int) -> PluginManager:
    """Built-in plugins plus a test platform ``cam`` whose devices report ``dark`` as ``scene`` says
    (the darkness input contract of the night-light rule)."""

    class Cam(Driver):
        kind = "camera"

        async def poll(self) -> dict[str, object]:
            dark = scene["dark"]
            return {"dark": dark, "brightness": dark_brightness if dark else bright_brightness}

    class CamPlugin:
        @hookimpl
        def anninh_platforms(self) -> list[PlatformSpec]:
            return [PlatformSpec(name="cam", config_model=DeviceConfig, driver=Cam)]

    return make_plugins(("cam", CamPlugin()))  # type: ignore[arg-type]


async def _sims() -> tuple[UpsSimulator, RelayBoardSimulator]:
    ups = await UpsSimulator({1: "apc_smt", 2: "sdm120"}).start()
    relays = await RelayBoardSimulator({1: "waveshare"}).start()
    return ups, relays


async def _until(pred, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _site(rec: Recorder, site: str, pred, after: int = 0, timeout: float = 10.0):
    return asyncio.to_thread(rec.wait_topic, f"{BASE}/site/{site}", pred, timeout, after)


async def test_power_lost_restored_low_battery_and_dead_ups(mosquitto: Mosquitto, tmp_path: Path) -> None:
    ups, relays = await _sims()
    rec = Recorder(mosquitto.port)
    clock = ManualClock(DAY)
    try:
        async with hub_from_yaml(_yaml(mosquitto.port, ups.port, relays.port), tmp_path, clock=clock):
            await _site(rec, "kp3", lambda j: j["power"] == "ok")
            await _site(rec, "cho", lambda j: j["power"] == "ok")
            await _site(rec, "xom", lambda j: j["power"] == "unknown")  # no sensor there

            mark = rec.count()
            t0 = asyncio.get_running_loop().time()
            ups.set_state(1, mains=False, battery_charge=80, battery_runtime=1500)
            ev = await asyncio.to_thread(rec.wait_event, BASE, "power_lost", site="kp3", after=mark)
            elapsed = asyncio.get_running_loop().time() - t0
            assert elapsed < 0.3 + 0.5, f"power_lost after {elapsed:.2f} s with a 0.3 s poll"
            assert "ups-kp3 on battery" in ev["cause"] and ev["time"].endswith("+07:00")
            site = await _site(rec, "kp3", lambda j: j["power"] == "lost", after=mark)
            assert "ups-kp3" in site["power_cause"]
            state = rec.last(f"{BASE}/ups-kp3")
            assert state["on_battery"] is True and state["status"].split()[0] == "OB"

            ups.set_state(1, low_battery=True, battery_charge=9, battery_runtime=120)
            await asyncio.to_thread(rec.wait_event, BASE, "low_battery", device="ups-kp3", after=mark)
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/ups-kp3", lambda j: "LB" in j["status"].split())

            mark = rec.count()
            ups.set_state(1, mains=True, low_battery=False, battery_charge=50, battery_runtime=2000)
            ev = await asyncio.to_thread(rec.wait_event, BASE, "power_restored", site="kp3", after=mark)
            assert ev["duration_s"] >= 0
            await _site(rec, "kp3", lambda j: j["power"] == "ok", after=mark)

            # the power meter site: no mains -> lost
            mark = rec.count()
            ups.set_state(2, input_voltage=0.0)
            ev = await asyncio.to_thread(rec.wait_event, BASE, "power_lost", site="cho", after=mark)
            assert "meter-cho" in ev["cause"]
            ups.set_state(2, input_voltage=229.0)
            await asyncio.to_thread(rec.wait_event, BASE, "power_restored", site="cho", after=mark)

            # a self-test runs on battery: not a power cut
            mark = rec.count()
            ups.set_state(1, self_test=True, mains=False)
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/ups-kp3", lambda j: "TEST" in j["status"].split(),
                                    after=mark)
            await asyncio.sleep(1.0)
            ups.set_state(1, self_test=False, mains=True)
            await asyncio.sleep(1.0)
            assert rec.events(BASE, "power_lost")[-1]["site"] == "cho"  # nothing new for kp3
            assert len([e for e in rec.events(BASE, "power_lost") if e["site"] == "kp3"]) == 1

            # the UPS server stops: UPS offline, its fields null (never a stale OL), site power unknown
            mark = rec.count()
            await ups.stop()
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/ups-kp3/availability",
                                    lambda j: j["state"] == "offline", after=mark)
            state = await asyncio.to_thread(rec.wait_topic, f"{BASE}/ups-kp3", lambda j: j["status"] is None,
                                            after=mark)
            assert state["on_battery"] is None
            await _site(rec, "kp3", lambda j: j["power"] == "unknown", after=mark)
            assert not [e for e in rec.events(BASE, "power_restored") if e["time"] > ev["time"] and
                        e["site"] == "kp3"]
    finally:
        rec.close()
        await ups.stop()
        await relays.stop()


async def test_night_light_manual_override_and_restart(mosquitto: Mosquitto, tmp_path: Path) -> None:
    ups, relays = await _sims()
    rec = Recorder(mosquitto.port)
    clock = ManualClock(NIGHT)
    try:
        # a hub (re)started at night switches the black-spot light on at once, not at the next dusk
        async with hub_from_yaml(_yaml(mosquitto.port, ups.port, relays.port), tmp_path, clock=clock):
            st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3", lambda j: j["state"] == "ON")
            assert st["mode"] == "auto" and "night at a black spot" in st["reason"]
            assert relays.relay(1, 0) is True
            assert relays.relay(1, 1) is False  # not a black spot: the rule leaves it alone

            # an officer switches it off: manual, held until the next dawn/dusk transition
            mark = rec.count()
            rec.publish(f"{BASE}/light-kp3/set/an", json.dumps({"state": "OFF"}))
            st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3", lambda j: j["state"] == "OFF",
                                         after=mark)
            assert st["mode"] == "manual" and "an" in st["reason"] and st["hold_until"]
            hold = datetime.fromisoformat(st["hold_until"])
            assert datetime(2026, 11, 24, 5, 0, tzinfo=TZ) < hold < datetime(2026, 11, 24, 6, 30, tzinfo=TZ)
            assert relays.relay(1, 0) is False
            await asyncio.sleep(0.8)  # several evaluations: the rule keeps off a manual light
            assert relays.relay(1, 0) is False

            # back to auto: the rule's state again (ON at night)
            mark = rec.count()
            rec.publish(f"{BASE}/light-kp3/set/an", json.dumps({"mode": "auto"}))
            st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3",
                                         lambda j: j["state"] == "ON" and j["mode"] == "auto", after=mark)
            assert relays.relay(1, 0) is True

            # daytime: OFF once the minimum switch interval has passed since the last switch
            clock.set(DAY)
            await asyncio.sleep(0.6)
            assert relays.relay(1, 0) is True  # 600 s have not passed on this light's clock
            mark = rec.count()
            clock.set(datetime(2026, 11, 24, 12, 0, tzinfo=TZ))
            st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3", lambda j: j["state"] == "OFF",
                                         after=mark)
            assert "daylight" in st["reason"]
    finally:
        rec.close()
        await ups.stop()
        await relays.stop()


async def test_no_chatter_across_dusk_with_noisy_darkness(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """A darkness input flipping every 0.2 s around dusk: the light switches at most once per
    minimum switch interval."""
    flips = {"dark": False}
    ups, relays = await _sims()
    rec = Recorder(mosquitto.port)
    clock = ManualClock(DUSK)  # sun still above the horizon: only the noisy darkness input decides
    clock.frozen = False
    text = _yaml(mosquitto.port, ups.port, relays.port).replace(
        "rules:", "  - {id: cam-kp3, platform: cam, site: kp3, poll_interval: 0.1}\nrules:").replace(
        "min_switch_interval: 600", "min_switch_interval: 2")
    try:
        async with hub_from_yaml(text, tmp_path, clock=clock, plugins=_darkness_camera(flips, 20, 90)):
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3", lambda j: j["state"] in ("ON", "OFF"))
            switches: list[float] = []
            last = relays.relay(1, 0)
            loop = asyncio.get_running_loop()
            t_end = loop.time() + 5.0
            while loop.time() < t_end:
                flips["dark"] = not flips["dark"]
                for _ in range(4):
                    await asyncio.sleep(0.05)
                    now = relays.relay(1, 0)
                    if now != last:
                        switches.append(loop.time())
                        last = now
            gaps = [b - a for a, b in itertools.pairwise(switches)]
            assert len(switches) >= 1, "the darkness input never switched the light"
            assert len(switches) <= 3, f"chatter: {len(switches)} switches in 5 s"
            assert all(g >= 1.9 for g in gaps), gaps
            st = rec.last(f"{BASE}/light-kp3")
            assert st["reason"]
    finally:
        rec.close()
        await ups.stop()
        await relays.stop()


async def test_camera_darkness_in_daytime_turns_light_on(mosquitto: Mosquitto, tmp_path: Path) -> None:
    scene = {"dark": False}
    ups, relays = await _sims()
    rec = Recorder(mosquitto.port)
    clock = ManualClock(DAY)
    text = _yaml(mosquitto.port, ups.port, relays.port).replace(
        "rules:", "  - {id: cam-kp3, platform: cam, site: kp3, poll_interval: 0.1}\nrules:")
    try:
        async with hub_from_yaml(text, tmp_path, clock=clock, plugins=_darkness_camera(scene, 12, 140)):
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3", lambda j: j["state"] == "OFF")
            mark = rec.count()
            scene["dark"] = True
            st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3", lambda j: j["state"] == "ON",
                                         after=mark)
            assert "cam-kp3 sees darkness (brightness 12)" in st["reason"]
            scene["dark"] = False
            await asyncio.sleep(0.6)
            assert relays.relay(1, 0) is True  # minimum switch interval (600 s) holds
            mark = rec.count()
            clock.advance(601)
            st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3", lambda j: j["state"] == "OFF",
                                         after=mark)
            assert "daylight" in st["reason"]
    finally:
        rec.close()
        await ups.stop()
        await relays.stop()


async def test_suspected_power_loss_at_sensorless_site(mosquitto: Mosquitto, tmp_path: Path) -> None:
    ups, relays = await _sims()
    relays2 = await RelayBoardSimulator({1: "waveshare"}).start()
    rec = Recorder(mosquitto.port)
    text = _yaml(mosquitto.port, ups.port, relays.port).replace("rules:", f"""\
  - {{id: light-xom, platform: lighting, site: xom, driver: modbus_coil, host: 127.0.0.1, port: {relays2.port},
      unit: 1, channel: 0, poll_interval: 0.2, timeout: 0.5}}
  - {{id: light-xom2, platform: lighting, site: xom, driver: modbus_coil, host: 127.0.0.1, port: {relays2.port},
      unit: 1, channel: 1, poll_interval: 0.2, timeout: 0.5}}
rules:""")
    try:
        async with hub_from_yaml(text, tmp_path, clock=ManualClock(DAY)):
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-xom2/availability", lambda j: j["state"] == "online")
            mark = rec.count()
            await relays2.stop()  # the host house goes dark: both devices drop together
            ev = await asyncio.to_thread(rec.wait_event, BASE, "power_suspected_lost", site="xom", after=mark)
            assert sorted(ev["devices"]) == ["light-xom", "light-xom2"]
            await _site(rec, "xom", lambda j: j.get("suspected_power_loss") is True, after=mark)
            assert rec.last(f"{BASE}/site/xom")["power"] == "unknown"
            await relays2.start()
            await asyncio.to_thread(rec.wait_event, BASE, "power_suspected_restored", site="xom", after=mark)
    finally:
        rec.close()
        await ups.stop()
        await relays.stop()
        await relays2.stop()


async def test_manual_hold_survives_hub_restart(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """A light an officer switched off at night stays off and manual when the hub restarts during the
    hold (a repair on a ladder must not see the lamp come back on); auto lights are re-evaluated."""
    ups, relays = await _sims()
    rec = Recorder(mosquitto.port)
    clock = ManualClock(NIGHT)
    text = _yaml(mosquitto.port, ups.port, relays.port)
    try:
        async with hub_from_yaml(text, tmp_path, clock=clock):
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3", lambda j: j["state"] == "ON")
            mark = rec.count()
            rec.publish(f"{BASE}/light-kp3/set/an", json.dumps({"state": "OFF"}))
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3",
                                    lambda j: j["state"] == "OFF" and j["mode"] == "manual", after=mark)
        assert relays.relay(1, 0) is False
        clock.advance(1800)  # half an hour later, still night, still within the hold
        mark = rec.count()
        async with hub_from_yaml(text, tmp_path, clock=clock):
            st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3",
                                         lambda j: j.get("mode") is not None, after=mark)
            assert st["mode"] == "manual" and st["state"] == "OFF"
            assert "kept across a hub restart" in st["reason"]
            await asyncio.sleep(1.0)  # the night rule runs several times meanwhile
            assert relays.relay(1, 0) is False
        # after the hold has ended (next dawn), a restart forgets it
        clock.set(datetime(2026, 11, 24, 12, 0, tzinfo=TZ))
        mark = rec.count()
        async with hub_from_yaml(text, tmp_path, clock=clock):
            st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-kp3",
                                         lambda j: j.get("mode") is not None, after=mark)
            assert st["mode"] == "auto"
    finally:
        rec.close()
        await ups.stop()
        await relays.stop()
