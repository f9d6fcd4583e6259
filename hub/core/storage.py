"""The hub's storage: the device registry (registry.json) and the history database (history.db),
opened at start, flushed in the background, and committed before a command is acknowledged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from hub.api import AvailabilityChange, HubEvent, StateChange
from hub.clock import Clock
from hub.config import Config
from hub.core.runner import describe_error
from hub.storage import History, Registry, retention_cutoff

log = logging.getLogger("hub")

OFFLINE_CAUSES = {"site_power_lost": "site_power", "site_unreachable": "network", "camera_down": "device",
                  "recorder_video_loss": "device", "auth_refused": "device"}
"""``camera_offline`` causes (the offline_cause rule's) -> availability causes (``hub.storage.CAUSES``)."""


class Storage:
    """Registry and history of one hub; both ``None`` until :meth:`open` (or for a hub without storage)."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.registry: Registry | None = None
        self.history: History | None = None
        self._durable: list[asyncio.Future[None]] = []
        self.kind_of: Callable[[str], str] | None = None
        """device id -> its kind (``camera``, ``recorder``, ``ups``, ``light`` ...), set by the hub."""
        self._outages: dict[str, tuple[datetime, str, str | None]] = {}
        """device -> (since, cause, site) of its current outage"""
        self._powerless: set[str] = set()
        """sites whose power is lost or suspected lost"""

    def open(self) -> None:
        data = self.config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(data / "registry.json")
        h = self.config.hub
        self.history = History(data / "history.db", max_bytes=int(h.history_max_mb * 1_000_000))

    def close(self) -> None:
        if self.history is not None:
            self.history.close()
        if self.registry is not None:
            self.registry.close()

    def remember(self, device_id: str, key: str, value: Any) -> None:
        """Kept in the history database, committed with the next :meth:`durable`; the registry
        keeps a copy for older hubs."""
        if self.history is not None:
            self.history.put_data(device_id, key, value)
        if self.registry is not None:
            self.registry.put_data(device_id, key, value)

    def recall(self, device_id: str, key: str) -> Any:
        history = self.history
        if history is not None and history.has_data(device_id, key):
            return history.get_data(device_id, key)
        return self.registry.get_data(device_id, key) if self.registry is not None else None

    async def flush_loop(self) -> None:
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
                    snapshot = self.registry.snapshot()  # on the loop, which changes the registry
                    if snapshot is not None:
                        await asyncio.to_thread(self.registry.write, snapshot)
                if self.history is not None and now - last_purge >= 86400:
                    last_purge = now
                    await asyncio.to_thread(self.history.purge,
                                            retention_cutoff(self.clock.now(), self.config.hub.history_days))
            except Exception as exc:
                log.error("storage write failed: %s", describe_error(exc))

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
                self.history.flush(with_states=False)  # the state rows go with the flush loop's next turn
        except Exception as exc:
            log.error("history write failed: %s", describe_error(exc))
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def record_state(self, change: StateChange) -> None:
        assert self.history is not None
        self.history.add_state(change.time, change.device_id, change.changed)  # type: ignore[arg-type]

    def record_event(self, event: HubEvent) -> None:
        assert self.history is not None
        self.history.add_event(event.time, event.type, event.device, event.site, dict(event.data))
        self._explain(event)

    def record_availability(self, change: AvailabilityChange) -> None:
        """One availability transition into the history, with the cause of an outage as far as it is
        known now: ``device`` when it refused the credentials (it answered), ``site_power`` when its
        site's power is lost or suspected lost, else ``unknown`` until :meth:`_explain` learns more."""
        assert self.history is not None
        device = change.device_id
        cause: str | None = None
        if change.available:
            self._outages.pop(device, None)
        else:
            if change.error_kind == "auth":
                cause = "device"
            elif change.site in self._powerless:
                cause = "site_power"
            else:
                cause = "unknown"
            self._outages[device] = (change.time, cause, change.site)
        kind = self.kind_of(device) if self.kind_of is not None else None
        self.history.add_availability(change.time, device, change.available, cause, kind=kind, site=change.site)

    def _explain(self, event: HubEvent) -> None:
        """Name the cause of current outages from the default rules' events: ``camera_offline``'s
        cause (:data:`OFFLINE_CAUSES`; ``site_unreachable`` also explains the site's other outages
        still unknown as ``network``), ``power_lost`` / ``power_suspected_lost`` (the site's
        outages not blamed on the device become ``site_power``)."""
        site = event.site
        if event.type == "camera_offline" and event.device in self._outages:
            cause = OFFLINE_CAUSES.get(str(event.data.get("cause")), "unknown")
            self._set_cause(event.device, cause)
            if cause == "network":
                for device, (_since, known, where) in list(self._outages.items()):
                    if where == site and known == "unknown":
                        self._set_cause(device, "network")
        elif event.type in ("power_lost", "power_suspected_lost") and site is not None:
            self._powerless.add(site)
            for device, (_since, known, where) in list(self._outages.items()):
                if where == site and known in ("unknown", "network"):
                    self._set_cause(device, "site_power")
        elif event.type in ("power_restored", "power_suspected_restored") and site is not None:
            self._powerless.discard(site)

    def _set_cause(self, device: str, cause: str) -> None:
        since, known, site = self._outages[device]
        if known != cause and self.history is not None:
            self._outages[device] = (since, cause, site)
            self.history.set_cause(device, since, cause)
