"""Footage export from an ONVIF Profile G device (issue 10, generic_onvif): the ONVIF simulator's
search and replay services and its RTSP replay server over real loopback sockets, onvif-zeep-async
as the SOAP client, into a signed evidence package. Frames carry their recorder time as a block
pattern (hub.camera.simfootage), so the tests read which second each end of the MP4 shows."""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import av
import pytest

from hub.camera.simfootage import VideoFormat, seconds_of_day
from hub.config import load_config
from hub.export.package import verify
from hub.export.run import ExportError, ExportRequest, export
from plugins.generic_onvif.replay import H264Depacketizer
from plugins.generic_onvif.simulator import OnvifSimulator
from tests.support.hubrun import make_plugins, write_config
from tests.test_export import PW, at, footage_dir, stamps

DAY_UTC = datetime(2026, 11, 30, 12, tzinfo=UTC)
__all__ = ["footage_dir"]  # the module's cache of generated recordings (a fixture)


def camera(footage_dir: Path, *spans: tuple[str, str], **kw: Any) -> OnvifSimulator:
    sim = OnvifSimulator(password=PW, recordings=True, footage_dir=footage_dir, **kw)
    for a, b in spans:
        sim.add_footage(1, at(a), at(b))
    return sim


async def run_export(tmp: Path, sim: OnvifSimulator, start: str, end: str, password: str = PW) -> Any:
    cfg = write_config(tmp, f"""
        hub:
          name: Cong an xa Test
          data_dir: {tmp / 'data'}
        mqtt:
          server: mqtt://127.0.0.1:1
        devices:
          - id: cam-cong
            platform: generic_onvif
            site: post
            host: 127.0.0.1
            port: {sim.port}
            username: admin
            password: !secret cam
            events: false
            timeout: 10
        sites:
          - id: post
        """, secrets={"cam": password})
    plugins = make_plugins()
    request = ExportRequest(device="cam-cong", start=at(start), end=at(end), out_dir=tmp / "out",
                            case="VV-2026-118", reason="trom xe", requested_by="an")
    return await export(load_config(cfg, plugins), plugins, request)


async def exported(tmp: Path, sim: OnvifSimulator, start: str, end: str,
                   setup: Callable[[OnvifSimulator], None] | None = None) -> Any:
    """Start the simulator (``setup`` runs once it listens), export, stop it."""
    await sim.start()
    try:
        if setup is not None:
            setup(sim)
        return await run_export(tmp, sim, start, end)
    finally:
        await sim.stop()


async def test_five_minutes_replayed_from_a_camera_90_s_fast_with_a_dropped_replay(tmp_path: Path,
                                                                                   footage_dir: Path) -> None:
    sim = camera(footage_dir, ("19:01:00", "19:09:00"), clock_skew=90)

    def break_two_replays(sim: OnvifSimulator) -> None:
        # two replay connections break mid-stream: the search's short look at the first frame may
        # take one of them (the simulator sends fast and the driver hangs up after a frame), the
        # download takes the other (or both)
        assert sim.replay is not None
        sim.replay.drop_replay_after(150_000, times=2)

    result = await exported(tmp_path, sim, "19:01:30", "19:06:30", break_two_replays)
    assert sim.replay is not None
    pkg = result.path
    assert pkg.is_dir() and not list((tmp_path / "out").glob("*.part"))
    m = json.loads((pkg / "manifest.json").read_bytes())
    assert m["clock_skew_s"] == 90 and m["gaps"] == [] and result.complete
    assert m["device"]["serial"] == sim.info["SerialNumber"] and m["device"]["model"] == sim.info["Model"]
    (original,) = [f for f in m["files"] if f["kind"] == "original"]
    assert original["path"].endswith(".ts") and original["recorder_start"][11:] == "19:03:00"
    with av.open(str(pkg / original["path"])) as c:  # original/: the recorder's H.264 in MPEG-TS
        assert c.format.name == "mpegts" and c.streams.video[0].codec_context.name == "h264"
    (mp4,) = [f for f in m["files"] if f["kind"] == "mp4"]
    assert (mp4["codec"], mp4["width"], mp4["height"]) == ("h264", 320, 180)
    assert 299 <= mp4["duration_s"] <= 301.2
    seen = stamps(pkg / mp4["path"])
    # the picture shows the recorder's clock: the requested seconds + 90 s (±1 s: keyframe start)
    assert seconds_of_day(at("19:03:00")) - 1 <= seen[0] <= seconds_of_day(at("19:03:00"))
    assert seconds_of_day(at("19:07:59")) <= seen[-1] <= seconds_of_day(at("19:08:00"))
    assert len(seen) == len(set(seen)) * 5  # 5 frames a second, none lost or doubled by the resume
    # what the replays asked for (ONVIF Streaming, playback): UTC clock ranges, as fast as possible
    plays = sim.replay.plays
    assert sim.replay.drop_times == 0 and len(plays) >= 3  # the look, a broken download, the resumed one
    assert all(p["require"] == "onvif-replay" and p["rate-control"] == "no" for p in plays)
    assert plays[-1]["range"] == "clock=20261130T120300Z-20261130T120800Z"  # 19:03..19:08 at UTC+7
    assert sim.stats["FindRecordings"] == 1 and sim.stats["GetReplayUri"] >= 2
    problems, _ = verify(pkg)
    assert problems == []


