"""Hikvision ISAPI driver against its simulator over real loopback sockets, plus a whole hub with
a real Mosquitto. Every vendor quirk in docs/reference/protocols.md §1 / §5 has a test here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hub.api import AuthError, Command, CommandError, DeviceError
from plugins.hikvision.driver import HikvisionConfig, HikvisionDriver, OutputCommand
from plugins.hikvision.simulator import HikvisionSimulator
from tests.support.context import FakeDeviceContext
from tests.support.hubrun import hub_from_yaml
from tests.support.mqtt import Recorder

FIX = Path(__file__).parent / "fixtures"
PW = "S3cr3t:p@ss/w0rd"


@contextlib.asynccontextmanager
async def running(sim: HikvisionSimulator, listen: bool = False, **cfg: Any) -> AsyncIterator[
        tuple[HikvisionDriver, FakeDeviceContext]]:
    await sim.start()
    config = HikvisionConfig(id="cam", platform="hikvision", host="127.0.0.1", port=sim.port,
                             username=sim.username, password=cfg.pop("password", sim.password),
                             **{"timeout": 3, **cfg})
    ctx = FakeDeviceContext("cam")
    driver = HikvisionDriver(config, ctx)
    task = None
    try:
        await driver.connect()
        if listen:
            task = asyncio.create_task(driver.listen())
            await ctx.wait_for(lambda: sim.streams_opened > 0, what="stream armed")
        yield driver, ctx
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await ctx.cancel_tasks()
        await driver.close()
        await sim.stop()


# ---------------------------------------------------------------------- identity, auth, namespaces
@pytest.mark.parametrize(("kind", "ns", "auth"), [
    ("camera", "ver20", "digest"), ("camera", "none", "basic"), ("nvr", "isapi", "digest"),
    ("nvr", "std-cgi", "both"), ("dvr", "ver10", "digest"), ("dvr", "psia", "digest")])
async def test_identity_kind_and_auth(kind: str, ns: str, auth: str) -> None:
    sim = HikvisionSimulator(kind, password=PW, namespace=ns, auth=auth)  # type: ignore[arg-type]
    async with running(sim) as (drv, _ctx):
        assert drv.info is not None
        assert (drv.info.model, drv.info.serial, drv.info.firmware) == (sim.model, sim.serial, sim.firmware)
        assert drv.kind == ("camera" if kind == "camera" else "recorder")
        assert drv.http is not None and drv.http.auth_scheme == ("basic" if auth == "basic" else "digest")
        fields = await drv.poll()
        assert fields["motion"] is False
        if kind != "camera":
            assert fields["channels_total"] == sim.nchannels


async def test_psia_fallback_without_isapi_prefix() -> None:
    async with running(HikvisionSimulator("camera", psia=True)) as (drv, _ctx):
        assert drv.prefix == "" and drv.info is not None and drv.info.model == "DS-2CD2386G2-IU"
        assert "clock_skew" in await drv.poll()


async def test_wrong_password_raises_auth_error_without_leaking() -> None:
    sim = HikvisionSimulator("camera", password="right-one")
    await sim.start()
    try:
        cfg = HikvisionConfig(id="cam", platform="hikvision", host="127.0.0.1", port=sim.port, password="wrong-pw-123")
        drv = HikvisionDriver(cfg, FakeDeviceContext())
        with pytest.raises(AuthError) as err:
            await drv.connect()
        assert "wrong-pw-123" not in str(err.value) and "password" in str(err.value)
        assert sim.auth_failures == 1  # one attempt, no retry storm inside the driver
        await drv.close()
    finally:
        await sim.stop()


async def test_unreachable_device_is_device_error() -> None:
    sim = HikvisionSimulator("camera")
    await sim.start()
    port = sim.port
    await sim.stop()
    drv = HikvisionDriver(HikvisionConfig(id="c", platform="hikvision", host="127.0.0.1", port=port,
                                          password="x", timeout=1), FakeDeviceContext())
    with pytest.raises(DeviceError):
        await drv.connect()
    await drv.close()


# ---------------------------------------------------------------------- disks, channels, clock
async def test_nvr_disks_channels_and_disk_events() -> None:
    sim = HikvisionSimulator("nvr", 4, disks=2)
    sim.set_disk(2, status="notexist")  # an empty bay from the start is not an error
    async with running(sim) as (drv, ctx):
        fields = await drv.poll()
        assert fields["disks"][0] == {"id": 1, "name": "hdd1", "capacity": 1907729, "free": 814080, "status": "ok"}
        assert fields["disks"][1]["status"] == "notexist"
        assert ctx.events == []
        sim.set_channel_online(3, False)
        sim.disk_error(1)
        fields = await drv.poll()
        assert fields["channels"]["3"]["online"] is False and fields["channels_online"] == 3
        assert ctx.of_type("disk_error", disk="1", status="error")
        assert ctx.of_type("channel_offline", channel=3)
        sim.set_disk(1, status="ok")
        await drv.poll()
        sim.disk_full(1)
        await drv.poll()
        assert ctx.of_type("disk_full", disk="1")
        assert not ctx.of_type("disk_missing")
        sim.disk_missing(1)
        await drv.poll()
        assert ctx.of_type("disk_missing", disk="1")
        assert ctx.of_type("disk_missing", disk=None)  # no disk left at all: nothing records


async def test_dvr_no_video_channel_is_offline() -> None:
    sim = HikvisionSimulator("dvr", 4)
    sim.set_channel_online(2, False)
    async with running(sim) as (drv, _ctx):
        fields = await drv.poll()
        assert [fields["channels"][str(c)]["online"] for c in range(1, 5)] == [True, False, True, True]


async def test_clock_skew_from_current_device_time() -> None:
    sim = HikvisionSimulator("camera")
    sim.set_clock_skew(120)
    async with running(sim) as (drv, _ctx):
        skew = (await drv.poll())["clock_skew"]
        assert 118 <= skew <= 121


# ---------------------------------------------------------------------- snapshots and RTSP
async def test_camera_snapshot_is_a_real_scene() -> None:
    async with running(HikvisionSimulator("camera")) as (drv, _ctx):
        jpeg = await drv.snapshot()
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None
        assert img.shape == (360, 640, 3) and float(img.std()) > 20


async def test_nvr_snapshot_uses_streaming_proxy_after_xml_error_with_200() -> None:
    sim = HikvisionSimulator("nvr", 4)
    picture = np.full((120, 160, 3), 200, np.uint8)
    async with running(sim) as (drv, _ctx):
        sim.set_picture(2, picture)
        jpeg = await drv.snapshot(2)
        assert jpeg[:3] == b"\xff\xd8\xff"
        assert "/ISAPI/ContentMgmt/StreamingProxy/channels/201/picture" in sim.paths
        sim.picture_error(3, code=6)
        with pytest.raises(DeviceError, match="device error 6"):
            await drv.snapshot(3)  # XML served with HTTP 200 is an error, not a JPEG
        sim.set_channel_online(4, False)
        with pytest.raises(DeviceError):
            await drv.snapshot(4)


async def test_stream_url_encodes_credentials() -> None:
    async with running(HikvisionSimulator("nvr", 2, password=PW)) as (drv, _ctx):
        url = drv.stream_url(2)
        assert url == "rtsp://admin:S3cr3t%3Ap%40ss%2Fw0rd@127.0.0.1:554/Streaming/Channels/201"


# ---------------------------------------------------------------------- alarm outputs
async def test_alarm_outputs_switch_and_read_back() -> None:
    sim = HikvisionSimulator("nvr", 2, outputs=2)
    async with running(sim) as (drv, _ctx):
        assert drv.output_count == 2
        assert await drv.handle_command(Command(OutputCommand(output=2, state="ON"))) == {"output_2": "ON"}
        assert sim.output_state == {1: False, 2: True}
        assert (await drv.poll())["output_2"] == "ON"
        assert await drv.handle_command(Command(OutputCommand.model_validate({"output_2": "OFF"}))) == \
            {"output_2": "OFF"}
        with pytest.raises(CommandError):
            await drv.handle_command(Command(OutputCommand(output=7, state="ON")))
        with pytest.raises(CommandError):
            await drv.handle_command(Command(OutputCommand.model_validate({"bogus": 1})))


# ---------------------------------------------------------------------- event stream quirks
@pytest.mark.parametrize("opts", [
    {"kind": "camera", "stream_mode": "camera"},
    {"kind": "camera", "stream_mode": "camera", "duplicate_boundary": True},
    {"kind": "nvr", "stream_mode": "nvr", "nvr_channel_style": "dyn"},
    {"kind": "nvr", "stream_mode": "nvr", "nvr_channel_style": "plus32"},
    {"kind": "nvr", "stream_mode": "legacy-nvr"},
    {"kind": "dvr", "http10": True},
    {"kind": "nvr", "parts_per_write": 8, "namespace": "none"},
], ids=["camera-crlf", "dup-boundary", "nvr-dyn", "nvr-32+n", "legacy-boundary", "dvr-http10", "parts-per-write"])
async def test_event_stream_variants(opts: dict[str, Any]) -> None:
    kind = opts.pop("kind")
    sim = HikvisionSimulator(kind, None if kind == "camera" else 4, repeat_interval=0.2, **opts)
    async with running(sim, listen=True, event_timeout=1.0) as (_drv, ctx):
        ch = 1 if kind == "camera" else 2
        sim.trigger("motion", ch)
        sim.trigger("tamper", ch)
        await ctx.wait_for(lambda: ctx.of_type("motion", channel=ch, active=True) and
                           ctx.of_type("tamper", channel=ch, active=True), what="motion+tamper")
        assert len(ctx.of_type("motion", active=True)) == 1  # repeats do not re-emit
        flags = ctx.fields if kind == "camera" else ctx.fields["channels"][str(ch)]
        assert flags["motion"] is True and flags["tamper"] is True
        sim.trigger("motion", ch, active=False)
        await ctx.wait_for(lambda: ctx.of_type("motion", channel=ch, active=False), what="motion end")


async def test_nvr_never_sends_inactive_event_ends_by_timeout() -> None:
    sim = HikvisionSimulator("nvr", 4, repeat_interval=0.2)
    async with running(sim, listen=True, event_timeout=0.8) as (_drv, ctx):
        sim.trigger("video_loss", 3)
        await ctx.wait_for(lambda: ctx.of_type("video_loss", channel=3, active=True))
        await asyncio.sleep(1.2)
        assert not ctx.of_type("video_loss", active=False)  # still repeated at 5 Hz: still active
        sim.trigger("video_loss", 3, active=False)  # nvr mode: the simulator just stops repeating
        await ctx.wait_for(lambda: ctx.of_type("video_loss", channel=3, active=False, ended="timeout"), 3)


async def test_device_level_events_once_per_episode() -> None:
    sim = HikvisionSimulator("nvr", 2, repeat_interval=0.1)
    async with running(sim, listen=True) as (_drv, ctx):
        sim.trigger("disk_full")
        sim.trigger("disk_error")
        await asyncio.sleep(0.6)
        assert len(ctx.of_type("disk_full")) == 1 and len(ctx.of_type("disk_error")) == 1


async def test_replayed_captures_through_the_stream() -> None:
    sim = HikvisionSimulator("nvr", 16, stream_mode="nvr")
    async with running(sim, listen=True, event_timeout=2) as (_drv, ctx):
        sim.inject_raw((FIX / "hikvision_NVR_alertStream_lf_dynChannelID.bin").read_bytes())
        await ctx.wait_for(lambda: ctx.of_type("motion", channel=15, active=True), what="dynChannelID 15")
        sim.inject_raw(b"--boundary\nContent-Type: application/xml\n\n" +
                       (FIX / "hikvision_camera_alert_nvr_fielddetection_channel34.xml").read_bytes())
        await ctx.wait_for(lambda: ctx.of_type("intrusion", channel=2, active=True), what="channelID 34 -> 2")
        sim.inject_raw(b"--boundary\r\ngarbage\r\n\r\n<EventNotificationAlert><eventType>VMD</eventType>\r\n"
                       b"--boundary\r\n\x00\xff\r\n")
        sim.trigger("tamper", 1)
        await ctx.wait_for(lambda: ctx.of_type("tamper", channel=1), what="stream survives garbage")


async def test_camera_capture_heartbeat_and_motion() -> None:
    sim = HikvisionSimulator("camera", heartbeat=0)
    async with running(sim, listen=True, event_timeout=5) as (drv, ctx):
        sim.inject_raw((FIX / "hikvision_DS-2CD2185FWD-I_alertStream_camera_crlf.bin").read_bytes())
        await ctx.wait_for(lambda: ctx.of_type("motion", active=False), what="VMD active then inactive")
        assert [e["active"] for e in ctx.of_type("motion")] == [True, False]
        assert not ctx.of_type("video_loss")  # the videoloss/inactive heartbeat is not an event
        assert drv.events_seen >= 3


async def test_dvr_http10_capture_without_time_offset() -> None:
    sim = HikvisionSimulator("dvr", 4, http10=True)
    async with running(sim, listen=True) as (_drv, ctx):
        raw = (FIX / "hikvision_iDS-7204HUHI-M1_alertStream_http10.bin").read_bytes()
        sim.inject_raw(raw.split(b"\r\n\r\n", 1)[1])  # the body; the simulator sends the HTTP/1.0 head itself
        await ctx.wait_for(lambda: ctx.of_type("motion", channel=2, active=True))


async def test_hung_device_mid_stream_makes_listen_raise() -> None:
    sim = HikvisionSimulator("camera", heartbeat=0.2)
    async with running(sim, listen=False, stream_timeout=1.0, timeout=1.0) as (drv, ctx):
        task = asyncio.create_task(drv.listen())
        await ctx.wait_for(lambda: sim.streams_opened == 1)
        sim.freeze()
        started = time.monotonic()
        with pytest.raises(DeviceError, match="does not answer"):
            await asyncio.wait_for(task, 6)
        assert time.monotonic() - started < 4
        sim.unfreeze()


async def test_stream_closed_by_device_is_rearmed_without_going_offline() -> None:
    sim = HikvisionSimulator("nvr", 2)
    async with running(sim, listen=True) as (_drv, ctx):
        sim.drop_connections()  # NVRs drop the arming link now and then
        await ctx.wait_for(lambda: sim.streams_opened >= 2, 5, "stream re-armed")
        sim.trigger("motion", 1)
        await ctx.wait_for(lambda: ctx.of_type("motion", channel=1, active=True))


# ---------------------------------------------------------------------- retention
@pytest.mark.parametrize("time_mode", ["local-z", "utc"])
async def test_retention_twelve_days_against_thirty(time_mode: str) -> None:
    sim = HikvisionSimulator("nvr", 3, time_mode=time_mode)
    sim.set_recordings(1, 12)
    sim.set_recordings(2, 40)
    async with running(sim) as (_drv, ctx):
        await ctx.wait_for(lambda: ctx.fields.get("retention_days") is not None, what="retention")
        assert ctx.fields["retention_days"] == 12
        assert ctx.fields["retention_target_days"] == 30
        assert ctx.fields["channels"]["1"]["retention_days"] == 12
        assert ctx.fields["channels"]["2"]["retention_days"] == 40
        assert ctx.fields["channels"]["3"]["retention_days"] is None
        assert ctx.of_type("retention_low") == [{"type": "retention_low", "days": 12, "target": 30,
                                                 "channels": ["1"]}]


# ---------------------------------------------------------------------- whole hub + Mosquitto
HUB_YAML = """
hub:
  name: test post
  timezone: Asia/Ho_Chi_Minh
  data_dir: {data}
