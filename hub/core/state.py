"""The state store: every device's last known state, its availability and last error, and each
site's state; the one path by which a change reaches the listeners (MQTT bridge, history) and
the rules.

A listener or rule that raises is logged and skipped: the change is kept, the other listeners
still get it, and the device that reported it stays as it was (a bug in a listener never turns
into a failed poll and an offline device).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hub.api import AvailabilityChange, HubEvent, Rule, StateChange
from hub.api.contract import event_message
from hub.clock import Clock
from hub.core.runner import describe_error

log = logging.getLogger("hub")

_MISSING = object()


@dataclass
class Listener:
    """Receives everything the hub does; the MQTT bridge, history and rules are listeners."""

    on_state: Callable[[StateChange], None] | None = None
    on_availability: Callable[[AvailabilityChange], None] | None = None
    on_event: Callable[[HubEvent], None] | None = None
    on_site: Callable[[str, Mapping[str, Any]], None] | None = None
    on_device_info: Callable[[str], None] | None = None


class StateStore:
    """States, availability and site states, and the listeners told of their changes."""

    def __init__(self, clock: Clock, tz: ZoneInfo, site_ids: Iterable[str], rules: Mapping[str, Rule],
                 stale_fields: Callable[[str], Iterable[str]] = lambda device_id: ()) -> None:
        self.clock = clock
        self.tz = tz
        self.states: dict[str, dict[str, Any]] = {}
        self.availability: dict[str, bool] = {}
        self.errors: dict[str, str | None] = {}
        self.error_kinds: dict[str, str | None] = {}
        self.site_states: dict[str, dict[str, Any]] = {s: {"power": "unknown"} for s in site_ids}
        self.sites: dict[str, str | None] = {}
        """device id -> its site"""
        self.stale_fields = stale_fields
        """device id -> the fields set to null while it is offline (its driver's ``stale_fields``)"""
        self.listeners: list[Listener] = []
        self._state_callbacks: list[Callable[[StateChange], None]] = []
        self.rules = rules

    def add_device(self, device_id: str, site: str | None) -> None:
        self.states[device_id] = {}
        self.sites[device_id] = site

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)
        if listener.on_state is not None:
            self._state_callbacks.append(listener.on_state)

    def local_now(self) -> datetime:
        """The clock's time in the hub's timezone (events carry the local offset, e.g. +07:00)."""
        return self.clock.now().astimezone(self.tz)

    # ---------------------------------------------------------------- reading
    def state(self, device_id: str) -> Mapping[str, Any]:
        return self.states.get(device_id, {})

    def site_state(self, site_id: str) -> Mapping[str, Any]:
        return self.site_states.get(site_id, {})

    # ---------------------------------------------------------------- changes
    def update(self, device_id: str, fields: Mapping[str, Any]) -> None:
        state = self.states.get(device_id)
        if state is None:
            return
        changed = {k: v for k, v in fields.items() if state.get(k, _MISSING) != v}
        if not changed:
            return
        state.update(changed)
        change = StateChange(device_id=device_id, site=self.sites.get(device_id),
                             state=state, changed=changed, time=self.clock.now())
        for callback in self._state_callbacks:
            try:
                callback(change)
            except Exception:
                log.exception("state listener failed on a state change of %s", device_id)
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
        site = self.sites.get(device_id)
        if available:
            if previous is None:
                log.info("%s online", device_id)
            else:
                log.warning("%s back online", device_id)
        else:
            log.warning("%s offline: %s", device_id, error or "unknown error")
            stale = self.stale_fields(device_id)
            if stale:
                self.update(device_id, dict.fromkeys(stale))
        change = AvailabilityChange(device_id=device_id, site=site, available=available,
                                    error=error, time=self.clock.now(), error_kind=self.error_kinds[device_id])
        for lst in self.listeners:
            if lst.on_availability:
                try:
                    lst.on_availability(change)
                except Exception:
                    log.exception("availability listener failed on %s", device_id)
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
                try:
                    lst.on_site(site_id, state)
                except Exception:
                    log.exception("site listener failed on %s", site_id)

    def device_info(self, device_id: str, fields: Mapping[str, Any]) -> None:
        """What a device's connect() found (model, serial...): into its state, then the listeners
        that describe devices (Home Assistant discovery) are told."""
        if fields:
            self.update(device_id, fields)
        for lst in self.listeners:
            if lst.on_device_info:
                try:
                    lst.on_device_info(device_id)
                except Exception:
                    log.exception("device info listener failed on %s", device_id)

    def emit(self, type: str, *, device: str | None = None, site: str | None = None, **data: Any) -> None:
        if device is not None and site is None:
            site = self.sites.get(device)
        data = {k: v for k, v in data.items() if v is not None}
        if "message" not in data:
            data["message"] = event_message(type, {"device": device, "site": site, **data})
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
