"""The hub: runs every device behind its own error boundary, keeps the last known state,
fans changes out to the MQTT bridge, the history and the rules.

Data flow::

    driver.poll() / ctx.update()  ──►  Hub.update()  ──►  listeners (bridge, history, rules)
    MQTT /set  ──►  Hub.command()  ──►  driver.handle_command()  ──►  Hub.update()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from hub.api import (
    AuthError,
    AvailabilityChange,
    Command,
    CommandError,
    DeviceConfig,
    DeviceError,
    DeviceInfo,
    Driver,
    HubEvent,
    PlatformSpec,
    Rule,
    StateChange,
)
from hub.api.runtime import cancel_and_wait, describe_error  # re-exported: hub.core.describe_error
from hub.clock import Clock, SystemClock
from hub.config import Config
from hub.netprobe import tcp_probe
from hub.plugins import PluginManager
from hub.redact import redact, redact_cut
from hub.storage import History, Registry
from hub.sun import Sun

log = logging.getLogger("hub")

_MISSING = object()


@dataclass
class Backoff:
    """Capped exponential backoff for reconnects."""

    initial: float = 1.0
    maximum: float = 120.0
    auth_minimum: float = 30.0
    """A refused password is retried no faster than this: never hammer a device's login."""
    probe_interval: float = 3.0
    """While a device whose TCP port was closed (or silent) waits out a longer backoff: seconds
    between bare TCP connects to its ``host``/``port``; the wait ends when one succeeds, so a
    device back from a long outage is seen within seconds, not at the next (up to 120 s) attempt."""


class DeviceContextImpl:
    """The :class:`hub.api.DeviceContext` a driver gets."""

    def __init__(self, hub: Hub, config: DeviceConfig) -> None:
        self.hub = hub
        self.device_id = config.id
        self.site = config.site
        self.clock = hub.clock
        self.tz = hub.tz
        self.sun = hub.sun
        self.log = logging.getLogger(f"hub.device.{config.id}")
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def mqtt(self) -> Any:
        return self.hub.mqtt_access

    def update(self, fields: Mapping[str, Any]) -> None:
        self.hub.update(self.device_id, fields)

    def event(self, type: str, **data: Any) -> None:
        self.hub.emit(type, device=self.device_id, site=self.site, **data)

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name or f"{self.device_id}-task")
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.debug("task %s ended: %s", task.get_name(), describe_error(task.exception()))  # type: ignore[arg-type]

    async def cancel_tasks(self) -> None:
        await cancel_and_wait(list(self.tasks), f"{self.device_id}")

    def state(self, device_id: str | None = None) -> Mapping[str, Any]:
        return self.hub.states.get(device_id or self.device_id, {})

    def remember(self, key: str, value: Any) -> None:
        """Kept in the history database, written before the acknowledgement of the command that
        changed it (a light's manual hold); the registry keeps a copy for older hubs."""
        if self.hub.history is not None:
            self.hub.history.put_data(self.device_id, key, value)
        if self.hub.registry is not None:
            self.hub.registry.put_data(self.device_id, key, value)

    def recall(self, key: str) -> Any:
        history = self.hub.history
        if history is not None and history.has_data(self.device_id, key):
            return history.get_data(self.device_id, key)
        return self.hub.registry.get_data(self.device_id, key) if self.hub.registry is not None else None


