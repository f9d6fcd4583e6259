"""A light on a Shelly Gen2 relay, over its HTTP RPC API (Switch.GetStatus / Switch.Set)."""

import aiohttp
from pydantic import Field

from hub.api import DeviceConfig, DeviceError, DeviceInfo, PlatformSpec
from hub.api.lights import LightDriver
from hub.hookspecs import hookimpl


class ShellyConfig(DeviceConfig):
    host: str
    port: int = Field(80, ge=1, le=65535)
    channel: int = Field(0, ge=0, le=15)             # the Switch component's id


class ShellyLight(LightDriver[ShellyConfig]):
    async def connect(self) -> DeviceInfo:
        self.http = aiohttp.ClientSession(f"http://{self.config.host}:{self.config.port}",
                                          timeout=aiohttp.ClientTimeout(total=self.config.timeout / 2))
        info = await self.rpc("Shelly.GetDeviceInfo")
        return DeviceInfo(model=info.get("model"), firmware=info.get("ver"), manufacturer="Shelly")

    async def rpc(self, method: str, **params: int | str) -> dict:
        try:
            async with self.http.get(f"/rpc/{method}", params=params) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeviceError(f"{method} failed: {exc or type(exc).__name__}") from None
        if resp.status != 200 or not isinstance(body, dict):
            raise DeviceError(f"{method} answered {resp.status}: {str(body)[:100]}")
        return body

    async def read_relay(self) -> bool:
        output = (await self.rpc("Switch.GetStatus", id=self.config.channel)).get("output")
        if not isinstance(output, bool):
            raise DeviceError("Switch.GetStatus has no boolean 'output'")
        return output

    async def write_relay(self, on: bool, hold: int | None) -> bool:
        timer = {"toggle_after": hold} if on and hold else {}  # the relay's own off-timer
        await self.rpc("Switch.Set", id=self.config.channel, on="true" if on else "false", **timer)
        return bool(timer)

    async def close(self) -> None:
        if getattr(self, "http", None):
            await self.http.close()


@hookimpl
def anninh_platforms():
    return [PlatformSpec(name="shelly_light", config_model=ShellyConfig, driver=ShellyLight,
                         description="a light on a Shelly Gen2 relay (HTTP RPC)")]


@hookimpl
def anninh_simulators():
    from .simulator import main
    return {"shelly_light": main}
