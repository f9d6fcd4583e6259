"""Relay back-ends: how to switch and read one relay channel.

* :class:`CoilRelay` — Waveshare-style boards: FC01 read coils, FC05 write coil (0xFF00/0x0000),
  and the vendor "flash ON" command (FC05 at ``0x0200 + channel`` with a value in 100 ms units)
  that makes the *board* switch the relay off after a time, even if the hub dies.
* :class:`RegisterRelay` — Eletechsup / R4D3B16 / RYN4 style boards: FC06 command words
  (``0x0100`` on, ``0x0200`` off, ``0x06SS`` on-then-off-after-SS-seconds) and FC03 read-back.
* :class:`TasmotaRelay` — Tasmota firmware over MQTT on the hub's own broker connection.

Every ``write`` returns whether a hardware timer was armed; the driver always reads back.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymodbus.exceptions import ModbusException
from pymodbus.pdu.bit_message import WriteSingleCoilRequest

from hub.api import CommandError, DeviceError
from hub.modbus import ModbusConnection, short_error

WAVESHARE_FLASH_ON = 0x0200
WAVESHARE_FLASH_OFF = 0x0400
WAVESHARE_FLASH_MAX = 0x7FFF  # × 100 ms = 3276.7 s


class RawWriteCoilRequest(WriteSingleCoilRequest):
    """FC05 with an arbitrary 16-bit value (pymodbus only sends 0xFF00/0x0000): Waveshare flash."""

    def __init__(self, address: int = 0, value: int = 0, dev_id: int = 1) -> None:
        super().__init__(address=address, dev_id=dev_id)
        self.raw = value

    def encode(self) -> bytes:
        return struct.pack(">HH", self.address, self.raw)


@dataclass(frozen=True, slots=True)
class RegisterProfile:
    """Command words of one FC06 board family (docs/reference/power_lighting.md §3.2)."""

    name: str
    register_base: int
    """Register of channel 0 (RYN4/R4D3B16: 1-based registers, so 1; 25IOB16: 0)."""
    on: int = 0x0100
    off: int = 0x0200
    delay: int | None = 0x0600
    """``delay | seconds`` = on now, off after seconds (1..255); ``delay`` alone cancels."""
    max_delay: int = 255
    description: str = ""


PROFILES: dict[str, RegisterProfile] = {p.name: p for p in (
    RegisterProfile("r4d3b16", 1, description="Eletechsup R4D3B16 / R4D8A08 and RYN4/RYN404E/RYN408F boards "
                                             "(channel registers 1..N)"),
    RegisterProfile("eletechsup_25iob16", 0, description="Eletechsup 25IOB16 (channel n at register n-1)"),
    RegisterProfile("plain_fc06", 0, on=0x0001, off=0x0000, delay=None,
                    description="generic boards where a holding register 1/0 is the relay"),
)}


class ModbusRelayBase(ModbusConnection):
    """A relay channel on a Modbus board (TCP, RTU over TCP, serial)."""

    def __init__(self, *, channel: int, **link: Any) -> None:
        super().__init__(**link)
        self.channel = channel

    async def close(self) -> None:
        self.close_client()

    async def _call(self, what: str, coro_factory: Callable[[], Any], *, write: bool = False) -> Any:
        self.require()
        try:
            rr = await coro_factory()
        except ModbusException as exc:
            raise DeviceError(f"{what} on {self.where} failed: {short_error(exc)}") from None
        if rr is None or rr.isError():
            code = getattr(rr, "exception_code", None)
            msg = f"{what} refused by {self.where} (Modbus exception {code})"
            raise (CommandError if write else DeviceError)(msg)
        return rr


class CoilRelay(ModbusRelayBase):
    """Waveshare-style coil board, optionally with the hardware flash timer for timed holds."""

    def __init__(self, *, flash: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        self.flash = flash

    async def read(self) -> bool:
        rr = await self._call(f"FC01 read of coil {self.channel}",
                              lambda: self.client.read_coils(self.channel, count=1, device_id=self.unit))
        if not rr.bits:
            raise DeviceError(f"empty answer to FC01 from {self.where}")
        return bool(rr.bits[0])

    async def write(self, on: bool, hold: float | None) -> bool:
        if on and hold and self.flash and round(hold * 10) <= WAVESHARE_FLASH_MAX:
            pdu = RawWriteCoilRequest(WAVESHARE_FLASH_ON + self.channel, round(hold * 10), dev_id=self.unit)
            await self._call(f"FC05 flash-on of relay {self.channel}",
                             lambda: self.client.execute(False, pdu), write=True)
            return True
        await self._call(f"FC05 write of coil {self.channel}",
                         lambda: self.client.write_coil(self.channel, on, device_id=self.unit), write=True)
        return False


class RegisterRelay(ModbusRelayBase):
    """FC06 command-word board (profile gives the words and the register numbering)."""

    def __init__(self, *, profile: RegisterProfile, **kw: Any) -> None:
        super().__init__(**kw)
        self.profile = profile
        self.register = profile.register_base + self.channel
        self._delay_armed = False

    async def read(self) -> bool:
        rr = await self._call(f"FC03 read of register {self.register}",
                              lambda: self.client.read_holding_registers(self.register, count=1,
                                                                         device_id=self.unit))
        if len(rr.registers) != 1:
            raise DeviceError(f"bad answer to FC03 from {self.where}")
        return rr.registers[0] != 0

    async def _word(self, word: int) -> None:
        await self._call(f"FC06 write of 0x{word:04X} to register {self.register}",
                         lambda: self.client.write_register(self.register, word, device_id=self.unit), write=True)

    async def write(self, on: bool, hold: float | None) -> bool:
        p = self.profile
        if self._delay_armed and p.delay is not None:
            await self._word(p.delay)  # cancel the running delay first: RYN4 ignores OFF while it runs
            self._delay_armed = False
        if on and hold and p.delay is not None and 1 <= round(hold) <= p.max_delay:
            await self._word(p.delay | round(hold))
            self._delay_armed = True
            return True
        await self._word(p.on if on else p.off)
        return False


class TasmotaRelay:
    """A Tasmota relay: ``cmnd/<topic>/POWER<n>``, state from ``stat/<topic>/POWER<n>`` or
    ``stat/<topic>/RESULT``, availability from ``tele/<topic>/LWT`` (Online/Offline)."""

    def __init__(self, mqtt: Any, topic: str, index: int | None, timeout: float) -> None:
        self.mqtt = mqtt
        self.topic = topic
        self.key = f"POWER{index}" if index else "POWER"
        self.keys = {self.key, "POWER"} if index in (None, 1) else {self.key}
        self.timeout = timeout
        self.where = f"Tasmota relay {topic!r} ({self.key})"
        self.state: bool | None = None
        self.lwt: str | None = None
        self._unsubs: list[Callable[[], None]] = []
        self._waiters: list[asyncio.Future[bool]] = []

    def _on_state(self, value: Any) -> None:
        if not isinstance(value, str) or value.upper() not in ("ON", "OFF"):
            return  # garbage is skipped
        self.state = value.upper() == "ON"
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(self.state)
        self._waiters.clear()

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            text = payload.decode("utf-8", "replace").strip()
            kind, _, name = topic.rpartition("/")
            if topic == f"tele/{self.topic}/LWT":
                self.lwt = text
            elif kind == f"stat/{self.topic}" and name in self.keys:
                self._on_state(text)
            elif topic in (f"stat/{self.topic}/RESULT", f"tele/{self.topic}/STATE"):
                data = json.loads(text)
                if isinstance(data, dict):
                    for k in self.keys:
                        if k in data:
                            self._on_state(data[k])
                            break
        except (ValueError, TypeError):
            return

    async def connect(self) -> None:
        if self.mqtt is None:
            raise DeviceError("the hub has no MQTT connection for Tasmota relays")
        for t in (f"stat/{self.topic}/+", f"tele/{self.topic}/LWT", f"tele/{self.topic}/STATE"):
            self._unsubs.append(self.mqtt.subscribe(t, self._on_message))

    async def close(self) -> None:
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        for fut in self._waiters:
            fut.cancel()
        self._waiters.clear()

    async def _ask(self, payload: str, what: str) -> bool:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.mqtt.publish(f"cmnd/{self.topic}/{self.key}", payload, 1, False)  # never retained (ghost switching)
        try:
            return await asyncio.wait_for(fut, self.timeout)
        except TimeoutError:
            raise DeviceError(f"{self.where} did not answer {what} within {self.timeout:g} s") from None

    async def read(self) -> bool:
        if self.lwt is not None and self.lwt.lower() == "offline":
            raise DeviceError(f"{self.where} is offline (LWT)")
        return await self._ask("", "a state query")

    async def write(self, on: bool, hold: float | None) -> bool:
        await self._ask("ON" if on else "OFF", "a command")
        return False
