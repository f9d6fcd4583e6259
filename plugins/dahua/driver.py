"""Dahua HTTP CGI driver: IP cameras, NVRs and XVR/DVRs (and OEM units such as Amcrest,
Intelbras, KBVision that keep the API).

What it reads (docs/reference/protocols.md §2): ``magicBox.cgi`` (type, serial, firmware, name),
``storageDevice.cgi?action=getDeviceAllInfo`` (every disk and partition; byte values are floats),
``eventManager.cgi?action=attach&heartbeat=N`` (the event stream; ``index`` is 0-based, channels
are 1-based), ``getEventIndexes&code=VideoLoss`` (which NVR channels have lost their camera),
``snapshot.cgi``, alarm outputs (``AlarmOut[n].Mode`` plus a read-back of ``getOutState``, because
the mode values differ between firmwares) and, for recorders, ``mediaFileFind.cgi`` for the
oldest recording per channel.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr

from hub.api import CameraConfig, Command, CommandError, DeviceError, DeviceInfo, DownloadSink, Segment
from hub.camera.base import CameraBase, OutputCommand
from hub.camera.http import HttpStatusError
from hub.camera.multipart import MultipartParser, boundary_from_content_type

CODE_MAP = {
    "videomotion": "motion", "smartmotionhuman": "motion", "smartmotionvehicle": "motion",
    "videoloss": "video_loss", "videoblind": "tamper",
    "crosslinedetection": "line_crossing", "crossregiondetection": "intrusion",
    "alarmlocal": "alarm_input", "videoabnormaldetection": "bad_video", "videounfocus": "defocus",
    "leftdetection": "unattended_baggage", "takenawaydetection": "object_removal", "facedetection": "face",
}
DEVICE_CODES = {"storagelowspace": "disk_full", "storagefailure": "disk_error", "storagenotexist": "disk_missing"}
RECORDER_WORDS = ("NVR", "DVR", "XVR", "HCVR", "HDCVI")
MAX_TEXT = 256 * 1024
LOADFILE_REFUSED = (400, 404, 405, 501)
"""HTTP statuses of a firmware without ``RPC_Loadfile``: the download then goes by time range."""


def parse_kv(body: bytes | str) -> dict[str, str]:
    """``key=value`` lines (CRLF or LF) → dict; lines without ``=`` are kept as ``{line: ""}``."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if len(text) > MAX_TEXT:
        raise DeviceError("answer too large")
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        out[key.strip()] = value.strip() if sep else ""
    return out


def parse_event(body: bytes) -> dict[str, Any] | None:
    """``Code=VideoMotion;action=Start;index=0;data={...}`` → dict, or None for anything else."""
    text = body.decode("utf-8", "replace").strip()
    if not text.startswith("Code="):
        return None
    head, sep, data = text.partition(";data=")
    out: dict[str, Any] = {}
    for item in head.split(";"):
        key, eq, value = item.partition("=")
        if eq:
            out[key.strip()] = value.strip()
    if sep:
        try:
            out["data"] = json.loads(data)
        except ValueError:
            out["data"] = None
    return out


