"""What a front end (the MQTT bridge today; a web console later) may see of the hub: a read-only
view of the devices and their states, and the registry of named requests it answers."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hub.api import DeviceConfig, DeviceError, Entity
from hub.config import Config

if TYPE_CHECKING:
    from hub.core.runner import DeviceRunner
    from hub.core.state import StateStore

RequestHandler = Callable[[dict[str, Any]], Awaitable[Any]]
UserRequestHandler = Callable[..., Awaitable[Any]]
"""Called as ``handler(body, user=NAME)``."""


class RequestRegistry:
    """Named requests (``<base>/bridge/request/<name>``) and their handlers, registered by the
    bridge itself and by rules (:meth:`hub.api.RuleContext.register_request`)."""

    def __init__(self) -> None:
        self._handlers: dict[str, RequestHandler] = {}
        self._per_user: dict[str, UserRequestHandler] = {}

    def register(self, name: str, handler: RequestHandler) -> None:
        self._handlers[name] = handler

    def register_per_user(self, name: str, handler: UserRequestHandler) -> None:
        """``<base>/bridge/request/<name>/<user>``: the handler is called with the user of the topic
        (the broker's ACL lets each user publish only under their own name), never the payload's."""
        self._per_user[name] = handler

    def per_user(self, name: str) -> UserRequestHandler | None:
        return self._per_user.get(name)

    def get(self, name: str) -> RequestHandler | None:
        handler = self._handlers.get(name)
        if handler is None:
            base, _, user = name.partition("/")
            per_user = self._per_user.get(base) if user and "/" not in user else None
            if per_user is not None:
                return functools.partial(per_user, user=user)
        return handler

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def __getitem__(self, name: str) -> RequestHandler:
        handler = self.get(name)
        if handler is None:
            raise KeyError(name)
        return handler

    def __contains__(self, name: object) -> bool:
        return name in self._handlers


class HubView:
    """Read-only: the configured devices, their states, availability and errors, the sites' states.
    The mappings are the store's own, typed read-only: read them, never change them."""

    def __init__(self, config: Config, runners: Mapping[str, DeviceRunner], store: StateStore) -> None:
        self.config = config
        self._runners = runners
        self._store = store

    @property
    def states(self) -> Mapping[str, Mapping[str, Any]]:
        return self._store.states

    @property
    def availability(self) -> Mapping[str, bool]:
        return self._store.availability

    @property
    def errors(self) -> Mapping[str, str | None]:
        return self._store.errors

    @property
    def site_states(self) -> Mapping[str, Mapping[str, Any]]:
        return self._store.site_states

    def state(self, device_id: str) -> Mapping[str, Any]:
        return self._store.state(device_id)

    def local_now(self) -> datetime:
        return self._store.local_now()

    def device_ids(self) -> Iterator[str]:
        return iter(self._runners)

    def has_device(self, device_id: str) -> bool:
        return device_id in self._runners

    def device_count(self) -> int:
        return len(self._runners)

    def device_config(self, device_id: str) -> DeviceConfig:
        return self._runners[device_id].config

    def device_kind(self, device_id: str) -> str:
        return self._runners[device_id].kind

    def entities(self, device_id: str) -> list[Entity] | None:
        """The device's Home Assistant entities, or ``None`` when it has no driver (may raise what
        the driver raises)."""
        driver = self._runners[device_id].driver
        return None if driver is None else driver.entities()

    async def snapshot(self, device_id: str, channel: int | None = None) -> bytes:
        """A JPEG from the device's driver, within the device's timeout (raises :class:`DeviceError`)."""
        runner = self._runners.get(device_id)
        if runner is None or runner.driver is None:
            raise DeviceError(f"unknown device {device_id!r}")
        async with asyncio.timeout(runner.config.timeout):
            return await runner.driver.snapshot(channel)
