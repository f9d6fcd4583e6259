"""The image_health rule through a whole hub: real Mosquitto, a real RTSP server (GStreamer) and a
real HTTP snapshot server on loopback, serving clips generated here with known properties."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import pytest

import tests.support.health as testcam
from hub.clock import ManualClock
from plugins.image_health.reference import ReferenceStore
from tests.support.health import RtspServer, SnapshotServer, jpeg, make_clip, write_clip
from tests.support.hubrun import hub_from_yaml, make_plugins
from tests.support.mqtt import Recorder

BASE = "anninh"
# Khanh Binh ward: noon and 22:00 local (UTC+7)
NOON = datetime(2024, 6, 1, 5, 0, tzinfo=UTC)
NIGHT = datetime(2024, 6, 1, 15, 0, tzinfo=UTC)
KINDS = ("normal", "dark", "blurred", "frozen", "covered", "shifted")
EXPECTED = {"normal": set(), "dark": {"dark"}, "blurred": {"blurry"}, "frozen": {"frozen"},
            "covered": {"covered"}, "shifted": {"moved"}}
EVENT = {"dark": "image_dark", "blurry": "image_blurry", "frozen": "image_frozen", "covered": "image_covered",
         "moved": "scene_moved"}


def _config(cams: list[dict[str, Any]], extra_rules: str = "") -> str:
    lines = ["hub:", "  latitude: 11.03", "  longitude: 106.76", "  data_dir: ./data",
             "mqtt:", "  server: {server}", "  discovery: false",
             "sites:", "  - id: kp3", "    blackspot: false", "devices:"]
    for c in cams:
        lines.append(f"  - id: {c['id']}")
        for k, v in c.items():
            if k != "id":
                raw = isinstance(v, str) and v.startswith("RAW:")
                lines.append(f"    {k}: {v[4:] if raw else json.dumps(v) if isinstance(v, str) else v}")
    lines += ["rules:", "  image_health:", "    workers: 4", "    blackspot_interval: 0"]
    lines += [f"    {line}" for line in extra_rules.splitlines() if line.strip()]
    return "\n".join(lines) + "\n"


def _store_reference(data: Path, device_id: str) -> None:
    """The unshifted daylight scene as the camera's reference (as `anninh reference set` would)."""
    store = ReferenceStore(data)
    store.save(device_id, jpeg(make_clip("normal", frames=1)[0]), source="cli", time=NOON)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for night in (False, True):
        for kind in KINDS:
            write_clip(folder, f"{kind}{'-n' if night else ''}", make_clip(kind, night=night), osd=kind != "frozen")
    return folder


@pytest.fixture(scope="module")
def rtsp(clips: Path):
    with RtspServer(clips, auth=("viewer", "s3cret-rtsp")) as srv:
        yield srv


async def _run_all_kinds(mosquitto, tmp_path: Path, clock: ManualClock, cams: list[dict[str, Any]],
                         night: bool, wait: float = 14.0) -> tuple[Recorder, dict[str, Any]]:
    rec = Recorder(mosquitto.port, topics=(f"{BASE}/#",))
    text = _config(cams).replace("{server}", mosquitto.url)
    data = tmp_path / "data"
    for c in cams:
        if c["id"].startswith("shifted") or night:
            _store_reference(data, c["id"])
    plugins = make_plugins(("testcam", testcam))
    expect = {c["id"]: EXPECTED[c["id"].split("-")[0]] for c in cams}
    if night:
        expect = {k: (v - {"dark"}) for k, v in expect.items()}  # darkness at night is no problem
    states: dict[str, Any] = {}
    async with hub_from_yaml(text, tmp_path, plugins=plugins, clock=clock, secrets={"rtsp": "s3cret-rtsp"}):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            states = {c["id"]: rec.last(f"{BASE}/{c['id']}") or {} for c in cams}
            done = all(set(s.get("image") or ()) == expect[d] and s.get("image") is not None
                       for d, s in states.items())
            # keep going a little after everything is raised, to see nothing extra turns up
            if done and sum(1 for e in rec.events(BASE) if e["type"] in EVENT.values()) >= sum(
                    len(v) for v in expect.values()):
                await asyncio.sleep(1.5)
                states = {c["id"]: rec.last(f"{BASE}/{c['id']}") or {} for c in cams}
                break
    rec.close()
    for d, s in states.items():
        assert set(s.get("image") or ()) == expect[d], (d, s)
    return rec, states


