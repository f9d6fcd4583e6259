"""What every Modbus plugin shares: the connection keys of a device's config and one pymodbus
connection (TCP, RTU over TCP through a transparent gateway, or serial RTU) whose failures become
:class:`hub.api.DeviceError` with a clear message (no stack, no frame dump)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from hub.api import DeviceConfig, DeviceError

# pymodbus logs every timeout or bad frame at ERROR (CRITICAL for some) with the last raw frames
# of any connection attached; the hub already logs "<device> offline: <cause>" once per outage.
# Silence it when nobody configured the "pymodbus" logger (library use); the CLI's logging setup
# does the same at its default verbosity (hub.cli.setup_logging).
if logging.getLogger("pymodbus").level == logging.NOTSET:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL + 1)

Transport = Literal["tcp", "rtu_over_tcp", "serial"]


class ModbusDeviceConfig(DeviceConfig):
    """Connection keys of a Modbus device; a platform's config model subclasses this."""

    host: str | None = Field(None, description="IP/host name of the device or its Modbus TCP gateway")
    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=247, description="Modbus device (slave) id")
    transport: Transport = "tcp"
    serial_port: str | None = None
    baudrate: int = Field(9600, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    def link_args(self) -> dict[str, Any]:
        """Keyword arguments of :class:`ModbusConnection` (all but ``timeout``)."""
        return dict(host=self.host, port=self.port, unit=self.unit, transport=self.transport,
                    serial_port=self.serial_port, baudrate=self.baudrate, parity=self.parity,
                    stopbits=self.stopbits)


def short_error(exc: BaseException) -> str:
    """One line for a pymodbus exception."""
    if isinstance(exc, ModbusIOException):
        return "no response (timed out)"
    if isinstance(exc, ConnectionException):
        return "not connected (connection lost)"
    return (str(exc).split("\n")[0] or type(exc).__name__)[:160]


class ModbusConnection:
    """One Modbus connection to one unit id. ``where`` names it in messages."""

    def __init__(self, *, host: str | None, port: int, unit: int, transport: Transport, timeout: float,
                 serial_port: str | None = None, baudrate: int = 9600, parity: str = "N",
                 stopbits: int = 1) -> None:
        self.unit = unit
        self.transport = transport
        self.timeout = timeout
        self.where = f"{serial_port} unit {unit}" if transport == "serial" else f"{host}:{port} unit {unit}"
        self._args: dict[str, Any] = dict(host=host, port=port, serial_port=serial_port, baudrate=baudrate,
                                          parity=parity, stopbits=stopbits)
        self.client: Any = None

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

    def close_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def require(self) -> Any:
        if self.client is None:
            raise DeviceError(f"not connected to {self.where}")
        return self.client
