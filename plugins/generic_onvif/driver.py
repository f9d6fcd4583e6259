"""Driver for any ONVIF Profile S/T camera (platform ``generic_onvif``), on onvif-zeep-async 4.3.

What it does, in order, on every (re)connect:

1. asks the camera for its clock with the unauthenticated ``GetSystemDateAndTime`` and signs
   every later WS-Security header with that offset (cameras refuse a ``Created`` time that is
   minutes away from their own clock); the offset is published as ``clock_skew`` (seconds);
2. finds the service addresses (``GetServices``, or ``GetCapabilities`` on older firmware);
3. reads ``GetDeviceInformation`` (model, firmware, serial), the media profiles, the stream URI
   and the snapshot URI of the chosen profile (``profile:`` or the first H.264 one);
4. if ``events: true``, keeps a PullPoint subscription: ``PullMessages`` in a loop, ``Renew``
   at 80 % of the lifetime the camera granted, and a new subscription when the camera forgets
   the old one (reboot, expiry). Motion, tamper and video-loss topics become the state flags
   ``motion``, ``tamper``, ``video_loss`` and events of the same names; motion that never
   says "false" is ended after ``event_timeout`` seconds.

A refused password raises :class:`hub.api.AuthError` (the hub then retries no faster than every
30 s, so the camera does not lock the account); an unreachable or garbling camera raises
:class:`hub.api.DeviceError`. Passwords never appear in messages, logs or state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from lxml import etree
from pydantic import Field, SecretStr, field_validator

from hub.api import (
    AuthError,
    CameraConfig,
    DeviceError,
    DeviceInfo,
    DownloadSink,
    Driver,
    Entity,
    ExportUnsupportedError,
    Segment,
)
from hub.camera.http import CameraHttp, split_url

from . import recordings as profileg
from .events import KINDS, OnvifEvent, from_zeep_notification
from .replay import RtspReplay, TsWriter
from .soapxml import SoapParseError, format_datetime, local, text


def _import_onvif() -> Any:
    """Import onvif-zeep-async without its import-time ``logging.basicConfig`` side effect."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import onvif.client as client

    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    return client


_onvif = _import_onvif()
from onvif.exceptions import ONVIFError  # noqa: E402
from onvif.util import is_auth_error, normalize_url, stringify_onvif_error  # noqa: E402
from zeep.exceptions import Fault, TransportError, XMLParseError, XMLSyntaxError  # noqa: E402

log = logging.getLogger(__name__)
# zeep logs an ERROR with a traceback for every attribute it cannot convert -- e.g. the
# UtcTime="0000-00-00T00:00:00Z" that Hikvision puts on each notification -- and then carries on
# with None. That would flood the hub's log from a camera that works; the driver ignores UtcTime.
logging.getLogger("zeep.xsd.elements.attribute").setLevel(logging.CRITICAL)

PULLPOINT_NS = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"
SEARCH_NS = "http://www.onvif.org/ver10/search/wsdl"
REPLAY_NS = "http://www.onvif.org/ver10/replay/wsdl"
EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
MAX_PULL_WAIT = 20.0
"""Longest PullMessages long-poll (s); the camera answers at once when something happens."""
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024
RETRY_REFUSED = 60.0
"""Seconds between CreatePullPointSubscription attempts on a camera that refused one."""
SINK_CHUNK = 256 * 1024
"""Bytes of MPEG-TS gathered before they go to the export's sink."""
REPLAY_CHUNK_S = 600.0
"""Longest segment (s): a longer stretch is replayed in pieces of this length."""
REPLAY_END_SLACK = 2.0
"""A replay whose last frame is further than this (s) from the segment's end stopped early."""
SKEW_PUBLISH_STEP = 2.0
"""Re-publish ``clock_skew`` only when it moved this much (the protocol has 1 s resolution)."""


class OnvifConfig(CameraConfig):
    """``platform: generic_onvif`` -- any ONVIF Profile S/T camera.

    Example::

        - id: cam-cho
          platform: generic_onvif
          site: kp3-tam
          host: 192.168.1.64
          port: 80              # the ONVIF (HTTP) port, often 80, 8000, 8080 or 2020
          username: onvif       # Hikvision: create a separate ONVIF user in the web UI
          password: !secret cam_cho_password
    """

    host: str = Field(min_length=1, max_length=253, description="camera address (IP or name)")
    port: int = Field(80, ge=1, le=65535, description="ONVIF HTTP port")
    username: str = Field("admin", min_length=1, max_length=64)
    password: SecretStr = Field(description="camera password (use !secret)")
    profile: str | None = Field(None, description="media profile token; default: the first H.264 profile")
    events: bool = Field(True, description="subscribe to motion/tamper events (PullPoint)")
    event_timeout: float = Field(30.0, gt=0, le=3600,
                                 description="seconds after which motion without an explicit end is over")
    subscription_time: float = Field(60.0, ge=10, le=86400,
                                     description="PullPoint subscription lifetime asked for (renewed at 80 %)")
    wsdl_dir: str | None = Field(None, description="folder with ONVIF WSDL files; default: the bundled ones")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if "://" in value or "/" in value or "@" in value or " " in value:
            raise ValueError("give only the camera's address, e.g. 192.168.1.64 (no http://, path or user)")
        return value


