"""lighting: relays switched and read back through a whole hub (real Mosquitto, real pymodbus
relay-board simulator, Tasmota simulator on the same broker)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hub.clock import ManualClock
from plugins.lighting.driver import LightCommand, LightConfig
from plugins.lighting.simulator import RelayBoardSimulator, TasmotaSimulator
from tests.support.hubrun import hub_from_yaml
from tests.support.mqtt import Recorder

BASE = "anninh"
# 10:00 local (UTC+7) on 21 June: daylight in Ho Chi Minh City; the next transition is the evening
START = datetime(2025, 6, 21, 3, 0, tzinfo=UTC)


def _yaml(mqtt_port: int, devices: str) -> str:
    return f"""
hub: {{name: Test post, latitude: 10.78, longitude: 106.70, timezone: Asia/Ho_Chi_Minh, language: en, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mqtt_port}", discovery: true}}
devices:
{devices}
"""


async def _state(rec: Recorder, dev: str, pred: Any, after: int = 0, timeout: float = 5.0) -> dict[str, Any]:
    return await asyncio.to_thread(rec.wait_topic, f"{BASE}/{dev}", pred, timeout, after)


async def _event(rec: Recorder, type: str, after: int, **kw: Any) -> dict[str, Any]:
    return await asyncio.to_thread(rec.wait_event, BASE, type, 5.0, after, **kw)


def test_command_model() -> None:
    assert LightCommand.model_validate({"state": "ON", "hold": 600}).hold == 600
    for bad in ({}, {"state": "on"}, {"state": "ON", "colour": "red"}, {"hold": 0}, {"hold": 90000},
                {"mode": "auto", "hold": 60}):
        with pytest.raises(ValidationError):
            LightCommand.model_validate(bad)
    with pytest.raises(ValidationError):
        LightConfig.model_validate({"id": "l", "platform": "lighting", "driver": "mqtt_relay"})  # no topic
    with pytest.raises(ValidationError):
        LightConfig.model_validate({"id": "l", "platform": "lighting", "driver": "modbus_register",
                                    "host": "h", "profile": "nope"})


async def test_coil_light_manual_auto_mismatch(mosquitto: Any, tmp_path: Path) -> None:
    clock = ManualClock(START)
    devices = """
  - {id: light-kp3, platform: lighting, driver: modbus_coil, host: 127.0.0.1, port: PORT, unit: 1, channel: 2,
     poll_interval: 0.25, timeout: 1}
  - {id: light-cho, platform: lighting, driver: modbus_coil, host: 127.0.0.1, port: PORT, unit: 1, channel: 5,
     poll_interval: 0.25, timeout: 1}
"""
    async with RelayBoardSimulator({1: "waveshare"}, port=0) as sim:
        rec = await asyncio.to_thread(Recorder, mosquitto.port)
        try:
            async with hub_from_yaml(_yaml(mosquitto.port, devices.replace("PORT", str(sim.port))), tmp_path,
                                     clock=clock):
                st = await _state(rec, "light-kp3", lambda j: j.get("state") == "OFF")
                assert st["mode"] == "auto" and st["hold_until"] is None

                # a named officer switches it on: coil written, read back, manual until the next transition
                mark = rec.count()
                rec.publish(f"{BASE}/light-kp3/set/an", json.dumps({"state": "ON"}))
                st = await _state(rec, "light-kp3", lambda j: j.get("state") == "ON", mark)
                assert sim.relay(1, 2) is True and sim.relay(1, 5) is False
                assert st["mode"] == "manual" and "officer an" in st["reason"] and "holds until" in st["reason"]
                hold = datetime.fromisoformat(st["hold_until"])
                assert hold.utcoffset() == timedelta(hours=7)
                assert START + timedelta(hours=7) < hold < START + timedelta(hours=10)  # evening, same day

                # released: mode auto, the relay stays as it is (the night rule decides)
                mark = rec.count()
                rec.publish(f"{BASE}/light-kp3/set/an", json.dumps({"mode": "auto"}))
                st = await _state(rec, "light-kp3", lambda j: j.get("mode") == "auto", mark)
                assert st["state"] == "ON" and st["hold_until"] is None
                assert st["reason"] == "released to automatic by an"
                assert sim.relay(1, 2) is True

                # plain OFF payload on the anonymous topic
                mark = rec.count()
                rec.publish(f"{BASE}/light-kp3/set", "OFF")
                st = await _state(rec, "light-kp3", lambda j: j.get("state") == "OFF", mark)
                assert sim.relay(1, 2) is False and st["mode"] == "manual"

                # a timed hold uses the board's flash timer (FC05 at 0x0200 + channel, 100 ms units)
                mark = rec.count()
                rec.publish(f"{BASE}/light-kp3/set/binh", json.dumps({"state": "ON", "hold": 600}))
                st = await _state(rec, "light-kp3", lambda j: j.get("state") == "ON", mark)
                assert (5, 0x0202, 6000) in sim.board(1).writes and sim.relay(1, 2) is True
                assert datetime.fromisoformat(st["hold_until"]) == START + timedelta(seconds=600)
                assert "10:10" in st["reason"]  # local time of the end of the hold
                # the hold expires (wall clock moves on): back to auto at the next poll
                mark = rec.count()
                clock.advance(601)
                st = await _state(rec, "light-kp3", lambda j: j.get("mode") == "auto", mark)
                assert "hold ended" in st["reason"] and st["hold_until"] is None

                # a relay that ignores writes: relay_mismatch, and the TRUE state is published
                sim.ignore_writes = True
                mark = rec.count()
                rec.publish(f"{BASE}/light-cho/set", json.dumps({"state": "ON"}))
                ev = await _event(rec, "relay_mismatch", mark, device="light-cho")
                assert ev["requested"] == "ON" and ev["actual"] == "OFF"
                st = await _state(rec, "light-cho", lambda j: j.get("mode") == "manual", mark)
                assert st["state"] == "OFF" and "did not follow" in st["reason"]
                sim.ignore_writes = False

                # switched by hand at the board: noticed at the next poll
                mark = rec.count()
                sim.press(1, 5, True)
                st = await _state(rec, "light-cho", lambda j: j.get("state") == "ON", mark)
                assert "outside the hub" in st["reason"]

                # malformed command → command_rejected, nothing switched
                mark = rec.count()
                writes = len(sim.board(1).writes)
                rec.publish(f"{BASE}/light-kp3/set", json.dumps({"state": "ON", "brightness": 50}))
                ev = await _event(rec, "command_rejected", mark, device="light-kp3")
                assert "brightness" in ev["error"]
                rec.publish(f"{BASE}/light-kp3/set", json.dumps({"state": "DIM"}))
                await _event(rec, "command_rejected", mark + 1, device="light-kp3")
                assert len(sim.board(1).writes) == writes

                # the board goes away: offline and state null; mode survives the reconnect
                mark = rec.count()
                await sim.stop()
                st = await _state(rec, "light-kp3", lambda j: j.get("state") is None, mark)
                assert st["mode"] == "auto"
                await sim.start()
                st = await _state(rec, "light-kp3", lambda j: j.get("state") is not None, mark)
                assert st["state"] == ("ON" if sim.relay(1, 2) else "OFF") and st["mode"] == "auto"
        finally:
            rec.close()


async def test_rule_commands_keep_mode(mosquitto: Any, tmp_path: Path) -> None:
    devices = """
  - {id: light-a, platform: lighting, driver: modbus_coil, host: 127.0.0.1, port: PORT, channel: 0,
     poll_interval: 0.25, timeout: 1}
"""
    async with RelayBoardSimulator({1: "waveshare"}, port=0) as sim:
        rec = await asyncio.to_thread(Recorder, mosquitto.port)
        try:
            async with hub_from_yaml(_yaml(mosquitto.port, devices.replace("PORT", str(sim.port))), tmp_path,
                                     clock=ManualClock(START)) as running:
                await _state(rec, "light-a", lambda j: j.get("state") == "OFF")
                mark = rec.count()
                ok = await running.hub.command("light-a", {"state": "ON"}, source="rule:night_light",
                                               reason="night at a black spot (sun -7.2°)")
                assert ok
                st = await _state(rec, "light-a", lambda j: j.get("state") == "ON", mark)
                assert st["mode"] == "auto" and st["reason"] == "night at a black spot (sun -7.2°)"
                assert sim.relay(1, 0) is True
                assert not [w for w in sim.board(1).writes if w[1] >= 0x0200]  # rules never arm flash timers
        finally:
            rec.close()


async def test_fc06_board_profile(mosquitto: Any, tmp_path: Path) -> None:
    devices = """
  - {id: flood-1, platform: lighting, driver: modbus_register, profile: r4d3b16, host: 127.0.0.1, port: PORT,
     unit: 3, channel: 1, poll_interval: 0.25, timeout: 1}
"""
    async with RelayBoardSimulator({3: "r4d3b16"}, port=0, time_scale=0.02) as sim:
        rec = await asyncio.to_thread(Recorder, mosquitto.port)
        try:
            async with hub_from_yaml(_yaml(mosquitto.port, devices.replace("PORT", str(sim.port))), tmp_path,
                                     clock=ManualClock(START)):
                await _state(rec, "flood-1", lambda j: j.get("state") == "OFF")
                mark = rec.count()
                rec.publish(f"{BASE}/flood-1/set", "ON")
                await _state(rec, "flood-1", lambda j: j.get("state") == "ON", mark)
                assert sim.relay(3, 1) is True and (6, 2, 0x0100) in sim.board(3).writes  # channel 1 = register 2
                # a 100 s hold uses the board's 0x06SS delay; OFF cancels it first (RYN4 ignores OFF meanwhile)
                mark = rec.count()
                rec.publish(f"{BASE}/flood-1/set", json.dumps({"state": "ON", "hold": 100}))
                await _state(rec, "flood-1", lambda j: j.get("hold_until") is not None, mark)
                assert (6, 2, 0x0664) in sim.board(3).writes
                mark = rec.count()
                rec.publish(f"{BASE}/flood-1/set", "OFF")
                await _state(rec, "flood-1", lambda j: j.get("state") == "OFF", mark)
                assert sim.board(3).writes[-2:] == [(6, 2, 0x0600), (6, 2, 0x0200)]
                # the board's own timer switches it off (sim time scaled: 100 s → 2 s)
                rec.publish(f"{BASE}/flood-1/set", json.dumps({"state": "ON", "hold": 50}))
                mark = rec.count()
                st = await _state(rec, "flood-1", lambda j: j.get("state") == "OFF", mark)
                assert st["mode"] == "manual"
        finally:
            rec.close()


async def test_tasmota_relay(mosquitto: Any, tmp_path: Path) -> None:
    devices = """
  - {id: light-tas, platform: lighting, driver: mqtt_relay, topic: tasmota_5e1a2b, poll_interval: 0.3, timeout: 1}
  - {id: light-tas2, platform: lighting, driver: mqtt_relay, topic: tasmota_dual, index: 2, poll_interval: 0.3,
     timeout: 1}
"""
    tas = await asyncio.to_thread(TasmotaSimulator(mosquitto.port, "tasmota_5e1a2b").start)
    dual = await asyncio.to_thread(TasmotaSimulator(mosquitto.port, "tasmota_dual", relays=2).start)
    rec = await asyncio.to_thread(Recorder, mosquitto.port)
    try:
        async with hub_from_yaml(_yaml(mosquitto.port, devices), tmp_path, clock=ManualClock(START)):
            await _state(rec, "light-tas", lambda j: j.get("state") == "OFF")
            await _state(rec, "light-tas2", lambda j: j.get("state") == "OFF")
            mark = rec.count()
            rec.publish(f"{BASE}/light-tas/set/an", json.dumps({"state": "ON"}))
            st = await _state(rec, "light-tas", lambda j: j.get("state") == "ON", mark)
            assert tas.relays == [True] and st["mode"] == "manual"
            assert ("POWER", "ON") in tas.commands
            rec.publish(f"{BASE}/light-tas2/set", "ON")
            await _state(rec, "light-tas2", lambda j: j.get("state") == "ON", mark)
            assert dual.relays == [False, True]
            # button pressed on the device
            mark = rec.count()
            await asyncio.to_thread(tas.press)
            await _state(rec, "light-tas", lambda j: j.get("state") == "OFF", mark)
            # ignores writes → mismatch
            tas.ignore_writes = True
            mark = rec.count()
            rec.publish(f"{BASE}/light-tas/set", "ON")
            ev = await _event(rec, "relay_mismatch", mark, device="light-tas")
            assert ev["actual"] == "OFF"
            tas.ignore_writes = False
            # the relay goes offline (LWT) → unavailable, state null
            mark = rec.count()
            await asyncio.to_thread(tas.stop)
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/light-tas/availability",
                                    lambda j: j["state"] == "offline", 5.0, mark)
            await _state(rec, "light-tas", lambda j: j.get("state") is None, mark)
    finally:
        rec.close()
        await asyncio.to_thread(dual.stop)


async def test_retained_set_is_never_carried_out(tmp_path: Path) -> None:
    """An officer's app leaves ``{"state":"OFF","hold":3600}`` retained on the /set topic. It is
    carried out once (the live delivery); not again after broker restarts nor after a hub restart,
    and the hub does not clear the retained message (it is not the hub's)."""
    from hub.storage import History
    from tests.support.mosquitto import Mosquitto

    workdir = tmp_path / "mosq"
    workdir.mkdir()
    broker = Mosquitto(workdir=workdir, persistence=True).start()
    devices = """
  - {id: light-kp3, platform: lighting, driver: modbus_coil, host: 127.0.0.1, port: PORT, unit: 1, channel: 2,
     poll_interval: 0.25, timeout: 1}
"""
    try:
        async with RelayBoardSimulator({1: "waveshare"}, port=0) as sim:
            text = _yaml(broker.port, devices.replace("PORT", str(sim.port)))
            rec = await asyncio.to_thread(Recorder, broker.port, (f"{BASE}/light-kp3",))
            async with hub_from_yaml(text, tmp_path) as running:
                await _state(rec, "light-kp3", lambda j: j.get("state") == "OFF")
                sim.press(1, 2, True)
                await _state(rec, "light-kp3", lambda j: j.get("state") == "ON")
                await asyncio.to_thread(rec.publish, f"{BASE}/light-kp3/set/an",
                                        json.dumps({"state": "OFF", "hold": 3600}), 1, True)
                await _state(rec, "light-kp3", lambda j: j.get("mode") == "manual")
                # the hub's PUBACK follows the state: let it reach the broker, or the broker
                # (persistent session) rightly delivers the live command again after its restart
                await asyncio.sleep(0.5)
                writes = len(sim.board(1).writes)
                conn = running.bridge.conn
                for _ in range(3):  # the broker restarts (its retained messages persist)
                    connects = conn.connects
                    broker.stop()
                    broker.start()
                    deadline = asyncio.get_running_loop().time() + 20
                    while conn.connects == connects:
                        assert asyncio.get_running_loop().time() < deadline
                        await asyncio.sleep(0.05)
                    # the officer releases the light meanwhile; the retained OFF must not undo it
                    sim.press(1, 2, True)
                    await asyncio.to_thread(rec.publish, f"{BASE}/light-kp3/set/an", '{"mode":"auto"}')
                    await _state(rec, "light-kp3", lambda j: j.get("mode") == "auto" and j.get("state") == "ON")
                    await asyncio.sleep(0.5)
                assert len(sim.board(1).writes) == writes  # the retained OFF never reached the relay
                assert sim.relay(1, 2) is True
            mark = rec.count()
            async with hub_from_yaml(text, tmp_path):  # and a hub restart
                await _state(rec, "light-kp3", lambda j: j.get("state") == "ON", mark)
                await asyncio.sleep(1.0)
                assert sim.relay(1, 2) is True and len(sim.board(1).writes) == writes
            rec.close()
        hist = History(tmp_path / "data" / "history.db")
        commands = [a["command"] for a in hist.audit() if a["user"] == "an"]
        hist.close()
        assert commands == [{"state": "OFF", "hold": 3600}] + [{"mode": "auto"}] * 3
        # the retained message is still there: the hub clears nothing that is not its own
        fresh = await asyncio.to_thread(Recorder, broker.port, (f"{BASE}/light-kp3/set/an",))
        msg = await asyncio.to_thread(fresh.wait_for, lambda m: m.retain, 5.0)
        assert json.loads(msg.payload) == {"state": "OFF", "hold": 3600}
        fresh.close()
    finally:
        broker.stop()