class DeviceRunner:
    """Runs one device: connect, poll, listen, reconnect with backoff. Never raises."""

    def __init__(self, hub: Hub, config: DeviceConfig, spec: PlatformSpec) -> None:
        self.hub = hub
        self.config = config
        self.spec = spec
        self.ctx = DeviceContextImpl(hub, config)
        self.driver: Driver | None = None
        self.error: str | None = None
        self.connected = False
        self.lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._listen_task: asyncio.Task[None] | None = None
        self._listen_error: BaseException | None = None
        self.stopping = False
        try:
            self.driver = spec.driver(config, self.ctx)
        except Exception as exc:
            self.error = f"driver could not be created: {describe_error(exc)}"

    @property
    def kind(self) -> str:
        return self.driver.kind if self.driver is not None else "device"

    def start(self, delay: float = 0.0) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(delay), name=f"device-{self.config.id}")

    async def run(self, delay: float = 0.0) -> None:
        cfg, hub = self.config, self.hub
        if delay > 0:
            await asyncio.sleep(delay)
        if self.driver is None:
            hub.set_available(cfg.id, False, self.error)
            return
        driver = self.driver
        backoff = hub.backoff.initial
        while not self.stopping:
            try:
                if not self.connected:
                    async with self.lock:
                        async with asyncio.timeout(cfg.timeout):
                            info = await driver.connect()
                    self.connected = True
                    hub.device_seen(cfg, info)
                    if type(driver).listen is not Driver.listen:
                        self._start_listen()
                elif self._listen_task is None and type(driver).listen is not Driver.listen:
                    self._start_listen()
                async with self.lock:
                    async with asyncio.timeout(cfg.timeout):
                        fields = await driver.poll()
                if fields:
                    hub.update(cfg.id, fields)
                hub.set_available(cfg.id, True)
                backoff = hub.backoff.initial
                self._wake.clear()
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
                # arrives as the timeout fires, and the hub's stop then hangs on this task
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(cfg.poll_interval):
                        await self._wake.wait()
                if self._listen_error is not None:
                    exc, self._listen_error = self._listen_error, None
                    raise exc
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = describe_error(exc, cfg.timeout)
                hub.set_available(cfg.id, False, self.error,
                                  error_kind="auth" if isinstance(exc, AuthError) else None)
                await self._disconnect()
                wait = max(backoff, hub.backoff.auth_minimum) if isinstance(exc, AuthError) else backoff
                backoff = min(max(backoff * 2, hub.backoff.initial), hub.backoff.maximum)
                await self._wait_before_retry(wait, exc)

    def probe_target(self) -> tuple[str, int] | None:
        """The device's TCP ``host``/``port`` from its config, if it has them (a serial UPS has not)."""
        host, port = getattr(self.config, "host", None), getattr(self.config, "port", None)
        if isinstance(host, str) and host and isinstance(port, int) and not isinstance(port, bool) and port > 0:
            return host, port
        return None

    async def _wait_before_retry(self, wait: float, exc: Exception) -> None:
        """Sleep the backoff; but when the device's TCP port does not accept connections now,
        probe it every :attr:`Backoff.probe_interval` seconds and end the wait once it does. A
        port that is open (the trouble is above TCP: a login refused, a gateway whose device is
        silent) keeps the whole backoff: probing would not tell when that is fixed."""
        interval = self.hub.backoff.probe_interval
        target = self.probe_target()
        if target is None or isinstance(exc, AuthError) or interval <= 0 or wait <= interval:
            await asyncio.sleep(wait)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        timeout = min(1.0, self.config.timeout)
        if await tcp_probe(*target, timeout=timeout):
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            return
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(interval, left))
            if deadline - loop.time() > 0 and await tcp_probe(*target, timeout=timeout):
                return

    def _start_listen(self) -> None:
        assert self.driver is not None

        async def listen() -> None:
            assert self.driver is not None
            try:
                await self.driver.listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._listen_error = exc
                self._wake.set()
            finally:
                self._listen_task = None

        self._listen_task = asyncio.get_running_loop().create_task(listen(), name=f"listen-{self.config.id}")

    async def _disconnect(self) -> None:
        self.connected = False
        if self._listen_task is not None:
            await cancel_and_wait([self._listen_task], f"listen of {self.config.id}")
            self._listen_task = None
        await self.ctx.cancel_tasks()
        if self.driver is not None:
            try:
                async with asyncio.timeout(5):
                    await self.driver.close()
            except Exception as exc:
                self.ctx.log.debug("close failed: %s", describe_error(exc))

    async def stop(self) -> None:
        self.stopping = True
        if self.task is not None:
            await cancel_and_wait([self.task], f"device {self.config.id}")
        await self._disconnect()


