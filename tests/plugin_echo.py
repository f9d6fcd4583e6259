"""A test plugin registered by fixtures: 'echo' devices whose behaviour the test controls."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.api import CommandError, DeviceConfig, DeviceError, DeviceInfo, Driver, Entity, PlatformSpec
from hub.hookspecs import hookimpl

# test-controlled behaviour, by device id
BEHAVIOUR: dict[str, dict[str, Any]] = {}


class EchoConfig(DeviceConfig):
    value: int = Field(0, ge=0, le=1000)
    poll_interval: float = 0.05


class EchoCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["ON", "OFF"] | None = None
    value: int | None = Field(None, ge=0, le=1000)


class EchoDriver(Driver):
    kind = "light"
    command_model: ClassVar[type[BaseModel] | None] = EchoCommand
    config: EchoConfig
    stale_fields = ("value",)

    async def connect(self) -> DeviceInfo:
        b = BEHAVIOUR.setdefault(self.config.id, {})
        if b.get("fail"):
            raise DeviceError(b["fail"])
        return DeviceInfo(model="Echo-1", serial=f"SN-{self.config.id}", firmware="1.0")

    async def poll(self) -> dict[str, Any]:
        b = BEHAVIOUR.setdefault(self.config.id, {})
        b["polls"] = b.get("polls", 0) + 1
        if b.get("fail"):
            raise DeviceError(b["fail"])
        if b.get("raise"):
            raise RuntimeError(b["raise"])
        return {"value": b.get("value", self.config.value), "state": b.get("state", "OFF")}

    async def handle_command(self, command: Any) -> dict[str, Any]:
        b = BEHAVIOUR.setdefault(self.config.id, {})
        p = command.payload
        if b.get("refuse"):
            raise CommandError("refused by test")
        b.setdefault("commands", []).append((p.model_dump(exclude_none=True), command.user))
        if p.state:
            b["state"] = p.state
        if p.value is not None:
            b["value"] = p.value
        return {"state": b.get("state", "OFF"), "value": b.get("value", self.config.value)}

    def entities(self) -> list[Entity]:
        return [Entity("switch", "state", "Light"), Entity("sensor", "value", "Value")]


@hookimpl
def anninh_platforms() -> list[PlatformSpec]:
    return [PlatformSpec(name="echo", config_model=EchoConfig, driver=EchoDriver, description="test")]