def parse_storage(kv: dict[str, str]) -> list[dict[str, Any]]:
    """Every ``list.info[i]`` disk with all its ``Detail[j]`` partitions summed (MB)."""
    disks: dict[int, dict[str, Any]] = {}
    for key, value in kv.items():
        if not key.startswith("list.info["):
            continue
        try:
            idx = int(key[10:key.index("]")])
        except ValueError:
            continue
        rest = key[key.index("]") + 2:]
        d = disks.setdefault(idx, {"total": 0.0, "used": 0.0, "error": False, "state": None, "name": None,
                                   "parts": 0})
        if rest.startswith("Detail["):
            field = rest.split(".", 1)[-1]
            if field in ("TotalBytes", "UsedBytes"):
                try:
                    number = float(value)
                except ValueError:
                    continue
                if not math.isfinite(number) or number < 0 or number > 1e18:
                    continue  # "inf", "nan", "1e400": a lying device, not a disk size
                if field == "TotalBytes":
                    d["total"] += number
                    d["parts"] += 1
                else:
                    d["used"] += number
            if field == "IsError" and value.lower() == "true":
                d["error"] = True
        elif rest == "State":
            d["state"] = value
        elif rest == "Name":
            d["name"] = value
    out = []
    for idx in sorted(disks):
        d = disks[idx]
        state = (d["state"] or "").lower()
        status = "error" if d["error"] or state in ("error", "failure") else "ok" if state in ("success", "") else state
        mb = 1024 * 1024
        out.append({"id": idx + 1, "name": d["name"], "capacity": int(d["total"] // mb),
                    "free": max(0, int((d["total"] - d["used"]) // mb)), "status": status})
    return out


class DahuaConfig(CameraConfig):
    """A Dahua camera, NVR or XVR (HTTP CGI API)."""

    host: str = Field(description="IP address or host name of the device")
    port: int = Field(80, ge=1, le=65535)
    username: str = Field("admin")
    password: SecretStr = Field(description="password; use !secret NAME")
    https: bool = False
    kind: Literal["auto", "camera", "nvr", "dvr"] = Field("auto", description="auto: from getDeviceType")
    channels: list[int] | None = Field(None, description="recorder channels to watch (default: ask the device)")
    event_stream: bool = True
    heartbeat: int = Field(5, ge=1, le=60, description="seconds between Heartbeat parts asked of the device")
    event_timeout: float = Field(30.0, ge=0.5, le=600, description="an event without Stop ends after this long")
    stream_timeout: float | None = Field(None, ge=1, le=600, description="default: three heartbeats")
    retention_target_days: int = Field(30, ge=1, le=3650)
    retention_interval: float = Field(3600, ge=1, le=86400 * 7)
    alarm_outputs: int | None = Field(None, ge=0, le=64, description="relay outputs (default: ask the device)")
    alarm_on_mode: int | None = Field(None, ge=0, le=9, description="AlarmOut Mode meaning ON (default: learn)")
    alarm_off_mode: int | None = Field(None, ge=0, le=9, description="AlarmOut Mode meaning OFF (default: learn)")
    rtsp_port: int = Field(554, ge=1, le=65535)


class DahuaDriver(CameraBase):
    command_model = OutputCommand
    config: DahuaConfig

    def __init__(self, config: DahuaConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.kind = "recorder" if config.kind in ("nvr", "dvr") else "camera"
        self.device_type = config.kind
        self.output_count = 0
        self.on_modes = [m for m in (config.alarm_on_mode, 1, 0) if m is not None]
        self.off_modes = [m for m in (config.alarm_off_mode, 2, 0, 1) if m is not None]
        self.events_seen = 0
        self.heartbeats = 0

    async def _kv(self, path: str, params: dict[str, Any] | None = None, allow: tuple[int, ...] = ()) -> dict[str, str]:
        return parse_kv(await self._http().get_bytes(path, params=params, allow=allow))

    # ------------------------------------------------------------------ connect / poll
    async def connect(self) -> DeviceInfo:
        await self.close()
        cfg = self.config
        self.open_http()
        box = "/cgi-bin/magicBox.cgi"
        dtype = (await self._kv(box, {"action": "getDeviceType"})).get("type")
        if not dtype:
            raise DeviceError("getDeviceType answered without type=")
        serial = None
        with contextlib.suppress(HttpStatusError):
            serial = (await self._kv(box, {"action": "getSerialNo"})).get("sn")
        firmware = None
        with contextlib.suppress(HttpStatusError):
            raw = (await self._kv(box, {"action": "getSoftwareVersion"})).get("version", "")
            firmware = raw.split(",")[0].strip() or None
        name = None
        with contextlib.suppress(HttpStatusError):
            name = (await self._kv(box, {"action": "getMachineName"})).get("name")
        if cfg.kind == "auto":
            upper = dtype.upper()
            word = next((w for w in RECORDER_WORDS if w in upper), None)
            self.device_type = "camera" if word is None else ("nvr" if word == "NVR" else "dvr")
        self.kind = "recorder" if self.device_type in ("nvr", "dvr") else "camera"
        await self._discover_channels(box)
        await self._discover_outputs()
        self.ctx.update(self.reset_flags())
        self.ctx.create_task(self.expiry_loop(), name=f"{self.ctx.device_id}-expiry")
        if self.is_recorder:
            self.ctx.create_task(self.periodic(cfg.retention_interval, self.check_retention, first_delay=0.5),
                                 name=f"{self.ctx.device_id}-retention")
        return DeviceInfo(model=dtype, serial=serial, firmware=firmware, manufacturer="Dahua",
                          extra={"device_type": self.device_type, "device_name": name})

    async def _discover_channels(self, box: str) -> None:
        if not self.is_recorder:
            self.channels = [1]
            return
        if self.config.channels:
            self.channels = sorted(set(self.config.channels))
            return
        count = 0
        for name in ("MaxRemoteInputChannels", "VideoInputChannels"):
            try:
                kv = await self._kv(box, {"action": "getProductDefinition", "name": name})
            except HttpStatusError:
                continue
            value = kv.get(f"table.{name}", "")
            count = max(count, int(value) if value.isdigit() else 0)
        self.channels = list(range(1, min(count, 256) + 1)) or [1]

    async def _discover_outputs(self) -> None:
        if self.config.alarm_outputs is not None:
            self.output_count = self.config.alarm_outputs
            return
        try:
            kv = await self._kv("/cgi-bin/configManager.cgi", {"action": "getConfig", "name": "AlarmOut"})
            self.output_count = len({k.split("]")[0] for k in kv if k.startswith("table.AlarmOut[")})
        except HttpStatusError:
            self.output_count = 0

    async def poll(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        try:
            kv = await self._kv("/cgi-bin/storageDevice.cgi", {"action": "getDeviceAllInfo"})
            disks = parse_storage(kv)
        except HttpStatusError:
            disks = []
        if self.is_recorder or disks:
            fields["disks"] = disks
            self.disk_events(disks)
        if self.is_recorder:
            kv = await self._kv("/cgi-bin/eventManager.cgi", {"action": "getEventIndexes", "code": "VideoLoss"},
                                allow=(400, 500))
            lost = {int(v) + 1 for k, v in kv.items() if k.startswith("channels[") and v.isdigit()}
            for ch in self.channels:
                self.set_channel_online(ch, ch not in lost)
        if self.output_count:
            mask = await self._out_state()
            for n in range(1, self.output_count + 1):
                fields[f"output_{n}"] = "ON" if mask >> (n - 1) & 1 else "OFF"
        fields.update(self.flag_fields())
        return fields

    # ------------------------------------------------------------------ outputs
    async def _out_state(self) -> int:
        kv = await self._kv("/cgi-bin/alarm.cgi", {"action": "getOutState"})
        value = kv.get("result", "")
        if not value.isdigit():
            raise DeviceError("getOutState answered without result=<bitmask>")
        return int(value)

    async def handle_command(self, command: Command) -> dict[str, Any]:
        payload: OutputCommand = command.payload  # type: ignore[assignment]
        result: dict[str, Any] = {}
        for n, on in payload.targets():
            if n > max(self.output_count, 1):
                raise CommandError(f"output {n} does not exist (the device has {self.output_count})")
            modes = self.on_modes if on else self.off_modes
            for i, mode in enumerate(list(modes)):
                resp = await self._http().request("GET", "/cgi-bin/configManager.cgi",
                                                  params={"action": "setConfig", f"AlarmOut[{n - 1}].Mode": mode})
                if resp.status_code >= 400 or b"OK" not in resp.content:
                    raise CommandError(f"the device refused AlarmOut[{n - 1}].Mode={mode}")
                actual = bool(await self._out_state() >> (n - 1) & 1)
                if actual == on:
                    if i:  # learn this firmware's mapping: try it first next time
                        modes.insert(0, modes.pop(i))
                    break
            else:
                raise CommandError(f"output {n} did not switch {'ON' if on else 'OFF'} (read back)")
            result[f"output_{n}"] = "ON" if on else "OFF"
        return result

    # ------------------------------------------------------------------ snapshots / RTSP
    async def snapshot(self, channel: int | None = None) -> bytes:
        ch = channel or (self.channels[0] if self.channels else 1)
        resp = await self._http().request("GET", "/cgi-bin/snapshot.cgi", params={"channel": ch})
        if resp.status_code != 200 or resp.content[:3] != b"\xff\xd8\xff":
            raise DeviceError(f"no snapshot from channel {ch} (HTTP {resp.status_code}, not a JPEG)")
        return resp.content

    def stream_url(self, channel: int | None = None) -> str:
        """RTSP main stream. Contains the password: never log it."""
        ch = self.default_channel(channel)
        return self.rtsp_url(f"/cam/realmonitor?channel={ch}&subtype=0")

    # ------------------------------------------------------------------ retention
    async def _device_now(self) -> datetime:
        kv = await self._kv("/cgi-bin/global.cgi", {"action": "getCurrentTime"})
        try:
            return datetime.strptime(kv.get("result", ""), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise DeviceError("getCurrentTime answered no time") from None

    async def oldest_recording(self, channel: int, now: datetime) -> datetime | None:
        path = "/cgi-bin/mediaFileFind.cgi"
        obj = (await self._kv(path, {"action": "factory.create"})).get("result", "")
        if not obj.isdigit():
            raise DeviceError("mediaFileFind factory.create answered no object id")
        try:
            start = (now - timedelta(days=3650)).strftime("%Y-%m-%d %H:%M:%S")
            end = now.strftime("%Y-%m-%d %H:%M:%S")
            found = await self._kv(path, {"action": "findFile", "object": obj, "condition.Channel": channel - 1,
                                          "condition.StartTime": start, "condition.EndTime": end},
                                   allow=(400,))
            if "OK" not in found:
                return None
            kv = await self._kv(path, {"action": "findNextFile", "object": obj, "count": 5}, allow=(400,))
            starts = []
            for key, value in kv.items():
                if key.startswith("items[") and key.endswith("].StartTime"):
                    with contextlib.suppress(ValueError):
                        starts.append(datetime.strptime(value, "%Y-%m-%d %H:%M:%S"))
            return min(starts) if starts else None
        finally:
            with contextlib.suppress(DeviceError):
                await self._kv(path, {"action": "close", "object": obj}, allow=(400,))
                await self._kv(path, {"action": "destroy", "object": obj}, allow=(400,))

    # ------------------------------------------------------------------ export: search and download
    FIND_PAGE = 100
    MAX_PAGES = 500

    async def recorder_clock_skew(self) -> float | None:
        """The device's local time (``getCurrentTime``, whole seconds, in the hub's timezone)
        against the middle of the request, plus the half second truncation hides on average."""
        before = datetime.now(UTC)
        device = await self._device_now()
        after = datetime.now(UTC)
        middle = (before + (after - before) / 2).astimezone(self.ctx.tz).replace(tzinfo=None)
        return round((device - middle).total_seconds() + 0.5, 1)

    async def search_recordings(self, channel: int, start: datetime, end: datetime) -> list[Segment]:
        """``mediaFileFind.cgi``: factory.create, findFile, findNextFile until a page comes back
        short, then close and destroy (always, so the recorder's finder objects do not leak)."""
        path = "/cgi-bin/mediaFileFind.cgi"
        obj = (await self._kv(path, {"action": "factory.create"})).get("result", "")
        if not obj.isdigit():
            raise DeviceError("mediaFileFind factory.create answered no object id")
        segments: list[Segment] = []
        try:
            found = await self._kv(path, {"action": "findFile", "object": obj, "condition.Channel": channel - 1,
                                          "condition.StartTime": f"{start:%Y-%m-%d %H:%M:%S}",
                                          "condition.EndTime": f"{end:%Y-%m-%d %H:%M:%S}"}, allow=(400,))
            if "OK" not in found:
                return []  # "Error": nothing recorded then
            for _page in range(self.MAX_PAGES):
                kv = await self._kv(path, {"action": "findNextFile", "object": obj, "count": self.FIND_PAGE},
                                    allow=(400,))
                count = int(kv.get("found", "0")) if kv.get("found", "0").isdigit() else 0
                for i in range(count):
                    seg = self._segment(channel, kv, i)
                    if seg is not None and seg.end > start and seg.start < end:
                        segments.append(seg)
                if count < self.FIND_PAGE:
                    break
        finally:
            with contextlib.suppress(DeviceError):
                await self._kv(path, {"action": "close", "object": obj}, allow=(400,))
                await self._kv(path, {"action": "destroy", "object": obj}, allow=(400,))
        unique = {s.ref: s for s in segments}
        return sorted(unique.values(), key=lambda s: s.start)

    @staticmethod
    def _segment(channel: int, kv: dict[str, str], i: int) -> Segment | None:
        item = f"items[{i}]."
        file_path = kv.get(item + "FilePath", "")
        try:
            st = datetime.strptime(kv.get(item + "StartTime", ""), "%Y-%m-%d %H:%M:%S")
            et = datetime.strptime(kv.get(item + "EndTime", ""), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
        if not file_path.startswith("/") or ".." in file_path.split("/"):
            return None
        length = kv.get(item + "Length", "")
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"ch{channel:02d}_{st:%Y%m%dT%H%M%S}_{file_path.rsplit('/', 1)[-1]}")
        return Segment(channel=channel, start=st, end=et, ref=file_path, name=name, container="dav",
                       size=int(length) if length.isdigit() else None)

    async def download(self, segment: Segment, sink: DownloadSink, offset: int = 0) -> int:
        """``GET /cgi-bin/RPC_Loadfile<FilePath>``; a recorder that refuses it (firmware without
        RPC_Loadfile: HTTP 400, 404, 405 or 501) is asked for the same span by time instead,
        ``GET /cgi-bin/loadfile.cgi?action=startLoad&channel=<1-based>&startTime=&endTime=`` (its
        own wall clock, the file's times from the search). Each file tries RPC_Loadfile first: a
        404 may also be one file overwritten since the search, which must not switch the recorder
        to the other way for good. A resume asks ``Range: bytes=N-`` and skips N bytes itself when
        the recorder sends it all again."""
        headers = {"Range": f"bytes={offset}-"} if offset else None
        async with self._http().stream("/cgi-bin/RPC_Loadfile" + quote(segment.ref, safe="/@"), headers=headers,
                                       read_timeout=self.config.timeout * 3, allow=LOADFILE_REFUSED) as resp:
            if resp.status_code not in LOADFILE_REFUSED:
                return await resp.copy_from(offset, sink, self.config.host)
            status = resp.status_code
        self.ctx.log.debug("RPC_Loadfile answered HTTP %d for %s; downloading by time range (loadfile.cgi)",
                           status, segment.name)
        params = {"action": "startLoad", "channel": segment.channel,
                  "startTime": f"{segment.start:%Y-%m-%d %H:%M:%S}", "endTime": f"{segment.end:%Y-%m-%d %H:%M:%S}"}
        async with self._http().stream("/cgi-bin/loadfile.cgi", params=params, headers=headers,
                                       read_timeout=self.config.timeout * 3) as resp:
            return await resp.copy_from(offset, sink, self.config.host)

    # ------------------------------------------------------------------ event stream
    async def probe(self) -> None:
        await self._kv("/cgi-bin/magicBox.cgi", {"action": "getDeviceType"})

    async def _stream_once(self) -> None:
        http = self._http()
        cfg = self.config
        timeout = cfg.stream_timeout or 3.0 * cfg.heartbeat
        async with http.stream("/cgi-bin/eventManager.cgi",
                               params={"action": "attach", "codes": "[All]", "heartbeat": cfg.heartbeat},
                               read_timeout=timeout) as resp:
            parser = MultipartParser(boundary_from_content_type(resp.headers.get("content-type")) or b"myboundary")
            async for chunk in resp.aiter_raw():
                for part in parser.feed(chunk):
                    self.handle_part(part.body)

    def handle_part(self, body: bytes) -> None:
        text = body.strip()
        if text == b"Heartbeat":
            self.heartbeats += 1
            return
        ev = parse_event(text)
        if ev is None:
            return
        self.events_seen += 1
        code = str(ev.get("Code", "")).lower()
        action = str(ev.get("action", "")).lower()
        if action not in ("start", "stop", "pulse"):
            return  # "State" reports (VideoMotionInfo) carry no edge
        active = action != "stop"
        if code in DEVICE_CODES:
            self.device_event(DEVICE_CODES[code], active)
            return
        name = CODE_MAP.get(code)
        index = str(ev.get("index", "0"))
        if name is None or not index.isdigit():
            return
        channel = int(index) + 1
        if action == "pulse":
            self.set_flag(channel, name, True)
            return
        self.set_flag(channel, name, active)