mqtt:
  server: mqtt://127.0.0.1:{mqtt}
  base_topic: t
  discovery: false
sites:
  - id: kp3
    name: KP3
devices:
  - id: cam1
    platform: hikvision
    site: kp3
    host: 127.0.0.1
    port: {cam}
    password: !secret cam_pw
    poll_interval: 0.3
    timeout: 2
    event_timeout: 1
  - id: nvr1
    platform: hikvision
    site: kp3
    host: 127.0.0.1
    port: {nvr}
    username: admin
    password: !secret cam_pw
    poll_interval: 0.3
    timeout: 2
    retention_interval: 1
    event_timeout: 1
  - id: badpw
    platform: hikvision
    host: 127.0.0.1
    port: {bad}
    password: !secret wrong_pw
    poll_interval: 0.3
    timeout: 2
"""


async def test_full_hub_over_mqtt(mosquitto: Any, tmp_path: Path) -> None:
    cam = HikvisionSimulator("camera", password=PW, repeat_interval=0.2)
    nvr = HikvisionSimulator("nvr", 4, password=PW, repeat_interval=0.2)
    bad = HikvisionSimulator("camera", password="the-real-one")
    for s in (cam, nvr, bad):
        await s.start()
    nvr.set_recordings(1, 12)
    nvr.set_recordings(2, 12)
    rec = await asyncio.to_thread(Recorder, mosquitto.port, ("t/#",))
    yaml = HUB_YAML.format(data=tmp_path / "data", mqtt=mosquitto.port, cam=cam.port, nvr=nvr.port, bad=bad.port)
    try:
        async with hub_from_yaml(yaml, tmp_path, secrets={"cam_pw": PW, "wrong_pw": "not-the-pw"}) as hubrun:
            def wait_topic(topic: str, pred: Any, timeout: float = 10) -> Any:
                return asyncio.to_thread(rec.wait_topic, topic, pred, timeout)

            state = await wait_topic("t/cam1", lambda j: j.get("model") == "DS-2CD2386G2-IU" and "motion" in j)
            assert state["serial"] == cam.serial and state["firmware"] == "V5.7.18"
            nstate = await wait_topic("t/nvr1", lambda j: j.get("retention_days") == 12 and j.get("disks"))
            assert nstate["model"] == nvr.model and nstate["channels"]["1"]["online"] is True
            assert nstate["disks"][0]["capacity"] == 1907729 and nstate["retention_target_days"] == 30
            await asyncio.to_thread(rec.wait_event, "t", "retention_low", 10, 0, device="nvr1", days=12)

            cam.trigger("motion")
            nvr.trigger("video_loss", 2)
            nvr.trigger("tamper", 3)
            nvr.disk_full(1)
            nvr.disk_error(1)
            for dev, typ, extra in (("cam1", "motion", {"channel": 1, "active": True}),
                                    ("nvr1", "video_loss", {"channel": 2, "active": True}),
                                    ("nvr1", "tamper", {"channel": 3, "active": True}),
                                    ("nvr1", "disk_full", {}), ("nvr1", "disk_error", {})):
                await asyncio.to_thread(rec.wait_event, "t", typ, 10, 0, device=dev, **extra)
            await wait_topic("t/cam1", lambda j: j.get("motion") is True)
            await wait_topic("t/nvr1", lambda j: j["channels"]["2"]["video_loss"] is True and j["video_loss"] is True)

            # wrong password: offline with an auth error, retried slowly (auth_minimum 1 s in tests)
            off = await asyncio.to_thread(rec.wait_event, "t", "device_offline", 10, 0, device="badpw")
            assert "password" in off["error"]
            await wait_topic("t/badpw/availability", lambda j: j == {"state": "offline"})
            before = bad.requests
            await asyncio.sleep(2.5)
            assert bad.requests - before <= 3 * 3  # ≤ 3 login attempts in 2.5 s, ~3 requests each

            # a command through MQTT switches an NVR relay and is read back
            await asyncio.to_thread(rec.publish, "t/nvr1/set", json.dumps({"output": 1, "state": "ON"}))
            await wait_topic("t/nvr1", lambda j: j.get("output_1") == "ON")
            assert nvr.output_state[1] is True
            # the Home Assistant switch's payload (built by the bridge from entities()) works too
            ents = {e.field: e for e in hubrun.hub.runners["nvr1"].driver.entities()}  # type: ignore[union-attr]
            assert ents["output_2"].component == "switch" and ents["output_2"].command
            await asyncio.to_thread(rec.publish, "t/nvr1/set", json.dumps({"output_2": "ON"}))
            await wait_topic("t/nvr1", lambda j: j.get("output_2") == "ON")
    finally:
        leaked = [m for m in rec.messages if PW.encode() in m.payload or b"not-the-pw" in m.payload]
        rec.close()
        for s in (cam, nvr, bad):
            await s.stop()
    assert leaked == []


async def test_reboot_goes_offline_and_recovers_through_hub(mosquitto: Any, tmp_path: Path) -> None:
    cam = HikvisionSimulator("camera", heartbeat=0.5)
    await cam.start()
    rec = await asyncio.to_thread(Recorder, mosquitto.port, ("t/#",))
    yaml = f"""
