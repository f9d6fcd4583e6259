"""Power at host houses (docs/design.md, "rules that run by default").

A site's ``power`` (published on ``<base>/site/<site>``) is

* ``lost`` while any UPS there is on battery, or a power meter there reads no mains;
* ``ok`` while mains is present (and no source says lost);
* ``unknown`` when no power source at the site can be read (none configured, or all offline).

Transitions ok→lost and lost→ok produce ``power_lost`` / ``power_restored`` events with the site
and the cause, in the same loop turn as the state change that caused them (so within one poll
interval of the UPS or meter). A UPS self-test or calibration (NUT ``TEST`` / ``CAL`` tokens) runs
on battery on purpose: it is not a power cut, nor is on-battery within ``selftest_grace`` seconds
after the test ends.

A site without any power sensor can still say something: when every device there goes offline
within ``suspect_window`` seconds, the rule publishes ``suspected_power_loss: true`` on the site
and one ``power_suspected_lost`` event naming the devices (the host house most likely lost power
or its internet), and ``power_suspected_restored`` when one comes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field

from hub.api import AvailabilityChange, Rule, RuleContext, StateChange, StrictModel


class PowerOptions(StrictModel):
    selftest_grace: float = Field(15.0, ge=0, le=3600,
                                  description="seconds after a UPS self-test during which on-battery is ignored")
    suspect_window: float = Field(60.0, gt=0, le=3600,
                                  description="all devices of a sensorless site offline within this many "
                                              "seconds = suspected power loss")


class PowerRule(Rule):
    name = "host_power"
    options_model = PowerOptions

    def __init__(self, ctx: RuleContext, options: Any) -> None:
        super().__init__(ctx, options or PowerOptions())
        self.opts: PowerOptions = self.options  # type: ignore[assignment]
        self.sources: dict[str, list[str]] = {}   # site -> power source devices
        self.devices: dict[str, list[str]] = {}   # site -> all devices
        self.site_of: dict[str, str] = {}
        self.power: dict[str, str] = {}
        self.lost_since: dict[str, datetime] = {}
        self.test_ended: dict[str, datetime] = {}
        self.in_test: set[str] = set()
        self.offline_since: dict[str, datetime] = {}
        self.suspected: dict[str, bool] = {}

    async def start(self) -> None:
        for d in self.ctx.devices():
            if d.site is None:
                continue
            self.site_of[d.id] = d.site
            self.devices.setdefault(d.site, []).append(d.id)
        for d in self.ctx.devices("ups") + self.ctx.devices("meter"):
            if d.site is not None:
                self.sources.setdefault(d.site, []).append(d.id)
        for site in self.ctx.config.sites:
            self.power[site.id] = "unknown"
            self.suspected[site.id] = False
            self.ctx.set_site_state(site.id, {"power": "unknown", "power_sources": self.sources.get(site.id, [])})
            self.evaluate(site.id)

    # ------------------------------------------------------------------ triggers
    def on_state(self, change: StateChange) -> None:
        site = self.site_of.get(change.device_id)
        if site is not None and change.device_id in self.sources.get(site, ()):
            self.evaluate(site)

    def on_availability(self, change: AvailabilityChange) -> None:
        site = self.site_of.get(change.device_id)
        if site is None:
            return
        if change.device_id in self.sources.get(site, ()):
            self.evaluate(site)
        if not self.sources.get(site):
            self._suspect(site, change)

    # ------------------------------------------------------------------ sources
    def _reading(self, device_id: str, now: datetime) -> str:
        """'lost' / 'ok' / 'unknown' for one power source."""
        if self.ctx.available(device_id) is not True:
            return "unknown"
        state: Mapping[str, Any] = self.ctx.state(device_id)
        if self.ctx.device_kind(device_id) == "meter":
            mains = state.get("mains")
            return "unknown" if mains is None else ("ok" if mains else "lost")
        tokens = str(state.get("status") or "").split()
        if "TEST" in tokens or "CAL" in tokens:
            self.in_test.add(device_id)
            return "ok"
        if device_id in self.in_test:
            self.in_test.discard(device_id)
            self.test_ended[device_id] = now
        on_battery = state.get("on_battery")
        if on_battery is None:
            return "unknown"
        if on_battery:
            ended = self.test_ended.get(device_id)
            if ended is not None and (now - ended).total_seconds() < self.opts.selftest_grace:
                return "ok"
            return "lost"
        return "ok"

    def evaluate(self, site: str) -> None:
        now = self.ctx.clock.now()
        readings = {d: self._reading(d, now) for d in self.sources.get(site, [])}
        if any(r == "lost" for r in readings.values()):
            power = "lost"
        elif any(r == "ok" for r in readings.values()):
            power = "ok"
        else:
            power = "unknown"
        previous = self.power.get(site, "unknown")
        if power == previous:
            return
        self.power[site] = power
        local = now.astimezone(self.ctx.tz)  # the hub's timezone, as in events
        fields: dict[str, Any] = {"power": power, "power_changed": local.isoformat(timespec="seconds")}
        if power == "lost":
            losing = [d for d, r in readings.items() if r == "lost"]
            cause = "; ".join(self._cause(d) for d in losing)
            fields["power_cause"] = cause
            self.lost_since[site] = now
            self.ctx.set_site_state(site, fields)
            self.ctx.log.warning("power lost at %s: %s", site, cause)
            self.ctx.event("power_lost", site=site, cause=cause, sources=losing)
        elif power == "ok" and previous == "lost":
            since = self.lost_since.pop(site, None)
            fields["power_cause"] = None
            self.ctx.set_site_state(site, fields)
            data: dict[str, Any] = {"cause": "mains present again"}
            if since is not None:
                data["duration_s"] = round((now - since).total_seconds())
            self.ctx.log.warning("power restored at %s", site)
            self.ctx.event("power_restored", site=site, **data)
        else:
            # unknown <-> anything, or unknown -> ok at start-up: a state, not an event
            self.ctx.set_site_state(site, fields)

    def _cause(self, device_id: str) -> str:
        if self.ctx.device_kind(device_id) == "meter":
            v = self.ctx.state(device_id).get("input_voltage")
            return f"meter {device_id} reads no mains" + (f" ({v:.0f} V)" if isinstance(v, (int, float)) else "")
        return f"UPS {device_id} on battery"

    # ------------------------------------------------------------------ sites without sensors
    def _suspect(self, site: str, change: AvailabilityChange) -> None:
        devices = self.devices.get(site, [])
        if not change.available:
            self.offline_since[change.device_id] = change.time
            if self.suspected.get(site) or not devices:
                return
            times = [self.offline_since.get(d) for d in devices]
            if all(self.ctx.available(d) is False for d in devices) and all(t is not None for t in times):
                spread = (max(times) - min(times)).total_seconds()  # type: ignore[type-var,operator]
                if spread <= self.opts.suspect_window:
                    self.suspected[site] = True
                    self.ctx.set_site_state(site, {"suspected_power_loss": True})
                    self.ctx.log.warning("all %d device(s) at %s dropped within %.0f s: power cut or "
                                         "network loss suspected", len(devices), site, spread)
                    self.ctx.event("power_suspected_lost", site=site, devices=devices,
                                   cause=f"all {len(devices)} device(s) offline within {spread:.0f} s")
        else:
            self.offline_since.pop(change.device_id, None)
            if self.suspected.get(site):
                self.suspected[site] = False
                self.ctx.set_site_state(site, {"suspected_power_loss": False})
                self.ctx.event("power_suspected_restored", site=site, device=change.device_id,
                               cause=f"{change.device_id} is back online")
