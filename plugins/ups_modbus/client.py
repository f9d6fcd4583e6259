"""A thin wrapper over the pymodbus async clients that turns every Modbus failure into a
:class:`hub.api.DeviceError` with a clear message (no URL, no secrets)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from hub.api import DeviceError

from .maps import Block

# pymodbus logs every timeout at ERROR with a frame dump; the hub already logs "offline" once per
# outage. Quieten it unless the user configured the "pymodbus" logger themselves.
if logging.getLogger("pymodbus").level == logging.NOTSET:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

Transport = Literal["tcp", "rtu_over_tcp", "serial"]

_READERS = {"holding": "read_holding_registers", "input": "read_input_registers",
            "coil": "read_coils", "discrete": "read_discrete_inputs"}
_FC = {"holding": 3, "input": 4, "coil": 1, "discrete": 2}
_EXC_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
              4: "device failure", 5: "acknowledge", 6: "device busy",
              10: "gateway path unavailable", 11: "gateway target did not respond"}


class ModbusLink:
    """One Modbus connection (TCP, RTU over TCP, or serial) to one unit id."""

    def __init__(self, *, host: str | None, port: int, unit: int, transport: Transport, timeout: float,
                 serial_port: str | None = None, baudrate: int = 9600, parity: str = "N",
                 stopbits: int = 1) -> None:
        self.unit = unit
        self.transport = transport
        self.timeout = timeout
        self.where = f"{serial_port} unit {unit}" if transport == "serial" else f"{host}:{port} unit {unit}"
        self._args: dict[str, Any] = dict(host=host, port=port, serial_port=serial_port, baudrate=baudrate,
                                          parity=parity, stopbits=stopbits)
        self.client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None

    async def connect(self) -> None:
        a = self._args
        try:
            if self.transport == "serial":
                self.client = AsyncModbusSerialClient(
                    a["serial_port"], baudrate=a["baudrate"], parity=a["parity"], stopbits=a["stopbits"],
                    bytesize=8, timeout=self.timeout, retries=0, reconnect_delay=0)
            else:
                framer = FramerType.RTU if self.transport == "rtu_over_tcp" else FramerType.SOCKET
                self.client = AsyncModbusTcpClient(a["host"], port=a["port"], framer=framer,
                                                   timeout=self.timeout, retries=0, reconnect_delay=0)
        except RuntimeError as exc:  # e.g. pyserial missing
            raise DeviceError(f"cannot use {self.transport} transport: {exc}") from None
        try:
            ok = await self.client.connect()
        except (OSError, ModbusException) as exc:
            raise DeviceError(f"cannot connect to {self.where}: {type(exc).__name__}") from None
        if not ok:
            raise DeviceError(f"cannot connect to {self.where} (refused or timed out)")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _check(self, rr: Any, what: str) -> Any:
        if rr is None:
            raise DeviceError(f"no response to {what} from {self.where}")
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            name = _EXC_NAMES.get(code or 0, "error")
            raise DeviceError(f"Modbus exception {code} ({name}) on {what} from {self.where}")
        return rr

    def _require(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self.client is None:
            raise DeviceError(f"not connected to {self.where}")
        return self.client

    async def read(self, block: Block) -> list[int] | list[bool]:
        """Read one block; raise DeviceError on any failure or short answer."""
        client = self._require()
        what = f"FC{_FC[block.table]:02d} read of {block.count} from {block.address}"
        try:
            rr = await getattr(client, _READERS[block.table])(block.address, count=block.count,
                                                                device_id=self.unit)
        except ModbusException as exc:
            raise DeviceError(f"{what} on {self.where} failed: {_short(exc)}") from None
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
        client = self._require()
        what = f"FC16 write of {len(values)} at {address}"
        try:
            rr = await client.write_registers(address, list(values), device_id=self.unit)
        except ModbusException as exc:
            raise DeviceError(f"{what} on {self.where} failed: {_short(exc)}") from None
        self._check(rr, what)


def _short(exc: BaseException) -> str:
    if isinstance(exc, ModbusIOException):
        return "no response (timed out)"
    if isinstance(exc, ConnectionException):
        return "not connected (connection lost)"
    text = str(exc).split("\n")[0]
    return text[:160] or type(exc).__name__
