"""The ``light`` device class: what a light publishes and accepts, and the base every light driver
subclasses (API v1).

State (retained on ``<base>/<device>``):

* ``state`` — ``"ON"`` / ``"OFF"``: always what the relay reports after reading back (``null``
  while the device is offline);
* ``mode`` — ``"auto"`` (rules switch it) or ``"manual"`` (a person holds it);
* ``reason`` — a short sentence saying why the light is as it is, in the hub's language;
* ``reason_code`` — the same as a stable code (:data:`REASON_CODES`), for programs;
* ``hold_until`` — ISO-8601 time (hub timezone) when a manual hold ends, or ``null``.

Commands on ``<base>/<device>/set`` (:class:`LightCommand`): ``{"state": "ON"|"OFF"|"TOGGLE"}``,
``{"mode": "auto"|"manual"}``, ``{"hold": seconds}`` (whole seconds, 1..86400), in combination.

* a person sends ``state`` → the relay is switched and read back, ``mode`` becomes ``manual`` until
  ``hold`` seconds from now, else until the next dusk/dawn (when the hub knows its location), else
  until released with ``{"mode":"auto"}``;
* ``{"mode":"auto"}`` → automatic again; the relay is not switched here (the night rule decides);
* a rule sends ``state`` → switched and read back, ``mode`` unchanged, ``reason`` from the rule;
* a manual hold survives a hub restart and ends at the first poll after ``hold_until``;
* a relay that does not follow a write gives a ``relay_mismatch`` event
  (``requested``, ``actual``, ``channel``) and its real state.

A light plugin subclasses :class:`LightDriver` and implements :meth:`LightDriver.read_relay` and
:meth:`LightDriver.write_relay` (plus ``connect``/``close`` for its connection); everything else
comes from here. :func:`decide` is the bookkeeping as a pure function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.i18n import N_, _, tr

from . import Command, DeviceConfig, DeviceContext, Driver, Entity

Mode = Literal["auto", "manual"]
C = TypeVar("C", bound=DeviceConfig)

STATE_FIELDS = ("state", "mode", "reason", "reason_code", "hold_until")
"""The fields every light publishes."""
REASON_CODES: dict[str, str] = {
    "automatic": "automatic mode, nothing switched yet",
    "released": "handed back to automatic (`{\"mode\":\"auto\"}`)",
    "manual_officer": "switched or held by a named officer (`<base>/<device>/set/<user>`)",
    "manual_mqtt": "switched or held by a person without a name (`<base>/<device>/set`, the CLI)",
    "rule": "switched by a rule that gave no code of its own",
    "night_rule_dark": "the night rule: night at a black spot (sun below its threshold)",
    "night_rule_camera_dark": "the night rule: a camera at the site sees darkness",
    "night_rule_daylight": "the night rule: daylight",
    "night_rule_no_darkness": "the night rule: no darkness reported (location not configured)",
    "relay_mismatch": "the relay did not follow the last command",
    "relay_timer": "switched off by the relay board's own timer",
    "relay_outside": "the relay changed outside the hub (switch, button, timer)",
    "hold_ended": "a manual hold ended; automatic again",
    "kept_after_restart": "a manual hold kept across a hub restart",
}
"""``reason_code`` values a light publishes (a rule may add its own), with their meaning."""
EVENTS = {"relay_mismatch": ("requested", "actual", "channel")}
"""Events a light emits, with their fields (besides ``type``, ``time``, ``device``, ``site``)."""


class LightCommand(BaseModel):
    """``{"state": "ON"|"OFF"|"TOGGLE", "mode": "auto"|"manual", "hold": seconds}`` (at least one;
    ``hold`` a whole number of seconds, 1 to 86400)."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["ON", "OFF", "TOGGLE"] | None = None
    mode: Literal["auto", "manual"] | None = None
    # strict: a JSON integer of seconds; true, 3600.5, "3600", "1e3", " 60 " are refused, not coerced
    hold: int | None = Field(None, ge=1, le=86400, strict=True)

    @model_validator(mode="after")
    def _something(self) -> LightCommand:
        if self.state is None and self.mode is None and self.hold is None:
            raise ValueError("give at least one of state, mode, hold")
        if self.mode == "auto" and self.hold is not None:
            raise ValueError("hold makes no sense with mode auto")
        return self


