"""A UPS watched through a NUT server (upsd): ``LIST VAR <ups>`` over TCP, every poll."""

import asyncio
import shlex

from pydantic import Field

from hub.api import AuthError, DeviceConfig, DeviceError, DeviceInfo, PlatformSpec
from hub.api.ups import UpsDriver, UpsReading, UpsThresholds
from hub.hookspecs import hookimpl

VALUES = {"battery.charge": "battery_charge", "battery.runtime": "battery_runtime",
          "battery.voltage": "battery_voltage", "input.voltage": "input_voltage",
          "output.voltage": "output_voltage", "ups.load": "load"}


class NutConfig(DeviceConfig, UpsThresholds):
    host: str
    port: int = Field(3493, ge=1, le=65535)
    ups: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")    # the UPS's name in upsd (ups.conf)
    username: str | None = Field(None, pattern=r"^[^\s\"\\]+$")  # a upsd.users account, to LOGIN like upsmon
    password: str | None = Field(None, pattern=r"^[^\s\"\\]+$")


class NutUps(UpsDriver[NutConfig]):
    async def connect(self) -> DeviceInfo:
        c = self.config
        try:
            self.io = await asyncio.wait_for(asyncio.open_connection(c.host, c.port), c.timeout)
        except (OSError, TimeoutError) as exc:
            raise DeviceError(f"cannot reach upsd at {c.host}:{c.port}: {exc or 'timeout'}") from None
        if c.username:
            for line in (f"USERNAME {c.username}", f"PASSWORD {c.password or ''}", f"LOGIN {c.ups}"):
                if not (await self.ask(line)).startswith("OK"):
                    raise AuthError(f"upsd refused the login of {c.username!r} to {c.ups}")
        v = await self.list_vars()
        return DeviceInfo(model=v.get("ups.model") or v.get("device.model"), serial=v.get("ups.serial"),
                          firmware=v.get("ups.firmware"), manufacturer=v.get("ups.mfr") or v.get("device.mfr"))

    async def ask(self, line: str) -> str:
        self.io[1].write(line.encode() + b"\n")
        return await self.line()

    async def line(self) -> str:
        raw = await asyncio.wait_for(self.io[0].readline(), self.config.timeout)
        if not raw:
            raise DeviceError("upsd closed the connection")
        return raw.decode("utf-8", "replace").strip()

    async def list_vars(self) -> dict[str, str]:
        ups = self.config.ups
        if (answer := await self.ask(f"LIST VAR {ups}")) != f"BEGIN LIST VAR {ups}":
            raise DeviceError(f"upsd: {answer[:80]}")
        found: dict[str, str] = {}
        while (line := await self.line()) != f"END LIST VAR {ups}":
            try:  # VAR <ups> <name> "<value>" (quotes and backslashes escaped as NUT does)
                word = shlex.split(line)
            except ValueError:
                raise DeviceError(f"upsd sent garbage: {line[:80]!r}") from None
            if len(word) != 4 or word[0] != "VAR" or len(found) > 1000:
                raise DeviceError(f"upsd sent garbage: {line[:80]!r}")
            found[word[2]] = word[3]
        return found

    async def read_ups(self) -> UpsReading:
        v = await self.list_vars()
        values = {}
        for var, name in VALUES.items():
            try:
                number = float(v[var]) if var in v else None
                values[name] = int(number) if number is not None and number.is_integer() else number
            except ValueError:
                values[name] = None
        tokens = [t for t in v.get("ups.status", "").split() if t != "ALARM"]
        return UpsReading(tokens, [v["ups.alarm"]] if v.get("ups.alarm") else [], values)

    async def close(self) -> None:
        if getattr(self, "io", None):
            self.io[1].close()


@hookimpl
def anninh_platforms():
    return [PlatformSpec(name="nut_ups", config_model=NutConfig, driver=NutUps,
                         description="a UPS watched through a NUT server (upsd)")]


@hookimpl
def anninh_simulators():
    from .simulator import main
    return {"nut_ups": main}