async def test_gaps_are_found_with_the_event_search_and_each_stretch_gets_its_mp4(tmp_path: Path,
                                                                                 footage_dir: Path) -> None:
    sim = camera(footage_dir, ("19:01:00", "19:03:00"), ("19:05:00", "19:07:00"))
    assert sim.profile_g is not None
    sim.profile_g.page_limit = 1  # one result per answer: the driver must page until Completed
    result = await exported(tmp_path, sim, "19:02:00", "19:07:30")
    m = result.manifest
    assert m["gaps"] == [{"start": "2026-11-30T19:03:00+07:00", "end": "2026-11-30T19:05:00+07:00"},
                         {"start": "2026-11-30T19:07:00+07:00", "end": "2026-11-30T19:07:30+07:00"}]
    assert not result.complete
    assert sim.stats["GetEventSearchResults"] >= 4 and sim.stats["EndSearch"] == 2
    mp4s = [f for f in m["files"] if f["kind"] == "mp4"]
    assert len(mp4s) == 2
    first, second = (stamps(result.path / f["path"]) for f in mp4s)
    assert (first[0], first[-1]) == (seconds_of_day(at("19:02:00")), seconds_of_day(at("19:02:59")))
    assert (second[0], second[-1]) == (seconds_of_day(at("19:05:00")), seconds_of_day(at("19:06:59")))
    assert m["recorded"] == {"start": "2026-11-30T19:02:00+07:00", "end": "2026-11-30T19:07:00+07:00"}