def word(on: bool | None) -> str | None:
    """``True`` → ``"ON"``, ``False`` → ``"OFF"``, ``None`` → ``None``."""
    return None if on is None else ("ON" if on else "OFF")


@dataclass(frozen=True, slots=True)
class Hold:
    """A light's bookkeeping: mode, end of a manual hold, reason (in the hub's language) and its code."""

    mode: Mode = "auto"
    until: datetime | None = None
    reason: str = N_("automatic")
    code: str = "automatic"


def hardware_hold(command: Command) -> int | None:
    """The seconds a relay's own timer may take over (a person's timed hold), else ``None``."""
    p: LightCommand = command.payload  # type: ignore[assignment]
    return p.hold if (command.by_person and p.mode != "auto") else None


def decide(before: Hold, command: Command, *, target: bool | None, actual: bool | None, now: datetime,
           tz: tzinfo, next_transition: Callable[[datetime], datetime] | None) -> tuple[Hold, bool]:
    """A command's effect on the bookkeeping, given what was asked of the relay (``target``, ``None``
    when the command did not switch it) and what it reads back (``actual``). Returns the new
    :class:`Hold` and whether it must be remembered across restarts."""
    p: LightCommand = command.payload  # type: ignore[assignment]
    who = command.user or (command.source.removeprefix("rule:") if not command.by_person else command.source)
    mode, until, reason, code = before.mode, before.until, before.reason, before.code
    missed = target is not None and actual != target
    if p.mode == "auto":
        mode, until, code = "auto", None, "released"
        reason = (tr("released to automatic by {who} (relay {state})", who=who, state=spoken(actual))
                  if target is not None else tr("released to automatic by {who}", who=who))
    elif command.by_person:
        mode = "manual"
        if p.hold is not None:
            until = now + timedelta(seconds=p.hold)
        else:
            until = next_transition(now) if next_transition is not None else None
        end = until.astimezone(tz).strftime("%H:%M") if until else ""
        held = tr("holds until {time}", time=end) if until else _("holds until released")
        if target is not None:
            action = _("switched ON") if actual else _("switched OFF")
        else:
            action = _("kept ON") if actual else _("kept OFF")
        if command.user:
            code = "manual_officer"
            reason = tr("{action} by officer {user} (manual, {hold})", action=action, user=command.user, hold=held)
        else:
            code = "manual_mqtt"
            reason = tr("{action} by {who} (manual, {hold})", action=action, who=who, hold=held)
    elif target is not None:
        code = command.reason_code or "rule"
        reason = command.reason or tr("{action} by rule {rule}", rule=who,
                                      action=_("switched ON") if actual else _("switched OFF"))
    if missed:
        code = "relay_mismatch"
        reason = tr("{reason}; relay did not follow ({state} requested)", reason=reason, state=spoken(target))
    return Hold(mode, until, reason, code), p.mode is not None or command.by_person


def spoken(on: bool | None) -> str:
    """``ON`` / ``OFF`` as a person reads it in the current language (``BẬT`` / ``TẮT``)."""
    return "?" if on is None else (_("ON") if on else _("OFF"))