@dataclass
class Listener:
    """Receives everything the hub does; the MQTT bridge, history and rules are listeners."""

    on_state: Callable[[StateChange], None] | None = None
    on_availability: Callable[[AvailabilityChange], None] | None = None
    on_event: Callable[[HubEvent], None] | None = None
    on_site: Callable[[str, Mapping[str, Any]], None] | None = None
    on_device_info: Callable[[str], None] | None = None


class RuleContextImpl:
    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.clock = hub.clock
        self.sun = hub.sun
        self.config = hub.config
        self.tz = hub.tz
        self.log = logging.getLogger(f"hub.rule.{name}")

    def state(self, device_id: str) -> Mapping[str, Any]:
        return self.hub.states.get(device_id, {})

    def available(self, device_id: str) -> bool | None:
        return self.hub.availability.get(device_id)

    def device_kind(self, device_id: str) -> str:
        runner = self.hub.runners.get(device_id)
        return runner.kind if runner else "device"

    async def command(self, device_id: str, payload: Mapping[str, Any], *, reason: str | None = None) -> None:
        await self.hub.command(device_id, dict(payload), source=f"rule:{self.name}", reason=reason)

    def event(self, type: str, **data: Any) -> None:
        self.hub.emit(type, **data)

    def set_site_state(self, site_id: str, fields: Mapping[str, Any]) -> None:
        self.hub.set_site_state(site_id, fields)

    def site_state(self, site_id: str) -> Mapping[str, Any]:
        return self.hub.site_states.get(site_id, {})

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        return self.hub.create_task(coro, name=name or f"rule-{self.name}")

    def devices(self, kind: str | None = None) -> list[DeviceConfig]:
        return [r.config for r in self.hub.runners.values() if kind is None or r.kind == kind]

    def update_device(self, device_id: str, fields: Mapping[str, Any]) -> None:
        self.hub.update(device_id, fields)

    async def snapshot(self, device_id: str, channel: int | None = None) -> bytes:
        runner = self.hub.runners.get(device_id)
        if runner is None or runner.driver is None:
            raise DeviceError(f"unknown device {device_id!r}")
        async with asyncio.timeout(runner.config.timeout):
            return await runner.driver.snapshot(channel)

    def stream_url(self, device_id: str, channel: int | None = None) -> str | None:
        runner = self.hub.runners.get(device_id)
        if runner is None or runner.driver is None:
            return None
        return runner.driver.stream_url(channel)

    def register_request(self, name: str, handler: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
        self.hub.requests[name] = handler


_WORDS = frozenset({"on", "off", "toggle", "auto", "manual"})
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")


def audit_form(payload: Any) -> dict[str, Any]:
    """What the audit trail keeps of a command: field names that look like field names, numbers,
    booleans and the command words; any other text only as its length (a person may type a
    password anywhere), or masked where it holds a known secret."""
    if not isinstance(payload, dict):
        return {"raw": f"<{type(payload).__name__}>"}
    out: dict[str, Any] = {}
    for i, (key, value) in enumerate(payload.items()):
        if i == 8:
            out["..."] = f"{len(payload) - 8} more field(s)"
            break
        k = str(key)
        name = k if _FIELD.fullmatch(k) else (redact(k) if redact(k) != k else f"<field of {len(k)} chars>")
        out[name] = _audit_value(value)
    return out


def _audit_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        if value.lower() in _WORDS:
            return value
        masked = redact(value)
        return masked if masked != value else f"<text of {len(value)} chars>"
    if isinstance(value, list | tuple | dict):
        return f"<{type(value).__name__} of {len(value)}>"
    return f"<{type(value).__name__}>"


@dataclass
class _Rejections:
    """Rejections of one user and kind within one interval, beyond the first (already reported)."""

    count: int = 0
    device: str = ""
    error: str = ""
    source: str = ""


class Hub:
    """Owns the devices, the state store, the event fan-out, storage and rules."""

    rejection_interval = 10.0
    """A named user's rejected commands of one kind are reported once per this many seconds: the
    first at once, the others in one ``command_rejected`` with their ``count`` at the end."""

    def __init__(self, config: Config, plugins: PluginManager, *, clock: Clock | None = None,
                 backoff: Backoff | None = None, storage: bool = True) -> None:
        self.config = config
        self.plugins = plugins
        self.clock: Clock = clock or SystemClock()
        self.backoff = backoff or Backoff()
        h = config.hub
        self.tz = ZoneInfo(h.timezone)
        self.sun = Sun(h.latitude, h.longitude, h.timezone) if h.latitude is not None else None
        self.states: dict[str, dict[str, Any]] = {}
        self.availability: dict[str, bool] = {}
        self.errors: dict[str, str | None] = {}
        self.error_kinds: dict[str, str | None] = {}
        self.site_states: dict[str, dict[str, Any]] = {s.id: {"power": "unknown"} for s in config.sites}
        self.runners: dict[str, DeviceRunner] = {}
        self.listeners: list[Listener] = []
        self._state_callbacks: list[Callable[[StateChange], None]] = []
        self.rules: dict[str, Rule] = {}
        self.requests: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {}
        # requests answered per user on <base>/bridge/request/<name>/<user> (the user from the topic)
        self.user_requests: dict[str, Callable[[dict[str, Any], str], Awaitable[Any]]] = {}
        self.mqtt_access: Any = None
        self.registry: Registry | None = None
        self.history: History | None = None
        self._use_storage = storage
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.started = asyncio.Event()
        self._rejections: dict[tuple[str, str], _Rejections] = {}
        self._durable: list[asyncio.Future[None]] = []

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)
        if listener.on_state is not None:
            self._state_callbacks.append(listener.on_state)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self._use_storage:
            data = self.config.data_dir
            data.mkdir(parents=True, exist_ok=True)
            self.registry = Registry(data / "registry.json")
            h = self.config.hub
            self.history = History(data / "history.db", max_bytes=int(h.history_max_mb * 1_000_000))
            self.add_listener(Listener(on_state=self._record_state, on_event=self._record_event))
            self.create_task(self._flush_loop(), name="storage-flush")
        platforms = self.plugins.platforms()
        for dev in self.config.devices:
            if not dev.enabled:
                continue
            spec = platforms[dev.platform]
            self.states[dev.id] = {}
            self.runners[dev.id] = DeviceRunner(self, dev, spec)
        for i, runner in enumerate(self.runners.values()):
            # stagger the first connects (200 a second) and so spread the polls over the interval:
            # 2,000 devices connecting at once overflow a gateway's (or a simulator's) listen backlog
            runner.start(delay=(i * 0.005) % max(runner.config.poll_interval, 0.005))
        await self._start_rules()
        self.started.set()
        log.info("hub started: %d device(s), %d site(s), %d rule(s)", len(self.runners),
                 len(self.config.sites), len(self.rules))

    async def _start_rules(self) -> None:
        specs = self.plugins.rules()
        for name, spec in specs.items():
            if not self.config.rules_enabled.get(name, spec.default_enabled):
                continue
            try:
                rule = spec.factory(RuleContextImpl(self, name), self.config.rules.get(name))
                await rule.start()
            except Exception as exc:
                log.error("rule %s failed to start and is disabled: %s", name, describe_error(exc))
                continue
            self.rules[name] = rule

    async def stop(self) -> None:
        self._stopping = True
        for rule in self.rules.values():
            try:
                await rule.stop()
            except Exception as exc:
                log.warning("rule %s failed to stop: %s", rule.name, describe_error(exc))
        await asyncio.gather(*(r.stop() for r in self.runners.values()), return_exceptions=True)
        await cancel_and_wait(list(self._tasks), "hub")
        for key in list(self._rejections):  # the summaries not yet due
            self._end_rejections(key)
        if self.history is not None:
            self.history.close()
        if self.registry is not None:
            self.registry.close()
        log.info("hub stopped")

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("task %s failed: %s", t.get_name(), describe_error(t.exception()))  # type: ignore[arg-type]

        task.add_done_callback(done)
        return task

    async def _flush_loop(self) -> None:
        last_registry = 0.0
        last_purge = 0.0
        last_budget = 0.0
        last_checkpoint = 0.0
        while True:
            await asyncio.sleep(1.0)
            try:
                if self.history is not None and self.history.pending:
                    # in the loop on purpose: sqlite3 takes the GIL for every row, so a worker thread
                    # competing with a busy loop crawls (measured: no flush at all in 4 s under load)
                    self.history.flush()
                now = self.clock.monotonic()
                if self.history is not None and now - last_checkpoint >= 2:
                    last_checkpoint = now
                    await asyncio.to_thread(self.history.checkpoint)
                if self.history is not None and now - last_budget >= 30:
                    last_budget = now
                    await asyncio.to_thread(self.history.enforce_budget)
                if self.registry is not None and now - last_registry >= 5:
                    last_registry = now
                    await asyncio.to_thread(self.registry.flush)
                if self.history is not None and now - last_purge >= 86400:
                    last_purge = now
                    from hub.storage import retention_cutoff
                    await asyncio.to_thread(self.history.purge,
                                            retention_cutoff(self.clock.now(), self.config.hub.history_days))
            except Exception as exc:
                log.error("storage write failed: %s", describe_error(exc))

    def local_now(self) -> datetime:
        """The clock's time in the hub's timezone (events carry the local offset, e.g. +07:00)."""
        return self.clock.now().astimezone(self.tz)

    # ---------------------------------------------------------------- state
    def device_seen(self, config: DeviceConfig, info: DeviceInfo | None) -> None:
        if self.registry is not None:
            self.registry.seen(config.id, config.platform, self.clock.now(), info)
        if info is not None:
            fields = {k: getattr(info, k) for k in ("model", "serial", "firmware", "manufacturer")
                      if getattr(info, k) is not None}
            fields.update(info.extra)
            if fields:
                self.update(config.id, fields)
        for lst in self.listeners:
            if lst.on_device_info:
                lst.on_device_info(config.id)

    def update(self, device_id: str, fields: Mapping[str, Any]) -> None:
        state = self.states.get(device_id)
        if state is None:
            return
        changed = {k: v for k, v in fields.items() if state.get(k, _MISSING) != v}
        if not changed:
            return
        state.update(changed)
        runner = self.runners.get(device_id)
        change = StateChange(device_id=device_id, site=runner.config.site if runner else None,
                             state=state, changed=changed, time=self.clock.now())
        for callback in self._state_callbacks:
            callback(change)
        for rule in self.rules.values():
            try:
                rule.on_state(change)
            except Exception as exc:
                log.error("rule %s failed on a state change of %s: %s", rule.name, device_id,
                          describe_error(exc))

    def set_available(self, device_id: str, available: bool, error: str | None = None, *,
                      error_kind: str | None = None) -> None:
        previous = self.availability.get(device_id)
        self.errors[device_id] = None if available else error
        if previous is available:
            return
        self.error_kinds[device_id] = None if available else error_kind
        self.availability[device_id] = available
        runner = self.runners.get(device_id)
        site = runner.config.site if runner else None
        if available:
            if previous is None:
                log.info("%s online", device_id)
            else:
                log.warning("%s back online", device_id)
        else:
            log.warning("%s offline: %s", device_id, error or "unknown error")
            stale = getattr(runner.driver, "stale_fields", ()) if runner and runner.driver else ()
            if stale:
                self.update(device_id, dict.fromkeys(stale))
        change = AvailabilityChange(device_id=device_id, site=site, available=available,
                                    error=error, time=self.clock.now(), error_kind=self.error_kinds[device_id])
        for lst in self.listeners:
            if lst.on_availability:
                lst.on_availability(change)
        if previous is not None or not available:
            data = {} if available else {"error": error or "unknown error"}
            self.emit("device_online" if available else "device_offline", device=device_id,
                      site=site, **data)
        for rule in self.rules.values():
            try:
                rule.on_availability(change)
            except Exception as exc:
                log.error("rule %s failed on availability of %s: %s", rule.name, device_id,
                          describe_error(exc))

    def set_site_state(self, site_id: str, fields: Mapping[str, Any]) -> None:
        state = self.site_states.setdefault(site_id, {})
        changed = {k: v for k, v in fields.items() if state.get(k, _MISSING) != v}
        if not changed:
            return
        state.update(changed)
        for lst in self.listeners:
            if lst.on_site:
                lst.on_site(site_id, state)

    def emit(self, type: str, *, device: str | None = None, site: str | None = None, **data: Any) -> None:
        if device is not None and site is None:
            runner = self.runners.get(device)
            site = runner.config.site if runner else None
        data = {k: v for k, v in data.items() if v is not None}
        event = HubEvent(type=type, time=self.local_now(), device=device, site=site, data=data)
        for lst in self.listeners:
            if lst.on_event:
                try:
                    lst.on_event(event)
                except Exception:
                    log.exception("event listener failed on %s", type)
        for rule in self.rules.values():
            try:
                rule.on_event(event)
            except Exception as exc:
                log.error("rule %s failed on event %s: %s", rule.name, type, describe_error(exc))

    # ---------------------------------------------------------------- commands
    async def command(self, device_id: str, payload: dict[str, Any], *, source: str = "mqtt",
                      user: str | None = None, reason: str | None = None) -> bool:
        """Validate and carry out a command. Returns True when the device took it."""
        runner = self.runners.get(device_id)
        if runner is None or runner.driver is None:
            self.reject_command(device_id, "unknown device" if runner is None else "device has no driver",
                                user=user, payload=payload, source=source, kind="unknown_device")
            return False
        refusal = self._refuse_user(user, runner.config.site) if user is not None else None
        if refusal is not None:
            self.reject_command(device_id, refusal, user=user, payload=payload, source=source, kind="not_allowed")
            return False
        model = runner.driver.command_model
        if model is None:
            self.reject_command(device_id, "this device takes no commands", user=user, payload=payload,
                                source=source, kind="unknown_device")
            return False
        try:
            # strict: no coercion of "3600" or true into numbers (the documented payloads only)
            parsed = model.model_validate(payload, strict=True)
        except ValidationError as exc:
            self.reject_command(device_id, _short_validation(exc), user=user, payload=payload, source=source,
                                kind="invalid")
            return False
        cmd = Command(payload=parsed, source=source, user=user, reason=reason)
        done = parsed.model_dump(exclude_none=True, mode="json")
        try:
            async with runner.lock:
                async with asyncio.timeout(runner.config.timeout):
                    result = await runner.driver.handle_command(cmd)
        except CommandError as exc:
            self.reject_command(device_id, redact(str(exc)), user=user, payload=payload, source=source,
                                kind="refused")
            await self.durable()
            return False
        except Exception as exc:
            error = describe_error(exc, runner.config.timeout)
            self._audit(user, device_id, done, source, "failed", error)
            self.emit("command_failed", device=device_id, error=error, user=user, source=source)
            log.warning("command failed: %s", self._describe(user, device_id, done, source, error))
            await self.durable()
            return False
        if result:
            self.update(device_id, result)
        self._audit(user, device_id, done, source, "ok", None)
        if source != "internal" and cmd.by_person:
            self.emit("command", device=device_id, user=user, source=source, command=done)
            log.info("command: %s", self._describe(user, device_id, done, source, None))
        await self.durable()
        return True

    @staticmethod
    def _describe(user: str | None, device: str, command: Any, source: str, error: str | None) -> str:
        """One log line's worth: who, which device, what; never a secret."""
        who = f"user {redact_cut(user, 64)}" if user is not None else f"anonymous ({source})"
        what = json.dumps(audit_form(command), ensure_ascii=False, separators=(",", ":"))
        return redact(f"{who} -> {redact_cut(device, 64)} {what}" + (f": {error}" if error else ""))

    async def durable(self) -> None:
        """Return once what is buffered for the history (audit rows, remembered values such as a
        light's manual hold) is committed: a command is acknowledged after this. The commands
        finished within one loop turn share one commit (WAL, synchronous=NORMAL: a write to the
        journal, no fsync; it survives a kill -9 of the hub)."""
        if self.history is None:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        if not self._durable:
            loop.call_soon(self._commit_durable)
        self._durable.append(waiter)
        await waiter

    def _commit_durable(self) -> None:
        waiters, self._durable = self._durable, []
        try:
            if self.history is not None:
                self.history.flush()
        except Exception as exc:
            log.error("history write failed: %s", describe_error(exc))
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def _refuse_user(self, user: str, site: str | None) -> str | None:
        """Roles checked in the hub too, not only by the broker's ACL (defence in depth). With no
        ``users:`` in the config, any name is taken as given (installs without accounts)."""
        if not self.config.users:
            return None
        account = next((u for u in self.config.users if u.name == user), None)
        if account is None:
            return f"unknown user {redact_cut(user, 64)!r}"  # redacted before it is cut
        if account.role not in ("officer", "installer"):
            return f"role {account.role} may not send commands"
        if account.sites is not None and site not in account.sites:
            return f"user {user} may not command devices at this site"
        return None

    def reject_command(self, device_id: str, error: str, *, user: str | None, payload: Any, source: str,
                       kind: str = "invalid") -> None:
        """Audit, log and announce a rejected command. A named user's rejections are summarised:
        per user and ``kind`` (``malformed``, ``unknown_device``, ``not_allowed``, ``invalid``,
        ``refused``) the first of each :attr:`rejection_interval` is reported at once, the rest in
        one ``command_rejected`` with a ``count`` when the interval ends, so a flood of bad commands
        costs a few rows and events, not one each. This applies where the config has ``users``
        (the broker's ACL then vouches for the name in ``/set/<user>``); anonymous ``/set`` and
        installs without accounts get every rejection reported, and the history's size budget."""
        if user is not None and self.config.users:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            key = (user, kind)
            if loop is not None:
                window = self._rejections.get(key)
                if window is not None:
                    window.count += 1
                    window.device, window.error, window.source = device_id, error, source
                    return
                self._rejections[key] = _Rejections()
                loop.call_later(self.rejection_interval, self._end_rejections, key)
        self._report_rejection(device_id, error, user=user, payload=payload, source=source, kind=kind)

    def _end_rejections(self, key: tuple[str, str]) -> None:
        window = self._rejections.pop(key, None)
        if window is None or not window.count:
            return
        user, kind = key
        self._report_rejection(window.device, window.error, user=user, payload=None, source=window.source,
                               kind=kind, count=window.count)

    def _report_rejection(self, device_id: str, error: str, *, user: str | None, payload: Any, source: str,
                          kind: str, count: int = 0) -> None:
        summary = f" ({count} more {kind} command(s) rejected in {self.rejection_interval:g} s; last shown)" \
            if count else ""
        self._audit(user, device_id, payload if not count else {"rejected": count}, source, "rejected",
                    error + summary)
        data: dict[str, Any] = {"error": error, "source": source}
        if user:
            data["user"] = redact_cut(user, 64)
        if count:
            data["count"] = count
        known = device_id in self.runners
        self.emit("command_rejected", device=device_id if known else None, **data,
                  **({} if known else {"target": redact_cut(device_id, 64)}))
        log.info("command rejected: %s%s", self._describe(user, device_id, payload if not count else {},
                                                          source, error), summary)

    def _audit(self, user: str | None, device: str, payload: Any, source: str, result: str,
               error: str | None) -> None:
        if self.history is None or not source or source.startswith("rule:"):
            return
        self.history.add_audit(self.clock.now(), user, device, audit_form(payload), result, error)

    # ---------------------------------------------------------------- storage listeners
    def _record_state(self, change: StateChange) -> None:
        assert self.history is not None
        self.history.add_state(change.time, change.device_id, change.changed)  # type: ignore[arg-type]

    def _record_event(self, event: HubEvent) -> None:
        assert self.history is not None
        self.history.add_event(event.time, event.type, event.device, event.site, dict(event.data))


def _short_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "command"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