async def test_a_long_stretch_is_replayed_in_chunks_that_join_without_overlap(
        tmp_path: Path, footage_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """REPLAY_CHUNK_S (10 min) set to 1 min, keyframes every 2 s: 3 minutes come as back-to-back
    segments, each starting on the keyframe its replay starts with (19:01:30 for 19:01:31), and
    one MP4 with every frame once."""
    from plugins.generic_onvif import driver

    monkeypatch.setattr(driver, "REPLAY_CHUNK_S", 60.0)
    sim = camera(footage_dir, ("19:01:00", "19:05:00"), video=VideoFormat(gop_seconds=2.0))
    result = await exported(tmp_path, sim, "19:01:31", "19:04:30")
    m = result.manifest
    originals = [f for f in m["files"] if f["kind"] == "original"]
    assert [(f["recorder_start"][11:], f["recorder_end"][11:]) for f in originals] == [
        ("19:01:30", "19:02:30"), ("19:02:30", "19:03:30"), ("19:03:30", "19:04:30")]
    assert m["gaps"] == []
    (mp4,) = [f for f in m["files"] if f["kind"] == "mp4"]
    seen = stamps(result.path / mp4["path"])
    assert (seen[0], seen[-1]) == (seconds_of_day(at("19:01:30")), seconds_of_day(at("19:04:29")))
    assert len(seen) == 180 * 5 and len(set(seen)) == 180  # every frame once: no overlap, no hole


async def test_no_footage_and_a_wrong_password_are_clear(tmp_path: Path, footage_dir: Path) -> None:
    sim = camera(footage_dir, ("19:01:00", "19:03:00"))
    await sim.start()
    try:
        with pytest.raises(ExportError, match="no footage on cam-cong channel 1"):
            await run_export(tmp_path, sim, "20:00:00", "20:05:00")
        with pytest.raises(ExportError, match="wrong username or password") as exc:
            await run_export(tmp_path, sim, "19:01:00", "19:02:00", password="wrong")
        assert PW not in str(exc.value)
    finally:
        await sim.stop()


async def test_an_older_device_without_getservices_and_findevents(tmp_path: Path, footage_dir: Path) -> None:
    """A device that answers GetServices and FindEvents with ActionNotSupported: its search and
    replay services come from GetCapabilities (Extension), and the export still works from
    EarliestRecording..LatestRecording (a gap inside that span cannot be known then)."""
    sim = camera(footage_dir, ("19:01:00", "19:03:00"), unsupported={"GetServices", "FindEvents"})
    result = await exported(tmp_path, sim, "19:02:30", "19:03:30")
    assert sim.stats["GetCapabilities"] >= 1 and sim.stats["FindRecordings"] == 1
    assert sim.stats["not_supported"] >= 2 and sim.stats["GetEventSearchResults"] == 0
    m = result.manifest
    assert m["gaps"] == [{"start": "2026-11-30T19:03:00+07:00", "end": "2026-11-30T19:03:30+07:00"}]
    (mp4,) = [f for f in m["files"] if f["kind"] == "mp4"]
    seen = stamps(result.path / mp4["path"])
    assert (seen[0], seen[-1]) == (seconds_of_day(at("19:02:30")), seconds_of_day(at("19:02:59")))


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe (FFmpeg) is not installed")
async def test_ffmpeg_plays_the_simulators_replay_uri(footage_dir: Path) -> None:
    """A third-party RTSP client (FFmpeg, Digest auth, RTP over TCP) decodes the replay stream."""
    sim = camera(footage_dir, ("19:01:00", "19:03:00"))
    await sim.start()
    try:
        assert sim.replay is not None
        user = f"admin:{quote(PW, safe='')}@"
        url = sim.replay.url("Recording_1").replace("rtsp://", f"rtsp://{user}")
        proc = await asyncio.create_subprocess_exec(
            "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-analyzeduration", "500000", "-select_streams", "v",
            "-read_intervals", "%+#5", "-show_entries", "stream=codec_name,width,height", "-of", "json", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await sim.stop()
    assert proc.returncode == 0, err.decode()
    (stream,) = json.loads(out)["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 320, 180)


def test_depacketizer_reads_stap_a_and_fu_a() -> None:
    """RFC 6184 §5.7.1 (STAP-A) and §5.8 (FU-A), packets built by hand from the RFC's layout."""
    sps, pps = bytes([0x67, 0x42, 0xC0, 0x1E, 0x95]), bytes([0x68, 0xCE, 0x3C, 0x80])
    idr = bytes([0x65]) + bytes(range(1, 200))
    d = H264Depacketizer([])
    d.add(bytes([0x78]) + struct.pack(">H", len(sps)) + sps + struct.pack(">H", len(pps)) + pps)
    d.add(bytes([0x7C, 0x85]) + idr[1:100])  # FU indicator (NRI 3, type 28), FU header S=1 type 5
    d.add(bytes([0x7C, 0x45]) + idr[100:])   # E=1
    unit = d.take()
    assert unit == (True, b"".join(b"\x00\x00\x00\x01" + n for n in (sps, pps, idr)))
    d.add(bytes([0x7C, 0x05]) + b"lost start")  # a fragment whose start never came: dropped
    assert d.take() is None


async def test_a_replay_server_answering_garbage_is_a_clear_device_error() -> None:
    """Hostile or broken devices: an HTTP answer to DESCRIBE, or RTP after PLAY that stops
    mid-packet, end in DeviceError (the export retries or fails with one line), never a crash."""
    from hub.api import DeviceError
    from plugins.generic_onvif.replay import RtspReplay

    async def http_instead(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def cut_rtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sdp = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=1\r\n"
        for n in range(1, 4):  # DESCRIBE, SETUP, PLAY
            await reader.readuntil(b"\r\n\r\n")
            body = sdp if n == 1 else b""
            writer.write(b"RTSP/1.0 200 OK\r\nCSeq: %d\r\nSession: 1\r\nContent-Length: %d\r\n\r\n%s"
                         % (n, len(body), body))
        writer.write(b"$\x00\x05\xdc" + b"\x80\x60" + b"\x00" * 30)  # announces 1500 bytes, sends 32
        await writer.drain()
        writer.close()

    for handler, match in ((http_instead, "not an RTSP answer"), (cut_rtp, "closed the connection")):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        session = RtspReplay(f"rtsp://127.0.0.1:{port}/x", "admin", PW, timeout=3)
        try:
            with pytest.raises(DeviceError, match=match) as exc:
                await session.open(DAY_UTC, DAY_UTC)
                async for _ in session.frames(idle=3):
                    pass
            assert PW not in str(exc.value)
        finally:
            await session.close()
            server.close()