class SubscriptionLost(DeviceError):
    """The camera no longer knows our PullPoint subscription (rebooted, expired, refused)."""


class PullPointRefused(DeviceError):
    """The camera answered CreatePullPointSubscription with a SOAP fault (no PullPoint support,
    or too many subscriptions)."""


def _posix_tz_offset(tz: str | None) -> float | None:
    """UTC offset (s) of a POSIX TZ string such as ``CST-7:00:00`` (= UTC+7), or ``None``."""
    if not tz:
        return None
    m = re.match(r"^\s*(?:<[^>]*>|[A-Za-z]{3,})([+-]?)(\d{1,2})(?::(\d{1,2}))?(?::(\d{1,2}))?", tz)
    if not m:
        return None
    sign = -1 if m.group(1) != "-" else 1  # POSIX: "CST-7" is seven hours *ahead* of UTC
    return sign * (int(m.group(2)) * 3600 + int(m.group(3) or 0) * 60 + int(m.group(4) or 0))


def camera_utc(sys_date: Any) -> datetime:
    """The camera's UTC time from a zeep ``SystemDateAndTime`` (``UTCDateTime``, else local + TZ)."""
    block = getattr(sys_date, "UTCDateTime", None)
    offset = 0.0
    if block is None:
        block = getattr(sys_date, "LocalDateTime", None)
        tz = getattr(getattr(sys_date, "TimeZone", None), "TZ", None)
        offset = _posix_tz_offset(tz) or 0.0
    if block is None:
        raise DeviceError("GetSystemDateAndTime answered without a date")
    d, t = block.Date, block.Time
    try:
        when = datetime(int(d.Year), int(d.Month), int(d.Day), int(t.Hour), int(t.Minute), int(t.Second), tzinfo=UTC)
    except (TypeError, ValueError) as exc:
        raise DeviceError(f"GetSystemDateAndTime answered an impossible date ({exc})") from None
    return when - timedelta(seconds=offset)