class LightDriver(Driver, Generic[C]):
    """Base of every light driver: one relay channel with the hub's manual/automatic bookkeeping.

    Implement :meth:`read_relay` and :meth:`write_relay` (and ``connect``/``close``). Name your
    config model as the parameter (``class MyLight(LightDriver[MyConfig])``) and ``self.config``
    is typed as it."""

    kind = "light"
    command_model: ClassVar[type[BaseModel] | None] = LightCommand
    stale_fields: tuple[str, ...] = ("state",)
    config: C

    def __init__(self, config: C, ctx: DeviceContext) -> None:
        super().__init__(config, ctx)
        self.hold = Hold()
        self.relay_on: bool | None = None
        self._hw_timer_until: datetime | None = None
        self._restore()

    # ------------------------------------------------------------------ what a plugin implements
    async def read_relay(self) -> bool:
        """Read the relay: ``True`` when on. Raise :class:`hub.api.DeviceError` on failure."""
        raise NotImplementedError

    async def write_relay(self, on: bool, hold: int | None) -> bool:
        """Switch the relay. ``hold`` (seconds) is given for a person's timed hold: a relay with its own
        off-timer may arm it and return ``True`` (the light then goes off even if the hub is down);
        return ``False`` otherwise. Raise :class:`hub.api.CommandError` when the device refuses."""
        raise NotImplementedError

    @property
    def channel(self) -> Any:
        """The relay channel named in ``relay_mismatch`` events (the config's ``channel``)."""
        return getattr(self.config, "channel", None)

    # ------------------------------------------------------------------ compatibility views
    @property
    def mode(self) -> Mode:
        return self.hold.mode

    @property
    def hold_until(self) -> datetime | None:
        return self.hold.until

    @property
    def reason(self) -> str:
        return self.hold.reason

    # ------------------------------------------------------------------ manual mode across restarts
    def _restore(self) -> None:
        """An officer's manual hold survives a hub restart (a light switched off for a repair must not
        come back on because the hub rebooted)."""
        recall = getattr(self.ctx, "recall", None)
        saved = recall("manual") if recall is not None else None
        if not isinstance(saved, dict):
            return
        try:
            until = datetime.fromisoformat(saved["hold_until"]) if saved.get("hold_until") else None
        except (TypeError, ValueError):
            return
        if until is not None and until <= self.ctx.clock.now():
            self._save()  # expired while the hub was down: forget it
            return
        self.hold = Hold("manual", until, tr("{reason} (kept across a hub restart)",
                                             reason=saved.get("reason") or _("manual")), "kept_after_restart")

    def _save(self) -> None:
        remember = getattr(self.ctx, "remember", None)
        if remember is None:
            return
        h = self.hold
        remember("manual", {"hold_until": h.until.isoformat() if h.until else None, "reason": h.reason}
                 if h.mode == "manual" else None)

    def light_state(self) -> dict[str, Any]:
        """The light's state fields (relay read-back plus mode bookkeeping)."""
        h = self.hold
        return {"state": word(self.relay_on), "mode": h.mode,
                "reason": _(h.reason) if h.code == "automatic" else h.reason, "reason_code": h.code,
                "hold_until": h.until.astimezone(self.ctx.tz).isoformat(timespec="seconds") if h.until else None}

    # ------------------------------------------------------------------ the driver interface
    async def poll(self) -> dict[str, Any]:
        on = await self.read_relay()
        now = self.ctx.clock.now()
        if self.relay_on is not None and on != self.relay_on:
            timer = self._hw_timer_until
            if timer is not None and not on and now >= timer - timedelta(seconds=2):
                reason, code = _("switched OFF by the relay board's own timer"), "relay_timer"
            else:
                reason = tr("relay changed to {state} outside the hub (switch, button or timer)", state=spoken(on))
                code = "relay_outside"
            self.hold = Hold(self.hold.mode, self.hold.until, reason, code)
            self._hw_timer_until = None
        self.relay_on = on
        h = self.hold
        if h.mode == "manual" and h.until is not None and now >= h.until:
            ended = now.astimezone(self.ctx.tz).strftime("%H:%M")
            self.hold = Hold("auto", None, tr("manual hold ended at {time}; back to automatic", time=ended),
                             "hold_ended")
            self._save()
        return self.light_state()

    async def handle_command(self, command: Command) -> dict[str, Any]:
        p: LightCommand = command.payload  # type: ignore[assignment]
        now = self.ctx.clock.now()
        target: bool | None = None
        if p.state is not None:
            target = (not await self.read_relay()) if p.state == "TOGGLE" else p.state == "ON"
            hw_hold = hardware_hold(command)
            armed = await self.write_relay(target, hw_hold)
            self._hw_timer_until = now + timedelta(seconds=hw_hold) if armed and hw_hold else None
            self.relay_on = await self.read_relay()
            if self.relay_on != target:
                self.ctx.event("relay_mismatch", requested=word(target), actual=word(self.relay_on),
                               channel=self.channel)
        sun = self.ctx.sun
        self.hold, save = decide(self.hold, command, target=target, actual=self.relay_on, now=now, tz=self.ctx.tz,
                                 next_transition=sun.next_transition if sun is not None else None)
        if self.relay_on is None:
            self.relay_on = await self.read_relay()
        if save:
            self._save()
        return self.light_state()

    def entities(self) -> list[Entity]:
        return [Entity("light", "state", "Light"),
                Entity("sensor", "mode", "Mode", icon="mdi:account-cog"),
                Entity("sensor", "reason", "Reason", icon="mdi:information-outline"),
                Entity("sensor", "hold_until", "Manual hold until", "timestamp")]
