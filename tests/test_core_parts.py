"""The core's parts against a real Mosquitto: a listener's bug stays in the listener; the bridge's
requests, among them ``snapshot`` from a camera simulator."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hub.api import AvailabilityChange, HubEvent, StateChange
from hub.core import Listener
from hub.security import RIGHTS
from plugins.hikvision.simulator import HikvisionSimulator
from tests import plugin_echo
from tests.support.hubrun import hub_from_yaml, make_plugins
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Recorder

BASE = "anninh"


@pytest.fixture(autouse=True)
def _reset_echo():
    plugin_echo.BEHAVIOUR.clear()
    yield
    plugin_echo.BEHAVIOUR.clear()


async def _wait(pred: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def test_a_listener_that_raises_is_logged_and_isolated(mosquitto: Mosquitto, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Every kind of notification raises in one listener: the device stays online (its poll is not
    failed by it), the listener after it and the MQTT bridge still get everything, each failure is
    logged with its traceback."""
    yaml = f"""
hub: {{name: Test post, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}"}}
sites: [{{id: kp3}}]
devices:
  - {{id: e1, platform: echo, site: kp3}}
"""
    seen: dict[str, list[Any]] = {"state": [], "availability": [], "event": [], "site": []}
    calls = {"n": 0}

    def boom(*_args: Any) -> None:
        calls["n"] += 1
        raise RuntimeError("listener bug")

    rec = Recorder(mosquitto.port)
    caplog.set_level(logging.ERROR, logger="hub")
    async with hub_from_yaml(yaml, tmp_path, plugins=make_plugins(("echo", plugin_echo), builtin=False)) as running:
        hub = running.hub
        hub.add_listener(Listener(on_state=boom, on_availability=boom, on_event=boom, on_site=boom,
                                  on_device_info=boom))

        def on_state(c: StateChange) -> None:
            seen["state"].append(dict(c.changed))

        def on_availability(c: AvailabilityChange) -> None:
            seen["availability"].append(c.available)

        def on_event(e: HubEvent) -> None:
            seen["event"].append(e.type)

        def on_site(site: str, state: Any) -> None:
            seen["site"].append((site, dict(state)))

        hub.add_listener(Listener(on_state=on_state, on_availability=on_availability, on_event=on_event,
                                  on_site=on_site))
        await _wait(lambda: hub.availability.get("e1") is True)
        polls = plugin_echo.BEHAVIOUR["e1"]["polls"]

        plugin_echo.BEHAVIOUR["e1"]["value"] = 42  # a state change, reported by the next poll
        await _wait(lambda: {"value": 42} in seen["state"])
        hub.set_site_state("kp3", {"power": "ok"})
        hub.emit("test_marker", device="e1")
        # the device fails, then recovers: availability and its events pass the broken listener too
        plugin_echo.BEHAVIOUR["e1"]["raise"] = "device down"
        await _wait(lambda: hub.availability.get("e1") is False)
        plugin_echo.BEHAVIOUR["e1"]["raise"] = None
        await _wait(lambda: hub.availability.get("e1") is True)
        await _wait(lambda: plugin_echo.BEHAVIOUR["e1"]["polls"] > polls + 3)
        state = await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", lambda j: j.get("value") == 42)
        assert state["value"] == 42  # the bridge, an earlier listener, published it
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/site/kp3", lambda j: j.get("power") == "ok")
        await asyncio.to_thread(rec.wait_event, BASE, "test_marker", device="e1")
    rec.close()
    assert seen["site"] == [("kp3", {"power": "ok"})]
    assert "test_marker" in seen["event"] and "device_offline" in seen["event"]
    assert seen["availability"] == [False, True]  # only the failure we caused: no listener took e1 down
    offline = [e for e in rec.events(BASE, "device_offline")]
    assert len(offline) == 1 and "device down" in offline[0]["error"]
    assert calls["n"] >= 6
    failures = [r for r in caplog.records if "listener failed" in r.getMessage()]
    assert {r.getMessage().split(" listener")[0] for r in failures} >= {"state", "availability", "event", "site"}
    assert all(r.exc_info is not None for r in failures)


