"""A Hikvision ISAPI device on loopback: IP camera, NVR or analog DVR, shaped like real captures
(docs/reference/protocols.md §1 and §5).

Python API::

    sim = HikvisionSimulator(kind="nvr", channels=4, username="admin", password="pw", port=0)
    await sim.start(); sim.port
    sim.trigger("motion", channel=2)            # active (repeated at 1 Hz on NVRs, never "inactive")
    sim.trigger("motion", channel=2, active=False)
    sim.set_channel_online(3, False)            # InputProxy online=false (NVR) / resDesc NO VIDEO (DVR)
    sim.set_disk(1, status="error"); sim.disk_full(1); sim.set_disk(2, status="notexist")
    sim.set_recordings(1, days=12); sim.set_clock_skew(90)
    sim.add_footage(1, start, end)              # real footage files (PS + IMKH, simfootage.py)
    sim.drop_download_after(100_000)            # the next download breaks after 100 kB
    sim.set_picture(1, bgr_array_or_jpeg); sim.picture_error(2, code=6)
    sim.motion_enabled[1]                       # motionDetection config (GET/PUT), as pyHik reads it
    HikvisionSimulator(..., rtsp=True)          # serve /Streaming/Channels/<ch>0<stream> over RTSP (GStreamer)
    await sim.reboot(3); sim.freeze(); sim.inject_raw(b"...")
    await sim.stop()

Wire quirks, each selectable: ``auth`` digest / basic (2014-era cameras) / both; ``namespace``
(ver20, ver10, isapi, std-cgi, psia, none); event stream ``stream_mode`` camera (CRLF, sends
inactive) / nvr (LF, ``dynChannelID``, active repeated, no inactive unless ``send_inactive``) /
legacy-nvr (header boundary differs from the body's); a ``videoloss``/``inactive`` heartbeat
every ``heartbeat`` s while no event is active (channel 0 on recorders, as
node-red-contrib-hikvision-ultimate #59/#105 show; 0 turns it off); ``http10`` (DVR style
HTTP/1.0 reply read until close); ``duplicate_boundary``; ``parts_per_write``;
``picture_after_smart`` (an ``image/jpeg`` part after line crossing / intrusion, as smart cameras
send); ``psia`` (no ``/ISAPI`` prefix); ``nvr_channel_style`` dyn / plus32 / plain; ``time_mode``
local-z / utc.

Recordings (docs/reference/recordings.md): ``POST /ISAPI/ContentMgmt/search`` pages through the
files of a channel (``MORE`` / ``OK`` / ``NO MATCHES``); ``GET`` (``?playbackURI=``) or ``POST``
(``downloadRequest``) ``/ISAPI/ContentMgmt/download`` serves a file, or the part of it from the
keyframe at or before the URI's ``starttime`` when that is later than the file's start, with
``Range: bytes=N-`` honoured (``range_support``). Footage spans come from :meth:`add_footage`;
the gaps between spans are gaps in the recording.

CLI: ``python -m plugins.hikvision.simulator --kind nvr --channels 4 --port 8080``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import inspect
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

import numpy as np

from hub.camera import xml as X
from hub.camera.images import picture_bytes, scene
from hub.camera.simfootage import FootageFile, VideoFormat
from hub.camera.simrtsp import RtspHttpSimulator, rtsp_unavailable
from hub.camera.simserver import Request, Response, byte_range

from .simfootage import IMKH_SIZE, ps_store

NAMESPACES = {
    "ver20": "http://www.hikvision.com/ver20/XMLSchema",
    "ver10": "http://www.hikvision.com/ver10/XMLSchema",
    "isapi": "http://www.isapi.org/ver20/XMLSchema",
    "std-cgi": "http://www.std-cgi.com/ver20/XMLSchema",
    "psia": "urn:psialliance-org",
    "none": "",
}
EVENT_TYPES = {
    "motion": ("VMD", "Motion alarm"),
    "video_loss": ("videoloss", "videoloss alarm"),
    "tamper": ("tamperdetection", "Tamper Detection"),
    "line_crossing": ("linedetection", "Line Crossing"),
    "intrusion": ("fielddetection", "Intrusion Detection"),
    "disk_full": ("diskfull", "HDD Full"),
    "disk_error": ("diskerror", "HDD Error"),
    "io": ("IO", "IO alarm"),
}
DEVICE_LEVEL = {"disk_full", "disk_error"}

Kind = Literal["camera", "nvr", "dvr"]


@dataclass
class Disk:
    id: int
    capacity: int = 1907729  # MB
    free: int = 814080
    status: str = "ok"


class HikvisionSimulator(RtspHttpSimulator):

    def __init__(self, kind: Kind = "camera", channels: int | None = None, *, username: str = "admin",
                 password: str = "admin", port: int = 0, auth: Literal["digest", "basic", "both", "none"] = "digest",
                 namespace: str | None = None, stream_mode: str | None = None, http10: bool | None = None,
                 duplicate_boundary: bool = False, parts_per_write: int = 1, heartbeat: float = 10.0,
                 repeat_interval: float = 1.0, model: str | None = None, serial: str | None = None,
                 firmware: str | None = None, tz_offset_hours: float = 7.0, psia: bool = False,
                 outputs: int | None = None, disks: int | None = None, nvr_channel_style: str = "dyn",
                 nvr_picture_fallback: bool = True, time_mode: str = "local-z", naive_time: bool | None = None,
                 picture_after_smart: bool = False, send_inactive: bool | None = None,
                 rtsp: bool = False, footage_dir: str | Path | None = None,
                 segment_seconds: float = 60.0, video: VideoFormat | None = None,
                 range_support: bool = True) -> None:
        super().__init__(username=username, password=password, auth=auth, port=port)
        self.kind = kind
        defaults = {
            "camera": ("DS-2CD2386G2-IU", "DS-2CD2386G2-IU20240101AAWRJ12345678", "V5.7.18", "ver20", "camera", 1),
            "nvr": ("DS-7608NXI-I2/8P/S", "DS-7608NXI-I2/8P/S0820231010CCRRJ98765432", "V4.62.210", "isapi", "nvr", 8),
            "dvr": ("iDS-7204HUHI-M1/E", "iDS-7204HUHI-M1/E2024062AAWRFA1122334", "V4.75.011", "ver20", "nvr", 4),
        }[kind]
        self.model = model or defaults[0]
        self.serial = serial or defaults[1]
        self.firmware = firmware or defaults[2]
        self.namespace = NAMESPACES.get(namespace or defaults[3], namespace or "")
        self.stream_mode = stream_mode or defaults[4]
        self.nchannels = channels if channels is not None else defaults[5]
        self.http10 = (kind == "dvr") if http10 is None else http10
        self.naive_time = (kind == "dvr") if naive_time is None else naive_time
        self.duplicate_boundary = duplicate_boundary
        self.parts_per_write = max(1, parts_per_write)
        self.heartbeat = heartbeat
        self.repeat_interval = repeat_interval
        self.tz = timezone(timedelta(hours=tz_offset_hours))
        self.psia = psia
        self.nvr_channel_style = nvr_channel_style
        self.nvr_picture_fallback = nvr_picture_fallback
        self.time_mode = time_mode
        self.picture_after_smart = picture_after_smart
        # cameras end an event with "inactive"; the NVRs captured in HikSink's samples never do
        self.send_inactive = (self.stream_mode == "camera") if send_inactive is None else send_inactive
        self.motion_enabled = {ch: True for ch in range(1, max(self.nchannels, 1) + 1)}
        self.rtsp = rtsp
        self.rtsp_port = 554  # what /ISAPI/Security/adminAccesses reports; the served port with rtsp=True
        self.outputs = outputs if outputs is not None else (1 if kind == "camera" else 4)
        self.output_state = {n: False for n in range(1, self.outputs + 1)}
        ndisks = disks if disks is not None else (0 if kind == "camera" else 1)
        self.disks = {i: Disk(i) for i in range(1, ndisks + 1)}
        self.online = {ch: True for ch in range(1, self.nchannels + 1)}
        self.recordings: dict[int, float] = {}  # channel -> seconds of footage back from now
        self.pictures: dict[int, bytes] = {}
        self.picture_errors: dict[int, int] = {}
        self.clock_skew = 0.0
        self.active: dict[tuple[str, int], int] = {}  # (event, channel) -> activePostCount
        self._streams: set[asyncio.Queue[bytes | None]] = set()
        self._wake = asyncio.Event()
        self.streams_opened = 0
        # cameras: realm "IP Camera(<last 5 serial chars>)"; NVRs: a 24-hex-digit realm (DNVRS-Webs capture)
        self.realm = (f"IP Camera({self.serial[-5:]})" if kind == "camera"
                      else hashlib.md5(self.serial.encode()).hexdigest()[:24])
        self.unauthorized_body = (b'<?xml version="1.0" encoding="UTF-8" ?>\n<userCheck>\n<statusValue>401'
                                  b'</statusValue>\n<statusString>Unauthorized</statusString>\n</userCheck>\n')
        self.unauthorized_type = 'application/xml; charset="UTF-8"'
        self._footage_tmp: tempfile.TemporaryDirectory[str] | None = None
        if footage_dir is None:
            self._footage_tmp = tempfile.TemporaryDirectory(prefix="hik-footage-")
            footage_dir = self._footage_tmp.name
        self.footage = ps_store(Path(footage_dir), segment_seconds, video)
        self.range_support = range_support
        self.download_drops: list[int] = []  # byte counts after which the next downloads break
        self.downloads = 0

    # ------------------------------------------------------------------ lifecycle
    async def prepare(self) -> None:
        """Footage added before is generated before listening (as a recorder has its files
        before anyone searches them)."""
        await asyncio.to_thread(self.footage.prepare)

    def rtsp_paths(self) -> dict[str, int]:
        """RTSP path -> channel: ``/Streaming/Channels/<ch>0<stream>`` (both casings clients use);
        a camera also answers the short ids 1 and 2 that pyHik asks for."""
        out: dict[str, int] = {}
        for ch in range(1, max(self.nchannels, 1) + 1):
            ids = [ch * 100 + 1, ch * 100 + 2] + ([1, 2] if self.kind == "camera" else [])
            for ident in ids:
                for word in ("Channels", "channels"):
                    out[f"/Streaming/{word}/{ident}"] = ch
        return out

    def stream_uri(self, channel: int = 1, stream: int = 1) -> str:
        """The live stream URI of ``channel`` (no credentials), on the served port with ``rtsp=True``."""
        return f"rtsp://127.0.0.1:{self.rtsp_port}/Streaming/Channels/{channel * 100 + stream}"

    # ------------------------------------------------------------------ scenario API
    @property
    def is_recorder(self) -> bool:
        return self.kind != "camera"

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self.clock_skew, self.tz)

    def trigger(self, event: str, channel: int = 1, active: bool = True) -> None:
        """Start (or with ``active=False`` end) an event; device-level events ignore ``channel``."""
        if event not in EVENT_TYPES:
            raise ValueError(f"unknown event {event!r}; known: {', '.join(EVENT_TYPES)}")
        ch = 0 if event in DEVICE_LEVEL else channel
        key = (event, ch)
        if active:
            self.active[key] = self.active.get(key, 0)
            self._broadcast(self._alert(event, ch, True, 0))
            if self.picture_after_smart and event in ("line_crossing", "intrusion"):
                self._broadcast(self._jpeg_part(ch))  # smart events are followed by a picture part
        elif key in self.active:
            del self.active[key]
            if self.send_inactive:
                self._broadcast(self._alert(event, ch, False, 0))

    def set_channel_online(self, channel: int, online: bool) -> None:
        self.online[channel] = online
        if not online:
            self.trigger("video_loss", channel, True)
        else:
            self.trigger("video_loss", channel, False)

    def set_disk(self, disk_id: int, *, status: str | None = None, capacity: int | None = None,
                 free: int | None = None) -> None:
        d = self.disks.setdefault(disk_id, Disk(disk_id))
        if status is not None:
            d.status = status
            if status == "notexist":
                d.capacity = d.free = 0
        if capacity is not None:
            d.capacity = capacity
        if free is not None:
            d.free = free

    def disk_full(self, disk_id: int = 1) -> None:
        self.set_disk(disk_id, free=0)
        self.trigger("disk_full")

    def disk_error(self, disk_id: int = 1) -> None:
        self.set_disk(disk_id, status="error")
        self.trigger("disk_error")

    def disk_missing(self, disk_id: int = 1) -> None:
        self.set_disk(disk_id, status="notexist")

    def set_recordings(self, channel: int, days: float) -> None:
        """Channel ``channel`` holds footage from ``days`` days ago until now."""
        self.recordings[channel] = days * 86400

    def add_footage(self, channel: int, start: datetime, end: datetime) -> None:
        """Channel ``channel`` recorded from ``start`` to ``end`` (the recorder's wall clock; an aware
        time is taken as its wall time). Spans added apart leave a gap between them."""
        self.footage.add(channel, start, end)

    def drop_download_after(self, nbytes: int, times: int = 1) -> None:
        """The next ``times`` downloads break (connection reset) after ``nbytes`` bytes of body."""
        self.download_drops.extend([nbytes] * times)

    def set_clock_skew(self, seconds: float) -> None:
        self.clock_skew = seconds

    def set_picture(self, channel: int, image: np.ndarray | bytes) -> None:
        self.pictures[channel] = picture_bytes(image)

    def picture_error(self, channel: int, code: int | None = 6) -> None:
        """Serve ``ResponseStatus`` XML with HTTP 200 instead of a JPEG (``None`` clears it)."""
        if code is None:
            self.picture_errors.pop(channel, None)
        else:
            self.picture_errors[channel] = code

    def inject_raw(self, data: bytes) -> None:
        """Write these exact bytes to every open event stream (replaying captures)."""
        self._broadcast(data)

    # ------------------------------------------------------------------ XML helpers
    def _ns(self, ns: str | None = None) -> str:
        value = self.namespace if ns is None else NAMESPACES.get(ns, ns)
        return f' xmlns="{value}"' if value else ""

    def _doc(self, root: str, body: str, version: str = "2.0", ns: str | None = None) -> bytes:
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} version="{version}"{self._ns(ns)}>\n'
                f"{body}</{root}>\n").encode()

    def _status(self, code: int, text: str, sub: str, url: str) -> Response:
        body = self._doc("ResponseStatus", f"<requestURL>{url}</requestURL>\n<statusCode>{code}</statusCode>\n"
                         f"<statusString>{text}</statusString>\n<subStatusCode>{sub}</subStatusCode>\n", "1.0")
        return Response(200, body, 'application/xml; charset="UTF-8"')

    def _xml(self, body: bytes, status: int = 200) -> Response:
        return Response(status, body, 'application/xml; charset="UTF-8"')

    def _fmt_time(self, dt: datetime) -> str:
        if self.time_mode == "utc":
            return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # device-local wall clock with a Z (§1.11)

    # ------------------------------------------------------------------ event stream
    def _alert(self, event: str, channel: int, active: bool, count: int) -> bytes:
        etype, desc = EVENT_TYPES.get(event, (event, event))
        nl = "\r\n" if self.stream_mode == "camera" else "\n"
        now = self.now()
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S") if self.naive_time else now.isoformat(timespec="seconds")
        if self.kind == "nvr" and channel:
            if self.nvr_channel_style == "dyn":
                chan = f"<dynChannelID>{channel}</dynChannelID>"
            elif self.nvr_channel_style == "plus32":
                chan = f"<channelID>{32 + channel}</channelID>"
            else:
                chan = f"<channelID>{channel}</channelID>"
        elif self.kind == "dvr" and channel:
            chan = f"<dynChannelID>{channel}</dynChannelID>"
        else:
            chan = f"<channelID>{channel}</channelID>"
        lines = [f'<EventNotificationAlert version="2.0"{self._ns()}>', "<ipAddress>127.0.0.1</ipAddress>",
                 f"<portNo>{self.port}</portNo>", "<protocol>HTTP</protocol>",
                 "<macAddress>c0:6d:ed:02:d3:d9</macAddress>", chan, f"<dateTime>{stamp}</dateTime>",
                 f"<activePostCount>{count}</activePostCount>", f"<eventType>{etype}</eventType>",
                 f"<eventState>{'active' if active else 'inactive'}</eventState>",
                 f"<eventDescription>{desc}</eventDescription>"]
        if event == "io":
            lines.append(f"<inputIOPortID>{channel}</inputIOPortID>")
        lines.append("</EventNotificationAlert>")
        return self._frame(nl.join(lines).encode() + nl.encode())

    def _heartbeat(self) -> bytes:
        return self._alert("video_loss", 1 if self.kind == "camera" else 0, False, 0)

    def _frame(self, xml: bytes) -> bytes:
        nl = b"\r\n" if self.stream_mode == "camera" else b"\n"
        b = b"boundary"
        head = (b"--" + b + nl + b'Content-Type: application/xml; charset="UTF-8"' + nl +
                b"Content-Length: %d" % len(xml) + nl + nl)
        tail = nl
        if self.duplicate_boundary:
            tail += b"--" + b + nl
        return head + xml + tail

    def _jpeg_part(self, channel: int) -> bytes:
        nl = b"\r\n" if self.stream_mode == "camera" else b"\n"
        jpeg = self.pictures.get(channel) or picture_bytes(scene(channel))
        return (b"--boundary" + nl + b"Content-Type: image/jpeg" + nl + b"Content-Length: %d" % len(jpeg) + nl + nl
                + jpeg + nl)

    def _broadcast(self, data: bytes) -> None:
        for q in list(self._streams):
            if q.qsize() < 10000:
                q.put_nowait(data)

    async def _alert_stream(self, writer: asyncio.StreamWriter) -> None:
        q: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._streams.add(q)
        self.streams_opened += 1
        try:
            pending: list[bytes] = [self._heartbeat()]
            last_hb = time.monotonic()
            last_repeat = time.monotonic()
            while True:
                # collect what is due
                with contextlib.suppress(TimeoutError):
                    item = await asyncio.wait_for(q.get(), timeout=min(self.repeat_interval, 0.5))
                    if item is not None:
                        pending.append(item)
                    while not q.empty():
                        item = q.get_nowait()
                        if item is not None:
                            pending.append(item)
                now = time.monotonic()
                if now - last_repeat >= self.repeat_interval:
                    last_repeat = now
                    for (event, ch), count in list(self.active.items()):
                        self.active[(event, ch)] = count + 1
                        pending.append(self._alert(event, ch, True, count + 1))
                if self.heartbeat and now - last_hb >= self.heartbeat and not self.active:
                    last_hb = now
                    pending.append(self._heartbeat())
                if not pending:
                    continue
                if self.frozen:
                    await self.wait_unfrozen()
                for i in range(0, len(pending), self.parts_per_write):
                    writer.write(b"".join(pending[i:i + self.parts_per_write]))
                    await writer.drain()
                pending = []
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(q)

    # ------------------------------------------------------------------ request handling
    # The ISAPI routing table, on the path after /ISAPI in lower case: documents answered as they are,
    # then routes that read the request, then (prefix, suffix) patterns for paths with an id inside.
    XML_ROUTES: ClassVar[dict[str, str]] = {
        "/system/deviceinfo": "_device_info", "/system/status": "_device_status", "/system/time": "_time",
        "/system/capabilities": "_capabilities", "/contentmgmt/storage": "_storage",
        "/contentmgmt/inputproxy/channels": "_proxy_channels",
        "/contentmgmt/inputproxy/channels/status": "_proxy_status", "/event/triggers": "_triggers",
        "/security/adminaccesses": "_admin_accesses",
    }
    ROUTES: ClassVar[dict[str, str]] = {
        "/system/video/inputs/channels": "_route_video_inputs",
        "/event/notification/alertstream": "_route_alert_stream",
        "/contentmgmt/search": "_route_search",
        "/contentmgmt/download": "_route_download",
    }
    PATTERNS: ClassVar[list[tuple[str, str, str]]] = [
        ("/streaming/channels/", "/picture", "_route_picture"),
        ("/contentmgmt/streamingproxy/channels/", "/picture", "_route_proxy_picture"),
        ("/system/io/outputs/", "", "_io"),
        ("/system/video/inputs/channels/", "/motiondetection", "_route_motion_detection"),
    ]

    async def handle(self, req: Request) -> Response:
        path = req.path
        if self.psia:
            if path.startswith("/ISAPI/"):
                return Response(404, b"Document Error: Not Found", "text/html")
            path = "/ISAPI" + path
        elif not path.startswith("/ISAPI/"):
            return Response(404, b"Document Error: Not Found", "text/html")
        p = path[len("/ISAPI"):]
        pl = p.lower()
        document = self.XML_ROUTES.get(pl)
        if document is not None:
            return self._xml(getattr(self, document)())
        route = self.ROUTES.get(pl) or next(
            (name for prefix, suffix, name in self.PATTERNS if pl.startswith(prefix) and pl.endswith(suffix)), None)
        if route is None:
            return Response(404, b"Document Error: Not Found", "text/html")
        answer = getattr(self, route)(req, p, path)
        return await answer if inspect.isawaitable(answer) else answer

    # each route gets the request, the path after /ISAPI (as sent) and the whole path
    def _route_video_inputs(self, req: Request, p: str, url: str) -> Response:
        if self.kind == "nvr":
            return Response(403, b"", "text/html")  # as on DS-7608NXI-I2
        return self._xml(self._video_inputs())

    def _route_alert_stream(self, req: Request, p: str, url: str) -> Response:
        return Response(200, content_type=self._stream_content_type(), stream=self._alert_stream,
                        version="HTTP/1.0" if self.http10 else "HTTP/1.1", headers={"MIME-Version": "1.0"})

    async def _route_search(self, req: Request, p: str, url: str) -> Response:
        if req.method not in ("POST", "GET"):
            return Response(405, b"")
        return await self._search(req.body)

    async def _route_download(self, req: Request, p: str, url: str) -> Response:
        if req.method not in ("POST", "GET"):
            return Response(405, b"")
        return await self._download(req, url)

    def _route_picture(self, req: Request, p: str, url: str) -> Response:
        return self._picture(p.split("/")[3], proxy=False, url=url)

    def _route_proxy_picture(self, req: Request, p: str, url: str) -> Response:
        return self._picture(p.split("/")[4], proxy=True, url=url)

    def _route_motion_detection(self, req: Request, p: str, url: str) -> Response:
        return self._motion_detection(req, p.split("/")[5], url)

    def _stream_content_type(self) -> str:
        if self.stream_mode == "legacy-nvr":
            return "multipart/mixed; boundary=MIME_boundary_hik"  # the body uses --boundary (old NVRs)
        if self.http10:
            return "multipart/mixed;boundary=boundary"
        return "multipart/mixed; boundary=boundary"

    def _device_info(self) -> bytes:
        dtype = {"camera": "IPCamera", "nvr": "NVR", "dvr": "DVR"}[self.kind]
        name = {"camera": "yard", "nvr": "Network Video Recorder", "dvr": "Embedded Net DVR"}[self.kind]
        return self._doc("DeviceInfo", f"<deviceName>{name}</deviceName>\n"
                         "<deviceID>6aff4000-1f90-00b0-0000-000c00000000</deviceID>\n"
                         f"<deviceDescription>{dtype}</deviceDescription>\n<model>{self.model}</model>\n"
                         f"<serialNumber>{self.serial}</serialNumber>\n<macAddress>a6:63:9e:f8:01:09</macAddress>\n"
                         f"<firmwareVersion>{self.firmware}</firmwareVersion>\n"
                         "<firmwareReleasedDate>build 240826</firmwareReleasedDate>\n"
                         f"<deviceType>{dtype}</deviceType>\n<telecontrolID>88</telecontrolID>\n"
                         "<manufacturer>hikvision</manufacturer>\n",
                         "1.0" if self.kind == "dvr" else "2.0")

    def _device_status(self) -> bytes:
        now = self.now()
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S") if self.naive_time else now.isoformat(timespec="seconds")
        return self._doc("DeviceStatus", f"<currentDeviceTime>{stamp}</currentDeviceTime>\n"
                         "<deviceUpTime>2530</deviceUpTime>\n<CPUList><CPU><cpuDescription>2786.91</cpuDescription>"
                         "<cpuUtilization>3</cpuUtilization></CPU></CPUList>\n<MemoryList><Memory>"
                         "<memoryDescription>DDR Memory</memoryDescription><memoryUsage> 244.175781</memoryUsage>"
                         "<memoryAvailable> 255.894531</memoryAvailable></Memory></MemoryList>\n", "1.0")

    def _time(self) -> bytes:
        now = self.now()
        return self._doc("Time", f"<timeMode>NTP</timeMode>\n<localTime>{now.isoformat(timespec='seconds')}"
                         "</localTime>\n<timeZone>CST-7:00:00</timeZone>\n")

    def _capabilities(self) -> bytes:
        ports = self.nchannels if self.kind != "nvr" else 0
        proxies = self.nchannels if self.kind == "nvr" else 2 if self.kind == "dvr" else 0
        return self._doc("DeviceCap", f"<SysCap><VideoCap><videoInputPortNums>{ports}</videoInputPortNums>"
                         f"</VideoCap><IOCap><IOInputPortNums>1</IOInputPortNums><IOOutputPortNums>{self.outputs}"
                         f"</IOOutputPortNums></IOCap></SysCap>\n<RacmCap><inputProxyNums>{proxies}</inputProxyNums>"
                         "</RacmCap>\n")

    def _storage(self) -> bytes:
        if not self.disks:
            return (f'<?xml version="1.0" encoding="UTF-8"?>\n<hddList version="1.0"'
                    f'{self._ns("ver10")} size="8"/>\n').encode()
        hdds = "".join(
            f"<hdd>\n<id>{d.id}</id>\n<hddName>hdd{d.id}</hddName>\n<hddPath></hddPath>\n<hddType>SATA</hddType>\n"
            f"<status>{d.status}</status>\n<capacity>{d.capacity}</capacity>\n<freeSpace>{d.free}</freeSpace>\n"
            "<property>RW</property>\n<group>1</group>\n</hdd>\n" for d in self.disks.values())
        return self._doc("storage", f"<hddList>\n{hdds}</hddList>\n<nasList>\n</nasList>\n"
                         '<workMode opt="group,quota">quota</workMode>\n')

    def _video_inputs(self) -> bytes:
        chans = ""
        if self.kind == "dvr":
            for ch in range(1, self.nchannels + 1):
                res = "2560*1440(4MP)P30" if self.online.get(ch, True) else "NO VIDEO"
                chans += (f"<VideoInputChannel>\n<id>{ch}</id>\n<inputPort>{ch}</inputPort>\n"
                          f"<videoInputEnabled>true</videoInputEnabled>\n<name>Camera {ch:02d}</name>\n"
                          f"<videoFormat>PAL</videoFormat>\n<resDesc>{res}</resDesc>\n</VideoInputChannel>\n")
        else:
            chans = ("<VideoInputChannel>\n<id>1</id>\n<inputPort>1</inputPort>\n<name>Camera 01</name>\n"
                     "</VideoInputChannel>\n")
        return self._doc("VideoInputChannelList", chans)

    def _proxy_channels(self) -> bytes:
        if self.kind != "nvr":
            return (f'<?xml version="1.0" encoding="UTF-8"?>\n<InputProxyChannelList version="1.0"{self._ns()} '
                    f'size="2">\n</InputProxyChannelList>\n').encode()
        items = ""
        for ch in range(1, self.nchannels + 1):
            items += (f"<InputProxyChannel>\n<id>{ch}</id>\n<name>IPCamera {ch:02d}</name>\n"
                      "<sourceInputPortDescriptor>\n<proxyProtocol>HIKVISION</proxyProtocol>\n"
                      f"<addressingFormatType>ipaddress</addressingFormatType>\n<ipAddress>192.168.254.{ch + 1}"
                      "</ipAddress>\n<managePortNo>8000</managePortNo>\n<srcInputPort>1</srcInputPort>\n"
                      "<userName>admin</userName>\n<connMode>plugplay</connMode>\n<streamType>auto</streamType>\n"
                      "<model>DS-2CD2143G2-I</model>\n</sourceInputPortDescriptor>\n"
                      f"<enableAnr>false</enableAnr>\n<devIndex>{ch:08X}</devIndex>\n</InputProxyChannel>\n")
        return self._doc("InputProxyChannelList", items)

    def _proxy_status(self) -> bytes:
        items = ""
        if self.kind == "nvr":
            for ch in range(1, self.nchannels + 1):
                on = "true" if self.online.get(ch, True) else "false"
                items += (f"<InputProxyChannelStatus>\n<id>{ch}</id>\n<sourceInputPortDescriptor>\n"
                          f"<proxyProtocol>HIKVISION</proxyProtocol>\n<ipAddress>192.168.254.{ch + 1}</ipAddress>\n"
                          f"<online>{on}</online>\n</sourceInputPortDescriptor>\n"
                          f"<chanDetectResult>{'connect' if on == 'true' else 'offline'}</chanDetectResult>\n"
                          "</InputProxyChannelStatus>\n")
        return self._doc("InputProxyChannelStatusList", items)

    def _picture(self, ident: str, proxy: bool, url: str) -> Response:
        if not ident.isdigit():
            return Response(404, b"Document Error: Not Found", "text/html")
        ch = int(ident) // 100
        if self.kind == "camera" and int(ident) in (1, 2):
            ch = 1  # cameras take the short stream ids too (pyHik asks channels/1/picture)
        if ch < 1 or ch > max(self.nchannels, 1):
            return self._status(4, "Invalid Operation", "invalidOperation", url)
        if ch in self.picture_errors:
            code = self.picture_errors[ch]
            if code == 3:
                return self._status(3, "Device Error", "deviceError", url)
            return self._status(6, "Invalid XML Content", "badXmlContent", url)
        if self.kind == "nvr" and not proxy and self.nvr_picture_fallback:
            return self._status(6, "Invalid XML Content", "badXmlContent", url)
        if self.is_recorder and not self.online.get(ch, True):
            return self._status(3, "Device Error", "deviceError", url)
        if ch not in self.pictures:
            self.pictures[ch] = picture_bytes(scene(ch))
        return Response(200, self.pictures[ch], "image/jpeg")

    def _motion_detection(self, req: Request, ident: str, url: str) -> Response:
        if self.kind == "nvr":
            return Response(403, b"", "text/html")  # like System/Video/inputs/channels on DS-7608NXI-I2
        if not ident.isdigit() or int(ident) not in self.motion_enabled:
            return self._status(4, "Invalid Operation", "invalidID", url)
        ch = int(ident)
        if req.method == "PUT":
            try:
                root = X.parse(req.body)
            except Exception:
                return self._status(6, "Invalid XML Content", "badXmlContent", url)
            enabled = (X.text(root, "enabled") or "").lower()
            if enabled not in ("true", "false"):
                return self._status(6, "Invalid XML Content", "badXmlContent", url)
            self.motion_enabled[ch] = enabled == "true"
            return self._status(1, "OK", "ok", url)
        if req.method != "GET":
            return Response(405, b"")
        grid = "fffffc" * 18  # 22 x 18 cells, all armed
        on = "true" if self.motion_enabled[ch] else "false"
        return self._xml(self._doc("MotionDetection", f"<enabled>{on}</enabled>\n<enableHighlight>false"
                                   "</enableHighlight>\n<samplingInterval>2</samplingInterval>\n<startTriggerTime>"
                                   "500</startTriggerTime>\n<endTriggerTime>500</endTriggerTime>\n<regionType>grid"
                                   "</regionType>\n<Grid>\n<rowGranularity>18</rowGranularity>\n<columnGranularity>"
                                   "22</columnGranularity>\n</Grid>\n"
                                   f"<MotionDetectionLayout version=\"2.0\"{self._ns()}>\n"
                                   "<sensitivityLevel>60</sensitivityLevel>\n<layout>\n"
                                   f"<gridMap>{grid}</gridMap>\n</layout>\n</MotionDetectionLayout>\n"))

    def _admin_accesses(self) -> bytes:
        items = "".join(f"<AdminAccessProtocol>\n<id>{i}</id>\n<enabled>true</enabled>\n<protocol>{proto}</protocol>\n"
                        f"<portNo>{port}</portNo>\n</AdminAccessProtocol>\n"
                        for i, (proto, port) in enumerate((("HTTP", self.port), ("HTTPS", 443), ("DEV_MANAGE", 8000),
                                                           ("RTSP", self.rtsp_port)), 1))
        return self._doc("AdminAccessProtocolList", items)

    def _io(self, req: Request, p: str, url: str) -> Response:
        parts = p.strip("/").split("/")  # System IO outputs <n> trigger|status
        if len(parts) != 5 or not parts[3].isdigit():
            return Response(404, b"")
        n = int(parts[3])
        if n not in self.output_state:
            return self._status(4, "Invalid Operation", "invalidID", url)
        if parts[4] == "trigger" and req.method == "PUT":
            try:
                root = X.parse(req.body)
            except Exception:
                return self._status(6, "Invalid XML Content", "badXmlContent", url)
            state = (X.text(root, "outputState") or "").lower()
            if state not in ("high", "low"):
                return self._status(6, "Invalid XML Content", "badXmlContent", url)
            self.output_state[n] = state == "high"
            return self._xml(self._doc("ResponseStatus", f"<requestURL>{url}</requestURL>\n<statusCode>1</statusCode>"
                                       "\n<statusString>OK</statusString>\n<subStatusCode>ok</subStatusCode>\n",
                                       ns="isapi"))
        if parts[4] == "status":
            st = "active" if self.output_state[n] else "inactive"
            return self._xml(self._doc("IOPortStatus", f"<ioPortID>{n}</ioPortID>\n<ioPortType>output</ioPortType>\n"
                                       f"<ioState>{st}</ioState>\n", ns="isapi"))
        return Response(405, b"")

    def _segments(self, channel: int) -> list[tuple[datetime, datetime]]:
        span = self.recordings.get(channel)
        if not span:
            return []
        end = self.now()
        # recorders overwrite whole files: the oldest footage starts on a file boundary (the hour),
        # so "kept N days" is N days and part of an hour, never a hair under N
        start = (end - timedelta(seconds=span)).replace(minute=0, second=0, microsecond=0)
        segs = []
        t = start
        while t < end:
            nxt = min(t + timedelta(hours=6), end)
            segs.append((t, nxt))
            t = nxt
        return segs

    async def _search(self, body: bytes) -> Response:
        try:
            root = X.parse(body)
        except Exception:
            return self._status(6, "Invalid XML Content", "badXmlContent", "/ISAPI/ContentMgmt/search")
        track = X.as_int(X.deep_text(root, "trackID"), 101) or 101
        start = X.parse_datetime(X.deep_text(root, "startTime"))
        end = X.parse_datetime(X.deep_text(root, "endTime"))
        maxr = min(40, X.as_int(X.text(root, "maxResults"), 40) or 40)
        pos = X.as_int(X.text(root, "searchResultPosition") or X.text(root, "searchResultPostion"), 0) or 0
        sid = X.text(root, "searchID", default="") or ""
        segs: list[tuple[datetime, datetime, str, int]] = []
        synthetic = self._segments(track // 100)
        if track // 100 in self.footage.spans:
            # footage files, and before the first of them the synthetic recordings, if any (a
            # recorder that keeps weeks, of which only the newest minutes are real files: the demo)
            first = self.footage.spans[track // 100][0][0].replace(tzinfo=self.tz)
            synthetic = [(s, min(e, first)) for s, e in synthetic if s < first]
            for n, s, e in self.footage.files(track // 100):
                if (start is not None and e <= self._wall(start.replace(tzinfo=self.tz))) or \
                        (end is not None and s >= self._wall(end.replace(tzinfo=self.tz))):
                    continue
                ff = await asyncio.to_thread(self.footage.get, track // 100, n, s, e)
                segs.append((s.replace(tzinfo=self.tz), e.replace(tzinfo=self.tz), ff.name, ff.size))
        for s, e in synthetic:
            sw, ew = self._wall(s), self._wall(e)
            if start is not None and ew < start.replace(tzinfo=None):
                continue
            if end is not None and sw > end.replace(tzinfo=None):
                continue
            segs.append((s, e, f"0200000{track}", 115665012))
        segs.sort(key=lambda seg: seg[0])
        page = segs[pos:pos + maxr]
        status = "NO MATCHES" if not segs else "MORE" if pos + maxr < len(segs) else "OK"
        items = ""
        for s, e, name, size in page:
            st, et = self._fmt_time(s), self._fmt_time(e)
            items += (f"<searchMatchItem>\n<sourceID>{{0000000000-0000-0000-0000-000000000000}}</sourceID>\n"
                      f"<trackID>{track}</trackID>\n<timeSpan>\n<startTime>{st}</startTime>\n<endTime>{et}</endTime>\n"
                      "</timeSpan>\n<mediaSegmentDescriptor>\n<contentType>video</contentType>\n<codecType>H.264-BP"
                      "</codecType>\n<playbackURI>rtsp://127.0.0.1/Streaming/tracks/"
                      f"{track}/?starttime={st.replace('-', '').replace(':', '')}&amp;endtime="
                      f"{et.replace('-', '').replace(':', '')}&amp;name={name}&amp;size={size}"
                      "</playbackURI>\n</mediaSegmentDescriptor>\n<metadataMatches>\n<metadataDescriptor>"
                      "recordType.meta.hikvision.com/timing</metadataDescriptor>\n</metadataMatches>\n"
                      "</searchMatchItem>\n")
        doc = self._doc("CMSearchResult", f"<searchID>{sid}</searchID>\n<responseStatus>true</responseStatus>\n"
                        f"<responseStatusStrg>{status}</responseStatusStrg>\n<numOfMatches>{len(page)}</numOfMatches>\n"
                        f"<matchList>\n{items}</matchList>\n", ns="psia")
        return self._xml(doc)

    async def _download(self, req: Request, url: str) -> Response:
        uri = req.query.get("playbackURI") or ""
        if req.body:
            try:
                uri = X.deep_text(X.parse(req.body), "playbackURI") or ""
            except Exception:
                return self._status(6, "Invalid XML Content", "badXmlContent", url)
        query = {k: v[0] for k, v in parse_qs(urlsplit(uri.strip()).query).items()}
        ff = self.footage.by_name(query.get("name", ""))
        if ff is None:
            return self._status(4, "Invalid Operation", "invalidOperation", url)  # unknown file
        begin = IMKH_SIZE
        clip_start = X.parse_datetime(query.get("starttime", ""))
        if clip_start is not None:
            offset = (self._wall(clip_start.replace(tzinfo=self.tz) if clip_start.tzinfo is None else clip_start)
                      - ff.start).total_seconds()
            for t, off in ff.keyframes:
                if t <= offset:
                    begin = off
        total = IMKH_SIZE + ff.size - begin
        status, skip, headers = byte_range(req, total, self.range_support)
        drop = self.download_drops.pop(0) if self.download_drops else None
        self.downloads += 1

        async def send(writer: asyncio.StreamWriter) -> None:
            await self._send_file(writer, ff, begin, skip, drop)

        return Response(status, content_type="application/octet-stream", headers=headers, stream=send)

    async def _send_file(self, writer: asyncio.StreamWriter, ff: FootageFile, begin: int, skip: int,
                         drop: int | None) -> None:
        """IMKH header + file[begin:], from byte ``skip`` of that; breaks after ``drop`` bytes."""
        sent = 0
        with ff.path.open("rb") as f:
            head = f.read(IMKH_SIZE)
            pieces: list[tuple[int, int]] = [(0, IMKH_SIZE), (begin, ff.size)]
            pos = 0
            for a, b in pieces:
                n = b - a
                if pos + n <= skip:
                    pos += n
                    continue
                start = a + max(0, skip - pos)
                pos += n
                f.seek(start)
                remaining = b - start
                while remaining > 0:
                    chunk = head[start:b] if a == 0 else f.read(min(65536, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    if not await self.send_download_chunk(writer, chunk, sent, drop):
                        return
                    sent += len(chunk)
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    def _wall(self, dt: datetime) -> datetime:
        if self.time_mode == "utc":
            return dt.astimezone(UTC).replace(tzinfo=None)
        return dt.replace(tzinfo=None)

    def _triggers(self) -> bytes:
        items = ""
        for ch in range(1, max(self.nchannels, 1) + 1):
            items += (f'<EventTrigger version="2.0"{self._ns("isapi")}>\n<id>VMD-{ch}</id>\n'
                      "<eventType>VMD</eventType>\n"
                      f"<videoInputChannelID>{ch}</videoInputChannelID>\n<EventTriggerNotificationList>\n"
                      "<EventTriggerNotification><id>center</id><notificationMethod>center</notificationMethod>"
                      "</EventTriggerNotification>\n</EventTriggerNotificationList>\n</EventTrigger>\n")
        return self._doc("EventTriggerList", items)


async def _run(args: argparse.Namespace) -> None:
    why = None if args.no_rtsp else rtsp_unavailable()
    sim = HikvisionSimulator(args.kind, args.channels, username=args.username, password=args.password,
                             port=args.port, auth=args.auth, namespace=args.namespace,
                             rtsp=not args.no_rtsp and why is None)
    await sim.start()
    for ch in range(1, max(sim.nchannels, 1) + 1):
        if args.recordings_days:
            sim.set_recordings(ch, args.recordings_days)
    print(f"Hikvision {args.kind} simulator ({sim.model}) on http://127.0.0.1:{sim.port} "
          f"user {args.username!r}; Ctrl-C stops it", flush=True)
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
                ch = 1 + n % max(sim.nchannels, 1)
                sim.trigger("motion", ch, True)
                await asyncio.sleep(3)
                sim.trigger("motion", ch, False)
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m plugins.hikvision.simulator",
                                 description="Simulated Hikvision ISAPI camera / NVR / DVR on 127.0.0.1")
    ap.add_argument("--kind", choices=["camera", "nvr", "dvr"], default="camera")
    ap.add_argument("--channels", type=int, default=None, help="channels (recorders; default 8 NVR, 4 DVR)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--username", default="admin")
    ap.add_argument("--password", default="admin")
    ap.add_argument("--auth", choices=["digest", "basic", "both", "none"], default="digest")
    ap.add_argument("--namespace", choices=list(NAMESPACES), default=None)
    ap.add_argument("--recordings-days", type=float, default=12.0, help="footage kept per channel (days)")
    ap.add_argument("--motion-every", type=float, default=0.0, help="seconds between simulated motion events")
    ap.add_argument("--no-rtsp", action="store_true", help="do not serve the RTSP stream (GStreamer)")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