hub:
  name: test
  timezone: Asia/Ho_Chi_Minh
  data_dir: {tmp_path / "data"}
mqtt:
  server: mqtt://127.0.0.1:{mosquitto.port}
  base_topic: t
  discovery: false
devices:
  - id: cam1
    platform: hikvision
    host: 127.0.0.1
    port: {cam.port}
    password: admin
    poll_interval: 0.3
    timeout: 1
    stream_timeout: 2
"""
    try:
        async with hub_from_yaml(yaml, tmp_path):
            await asyncio.to_thread(rec.wait_topic, "t/cam1/availability", lambda j: j == {"state": "online"}, 10)
            await cam.reboot(2.0)
            await asyncio.to_thread(rec.wait_event, "t", "device_offline", 10, 0, device="cam1")
            await asyncio.to_thread(rec.wait_event, "t", "device_online", 15, 0, device="cam1")
            n = len(rec.messages)
            cam.trigger("motion")
            await asyncio.to_thread(rec.wait_event, "t", "motion", 10, n, device="cam1", active=True)
    finally:
        rec.close()
        await cam.stop()


# ---------------------------------------------------------------------- plugin wiring, config, CLI
def test_plugins_are_discovered_with_their_simulators() -> None:
    from hub.plugins import PluginManager

    pm = PluginManager().discover(None, entry_points=False)
    assert not [p for p in pm.problems if "hikvision" in p or "dahua" in p]
    assert {"hikvision", "dahua"} <= set(pm.platforms())
    assert {"hikvision", "dahua"} <= set(pm.simulators())


def test_config_typo_and_bad_channel_are_errors() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="extra"):
        HikvisionConfig(id="c", platform="hikvision", host="h", password="p", evnt_stream=False)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="channels"):
        HikvisionConfig(id="c", platform="hikvision", host="h", password="p", channels=[0])
    assert "p" not in repr(HikvisionConfig(id="c", platform="hikvision", host="h", password="p").password)


async def test_simulator_cli_serves_isapi() -> None:
    import sys

    import httpx

    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "plugins.hikvision.simulator", "--kind", "nvr",
                                                "--port", "0", "--auth", "none", stdout=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()  # type: ignore[union-attr]
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/ISAPI/System/deviceInfo")
        assert r.status_code == 200 and b"<deviceType>NVR</deviceType>" in r.content
    finally:
        proc.terminate()
        await proc.wait()


async def test_picture_parts_after_smart_events_and_doorbell_heartbeat() -> None:
    sim = HikvisionSimulator("camera", picture_after_smart=True, heartbeat=0)
    async with running(sim, listen=True) as (_drv, ctx):
        sim.trigger("line_crossing")
        sim.inject_raw(b'--boundary\r\nContent-Type: application/xml\r\n\r\n<EventNotificationAlert version="2.0">'
                       b"<channelID>1</channelID><eventType>other</eventType><eventState>active</eventState>"
                       b"<eventDescription>Heartbeat</eventDescription></EventNotificationAlert>\r\n")
        sim.trigger("intrusion")
        await ctx.wait_for(lambda: ctx.of_type("line_crossing") and ctx.of_type("intrusion"), what="smart events")
        assert [e["type"] for e in ctx.events] == ["line_crossing", "intrusion"]  # JPEG parts and heartbeat ignored


async def test_not_activated_camera_says_so() -> None:
    sim = HikvisionSimulator("camera")
    sim.unauthorized_body = (b'<?xml version="1.0" encoding="UTF-8"?><userCheck><statusValue>401</statusValue>'
                             b"<statusString>notActivated</statusString></userCheck>")
    await sim.start()
    try:
        drv = HikvisionDriver(HikvisionConfig(id="c", platform="hikvision", host="127.0.0.1", port=sim.port,
                                              password="x"), FakeDeviceContext())
        with pytest.raises(AuthError, match="not activated"):
            await drv.connect()
        await drv.close()
    finally:
        await sim.stop()


# ---------------------------------------------------------------------- a real third-party client: pyHik
# pyHik (what Home Assistant's hikvision integration uses) is blocking (requests) and runs its event
# stream in its own thread: every call goes through asyncio.to_thread, and the stream thread is
# stopped (kill event + dropped connection) and joined with a bound in `pyhik_stream`.
def _pyhik(sim: HikvisionSimulator) -> Any:
    from pyhik.hikvision import HikCamera

    cam = HikCamera("127.0.0.1", sim.port, sim.username, sim.password)
    cam.thrd.daemon = True  # belt and braces: a stream thread that outlived its test must not hold pytest
    return cam


@contextlib.asynccontextmanager
async def pyhik_stream(sim: HikvisionSimulator, cam: Any) -> AsyncIterator[list[tuple[str, bool]]]:
    """Start pyHik's alert stream; yields the (sensor, state) changes its callbacks report."""
    changes: list[tuple[str, bool]] = []

    def changed(sensor: str) -> None:  # called in pyHik's thread
        _cam_id, etype, channel = sensor.split(".")
        state = cam.fetch_attributes(etype, int(channel))
        changes.append((f"{etype}.{channel}", bool(state and state[0])))

    for etype, sensors in cam.current_event_states.items():
        for entry in sensors:
            cam.add_update_callback(changed, f"{cam.get_id}.{etype}.{entry[1]}")
    opened = sim.streams_opened
    cam.start_stream()
    try:
        await _until(lambda: sim.streams_opened > opened, 10, "pyHik armed the alert stream")
        yield changes
    finally:
        cam.kill_thrd.set()
        sim.drop_connections()  # the thread checks the kill event between lines: wake it now
        await asyncio.to_thread(cam.thrd.join, 10)
        cam.watchdog.stop()
        assert not cam.thrd.is_alive(), "pyHik's stream thread did not stop"


