"""Hikvision ISAPI driver: IP cameras, NVRs and analog/hybrid DVRs.

What it reads (docs/reference/protocols.md §1): ``/ISAPI/System/deviceInfo`` (model, serial,
firmware, camera vs recorder), ``/System/status`` (clock skew), ``/ContentMgmt/Storage`` (disks,
MB), channels and their online state (``InputProxy/channels/status`` on NVRs, ``resDesc NO VIDEO``
on DVRs), alarm outputs, snapshots (with the NVR ``StreamingProxy`` fallback and XML errors served
with HTTP 200), the ``alertStream`` (parsed incrementally, see :mod:`hub.camera.multipart`) and,
for recorders, how many days of footage each channel keeps (``ContentMgmt/search``), and the
recording search and download behind ``anninh export`` (docs/reference/recordings.md).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from pydantic import Field, SecretStr, model_validator

from hub.api import CameraConfig, Command, CommandError, DeviceError, DeviceInfo, DownloadSink, Segment
from hub.camera import xml as X
from hub.camera.base import CameraBase, OutputCommand
from hub.camera.http import HttpStatusError
from hub.camera.multipart import MultipartParser, boundary_from_content_type

EVENT_MAP = {
    "vmd": "motion", "motion": "motion",
    "videoloss": "video_loss",
    "tamperdetection": "tamper", "shelteralarm": "tamper",
    "linedetection": "line_crossing",
    "fielddetection": "intrusion",
    "regionentrance": "region_entrance", "regionexiting": "region_exiting",
    "scenechangedetection": "scene_change", "defocus": "defocus",
    "io": "alarm_input", "pir": "pir", "facedetection": "face",
    "unattendedbaggage": "unattended_baggage", "attendedbaggage": "object_removal",
    "badvideo": "bad_video", "videomismatch": "video_mismatch",
}
DEVICE_EVENTS = {
    "diskfull": "disk_full", "diskerror": "disk_error", "nicbroken": "network_broken",
    "ipconflict": "ip_conflict", "illaccess": "illegal_access", "recordingfailure": "recording_failure",
}


class HikvisionConfig(CameraConfig):
    """A Hikvision camera, NVR or DVR (ISAPI over HTTP/HTTPS)."""

    host: str = Field(description="IP address or host name of the device")
    port: int = Field(80, ge=1, le=65535, description="HTTP(S) port")
    username: str = Field("admin", description="ISAPI user (an operator account is enough)")
    password: SecretStr = Field(description="password; use !secret NAME")
    https: bool = Field(False, description="talk HTTPS (self-signed certificates are accepted)")
    kind: Literal["auto", "camera", "nvr", "dvr"] = Field("auto", description="auto: from deviceInfo deviceType")
    channels: list[int] | None = Field(None, description="recorder channels to watch (default: all)")
    event_stream: bool = Field(True, description="arm the alertStream for motion / video loss / tamper events")
    event_timeout: float = Field(10.0, ge=0.5, le=300, description="an event not repeated for this long has ended")
    stream_timeout: float = Field(60.0, ge=1, le=600, description="seconds of silence before the stream is re-armed")
    retention_target_days: int = Field(30, ge=1, le=3650, description="footage the recorder should keep (days)")
    retention_interval: float = Field(3600, ge=1, le=86400 * 7, description="seconds between retention checks")
    alarm_outputs: int | None = Field(None, ge=0, le=64, description="relay outputs (default: ask the device)")
    rtsp_port: int = Field(554, ge=1, le=65535)

    @model_validator(mode="after")
    def _check(self) -> HikvisionConfig:
        if self.channels is not None and any(c < 1 or c > 256 for c in self.channels):
            raise ValueError("channels are numbered from 1 to 256")
        return self


class HikvisionDriver(CameraBase):
    """ISAPI driver; ``kind`` becomes ``camera`` or ``recorder`` once the device has told what it is."""

    command_model = OutputCommand
    config: HikvisionConfig

    def __init__(self, config: HikvisionConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.kind = "recorder" if config.kind in ("nvr", "dvr") else "camera"
        self.device_type = config.kind
        self.prefix = "/ISAPI"
        self.output_count = 0
        self.info: DeviceInfo | None = None
        self.events_seen = 0
        self.stream_connects = 0

    # ------------------------------------------------------------------ plumbing
    async def _xml(self, path: str, what: str | None = None, allow: tuple[int, ...] = ()) -> Any:
        data = await self._http().get_bytes(self.prefix + path, allow=allow)
        return X.parse(data, what or path)

    # ------------------------------------------------------------------ connect / poll
    async def connect(self) -> DeviceInfo:
        await self.close()
        cfg = self.config
        self.open_http()
        self.prefix = "/ISAPI"
        try:
            root = await self._xml("/System/deviceInfo", "deviceInfo")
        except HttpStatusError as exc:
            if exc.status != 404:
                raise
            self.prefix = ""  # old PSIA firmware: same paths without /ISAPI (pyHik)
            root = await self._xml("/System/deviceInfo", "deviceInfo")
        if X.local(root.tag) != "DeviceInfo":
            raise DeviceError(f"deviceInfo answered <{X.local(root.tag)}>, not <DeviceInfo>")
        dtype = (X.text(root, "deviceType") or "").lower()
        if cfg.kind == "auto":
            if "nvr" in dtype or "dvr" in dtype or "xvr" in dtype:
                self.device_type = "nvr" if "nvr" in dtype else "dvr"
            else:
                self.device_type = "camera"
        self.kind = "recorder" if self.device_type in ("nvr", "dvr") else "camera"
        await self._discover_channels()
        await self._discover_outputs()
        self.info = DeviceInfo(model=X.text(root, "model"), serial=X.text(root, "serialNumber"),
                               firmware=X.text(root, "firmwareVersion"),
                               manufacturer=(X.text(root, "manufacturer") or "hikvision").capitalize(),
                               extra={"device_type": self.device_type, "device_name": X.text(root, "deviceName")})
        self.ctx.update(self.reset_flags())
        self.ctx.create_task(self.expiry_loop(), name=f"{self.ctx.device_id}-expiry")
        if self.is_recorder:
            self.ctx.create_task(self.periodic(cfg.retention_interval, self.check_retention, first_delay=0.5),
                                 name=f"{self.ctx.device_id}-retention")
        return self.info

    async def _discover_channels(self) -> None:
        if not self.is_recorder:
            self.channels = [1]
            return
        found: set[int] = set()
        if self.device_type == "nvr":
            with contextlib.suppress(DeviceError):
                root = await self._xml("/ContentMgmt/InputProxy/channels")
                found |= {n for n in (X.as_int(X.text(c, "id")) for c in root.iter("InputProxyChannel")) if n}
        with contextlib.suppress(DeviceError):
            root = await self._xml("/System/Video/inputs/channels")
            if self.device_type == "dvr" or not found:
                found |= {n for n in (X.as_int(X.text(c, "id")) for c in root.iter("VideoInputChannel")) if n}
        if self.config.channels:
            found = set(self.config.channels)
        self.channels = sorted(found) or [1]
        for ch in self.channels:
            self.channel_state.setdefault(ch, {})

    async def _discover_outputs(self) -> None:
        if self.config.alarm_outputs is not None:
            self.output_count = self.config.alarm_outputs
            return
        try:
            root = await self._xml("/System/capabilities")
            self.output_count = X.as_int(X.deep_text(root, "IOOutputPortNums"), 0) or 0
        except DeviceError:
            self.output_count = 0

    async def poll(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        fields["clock_skew"] = await self._clock_skew()
        if self.is_recorder:
            disks = await self._disks()
            fields["disks"] = disks
            self.disk_events(disks)
            await self._channel_status()
        for n in range(1, self.output_count + 1):
            with contextlib.suppress(HttpStatusError):
                fields[f"output_{n}"] = "ON" if await self._read_output(n) else "OFF"
        fields.update(self.flag_fields())
        return fields

    async def _clock_skew(self) -> float | None:
        root = await self._xml("/System/status", "status")
        dev = X.parse_datetime(X.text(root, "currentDeviceTime"))
        if dev is None or dev.tzinfo is None:
            return None
        # against this machine's real clock, not the injected one (rules and the demo run that
        # one fast or at a chosen time of day; the camera's clock is compared with the world's)
        return round((dev - datetime.now(UTC)).total_seconds())

    async def _disks(self) -> list[dict[str, Any]]:
        try:
            root = await self._xml("/ContentMgmt/Storage", "storage")
        except HttpStatusError as exc:
            if exc.status in (403, 404):
                return []
            raise
        disks = []
        for hdd in root.iter("hdd"):
            did = X.text(hdd, "id")
            if did is None:
                continue
            disks.append({"id": X.as_int(did, None) or did, "name": X.text(hdd, "hddName"),
                          "capacity": X.as_int(X.text(hdd, "capacity")), "free": X.as_int(X.text(hdd, "freeSpace")),
                          "status": (X.text(hdd, "status") or "unknown").lower()})
        for nas in root.iter("nas"):
            nid = X.text(nas, "id")
            disks.append({"id": f"nas{nid}", "capacity": X.as_int(X.text(nas, "capacity")),
                          "free": X.as_int(X.text(nas, "freeSpace")),
                          "status": (X.text(nas, "status") or "unknown").lower()})
        return disks

    async def _channel_status(self) -> None:
        if self.device_type == "nvr":
            try:
                root = await self._xml("/ContentMgmt/InputProxy/channels/status")
            except HttpStatusError:
                return
            for st in root.iter("InputProxyChannelStatus"):
                ch = X.as_int(X.text(st, "id"))
                if ch is None or ch not in self.channels:
                    continue
                online = X.as_bool(X.deep_text(st, "online"))
                if online is None:
                    online = X.as_bool(X.deep_text(st, "chanDetectResult"))
                self.set_channel_online(ch, online)
        else:
            try:
                root = await self._xml("/System/Video/inputs/channels")
            except HttpStatusError:
                return
            for vc in root.iter("VideoInputChannel"):
                ch = X.as_int(X.text(vc, "id"))
                if ch is None or ch not in self.channels:
                    continue
                res = (X.text(vc, "resDesc") or "").upper()
                enabled = X.as_bool(X.text(vc, "videoInputEnabled"), True)
                self.set_channel_online(ch, bool(enabled) and "NO VIDEO" not in res)

    # ------------------------------------------------------------------ outputs
    async def _read_output(self, n: int) -> bool:
        root = await self._xml(f"/System/IO/outputs/{n}/status")
        return (X.text(root, "ioState") or "").lower() == "active"

    async def handle_command(self, command: Command) -> dict[str, Any]:
        payload: OutputCommand = command.payload  # type: ignore[assignment]
        result: dict[str, Any] = {}
        for n, on in payload.targets():
            if self.output_count and n > self.output_count:
                raise CommandError(f"output {n} does not exist (the device has {self.output_count})")
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n<IOPortData version="2.0" '
                    'xmlns="http://www.isapi.org/ver20/XMLSchema">'
                    f"<outputState>{'high' if on else 'low'}</outputState></IOPortData>").encode()
            resp = await self._http().request("PUT", f"{self.prefix}/System/IO/outputs/{n}/trigger", content=body,
                                              headers={"Content-Type": "application/xml"})
            if resp.status_code == 403:
                raise CommandError(f"the device does not allow switching output {n} (HTTP 403)")
            if resp.status_code >= 400:
                raise CommandError(f"the device refused output {n} (HTTP {resp.status_code})")
            with contextlib.suppress(DeviceError):
                st = X.parse(resp.content, "trigger")
                code = X.text(st, "statusCode")
                if code is not None and code != "1":
                    raise CommandError(f"the device refused output {n}: {X.text(st, 'statusString')}")
            actual = await self._read_output(n)
            if actual != on:
                raise CommandError(f"output {n} reads back {'ON' if actual else 'OFF'} after switching")
            result[f"output_{n}"] = "ON" if actual else "OFF"
        return result

    # ------------------------------------------------------------------ snapshots / RTSP
    async def snapshot(self, channel: int | None = None) -> bytes:
        ch = channel or (self.channels[0] if self.channels else 1)
        paths = [f"{self.prefix}/Streaming/channels/{ch * 100 + 1}/picture"]
        if self.is_recorder:
            paths.append(f"{self.prefix}/ContentMgmt/StreamingProxy/channels/{ch * 100 + 1}/picture")
        last = "no picture"
        for path in paths:
            for _attempt in range(2):
                resp = await self._http().request("GET", path)
                body = resp.content
                if resp.status_code in (401, 403):
                    raise DeviceError(f"snapshot of channel {ch} refused (HTTP {resp.status_code})")
                if resp.status_code == 200 and body[:3] == b"\xff\xd8\xff":
                    return body
                code = None
                if body.lstrip()[:1] == b"<":
                    with contextlib.suppress(DeviceError):
                        code = X.text(X.parse(body, "picture"), "statusCode")
                last = (f"channel {ch}: device error {code}" if code else
                        f"channel {ch}: HTTP {resp.status_code}, not a JPEG")
                if code == "3":
                    continue  # "Device Error": hikvision_next retries
                break
        raise DeviceError(f"no snapshot ({last})")

    def stream_url(self, channel: int | None = None) -> str:
        """RTSP main stream. Contains the password: never log it."""
        ch = self.default_channel(channel)
        return self.rtsp_url(f"/Streaming/Channels/{ch}01")

    # ------------------------------------------------------------------ retention
    async def _device_now(self) -> datetime:
        try:
            root = await self._xml("/System/time", "time")
            now = X.parse_datetime(X.text(root, "localTime"))
            if now is not None:
                return now
        except HttpStatusError:
            pass
        root = await self._xml("/System/status", "status")
        now = X.parse_datetime(X.text(root, "currentDeviceTime"))
        if now is None:
            raise DeviceError("the device reports no current time")
        return now

    async def oldest_recording(self, channel: int, device_now: datetime) -> datetime | None:
        root = await self._search_page(str(uuid.uuid4()).upper(), channel, device_now - timedelta(days=3650),
                                       device_now, 0, 5)
        starts = []
        for item in root.iter("searchMatchItem"):
            t = X.parse_datetime(X.deep_text(item, "startTime"))
            if t is not None:
                starts.append(t.replace(tzinfo=None))
        return min(starts) if starts else None

    async def _search_page(self, search_id: str, channel: int, start: datetime, end: datetime, position: int,
                           max_results: int) -> Any:
        """One ``CMSearchDescription`` page of the main stream's track (``channel``×100+1); both
        spellings of the position element, as firmwares differ. Times: the recorder's wall clock
        written with ``Z`` (docs/reference/protocols.md §1.11)."""
        body = (f'<?xml version="1.0" encoding="utf-8"?>\n<CMSearchDescription>\n'
                f"<searchID>{search_id}</searchID>\n"
                f"<trackIDList><trackID>{channel * 100 + 1}</trackID></trackIDList>\n"
                f"<timeSpanList><timeSpan>\n<startTime>{start:%Y-%m-%dT%H:%M:%SZ}</startTime>\n"
                f"<endTime>{end:%Y-%m-%dT%H:%M:%SZ}</endTime>\n</timeSpan></timeSpanList>\n"
                f"<maxResults>{max_results}</maxResults>\n"
                f"<searchResultPostion>{position}</searchResultPostion>\n"
                f"<searchResultPosition>{position}</searchResultPosition>\n"
                "<metadataList><metadataDescriptor>//recordType.meta.std-cgi.com</metadataDescriptor>"
                "</metadataList>\n</CMSearchDescription>").encode()
        resp = await self._http().request("POST", f"{self.prefix}/ContentMgmt/search", content=body,
                                          headers={"Content-Type": "application/xml"})
        if resp.status_code >= 400:
            raise HttpStatusError(f"recording search answered HTTP {resp.status_code}", resp.status_code)
        return X.parse(resp.content, "search")

    # ------------------------------------------------------------------ export: search and download
    SEARCH_PAGE = 40
    MAX_PAGES = 500

    async def recorder_clock_skew(self) -> float | None:
        """Like the polled ``clock_skew``, but against the middle of the request, and with the
        half second the device's whole-second clock hides on average (it truncates)."""
        before = datetime.now(UTC)
        root = await self._xml("/System/status", "status")
        after = datetime.now(UTC)
        dev = X.parse_datetime(X.text(root, "currentDeviceTime"))
        if dev is None or dev.tzinfo is None:
            return None
        middle = before + (after - before) / 2
        self._utc_offset = dev.utcoffset()
        return round((dev - middle).total_seconds() + (0.5 if dev.microsecond == 0 else 0.0), 1)

    _utc_offset: timedelta | None = None

    async def recorder_utc_offset(self) -> timedelta | None:
        """The offset ``currentDeviceTime`` is written with: the recorder's file list and search
        use its local wall clock, which is the hub's only when both are set to the same zone."""
        if self._utc_offset is None:
            dev = X.parse_datetime(X.text(await self._xml("/System/status", "status"), "currentDeviceTime"))
            self._utc_offset = dev.utcoffset() if dev is not None else None
        return self._utc_offset

    async def search_recordings(self, channel: int, start: datetime, end: datetime) -> list[Segment]:
        """``CMSearchDescription`` pages (``searchResultPostion`` advanced by ``numOfMatches``
        while the answer says ``MORE``); times are the recorder's wall clock written with ``Z``."""
        segments: list[Segment] = []
        search_id = str(uuid.uuid4()).upper()
        position = 0
        for _page in range(self.MAX_PAGES):
            root = await self._search_page(search_id, channel, start, end, position, self.SEARCH_PAGE)
            if X.local(root.tag) == "ResponseStatus":
                raise DeviceError(f"recording search refused: {X.text(root, 'statusString') or 'error'}")
            status = (X.text(root, "responseStatusStrg") or "").upper()
            items = list(root.iter("searchMatchItem"))
            for item in items:
                seg = self._segment(channel, item)
                if seg is not None and seg.end > start and seg.start < end:
                    segments.append(seg)
            position += X.as_int(X.text(root, "numOfMatches"), len(items)) or len(items)
            if status != "MORE" or not items:
                break
        unique = {(s.start, s.ref): s for s in segments}
        return sorted(unique.values(), key=lambda s: s.start)

    def _segment(self, channel: int, item: Any) -> Segment | None:
        uri = (X.deep_text(item, "playbackURI") or "").strip()
        st = X.parse_datetime(X.deep_text(item, "startTime"))
        et = X.parse_datetime(X.deep_text(item, "endTime"))
        if not uri or st is None or et is None:
            return None
        query = {k: v[0] for k, v in parse_qs(urlsplit(uri).query).items()}
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", query.get("name", "")) or f"ch{channel:02d}"
        st, et = st.replace(tzinfo=None), et.replace(tzinfo=None)
        return Segment(channel=channel, start=st, end=et, ref=uri, name=f"{name}_{st:%Y%m%dT%H%M%S}.ps",
                       container="ps", size=X.as_int(query.get("size")))

    async def download(self, segment: Segment, sink: DownloadSink, offset: int = 0) -> int:
        """``GET`` with a ``downloadRequest`` body, ``POST`` on firmware that refuses it; a resume
        asks ``Range: bytes=N-`` and skips N bytes itself when the recorder ignores the range."""
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<downloadRequest version="1.0" '
                'xmlns="http://www.isapi.org/ver20/XMLSchema">'
                f"<playbackURI>{escape(segment.ref)}</playbackURI></downloadRequest>").encode()
        headers = {"Content-Type": "application/xml"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        methods = [self._download_method] if self._download_method else ["GET", "POST"]
        for method in methods:
            async with self._http().stream(f"{self.prefix}/ContentMgmt/download", method=method, content=body,
                                           headers=headers, read_timeout=self.config.timeout * 3,
                                           allow=(400, 403, 404, 405, 501)) as resp:
                if resp.status_code >= 400:
                    continue
                self._download_method = method
                return await resp.copy_from(offset, sink, self.config.host, check_first=_refused_download)
        raise DeviceError("the recorder refused the download (GET and POST /ContentMgmt/download)")

    _download_method: str | None = None

    # ------------------------------------------------------------------ event stream
    async def probe(self) -> None:
        await self._xml("/System/deviceInfo", "deviceInfo")

    async def _stream_once(self) -> None:
        http = self._http()
        async with http.stream(self.prefix + "/Event/notification/alertStream",
                               read_timeout=self.config.stream_timeout) as resp:
            self.stream_connects += 1
            parser = MultipartParser(boundary_from_content_type(resp.headers.get("content-type")))
            async for chunk in resp.aiter_raw():
                for part in parser.feed(chunk):
                    if "xml" in part.content_type or part.body.lstrip()[:1] == b"<":
                        self.handle_alert(part.body)

    def handle_alert(self, body: bytes) -> None:
        """One EventNotificationAlert. Garbage is skipped (logged at debug)."""
        try:
            root = X.parse(body, "alert")
        except DeviceError as exc:
            self.ctx.log.debug("skipped a bad alert: %s", exc)
            return
        if root.tag != "EventNotificationAlert":
            return
        self.events_seen += 1
        etype = (X.text(root, "eventType") or "").lower()
        state = (X.text(root, "eventState") or "active").lower()
        desc = (X.text(root, "eventDescription") or "").lower()
        if etype in ("other", "heartbeat") or "heartbeat" in desc:
            return
        active = state == "active"
        if etype in DEVICE_EVENTS:
            self.device_event(DEVICE_EVENTS[etype], active)
            return
        name = EVENT_MAP.get(etype)
        if name is None:
            return
        channel = self._alert_channel(root)
        if channel is None:
            return  # device-level heartbeat (channel 0 / empty)
        self.set_flag(channel, name, active)

    def _alert_channel(self, root: Any) -> int | None:
        dyn = X.as_int(X.text(root, "dynChannelID"))
        ch = X.as_int(X.text(root, "channelID"))
        io = X.as_int(X.text(root, "inputIOPortID"))
        if dyn:
            return dyn
        if ch:
            if self.device_type == "nvr" and ch > 32:
                return ch - 32  # IP channel n reported as 32+n
            return ch
        if io:
            return io if self.is_recorder else 1
        return None


def _refused_download(chunk: bytes) -> None:
    """Some firmware answers a refused download with 200 and a ResponseStatus document."""
    if chunk.lstrip()[:1] == b"<" and b"ResponseStatus" in chunk[:512]:
        root = X.parse(chunk, "download")
        raise DeviceError(f"download refused: {X.text(root, 'statusString') or 'error'}")
