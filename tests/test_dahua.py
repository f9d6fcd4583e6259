"""Dahua CGI driver against its simulator over real loopback sockets, captures replayed, and a
whole hub with a real Mosquitto (docs/reference/protocols.md §2 / §5)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.api import AuthError, Command, CommandError, DeviceError
from plugins.dahua.driver import DahuaConfig, DahuaDriver, parse_event, parse_kv, parse_storage
from plugins.dahua.simulator import DahuaSimulator
from plugins.hikvision.driver import OutputCommand
from tests.support.context import FakeDeviceContext
from tests.support.hubrun import hub_from_yaml
from tests.support.mqtt import Recorder

FIX = Path(__file__).parent / "fixtures"
PW = "dahua&pw=1;x"


@contextlib.asynccontextmanager
async def running(sim: DahuaSimulator, listen: bool = False, **cfg: Any) -> AsyncIterator[
        tuple[DahuaDriver, FakeDeviceContext]]:
    await sim.start()
    config = DahuaConfig(id="dh", platform="dahua", host="127.0.0.1", port=sim.port, username=sim.username,
                         password=cfg.pop("password", sim.password), **{"timeout": 3, "heartbeat": 1, **cfg})
    ctx = FakeDeviceContext("dh")
    driver = DahuaDriver(config, ctx)
    task = None
    try:
        await driver.connect()
        if listen:
            task = asyncio.create_task(driver.listen())
            await ctx.wait_for(lambda: sim.streams_opened > 0, what="attached")
        yield driver, ctx
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await ctx.cancel_tasks()
        await driver.close()
        await sim.stop()


# ---------------------------------------------------------------------- parsers on captures
def test_parse_storage_capture_float_bytes() -> None:
    disks = parse_storage(parse_kv((FIX / "dahua_Amcrest_SD_getDeviceAllInfo.txt").read_bytes()))
    assert disks == [{"id": 1, "name": "/dev/mmc0", "capacity": 61025, "free": 61024, "status": "ok"}]  # MB, floored


def test_parse_storage_every_disk_and_partition() -> None:
    kv = parse_kv("list.info[0].Detail[0].TotalBytes=1048576.000000\nlist.info[0].Detail[1].TotalBytes=2097152.0\n"
                  "list.info[0].Detail[0].UsedBytes=1048576.0\nlist.info[0].Detail[1].UsedBytes=0.0\n"
                  "list.info[0].Detail[1].IsError=true\nlist.info[0].State=Success\nlist.info[1].State=Success\n"
                  "list.info[1].Detail[0].TotalBytes=garbage\nlist.info[x].State=bad\n")
    disks = parse_storage(kv)
    assert disks[0] == {"id": 1, "name": None, "capacity": 3, "free": 2, "status": "error"}
    assert disks[1]["capacity"] == 0 and disks[1]["status"] == "ok"
    for bad in ("inf", "1e400", "nan", "-5"):
        assert parse_storage(parse_kv(f"list.info[0].Detail[0].TotalBytes={bad}\n"))[0]["capacity"] == 0


def test_parse_event_variants() -> None:
    ev = parse_event(b'Code=VideoMotion;action=Start;index=0;data={\n   "Id" : [ 0 ],\n   "RegionName" : '
                     b'[ "Region1" ]\n}')
    assert ev == {"Code": "VideoMotion", "action": "Start", "index": "0",
                  "data": {"Id": [0], "RegionName": ["Region1"]}}
    assert parse_event(b"Heartbeat") is None
    assert parse_event(b"HTTP/1.1 200 OK") is None
    broken = parse_event(b"Code=X;action=Start;index=0;data={broken")
    assert broken is not None and broken["data"] is None


def test_system_info_capture() -> None:
    kv = parse_kv((FIX / "dahua_IPC-HDW5831R-ZE_getSystemInfo.txt").read_bytes())
    assert kv["serialNumber"] == "4X7C5A1ZAG21L3F" and kv["deviceType"] == "IPC-HDW5831R-ZE"


# ---------------------------------------------------------------------- identity and auth
@pytest.mark.parametrize(("kind", "expect"), [("camera", "camera"), ("nvr", "recorder"), ("dvr", "recorder")])
async def test_identity_and_kind(kind: str, expect: str) -> None:
    sim = DahuaSimulator(kind, password=PW)  # type: ignore[arg-type]
    async with running(sim) as (drv, _ctx):
        info = await drv.connect()
        assert (info.model, info.serial) == (sim.model, sim.serial)
        assert info.firmware == sim.firmware.split(",")[0]
        assert drv.kind == expect and drv.http is not None and drv.http.auth_scheme == "digest"
        if kind != "camera":
            assert drv.channels == list(range(1, sim.nchannels + 1))


async def test_digest_realm_is_login_to_serial_and_wrong_password_is_auth_error() -> None:
    sim = DahuaSimulator("camera", password="right")
    await sim.start()
    try:
        drv = DahuaDriver(DahuaConfig(id="d", platform="dahua", host="127.0.0.1", port=sim.port,
                                      password="wrong-secret-9"), FakeDeviceContext())
        with pytest.raises(AuthError) as err:
            await drv.connect()
        assert "wrong-secret-9" not in str(err.value)
        assert sim.realm == f"Login to {sim.serial}" and sim.auth_failures == 1
        await drv.close()
    finally:
        await sim.stop()


# ---------------------------------------------------------------------- state
async def test_nvr_disks_channels_and_events() -> None:
    sim = DahuaSimulator("nvr", 4, disks=2)
    async with running(sim) as (drv, ctx):
        fields = await drv.poll()
        assert [d["id"] for d in fields["disks"]] == [1, 2]
        assert fields["disks"][0]["capacity"] == 1907739 and fields["disks"][0]["status"] == "ok"
        sim.set_channel_online(2, False)  # getEventIndexes&code=VideoLoss → channels[0]=1 (0-based)
        sim.disk_error(1)
        fields = await drv.poll()
        assert fields["channels"]["2"]["online"] is False and fields["channels_online"] == 3
        assert ctx.of_type("disk_error", disk="1")
        sim.disk_full(2)
        await drv.poll()
        assert ctx.of_type("disk_full", disk="2")
        sim.disk_missing(2)
        await drv.poll()
        assert ctx.of_type("disk_missing", disk="2")


async def test_snapshot_and_stream_url() -> None:
    sim = DahuaSimulator("nvr", 2, password=PW)
    async with running(sim) as (drv, _ctx):
        assert (await drv.snapshot(2))[:3] == b"\xff\xd8\xff"
        sim.set_channel_online(1, False)
        with pytest.raises(DeviceError):
            await drv.snapshot(1)
        assert drv.stream_url(2) == \
            "rtsp://admin:dahua%26pw%3D1%3Bx@127.0.0.1:554/cam/realmonitor?channel=2&subtype=0"


@pytest.mark.parametrize("modes", [{"on": 1, "off": 2}, {"on": 0, "off": 1}, {"on": 1, "off": 0}])
async def test_alarm_output_mode_mapping_confirmed_by_read_back(modes: dict[str, int]) -> None:
    sim = DahuaSimulator("nvr", 2, outputs=2, alarm_modes=modes)
    async with running(sim) as (drv, _ctx):
        assert drv.output_count == 2
        assert await drv.handle_command(Command(OutputCommand(output=2, state="ON"))) == {"output_2": "ON"}
        assert sim.out_mode[1] == modes["on"]
        assert (await drv.poll())["output_2"] == "ON"
        assert await drv.handle_command(Command(OutputCommand(output=2, state="OFF"))) == {"output_2": "OFF"}
        assert (await drv.poll())["output_2"] == "OFF"
        before = sim.requests
        await drv.handle_command(Command(OutputCommand(output=2, state="ON")))
        assert sim.requests - before == 2  # the learnt mapping is used first: one set, one read-back


async def test_output_that_never_switches_is_rejected() -> None:
    sim = DahuaSimulator("camera", outputs=1, alarm_modes={"on": 7, "off": 2})
    async with running(sim) as (drv, _ctx):
        with pytest.raises(CommandError, match="read back"):
            await drv.handle_command(Command(OutputCommand(output=1, state="ON")))


# ---------------------------------------------------------------------- event stream
@pytest.mark.parametrize("opts", [{}, {"line_ending": "\n"}, {"no_space_content_length": False},
                                  {"stray_status_line": True}, {"parts_per_write": 6}],
                         ids=["crlf", "lf", "cl-space", "stray-http-line", "parts-per-write"])
async def test_event_stream_variants(opts: dict[str, Any]) -> None:
    sim = DahuaSimulator("nvr", 4, **opts)
    async with running(sim, listen=True) as (drv, ctx):
        sim.trigger("motion", 3)  # index=2 on the wire
        sim.trigger("tamper", 1)
        sim.trigger("line_crossing", 4)
        await ctx.wait_for(lambda: ctx.of_type("motion", channel=3, active=True) and
                           ctx.of_type("tamper", channel=1) and ctx.of_type("line_crossing", channel=4))
        assert ctx.fields["channels"]["3"]["motion"] is True
        sim.trigger("motion", 3, active=False)
        await ctx.wait_for(lambda: ctx.of_type("motion", channel=3, active=False))
        await ctx.wait_for(lambda: drv.heartbeats >= 1, 3, "heartbeat=1 asked and received")


async def test_replayed_captures_and_garbage() -> None:
    sim = DahuaSimulator("camera")
    async with running(sim, listen=True) as (_drv, ctx):
        sim.inject_raw((FIX / "dahua_IPC_rroller166_eventStream_lf.bin").read_bytes())
        await ctx.wait_for(lambda: ctx.of_type("motion", channel=1, active=True), what="capture replay")
        sim.inject_raw(b"HTTP/1.1 200 OK\r\n\r\n--myboundary\r\n\x00\x01garbage\r\n\r\n")
        sim.inject_raw((FIX / "dahua_httpapi_doc_eventStream_crlf.bin").read_bytes())
        sim.trigger("video_loss", 1)
        await ctx.wait_for(lambda: ctx.of_type("video_loss", channel=1, active=True), what="survives garbage")
        assert len(ctx.of_type("motion", active=True)) == 1  # VideoMotionInfo State is not an edge


async def test_storage_events_on_the_stream() -> None:
    sim = DahuaSimulator("nvr", 2)
    async with running(sim, listen=True) as (_drv, ctx):
        sim.trigger("disk_error")
        sim.trigger("disk_full")
        await ctx.wait_for(lambda: ctx.of_type("disk_error") and ctx.of_type("disk_full"))


async def test_silent_socket_death_detected_by_missing_heartbeat() -> None:
    sim = DahuaSimulator("camera")
    async with running(sim, heartbeat=1, timeout=1) as (drv, ctx):
        task = asyncio.create_task(drv.listen())
        await ctx.wait_for(lambda: drv.heartbeats >= 1)
        sim.freeze()
        started = time.monotonic()
        with pytest.raises(DeviceError, match="does not answer"):
            await asyncio.wait_for(task, 8)
        assert time.monotonic() - started < 6  # 3 missed heartbeats + a 1 s probe
        sim.unfreeze()


async def test_retention_twelve_days() -> None:
    sim = DahuaSimulator("nvr", 3)
    for ch in (1, 2):
        sim.set_recordings(ch, 12)
    sim.set_recordings(3, 31)
    async with running(sim) as (_drv, ctx):
        await ctx.wait_for(lambda: ctx.fields.get("retention_days") is not None, what="retention")
        assert ctx.fields["retention_days"] == 12
        assert [ctx.fields["channels"][c]["retention_days"] for c in "123"] == [12, 12, 31]
        assert ctx.of_type("retention_low")[0]["channels"] == ["1", "2"]
        assert not sim._finds  # every search object was destroyed


# ---------------------------------------------------------------------- whole hub + Mosquitto
async def test_full_hub_over_mqtt(mosquitto: Any, tmp_path: Path) -> None:
    cam = DahuaSimulator("camera", password=PW)
    nvr = DahuaSimulator("nvr", 4, password=PW)
    for s in (cam, nvr):
        await s.start()
    for ch in range(1, 5):
        nvr.set_recordings(ch, 12)
    rec = await asyncio.to_thread(Recorder, mosquitto.port, ("t/#",))
    yaml = f"""