def _check_events(rec: Recorder, states: dict[str, Any], night: bool) -> None:
    events = [e for e in rec.events(BASE) if e["type"] in EVENT.values()]
    by_device: dict[str, set[str]] = {}
    for e in events:
        by_device.setdefault(e["device"], set()).add(e["type"])
        assert e["site"] == "kp3"
    for d in states:
        kind = d.split("-")[0]
        wanted = {EVENT[p] for p in EXPECTED[kind] if not (night and p == "dark")}
        assert by_device.get(d, set()) == wanted, (d, by_device.get(d))
    # debounce: each problem raised once, never flapping
    assert len(events) == len({(e["device"], e["type"]) for e in events}), events


@pytest.mark.parametrize("night", [False, True], ids=["day", "night"])
async def test_stream_checks_detect_each_case(mosquitto, tmp_path: Path, rtsp: RtspServer, night: bool) -> None:
    suffix = "-n" if night else ""
    cams = [{"id": f"{k}-cam", "platform": "testcam", "site": "kp3", "health_interval": 0.6,
             "health_source": "stream", "rtsp_url": rtsp.url(k + suffix, credentials=False),
             "username": "viewer", "password": "RAW:!secret rtsp"} for k in KINDS]
    clock = ManualClock(NIGHT if night else NOON)
    rec, states = await _run_all_kinds(mosquitto, tmp_path, clock, cams, night)
    _check_events(rec, states, night)
    assert states["dark-cam"]["dark"] is True and states["dark-cam"]["brightness"] < 20
    assert states["normal-cam"]["dark"] is False
    assert states["normal-cam"]["sharpness"] > states["blurred-cam"]["sharpness"]
    # the password of the stream never reaches MQTT
    assert all(b"s3cret-rtsp" not in m.payload for m in rec.messages)
    # the first healthy daylight picture became the normal camera's reference (by day only)
    store = ReferenceStore(tmp_path / "data")
    if not night:
        meta = store.meta("normal-cam")
        assert meta is not None and meta["source"] == "auto"
        assert not store.has("dark-cam") and not store.has("covered-cam") and not store.has("blurred-cam")
    assert store.latest_path("normal-cam").is_file()


@pytest.mark.parametrize("night", [False, True], ids=["day", "night"])
async def test_snapshot_checks_detect_each_case(mosquitto, tmp_path: Path, night: bool) -> None:
    srv = await SnapshotServer().start()
    try:
        for k in KINDS:
            srv.set_clip(k, make_clip(k, night=night), osd=k != "frozen")
        cams = [{"id": f"{k}-cam", "platform": "testcam", "site": "kp3", "health_interval": 0.5,
                 "snapshot_url": srv.url(k)} for k in KINDS]
        clock = ManualClock(NIGHT if night else NOON)
        rec, states = await _run_all_kinds(mosquitto, tmp_path, clock, cams, night)
        _check_events(rec, states, night)
    finally:
        await srv.stop()


async def test_no_signal_raises_stream_down_and_clears(mosquitto, tmp_path: Path) -> None:
    srv = await SnapshotServer().start()
    try:
        srv.set_clip("cam", make_clip("normal"))
        srv.fail["cam"] = "500"
        cams = [{"id": "cam", "platform": "testcam", "site": "kp3", "health_interval": 0.3,
                 "snapshot_url": srv.url("cam")}]
        rec = Recorder(mosquitto.port, topics=(f"{BASE}/#",))
        text = _config(cams).replace("{server}", mosquitto.url)
        async with hub_from_yaml(text, tmp_path, plugins=make_plugins(("testcam", testcam)),
                                 clock=ManualClock(NOON)):
            ev = await asyncio.to_thread(rec.wait_event, BASE, "stream_down", 8.0)
            assert ev["device"] == "cam" and "HTTP 500" in ev["error"]
            st = rec.last(f"{BASE}/cam")
            assert st["image"] == ["no_signal"] and st["brightness"] is None
            assert len(rec.events(BASE, "stream_down")) == 1
            srv.fail["cam"] = "garbage"  # answers, but not with a picture: still no signal, no crash
            await asyncio.sleep(1.0)
            srv.fail.pop("cam")
            await asyncio.to_thread(rec.wait_event, BASE, "stream_down_cleared", 8.0)
            st = await asyncio.to_thread(rec.wait_topic, f"{BASE}/cam", lambda j: j.get("brightness") is not None)
            assert st["image"] == []
        assert len(rec.events(BASE, "stream_down")) == 1
        rec.close()
    finally:
        await srv.stop()