def with_credentials(url: str, username: str, password: str) -> str:
    """``rtsp://host/x`` -> ``rtsp://user:pass@host/x``, both percent-encoded (replaces any userinfo)."""
    parts = urlsplit(url)
    hostport = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{hostport}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class OnvifClient:
    """One camera's ONVIF services (used by the driver and by ``anninh discover``).

    Every method raises only :class:`DeviceError` (or :class:`AuthError`) and never mentions the
    password. ``timeout`` bounds each call.
    """

    def __init__(self, host: str, port: int, username: str, password: str, *, timeout: float = 10.0,
                 wsdl_dir: str | None = None) -> None:
        self.host, self.port, self.username = host, port, username
        self._password = password
        self.timeout = timeout
        self.wsdl_dir = wsdl_dir or _onvif._WSDL_PATH
        self.where = f"{host}:{port}"
        self.cam: Any = None
        self.skew: float = 0.0
        self.has_events = False
        self.has_media = False
        self.has_search = False
        self.has_replay = False
        self._sub_service: Any = None
        self._pull_service: Any = None

    # ---------------------------------------------------------------- error mapping
    def error(self, exc: BaseException, what: str) -> DeviceError:
        where = self.where
        if isinstance(exc, DeviceError):
            return exc
        if isinstance(exc, Fault):
            if is_auth_error(exc):
                return AuthError(f"{where}: {what}: the camera refused the user name or password (ONVIF "
                                 "NotAuthorized). Check them; Hikvision cameras need a separate ONVIF user")
            detail = _clean(stringify_onvif_error(exc))
            return DeviceError(f"{where}: {what}: SOAP fault: {detail}")
        if isinstance(exc, TransportError):
            status = getattr(exc, "status_code", 0)
            if status in (401, 403):
                return AuthError(f"{where}: {what}: HTTP {status}, the camera refused the user name or password")
            return DeviceError(f"{where}: {what}: HTTP {status or 'error'} from the camera")
        if isinstance(exc, XMLParseError | XMLSyntaxError | etree.XMLSyntaxError | SoapParseError):
            return DeviceError(f"{where}: {what}: the camera answered something that is not valid ONVIF XML")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return DeviceError(f"{where}: cannot connect ({_clean(str(exc.os_error) or 'refused')})")
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return DeviceError(f"{where}: {what}: the camera closed the connection")
        if isinstance(exc, aiohttp.ClientError):
            return DeviceError(f"{where}: {what}: {type(exc).__name__}")
        if isinstance(exc, TimeoutError):
            return DeviceError(f"{where}: {what}: no answer within {self.timeout:g} s")
        if isinstance(exc, ONVIFError):
            return DeviceError(f"{where}: {what}: {_clean(str(exc))}")
        if isinstance(exc, AttributeError | TypeError | KeyError | ValueError | IndexError):
            return DeviceError(f"{where}: {what}: unexpected answer from the camera ({type(exc).__name__})")
        if isinstance(exc, OSError):
            return DeviceError(f"{where}: {what}: {_clean(str(exc))}")
        return DeviceError(f"{where}: {what}: {type(exc).__name__}")

    async def call(self, what: str, make: Any, timeout: float | None = None) -> Any:
        """Run ``make()`` (which returns an awaitable) with a timeout, mapping every failure."""
        try:
            awaitable = make()
            return await asyncio.wait_for(awaitable, timeout or self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self.error(exc, what) from None

    # ---------------------------------------------------------------- connection
    async def open(self) -> None:
        """Measure the clock skew, compensate it, and find the service addresses."""
        if not await asyncio.to_thread(Path(self.wsdl_dir, "devicemgmt.wsdl").is_file):
            raise DeviceError(f"wsdl_dir {self.wsdl_dir!r} has no devicemgmt.wsdl (leave wsdl_dir out to use the "
                              "WSDL files that come with onvif-zeep-async)")
        self.cam = _onvif.ONVIFCamera(self.host, self.port, self.username, self._password, self.wsdl_dir,
                                      no_cache=True, adjust_time=False)
        dm = await self.call("device service", self.cam.create_devicemgmt_service)
        self.skew = await self.measure_skew(dm)
        # rebuild the device service so that its WS-Security header carries the offset
        self.cam.dt_diff = timedelta(seconds=self.skew)
        await dm.close()
        self.cam.services.pop(dm.binding_key, None)
        dm = await self.call("device service", self.cam.create_devicemgmt_service)
        await self._find_services(dm)

    async def measure_skew(self, dm: Any = None) -> float:
        """Camera clock minus ours, in seconds, from ``GetSystemDateAndTime`` (no auth if allowed)."""
        dm = dm or await self.call("device service", self.cam.create_devicemgmt_service)
        before = datetime.now(UTC)
        try:
            sys_date = await asyncio.wait_for(dm.authless_GetSystemDateAndTime(), self.timeout)
        except Fault:
            # some cameras (Vivotek, Panasonic) want auth even for the time
            sys_date = await self.call("GetSystemDateAndTime", dm.GetSystemDateAndTime)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self.error(exc, "GetSystemDateAndTime") from None
        after = datetime.now(UTC)
        try:
            cam_now = camera_utc(sys_date)
        except (AttributeError, TypeError, ValueError) as exc:
            raise self.error(exc, "GetSystemDateAndTime") from None
        # the camera truncates to whole seconds: compare with the middle of the request, +0.5 s
        mid = before + (after - before) / 2
        return (cam_now - mid).total_seconds() + 0.5

    def set_skew(self, skew: float) -> None:
        """Use a new clock offset for every later request (cameras that resync their clock)."""
        self.skew = skew
        if self.cam is None:
            return
        self.cam.dt_diff = timedelta(seconds=skew)
        for service in self.cam.services.values():
            wsse = getattr(getattr(service, "zeep_client", None), "wsse", None)
            if wsse is not None and hasattr(wsse, "dt_diff"):
                wsse.dt_diff = self.cam.dt_diff

    async def _find_services(self, dm: Any) -> None:
        xaddrs: dict[str, str] = {}
        try:
            services = await asyncio.wait_for(dm.GetServices({"IncludeCapability": False}), self.timeout)
            for s in services or []:
                ns, addr = getattr(s, "Namespace", None), getattr(s, "XAddr", None)
                if isinstance(ns, str) and isinstance(addr, str) and addr.startswith(("http://", "https://")):
                    xaddrs[ns] = normalize_url(addr) or addr
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            mapped = self.error(exc, "GetServices")
            if isinstance(mapped, AuthError):
                raise mapped from None
        if not xaddrs:
            caps = await self.call("GetCapabilities", lambda: dm.GetCapabilities({"Category": "All"}))
            extension = getattr(caps, "Extension", None)
            for holder, name, ns in ((caps, "Media", MEDIA_NS), (caps, "Events", EVENTS_NS),
                                     (extension, "Search", SEARCH_NS), (extension, "Replay", REPLAY_NS)):
                section = getattr(holder, name, None)
                addr = getattr(section, "XAddr", None)
                if section is None and holder is extension:
                    # zeep lets the Extension's leading xs:any swallow Search and Replay: raw elements
                    raw = next((el for el in getattr(extension, "_value_1", None) or []
                                if isinstance(getattr(el, "tag", None), str) and local(el) == name), None)
                    addr = text(raw, "XAddr") if raw is not None else None
                if isinstance(addr, str) and addr.startswith(("http://", "https://")):
                    xaddrs[ns] = normalize_url(addr) or addr
        self.cam.xaddrs.update(xaddrs)
        self.has_media = MEDIA_NS in xaddrs
        self.has_events = EVENTS_NS in xaddrs
        self.has_search = SEARCH_NS in xaddrs
        self.has_replay = REPLAY_NS in xaddrs

    async def close(self) -> None:
        cam, self.cam = self.cam, None
        self._sub_service = self._pull_service = None
        if cam is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(cam.close(), 2)

    # ---------------------------------------------------------------- device and media
    async def device_information(self) -> dict[str, str | None]:
        dm = await self.call("device service", self.cam.create_devicemgmt_service)
        info = await self.call("GetDeviceInformation", dm.GetDeviceInformation)
        out: dict[str, str | None] = {}
        for key in ("Manufacturer", "Model", "FirmwareVersion", "SerialNumber", "HardwareId"):
            value = getattr(info, key, None)
            out[key] = _clean(str(value))[:128] if value not in (None, "") else None
        if not any(out[k] for k in ("Manufacturer", "Model", "SerialNumber")):
            raise DeviceError(f"{self.where}: GetDeviceInformation answered no manufacturer, model or serial")
        return out

    async def profiles(self) -> list[dict[str, Any]]:
        if not self.has_media:
            raise DeviceError(f"{self.where}: the camera offers no media service (not an ONVIF Profile S camera?)")
        media = await self.call("media service", self.cam.create_media_service)
        raw = await self.call("GetProfiles", media.GetProfiles)
        out = []
        for p in raw or []:
            token = getattr(p, "token", None)
            if not isinstance(token, str) or not token:
                continue
            enc = getattr(p, "VideoEncoderConfiguration", None)
            res = getattr(enc, "Resolution", None)
            out.append({"token": token, "name": getattr(p, "Name", None),
                        "encoding": getattr(enc, "Encoding", None),
                        "width": getattr(res, "Width", None), "height": getattr(res, "Height", None)})
        if not out:
            raise DeviceError(f"{self.where}: the camera has no media profiles")
        return out

    async def _uri(self, op: str, token: str, stream: bool) -> str | None:
        media = await self.call("media service", self.cam.create_media_service)
        req = media.create_type(op)
        req.ProfileToken = token
        if stream:
            req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
        result = await self.call(op, lambda: getattr(media, op)(req))
        uri = getattr(result, "Uri", None)
        if not isinstance(uri, str) or not uri.strip():
            return None
        return normalize_url("".join(uri.split()))

    async def stream_uri(self, token: str) -> str:
        uri = await self._uri("GetStreamUri", token, stream=True)
        if uri is None or "://" not in uri:
            raise DeviceError(f"{self.where}: GetStreamUri answered no usable URI for profile {token!r}")
        return uri

    async def snapshot_uri(self, token: str) -> str | None:
        try:
            return await self._uri("GetSnapshotUri", token, stream=False)
        except AuthError:
            raise
        except DeviceError as exc:
            log.debug("%s: no snapshot URI: %s", self.where, exc)
            return None

    # ---------------------------------------------------------------- PullPoint
    async def subscribe(self, seconds: float) -> float:
        """Create a PullPoint subscription; returns the lifetime (s) the camera granted."""
        events = await self.call("events service", self.cam.create_events_service)
        try:
            result = await asyncio.wait_for(events.CreatePullPointSubscription(
                {"InitialTerminationTime": f"PT{int(seconds)}S"}), self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            mapped = self.error(exc, "CreatePullPointSubscription")
            if isinstance(exc, Fault) and not isinstance(mapped, AuthError):
                raise PullPointRefused(str(mapped)) from None
            raise mapped from None
        try:
            address = result.SubscriptionReference.Address._value_1
        except AttributeError:
            raise DeviceError(f"{self.where}: CreatePullPointSubscription answered no subscription address") from None
        address = normalize_url(address.strip()) if isinstance(address, str) else None
        if not address or not address.startswith(("http://", "https://")):
            raise DeviceError(f"{self.where}: CreatePullPointSubscription answered an unusable address")
        self.cam.xaddrs[PULLPOINT_NS] = address
        self._pull_service = await self.call("pullpoint service", self.cam.create_pullpoint_service)
        self._sub_service = await self.call(
            "subscription service", lambda: self.cam.create_subscription_service("PullPointSubscription"))
        return _lifetime(result, seconds)

    async def pull(self, wait: float, limit: int = 100) -> list[Any]:
        """``PullMessages`` long poll of up to ``wait`` seconds; returns the raw notifications."""
        if self._pull_service is None:
            raise SubscriptionLost(f"{self.where}: no subscription")
        service = self._pull_service
        try:
            result = await asyncio.wait_for(
                service.PullMessages({"Timeout": timedelta(seconds=max(1, int(wait))), "MessageLimit": limit}),
                wait + self.timeout)
        except asyncio.CancelledError:
            raise
        except Fault as exc:
            mapped = self.error(exc, "PullMessages")
            if isinstance(mapped, AuthError):
                raise mapped from None
            raise SubscriptionLost(str(mapped)) from None
        except Exception as exc:
            raise self.error(exc, "PullMessages") from None
        messages = getattr(result, "NotificationMessage", None)
        if messages is None:
            return []
        return list(messages) if isinstance(messages, list | tuple) else [messages]

    async def renew(self, seconds: float, absolute: bool) -> float:
        if self._sub_service is None:
            raise SubscriptionLost(f"{self.where}: no subscription")
        if absolute:
            when = datetime.now(UTC) + timedelta(seconds=self.skew + seconds)
            term = format_datetime(when)
        else:
            term = f"PT{int(seconds)}S"
        service = self._sub_service
        try:
            result = await asyncio.wait_for(service.Renew(term), self.timeout)
        except asyncio.CancelledError:
            raise
        except Fault as exc:
            mapped = self.error(exc, "Renew")
            if isinstance(mapped, AuthError):
                raise mapped from None
            raise SubscriptionLost(str(mapped)) from None
        except Exception as exc:
            raise self.error(exc, "Renew") from None
        return _lifetime(result, seconds)

    async def unsubscribe(self) -> None:
        service, self._sub_service, self._pull_service = self._sub_service, None, None
        if service is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(service.Unsubscribe(), 1.0)


def _lifetime(result: Any, asked: float) -> float:
    current, term = getattr(result, "CurrentTime", None), getattr(result, "TerminationTime", None)
    if isinstance(current, datetime) and isinstance(term, datetime):
        try:
            return (term - current).total_seconds()
        except TypeError:  # one naive, one aware
            return (term.replace(tzinfo=None) - current.replace(tzinfo=None)).total_seconds()
    return asked


def _clean(text: str) -> str:
    return " ".join(text.split())[:200]


class OnvifDriver(Driver):
    """Hub driver for ``platform: generic_onvif`` (see the module docstring)."""

    kind = "camera"
    stale_fields: ClassVar[tuple[str, ...]] = ("motion", "tamper")
    config: OnvifConfig

    def __init__(self, config: OnvifConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.client: OnvifClient | None = None
        self.profile: dict[str, Any] | None = None
        self._stream_uri: str | None = None
        self._snapshot_uri: str | None = None
        self._http: CameraHttp | None = None
        self._http_origin: tuple[str, int, bool] | None = None
        self._flags: dict[str, bool | None] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._published_skew: float | None = None
        self.subscriptions = 0
        """PullPoint subscriptions created since start (the first one, then after each loss)."""
        self.renewals = 0

    # ---------------------------------------------------------------- lifecycle
    async def connect(self) -> DeviceInfo:
        await self.close()
        cfg = self.config
        client = OnvifClient(cfg.host, cfg.port, cfg.username, cfg.password.get_secret_value(),
                             timeout=min(cfg.timeout, 30.0), wsdl_dir=cfg.wsdl_dir)
        self.client = client
        await client.open()
        info = await client.device_information()
        profiles = await client.profiles()
        self.profile = _choose_profile(profiles, cfg.profile, client.where)
        self._stream_uri = await client.stream_uri(self.profile["token"])
        self._snapshot_uri = await client.snapshot_uri(self.profile["token"])
        self._flags = dict.fromkeys(KINDS)
        self._published_skew = round(client.skew)
        if abs(client.skew) > 5:
            self.ctx.log.info("%s: camera clock is %+.0f s off; compensating (set up NTP on the camera)",
                              cfg.id, client.skew)
        extra: dict[str, Any] = {"clock_skew": self._published_skew, "profile": self.profile["token"],
                                 "events": "pullpoint" if cfg.events and client.has_events else
                                 ("off" if not cfg.events else "unsupported")}
        if self.profile.get("width") and self.profile.get("height"):
            extra["resolution"] = f"{self.profile['width']}x{self.profile['height']}"
        if self.profile.get("encoding"):
            extra["encoding"] = str(self.profile["encoding"])
        if info.get("HardwareId"):
            extra["hardware_id"] = info["HardwareId"]
        return DeviceInfo(model=info.get("Model"), serial=info.get("SerialNumber"),
                          firmware=info.get("FirmwareVersion"), manufacturer=info.get("Manufacturer"), extra=extra)

    async def poll(self) -> Mapping[str, Any] | None:
        client = self._require()
        skew = await client.measure_skew()
        if abs(skew - client.skew) > SKEW_PUBLISH_STEP:
            self.ctx.log.info("%s: camera clock moved by %+.0f s", self.config.id, skew - client.skew)
            client.set_skew(skew)
        if self._published_skew is None or abs(skew - self._published_skew) >= SKEW_PUBLISH_STEP:
            self._published_skew = round(skew)
        return {"clock_skew": self._published_skew}

    async def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        client, self.client = self.client, None
        if client is not None:
            await client.unsubscribe()
            await client.close()
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    def _require(self) -> OnvifClient:
        if self.client is None or self.client.cam is None:
            raise DeviceError(f"{self.config.host}:{self.config.port}: not connected")
        return self.client

    # ---------------------------------------------------------------- events
    async def listen(self) -> None:
        client = self._require()
        if not self.config.events or not client.has_events:
            if self.config.events:
                self.ctx.log.info("%s: the camera offers no events service; motion/tamper unavailable",
                                  self.config.id)
            await asyncio.Event().wait()  # nothing to listen to; stay idle until cancelled
            return
        loop = asyncio.get_running_loop()
        asked = self.config.subscription_time
        logged = False
        while True:
            try:
                renew_at, absolute = await self._subscribe(client, asked, loop)
                break
            except PullPointRefused as exc:
                # not a reason to call the camera offline: it streams and takes snapshots all the same.
                # Try again now and then: a camera whose subscription slots are full frees them later.
                if not logged:
                    self.ctx.log.warning("%s: no PullPoint events from this camera (%s); motion/tamper "
                                         "unavailable, retrying every %g s", self.config.id, exc, RETRY_REFUSED)
                    logged = True
                self.ctx.update({"events": "unsupported"})
                await asyncio.sleep(RETRY_REFUSED)
        if logged:
            self.ctx.log.info("%s: PullPoint events available now", self.config.id)
        self.ctx.update({"events": "pullpoint"})
        lost_in_a_row = 0
        while True:
            wait = min(MAX_PULL_WAIT, max(1.0, renew_at - loop.time()))
            try:
                messages = await client.pull(wait)
                lost_in_a_row = 0
                for message in messages:
                    event = from_zeep_notification(message)
                    if event is not None:
                        self._apply(event)
                if loop.time() >= renew_at - 1.0:  # the next pull would last at least 1 s
                    lifetime = await client.renew(asked, absolute)
                    self.renewals += 1
                    renew_at = loop.time() + _renew_delay(lifetime)
            except SubscriptionLost as exc:
                lost_in_a_row += 1
                if lost_in_a_row > 3:
                    raise DeviceError(f"{client.where}: the event subscription keeps failing: {exc}") from None
                self.ctx.log.info("%s: event subscription lost (%s); subscribing again", self.config.id, exc)
                await client.unsubscribe()
                renew_at, absolute = await self._subscribe(client, asked, loop)

    async def _subscribe(self, client: OnvifClient, asked: float,
                         loop: asyncio.AbstractEventLoop) -> tuple[float, bool]:
        lifetime = await client.subscribe(asked)
        self.subscriptions += 1
        # cameras with broken relative times grant far less than asked: use absolute times then
        absolute = lifetime < asked / 2 and lifetime < 10
        return loop.time() + _renew_delay(lifetime), absolute

    def _apply(self, event: OnvifEvent) -> None:
        kind = event.kind
        if kind == "motion":
            timer = self._timers.pop(kind, None)
            if timer is not None:
                timer.cancel()
            if event.active:
                self._timers[kind] = asyncio.get_running_loop().call_later(
                    self.config.event_timeout, self._expire, kind)
        previous = self._flags.get(kind)
        if previous is event.active:
            return
        self._flags[kind] = event.active
        self.ctx.update({kind: event.active})
        if event.active or previous is not None:
            self.ctx.event(kind, active=event.active, topic=event.topic, source=event.source)

    def _expire(self, kind: str) -> None:
        self._timers.pop(kind, None)
        if self._flags.get(kind):
            self._flags[kind] = False
            self.ctx.update({kind: False})
            self.ctx.event(kind, active=False, ended="timeout", reason="timeout")  # reason: before API v1

    # ---------------------------------------------------------------- pictures
    async def snapshot(self, channel: int | None = None) -> bytes:
        """One JPEG from the profile's snapshot URI (HTTP Digest, or Basic if that is all it offers)."""
        where = f"{self.config.host}:{self.config.port}"
        if self.client is None:
            raise DeviceError(f"{where}: not connected")
        if not self._snapshot_uri:
            token = self.profile["token"] if self.profile else "?"
            raise DeviceError(f"{where}: the camera gives no snapshot URI for profile {token}")
        host, port, https, path = split_url(self._snapshot_uri, self.config.host)
        if self._http is None or self._http_origin != (host, port, https):
            if self._http is not None:
                await self._http.close()
            self._http = CameraHttp(host, port, https=https, username=self.config.username,
                                    password=self.config.password.get_secret_value(), timeout=self.config.timeout)
            self._http_origin = (host, port, https)
        try:  # Digest, or Basic when that is all the snapshot URI offers (CameraHttp picks)
            response = await self._http.request("GET", path, max_body=MAX_SNAPSHOT_BYTES)
        except AuthError:
            raise AuthError(f"{where}: snapshot: the camera refused the credentials") from None
        except DeviceError as exc:
            raise DeviceError(f"{where}: snapshot failed: {exc}") from None
        if response.status_code in (401, 403):
            raise AuthError(f"{where}: snapshot: HTTP {response.status_code}, the camera refused the credentials")
        if response.status_code != 200:
            raise DeviceError(f"{where}: snapshot: HTTP {response.status_code}")
        body = response.content
        if len(body) > MAX_SNAPSHOT_BYTES or not body.startswith(b"\xff\xd8"):
            ctype = response.headers.get("content-type", "?").split(";")[0][:40]
            raise DeviceError(f"{where}: snapshot is not a JPEG ({ctype}, {len(body)} bytes): "
                              "the camera sent an error page")
        return body

    # ---------------------------------------------------------------- recordings (Profile G)
    def _profile_g(self) -> OnvifClient:
        client = self._require()
        if not (client.has_search and client.has_replay):
            raise ExportUnsupportedError("this device cannot export recordings (it offers no ONVIF Profile G "
                                         "recording search and replay)")
        return client

    def _aware(self, t: datetime) -> datetime:
        """Recorder wall clock (naive, the hub's zone) -> aware UTC, as ONVIF wants it."""
        return t.replace(tzinfo=self.ctx.tz).astimezone(UTC) if t.tzinfo is None else t.astimezone(UTC)

    def _naive(self, t: datetime) -> datetime:
        return t.astimezone(self.ctx.tz).replace(tzinfo=None)

    async def search_recordings(self, channel: int, start: datetime, end: datetime) -> list[Segment]:
        """The stretches of footage of recording number ``channel`` in the window (FindRecordings,
        FindEvents), each starting at the clean point the replay will begin with."""
        client = self._profile_g()
        found = await profileg.find_recordings(client)
        if not 1 <= channel <= len(found):
            raise DeviceError(f"{client.where}: no recording for channel {channel} (the device has "
                              f"{len(found)}: {', '.join(r.token for r in found) or 'none'})")
        rec = found[channel - 1]
        a, b = self._aware(start), self._aware(end)
        spans = await profileg.data_spans(client, rec, a, b)
        if spans is None:  # no event search: the recording's whole span
            lo, hi = max(rec.earliest or a, a), min(rec.latest or b, b)
            spans = [(lo, hi)] if hi > lo else []
        uri = await profileg.replay_uri(client, rec.token) if spans else ""
        segments = []
        chunk = timedelta(seconds=REPLAY_CHUNK_S)
        for lo, hi in spans:
            # one segment per chunk of the stretch (a broken replay is replayed from its chunk's
            # start, not from the stretch's). A replay starts at the keyframe at or before the time
            # asked for: ask for each chunk's first frame, so the segment (and the export's clock for
            # every frame in it) starts where its bytes start and ends where the next one starts
            starts: list[datetime] = []
            at = lo
            while at < hi:
                first = await self._first_frame(uri, at, hi)
                if first is not None and first < hi and (not starts or first > starts[-1]):
                    starts.append(first)
                at += chunk
            for i, first in enumerate(starts):
                last = starts[i + 1] if i + 1 < len(starts) else hi
                segments.append(Segment(channel, self._naive(first), self._naive(last), ref=rec.token,
                                        name=f"{rec.token}_{self._naive(first):%Y%m%dT%H%M%S}.ts", container="ts"))
        return segments

    async def _first_frame(self, uri: str, start: datetime, end: datetime) -> datetime | None:
        cfg = self.config
        session = RtspReplay(uri, cfg.username, cfg.password.get_secret_value(), timeout=min(cfg.timeout, 30.0))
        try:
            await session.open(start, end)
            async with contextlib.aclosing(session.frames(idle=min(cfg.timeout, 30.0))) as frames:
                async for frame in frames:
                    return frame.when
            if session.ended == "idle":  # slow, not empty: the export must not call this a gap
                raise DeviceError(f"{session.where}: replay: no frame within {min(cfg.timeout, 30.0):g} s")
            return None  # the recorder ended the range without a frame
        finally:
            await session.close()

    async def download(self, segment: Segment, sink: DownloadSink, offset: int = 0) -> int:
        """Replay the segment's stretch and hand the MPEG-TS made of its H.264 to ``sink``
        (replay.py); ``offset``: replay again and skip the bytes already saved."""
        client = self._profile_g()
        cfg = self.config
        uri = await profileg.replay_uri(client, segment.ref)
        origin, end = self._aware(segment.start), self._aware(segment.end)
        session = RtspReplay(uri, cfg.username, cfg.password.get_secret_value(), timeout=min(cfg.timeout, 30.0))
        ts = TsWriter()
        skip, sent = offset, 0
        buffered: list[bytes] = []
        size = 0
        last: datetime | None = None

        async def emit(data: bytes, flush: bool = False) -> None:
            nonlocal skip, sent, size
            if skip:
                cut = min(skip, len(data))
                data, skip = data[cut:], skip - cut
            if data:
                buffered.append(data)
                size += len(data)
            if buffered and (flush or size >= SINK_CHUNK):
                chunk = b"".join(buffered)
                buffered.clear()
                size = 0
                await sink(chunk)
                sent += len(chunk)

        try:
            await session.open(origin, end)
            async with contextlib.aclosing(session.frames(idle=min(cfg.timeout, 30.0))) as frames:
                async for frame in frames:
                    if frame.when >= end:
                        break
                    if frame.when < origin and last is None:
                        continue  # before the clean point the search found (a recorder that moved it)
                    last = frame.when
                    await emit(ts.add(frame, origin))
        finally:
            await session.close()
        # the recorder said the range is over (RTCP BYE, the T flag): what it sent is all there is;
        # a recorder that only went quiet must have sent frames up to the end
        said_end = session.ended in ("bye", "terminal") and last is not None
        if not said_end and (last is None or (end - last).total_seconds() > REPLAY_END_SLACK):
            stopped = f"at {self._naive(last):%H:%M:%S}" if last else "before the first frame"
            raise DeviceError(f"{client.where}: replay of {segment.name} stopped {stopped}, before "
                              f"{segment.end:%H:%M:%S}")
        await emit(ts.close(), flush=True)
        return sent

    async def recorder_clock_skew(self) -> float | None:
        """Seconds the device's clock is ahead (GetSystemDateAndTime, measured now)."""
        return await self._require().measure_skew()

    def stream_url(self, channel: int | None = None) -> str | None:
        """RTSP URI of the chosen profile with the credentials inserted (never log it)."""
        if not self._stream_uri:
            return None
        return with_credentials(self._stream_uri, self.config.username, self.config.password.get_secret_value())

    def entities(self) -> list[Entity]:
        return [Entity("binary_sensor", "motion", "Motion", "motion"),
                Entity("binary_sensor", "tamper", "Tamper", "tamper"),
                Entity("sensor", "clock_skew", "Clock skew", "duration", unit="s", icon="mdi:clock-alert")]


def _renew_delay(lifetime: float) -> float:
    return max(1.0, 0.8 * lifetime)


def _choose_profile(profiles: list[dict[str, Any]], wanted: str | None, where: str) -> dict[str, Any]:
    if wanted:
        for p in profiles:
            if p["token"] == wanted:
                return p
        tokens = ", ".join(str(p["token"]) for p in profiles)
        raise DeviceError(f"{where}: the camera has no media profile {wanted!r}; it has: {tokens}")
    for p in profiles:
        if str(p.get("encoding") or "").upper() == "H264":
            return p
    return profiles[0]


async def gather_info(host: str, port: int, username: str, password: str,
                      timeout: float = 5.0) -> dict[str, Any]:
    """Device information for ``anninh discover`` (raises :class:`DeviceError`)."""
    client = OnvifClient(host, port, username, password, timeout=timeout)
    try:
        await client.open()
        info = await client.device_information()
        return {**info, "clock_skew": round(client.skew)}
    finally:
        await client.close()


__all__ = ["OnvifClient", "OnvifConfig", "OnvifDriver", "SubscriptionLost", "gather_info", "with_credentials"]
