"""A thin wrapper over the pymodbus async clients that turns every Modbus failure into a
:class:`hub.api.DeviceError` with a clear message (no URL, no secrets)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymodbus.exceptions import ModbusException

from hub.api import DeviceError
from hub.modbus import ModbusConnection, short_error

from .maps import Block

_READERS = {"holding": "read_holding_registers", "input": "read_input_registers",
            "coil": "read_coils", "discrete": "read_discrete_inputs"}
_FC = {"holding": 3, "input": 4, "coil": 1, "discrete": 2}
_EXC_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
              4: "device failure", 5: "acknowledge", 6: "device busy",
              10: "gateway path unavailable", 11: "gateway target did not respond"}


class ModbusLink(ModbusConnection):
    """One Modbus connection to one unit id, reading the register maps' blocks."""

    def close(self) -> None:
        self.close_client()

    def _check(self, rr: Any, what: str) -> Any:
        if rr is None:
            raise DeviceError(f"no response to {what} from {self.where}")
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            name = _EXC_NAMES.get(code or 0, "error")
            raise DeviceError(f"Modbus exception {code} ({name}) on {what} from {self.where}")
        return rr

    async def read(self, block: Block) -> list[int] | list[bool]:
        """Read one block; raise DeviceError on any failure or short answer."""
        client = self.require()
        what = f"FC{_FC[block.table]:02d} read of {block.count} from {block.address}"
        try:
            rr = await getattr(client, _READERS[block.table])(block.address, count=block.count,
                                                                device_id=self.unit)
        except ModbusException as exc:
            raise DeviceError(f"{what} on {self.where} failed: {short_error(exc)}") from None
        self._check(rr, what)
        if block.table in ("coil", "discrete"):
            bits = list(rr.bits)
            if len(bits) < block.count:
                raise DeviceError(f"short answer to {what} from {self.where}")
            return [bool(b) for b in bits[: block.count]]
        regs = list(rr.registers)
        if len(regs) != block.count:
            raise DeviceError(f"{what}: got {len(regs)} registers from {self.where}")
        return regs

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        client = self.require()
        what = f"FC16 write of {len(values)} at {address}"
        try:
            rr = await client.write_registers(address, list(values), device_id=self.unit)
        except ModbusException as exc:
            raise DeviceError(f"{what} on {self.where} failed: {short_error(exc)}") from None
        self._check(rr, what)