hub:
  name: test post
  timezone: Asia/Ho_Chi_Minh
  data_dir: {tmp_path / "data"}
mqtt:
  server: mqtt://127.0.0.1:{mosquitto.port}
  base_topic: t
  discovery: false
devices:
  - id: dcam
    platform: dahua
    host: 127.0.0.1
    port: {cam.port}
    password: !secret pw
    poll_interval: 0.3
    timeout: 2
    heartbeat: 1
  - id: dnvr
    platform: dahua
    host: 127.0.0.1
    port: {nvr.port}
    password: !secret pw
    poll_interval: 0.3
    timeout: 2
    heartbeat: 1
    retention_interval: 1
"""
    try:
        async with hub_from_yaml(yaml, tmp_path, secrets={"pw": PW}):
            st = await asyncio.to_thread(rec.wait_topic, "t/dcam", lambda j: j.get("model") == cam.model, 10)
            assert st["serial"] == cam.serial and st["firmware"] == "2.800.0000016.0.R" and st["motion"] is False
            st = await asyncio.to_thread(rec.wait_topic, "t/dnvr",
                                         lambda j: j.get("retention_days") == 12 and j.get("disks"), 10)
            assert st["channels"]["4"]["online"] is True and st["disks"][0]["status"] == "ok"
            await asyncio.to_thread(rec.wait_event, "t", "retention_low", 10, 0, device="dnvr", days=12, target=30)
            cam.trigger("motion")
            nvr.set_channel_online(2, False)
            nvr.trigger("tamper", 4)
            nvr.disk_error(1)
            for dev, typ, extra in (("dcam", "motion", {"channel": 1, "active": True}),
                                    ("dnvr", "video_loss", {"channel": 2, "active": True}),
                                    ("dnvr", "tamper", {"channel": 4, "active": True}),
                                    ("dnvr", "disk_error", {})):
                await asyncio.to_thread(rec.wait_event, "t", typ, 10, 0, device=dev, **extra)
            await asyncio.to_thread(rec.wait_topic, "t/dnvr", lambda j: j["channels"]["2"]["online"] is False, 10)
            await asyncio.to_thread(rec.publish, "t/dnvr/set", json.dumps({"output": 1, "state": "ON"}))
            await asyncio.to_thread(rec.wait_topic, "t/dnvr", lambda j: j.get("output_1") == "ON", 10)
    finally:
        leaked = [m for m in rec.messages if PW.encode() in m.payload]
        rec.close()
        for s in (cam, nvr):
            await s.stop()
    assert leaked == []


async def test_attach_closed_at_once_is_retried_with_backoff_not_a_loop() -> None:
    sim = DahuaSimulator("camera", attach_closes=True)
    async with running(sim) as (drv, _ctx):
        task = asyncio.create_task(drv.listen())
        await asyncio.sleep(3.5)
        assert not task.done()  # the device answers: not offline, just no stream
        assert 2 <= sim.streams_opened <= 3  # 1 s, 2 s backoff: no tight loop
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---------------------------------------------------------------------- a real third-party client: python-amcrest
# python-amcrest is what Home Assistant's amcrest integration uses; its async API (httpx) runs here on the
# test's loop. The calls below are the ones Home Assistant's camera entity makes every 15 s.
def _amcrest(sim: DahuaSimulator) -> Any:
    from amcrest import AmcrestCamera

    return AmcrestCamera("127.0.0.1", sim.port, sim.username, sim.password, retries_connection=0).camera


async def test_amcrest_reads_identity_config_and_snapshot() -> None:
    import cv2
    import numpy as np
    from amcrest.exceptions import CommError

    sim = await DahuaSimulator("camera", password="pw-1").start()
    try:
        api = _amcrest(sim)
        assert (await api.async_serial_number).strip() == sim.serial
        assert await api.async_device_type == sim.model
        assert await api.async_vendor_information == "Dahua"
        assert await api.async_hardware_version == "1.00"
        assert (await api.async_software_information)[0] == "2.800.0000016.0.R"
        assert await api.async_rtsp_url(typeno=0) == "rtsp://admin:pw-1@127.0.0.1:554/cam/realmonitor?channel=1&subtype=0"
        # homeassistant/components/amcrest/camera.py async_update, all of them: no 400 any more
        assert await api.async_is_video_enabled(channel=0, stream="Main") is True
        assert await api.async_record_mode == "Automatic"
        assert await api.async_is_motion_detector_on() is True
        assert await api.async_is_audio_enabled(channel=0, stream="Main") is True
        assert await api.async_is_record_on_motion_detection() is True
        assert await api.async_day_night_color == 1
        assert "table.LeLensMask[0].Enable=false" in await api.async_privacy_config()
        # settings written with setConfig read back
        await api.async_set_motion_detection(False)
        assert await api.async_is_motion_detector_on() is False and sim.config["MotionDetect[0].Enable"] == "false"
        await api.async_set_privacy(True)
        assert sim.config["LeLensMask[0].Enable"] == "true"
        jpeg = await api.async_snapshot()
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (360, 640, 3)
        with pytest.raises(CommError, match="400"):  # an unknown table is still a 400, as on real firmware
            await api.async_command("configManager.cgi?action=getConfig&name=NoSuchTable")
        with pytest.raises(CommError, match="400"):
            await api.async_command("configManager.cgi?action=setConfig&NoSuchTable[0].Enable=true")
    finally:
        await sim.stop()


async def test_amcrest_event_stream_start_and_stop() -> None:
    sim = await DahuaSimulator("nvr", 4, password="pw-2").start()
    api = _amcrest(sim)
    events = api.async_event_actions("VideoMotion")
    pending = asyncio.ensure_future(events.__anext__())
    try:
        deadline = time.monotonic() + 5
        while sim.streams_opened == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        sim.trigger("motion", 3)
        code, payload = await asyncio.wait_for(pending, 5)
        assert (code, payload["action"], payload["index"]) == ("VideoMotion", "Start", "2")
        assert payload["data"]["RegionName"] == ["Region1"]  # the multi-line JSON data part
        sim.trigger("motion", 3, active=False)
        code, payload = await asyncio.wait_for(events.__anext__(), 5)
        assert (code, payload["action"], payload["index"]) == ("VideoMotion", "Stop", "2")
    finally:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await sim.stop()
        # python-amcrest reconnects when the stream ends and raises CommError when it cannot: let it
        # end that way, which closes its HTTP response (aclose() alone leaves httpx's iterator to the GC)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(events.__anext__(), 5)
        await events.aclose()


async def test_amcrest_rtsp_url_plays_with_ffprobe() -> None:
    from tests.support.rtsp import probe_stream, probe_unavailable

    if why := probe_unavailable():
        pytest.skip(f"no RTSP stream test here: {why} (scripts/test.sh installs it)")
    sim = await DahuaSimulator("camera", password="pw-3", rtsp=True).start()
    try:
        url = await _amcrest(sim).async_rtsp_url(typeno=0)  # the port comes from table.RTSP.Port
        assert url == f"rtsp://admin:pw-3@127.0.0.1:{sim.rtsp_port}/cam/realmonitor?channel=1&subtype=0"
        info = await asyncio.to_thread(probe_stream, url)
        assert (info["codec_name"], info["width"], info["height"]) == ("h264", 640, 360)
    finally:
        await sim.stop()
