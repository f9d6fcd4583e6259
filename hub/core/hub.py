"""The hub: assembles the parts and runs them.

* :class:`~hub.core.runner.DeviceRunner`: one per device, behind its own error boundary;
* :class:`~hub.core.state.StateStore`: last known states, availability, site states, and the one
  guarded path that tells the listeners (bridge, history) and the rules of a change;
* :class:`~hub.core.commands.CommandService`: roles, validation, audit of commands;
* :class:`~hub.core.storage.Storage`: registry and history, flushed in the background;
* :class:`~hub.core.view.HubView` and :class:`~hub.core.view.RequestRegistry`: what the MQTT
  bridge reads (read-only) and the requests it answers.

Data flow::

    driver.poll() / ctx.update()  ──►  StateStore.update()  ──►  listeners (bridge, history), rules
    MQTT /set  ──►  CommandService.command()  ──►  driver.handle_command()  ──►  StateStore.update()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hub.api import DeviceConfig, DeviceInfo, Rule
from hub.clock import Clock, SystemClock
from hub.config import Config
from hub.core.commands import CommandService
from hub.core.runner import Backoff, DeviceRunner, cancel_and_wait, describe_error
from hub.core.state import Listener, StateStore
from hub.core.storage import Storage
from hub.core.view import HubView, RequestRegistry
from hub.i18n import set_language
from hub.plugins import PluginManager
from hub.storage import History, Registry
from hub.sun import Sun

log = logging.getLogger("hub")


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
        return self.hub.store.state(device_id)

    def available(self, device_id: str) -> bool | None:
        return self.hub.store.availability.get(device_id)

    def device_kind(self, device_id: str) -> str:
        runner = self.hub.runners.get(device_id)
        return runner.kind if runner else "device"

    async def command(self, device_id: str, payload: Mapping[str, Any], *, reason: str | None = None,
                      reason_code: str | None = None) -> None:
        await self.hub.commands.command(device_id, dict(payload), source=f"rule:{self.name}", reason=reason,
                                        reason_code=reason_code)

    def event(self, type: str, **data: Any) -> None:
        self.hub.store.emit(type, **data)

    def set_site_state(self, site_id: str, fields: Mapping[str, Any]) -> None:
        self.hub.store.set_site_state(site_id, fields)

    def site_state(self, site_id: str) -> Mapping[str, Any]:
        return self.hub.store.site_state(site_id)

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        return self.hub.create_task(coro, name=name or f"rule-{self.name}")

    def devices(self, kind: str | None = None) -> list[DeviceConfig]:
        return [r.config for r in self.hub.runners.values() if kind is None or r.kind == kind]

    def update_device(self, device_id: str, fields: Mapping[str, Any]) -> None:
        self.hub.store.update(device_id, fields)

    async def snapshot(self, device_id: str, channel: int | None = None) -> bytes:
        return await self.hub.view.snapshot(device_id, channel)

    def stream_url(self, device_id: str, channel: int | None = None) -> str | None:
        runner = self.hub.runners.get(device_id)
        if runner is None or runner.driver is None:
            return None
        return runner.driver.stream_url(channel)

    def register_request(self, name: str, handler: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
        self.hub.requests.register(name, handler)


class Hub:
    """Owns the devices and the rules, and assembles the state store, the command service and storage."""

    def __init__(self, config: Config, plugins: PluginManager, *, clock: Clock | None = None,
                 backoff: Backoff | None = None, storage: bool = True) -> None:
        self.config = config
        self.plugins = plugins
        self.clock: Clock = clock or SystemClock()
        self.backoff = backoff or Backoff()
        h = config.hub
        set_language(h.language)  # event messages and lights' reasons in the hub's language
        self.tz = ZoneInfo(h.timezone)
        self.sun = (Sun(h.latitude, h.longitude, h.timezone)
                    if h.latitude is not None and h.longitude is not None else None)
        self.runners: dict[str, DeviceRunner] = {}
        self.rules: dict[str, Rule] = {}
        self.store = StateStore(self.clock, self.tz, (s.id for s in config.sites), self.rules,
                                stale_fields=self._stale_fields)
        self.storage = Storage(config, self.clock)
        self.commands = CommandService(config, self.runners, self.store, self.storage)
        self.view = HubView(config, self.runners, self.store)
        self.requests = RequestRegistry()
        self.mqtt_access: Any = None
        self._use_storage = storage
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.started = asyncio.Event()

    def _stale_fields(self, device_id: str) -> tuple[str, ...]:
        runner = self.runners.get(device_id)
        return tuple(getattr(runner.driver, "stale_fields", ())) if runner and runner.driver else ()

    # ---------------------------------------------------------------- the parts' data, as before the split
    @property
    def states(self) -> dict[str, dict[str, Any]]:
        return self.store.states

    @property
    def availability(self) -> dict[str, bool]:
        return self.store.availability

    @property
    def errors(self) -> dict[str, str | None]:
        return self.store.errors

    @property
    def error_kinds(self) -> dict[str, str | None]:
        return self.store.error_kinds

    @property
    def site_states(self) -> dict[str, dict[str, Any]]:
        return self.store.site_states

    @property
    def listeners(self) -> list[Listener]:
        return self.store.listeners

    @property
    def registry(self) -> Registry | None:
        return self.storage.registry

    @property
    def history(self) -> History | None:
        return self.storage.history

    @property
    def rejection_interval(self) -> float:
        return self.commands.rejection_interval

    @rejection_interval.setter
    def rejection_interval(self, seconds: float) -> None:
        self.commands.rejection_interval = seconds

    def add_listener(self, listener: Listener) -> None:
        self.store.add_listener(listener)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self._use_storage:
            self.storage.open()
            self.add_listener(Listener(on_state=self.storage.record_state, on_event=self.storage.record_event,
                                       on_availability=self.storage.record_availability))
            self.storage.kind_of = lambda device: self.runners[device].kind if device in self.runners else "device"
            self.create_task(self.storage.flush_loop(), name="storage-flush")
        platforms = self.plugins.platforms()
        for dev in self.config.devices:
            if not dev.enabled:
                continue
            spec = platforms[dev.platform]
            self.store.add_device(dev.id, dev.site)
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
        self.commands.close()  # the rejection summaries not yet due
        self.storage.close()
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

    def local_now(self) -> datetime:
        """The clock's time in the hub's timezone (events carry the local offset, e.g. +07:00)."""
        return self.store.local_now()

    # ---------------------------------------------------------------- state (the store's)
    def device_seen(self, config: DeviceConfig, info: DeviceInfo | None) -> None:
        if self.registry is not None:
            self.registry.seen(config.id, config.platform, self.clock.now(), info)
        fields: dict[str, Any] = {}
        if info is not None:
            fields = {k: getattr(info, k) for k in ("model", "serial", "firmware", "manufacturer")
                      if getattr(info, k) is not None}
            fields.update(info.extra)
        self.store.device_info(config.id, fields)

    def update(self, device_id: str, fields: Mapping[str, Any]) -> None:
        self.store.update(device_id, fields)

    def set_available(self, device_id: str, available: bool, error: str | None = None, *,
                      error_kind: str | None = None) -> None:
        self.store.set_available(device_id, available, error, error_kind=error_kind)

    def set_site_state(self, site_id: str, fields: Mapping[str, Any]) -> None:
        self.store.set_site_state(site_id, fields)

    def emit(self, type: str, *, device: str | None = None, site: str | None = None, **data: Any) -> None:
        self.store.emit(type, device=device, site=site, **data)

    # ---------------------------------------------------------------- commands (the command service's)
    async def command(self, device_id: str, payload: dict[str, Any], *, source: str = "mqtt",
                      user: str | None = None, reason: str | None = None, reason_code: str | None = None) -> bool:
        """Validate and carry out a command. Returns True when the device took it."""
        return await self.commands.command(device_id, payload, source=source, user=user, reason=reason,
                                           reason_code=reason_code)

    def reject_command(self, device_id: str, error: str, *, user: str | None, payload: Any, source: str,
                       kind: str = "invalid") -> None:
        self.commands.reject_command(device_id, error, user=user, payload=payload, source=source, kind=kind)

    async def durable(self) -> None:
        await self.storage.durable()
