"""One fake :class:`hub.api.DeviceContext` for driver-level tests and benchmarks: the driver and
its simulator are real, the hub is not needed. It implements every member of the protocol
(``tests/test_testkit.py`` checks that against ``hub.api``, so it cannot drift) and records what the
driver reports.

    ctx = FakeDeviceContext("cam")
    driver = HikvisionDriver(config, ctx)
    await ctx.wait_for(lambda: ctx.of_type("motion", channel=1, active=True))
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, tzinfo
from typing import Any, NamedTuple

from hub.api.contract import EVENTS, check_event
from hub.clock import Clock, SystemClock
from hub.sun import Sun


class RecordedEvent(NamedTuple):
    """An event a driver emitted: a ``(type, data)`` pair that also reads like the flat JSON the
    hub publishes (``e["type"]``, ``e["channel"]``, ``e.get("ended")``)."""

    type: str
    data: dict[str, Any]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self.type if key == "type" else self.data[key]
        return tuple.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.type if key == "type" else self.data.get(key, default)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, **self.data}


class FakeMqtt:
    """The :class:`hub.api.MqttAccess` of a fake context: records publishes; :meth:`deliver` hands
    a message to the matching subscriptions (MQTT ``+``/``#`` wildcards), as the broker would."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, int, bool]] = []
        self._subs: list[tuple[str, Callable[[str, bytes], None]]] = []

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> None:
        self.published.append((topic, payload.encode() if isinstance(payload, str) else bytes(payload), qos, retain))

    def subscribe(self, topic: str, callback: Callable[[str, bytes], None]) -> Callable[[], None]:
        entry = (topic, callback)
        self._subs.append(entry)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subs.remove(entry)
        return unsubscribe

    @property
    def subscriptions(self) -> list[str]:
        return [t for t, _ in self._subs]

    def deliver(self, topic: str, payload: str | bytes) -> int:
        """Call every subscription matching ``topic``; returns how many were called."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        matching = [cb for pattern, cb in list(self._subs) if topic_matches(pattern, topic)]
        for cb in matching:
            cb(topic, data)
        return len(matching)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest)."""
    p, t = pattern.split("/"), topic.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(p) == len(t)


class FakeDeviceContext:
    """Records ``update`` into :attr:`fields`, ``event`` into :attr:`events`, ``remember`` into
    :attr:`memory` (JSON round trip, as the hub stores it: a value that is not JSON-able fails
    here too); tasks run on the running loop and :meth:`cancel_tasks` ends them as the hub does
    when a device stops. :attr:`others` holds the state :meth:`state` returns for other devices."""

    def __init__(self, device_id: str = "dev", site: str | None = None, *, clock: Clock | None = None,
                 tz: tzinfo = UTC, sun: Sun | None = None, mqtt: FakeMqtt | None = None,
                 memory: Mapping[str, Any] | None = None) -> None:
        self.device_id = device_id
        self.site = site
        self.clock: Clock = clock or SystemClock()
        self.tz = tz
        self.sun = sun
        self.log = logging.getLogger(f"test.device.{device_id}")
        self.mqtt = mqtt or FakeMqtt()
        self.fields: dict[str, Any] = {}
        self.updates: list[dict[str, Any]] = []
        self.events: list[RecordedEvent] = []
        self.memory: dict[str, str] = {k: json.dumps(v) for k, v in (memory or {}).items()}
        self.others: dict[str, dict[str, Any]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.updated = asyncio.Event()
        """Set by every :meth:`update` (clear it, then wait for the next one)."""

    # ---------------------------------------------------------------- hub.api.DeviceContext
    def update(self, fields: Mapping[str, Any]) -> None:
        self.updates.append(dict(fields))
        self.fields.update(fields)
        self.updated.set()

    def event(self, type: str, **data: Any) -> None:
        if type in EVENTS:  # every driver test also checks the declared events it causes (a drop-in's own are its own)
            check_event(type, data)
        self.events.append(RecordedEvent(type, data))

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name or f"{self.device_id}-task")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def state(self, device_id: str | None = None) -> Mapping[str, Any]:
        if device_id is None or device_id == self.device_id:
            return self.fields
        return self.others.get(device_id, {})

    def remember(self, key: str, value: Any) -> None:
        if value is None:
            self.memory.pop(key, None)
        else:
            self.memory[key] = json.dumps(value)

    def recall(self, key: str) -> Any:
        raw = self.memory.get(key)
        return None if raw is None else json.loads(raw)

    # ---------------------------------------------------------------- for tests
    async def cancel_tasks(self) -> None:
        """Cancel the tasks the driver started and wait for them (the hub does this on stop)."""
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            with contextlib.suppress(BaseException):
                await t

    def of_type(self, type: str, **match: Any) -> list[dict[str, Any]]:
        """Events of ``type`` whose fields equal ``match``, as the flat JSON the hub publishes."""
        return [e.as_json() for e in self.events
                if e.type == type and all(e.data.get(k) == v for k, v in match.items())]

    async def wait_for(self, pred: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not met in {timeout} s; events: {self.events[-10:]}")
            await asyncio.sleep(0.02)
