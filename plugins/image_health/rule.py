"""The ``image_health`` rule: checks every camera's and recorder's picture on a spread schedule.

For each device of kind ``camera`` or ``recorder`` whose config has ``health_interval > 0``
(:class:`hub.api.CameraConfig`), every ``health_interval`` seconds (at most ``blackspot_interval``
at a black-spot site, where darkness switches lights), the rule

1. takes a picture from ``health_source``: the driver's snapshot, or one keyframe of its RTSP
   stream (falls back to the snapshot when the driver has no stream URL);
2. measures it in the worker pool (:mod:`plugins.image_health.sources`, :mod:`plugins.image_health.checks`);
3. feeds the measures to the camera's :class:`plugins.image_health.monitor.CameraMonitor` and merges
   ``brightness``, ``sharpness``, ``dark`` and ``image`` into the camera's state, emitting
   ``image_*`` / ``scene_moved`` / ``stream_down`` events and their ``_cleared`` counterparts;
4. keeps the picture as the camera's latest, and as its reference if it has none yet and the
   picture is a healthy daylight one.

MQTT requests (``<base>/bridge/request/<name>``, answered on ``<base>/bridge/response/<name>``):

``reference/set``   ``{"device": "cam-kp3", "force": false}`` — take a picture now and store it
                    as the reference (refused if dark, covered or blurry unless ``force``)
``reference/clear`` ``{"device": "cam-kp3"}`` — forget the reference
``image_health/check`` ``{"device": "cam-kp3"}`` — check now; answers with the new fields
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hub.api import AvailabilityChange, DeviceError, Rule, RuleContext, StrictModel
from hub.api.runtime import cancel_and_wait, describe_error

from .monitor import CameraMonitor, HealthOptions, Outcome
from .pool import HealthPool
from .scheduler import Schedule

if TYPE_CHECKING:
    # OpenCV, numpy and PyAV come with these: imported on first use, so a hub without cameras
    # never loads the video stack (tests/test_memory.py)
    from .checks import FrameStats
    from .reference import ReferenceStore

KINDS = ("camera", "recorder")
OFFLINE_RETRY = 15.0
"""Seconds before a camera that was offline when its check came due is looked at again."""


class ImageHealthRule(Rule):
    name = "image_health"
    options_model = HealthOptions

    def __init__(self, ctx: RuleContext, options: StrictModel | None) -> None:
        super().__init__(ctx, options)
        self.opts: HealthOptions = options if isinstance(options, HealthOptions) else HealthOptions()
        self.pool = HealthPool(self.opts.workers, self.opts.pool)
        self._store: ReferenceStore | None = None
        self.monitors: dict[str, CameraMonitor] = {}
        self.configs: dict[str, Any] = {}
        self.schedule: Schedule | None = None
        self._refs: dict[str, tuple[int, Any]] = {}
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._night: bool | None = None
        self._task: asyncio.Task[Any] | None = None
        self._wake = asyncio.Event()

    # ---------------------------------------------------------------- lifecycle
    def interval(self, cfg: Any) -> float:
        """Seconds between checks of one device (0 = not checked)."""
        interval = float(getattr(cfg, "health_interval", 0) or 0)
        if interval <= 0:
            return 0.0
        site = self.ctx.config.site(cfg.site) if cfg.site else None
        if site is not None and site.blackspot and self.opts.blackspot_interval > 0:
            interval = min(interval, self.opts.blackspot_interval)
        return interval

    def _local(self, iso: str) -> str:
        """A stored (UTC) time in the hub's timezone, for logs and events."""
        try:
            return datetime.fromisoformat(iso).astimezone(self.ctx.tz).isoformat(timespec="seconds")
        except (TypeError, ValueError):
            return iso

    @property
    def store(self) -> ReferenceStore:
        """The reference pictures (created on first use: it imports OpenCV)."""
        if self._store is None:
            from .reference import ReferenceStore

            self._store = ReferenceStore(self.ctx.config.data_dir)
        return self._store

    async def start(self) -> None:
        intervals: dict[str, float] = {}
        for kind in KINDS:
            for cfg in self.ctx.devices(kind):
                interval = self.interval(cfg)
                if interval > 0:
                    self.configs[cfg.id] = cfg
                    self.monitors[cfg.id] = CameraMonitor(cfg.id, self.opts)
                    self._locks[cfg.id] = asyncio.Lock()
                    intervals[cfg.id] = interval
        # give the drivers a moment to connect before the first pictures
        self.schedule = Schedule(intervals, self.ctx.clock.monotonic(), start_delay=min([1.0, *intervals.values()]))
        self.ctx.register_request("reference/set", self._request_set)
        self.ctx.register_request("reference/clear", self._request_clear)
        self.ctx.register_request("image_health/check", self._request_check)
        if self.monitors:
            self._task = self.ctx.create_task(self._loop(), name="image-health")
            self.ctx.log.info("checking the pictures of %d camera(s) with %d %s worker(s)", len(self.monitors),
                              self.pool.workers, self.pool.mode)

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        await cancel_and_wait(tasks, "image health")
        self.pool.close()

    # ---------------------------------------------------------------- schedule
    async def _loop(self) -> None:
        assert self.schedule is not None
        clock = self.ctx.clock
        while True:
            now = clock.monotonic()
            for device_id in self.schedule.due(now, busy=self._running):
                if not self.ctx.available(device_id):
                    self.schedule.postpone(device_id, now + min(OFFLINE_RETRY, self.schedule.intervals[device_id]))
                    continue
                task = self.ctx.create_task(self._check_logged(device_id), name=f"image-health-{device_id}")
                self._running[device_id] = task
                task.add_done_callback(lambda t, d=device_id: self._running.pop(d, None))
            nxt = self.schedule.next_time()
            delay = 60.0 if nxt is None else max(0.0, nxt - clock.monotonic())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(delay, 60.0))

    async def _check_logged(self, device_id: str) -> None:
        try:
            await self.check(device_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not stop the other cameras' checks
            self.ctx.log.error("image check of %s failed: %s", device_id, describe_error(exc))

    def is_night(self) -> bool:
        """Night at the hub's location (with the sun's hysteresis); day when no location is set."""
        if self.ctx.sun is None:
            return False
        self._night = self.ctx.sun.is_night(self.ctx.clock.now(), self._night)
        return self._night

    # ---------------------------------------------------------------- one check
    async def _reference(self, device_id: str) -> Any:
        stamp = self.store.stamp(device_id)
        if stamp is None:
            self._refs.pop(device_id, None)
            return None
        cached = self._refs.get(device_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            signature = await self.pool.run(self.store.signature, device_id)
        except (DeviceError, OSError, ValueError) as exc:
            self.ctx.log.warning("reference picture of %s is unusable (%s); ignoring it", device_id,
                                 describe_error(exc))
            signature = None
        self._refs[device_id] = (stamp, signature)
        return signature

    async def grab(self, device_id: str, *, previous: Any = None, reference: Any = None,
                   want_picture: bool = False, keep_latest: bool = False) -> FrameStats:
        """One measured picture from the device's configured source (raises DeviceError)."""
        cfg = self.configs[device_id]
        o = self.opts
        from .sources import check_snapshot, check_stream

        latest = str(self.store.latest_path(device_id)) if keep_latest else None
        when = self.ctx.clock.now().isoformat()
        url = self.ctx.stream_url(device_id) if getattr(cfg, "health_source", "snapshot") == "stream" else None
        if url:
            return await self.pool.run(check_stream, url, previous, reference, latest, want_picture,
                                       o.connect_timeout, o.read_timeout, o.frame_timeout, when)
        jpeg = await self.ctx.snapshot(device_id)
        stats = await self.pool.run(check_snapshot, jpeg, previous, reference, latest, False, when)
        if want_picture:
            from dataclasses import replace

            stats = replace(stats, picture=bytes(jpeg))
        return stats

    async def check(self, device_id: str) -> Outcome:
        """Check one device now: take a picture, measure it, publish, emit events."""
        monitor = self.monitors[device_id]
        async with self._locks[device_id]:
            night = self.is_night()
            reference = await self._reference(device_id)
            need_reference = reference is None and not night and not self.store.has(device_id)
            try:
                stats = await self.grab(device_id, previous=monitor.previous, reference=reference,
                                        want_picture=need_reference, keep_latest=self.opts.keep_latest)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the driver's or the stream's failure: no picture this time
                if not self.ctx.available(device_id):
                    return Outcome()  # the hub already says it is offline
                outcome = monitor.on_failure(describe_error(exc))
                taken: FrameStats | None = None
            else:
                live = bool(self.ctx.available(device_id)) and not self.ctx.state(device_id).get("video_loss")
                outcome = monitor.on_frame(stats, night, live)
                taken = stats
            if outcome.fields:
                self.ctx.update_device(device_id, outcome.fields)
            for type_, data in outcome.events:
                self.ctx.event(type_, **data)
            if (taken is not None and need_reference and outcome.healthy and not monitor.problems
                    and taken.picture is not None):
                meta = await self._save_reference(device_id, taken, "auto")
                self.ctx.log.info("%s: first healthy daylight picture stored as the reference (%s)", device_id,
                                  self._local(meta["time"]))
            return outcome

    async def _save_reference(self, device_id: str, stats: FrameStats, source: str) -> dict[str, Any]:
        assert stats.picture is not None
        meta = await self.pool.run(self.store.save, device_id, stats.picture, source=source,
                                   time=self.ctx.clock.now(), width=stats.width, height=stats.height,
                                   brightness=stats.brightness, sharpness=stats.sharpness)
        self._refs.pop(device_id, None)
        # the files keep UTC (their contract); what a person reads is in the hub's timezone
        self.ctx.event("reference_set", device=device_id, source=source, time=self._local(meta["time"]))
        return meta

    # ---------------------------------------------------------------- hub callbacks
    def on_availability(self, change: AvailabilityChange) -> None:
        monitor = self.monitors.get(change.device_id)
        if monitor is None or change.available:
            return
        monitor.reset()
        state = self.ctx.state(change.device_id)
        if any(state.get(k) is not None for k in ("brightness", "sharpness", "dark", "image")):
            self.ctx.update_device(change.device_id, {"brightness": None, "sharpness": None, "dark": None,
                                                      "image": None})

    # ---------------------------------------------------------------- MQTT requests
    def _device(self, body: dict[str, Any]) -> str:
        device_id = body.get("device")
        if not isinstance(device_id, str) or device_id not in self.monitors:
            known = ", ".join(sorted(self.monitors)) or "none"
            raise ValueError(f"'device' must name a checked camera (checked: {known})")
        return device_id

    async def _request_set(self, body: dict[str, Any]) -> dict[str, Any]:
        device_id = self._device(body)
        stats = await self.grab(device_id, want_picture=True)
        problems = []
        o = self.opts
        if stats.brightness < o.dark_below:
            problems.append(f"dark (brightness {stats.brightness:.0f})")
        if (stats.contrast < o.cover_max_contrast and stats.edges < o.cover_max_edges
                and stats.brightness >= o.cover_min_brightness):
            problems.append("covered (no structure)")
        elif stats.sharpness < o.blur_below and stats.brightness >= o.dark_below:
            problems.append(f"blurry (sharpness {stats.sharpness:.2f})")
        if problems and not body.get("force"):
            raise ValueError(f"the picture is {', '.join(problems)}; send \"force\": true to use it anyway")
        return await self._save_reference(device_id, stats, "mqtt")

    async def _request_clear(self, body: dict[str, Any]) -> dict[str, Any]:
        device_id = self._device(body)
        removed = await asyncio.to_thread(self.store.clear, device_id)
        self._refs.pop(device_id, None)
        return {"device": device_id, "removed": removed}

    async def _request_check(self, body: dict[str, Any]) -> dict[str, Any]:
        device_id = self._device(body)
        outcome = await self.check(device_id)
        if not outcome.fields:
            raise ValueError(f"{device_id} is offline or gave no picture yet")
        return {"device": device_id, **outcome.fields}
