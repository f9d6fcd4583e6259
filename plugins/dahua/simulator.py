"""A Dahua device (IP camera, NVR or XVR/DVR) speaking the HTTP CGI API on loopback, shaped like
the captures in docs/reference/protocols.md §2 and §5.

Python API::

    sim = DahuaSimulator(kind="nvr", channels=4, username="admin", password="pw", port=0)
    await sim.start(); sim.port
    sim.trigger("motion", channel=2); sim.trigger("motion", channel=2, active=False)
    sim.set_channel_online(3, False)       # getEventIndexes&code=VideoLoss lists it, VideoLoss Start sent
    sim.disk_error(1); sim.disk_full(1); sim.disk_missing(1)
    sim.set_recordings(1, days=12); sim.set_clock_skew(90); sim.set_picture(1, bgr_or_jpeg)
    sim.add_footage(1, start, end)         # real .dav files (simfootage.py), found by mediaFileFind
    sim.drop_download_after(100_000)       # the next RPC_Loadfile breaks after 100 kB
    await sim.reboot(3); sim.freeze(); sim.inject_raw(b"HTTP/1.1 200 OK\\r\\n")
    sim.config["MotionDetect[0].Enable"]  # configManager tables (RTSP, MotionDetect, Encode, RecordMode, ...)
    DahuaSimulator(..., rtsp=True)       # serve /cam/realmonitor over RTSP (GStreamer); RTSP.Port tells where
    await sim.stop()

Quirks, each selectable: Digest realm ``Login to <serial>``; ``Content-Length:`` without a space;
``Heartbeat`` parts only when ``&heartbeat=N`` is asked; multi-line ``data={...}`` JSON;
``stray_status_line`` (a literal ``HTTP/1.1 200 OK`` inside the stream); ``parts_per_write``;
``line_ending`` CRLF or LF; ``alarm_modes`` (which ``AlarmOut[n].Mode`` values mean on and off
differs between firmwares); ``attach_closes`` (the stream closes at once, as on a recent Intelbras
firmware); float byte counts in ``getDeviceAllInfo``.

Recordings (docs/reference/recordings.md): ``mediaFileFind.cgi`` (factory.create, findFile,
findNextFile, close, destroy) lists the files of the footage added with :meth:`add_footage`
(gaps between spans are gaps), each with its real ``FilePath`` and ``Length``;
``GET /cgi-bin/RPC_Loadfile<FilePath>`` serves one, ``Range: bytes=N-`` honoured
(``range_support``); ``loadfile.cgi?action=startLoad&channel=&startTime=&endTime=`` serves the
files of a time span (``rpc_loadfile=False``: a firmware without RPC_Loadfile, which answers 404).

CLI: ``python -m plugins.dahua.simulator --kind nvr --channels 4 --port 8081``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar, Literal, Self

import numpy as np

from hub.camera.images import picture_bytes, scene
from hub.camera.simfootage import FootageFile, VideoFormat
from hub.camera.simrtsp import RtspHttpSimulator, rtsp_unavailable
from hub.camera.simserver import Request, Response, byte_range

from .simfootage import dav_store

LOADFILE = "/cgi-bin/RPC_Loadfile/"  # + the file's path on the recorder, e.g. /mnt/dvr/...

CODES = {
    "motion": "VideoMotion", "video_loss": "VideoLoss", "tamper": "VideoBlind",
    "line_crossing": "CrossLineDetection", "intrusion": "CrossRegionDetection",
    "disk_full": "StorageLowSpace", "disk_error": "StorageFailure", "disk_missing": "StorageNotExist",
    "alarm_input": "AlarmLocal",
}
DEVICE_LEVEL = {"disk_full", "disk_error", "disk_missing"}


@dataclass
class DahuaDisk:
    name: str
    state: str = "Success"
    partitions: list[list[float | bool | str]] = field(default_factory=list)  # [path, total, used, is_error]


@dataclass
class _Find:
    """One mediaFileFinder session: the files found (channel, start, end, path, size) and the next to list."""
    items: list[tuple[int, datetime, datetime, str, int]] = field(default_factory=list)
    pos: int = 0


class DahuaSimulator(RtspHttpSimulator):
    def __init__(self, kind: Literal["camera", "nvr", "dvr"] = "camera", channels: int | None = None, *,
                 username: str = "admin", password: str = "admin", port: int = 0,
                 auth: Literal["digest", "basic", "both", "none"] = "digest", model: str | None = None,
                 serial: str | None = None, firmware: str | None = None, tz_offset_hours: float = 7.0,
                 line_ending: str = "\r\n", no_space_content_length: bool = True, stray_status_line: bool = False,
                 parts_per_write: int = 1, alarm_modes: dict[str, int] | None = None, outputs: int | None = None,
                 disks: int | None = None, attach_closes: bool = False, rtsp: bool = False,
                 footage_dir: str | Path | None = None, segment_seconds: float = 60.0,
                 video: VideoFormat | None = None, range_support: bool = True, rpc_loadfile: bool = True) -> None:
        super().__init__(username=username, password=password, auth=auth, port=port)
        self.kind = kind
        d = {"camera": ("IPC-HDW5831R-ZE", "4X7C5A1ZAG21L3F", "2.800.0000016.0.R,build:2020-06-05", 1),
             "nvr": ("DHI-NVR4108HS-4KS2", "7J0A1B2PAZ00813", "4.001.0000000.3.R,build:2021-03-11", 8),
             "dvr": ("XVR5216AN-I3", "6G02F33PAG55AC1", "4.001.0000002.0.R,build:2022-01-20", 4)}[kind]
        self.model = model or d[0]
        self.serial = serial or d[1]
        self.firmware = firmware or d[2]
        self.nchannels = channels if channels is not None else d[3]
        self.realm = f"Login to {self.serial}"
        self.tz = timezone(timedelta(hours=tz_offset_hours))
        self.nl = line_ending
        self.no_space_cl = no_space_content_length
        self.stray_status_line = stray_status_line
        self.attach_closes = attach_closes  # recent Intelbras firmware closes attach at once (rroller/dahua#644)
        self.parts_per_write = max(1, parts_per_write)
        self.alarm_modes = alarm_modes or {"on": 1, "off": 2}
        self.outputs = outputs if outputs is not None else (1 if kind == "camera" else 2)
        self.out_mode = {i: self.alarm_modes["off"] for i in range(self.outputs)}
        self.online = {ch: True for ch in range(1, self.nchannels + 1)}
        ndisks = disks if disks is not None else 1
        self.disks: list[DahuaDisk] = []
        for i in range(ndisks):
            if kind == "camera":
                self.disks.append(DahuaDisk("/dev/mmc0", partitions=[["/mnt/sd", 63989415936.0, 98304.0, False]]))
            else:
                letter = "abcdefgh"[i]
                self.disks.append(DahuaDisk(f"/dev/sd{letter}", partitions=[
                    [f"/dev/sd{letter}1", 1000204886016.0, 850000000000.0, False],
                    [f"/dev/sd{letter}2", 1000204886016.0, 120000000000.0, False]]))
        self.recordings: dict[int, float] = {}
        self.pictures: dict[int, bytes] = {}
        self.clock_skew = 0.0
        self.active: set[tuple[str, int]] = set()
        self._streams: set[asyncio.Queue[bytes]] = set()
        self._finds: dict[int, _Find] = {}
        self._next_find = 1000
        self.streams_opened = 0
        self.unauthorized_body = b"Error\r\nInvalid Authority!\r\n"
        self._footage_tmp: tempfile.TemporaryDirectory[str] | None = None
        if footage_dir is None:
            self._footage_tmp = tempfile.TemporaryDirectory(prefix="dahua-footage-")
            footage_dir = self._footage_tmp.name
        self.footage = dav_store(Path(footage_dir), segment_seconds, video)
        self.range_support = range_support
        self.rpc_loadfile = rpc_loadfile  # False: firmware without RPC_Loadfile (404), loadfile.cgi only
        self.download_drops: list[int] = []
        self.downloads = 0
        self._dav_paths: dict[str, FootageFile] = {}
        self.rtsp = rtsp
        self.rtsp_port = 554  # table.RTSP.Port; the served port with rtsp=True
        self.config: dict[str, str] = self._config_table()
        """configManager values without the ``table.`` prefix; ``setConfig`` changes existing keys."""

    def _config_table(self) -> dict[str, str]:
        """The configuration tables clients read (python-amcrest, Home Assistant's amcrest camera,
        rroller/dahua), keyed and valued as the Dahua HTTP API documents them."""
        t: dict[str, str] = {
            "General.LocalNo": "8", "General.LockLoginEnable": "true", "General.LockLoginTimes": "5",
            "General.LoginFailLockTime": "1800",
            "General.MachineName": "FrontDoorCam" if self.kind == "camera" else "NVR-Post",
            "RTSP.Enable": "true", "RTSP.Port": "554", "RTSP.RTP.EndPort": "40000", "RTSP.RTP.StartPort": "20000",
            "NTP.Address": "pool.ntp.org", "NTP.Enable": "true", "NTP.Port": "123", "NTP.UpdatePeriod": "10",
        }
        for i in range(self.nchannels):
            t[f"ChannelTitle[{i}].Name"] = f"CAM {i + 1}"
            t |= {f"MotionDetect[{i}].DetectVersion": "V3.0", f"MotionDetect[{i}].Enable": "true",
                  f"MotionDetect[{i}].EventHandler.Dejitter": "5",
                  f"MotionDetect[{i}].EventHandler.RecordEnable": "true",
                  f"MotionDetect[{i}].EventHandler.RecordLatch": "10",
                  f"MotionDetect[{i}].EventHandler.SnapshotEnable": "false", f"MotionDetect[{i}].Level": "3"}
            t |= {f"RecordMode[{i}].Mode": "0", f"RecordMode[{i}].ModeExtra1": "2", f"RecordMode[{i}].ModeExtra2": "2"}
            t |= {f"VideoInOptions[{i}].Backlight": "0", f"VideoInOptions[{i}].DayNightColor": "1",
                  f"VideoInOptions[{i}].InfraRed": "false", f"VideoInOptions[{i}].Mirror": "false",
                  f"VideoInOptions[{i}].NightOptions.DayNightColor": "2"}
            formats = [("MainFormat", k, 2560, 1440, 4096, 25) for k in range(4)] + \
                      [("ExtraFormat", k, 704, 576, 512, 15) for k in range(3)] + \
                      [("SnapFormat", k, 2560, 1440, 4096, 1) for k in range(3)]
            for fmt, k, w, h, rate, fps in formats:
                p = f"Encode[{i}].{fmt}[{k}]"
                on = "true" if fmt != "ExtraFormat" or k == 0 else "false"
                t |= {f"{p}.Audio.Compression": "G.711A", f"{p}.AudioEnable": "false" if fmt == "SnapFormat" else on,
                      f"{p}.Video.BitRate": str(rate), f"{p}.Video.BitRateControl": "VBR",
                      f"{p}.Video.Compression": "MJPG" if fmt == "SnapFormat" else "H.264",
                      f"{p}.Video.FPS": str(fps), f"{p}.Video.GOP": str(fps * 2), f"{p}.Video.Height": str(h),
                      f"{p}.Video.Width": str(w), f"{p}.Video.resolution": f"{w}x{h}", f"{p}.VideoEnable": on}
        if self.kind == "camera":  # an Amcrest-style camera's privacy mask and status light
            t |= {"LeLensMask[0].Enable": "false", "LightGlobal[0].Enable": "true"}
        return t

    # ------------------------------------------------------------------ lifecycle
    async def prepare(self) -> None:
        """Footage added before is generated before listening."""
        await asyncio.to_thread(self.footage.prepare)

    async def start(self) -> Self:
        await super().start()
        self.config["RTSP.Port"] = str(self.rtsp_port)
        return self

    def rtsp_paths(self) -> dict[str, int]:
        """RTSP path -> channel. GStreamer matches the path only, so every ``channel=`` of
        ``/cam/realmonitor`` shows channel 1's scene."""
        return {"/cam/realmonitor": 1}

    def stream_uri(self, channel: int = 1, subtype: int = 0) -> str:
        """The live stream URI (no credentials), on the served port with ``rtsp=True``."""
        return f"rtsp://127.0.0.1:{self.rtsp_port}/cam/realmonitor?channel={channel}&subtype={subtype}"

    def add_footage(self, channel: int, start: datetime, end: datetime) -> None:
        """Channel ``channel`` recorded from ``start`` to ``end`` (the recorder's wall clock)."""
        self.footage.add(channel, start, end)

    def drop_download_after(self, nbytes: int, times: int = 1) -> None:
        """The next ``times`` downloads break (connection reset) after ``nbytes`` bytes of body."""
        self.download_drops.extend([nbytes] * times)

    # ------------------------------------------------------------------ scenario API
    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self.clock_skew, self.tz)

    def trigger(self, event: str, channel: int = 1, active: bool = True, data: dict[str, object] | None = None) -> None:
        if event not in CODES:
            raise ValueError(f"unknown event {event!r}; known: {', '.join(CODES)}")
        ch = 1 if event in DEVICE_LEVEL else channel
        key = (event, ch)
        if active:
            self.active.add(key)
        else:
            self.active.discard(key)
        if event == "motion" and active and data is None:
            data = {"Id": [0], "RegionName": ["Region1"], "SmartMotionEnable": True}
        action = "Start" if active else "Stop"
        text = f"Code={CODES[event]};action={action};index={ch - 1}"
        if data is not None:
            text += ";data=" + json.dumps(data, indent=3).replace("\n", self.nl)
        self._broadcast(self._part(text))

    def set_channel_online(self, channel: int, online: bool) -> None:
        self.online[channel] = online
        self.trigger("video_loss", channel, not online)

    def disk_error(self, index: int = 1) -> None:
        disk = self.disks[index - 1]
        disk.state = "Error"
        for p in disk.partitions:
            p[3] = True
        self.trigger("disk_error")

    def disk_full(self, index: int = 1) -> None:
        for p in self.disks[index - 1].partitions:
            p[2] = p[1]
        self.trigger("disk_full")

    def disk_missing(self, index: int = 1) -> None:
        del self.disks[index - 1]
        self.trigger("disk_missing")

    def set_recordings(self, channel: int, days: float) -> None:
        self.recordings[channel] = days * 86400

    def set_clock_skew(self, seconds: float) -> None:
        self.clock_skew = seconds

    def set_picture(self, channel: int, image: np.ndarray | bytes) -> None:
        self.pictures[channel] = picture_bytes(image)

    def inject_raw(self, data: bytes) -> None:
        self._broadcast(data)

    # ------------------------------------------------------------------ helpers
    def _kv(self, *lines: str) -> Response:
        return Response(200, "".join(line + "\r\n" for line in lines).encode(), "text/plain;charset=utf-8")

    def _error(self, status: int = 400) -> Response:
        return Response(status, b"Error\r\nBad Request!\r\n", "text/plain;charset=utf-8")

    def _part(self, text: str) -> bytes:
        nl = self.nl
        body = text.encode()
        cl = f"Content-Length:{len(body)}" if self.no_space_cl else f"Content-Length: {len(body)}"
        out = f"--myboundary{nl}Content-Type: text/plain{nl}{cl}{nl}{nl}".encode() + body + f"{nl}{nl}".encode()
        if self.stray_status_line:
            out += f"HTTP/1.1 200 OK{nl}".encode()
        return out

    def _broadcast(self, data: bytes) -> None:
        for q in list(self._streams):
            if q.qsize() < 10000:
                q.put_nowait(data)

    def _stream_fn(self, heartbeat: float | None, codes: str) -> object:
        async def stream(writer: asyncio.StreamWriter) -> None:
            q: asyncio.Queue[bytes] = asyncio.Queue()
            self._streams.add(q)
            self.streams_opened += 1
            last_hb = time.monotonic()
            try:
                while True:
                    pending: list[bytes] = []
                    with contextlib.suppress(TimeoutError):
                        pending.append(await asyncio.wait_for(q.get(), timeout=0.25))
                        while not q.empty():
                            pending.append(q.get_nowait())
                    if heartbeat and time.monotonic() - last_hb >= heartbeat:
                        last_hb = time.monotonic()
                        pending.append(self._part("Heartbeat"))
                    if not pending:
                        continue
                    if self.frozen:
                        await self.wait_unfrozen()
                    for i in range(0, len(pending), self.parts_per_write):
                        writer.write(b"".join(pending[i:i + self.parts_per_write]))
                        await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                self._streams.discard(q)
        return stream

    # ------------------------------------------------------------------ dispatch
    # The CGI routing table: (path, action) -> route; (path, None) answers the path's other actions.
    # A path with no entry for the action and no (path, None) entry is a 404.
    ROUTES: ClassVar[dict[tuple[str, str | None], str]] = {
        ("/cgi-bin/magicBox.cgi", None): "_route_magicbox",
        ("/cgi-bin/global.cgi", "getCurrentTime"): "_route_current_time",
        ("/cgi-bin/storageDevice.cgi", "getDeviceAllInfo"): "_route_storage",
        ("/cgi-bin/snapshot.cgi", None): "_route_snapshot",
        ("/cgi-bin/eventManager.cgi", "attach"): "_route_attach",
        ("/cgi-bin/eventManager.cgi", "getEventIndexes"): "_route_event_indexes",
        ("/cgi-bin/eventManager.cgi", None): "_route_error",
        ("/cgi-bin/mediaFileFind.cgi", None): "_route_media",
        ("/cgi-bin/loadfile.cgi", "startLoad"): "_route_load_by_time",
        ("/cgi-bin/loadfile.cgi", None): "_route_error",
        ("/cgi-bin/configManager.cgi", None): "_route_config",
        ("/cgi-bin/alarm.cgi", "getOutState"): "_route_out_state",
        ("/cgi-bin/alarm.cgi", "getOutSlots"): "_route_out_slots",
        ("/cgi-bin/alarm.cgi", None): "_route_error",
    }

    async def handle(self, req: Request) -> Response:
        if req.path.startswith(LOADFILE):  # the file's path on the recorder follows the prefix
            if not self.rpc_loadfile:
                return Response(404, b"Error\r\nNot Found!\r\n", "text/plain")
            return self._loadfile(req, req.path[len(LOADFILE) - 1:])
        action = req.query.get("action", "")
        route = self.ROUTES.get((req.path, action)) or self.ROUTES.get((req.path, None))
        if route is None:
            return Response(404, b"Error\r\nNot Found!\r\n", "text/plain")
        return getattr(self, route)(req, action)

    # each route gets the request and its action= parameter
    def _route_magicbox(self, req: Request, action: str) -> Response:
        return self._magicbox(action, req.query)

    def _route_current_time(self, req: Request, action: str) -> Response:
        return self._kv(f"result={self.now().strftime('%Y-%m-%d %H:%M:%S')}")

    def _route_storage(self, req: Request, action: str) -> Response:
        return self._storage()

    def _route_snapshot(self, req: Request, action: str) -> Response:
        q = req.query
        ch = int(q.get("channel", "1")) if q.get("channel", "1").isdigit() else 0
        if ch < 1 or ch > self.nchannels:
            return self._error()
        if not self.online.get(ch, True):
            return Response(500, b"Error\r\nInternal Server Error!\r\n")
        if ch not in self.pictures:
            self.pictures[ch] = picture_bytes(scene(ch))
        return Response(200, self.pictures[ch], "image/jpeg")

    def _route_attach(self, req: Request, action: str) -> Response:
        q = req.query
        if self.attach_closes:
            self.streams_opened += 1
            return Response(200, b"", "multipart/x-mixed-replace; boundary=myboundary", version="HTTP/1.0")
        hb = q.get("heartbeat", "")
        return Response(200, content_type="multipart/x-mixed-replace; boundary=myboundary",
                        headers={"Cache-Control": "no-cache", "Pragma": "no-cache",
                                 "Expires": "Thu, 01 Dec 2099 16:00:00 GMT"},
                        stream=self._stream_fn(float(hb) if hb.isdigit() else None,  # type: ignore[arg-type]
                                               q.get("codes", "[All]")))

    def _route_event_indexes(self, req: Request, action: str) -> Response:
        code = req.query.get("code", "")
        name = next((k for k, v in CODES.items() if v == code), None)
        if name == "video_loss":
            chans = [ch for ch, on in sorted(self.online.items()) if not on]
        else:
            chans = sorted(ch for (ev, ch) in self.active if ev == name)
        if not chans:
            return self._kv("Error")
        return self._kv(*(f"channels[{i}]={ch - 1}" for i, ch in enumerate(chans)))

    def _route_media(self, req: Request, action: str) -> Response:
        return self._media(action, req.query_list)

    def _route_config(self, req: Request, action: str) -> Response:
        return self._config(action, req.query_list, req.query)

    def _route_out_state(self, req: Request, action: str) -> Response:
        mask = sum(1 << i for i, m in self.out_mode.items() if m == self.alarm_modes["on"])
        return self._kv(f"result={mask}")

    def _route_out_slots(self, req: Request, action: str) -> Response:
        return self._kv(*(f"slots[{i}]={i}" for i in range(self.outputs)))

    def _route_error(self, req: Request, action: str) -> Response:
        return self._error()

    def _magicbox(self, action: str, q: dict[str, str]) -> Response:
        answers = {
            "getDeviceType": [f"type={self.model}"],
            "getSerialNo": [f"sn={self.serial}"],
            "getSoftwareVersion": [f"version={self.firmware}"],
            "getMachineName": [f"name={'FrontDoorCam' if self.kind == 'camera' else 'NVR-Post'}"],
            "getVendor": ["vendor=Dahua"],
            "getHardwareVersion": ["version=1.00"],
            "getSystemInfo": ["appAutoStart=true", f"deviceType={self.model}", "hardwareVersion=1.00",
                              "processor=S3LM", f"serialNumber={self.serial}", f"updateSerial={self.model}"],
        }
        if action == "getProductDefinition":
            name = q.get("name", "")
            if name == "MaxRemoteInputChannels" and self.kind == "nvr":
                return self._kv(f"table.MaxRemoteInputChannels={self.nchannels}")
            if name == "VideoInputChannels" or (name == "MaxRemoteInputChannels" and self.kind != "nvr"):
                return self._kv(f"table.{name}={self.nchannels if self.kind != 'nvr' else 0}")
            return self._error()
        if action in answers:
            return self._kv(*answers[action])
        return self._error()

    def _storage(self) -> Response:
        lines = []
        for i, d in enumerate(self.disks):
            for j, (p, total, used, err) in enumerate(d.partitions):
                lines += [f"list.info[{i}].Detail[{j}].IsError={'true' if err else 'false'}",
                          f"list.info[{i}].Detail[{j}].Path={p}",
                          f"list.info[{i}].Detail[{j}].TotalBytes={float(total):.6f}",
                          f"list.info[{i}].Detail[{j}].Type=ReadWrite",
                          f"list.info[{i}].Detail[{j}].UsedBytes={float(used):.6f}"]
            lines += [f"list.info[{i}].Name={d.name}", f"list.info[{i}].State={d.state}"]
        if not lines:
            return self._kv("Error")
        return self._kv(*lines)

    def _config(self, action: str, qlist: list[tuple[str, str]], q: dict[str, str]) -> Response:
        if action == "getConfig" and q.get("name") == "AlarmOut":
            out = []
            for i in range(self.outputs):
                out += [f"table.AlarmOut[{i}].Mode={self.out_mode[i]}", f"table.AlarmOut[{i}].Name=Relay{i + 1}"]
            return self._kv(*out)
        if action == "getConfig":
            name = q.get("name", "")
            keys = sorted(k for k in self.config if k == name or k.startswith((name + ".", name + "[")))
            if not name or not keys:
                return self._error()  # unknown names answer 400 (rroller/dahua#267)
            return self._kv(*(f"table.{k}={self.config[k]}" for k in keys))
        if action == "setConfig":
            updates: dict[str, str] = {}
            for key, value in qlist:
                if key == "action":
                    continue
                if key.startswith("AlarmOut[") and key.endswith("].Mode"):
                    idx = key[9:-6]
                    if not idx.isdigit() or int(idx) >= self.outputs or not value.isdigit():
                        return self._error()
                    self.out_mode[int(idx)] = int(value)
                elif key in self.config:
                    updates[key] = value
                else:
                    return self._error()
            self.config.update(updates)
            return self._kv("OK")
        return self._error()

    def _media(self, action: str, qlist: list[tuple[str, str]]) -> Response:
        q = dict(qlist)
        if action == "factory.create":
            self._next_find += 1
            self._finds[self._next_find] = _Find()
            return self._kv(f"result={self._next_find}")
        obj = int(q["object"]) if q.get("object", "").isdigit() else -1
        if obj not in self._finds:
            return self._error()
        f = self._finds[obj]
        if action == "findFile":
            ch0 = int(q.get("condition.Channel", "0")) if q.get("condition.Channel", "0").isdigit() else 0
            try:
                start = datetime.strptime(q.get("condition.StartTime", ""), "%Y-%m-%d %H:%M:%S")
                end = datetime.strptime(q.get("condition.EndTime", ""), "%Y-%m-%d %H:%M:%S")
            except ValueError:
                return self._error()
            if ch0 + 1 in self.footage.spans:
                f.items = []
                for n, s, e in self.footage.files(ch0 + 1):
                    if e > start and s < end:
                        ff = self.footage.get(ch0 + 1, n, s, e)
                        fp = f"/mnt/dvr/{s:%Y-%m-%d}/{ch0:03d}/dav/{s:%H}/{s:%H.%M.%S}-{e:%H.%M.%S}[R][0@0][0].dav"
                        self._dav_paths[fp] = ff
                        f.items.append((ch0, s, e, fp, ff.size))
            else:
                f.items = [(ch0, s, e, f"/mnt/dvr/{s:%Y-%m-%d}/{ch0:03d}/dav/{s:%H}/{s:%H.%M.%S}-"
                               f"{e:%H.%M.%S}[R][0@0][0].dav", 248362892)
                              for s, e in self._segments(ch0 + 1) if e >= start and s <= end]
            f.pos = 0
            return self._kv("OK") if f.items else self._kv("Error")
        if action == "findNextFile":
            count = int(q.get("count", "100")) if q.get("count", "100").isdigit() else 100
            pos = f.pos
            page = f.items[pos:pos + min(count, 100)]
            f.pos = pos + len(page)
            lines = [f"found={len(page)}"]
            for i, (ch0, s, e, fp, size) in enumerate(page):
                lines += [f"items[{i}].Channel={ch0}", f"items[{i}].Duration={int((e - s).total_seconds())}",
                          f"items[{i}].EndTime={e:%Y-%m-%d %H:%M:%S}", f"items[{i}].Events[0]=VideoMotion",
                          f"items[{i}].FilePath={fp}", f"items[{i}].Flags[0]=Timing",
                          f"items[{i}].Length={size}", f"items[{i}].StartTime={s:%Y-%m-%d %H:%M:%S}",
                          f"items[{i}].Type=dav"]
            return self._kv(*lines)
        if action in ("close", "factory.close"):
            return self._kv("OK")
        if action in ("destroy", "factory.destroy"):
            self._finds.pop(obj, None)
            return self._kv("OK")
        return self._error()

    def _route_load_by_time(self, req: Request, action: str) -> Response:
        """``loadfile.cgi?action=startLoad&channel=<1-based>&startTime=&endTime=``: the recording
        files of the channel that overlap the span, whole and one after the other (this simulator
        does not cut a file; asked for one file's span, it serves that file)."""
        q = req.query
        try:
            channel = int(q.get("channel", ""))
            start = datetime.strptime(q.get("startTime", ""), "%Y-%m-%d %H:%M:%S")
            end = datetime.strptime(q.get("endTime", ""), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return Response(400, b"Error\r\nBad Request!\r\n", "text/plain")
        files = [self.footage.get(channel, n, s, e) for n, s, e in self.footage.files(channel) if e > start and s < end]
        if not files:
            return Response(404, b"Error\r\nNot Found!\r\n", "text/plain")
        return self._serve_files(req, files)

    def _loadfile(self, req: Request, file_path: str) -> Response:
        ff = self._dav_paths.get(file_path)
        if ff is None:
            return Response(404, b"Error\r\nNot Found!\r\n", "text/plain")
        return self._serve_files(req, [ff])

    def _serve_files(self, req: Request, files: list[FootageFile]) -> Response:
        total = sum(ff.size for ff in files)
        status, skip, headers = byte_range(req, total, self.range_support)
        drop = self.download_drops.pop(0) if self.download_drops else None
        self.downloads += 1

        async def send(writer: asyncio.StreamWriter) -> None:
            sent = 0
            at = 0  # where the file starts in the body
            for ff in files:
                if skip < at + ff.size:
                    with ff.path.open("rb") as f:
                        f.seek(max(0, skip - at))
                        while chunk := f.read(65536):
                            if not await self.send_download_chunk(writer, chunk, sent, drop):
                                return
                            sent += len(chunk)
                at += ff.size

        return Response(status, content_type="application/octet-stream", headers=headers, stream=send)

    def _segments(self, channel: int) -> list[tuple[datetime, datetime]]:
        span = self.recordings.get(channel)
        if not span:
            return []
        end = self.now().replace(tzinfo=None)
        # recorders overwrite whole files: the oldest footage starts on a file boundary (the hour)
        t = (end - timedelta(seconds=span)).replace(minute=0, second=0, microsecond=0)
        out = []
        while t < end:
            nxt = min(t + timedelta(hours=1), end)
            out.append((t, nxt))
            t = nxt
        return out


async def _run(args: argparse.Namespace) -> None:
    why = None if args.no_rtsp else rtsp_unavailable()
    sim = DahuaSimulator(args.kind, args.channels, username=args.username, password=args.password, port=args.port,
                         rtsp=not args.no_rtsp and why is None)
    await sim.start()
    for ch in range(1, sim.nchannels + 1):
        sim.set_recordings(ch, args.recordings_days)
    print(f"Dahua {args.kind} simulator ({sim.model}) on http://127.0.0.1:{sim.port} user {args.username!r}; "
          "Ctrl-C stops it", flush=True)
    if why:
        print(f"no RTSP stream: {why}", flush=True)
    elif sim.rtsp:
        print(f"RTSP: {sim.stream_uri(1)} (same user and password)", flush=True)
    try:
        n = 0
        while True:
            await asyncio.sleep(args.motion_every or 3600)
            if args.motion_every:
                n += 1
                ch = 1 + n % sim.nchannels
                sim.trigger("motion", ch, True)
                await asyncio.sleep(3)
                sim.trigger("motion", ch, False)
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m plugins.dahua.simulator",
                                 description="Simulated Dahua camera / NVR / XVR (HTTP CGI API) on 127.0.0.1")
    ap.add_argument("--kind", choices=["camera", "nvr", "dvr"], default="camera")
    ap.add_argument("--channels", type=int, default=None)
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--username", default="admin")
    ap.add_argument("--password", default="admin")
    ap.add_argument("--recordings-days", type=float, default=12.0)
    ap.add_argument("--motion-every", type=float, default=0.0)
    ap.add_argument("--no-rtsp", action="store_true", help="do not serve the RTSP stream (GStreamer)")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
