"""What the Hikvision and Dahua drivers share: event flags per channel with implicit ends, the
state layout for cameras and recorders, disk events and the retention task.

State layout (the MQTT contract's camera / DVR fields):

* camera: ``motion``, ``video_loss``, ``tamper``, ``line_crossing``, ``intrusion`` (booleans),
  ``clock_skew`` (s);
* recorder: the same flags (true when any channel has them), ``channels`` =
  ``{"1": {"online": true, "motion": false, ..., "retention_days": 12}}``, ``channels_online``,
  ``disks`` = ``[{"id", "capacity", "free", "status"}]`` (MB), ``retention_days``,
  ``retention_target_days``, ``clock_skew``.

Events (``<base>/bridge/event``): ``motion``, ``video_loss``, ``tamper``, ``line_crossing``,
``intrusion`` … with ``channel`` and ``active``; ``disk_full``, ``disk_error``, ``disk_missing``
with ``disk``; ``retention_low`` with ``days`` and ``target``; ``channel_offline`` /
``channel_online``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from hub.api import CommandError, DeviceConfig, DeviceContext, DeviceError, Driver, Entity
from hub.camera.http import CameraHttp
from hub.camera.retention import RetentionWatch, days_kept, recorder_days

FLAGS = ("motion", "video_loss", "tamper", "line_crossing", "intrusion")
GOOD_DISK = {"ok", "normal", "idle", "sleeping", "success", "readwrite", "rw"}
EMPTY_DISK = {"notexist", "not_exist", "absent", "empty", "nodisk"}


class OutputCommand(BaseModel):
    """The ``/set`` command of a camera's or recorder's alarm outputs (relays), shared by the
    Hikvision and Dahua drivers: ``{"output": 1, "state": "ON"}`` (output defaults to 1) or ``{"output_2": "OFF"}``."""

    model_config = ConfigDict(extra="allow")
    output: int = Field(1, ge=1, le=64)
    state: Literal["ON", "OFF"] | None = None

    def targets(self) -> list[tuple[int, bool]]:
        out = []
        if self.state is not None:
            out.append((self.output, self.state == "ON"))
        for key, value in (self.model_extra or {}).items():
            if not key.startswith("output_") or not key[7:].isdigit() or value not in ("ON", "OFF"):
                raise CommandError(f"unknown field {key!r}: use output/state or output_N: ON|OFF")
            out.append((int(key[7:]), value == "ON"))
        if not out:
            raise CommandError('nothing to do: send {"output": 1, "state": "ON"}')
        return out


class CameraBase(Driver):
    """Base of the ISAPI and CGI drivers. Subclasses fill ``self.channels`` and call the helpers."""

    kind = "camera"
    stale_fields = ("motion", "video_loss", "tamper")

    def __init__(self, config: DeviceConfig, ctx: DeviceContext) -> None:
        super().__init__(config, ctx)
        self.channels: list[int] = [1]
        self.channel_state: dict[int, dict[str, Any]] = {}
        self._refreshed: dict[tuple[int, str], float] = {}
        self._device_flags: dict[str, float] = {}
        self._disk_status: dict[str, str] = {}
        self._disk_free: dict[str, int | None] = {}
        self._channel_online: dict[int, bool] = {}
        self.retention = RetentionWatch(int(getattr(config, "retention_target_days", 30)))
        self.retention_per_channel: dict[str, int | None] = {}
        self.event_timeout = float(getattr(config, "event_timeout", 10.0))
        self.http: CameraHttp | None = None

    # ------------------------------------------------------------------ HTTP session
    def open_http(self) -> CameraHttp:
        """A new session to the device (host, port, username, password, https, timeout keys)."""
        cfg: Any = self.config
        self.http = CameraHttp(cfg.host, cfg.port, username=cfg.username, password=cfg.password.get_secret_value(),
                               https=cfg.https, timeout=cfg.timeout)
        return self.http

    def rtsp_url(self, path: str) -> str:
        """``rtsp://user:password@host:rtsp_port<path>``, credentials percent-encoded. Contains the
        password: never log it."""
        cfg: Any = self.config
        user = quote(cfg.username, safe="")
        pw = quote(cfg.password.get_secret_value(), safe="")
        return f"rtsp://{user}:{pw}@{cfg.host}:{cfg.rtsp_port}{path}"

    def default_channel(self, channel: int | None) -> int:
        return channel or (self.channels[0] if self.channels else 1)

    def _http(self) -> CameraHttp:
        if self.http is None:
            raise DeviceError("not connected")
        return self.http

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None

    @property
    def is_recorder(self) -> bool:
        return self.kind == "recorder"

    # ------------------------------------------------------------------ flags
    def reset_flags(self) -> dict[str, Any]:
        """Start every known channel with all flags off (after connect)."""
        for ch in self.channels:
            st = self.channel_state.setdefault(ch, {})
            for f in FLAGS:
                st[f] = False
        self._refreshed.clear()
        return self.flag_fields()

    def flag_fields(self) -> dict[str, Any]:
        if not self.is_recorder:
            st = self.channel_state.get(self.channels[0] if self.channels else 1, {})
            return {f: bool(st.get(f, False)) for f in FLAGS} | {k: v for k, v in st.items() if k not in FLAGS
                                                                  and k != "online"}
        # fresh (shallow) copies: the hub detects changes by comparing with what it holds
        chans = {str(ch): dict(self.channel_state.get(ch, ())) for ch in self.channels}
        out: dict[str, Any] = {"channels": chans}
        for f in FLAGS:
            out[f] = any(bool(c.get(f)) for c in chans.values())
        online = [c.get("online") for c in chans.values()]
        out["channels_online"] = sum(1 for o in online if o is True)
        out["channels_total"] = len(chans)
        return out

    def set_flag(self, channel: int, name: str, active: bool, **data: Any) -> None:
        """An event for a channel. Emits only on edges; repeated ``active`` refreshes the timer."""
        if self.is_recorder and channel not in self.channels:
            if channel <= 0 or channel > 256:
                return
            self.channels.append(channel)
            self.channels.sort()
        if not self.is_recorder:
            channel = self.channels[0] if self.channels else 1
        st = self.channel_state.setdefault(channel, {})
        key = (channel, name)
        if active:
            self._refreshed[key] = time.monotonic()
        else:
            self._refreshed.pop(key, None)
        if bool(st.get(name, False)) == active:
            return
        st[name] = active
        if self.is_recorder:
            chans = {str(ch): dict(self.channel_state.get(ch, ())) for ch in self.channels}
            self.ctx.update({"channels": chans,
                             name: any(c.get(name) for c in self.channel_state.values())})
        else:
            self.ctx.update({name: active})
        self.ctx.event(name, channel=channel, active=active, **data)

    def device_event(self, name: str, active: bool = True, **data: Any) -> None:
        """A device-level event (disk full, disk error…): emitted once per episode."""
        now = time.monotonic()
        last = self._device_flags.get(name)
        if active:
            self._device_flags[name] = now
            if last is None:
                self.ctx.event(name, **data)
        else:
            self._device_flags.pop(name, None)

    async def expiry_loop(self) -> None:
        """Clear flags whose ``active`` was not repeated within ``event_timeout`` (implicit end)."""
        step = max(0.1, min(1.0, self.event_timeout / 4))
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            for (ch, name), seen in list(self._refreshed.items()):
                if now - seen >= self.event_timeout:
                    self._refreshed.pop((ch, name), None)
                    self.set_flag(ch, name, False, ended="timeout")
            for name, seen in list(self._device_flags.items()):
                if now - seen >= max(self.event_timeout, 60.0):
                    self._device_flags.pop(name, None)

    # ------------------------------------------------------------------ channels
    def set_channel_online(self, channel: int, online: bool | None) -> None:
        st = self.channel_state.setdefault(channel, {f: False for f in FLAGS})
        st["online"] = online
        previous = self._channel_online.get(channel)
        if online is None:
            return
        self._channel_online[channel] = online
        if previous is not None and previous != online:
            self.ctx.event("channel_online" if online else "channel_offline", channel=channel)

    # ------------------------------------------------------------------ disks
    def disk_events(self, disks: list[dict[str, Any]]) -> None:
        """Edges: a disk turning bad (``disk_error``), a present disk vanishing or a recorder with no
        disk at all (``disk_missing``), free space reaching 0 (``disk_full``). An empty bay that was
        never filled is not an error."""
        present = 0
        current = {str(d.get("id")) for d in disks}
        for did, last in list(self._disk_status.items()):
            if did != "__any__" and did not in current:
                del self._disk_status[did]
                self._disk_free.pop(did, None)
                if last not in EMPTY_DISK:
                    self.ctx.event("disk_missing", disk=did, previous=last)
        for d in disks:
            did = str(d.get("id"))
            status = str(d.get("status") or "unknown").lower()
            prev = self._disk_status.get(did)
            self._disk_status[did] = status
            if status in EMPTY_DISK:
                if prev is not None and prev not in EMPTY_DISK:
                    self.ctx.event("disk_missing", disk=did, previous=prev)
                continue
            present += 1
            if status not in GOOD_DISK and (prev is None or prev in GOOD_DISK or prev in EMPTY_DISK):
                self.ctx.event("disk_error", disk=did, status=status)
            free = d.get("free")
            prev_free = self._disk_free.get(did)
            self._disk_free[did] = free
            if free == 0 and prev_free not in (None, 0) and status in GOOD_DISK:
                self.ctx.event("disk_full", disk=did, capacity=d.get("capacity"))
        if self.is_recorder:
            had_disks = self._disk_status.get("__any__")
            now_any = "yes" if present else "no"
            if now_any == "no" and had_disks != "no":
                self.ctx.event("disk_missing", disk=None, error="the recorder has no working disk")
            self._disk_status["__any__"] = now_any

    # ------------------------------------------------------------------ retention
    def apply_retention(self, per_channel: dict[str, int | None]) -> dict[str, Any]:
        self.retention_per_channel = per_channel
        for ch, days in per_channel.items():
            if ch.isdigit():
                self.channel_state.setdefault(int(ch), {})["retention_days"] = days
        days = recorder_days(per_channel)
        for name, data in self.retention.check(days, per_channel):
            self.ctx.event(name, **data)
        fields = self.flag_fields()
        fields["retention_days"] = days
        fields["retention_target_days"] = self.retention.target
        return fields

    async def check_retention(self) -> None:
        """Oldest recording per channel → ``retention_days`` (run on its own slow interval)."""
        now = await self._device_now()
        per: dict[str, int | None] = {}
        for ch in list(self.channels):
            oldest = await self.oldest_recording(ch, now)
            per[str(ch)] = days_kept(oldest, now) if oldest is not None else None
        self.ctx.update(self.apply_retention(per))

    async def _device_now(self) -> datetime:
        """The device's wall clock (recording searches are in device-local time)."""
        raise NotImplementedError

    async def oldest_recording(self, channel: int, now: datetime) -> datetime | None:
        raise NotImplementedError

    # ------------------------------------------------------------------ event stream
    async def _stream_once(self) -> None:
        """Open the vendor's event stream and handle parts until it ends (raise DeviceError)."""
        raise NotImplementedError

    async def probe(self) -> None:
        """One cheap request: raises when the device does not answer."""
        raise NotImplementedError

    async def listen(self) -> None:
        """The event stream, re-opened with a 1 → 30 s backoff while the device still answers
        (NVRs can be silent for long stretches); raises when the device itself is gone."""
        if not getattr(self.config, "event_stream", True):
            await asyncio.Event().wait()
        delay = 1.0
        while True:
            started = time.monotonic()
            try:
                await self._stream_once()
            except asyncio.CancelledError:
                raise
            except DeviceError as exc:
                self.ctx.log.debug("event stream ended: %s", exc)
            try:
                async with asyncio.timeout(self.config.timeout):
                    await self.probe()
            except (DeviceError, TimeoutError) as exc:
                raise DeviceError(f"event stream lost and the device does not answer ({exc or 'timeout'})") from None
            if time.monotonic() - started > 30:
                delay = 1.0
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def periodic(self, interval: float, fn: Any, first_delay: float = 0.0) -> None:
        """Run ``fn`` now (after ``first_delay``) and every ``interval`` s. A failure is logged as a
        warning once, then at debug level until it works again (the device's own availability is
        the poll's business, not this task's)."""
        await asyncio.sleep(first_delay)
        failing = False
        while True:
            try:
                await fn()
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                with contextlib.suppress(Exception):
                    level = logging.DEBUG if failing else logging.WARNING
                    self.ctx.log.log(level, "%s failed: %s", getattr(fn, "__name__", "task"), exc)
                failing = True
            await asyncio.sleep(interval)

    # ------------------------------------------------------------------ HA entities
    def entities(self) -> list[Entity]:
        ents = [Entity("binary_sensor", "motion", "Motion", device_class="motion"),
                Entity("binary_sensor", "video_loss", "Video loss", device_class="problem"),
                Entity("binary_sensor", "tamper", "Tamper", device_class="tamper"),
                Entity("sensor", "clock_skew", "Clock skew", unit="s", device_class="duration")]
        if self.is_recorder:
            ents += [Entity("sensor", "retention_days", "Days of footage kept", unit="d"),
                     Entity("sensor", "channels_online", "Cameras online")]
        for n in range(1, getattr(self, "output_count", 0) + 1):
            # the bridge sends {"output_N": "ON"|"OFF"}, which the command model accepts
            ents.append(Entity("switch", f"output_{n}", f"Alarm output {n}", command=True))
        return ents
