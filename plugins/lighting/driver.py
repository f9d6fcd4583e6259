"""The ``lighting`` platform: street lights and floodlights on relays.

State and command semantics are the ``light`` device class's (:mod:`hub.api.lights`); this module
only builds the relay back-end (:mod:`.relays`) a device's config names.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from hub.api import DeviceContext, DeviceInfo
from hub.api.lights import LightCommand
from hub.api.lights import LightDriver as LightBase
from hub.modbus import ModbusDeviceConfig

from .relays import PROFILES, CoilRelay, RegisterRelay, TasmotaRelay

__all__ = ["LightCommand", "LightConfig", "LightDriver"]


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


class LightDriver(LightBase[LightConfig]):
    """One relay channel (Modbus coil, FC06 command word or Tasmota) as a ``light``."""

    config: LightConfig

    def __init__(self, config: LightConfig, ctx: DeviceContext) -> None:
        super().__init__(config, ctx)
        c = config
        if c.driver == "mqtt_relay":
            self.relay: Any = None  # created at connect (needs ctx.mqtt, which exists once the hub runs)
        else:
            kw = dict(channel=c.channel, timeout=max(0.1, c.timeout / 2.5), **c.link_args())
            if c.driver == "modbus_coil":
                self.relay = CoilRelay(flash=c.flash, **kw)
            else:
                self.relay = RegisterRelay(profile=PROFILES[c.profile or "r4d3b16"], **kw)

    async def read_relay(self) -> bool:
        return bool(await self.relay.read())

    async def write_relay(self, on: bool, hold: int | None) -> bool:
        return bool(await self.relay.write(on, hold))

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
