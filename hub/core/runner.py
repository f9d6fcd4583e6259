"""One device behind its own error boundary: connect, poll, listen, reconnect with capped backoff
(:class:`DeviceRunner`), and the :class:`hub.api.DeviceContext` its driver gets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.api import AuthError, DeviceConfig, Driver, PlatformSpec
from hub.api.runtime import cancel_and_wait, describe_error  # re-exported: hub.core.describe_error
from hub.netprobe import tcp_probe

if TYPE_CHECKING:
    from hub.core.hub import Hub

log = logging.getLogger("hub")


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
        self.hub.store.update(self.device_id, fields)

    def event(self, type: str, **data: Any) -> None:
        self.hub.store.emit(type, device=self.device_id, site=self.site, **data)

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
        return self.hub.store.state(device_id or self.device_id)

    def remember(self, key: str, value: Any) -> None:
        """Kept in the history database, written before the acknowledgement of the command that
        changed it (a light's manual hold); the registry keeps a copy for older hubs."""
        self.hub.storage.remember(self.device_id, key, value)

    def recall(self, key: str) -> Any:
        return self.hub.storage.recall(self.device_id, key)


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
            hub.store.set_available(cfg.id, False, self.error)
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
                    hub.store.update(cfg.id, fields)
                hub.store.set_available(cfg.id, True)
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
                hub.store.set_available(cfg.id, False, self.error,
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
