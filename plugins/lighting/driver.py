"""The ``lighting`` platform: street lights and floodlights on relays.

State (contract): ``state`` "ON"/"OFF" is always what the relay reports after reading back;
``mode`` "auto"/"manual"; ``reason`` a short sentence; ``hold_until`` ISO-8601 or null.

Command semantics (the night-light rule relies on them):

* a person (MQTT/CLI) sends ``state`` → the relay is switched and read back, ``mode`` becomes
  ``manual`` until ``hold`` seconds from now, else until the next dusk/dawn (when the hub knows its
  location), else until released with ``{"mode":"auto"}``;
* ``{"mode":"auto"}`` → automatic again; the relay is not switched here (the night rule decides);
* a rule sends ``state`` → switched and read back, ``mode`` unchanged, ``reason`` from the rule;
* when a manual hold expires the light returns to ``auto`` at the next poll;
* a relay that does not follow a write gives a ``relay_mismatch`` event and its real state.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.api import Command, DeviceContext, DeviceInfo, Driver, Entity
from hub.modbus import ModbusDeviceConfig

from .relays import PROFILES, CoilRelay, RegisterRelay, TasmotaRelay


class LightConfig(ModbusDeviceConfig):
    """A light on a relay channel (see the plugin README for every key)."""

    driver: Literal["modbus_coil", "modbus_register", "mqtt_relay"]
    channel: int = Field(0, ge=0, le=255, description="relay channel, 0 = first relay")
    profile: str | None = Field(None, description=f"modbus_register board profile: {', '.join(PROFILES)}")
    flash: bool = Field(True, description="modbus_coil: use the board's flash timer for timed holds")
    topic: str | None = Field(None, pattern=r"^[^#+/\s][^#+\s]*$", description="mqtt_relay: Tasmota topic")
    index: int | None = Field(None, ge=1, le=32, description="mqtt_relay: relay number (POWER<index>)")
    poll_interval: float = Field(5.0, gt=0, le=86400)
    timeout: float = Field(3.0, gt=0, le=300)

    @model_validator(mode="after")
    def _consistent(self) -> LightConfig:
        if self.driver == "mqtt_relay":
            if not self.topic:
                raise ValueError("driver mqtt_relay needs 'topic' (the Tasmota topic)")
        elif self.transport == "serial":
            if not self.serial_port:
                raise ValueError("transport serial needs serial_port")
        elif not self.host:
            raise ValueError(f"driver {self.driver} needs 'host'")
        if self.profile is not None:
            if self.driver != "modbus_register":
                raise ValueError("'profile' only applies to driver modbus_register")
            if self.profile not in PROFILES:
                raise ValueError(f"unknown profile {self.profile!r} (known: {', '.join(PROFILES)})")
        return self


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


def _word(on: bool | None) -> str | None:
    return None if on is None else ("ON" if on else "OFF")


class LightDriver(Driver):
    """One relay channel with the hub's manual/automatic bookkeeping."""

    kind = "light"
    command_model = LightCommand
    stale_fields = ("state",)
    config: LightConfig

    def __init__(self, config: LightConfig, ctx: DeviceContext) -> None:  # type: ignore[override]
        super().__init__(config, ctx)
        self.mode: Literal["auto", "manual"] = "auto"
        self.hold_until: datetime | None = None
        self.reason = "automatic"
        self.relay_on: bool | None = None
        self._hw_timer_until: datetime | None = None
        self._restore_manual()
        c = config
        if c.driver == "mqtt_relay":
            self.relay: Any = None  # created at connect (needs ctx.mqtt, which exists once the hub runs)
        else:
            kw = dict(channel=c.channel, timeout=max(0.1, c.timeout / 2.5), **c.link_args())
            if c.driver == "modbus_coil":
                self.relay = CoilRelay(flash=c.flash, **kw)
            else:
                self.relay = RegisterRelay(profile=PROFILES[c.profile or "r4d3b16"], **kw)

    # ------------------------------------------------------------------ helpers
    @property
    def tz(self) -> tzinfo:
        return self.ctx.tz

    def _now(self) -> datetime:
        return self.ctx.clock.now()

    def _fmt(self, when: datetime) -> str:
        return when.astimezone(self.tz).strftime("%H:%M")

    # ------------------------------------------------------------------ manual mode across restarts
    def _restore_manual(self) -> None:
        """An officer's manual hold survives a hub restart (a light switched off for a repair
        must not come back on because the hub rebooted)."""
        recall = getattr(self.ctx, "recall", None)
        saved = recall("manual") if recall is not None else None
        if not isinstance(saved, dict):
            return
        try:
            hold = datetime.fromisoformat(saved["hold_until"]) if saved.get("hold_until") else None
        except (TypeError, ValueError):
            return
        if hold is not None and hold <= self.ctx.clock.now():
            self._save_manual()  # expired while the hub was down: forget it
            return
        self.mode, self.hold_until = "manual", hold
        self.reason = f"{saved.get('reason') or 'manual'} (kept across a hub restart)"

    def _save_manual(self) -> None:
        remember = getattr(self.ctx, "remember", None)
        if remember is None:
            return
        if self.mode == "manual":
            remember("manual", {"hold_until": self.hold_until.isoformat() if self.hold_until else None,
                                "reason": self.reason})
        else:
            remember("manual", None)

    def light_state(self) -> dict[str, Any]:
        """The light's state fields (relay read-back plus mode bookkeeping)."""
        return {"state": _word(self.relay_on), "mode": self.mode, "reason": self.reason,
                "hold_until": self.hold_until.astimezone(self.tz).isoformat(timespec="seconds")
                if self.hold_until else None}

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> DeviceInfo:
        c = self.config
        if c.driver == "mqtt_relay":
            self.relay = TasmotaRelay(getattr(self.ctx, "mqtt", None), c.topic or "", c.index, c.timeout / 2)
        await self.relay.connect()
        model = {"modbus_coil": "Modbus coil relay board",
                 "modbus_register": f"FC06 relay board ({c.profile or 'r4d3b16'})",
                 "mqtt_relay": "Tasmota relay"}[c.driver]
        return DeviceInfo(model=model)

    async def close(self) -> None:
        if self.relay is not None:
            await self.relay.close()

    async def poll(self) -> dict[str, Any]:
        on = await self.relay.read()
        now = self._now()
        if self.relay_on is not None and on != self.relay_on:
            timer = self._hw_timer_until
            if timer is not None and not on and now >= timer - timedelta(seconds=2):
                self.reason = "switched OFF by the relay board's own timer"
            else:
                self.reason = f"relay changed to {_word(on)} outside the hub (switch, button or timer)"
            self._hw_timer_until = None
        self.relay_on = on
        if self.mode == "manual" and self.hold_until is not None and now >= self.hold_until:
            self.mode, self.hold_until = "auto", None
            self.reason = f"manual hold ended at {self._fmt(now)}; back to automatic"
            self._save_manual()
        return self.light_state()

    # ------------------------------------------------------------------ commands
    async def handle_command(self, command: Command) -> dict[str, Any]:
        p: LightCommand = command.payload  # type: ignore[assignment]
        now = self._now()
        who = command.user or (command.source.removeprefix("rule:") if not command.by_person else command.source)
        actual = self.relay_on
        target: bool | None = None
        if p.state is not None:
            if p.state == "TOGGLE":
                current = await self.relay.read()
                target = not current
            else:
                target = p.state == "ON"
            hw_hold = p.hold if (command.by_person and p.mode != "auto") else None
            armed = await self.relay.write(target, hw_hold)
            self._hw_timer_until = now + timedelta(seconds=hw_hold) if armed and hw_hold else None
            actual = await self.relay.read()
            self.relay_on = actual
            if actual != target:
                self.ctx.event("relay_mismatch", requested=_word(target), actual=_word(actual),
                               channel=self.config.channel)
        if p.mode == "auto":
            self.mode, self.hold_until = "auto", None
            self.reason = f"released to automatic by {who}"
            if target is not None:
                self.reason += f" (relay {_word(actual)})"
        elif command.by_person:
            self.mode = "manual"
            if p.hold is not None:
                self.hold_until = now + timedelta(seconds=p.hold)
            elif self.ctx.sun is not None:
                self.hold_until = self.ctx.sun.next_transition(now)
            else:
                self.hold_until = None
            until = f"holds until {self._fmt(self.hold_until)}" if self.hold_until else "holds until released"
            verb = f"switched {_word(actual)}" if target is not None else f"kept {_word(actual)}"
            self.reason = f"{verb} by {'officer ' + command.user if command.user else who} (manual, {until})"
            if target is not None and actual != target:
                self.reason += f"; relay did not follow ({_word(target)} requested)"
        elif target is not None:
            self.reason = command.reason or f"switched {_word(actual)} by rule {who}"
            if actual != target:
                self.reason += f"; relay did not follow ({_word(target)} requested)"
        if self.relay_on is None:
            self.relay_on = await self.relay.read()
        if p.mode is not None or command.by_person:
            self._save_manual()
        return self.light_state()

    def entities(self) -> list[Entity]:
        return [Entity("light", "state", "Light"),
                Entity("sensor", "mode", "Mode", icon="mdi:account-cog"),
                Entity("sensor", "reason", "Reason", icon="mdi:information-outline"),
                Entity("sensor", "hold_until", "Manual hold until", "timestamp")]