async def test_snapshot_request_through_mosquitto(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """``<base>/bridge/request/snapshot`` answers with the camera's JPEG (base64) and the
    transaction; bad requests get a clear error; every request a role is granted is answered."""
    cam = await HikvisionSimulator("camera").start()
    nvr = await HikvisionSimulator("nvr", 2).start()
    rec = Recorder(mosquitto.port)
    yaml = f"""
hub: {{name: Test post, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}", discovery: false}}
devices:
  - {{id: cam1, platform: hikvision, host: 127.0.0.1, port: {cam.port}, password: admin, timeout: 3}}
  - {{id: nvr1, platform: hikvision, host: 127.0.0.1, port: {nvr.port}, password: admin, timeout: 3}}
"""

    async def ask(name: str, body: dict[str, Any], transaction: int) -> dict[str, Any]:
        rec.publish(f"{BASE}/bridge/request/{name}", json.dumps({**body, "transaction": transaction}))
        return await asyncio.to_thread(rec.wait_topic, f"{BASE}/bridge/response/{name}",
                                       lambda j: j.get("transaction") == transaction, 15.0)

    try:
        nvr.set_picture(2, np.full((120, 160, 3), 200, np.uint8))
        async with hub_from_yaml(yaml, tmp_path):
            for dev in ("cam1", "nvr1"):
                await asyncio.to_thread(rec.wait_topic, f"{BASE}/{dev}/availability",
                                        lambda j: j == {"state": "online"}, 15.0)
            r = await ask("snapshot", {"device": "cam1"}, 1)
            assert r["status"] == "ok", r
            data = r["data"]
            jpeg = base64.b64decode(data["image"], validate=True)
            assert data["size"] == len(jpeg) and data["content_type"] == "image/jpeg"
            assert data["device"] == "cam1" and data["channel"] is None and data["time"]
            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert img is not None
            assert img.shape == (360, 640, 3) and float(img.std()) > 20  # the simulator's scene

            r = await ask("snapshot", {"device": "nvr1", "channel": 2}, 2)
            assert r["status"] == "ok", r
            img = cv2.imdecode(np.frombuffer(base64.b64decode(r["data"]["image"]), np.uint8), cv2.IMREAD_COLOR)
            assert img is not None
            assert img.shape == (120, 160, 3) and abs(float(img.mean()) - 200) < 5  # the picture we set

            for tx, body, words in ((3, {}, "device"), (4, {"device": "nope"}, "unknown device"),
                                    (5, {"device": "cam1", "channel": "2"}, "channel"),
                                    (6, {"device": "cam1", "channel": True}, "channel")):
                r = await ask("snapshot", body, tx)
                assert r["status"] == "error" and words in r["error"], (body, r)
            nvr.picture_error(1, code=6)
            r = await ask("snapshot", {"device": "nvr1", "channel": 1}, 7)
            assert r["status"] == "error" and "device error 6" in r["error"], r

            # nothing the broker's ACL grants goes unanswered (the snapshot request once did)
            granted = {name for rights in RIGHTS.values() for name in rights.requests if name != "#"}
            assert "snapshot" in granted
            for tx, name in enumerate(sorted(granted), start=10):
                r = await ask(name, {"device": "cam1"}, tx)
                assert "unknown request" not in r.get("error", ""), (name, r)
    finally:
        rec.close()
        await cam.stop()
        await nvr.stop()
    leaked = [m.topic for m in rec.messages if b'"password"' in m.payload or b"admin:" in m.payload]
    assert leaked == []


def test_registry_snapshot_is_a_copy_the_loop_may_change_while_a_worker_writes_it(tmp_path: Path) -> None:
    # The hub's storage loop takes the snapshot on the event loop and writes it on a worker thread; the
    # loop keeps adding devices meanwhile (5,000 connecting at start). Writing from the live dicts failed
    # with "dictionary changed size during iteration" (seen in bench_web).
    from hub.storage import Registry

    reg = Registry(tmp_path / "registry.json")
    when = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)
    for i in range(100):
        reg.seen(f"cam{i}", "hikvision", when)
    reg.put_data("light1", "hold", {"until": "05:55"})
    snap = reg.snapshot()
    assert snap is not None and reg.snapshot() is None  # taken once: the registry is clean again
    for i in range(100, 200):
        reg.seen(f"cam{i}", "hikvision", when)
    reg.put_data("light1", "hold", {"until": "06:30"})
    reg.write(snap)
    stored = json.loads((tmp_path / "registry.json").read_text())
    assert len(stored["devices"]) == 100
    assert stored["device_data"]["1"]["light1"]["hold"] == {"until": "05:55"}
    reg.flush()  # the later changes go in the next write
    stored = json.loads((tmp_path / "registry.json").read_text())
    assert len(stored["devices"]) == 200
    assert stored["device_data"]["1"]["light1"]["hold"] == {"until": "06:30"}
    reg.close()


def test_a_commands_commit_leaves_the_state_rows_for_the_flush_loop(tmp_path: Path) -> None:
    """A command is acknowledged once its audit row is committed (Storage.durable); that commit
    no longer writes the second's thousands of buffered state rows with it (20-30 ms at 5,000
    changes/s, which every command waited for), and the flush loop's full flush still writes them."""
    from hub.storage import History

    hist = History(tmp_path / "history.db")
    when = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    for i in range(500):
        hist.add_state(when, f"cam{i}", {"state": "online"})
    hist.add_audit(when, "an", "light-1", {"state": "ON"}, "ok")
    assert hist.flush(with_states=False) == 1
    reader = History(tmp_path / "history.db")  # another connection: what is committed on disk
    assert [a["user"] for a in reader.audit()] == ["an"] and reader.states("cam0") == []
    assert hist.pending == 500
    assert hist.flush() == 500
    assert reader.states("cam499") == [(when.timestamp(), {"state": "online"})]
    reader.close()
    hist.close()
