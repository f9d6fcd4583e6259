"""The ``light`` device class: what a light publishes and accepts, and the base every light driver
subclasses (API v1).

State (retained on ``<base>/<device>``):

* ``state`` — ``"ON"`` / ``"OFF"``: always what the relay reports after reading back (``null``
  while the device is offline);
* ``mode`` — ``"auto"`` (rules switch it) or ``"manual"`` (a person holds it);
* ``reason`` — a short sentence saying why the light is as it is;
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

from . import Command, DeviceConfig, DeviceContext, Driver, Entity

Mode = Literal["auto", "manual"]
C = TypeVar("C", bound=DeviceConfig)

STATE_FIELDS = ("state", "mode", "reason", "hold_until")
"""The fields every light publishes."""
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
    """A light's bookkeeping: mode, end of a manual hold, reason."""

    mode: Mode = "auto"
    until: datetime | None = None
    reason: str = "automatic"


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
    mode, until, reason = before.mode, before.until, before.reason
    missed = f"; relay did not follow ({word(target)} requested)" if target is not None and actual != target else ""
    if p.mode == "auto":
        mode, until = "auto", None
        reason = f"released to automatic by {who}" + (f" (relay {word(actual)})" if target is not None else "")
    elif command.by_person:
        mode = "manual"
        if p.hold is not None:
            until = now + timedelta(seconds=p.hold)
        else:
            until = next_transition(now) if next_transition is not None else None
        held = f"holds until {until.astimezone(tz):%H:%M}" if until else "holds until released"
        verb = f"switched {word(actual)}" if target is not None else f"kept {word(actual)}"
        reason = f"{verb} by {'officer ' + command.user if command.user else who} (manual, {held}){missed}"
    elif target is not None:
        reason = (command.reason or f"switched {word(actual)} by rule {who}") + missed
    return Hold(mode, until, reason), p.mode is not None or command.by_person


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
        self.hold = Hold("manual", until, f"{saved.get('reason') or 'manual'} (kept across a hub restart)")

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
        return {"state": word(self.relay_on), "mode": h.mode, "reason": h.reason,
                "hold_until": h.until.astimezone(self.ctx.tz).isoformat(timespec="seconds") if h.until else None}

    # ------------------------------------------------------------------ the driver interface
    async def poll(self) -> dict[str, Any]:
        on = await self.read_relay()
        now = self.ctx.clock.now()
        if self.relay_on is not None and on != self.relay_on:
            timer = self._hw_timer_until
            if timer is not None and not on and now >= timer - timedelta(seconds=2):
                reason = "switched OFF by the relay board's own timer"
            else:
                reason = f"relay changed to {word(on)} outside the hub (switch, button or timer)"
            self.hold = Hold(self.hold.mode, self.hold.until, reason)
            self._hw_timer_until = None
        self.relay_on = on
        h = self.hold
        if h.mode == "manual" and h.until is not None and now >= h.until:
            self.hold = Hold("auto", None, f"manual hold ended at {now.astimezone(self.ctx.tz):%H:%M}; "
                                           "back to automatic")
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
