"""A :class:`hub.api.DeviceContext` for a driver used outside a running hub: a CLI command that
connects to one device (``anninh reference``) or only constructs its driver to read its kind
(``anninh acl``). State and events go nowhere, MQTT is not connected, remembered values last as
long as the object. It implements every member of the protocol (``tests/test_testkit.py`` checks
it), so a driver that recalls a value in its constructor works here as in the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any

from hub.clock import SystemClock

if TYPE_CHECKING:
    from hub.api import DeviceConfig
    from hub.clock import Clock
    from hub.sun import Sun


class _NoMqtt:
    """MQTT access of a detached driver: publishes are dropped, subscriptions never fire."""

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> None:
        pass

    def subscribe(self, topic: str, callback: Callable[[str, bytes], None]) -> Callable[[], None]:
        return lambda: None


class DetachedContext:
    def __init__(self, config: DeviceConfig, *, tz: tzinfo = UTC, log_name: str = "hub.device") -> None:
        self.device_id = config.id
        self.site = config.site
        self.clock: Clock = SystemClock()
        self.tz = tz
        self.sun: Sun | None = None
        self.log = logging.getLogger(f"{log_name}.{config.id}")
        self.mqtt = _NoMqtt()
        self._memory: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def update(self, fields: Mapping[str, Any]) -> None:
        pass

    def event(self, type: str, **data: Any) -> None:
        pass

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any] | None:
        """Runs on the running loop; with none (a driver only constructed), the coroutine is closed."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            return None
        task = loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_tasks(self) -> None:
        """Cancel the driver's tasks and wait for them (the command using the driver is done)."""
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t

    def state(self, device_id: str | None = None) -> Mapping[str, Any]:
        return {}

    def remember(self, key: str, value: Any) -> None:
        if value is None:
            self._memory.pop(key, None)
        else:
            self._memory[key] = value

    def recall(self, key: str) -> Any:
        return self._memory.get(key)
