"""Test helper: a :class:`hub.api.DeviceContext` that records what a driver reports, for
driver-level tests against the simulators (whole-hub tests use ``hub.testing.hub_from_yaml``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from hub.api.contract import EVENTS, check_event
from hub.clock import SystemClock


class RecordingContext:
    def __init__(self, device_id: str = "dev", site: str | None = None) -> None:
        self.device_id = device_id
        self.site = site
        self.clock = SystemClock()
        self.log = logging.getLogger(f"test.device.{device_id}")
        self.sun = None
        self.mqtt = None
        self.fields: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.tasks: set[asyncio.Task[Any]] = set()

    def update(self, fields: Mapping[str, Any]) -> None:
        self.fields.update(fields)

    def event(self, type: str, **data: Any) -> None:
        if type in EVENTS:  # every driver test also checks the declared events it causes (a drop-in's own are its own)
            check_event(type, data)
        self.events.append({"type": type, **data})

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def state(self, device_id: str | None = None) -> Mapping[str, Any]:
        return self.fields

    async def cancel_tasks(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            with contextlib.suppress(BaseException):
                await t

    def of_type(self, type: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type and all(e.get(k) == v for k, v in match.items())]

    async def wait_for(self, pred: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not met in {timeout} s; events: {self.events[-10:]}")
            await asyncio.sleep(0.02)
