"""An ONVIF Profile S camera simulator that speaks real SOAP on loopback (aiohttp).

It accepts what onvif-zeep-async actually sends (SOAP 1.2, WS-Security UsernameToken with
PasswordDigest, ``Created`` ending in ``Z`` or ``+00:00``), checks the digest and the
``Created`` time against its own clock (so clock-skew compensation is really exercised), and
answers like the captures in docs/reference/protocols.md §3:

* device service: GetSystemDateAndTime, GetCapabilities, GetServices, GetServiceCapabilities
  (all without auth, as Dahua/Reolink do), GetDeviceInformation, GetScopes, GetHostname,
  GetNetworkInterfaces (mandatory in Profile S; Home Assistant reads the MAC from it);
* media service: GetProfiles, GetStreamUri, GetSnapshotUri, GetVideoSources, GetServiceCapabilities;
* any other action: a SOAP 1.2 ``env:Receiver`` / ``ter:ActionNotSupported`` fault with HTTP 500
  (the SOAP 1.2 HTTP binding: Receiver faults are 500, Sender faults such as a bad argument 400);
  ``unsupported={"GetServices", ...}`` makes the simulated device lack implemented ones too;
* events service: CreatePullPointSubscription, GetEventProperties; per subscription:
  PullMessages (long poll honoured), Renew, Unsubscribe, SetSynchronizationPoint;
* ``GET /onvif/snapshot?Profile_1``: a JPEG behind HTTP Digest (or Basic) auth;
* with ``rtsp=True``, the URI ``GetStreamUri`` hands out is served over RTSP (GStreamer, same user
  and password), so ``ffprobe`` on it plays H.264;
* a WS-Discovery responder (UDP, unicast on loopback) answering Probe with ProbeMatches.

Scenario controls: :meth:`OnvifSimulator.trigger_motion`, :meth:`trigger_tamper`,
:meth:`trigger_video_loss`, :meth:`reboot` (drops subscriptions and refuses connections for a
while), ``clock_skew``, ``override()`` (answer an operation with arbitrary bytes), and counters
in ``stats``.

Python::

    sim = OnvifSimulator(username="admin", password="pw", port=0)
    await sim.start()            # sim.port is the bound port
    sim.trigger_motion(True)
    await sim.reboot(2.0)
    await sim.stop()

Command line (an installer can point a hub config at it)::

    python -m plugins.generic_onvif.simulator --port 8080 --password secret --motion-every 20
    anninh simulate onvif --port 8080 --password secret
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import logging
import secrets
import tempfile
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from aiohttp import web

from hub.camera.simfootage import FootageStore, VideoFormat
from hub.camera.simrtsp import RtspServing, rtsp_unavailable
from hub.camera.simserver import parse_auth_params

from .simrecorder import (
    LOCAL_OFFSET,
    REPLAY_PATH,
    REPLAY_ROUTES,
    SEARCH_PATH,
    SEARCH_ROUTES,
    ProfileG,
    ProfileGServices,
    Recordings,
    ReplayServer,
    write_units,
)
from .soapxml import (
    NS,
    SoapParseError,
    body_element,
    child,
    escape,
    format_datetime,
    local,
    parse_datetime,
    parse_duration,
    parse_termination,
    parse_xml,
    path,
    text,
)

log = logging.getLogger("anninh.sim.onvif")

SOAP_CT = "application/soap+xml; charset=utf-8"
DIGEST_TYPE_SUFFIX = "#PasswordDigest"
AUTHLESS_DEVICE_OPS = frozenset({"GetSystemDateAndTime", "GetCapabilities", "GetServices",
                                 "GetServiceCapabilities"})
_XMLNS = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items() if k not in ("wsd", "wsa", "dn"))

DEVICE_PATH = "/onvif/device_service"
MEDIA_PATH = "/onvif/media_service"
EVENTS_PATH = "/onvif/event_service"
SNAPSHOT_PATH = "/onvif/snapshot"

# The routing table: each SOAP service's actions (the body element's local name) and the method
# answering each. An action missing here (or named in ``unsupported=``) gets ter:ActionNotSupported.
SOAP_ROUTES: dict[str, dict[str, str]] = {
    "device": {
        "GetSystemDateAndTime": "_op_time", "GetCapabilities": "_op_capabilities",
        "GetServices": "_op_services", "GetServiceCapabilities": "_op_device_service_caps",
        "GetDeviceInformation": "_op_info", "GetScopes": "_op_scopes",
        "GetHostname": "_op_hostname", "GetNetworkInterfaces": "_op_network_interfaces",
    },
    "media": {
        "GetProfiles": "_op_profiles", "GetStreamUri": "_op_stream_uri", "GetSnapshotUri": "_op_snapshot_uri",
        "GetVideoSources": "_op_video_sources", "GetServiceCapabilities": "_op_media_caps",
    },
    "events": {
        "CreatePullPointSubscription": "_op_create_pullpoint", "GetEventProperties": "_op_event_props",
        "GetServiceCapabilities": "_op_event_caps",
    },
    "subscription": {
        "PullMessages": "_op_pull", "Renew": "_op_renew", "Unsubscribe": "_op_unsubscribe",
        "SetSynchronizationPoint": "_op_sync",
    },
    "search": SEARCH_ROUTES,  # Profile G (simrecorder.py), with recordings=True
    "replay": REPLAY_ROUTES,
}

# motion_topics= kinds: the topic each publishes, its Source items and the name of its Data flag
MOTION_TOPICS: dict[str, tuple[str, list[tuple[str, str]], str]] = {
    "cell": ("tns1:RuleEngine/CellMotionDetector/Motion",
             [("VideoSourceConfigurationToken", "VideoSourceToken"),
              ("VideoAnalyticsConfigurationToken", "VideoAnalyticsToken"), ("Rule", "MyMotionDetectorRule")],
             "IsMotion"),
    "alarm": ("tns1:VideoSource/MotionAlarm", [("Source", "VideoSource_1")], "State"),
    "hik": ("tns1:VideoAnalytics/tnshik:MotionAlarm", [("Source", "VideoSource_1")], "State"),
}


def envelope(body: str, header: str = "") -> bytes:
    head = f"<env:Header>{header}</env:Header>" if header else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope {_XMLNS}>{head}'
            f"<env:Body>{body}</env:Body></env:Envelope>").encode()


def fault_envelope(subcode: str, reason: str, code: str = "env:Sender", inner: str | None = None) -> bytes:
    sub = f"<env:Subcode><env:Value>{inner}</env:Value></env:Subcode>" if inner else ""
    return envelope(
        f"<env:Fault><env:Code><env:Value>{code}</env:Value><env:Subcode><env:Value>{subcode}</env:Value>"
        f"{sub}</env:Subcode></env:Code><env:Reason><env:Text xml:lang=\"en\">{escape(reason)}</env:Text>"
        f"</env:Reason></env:Fault>")


def default_picture(width: int = 640, height: int = 360, label: str = "CAM 01") -> np.ndarray:
    """A plausible street scene at dusk: sky gradient, houses, a road, a street lamp, an overlay."""
    img = np.zeros((height, width, 3), np.uint8)
    horizon = int(height * 0.55)
    for y in range(horizon):
        t = y / max(1, horizon)
        img[y, :] = (int(170 - 60 * t), int(140 - 30 * t), int(90 + 40 * t))
    img[horizon:, :] = (70, 80, 85)
    rng = np.random.default_rng(7)
    x = 10
    while x < width - 40:
        w = int(rng.integers(50, 110))
        h = int(rng.integers(60, 140))
        colour = tuple(int(c) for c in rng.integers(90, 200, 3))
        cv2.rectangle(img, (x, horizon - h), (x + w, horizon), colour, -1)
        for wy in range(horizon - h + 12, horizon - 15, 28):
            for wx in range(x + 8, x + w - 16, 22):
                cv2.rectangle(img, (wx, wy), (wx + 10, wy + 12), (60, 200, 230), -1)
        x += w + int(rng.integers(5, 25))
    road = np.array([[0, height], [width, height], [int(width * 0.62), horizon], [int(width * 0.38), horizon]])
    cv2.fillPoly(img, [road], (50, 50, 52))
    cv2.line(img, (width // 2, height), (width // 2, horizon), (200, 200, 200), 2)
    cv2.line(img, (int(width * 0.85), height - 20), (int(width * 0.85), horizon - 80), (40, 40, 40), 4)
    cv2.circle(img, (int(width * 0.85) - 15, horizon - 80), 8, (180, 240, 255), -1)
    noise = rng.normal(0, 6, img.shape).astype(np.int16)
    img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    cv2.putText(img, label, (12, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    cv2.putText(img, datetime.now().strftime("%Y-%m-%d %H:%M:%S"), (width - 250, 28),
                cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return img


def encode_jpeg(img: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf)


@dataclass
class Subscription:
    sid: str
    termination: datetime
    queue: deque[str] = field(default_factory=lambda: deque(maxlen=1000))
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Override:
    body: bytes
    status: int = 200
    content_type: str = SOAP_CT
    times: int | None = None  # None: until cleared


@dataclass
class Profile:
    token: str
    name: str
    width: int
    height: int
    encoding: str = "H264"
    stream_path: str = "/Streaming/Channels/101"


class OnvifSimulator(ProfileGServices, RtspServing):
    """A simulated ONVIF camera on loopback. See the module docstring."""

    def __init__(self, *, username: str = "admin", password: str = "admin", host: str = "127.0.0.1",
                 port: int = 0, clock_skew: float = 0.0, time_tolerance: float = 300.0,
                 manufacturer: str = "HIKVISION", model: str = "DS-2CD2143G2-I",
                 firmware: str = "V5.7.3 build 220112", serial: str = "DS-2CD2143G2-I20220315AAWRJ12345678",
                 hardware_id: str = "88", name: str = "Cong UBND phuong", location: str = "khanh-binh",
                 auth_fault_status: int = 400, snapshot_auth: str = "digest", rtsp_port: int = 554,
                 rtsp_url: str | None = None, max_termination: float | None = None,
                 max_subscriptions: int = 10, motion_topics: tuple[str, ...] = ("cell", "alarm"),
                 tamper_topic: str = "scene", upper_case_bools: bool = False,
                 authless_time: bool = True, local_time_only: bool = False,
                 discovery_port: int | None = None, max_pull_wait: float = 60.0,
                 unsupported: frozenset[str] | set[str] = frozenset(), rtsp: bool = False,
                 recordings: bool = False, footage_dir: str | Path | None = None, segment_seconds: float = 60.0,
                 video: VideoFormat | None = None) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("simulator bound to %s: it answers anyone who can reach that address", host)
        self.username = username
        self.password = password
        self.host = host
        self.port = port
        self.clock_skew = float(clock_skew)
        """Seconds the simulated camera's clock is ahead of real time (negative: behind)."""
        self.time_tolerance = time_tolerance
        self.info = {"Manufacturer": manufacturer, "Model": model, "FirmwareVersion": firmware,
                     "SerialNumber": serial, "HardwareId": hardware_id}
        self.name = name
        self.location = location
        self.auth_fault_status = auth_fault_status
        self.snapshot_auth = snapshot_auth
        self.rtsp_port = rtsp_port
        self.rtsp_url = rtsp_url
        self.max_termination = max_termination
        self.max_subscriptions = max_subscriptions
        self.motion_topics = motion_topics
        self.tamper_topic = tamper_topic
        self.upper_case_bools = upper_case_bools
        self.authless_time = authless_time
        self.local_time_only = local_time_only
        self.discovery_port = discovery_port
        self.max_pull_wait = max_pull_wait
        self.profiles = [Profile("Profile_1", "mainStream", 1920, 1080, stream_path="/Streaming/Channels/101"),
                         Profile("Profile_2", "subStream", 640, 360, stream_path="/Streaming/Channels/102")]
        self.unsupported = frozenset(unsupported)
        self.rtsp = rtsp
        self.profile_g: ProfileG | None = None
        """Profile G (recordings=True): footage added with :meth:`add_footage`, found by the search
        service and played back by :attr:`replay` (simrecorder.py)."""
        self.replay: ReplayServer | None = None
        self._footage_tmp: tempfile.TemporaryDirectory[str] | None = None
        if recordings:
            if footage_dir is None:
                self._footage_tmp = tempfile.TemporaryDirectory(prefix="onvif-footage-")
                footage_dir = self._footage_tmp.name
            store = FootageStore(Path(footage_dir), segment_seconds, replace(video or VideoFormat(), audio=False),
                                 writer=write_units, suffix="h264u")
            self.profile_g = ProfileG(Recordings(store))
        self.stats: Counter[str] = Counter()
        self.snapshot_mode = "jpeg"
        """``jpeg`` (normal), ``error_page`` (200 with an HTML page, as some firmware does)."""
        self.state = {"motion": False, "tamper": False, "video_loss": False}
        self._jpeg = encode_jpeg(default_picture(label=name[:20] if name.isascii() else "CAM 01"))
        self._subs: dict[str, Subscription] = {}
        self._overrides: dict[str, Override] = {}
        self._nonces: deque[str] = deque(maxlen=2000)
        self._nonce_set: set[str] = set()
        self._http_nonces: deque[str] = deque(maxlen=200)
        self._boot = 0
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self._discovery: asyncio.DatagramTransport | None = None
        self.endpoint_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"anninh-sim-{serial}"))
        self.online = False
        self._routes: dict[str, dict[str, Callable[..., Any]]] = {
            service: {action: getattr(self, method) for action, method in actions.items()}
            for service, actions in SOAP_ROUTES.items()}

    # ------------------------------------------------------------------ lifecycle
    def now(self) -> datetime:
        """The simulated camera's clock (UTC)."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_skew)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def rtsp_paths(self) -> dict[str, int]:
        return {p.stream_path: 1 for p in self.profiles}

    def add_footage(self, channel: int, start: datetime, end: datetime) -> None:
        """Recorded footage of ``channel`` from ``start`` to ``end`` (the recorder's local time,
        UTC+7, naive); needs ``recordings=True``."""
        if self.profile_g is None:
            raise RuntimeError("this simulator has no Profile G (recordings=True)")
        self.profile_g.recordings.store.add(channel, start, end)

    async def start(self) -> OnvifSimulator:
        if self.profile_g is not None:
            await asyncio.to_thread(self.profile_g.recordings.store.prepare)
            if self.replay is None:
                self.replay = ReplayServer(self.profile_g.recordings, self.username, self.password, self.host)
            await self.replay.start()
        await self.start_rtsp()
        try:
            await self._start_http()
            if self.discovery_port is not None:
                await self._start_discovery()
        except BaseException:
            await self.stop()
            raise
        return self

    async def stop(self) -> None:
        await self._stop_http()
        if self._discovery is not None:
            self._discovery.close()
            self._discovery = None
        await self.stop_rtsp()
        if self.replay is not None:
            await self.replay.stop()  # kept: its counters and the PLAY requests it saw stay readable

    async def __aenter__(self) -> OnvifSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _start_http(self) -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(DEVICE_PATH, self._handle_device)
        app.router.add_post(MEDIA_PATH, self._handle_media)
        app.router.add_post(EVENTS_PATH, self._handle_events)
        app.router.add_post("/onvif/subscription/{sid}", self._handle_subscription)
        app.router.add_get(SNAPSHOT_PATH, self._handle_snapshot)
        if self.profile_g is not None:
            app.router.add_post(SEARCH_PATH, self._handle_search)
            app.router.add_post(REPLAY_PATH, self._handle_replay)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        if self.port == 0 and server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._runner = runner
        self.online = True

    async def _stop_http(self) -> None:
        self.online = False
        for sub in self._subs.values():
            sub.wake.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def reboot(self, downtime: float = 2.0) -> None:
        """Simulate a power cycle: connections drop and are refused for ``downtime`` seconds,
        every subscription is forgotten, and the state flags reset."""
        self.stats["reboots"] += 1
        self._subs.clear()
        await self._stop_http()
        await asyncio.sleep(downtime)
        self._boot += 1
        self.state = {"motion": False, "tamper": False, "video_loss": False}
        await self._start_http()

    # ------------------------------------------------------------------ scenario controls
    def set_picture(self, picture: np.ndarray | bytes) -> None:
        """Serve this picture on the snapshot URI (a BGR ndarray or JPEG bytes)."""
        if isinstance(picture, bytes | bytearray):
            self._jpeg = bytes(picture)
        else:
            self._jpeg = encode_jpeg(picture)

    def override(self, operation: str, body: bytes, status: int = 200, content_type: str = SOAP_CT,
                 times: int | None = None) -> None:
        """Answer ``operation`` (e.g. ``"PullMessages"``) with these bytes (``times`` times, or
        until :meth:`clear_overrides`): for testing clients against garbage and odd devices."""
        self._overrides[operation] = Override(body, status, content_type, times)

    def clear_overrides(self) -> None:
        self._overrides.clear()

    @property
    def subscriptions(self) -> int:
        self._expire()
        return len(self._subs)

    def trigger_motion(self, active: bool = True) -> None:
        self.state["motion"] = active
        for kind in self.motion_topics:
            if kind in MOTION_TOPICS:
                topic, source, flag = MOTION_TOPICS[kind]
                self._publish(topic, source, [(flag, active)])

    def trigger_tamper(self, active: bool = True) -> None:
        self.state["tamper"] = active
        if self.tamper_topic == "scene":
            self._publish("tns1:VideoSource/GlobalSceneChange/ImagingService", [("Source", "VideoSource_1")],
                          [("State", active)])
        else:
            self._publish("tns1:RuleEngine/TamperDetector/Tamper",
                          [("VideoSourceConfigurationToken", "VideoSourceToken"), ("Rule", "Tamper")],
                          [("IsTamper", active)])

    def trigger_video_loss(self, active: bool = True) -> None:
        self.state["video_loss"] = active
        self._publish("tns1:VideoSource/SignalLoss", [("Source", "VideoSource_1")], [("State", active)])

    def push_raw(self, notification_xml: str) -> None:
        """Queue a raw ``wsnt:NotificationMessage`` (prefixes from the envelope's declarations)."""
        for sub in self._subs.values():
            sub.queue.append(notification_xml)
            sub.wake.set()

    def _bool(self, value: bool) -> str:
        s = "true" if value else "false"
        return s.upper() if self.upper_case_bools else s

    def _message(self, topic: str, source: list[tuple[str, str]], data: list[tuple[str, Any]],
                 operation: str = "Changed") -> str:
        def items(pairs: list[tuple[str, Any]]) -> str:
            return "".join(f'<tt:SimpleItem Name="{escape(n)}" Value="'
                           f'{escape(self._bool(v) if isinstance(v, bool) else v)}"/>' for n, v in pairs)
        return (f'<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/'
                f'ConcreteSet">{topic}</wsnt:Topic><wsnt:ProducerReference><wsa5:Address>{self.base_url}'
                f'{EVENTS_PATH}</wsa5:Address></wsnt:ProducerReference><wsnt:Message>'
                f'<tt:Message UtcTime="{format_datetime(self.now())}" PropertyOperation="{operation}">'
                f"<tt:Source>{items(source)}</tt:Source><tt:Data>{items(data)}</tt:Data></tt:Message>"
                f"</wsnt:Message></wsnt:NotificationMessage>")

    def _publish(self, topic: str, source: list[tuple[str, str]], data: list[tuple[str, Any]]) -> None:
        self._expire()
        self.stats["events"] += 1
        self.push_raw(self._message(topic, source, data))

    def _initial_messages(self) -> list[str]:
        msgs = []
        for kind in ("cell", "alarm"):  # the Hikvision-specific topic has no Initialized message
            if kind in self.motion_topics:
                topic, source, flag = MOTION_TOPICS[kind]
                msgs.append(self._message(topic, source, [(flag, self.state["motion"])], "Initialized"))
        msgs.append(self._message("tns1:VideoSource/GlobalSceneChange/ImagingService",
                                  [("Source", "VideoSource_1")], [("State", self.state["tamper"])], "Initialized"))
        # SignalLoss is a property too: a new subscription learns its current value (ONVIF Core 9.1,
        # "Initialized" for every property), so a change queued on a dropped subscription is not lost
        msgs.append(self._message("tns1:VideoSource/SignalLoss", [("Source", "VideoSource_1")],
                                  [("State", self.state["video_loss"])], "Initialized"))
        return msgs

    def _expire(self) -> None:
        now = self.now()
        for sid in [s for s, sub in self._subs.items() if sub.termination <= now]:
            self.stats["expired"] += 1
            del self._subs[sid]

    # ------------------------------------------------------------------ SOAP plumbing
    def _soap(self, body: bytes, status: int = 200) -> web.Response:
        return web.Response(body=body, status=status, headers={"Content-Type": SOAP_CT})

    def _fault(self, subcode: str, reason: str) -> web.Response:
        return self._soap(fault_envelope(subcode, reason), 400)

    async def _handle_search(self, request: web.Request) -> web.Response:
        return await self._dispatch(request, "search")

    async def _handle_replay(self, request: web.Request) -> web.Response:
        return await self._dispatch(request, "replay")

    def _auth_fault(self, why: str) -> web.Response:
        self.stats["auth_failures"] += 1
        log.debug("simulator refused auth: %s", why)
        return self._soap(fault_envelope("ter:NotAuthorized",
                                         "Sender not Authorized. An error was discovered processing the "
                                         "<wsse:Security> header."), self.auth_fault_status)

    async def _parse(self, request: web.Request) -> tuple[Any, Any] | web.Response:
        data = await request.read()
        try:
            root = parse_xml(data)
        except SoapParseError:
            self.stats["malformed"] += 1
            return self._soap(fault_envelope("ter:InvalidArgVal", "Malformed SOAP request"), 400)
        op = body_element(root)
        if op is None:
            self.stats["malformed"] += 1
            return self._soap(fault_envelope("ter:InvalidArgVal", "No SOAP body"), 400)
        return root, op

    def check_auth(self, root: Any) -> str | None:
        """Validate the WS-Security UsernameToken; returns why it fails, or ``None`` if good."""
        token = path(root, "Header", "Security", "UsernameToken")
        if token is None:
            return "no UsernameToken"
        user = text(token, "Username")
        pw_el = child(token, "Password")
        nonce = text(token, "Nonce")
        created = text(token, "Created")
        if user != self.username:
            return "unknown user"
        if pw_el is None or pw_el.text is None:
            return "no password"
        if (pw_el.get("Type") or "").endswith(DIGEST_TYPE_SUFFIX):
            if not nonce or not created:
                return "digest without nonce/created"
            try:
                raw_nonce = base64.b64decode(nonce, validate=True)
            except ValueError:
                return "bad nonce"
            expected = base64.b64encode(hashlib.sha1(raw_nonce + created.encode() + self.password.encode())
                                        .digest()).decode()
            if not secrets.compare_digest(expected, pw_el.text.strip()):
                return "wrong digest"
        elif not secrets.compare_digest(pw_el.text.strip().encode(), self.password.encode()):
            return "wrong password"
        if created:
            try:
                when = parse_datetime(created)
            except SoapParseError:
                return "bad Created"
            off = abs((when - self.now()).total_seconds())
            if off > self.time_tolerance:
                self.stats["time_rejects"] += 1
                return f"Created is {off:.0f} s away from the camera clock"
        if nonce:
            if nonce in self._nonce_set:
                return "nonce replayed"
            if len(self._nonces) == self._nonces.maxlen:
                self._nonce_set.discard(self._nonces[0])
            self._nonces.append(nonce)
            self._nonce_set.add(nonce)
        return None

    async def _dispatch(self, request: web.Request, service: str, authless: frozenset[str] = frozenset(),
                        **extra: Any) -> web.Response:
        parsed = await self._parse(request)
        if isinstance(parsed, web.Response):
            return parsed
        root, op = parsed
        name = local(op)
        self.stats[name] += 1
        self.stats["requests"] += 1
        ov = self._overrides.get(name)
        if ov is not None:
            if ov.times is not None:
                ov.times -= 1
                if ov.times <= 0:
                    del self._overrides[name]
            return web.Response(body=ov.body, status=ov.status, headers={"Content-Type": ov.content_type})
        handler = None if name in self.unsupported else self._routes[service].get(name)
        if handler is None:
            self.stats["not_supported"] += 1
            return self._soap(fault_envelope("ter:ActionNotSupported", "Optional Action Not Implemented",
                                             code="env:Receiver"), 500)
        if name not in authless:
            why = self.check_auth(root)
            if why is not None:
                return self._auth_fault(why)
        try:
            result = handler(op, **extra)
            if asyncio.iscoroutine(result):
                result = await result
        except SoapParseError as exc:
            return self._soap(fault_envelope("ter:InvalidArgVal", str(exc)), 400)
        if isinstance(result, web.Response):
            return result
        return self._soap(envelope(result))

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        self.stats["not_found"] += 1
        return web.Response(status=404, text="Not Found")

    # ------------------------------------------------------------------ device service
    async def _handle_device(self, request: web.Request) -> web.Response:
        authless = AUTHLESS_DEVICE_OPS if self.authless_time else AUTHLESS_DEVICE_OPS - {"GetSystemDateAndTime"}
        return await self._dispatch(request, "device", authless)

    def _op_time(self, op: Any) -> str:
        now = self.now()
        local_dt = now + timedelta(hours=7)

        def block(tag: str, t: datetime) -> str:
            return (f"<tt:{tag}><tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute>"
                    f"<tt:Second>{t.second}</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year>"
                    f"<tt:Month>{t.month}</tt:Month><tt:Day>{t.day}</tt:Day></tt:Date></tt:{tag}>")
        utc = "" if self.local_time_only else block("UTCDateTime", now)
        return ("<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>Manual</tt:DateTimeType>"
                "<tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>CST-7:00:00</tt:TZ></tt:TimeZone>"
                f"{utc}{block('LocalDateTime', local_dt)}</tds:SystemDateAndTime>"
                "</tds:GetSystemDateAndTimeResponse>")

    def _op_capabilities(self, op: Any) -> str:
        b = self.base_url
        return ("<tds:GetCapabilitiesResponse><tds:Capabilities>"
                f"<tt:Device><tt:XAddr>{b}{DEVICE_PATH}</tt:XAddr>"
                "<tt:Network><tt:IPFilter>false</tt:IPFilter><tt:ZeroConfiguration>false</tt:ZeroConfiguration>"
                "<tt:IPVersion6>false</tt:IPVersion6><tt:DynDNS>false</tt:DynDNS></tt:Network>"
                "<tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve><tt:DiscoveryBye>true</tt:DiscoveryBye>"
                "<tt:RemoteDiscovery>false</tt:RemoteDiscovery><tt:SystemBackup>false</tt:SystemBackup>"
                "<tt:SystemLogging>false</tt:SystemLogging><tt:FirmwareUpgrade>false</tt:FirmwareUpgrade>"
                "<tt:SupportedVersions><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tt:SupportedVersions>"
                "</tt:System><tt:IO><tt:InputConnectors>1</tt:InputConnectors><tt:RelayOutputs>1</tt:RelayOutputs>"
                "</tt:IO><tt:Security><tt:TLS1.1>false</tt:TLS1.1><tt:TLS1.2>false</tt:TLS1.2>"
                "<tt:OnboardKeyGeneration>false</tt:OnboardKeyGeneration><tt:AccessPolicyConfig>false"
                "</tt:AccessPolicyConfig><tt:X.509Token>false</tt:X.509Token><tt:SAMLToken>false</tt:SAMLToken>"
                "<tt:KerberosToken>false</tt:KerberosToken><tt:RELToken>false</tt:RELToken></tt:Security>"
                "</tt:Device>"
                f"<tt:Events><tt:XAddr>{b}{EVENTS_PATH}</tt:XAddr><tt:WSSubscriptionPolicySupport>true"
                "</tt:WSSubscriptionPolicySupport><tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
                "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
                "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
                f"<tt:Media><tt:XAddr>{b}{MEDIA_PATH}</tt:XAddr><tt:StreamingCapabilities>"
                "<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true"
                "</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
                + (f"<tt:Extension><tt:Search><tt:XAddr>{b}{SEARCH_PATH}</tt:XAddr><tt:MetadataSearch>false"
                   f"</tt:MetadataSearch></tt:Search><tt:Replay><tt:XAddr>{b}{REPLAY_PATH}</tt:XAddr></tt:Replay>"
                   "</tt:Extension>" if self.profile_g is not None else "") +
                "</tds:Capabilities></tds:GetCapabilitiesResponse>")

    def _op_services(self, op: Any) -> str:
        b = self.base_url
        out = []
        services = [(NS["tds"], DEVICE_PATH, 2, 60), (NS["trt"], MEDIA_PATH, 2, 60), (NS["tev"], EVENTS_PATH, 2, 60)]
        if self.profile_g is not None:
            services += [(NS["tse"], SEARCH_PATH, 2, 42), (NS["trp"], REPLAY_PATH, 2, 21)]
        for ns, p, major, minor in services:
            out.append(f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{b}{p}</tds:XAddr>"
                       f"<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor></tds:Version>"
                       "</tds:Service>")
        return f"<tds:GetServicesResponse>{''.join(out)}</tds:GetServicesResponse>"

    def _op_device_service_caps(self, op: Any) -> str:
        return ("<tds:GetServiceCapabilitiesResponse><tds:Capabilities><tds:Network/>"
                '<tds:Security UsernameToken="true" HttpDigest="true"/><tds:System/>'
                "</tds:Capabilities></tds:GetServiceCapabilitiesResponse>")

    def _op_info(self, op: Any) -> str:
        inner = "".join(f"<tds:{k}>{escape(v)}</tds:{k}>" for k, v in self.info.items())
        return f"<tds:GetDeviceInformationResponse>{inner}</tds:GetDeviceInformationResponse>"

    def scopes(self) -> list[str]:
        from urllib.parse import quote
        return ["onvif://www.onvif.org/type/video_encoder", "onvif://www.onvif.org/Profile/Streaming",
                f"onvif://www.onvif.org/name/{quote(self.name)}",
                f"onvif://www.onvif.org/hardware/{quote(self.info['Model'])}",
                f"onvif://www.onvif.org/location/city/{quote(self.location)}"]

    def _op_scopes(self, op: Any) -> str:
        items = "".join(f"<tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>{escape(s)}</tt:ScopeItem>"
                        "</tds:Scopes>" for s in self.scopes())
        return f"<tds:GetScopesResponse>{items}</tds:GetScopesResponse>"

    @property
    def mac(self) -> str:
        """The simulated NIC's address (stable per serial number, locally administered)."""
        digest = hashlib.sha1(self.info["SerialNumber"].encode()).digest()
        return ":".join(f"{b:02x}" for b in (bytes([(digest[0] | 0x02) & 0xFE]) + digest[1:6]))

    def _op_network_interfaces(self, op: Any) -> str:
        link = ("<tt:AutoNegotiation>true</tt:AutoNegotiation><tt:Speed>100</tt:Speed>"
                "<tt:Duplex>Full</tt:Duplex>")
        return ('<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token="eth0"><tt:Enabled>true</tt:Enabled>'
                f"<tt:Info><tt:Name>eth0</tt:Name><tt:HwAddress>{self.mac}</tt:HwAddress><tt:MTU>1500</tt:MTU>"
                f"</tt:Info><tt:Link><tt:AdminSettings>{link}</tt:AdminSettings><tt:OperSettings>{link}"
                "</tt:OperSettings><tt:InterfaceType>6</tt:InterfaceType></tt:Link><tt:IPv4><tt:Enabled>true"
                f"</tt:Enabled><tt:Config><tt:Manual><tt:Address>{escape(self.host)}</tt:Address><tt:PrefixLength>"
                "24</tt:PrefixLength></tt:Manual><tt:DHCP>false</tt:DHCP></tt:Config></tt:IPv4>"
                "</tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>")

    def _op_hostname(self, op: Any) -> str:
        return ("<tds:GetHostnameResponse><tds:HostnameInformation><tt:FromDHCP>false</tt:FromDHCP>"
                "<tt:Name>IPCAM</tt:Name></tds:HostnameInformation></tds:GetHostnameResponse>")

    # ------------------------------------------------------------------ media service
    async def _handle_media(self, request: web.Request) -> web.Response:
        return await self._dispatch(request, "media")

    def _op_video_sources(self, op: Any) -> str:
        main = self.profiles[0]
        return ('<trt:GetVideoSourcesResponse><trt:VideoSources token="VideoSource_1"><tt:Framerate>25</tt:Framerate>'
                f"<tt:Resolution><tt:Width>{main.width}</tt:Width><tt:Height>{main.height}</tt:Height>"
                "</tt:Resolution></trt:VideoSources></trt:GetVideoSourcesResponse>")

    def _op_media_caps(self, op: Any) -> str:
        return ('<trt:GetServiceCapabilitiesResponse><trt:Capabilities SnapshotUri="true" Rotation="false" '
                'VideoSourceMode="false" OSD="false"><trt:ProfileCapabilities MaximumNumberOfProfiles="10"/>'
                '<trt:StreamingCapabilities RTPMulticast="false" RTP_TCP="true" RTP_RTSP_TCP="true" '
                'NonAggregateControl="false" NoRTSPStreaming="false"/></trt:Capabilities>'
                "</trt:GetServiceCapabilitiesResponse>")

    def _profile_xml(self, p: Profile) -> str:
        return (f'<trt:Profiles token="{p.token}" fixed="true"><tt:Name>{p.name}</tt:Name>'
                '<tt:VideoSourceConfiguration token="VideoSourceToken"><tt:Name>VideoSourceConfig</tt:Name>'
                "<tt:UseCount>2</tt:UseCount><tt:SourceToken>VideoSource_1</tt:SourceToken>"
                '<tt:Bounds x="0" y="0" width="1920" height="1080"/></tt:VideoSourceConfiguration>'
                f'<tt:VideoEncoderConfiguration token="VideoEncoderToken_{p.token[-1]}"><tt:Name>{p.name}</tt:Name>'
                f"<tt:UseCount>1</tt:UseCount><tt:Encoding>{p.encoding}</tt:Encoding><tt:Resolution>"
                f"<tt:Width>{p.width}</tt:Width><tt:Height>{p.height}</tt:Height></tt:Resolution>"
                "<tt:Quality>3</tt:Quality><tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit>"
                "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>4096</tt:BitrateLimit>"
                "</tt:RateControl><tt:H264><tt:GovLength>50</tt:GovLength><tt:H264Profile>Main</tt:H264Profile>"
                "</tt:H264><tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0"
                "</tt:IPv4Address></tt:Address><tt:Port>8860</tt:Port><tt:TTL>128</tt:TTL><tt:AutoStart>false"
                "</tt:AutoStart></tt:Multicast><tt:SessionTimeout>PT5S</tt:SessionTimeout>"
                "</tt:VideoEncoderConfiguration></trt:Profiles>")

    def _op_profiles(self, op: Any) -> str:
        inner = "".join(self._profile_xml(p) for p in self.profiles)
        return f"<trt:GetProfilesResponse>{inner}</trt:GetProfilesResponse>"

    def _find_profile(self, op: Any) -> Profile | web.Response:
        token = text(op, "ProfileToken")
        for p in self.profiles:
            if p.token == token:
                return p
        return self._soap(fault_envelope("ter:InvalidArgVal", "The requested profile does not exist",
                                         inner="ter:NoProfile"), 400)

    def _op_stream_uri(self, op: Any) -> str | web.Response:
        p = self._find_profile(op)
        if isinstance(p, web.Response):
            return p
        if self.rtsp_url:
            uri = self.rtsp_url.replace("{profile}", p.token)
        else:
            uri = f"rtsp://{self.host}:{self.rtsp_port}{p.stream_path}?transportmode=unicast&profile={p.token}"
        return ("<trt:GetStreamUriResponse><trt:MediaUri>"
                f"<tt:Uri>{escape(uri)}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
                "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT60S</tt:Timeout>"
                "</trt:MediaUri></trt:GetStreamUriResponse>")

    def _op_snapshot_uri(self, op: Any) -> str | web.Response:
        p = self._find_profile(op)
        if isinstance(p, web.Response):
            return p
        uri = f"{self.base_url}{SNAPSHOT_PATH}?{p.token}"
        return ("<trt:GetSnapshotUriResponse><trt:MediaUri>"
                f"<tt:Uri>{escape(uri)}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
                "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout>"
                "</trt:MediaUri></trt:GetSnapshotUriResponse>")

    # ------------------------------------------------------------------ snapshots (HTTP auth)
    def _realm(self) -> str:
        return f"IP Camera({self.info['SerialNumber'][-5:]})"

    def _challenge(self) -> web.Response:
        headers = {"Content-Type": "text/html"}
        if self.snapshot_auth == "basic":
            headers["WWW-Authenticate"] = f'Basic realm="{self._realm()}"'
        else:
            nonce = secrets.token_hex(16)
            self._http_nonces.append(nonce)
            headers["WWW-Authenticate"] = (f'Digest qop="auth", realm="{self._realm()}", nonce="{nonce}", '
                                           'opaque="", algorithm="MD5", stale="FALSE"')
        return web.Response(status=401, text="<html><body>401 Unauthorized</body></html>", headers=headers)

    def _check_http_auth(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "basic" and self.snapshot_auth in ("basic", "any"):
            try:
                user, _, pw = base64.b64decode(rest.strip()).decode().partition(":")
            except ValueError:
                return False
            return user == self.username and secrets.compare_digest(pw.encode(), self.password.encode())
        if scheme.lower() != "digest" or self.snapshot_auth == "basic":
            return False
        params = parse_auth_params(rest)
        if params.get("username") != self.username or params.get("nonce") not in self._http_nonces:
            return False
        ha1 = hashlib.md5(f"{self.username}:{params.get('realm', '')}:{self.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{request.method}:{params.get('uri', '')}".encode()).hexdigest()
        if params.get("qop"):
            expected = hashlib.md5(f"{ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}:"
                                   f"{params['qop']}:{ha2}".encode()).hexdigest()
        else:
            expected = hashlib.md5(f"{ha1}:{params['nonce']}:{ha2}".encode()).hexdigest()
        return secrets.compare_digest(expected, params.get("response", ""))

    async def _handle_snapshot(self, request: web.Request) -> web.Response:
        self.stats["snapshot_requests"] += 1
        if not self._check_http_auth(request):
            if "Authorization" in request.headers:
                self.stats["snapshot_auth_failures"] += 1
            return self._challenge()
        self.stats["snapshots"] += 1
        if self.snapshot_mode == "error_page":
            return web.Response(status=200, text="<html><body>Device busy</body></html>",
                                content_type="text/html")
        return web.Response(body=self._jpeg, headers={"Content-Type": "image/jpeg"})

    # ------------------------------------------------------------------ events
    async def _handle_events(self, request: web.Request) -> web.Response:
        return await self._dispatch(request, "events")

    def _op_event_caps(self, op: Any) -> str:
        return ('<tev:GetServiceCapabilitiesResponse><tev:Capabilities WSSubscriptionPolicySupport="true" '
                'WSPullPointSupport="true" WSPausableSubscriptionManagerInterfaceSupport="false" '
                'MaxNotificationProducers="10" MaxPullPoints="10"/></tev:GetServiceCapabilitiesResponse>')

    def _op_event_props(self, op: Any) -> str:
        return ("<tev:GetEventPropertiesResponse><tev:TopicNamespaceLocation>"
                "http://www.onvif.org/onvif/ver10/topics/topicns.xml</tev:TopicNamespaceLocation>"
                "<wsnt:FixedTopicSet>true</wsnt:FixedTopicSet><wstop:TopicSet/>"
                "<tev:TopicExpressionDialect>http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
                "</tev:TopicExpressionDialect><tev:MessageContentFilterDialect>"
                "http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter</tev:MessageContentFilterDialect>"
                "<tev:MessageContentSchemaLocation>http://www.onvif.org/onvif/ver10/schema/onvif.xsd"
                "</tev:MessageContentSchemaLocation></tev:GetEventPropertiesResponse>")

    def _termination(self, requested: str | None, now: datetime) -> datetime:
        term = parse_termination(requested, now) if requested else now + timedelta(seconds=60)
        if self.max_termination is not None:
            term = min(term, now + timedelta(seconds=self.max_termination))
        return max(term, now + timedelta(seconds=1))

    def _op_create_pullpoint(self, op: Any) -> str | web.Response:
        self._expire()
        if len(self._subs) >= self.max_subscriptions:
            self.stats["subscription_refused"] += 1
            return self._soap(fault_envelope("ter:Action", "Too many subscriptions",
                                             code="env:Receiver", inner="ter:TooManySubscriptions"), 500)
        now = self.now()
        term = self._termination(text(op, "InitialTerminationTime"), now)
        self._seq += 1
        sid = f"b{self._boot}_{self._seq}"
        sub = Subscription(sid=sid, termination=term)
        for m in self._initial_messages():
            sub.queue.append(m)
        self._subs[sid] = sub
        self.stats["subscriptions_created"] += 1
        return ("<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
                f"<wsa5:Address>{self.base_url}/onvif/subscription/{sid}</wsa5:Address>"
                f"</tev:SubscriptionReference><wsnt:CurrentTime>{format_datetime(now)}</wsnt:CurrentTime>"
                f"<wsnt:TerminationTime>{format_datetime(term)}</wsnt:TerminationTime>"
                "</tev:CreatePullPointSubscriptionResponse>")

    async def _handle_subscription(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        return await self._dispatch(request, "subscription", sid=sid)

    def _get_sub(self, sid: str) -> Subscription | web.Response:
        self._expire()
        sub = self._subs.get(sid)
        return self._unknown_subscription() if sub is None else sub

    def _unknown_subscription(self) -> web.Response:
        self.stats["unknown_subscription"] += 1
        return self._soap(fault_envelope("ter:InvalidArgVal", "The subscription does not exist",
                                         inner="wsrf-rw:ResourceUnknownFault"), 400)

    async def _op_pull(self, op: Any, sid: str) -> str | web.Response:
        sub = self._get_sub(sid)
        if isinstance(sub, web.Response):
            return sub
        timeout_text = text(op, "Timeout") or "PT1S"
        timeout = min(parse_duration(timeout_text), self.max_pull_wait)
        try:
            limit = max(1, min(1000, int(text(op, "MessageLimit") or "10")))
        except ValueError:
            raise SoapParseError("MessageLimit is not an integer") from None
        if not sub.queue:
            sub.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wake.wait(), timeout)
            if self._subs.get(sid) is not sub:
                return self._unknown_subscription()  # unsubscribed or rebooted meanwhile
        msgs = [sub.queue.popleft() for _ in range(min(limit, len(sub.queue)))]
        self.stats["messages_delivered"] += len(msgs)
        now = self.now()
        return (f"<tev:PullMessagesResponse><tev:CurrentTime>{format_datetime(now)}</tev:CurrentTime>"
                f"<tev:TerminationTime>{format_datetime(sub.termination)}</tev:TerminationTime>"
                f"{''.join(msgs)}</tev:PullMessagesResponse>")

    def _op_renew(self, op: Any, sid: str) -> str | web.Response:
        sub = self._get_sub(sid)
        if isinstance(sub, web.Response):
            return sub
        now = self.now()
        sub.termination = self._termination(text(op, "TerminationTime"), now)
        self.stats["renewals"] += 1
        return (f"<wsnt:RenewResponse><wsnt:TerminationTime>{format_datetime(sub.termination)}"
                f"</wsnt:TerminationTime><wsnt:CurrentTime>{format_datetime(now)}</wsnt:CurrentTime>"
                "</wsnt:RenewResponse>")

    def _op_unsubscribe(self, op: Any, sid: str) -> str | web.Response:
        sub = self._get_sub(sid)
        if isinstance(sub, web.Response):
            return sub
        del self._subs[sid]
        sub.wake.set()
        self.stats["unsubscribes"] += 1
        return "<wsnt:UnsubscribeResponse/>"

    def _op_sync(self, op: Any, sid: str) -> str | web.Response:
        sub = self._get_sub(sid)
        if isinstance(sub, web.Response):
            return sub
        for m in self._initial_messages():
            sub.queue.append(m)
        sub.wake.set()
        return "<tev:SetSynchronizationPointResponse/>"

    # ------------------------------------------------------------------ WS-Discovery
    async def _start_discovery(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _DiscoveryProtocol(self), local_addr=(self.host, self.discovery_port or 0))
        self._discovery = transport
        self.discovery_port = transport.get_extra_info("sockname")[1]

    def probe_match(self, probe: bytes) -> bytes | None:
        """The ProbeMatches answer to a WS-Discovery Probe (``None`` if it does not match us)."""
        try:
            root = parse_xml(probe)
        except SoapParseError:
            self.stats["discovery_garbage"] += 1
            return None
        op = body_element(root)
        if op is None or local(op) != "Probe":
            return None
        wanted = (text(op, "Types") or "").split()
        ours = {"NetworkVideoTransmitter", "Device"}
        if wanted and not any(t.rsplit(":", 1)[-1] in ours for t in wanted):
            return None
        self.stats["probes"] += 1
        relates = text(root, "Header", "MessageID") or ""
        scopes = " ".join(self.scopes())
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope xmlns:env="{NS["env"]}" '
                f'xmlns:wsa="{NS["wsa"]}" xmlns:wsd="{NS["wsd"]}" xmlns:dn="{NS["dn"]}" xmlns:tds="{NS["tds"]}">'
                "<env:Header><wsa:MessageID>urn:uuid:" + str(uuid.uuid4()) + "</wsa:MessageID>"
                f"<wsa:RelatesTo>{escape(relates)}</wsa:RelatesTo>"
                "<wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>"
                "<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>"
                "</env:Header><env:Body><wsd:ProbeMatches><wsd:ProbeMatch><wsa:EndpointReference>"
                f"<wsa:Address>urn:uuid:{self.endpoint_uuid}</wsa:Address></wsa:EndpointReference>"
                "<wsd:Types>dn:NetworkVideoTransmitter tds:Device</wsd:Types>"
                f"<wsd:Scopes>{escape(scopes)}</wsd:Scopes>"
                f"<wsd:XAddrs>{self.base_url}{DEVICE_PATH}</wsd:XAddrs>"
                "<wsd:MetadataVersion>1</wsd:MetadataVersion></wsd:ProbeMatch></wsd:ProbeMatches>"
                "</env:Body></env:Envelope>").encode()


class _DiscoveryProtocol(asyncio.DatagramProtocol):
    def __init__(self, sim: OnvifSimulator) -> None:
        self.sim = sim
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.sim.online:
            return
        answer = self.sim.probe_match(data)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


# ---------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m plugins.generic_onvif.simulator",
                                description="Simulated ONVIF camera (SOAP on HTTP, PullPoint events, JPEG "
                                "snapshots, WS-Discovery) for trying AnNinh Hub without hardware.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    p.add_argument("--username", default="admin")
    p.add_argument("--password", default="admin", help="camera password (default admin)")
    p.add_argument("--skew", type=float, default=0.0, help="camera clock offset in seconds (e.g. 600)")
    p.add_argument("--tolerance", type=float, default=300.0,
                   help="accept WS-Security Created times this many seconds off (default 300)")
    p.add_argument("--name", default="Cong UBND phuong", help="camera name in the discovery scopes")
    p.add_argument("--model", default="DS-2CD2143G2-I")
    p.add_argument("--discovery-port", type=int, default=None,
                   help="answer WS-Discovery probes sent to HOST:PORT (unicast; e.g. 3702)")
    p.add_argument("--rtsp-url", default=None, help="stream URI to hand out ({profile} is replaced)")
    p.add_argument("--no-rtsp", action="store_true",
                   help="do not serve the stream URI over RTSP (served with GStreamer when bound to loopback)")
    p.add_argument("--motion-every", type=float, default=0.0,
                   help="toggle motion on for 5 s every N seconds (0: never)")
    p.add_argument("--max-termination", type=float, default=None,
                   help="cap subscription lifetimes at N seconds (tests renewals)")
    p.add_argument("--recordings", type=float, default=0.0, metavar="MINUTES",
                   help="be a Profile G device with the last MINUTES of footage (search, replay over RTSP; "
                   "for anninh export)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after N seconds (default: until Ctrl-C)")
    return p


async def _run(args: argparse.Namespace) -> None:
    serve = not args.no_rtsp and not args.rtsp_url and args.host in ("127.0.0.1", "localhost")
    why = rtsp_unavailable() if serve else None
    sim = OnvifSimulator(username=args.username, password=args.password, host=args.host, port=args.port,
                         clock_skew=args.skew, time_tolerance=args.tolerance, name=args.name, model=args.model,
                         discovery_port=args.discovery_port, rtsp_url=args.rtsp_url,
                         max_termination=args.max_termination, rtsp=serve and why is None,
                         recordings=args.recordings > 0)
    if args.recordings > 0:  # the recorder's local time (UTC+7), whole minutes up to now
        end = (sim.now() + LOCAL_OFFSET).replace(tzinfo=None, second=0, microsecond=0)
        sim.add_footage(1, end - timedelta(minutes=args.recordings), end)
    await sim.start()
    print(f"ONVIF simulator on {sim.base_url}{DEVICE_PATH} (user {args.username})"
          + (f", WS-Discovery on udp {args.host}:{sim.discovery_port}" if args.discovery_port is not None else ""),
          flush=True)
    if sim.replay is not None:
        print(f"Profile G: {args.recordings:g} min of recordings, replay on rtsp://127.0.0.1:{sim.replay.port}",
              flush=True)
    if why:
        print(f"no RTSP stream: {why}", flush=True)
    elif sim.rtsp:
        print(f"RTSP on 127.0.0.1:{sim.rtsp_port} (the URIs GetStreamUri hands out; same user and password)",
              flush=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.duration if args.duration > 0 else None
    try:
        while deadline is None or loop.time() < deadline:
            if args.motion_every > 0:
                await asyncio.sleep(args.motion_every)
                sim.trigger_motion(True)
                print("motion on", flush=True)
                await asyncio.sleep(5)
                sim.trigger_motion(False)
                print("motion off", flush=True)
            else:
                await asyncio.sleep(0.5)
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``anninh simulate onvif`` and ``python -m plugins.generic_onvif.simulator``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
