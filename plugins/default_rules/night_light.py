"""Night light at black spots (docs/design.md, "rules that run by default").

A light (``Driver.kind == "light"``) in ``auto`` mode at a site with ``blackspot: true`` is ON
while it is dark there and OFF otherwise. Dark means:

* the sun is below ``sun_on_below`` degrees at the hub's location (hysteresis: it is day again only
  above ``sun_off_above``), or
* a device at the same site that is online reports ``dark: true`` (a camera that cannot see:
  storm, failed street lamp), when ``camera_darkness`` is on.

The rule never switches one light twice within ``min_switch_interval`` seconds (by the injected
clock), so a noisy darkness input around dusk cannot make a relay chatter; it re-evaluates at
start-up (a hub restarted at night switches the lights on at once), whenever a light, a darkness
input or an availability changes, and every ``evaluate_interval`` seconds. Lights in ``manual``
mode are left alone: the lighting driver returns them to ``auto`` when their hold expires, and the
rule takes over again from that state change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field

from hub.api import AvailabilityChange, Rule, RuleContext, StateChange, StrictModel
from hub.i18n import N_, tr, use_language

#: the rule's reasons (``reason_code`` → the sentence, N_-marked; its placeholders are filled per light)
REASONS: dict[str, str] = {
    "night_rule_dark": N_("night at a black spot (sun {elevation}°)"),
    "night_rule_daylight": N_("daylight (sun {elevation}°)"),
    "night_rule_no_darkness": N_("no darkness reported (location not configured)"),
    "night_rule_camera_dark": N_("camera {device} sees darkness"),
    "night_rule_camera_dark_brightness": N_("camera {device} sees darkness (brightness {brightness})"),
}


class NightLightOptions(StrictModel):
    sun_on_below: float = Field(-3.0, ge=-18, le=10, description="night below this sun elevation (degrees)")
    sun_off_above: float = Field(-1.0, ge=-18, le=10, description="day again above this elevation")
    min_switch_interval: float = Field(300.0, ge=0, le=86400,
                                       description="seconds between two switches of one light by this rule")
    evaluate_interval: float = Field(30.0, gt=0, le=3600, description="seconds between periodic checks")
    camera_darkness: bool = Field(True, description="a device reporting dark: true at the site counts as night")


class NightLightRule(Rule):
    name = "night_light"
    options_model = NightLightOptions

    def __init__(self, ctx: RuleContext, options: Any) -> None:
        super().__init__(ctx, options or NightLightOptions())
        self.opts: NightLightOptions = self.options  # type: ignore[assignment]
        self.night: bool | None = None
        self.last_switch: dict[str, datetime] = {}
        self.in_flight: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        cfg = ctx.config
        self.blackspots = {s.id for s in cfg.sites if s.blackspot}
        self.lights: dict[str, str] = {}  # light id -> site
        self.site_devices: dict[str, list[str]] = {}
        for d in ctx.devices():
            if d.site is not None:
                self.site_devices.setdefault(d.site, []).append(d.id)
        if ctx.sun is not None:
            ctx.sun.on_below = self.opts.sun_on_below
            ctx.sun.off_above = self.opts.sun_off_above

    async def start(self) -> None:
        self.lights = {d.id: d.site for d in self.ctx.devices("light")
                       if d.site is not None and d.site in self.blackspots}
        if self.ctx.sun is None and self.lights:
            self.ctx.log.warning("hub.latitude/longitude are not set: black-spot lights follow camera "
                                 "darkness only")
        self.evaluate()
        self._task = self.ctx.create_task(self._periodic(), name="night-light")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.opts.evaluate_interval)
            self.evaluate()

    # ------------------------------------------------------------------ triggers
    def on_state(self, change: StateChange) -> None:
        if change.device_id in self.lights:
            if change.changed.get("mode") == "auto":
                # handed back by a person or a hold that expired: apply the rule's state now, the
                # minimum switch interval guards against the rule's own chatter, not against people
                self.last_switch.pop(change.device_id, None)
            if {"state", "mode"} & change.changed.keys():
                self.evaluate(only_site=self.lights[change.device_id])
        elif "dark" in change.changed and change.site in self.blackspots:
            self.evaluate(only_site=change.site)

    def on_availability(self, change: AvailabilityChange) -> None:
        if change.site in self.blackspots:
            self.evaluate(only_site=change.site)

    # ------------------------------------------------------------------ decision
    def why(self, site: str, now: datetime) -> tuple[bool, str, dict[str, Any]]:
        """(dark?, the reason's key in :data:`REASONS`, its placeholders) for one site."""
        sun = self.ctx.sun
        day: tuple[bool, str, dict[str, Any]]
        if sun is None:
            day = (False, "night_rule_no_darkness", {})
        else:
            elevation = f"{sun.elevation(now):+.1f}"
            if self.night:
                return True, "night_rule_dark", {"elevation": elevation}
            day = (False, "night_rule_daylight", {"elevation": elevation})
        if self.opts.camera_darkness:
            for device_id in self.site_devices.get(site, []):
                if device_id in self.lights or self.ctx.available(device_id) is not True:
                    continue
                state: Mapping[str, Any] = self.ctx.state(device_id)
                if state.get("dark") is True:
                    b = state.get("brightness")
                    if isinstance(b, (int, float)):
                        return True, "night_rule_camera_dark_brightness", {"device": device_id,
                                                                           "brightness": f"{b:.0f}"}
                    return True, "night_rule_camera_dark", {"device": device_id}
        return day

    def evaluate(self, only_site: str | None = None) -> None:
        now = self.ctx.clock.now()
        if self.ctx.sun is not None:
            self.night = self.ctx.sun.is_night(now, self.night)
        else:
            self.night = False
        for light, site in self.lights.items():
            if only_site is not None and site != only_site:
                continue
            self._evaluate_light(light, site, now)

    def _evaluate_light(self, light: str, site: str, now: datetime) -> None:
        if light in self.in_flight or self.ctx.available(light) is not True:
            return
        state = self.ctx.state(light)
        if state.get("mode", "auto") != "auto" or state.get("state") not in ("ON", "OFF"):
            return
        dark, key, params = self.why(site, now)
        want = "ON" if dark else "OFF"
        if state["state"] == want:
            return
        last = self.last_switch.get(light)
        if last is not None and (now - last).total_seconds() < self.opts.min_switch_interval:
            return  # re-evaluated later (periodic or next change)
        self.last_switch[light] = now
        self.in_flight.add(light)
        with use_language("en"):  # log lines stay English
            self.ctx.log.info("%s -> %s: %s", light, want, tr(REASONS[key], **params))
        why = tr(REASONS[key], **params)
        code = key.removesuffix("_brightness")
        self.ctx.create_task(self._switch(light, want, why, code), name=f"night-light-{light}")

    async def _switch(self, light: str, want: str, why: str, code: str) -> None:
        try:
            await self.ctx.command(light, {"state": want}, reason=why, reason_code=code)
        finally:
            self.in_flight.discard(light)