async def test_stream_refused_password_and_ended_stream_are_no_signal(mosquitto, tmp_path: Path,
                                                                     rtsp: RtspServer) -> None:
    cams = [{"id": "badpw", "platform": "testcam", "site": "kp3", "health_interval": 0.4,
             "health_source": "stream", "rtsp_url": rtsp.url("normal", credentials=False),
             "username": "viewer", "password": "RAW:!secret wrong"},
            {"id": "gone", "platform": "testcam", "site": "kp3", "health_interval": 0.4,
             "health_source": "stream", "rtsp_url": rtsp.url("no-such-clip", credentials=False),
             "username": "viewer", "password": "RAW:!secret rtsp"}]
    rec = Recorder(mosquitto.port, topics=(f"{BASE}/#",))
    text = _config(cams).replace("{server}", mosquitto.url)
    async with hub_from_yaml(text, tmp_path, plugins=make_plugins(("testcam", testcam)), clock=ManualClock(NOON),
                             secrets={"rtsp": "s3cret-rtsp", "wrong": "guessed-pw"}):
        a = await asyncio.to_thread(rec.wait_event, BASE, "stream_down", 10.0, 0, device="badpw")
        b = await asyncio.to_thread(rec.wait_event, BASE, "stream_down", 10.0, 0, device="gone")
    rec.close()
    assert "refused the credentials" in a["error"]
    assert "404" in b["error"]
    for secret in (b"guessed-pw", b"s3cret-rtsp"):
        assert all(secret not in m.payload for m in rec.messages)


async def test_reference_request_and_show(mosquitto, tmp_path: Path) -> None:
    srv = await SnapshotServer().start()
    try:
        srv.set_clip("cam", make_clip("dark"))
        cams = [{"id": "cam", "platform": "testcam", "site": "kp3", "health_interval": 600,
                 "snapshot_url": srv.url("cam")}]
        rec = Recorder(mosquitto.port, topics=(f"{BASE}/#",))
        text = _config(cams).replace("{server}", mosquitto.url)
        async with hub_from_yaml(text, tmp_path, plugins=make_plugins(("testcam", testcam)),
                                 clock=ManualClock(NOON)):
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/cam/availability", lambda j: j["state"] == "online")
            topic = f"{BASE}/bridge/request/reference/set"
            rec.publish(topic, json.dumps({"device": "cam", "transaction": 1}))
            r = await asyncio.to_thread(rec.wait_topic, f"{BASE}/bridge/response/reference/set",
                                        lambda j: j.get("transaction") == 1)
            assert r["status"] == "error" and "dark" in r["error"]  # a dark picture is refused...
            rec.publish(topic, json.dumps({"device": "cam", "force": True, "transaction": 2}))
            r = await asyncio.to_thread(rec.wait_topic, f"{BASE}/bridge/response/reference/set",
                                        lambda j: j.get("transaction") == 2)
            assert r["status"] == "ok" and r["data"]["source"] == "mqtt"  # ...unless forced
            srv.set_clip("cam", make_clip("normal"))
            rec.publish(topic, json.dumps({"device": "cam", "transaction": 3}))
            r = await asyncio.to_thread(rec.wait_topic, f"{BASE}/bridge/response/reference/set",
                                        lambda j: j.get("transaction") == 3)
            assert r["status"] == "ok", r
            assert r["data"]["time"].startswith("2024-06-01T05:00")
            rec.publish(f"{BASE}/bridge/request/reference/set", json.dumps({"device": "nope", "transaction": 4}))
            r = await asyncio.to_thread(rec.wait_topic, f"{BASE}/bridge/response/reference/set",
                                        lambda j: j.get("transaction") == 4)
            assert r["status"] == "error" and "cam" in r["error"]
            # a check now keeps the latest picture; the camera has since been knocked sideways
            srv.set_clip("cam", make_clip("shifted"))
            rec.publish(f"{BASE}/bridge/request/image_health/check", json.dumps({"device": "cam", "transaction": 5}))
            r = await asyncio.to_thread(rec.wait_topic, f"{BASE}/bridge/response/image_health/check",
                                        lambda j: j.get("transaction") == 5)
            assert r["status"] == "ok" and r["data"]["brightness"] > 80
        rec.close()
    finally:
        await srv.stop()
    store = ReferenceStore(tmp_path / "data")
    out = tmp_path / "show.png"
    summary = store.compose("cam", out)
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[0] == 360 and sheet.shape[1] == 3 * 640
    assert 0.07 < summary["shift_x"] < 0.13, summary