async def _until(cond: Any, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_pyhik_camera_identity_snapshot_motion_config_and_events() -> None:
    sim = await HikvisionSimulator("camera", password=PW, heartbeat=1).start()
    try:
        cam = await asyncio.to_thread(_pyhik, sim)
        assert (cam.get_id, cam.get_name, cam.get_type) == ("6aff4000-1f90-00b0-0000-000c00000000", "yard", "CAM")
        assert list(cam.current_event_states) == ["Motion"]
        assert cam.current_motion_detection_state is True  # motionDetection config read
        await asyncio.to_thread(cam.disable_motion_detection)
        assert sim.motion_enabled[1] is False
        assert await asyncio.to_thread(cam.get_motion_detection) is False
        jpeg = await asyncio.to_thread(cam.get_snapshot)  # GET /ISAPI/Streaming/channels/1/picture
        assert "/ISAPI/Streaming/channels/1/picture" in sim.paths
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (360, 640, 3)
        async with pyhik_stream(sim, cam) as changes:
            sim.trigger("motion", 1)
            await _until(lambda: ("Motion.1", True) in changes, 5, "pyHik saw motion")
            started = time.monotonic()
            sim.trigger("motion", 1, active=False)  # a camera sends "inactive": no 5 s staleness wait
            await _until(lambda: changes[-1] == ("Motion.1", False), 5, "pyHik saw motion end")
            assert time.monotonic() - started < 2
    finally:
        await sim.stop()


async def test_pyhik_nvr_channels_snapshots_and_heartbeat_clears_motion() -> None:
    # an NVR whose Streaming/channels/<n>01/picture answers directly (pyHik has no XML-with-200 fallback)
    sim = await HikvisionSimulator("nvr", 4, password=PW, heartbeat=1, nvr_picture_fallback=False).start()
    try:
        cam = await asyncio.to_thread(_pyhik, sim)
        assert cam.get_type == "NVR" and cam.get_name == "Network Video Recorder"
        assert sorted(e[1] for e in cam.current_event_states["Motion"]) == [1, 2, 3, 4]
        assert cam.current_motion_detection_state is None  # 403 on an NVR: "not supported", not an error
        from pyhik.hikvision import get_video_channels

        channels = await asyncio.to_thread(get_video_channels, "127.0.0.1", sim.port, sim.username, PW)
        assert [(c.id, c.name, c.enabled) for c in channels] == [(n, f"IPCamera 0{n}", True) for n in range(1, 5)]
        assert cam.get_stream_url(2).endswith("@127.0.0.1:554/Streaming/Channels/201")
        for ch in (1, 3):
            jpeg = await asyncio.to_thread(cam.get_snapshot, ch)
            assert jpeg[:3] == b"\xff\xd8\xff" and f"/ISAPI/Streaming/channels/{ch}01/picture" in sim.paths
        async with pyhik_stream(sim, cam) as changes:
            sim.trigger("motion", 2)
            await _until(lambda: ("Motion.2", True) in changes, 5, "pyHik saw motion on channel 2")
            sim.trigger("motion", 2, active=False)  # NVR: no "inactive", the repeats just stop
            # pyHik ends an event 5 s after its last repeat, but only when a part arrives: the
            # heartbeats (videoloss/inactive, channel 0) make it happen
            await _until(lambda: changes[-1] == ("Motion.2", False), 9, "motion cleared by a heartbeat")
            assert ("Motion.1", True) not in changes
    finally:
        await sim.stop()


async def test_stream_uris_play_with_ffprobe() -> None:
    from tests.support.rtsp import probe_stream, probe_unavailable

    if why := probe_unavailable():
        pytest.skip(f"no RTSP stream test here: {why} (scripts/test.sh installs it)")
    sim = await HikvisionSimulator("camera", password=PW, rtsp=True).start()
    try:
        cam = await asyncio.to_thread(_pyhik, sim)
        # pyHik builds rtsp://user:pass@host:554/Streaming/Channels/1; the port is in adminAccesses
        r = await asyncio.to_thread(cam.hik_request.get, f"http://127.0.0.1:{sim.port}/ISAPI/Security/adminAccesses")
        port = int(r.text.split("<protocol>RTSP</protocol>\n<portNo>")[1].split("<")[0])
        assert port == sim.rtsp_port != 554
        url = cam.get_stream_url().replace(":554/", f":{port}/")
        info = await asyncio.to_thread(probe_stream, url)
        assert (info["codec_name"], info["width"], info["height"]) == ("h264", 640, 360)
    finally:
        await sim.stop()
    # an NVR's channel 2, through our own driver (the RTSP port comes from its config)
    nvr = await HikvisionSimulator("nvr", 2, password=PW, rtsp=True).start()
    drv = HikvisionDriver(HikvisionConfig(id="nvr", platform="hikvision", host="127.0.0.1", port=nvr.port,
                                          username=nvr.username, password=PW, rtsp_port=nvr.rtsp_port, timeout=3),
                          FakeDeviceContext("nvr"))
    try:
        await drv.connect()
        info = await asyncio.to_thread(probe_stream, drv.stream_url(2))
        assert info["codec_name"] == "h264" and int(str(info["nb_read_frames"])) >= 1
        with pytest.raises(RuntimeError, match="401"):  # the stream asks for the device's password
            await asyncio.to_thread(probe_stream, nvr.stream_uri(2))
    finally:
        await drv.close()
        await nvr.stop()
