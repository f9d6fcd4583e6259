"""A Modbus TCP server that holds the ``ups_modbus`` register maps, for tests, the demo and for
installers who want to try a config without hardware.

Python API::

    sim = UpsSimulator(models={1: "apc_smt", 2: "sdm120"}, port=0)   # port 0 = any free port
    await sim.start()
    sim.port                                   # the port it listens on (127.0.0.1)
    sim.set_state(1, mains=False)              # mains lost: UPS on battery
    sim.set_state(1, low_battery=True)         # the UPS raises its low-battery flag
    sim.set_state(1, dead=True)                # unit 1 stops answering (requests time out)
    await sim.stop(); await sim.start()        # the whole server goes away and comes back
    await sim.stop()

Every unit is an independent witness: it encodes from its own table written from the device's
documentation (reference power_lighting.md), never from ``maps.py``, so a wrong address or scale
in the driver's maps shows up as a wrong value. The APC unit serves the whole documented register space of
Application Note 176 as NUT's ``apc_modbus`` reads it (status 0–26, dynamic 128–171, inventory
516–635, settings 1026–1047, commands 1536–1543); like the UPS, a block read that starts on a
documented register returns zeros for undocumented ones; any other read is an illegal-address
exception. ``framer="rtu"`` serves RTU frames over TCP, like a serial gateway in transparent
mode.

Command line (also ``anninh simulate ups_modbus``)::

    python -m plugins.ups_modbus.simulator --model apc_smt --port 5020
    python -m plugins.ups_modbus.simulator --unit 1=apc_smt --unit 2=sdm120 --port 5020 --framer rtu

then type commands on stdin (``help`` lists them), e.g. ``mains off``, ``2 mains on``,
``lowbatt on``, ``rb on``, ``test on``, ``fault on``, ``inputbad on``, ``dead on``, ``charge 35``,
``show``; or send SIGUSR1 to toggle mains on every unit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer

from .driver import DEFAULT_CONTACTS
from .maps import BUILTIN_MAPS, Contact

FC_TABLE = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding",
            23: "holding", 4: "input"}

MODELS = (*BUILTIN_MAPS, "generic_dry_contact")


@dataclass
class UnitState:
    """What the simulated device is going through (set with :meth:`UpsSimulator.set_state`)."""

    mains: bool = True
    battery_charge: float = 100.0
    battery_runtime: int = 3600
    battery_voltage: float = 27.0
    input_voltage: float = 230.0
    output_voltage: float = 230.0
    load: float = 25.0
    low_battery: bool = False
    replace_battery: bool = False
    self_test: bool = False
    calibrating: bool = False
    fault: bool = False
    """APC: general fault (UPSStatus_BF bit 5) caused by an inverter fault (PowerSystemError_BF bit 13)."""
    input_bad: bool = False
    """APC: input not acceptable (UPSStatus_BF bit 6)."""
    dead: bool = False
    # power meters
    current: float = 0.48
    power: float = 105.0
    energy: float = 12345.0
    frequency: float = 50.0
    power_factor: float = 0.95


# ====================================================================== APC Smart-UPS (AN176)
# Written from APC Application Note 176 as summarised in reference power_lighting.md §1.1, on its
# own: nothing here comes from maps.py. Addresses are 0-based protocol addresses (40001 = 0), every
# read is FC03; 32-bit values are most significant register first; fixed point is raw / 2^n.

APC_BLOCKS = ((0, 27), (128, 44), (516, 120), (1026, 22), (1536, 8))
"""(start, count) of the documented blocks: status, dynamic, inventory, settings, commands."""
APC_WRITABLE = ((595, 41), (1026, 22), (1536, 8))

APC_INVENTORY = {
    516: ("UPS 09.3 (ID18)", 8),       # firmware revision
    532: ("Smart-UPS X 1500", 16),     # model
    548: ("SMX1500RMI2U", 16),         # SKU
    564: ("AS1829123456", 8),          # serial number
    596: ("KP3 TAM", 8),               # name
    604: ("Main outlets", 8),          # outlet group names
    612: ("Switched 1", 8),
}
APC_VA, APC_WATTS = 1500, 1200
APC_MANUFACTURED, APC_BATTERY_INSTALLED = date(2018, 7, 12), date(2023, 3, 1)

# UPSStatus_BF bits (registers 0-1)
APC_ST_ONLINE, APC_ST_ON_BATTERY, APC_ST_BYPASS, APC_ST_OUTPUT_OFF = 1 << 1, 1 << 2, 1 << 3, 1 << 4
APC_ST_FAULT, APC_ST_INPUT_BAD, APC_ST_TEST, APC_ST_OVERLOAD = 1 << 5, 1 << 6, 1 << 7, 1 << 21
APC_POWER_ERR_INVERTER = 1 << 13        # PowerSystemError_BF (registers 20-21)
APC_BATTERY_ERR_REPLACE = 1 << 2        # BatterySystemError_BF (register 22)


def _apc_days(d: date) -> int:
    return (d - date(2000, 1, 1)).days


def _apc_text(regs: dict[int, int], address: int, text: str, count: int) -> None:
    raw = text.encode("ascii").ljust(2 * count, b" ")[: 2 * count]
    for i in range(count):
        regs[address + i] = (raw[2 * i] << 8) | raw[2 * i + 1]


def _apc_u32(regs: dict[int, int], address: int, value: int) -> None:
    value &= 0xFFFFFFFF
    regs[address], regs[address + 1] = value >> 16, value & 0xFFFF


def _apc_fixed(value: float, bits: int) -> int:
    return round(value * (1 << bits)) & 0xFFFF


def apc_registers(s: UnitState) -> dict[int, int]:
    """The holding registers of a Smart-UPS in state ``s`` (undocumented ones absent = 0)."""
    regs: dict[int, int] = {}
    on_battery = not s.mains or s.self_test          # a self-test runs the load on the battery
    status = APC_ST_ON_BATTERY if on_battery else APC_ST_ONLINE
    status |= (APC_ST_TEST if s.self_test else 0) | (APC_ST_FAULT if s.fault else 0)
    status |= APC_ST_INPUT_BAD if s.input_bad else 0
    _apc_u32(regs, 0, status)
    regs[2] = 9 if s.self_test else (8 if s.mains else 2)   # change cause: test / acceptable / low input
    _apc_u32(regs, 3, 1)                                     # main outlet group: on
    _apc_u32(regs, 6, 1)                                     # switched group 0: on
    regs[18] = (1 if not s.mains else 0) | (2 if s.low_battery else 0)   # PowerFailure, ShutdownImminent
    _apc_u32(regs, 20, APC_POWER_ERR_INVERTER if s.fault else 0)
    regs[22] = APC_BATTERY_ERR_REPLACE if s.replace_battery else 0
    # ReplaceBatteryTestStatus: in progress (bit 1) from the protocol (bit 6), else passed (bit 2)
    regs[23] = (1 << 1 | 1 << 6) if s.self_test else (1 << 2 | 1 << 6)
    regs[24] = 1 << 1 if s.calibrating else 0               # RunTimeCalibrationStatus InProgress
    regs[25] = 1                                             # battery lifetime OK
    regs[26] = 1 if s.self_test else 0                       # user interface: test in progress
    # dynamic
    _apc_u32(regs, 128, int(s.battery_runtime))
    regs[130] = _apc_fixed(s.battery_charge, 9)
    regs[131] = _apc_fixed(s.battery_voltage, 5)
    regs[133] = _apc_days(APC_BATTERY_INSTALLED)
    regs[135] = _apc_fixed(28.5, 7)                          # battery temperature °C
    regs[136] = _apc_fixed(s.load, 8)                        # real power, % of nominal
    regs[138] = _apc_fixed(min(100.0, s.load * 1.1), 8)      # apparent power, % of nominal
    watts = s.load / 100 * APC_WATTS
    regs[140] = _apc_fixed(watts / s.output_voltage if s.output_voltage else 0.0, 5)
    regs[142] = _apc_fixed(s.output_voltage, 6)
    regs[144] = _apc_fixed(s.frequency, 7)
    _apc_u32(regs, 145, int(s.energy))
    regs[150] = 1 if s.mains and not s.input_bad else 0      # InputStatus: acceptable
    regs[151] = _apc_fixed(s.input_voltage, 6) if s.mains else 0
    regs[154] = _apc_fixed(95.0, 7) if s.mains else _apc_fixed(88.0, 7)   # efficiency %
    for addr in (155, 156, 159, 160, 163, 164, 167, 168):   # countdowns: -1 = not active
        regs[addr] = 0xFFFF
    for addr in (157, 161, 165, 169):
        _apc_u32(regs, addr, -1)
    # inventory
    for addr, (text, count) in APC_INVENTORY.items():
        _apc_text(regs, addr, text, count)
    regs[588], regs[589] = APC_VA, APC_WATTS
    regs[590] = 0b11                                         # main + one switched outlet group
    regs[591] = _apc_days(APC_MANUFACTURED)
    regs[595] = _apc_days(APC_BATTERY_INSTALLED)
    # settings
    regs[1026], regs[1027] = 253, 170                        # transfer high / low (V)
    regs[1029], regs[1030] = 90, 0                           # main group shutdown / start delay (s)
    _apc_u32(regs, 1031, 8)                                  # reboot delay
    return regs


def _in(ranges: Sequence[tuple[int, int]], address: int, count: int = 1) -> bool:
    return any(start <= address and address + count <= start + n for start, n in ranges)


class SimUnit:
    """One simulated device (unit id) and its register image."""

    def __init__(self, unit: int, model: str, contacts: Mapping[str, Contact] | None = None) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r} (known: {', '.join(MODELS)})")
        self.unit = unit
        self.model = model
        self.contacts = dict(contacts or DEFAULT_CONTACTS)
        self.state = UnitState()
        self.image: dict[str, dict[int, Any]] = {}
        self.written: dict[int, int] = {}
        """APC: registers written by a client (settings, commands), kept across state changes."""
        self.reads = 0
        self.encode()

    def encode(self) -> None:
        if self.model == "apc_smt":
            self.image["holding"] = {**apc_registers(self.state), **self.written}
        elif self.model == "huawei_ups2000":
            self.image["holding"] = huawei_registers(self.state)
        elif self.model == "pzem004t":
            self.image["input"] = pzem_registers(self.state)
        elif self.model == "sdm120":
            self.image["input"] = sdm_registers(self.state)
        else:
            self.image = contact_image(self.state, self.contacts)

    def valid(self, table: str, address: int, count: int) -> bool:
        if self.model == "apc_smt":
            # a block read that starts on a documented register; undocumented ones read 0
            return table == "holding" and _in(APC_BLOCKS, address) and address + count <= 0x10000
        if self.model == "generic_dry_contact":
            return all(address + i in self.image.get(table, {}) for i in range(count))
        ranges = {"huawei_ups2000": HUAWEI_BLOCKS, "pzem004t": PZEM_BLOCKS, "sdm120": SDM_BLOCKS}[self.model]
        return table == ("holding" if self.model == "huawei_ups2000" else "input") and _in(ranges, address, count)


# ====================================================================== the other models
# Each written from its documentation (reference power_lighting.md §1.2, §1.9), not from maps.py.

# Huawei UPS2000: datasheet register + 10000, FC03; fixed point ÷10; UINT32 high word first
HUAWEI_BLOCKS = ((11000, 50), (12000, 34), (19009, 1))


def huawei_registers(s: UnitState) -> dict[int, int]:
    regs: dict[int, int] = {}
    regs[11000] = round(s.input_voltage * 10) if s.mains else 0
    regs[11003] = round(s.frequency * 10) if s.mains else 0
    regs[11008] = round(s.output_voltage * 10)
    regs[11014] = round(s.frequency * 10)                   # output frequency
    regs[11021] = round(s.load * 10)
    regs[11024] = 2 if s.mains else 3                       # power status: 2 on line, 3 on battery
    regs[11043] = (1 << 2 if s.self_test or s.calibrating else 0) | (1 << 6 if s.low_battery else 0)
    regs[12000] = round(s.battery_voltage * 10)
    regs[12002] = 5 if not s.mains else (3 if s.battery_charge < 100 else 2)   # discharging / float / resting
    regs[12003] = round(s.battery_charge)
    runtime = int(s.battery_runtime) & 0xFFFFFFFF
    regs[12004], regs[12005] = runtime >> 16, runtime & 0xFFFF
    regs[19009] = 100                                       # nominal 1 kVA (×0.01)
    return regs


# Peacefair PZEM-004T v3: FC04 0-9; 32-bit values low word first
PZEM_BLOCKS = ((0, 10),)


def pzem_registers(s: UnitState) -> dict[int, int]:
    live = s.mains

    def u32(value: int) -> tuple[int, int]:
        return value & 0xFFFF, (value >> 16) & 0xFFFF          # low word first

    regs = {0: round(s.input_voltage * 10) if live else 0, 7: round(s.frequency * 10) if live else 0,
            8: round(s.power_factor * 100) if live else 0, 9: 0}
    regs[1], regs[2] = u32(round(s.current * 1000) if live else 0)
    regs[3], regs[4] = u32(round(s.power * 10) if live else 0)
    regs[5], regs[6] = u32(round(s.energy))
    return regs


# Eastron SDM120/SDM230: FC04 IEEE-754 float32, high word first; energy in kWh
SDM_BLOCKS = ((0x00, 0x4C), (0x156, 2))


def sdm_registers(s: UnitState) -> dict[int, int]:
    live = s.mains
    va = s.current * s.input_voltage if live else 0.0
    var = max(0.0, va * va - s.power * s.power) ** 0.5 if live else 0.0
    values = {0x00: s.input_voltage if live else 0.0, 0x06: s.current if live else 0.0,
              0x0C: s.power if live else 0.0, 0x12: va, 0x18: var,
              0x1E: s.power_factor if live else 0.0, 0x34: s.power if live else 0.0,
              0x46: s.frequency if live else 0.0, 0x48: s.energy / 1000, 0x4A: 0.0, 0x156: s.energy / 1000}
    regs: dict[int, int] = {}
    for addr, v in values.items():
        word = struct.unpack(">I", struct.pack(">f", v))[0]
        regs[addr], regs[addr + 1] = word >> 16, word & 0xFFFF
    return regs


def contact_image(s: UnitState, contacts: Mapping[str, Contact]) -> dict[str, dict[int, Any]]:
    """Dry contacts as wired (NUT generic_modbus): each named state closes its contact
    (opens it when ``invert``)."""
    truth = {"OL": s.mains, "OB": not s.mains, "LB": s.low_battery, "RB": s.replace_battery,
             "CHRG": s.mains and s.battery_charge < 100, "DISCHRG": not s.mains, "HB": False,
             "BYPASS": False, "FSD": False}
    image: dict[str, dict[int, Any]] = {}
    for token, c in contacts.items():
        closed = truth[token] != c.invert
        t = image.setdefault(c.table, {})
        if c.table in ("coil", "discrete"):
            t[c.address] = closed
        else:
            t[c.address] = (t.get(c.address, 0) & ~(1 << c.bit)) | (int(closed) << c.bit)
    return image


class _Context(ModbusServerContext):
    """Serves the simulator's units to pymodbus (bypasses the deprecated datastore classes)."""

    def __init__(self, sim: UpsSimulator) -> None:  # no super().__init__: we are the datastore
        self.sim = sim
        self.old_simulator = True
        self.simdevices = []

    def _unit(self, device_id: int) -> SimUnit:
        unit = self.sim.units.get(device_id)
        if unit is None or unit.state.dead:
            raise NoSuchIdException(f"unit {device_id} does not answer")  # no reply at all
        return unit

    async def async_getValues(self, device_id: int, func_code: int, address: int,
                              count: int = 1) -> list[int] | list[bool] | ExcCodes:
        unit = self._unit(device_id)
        table = FC_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if not unit.valid(table, address, count):
            return ExcCodes.ILLEGAL_ADDRESS
        unit.reads += 1
        t = unit.image.get(table, {})
        if table in ("coil", "discrete"):
            return [bool(t.get(address + i, False)) for i in range(count)]
        return [int(t.get(address + i, 0)) & 0xFFFF for i in range(count)]

    async def async_setValues(self, device_id: int, func_code: int, address: int,
                              values: Sequence[int] | Sequence[bool]) -> ExcCodes | None:
        unit = self._unit(device_id)
        table = FC_TABLE.get(func_code)
        if table not in ("holding", "coil") or not unit.valid(table, address, len(values)):
            return ExcCodes.ILLEGAL_ADDRESS
        if unit.model == "apc_smt":
            if not _in(APC_WRITABLE, address, len(values)):
                return ExcCodes.ILLEGAL_ADDRESS
            unit.written.update({address + i: int(v) & 0xFFFF for i, v in enumerate(values)})
            unit.encode()
            return None
        t = unit.image.setdefault(table, {})
        for i, v in enumerate(values):
            t[address + i] = v
        return None

    def device_ids(self) -> list[int]:
        return list(self.sim.units)


class UpsSimulator:
    """Simulated UPS units and power meters behind one Modbus TCP (or RTU-over-TCP) listener."""

    def __init__(self, models: Mapping[int, str] | None = None, *, port: int = 0, host: str = "127.0.0.1",
                 framer: str = "socket", contacts: Mapping[str, Contact] | None = None) -> None:
        self.units: dict[int, SimUnit] = {u: SimUnit(u, m, contacts) for u, m in (models or {1: "apc_smt"}).items()}
        self.host = host
        self.port = port
        self.framer = FramerType.RTU if framer == "rtu" else FramerType.SOCKET
        self.server: ModbusTcpServer | None = None

    @property
    def running(self) -> bool:
        return self.server is not None

    async def start(self) -> UpsSimulator:
        if self.server is not None:
            return self
        server = ModbusTcpServer(_Context(self), framer=self.framer, address=(self.host, self.port),
                                 ignore_missing_devices=True)
        await server.serve_forever(background=True)
        self.server = server
        sockets = getattr(server.transport, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Stop listening and drop every connection (the device is gone)."""
        if self.server is None:
            return
        server, self.server = self.server, None
        await server.shutdown()
        await asyncio.sleep(0)

    def set_state(self, unit: int, **changes: Any) -> None:
        """Change what unit ``unit`` reports, e.g. ``mains=False``, ``low_battery=True``,
        ``replace_battery=True``, ``self_test=True``, ``battery_charge=15``, ``dead=True``."""
        u = self.units[unit]
        known = {f.name for f in fields(UnitState)}
        bad = set(changes) - known
        if bad:
            raise ValueError(f"unknown state key(s) {', '.join(sorted(bad))} (known: {', '.join(sorted(known))})")
        for k, v in changes.items():
            setattr(u.state, k, v)
        u.encode()

    def set_register(self, unit: int, table: str, address: int, raw: int | bool) -> None:
        """Poke one raw value (to serve garbage or an exotic status)."""
        self.units[unit].image.setdefault(table, {})[address] = raw

    def state(self, unit: int) -> dict[str, Any]:
        return asdict(self.units[unit].state)

    async def __aenter__(self) -> UpsSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# ====================================================================== command line
HELP = """commands ([UNIT] first to address one unit; default: every unit):
  mains on|off      mains present / lost (UPS on battery, meter reads 0 V)
  lowbatt on|off    the UPS's low-battery flag
  rb on|off         replace-battery flag
  test on|off       self-test running (APC: on battery + TEST; Huawei: CAL)
  cal on|off        runtime calibration
  fault on|off      APC: general fault (inverter fault)
  inputbad on|off   APC: input not acceptable
  dead on|off       stop answering / answer again
  charge N | runtime N | load N | voltage N
  show | help | quit"""

_BOOL_CMDS = {"mains": "mains", "lowbatt": "low_battery", "rb": "replace_battery", "test": "self_test",
              "cal": "calibrating", "dead": "dead", "fault": "fault", "inputbad": "input_bad"}
_NUM_CMDS = {"charge": "battery_charge", "runtime": "battery_runtime", "load": "load", "voltage": "input_voltage"}


def apply_command(sim: UpsSimulator, line: str) -> str:
    """Run one interactive command; returns the text to print."""
    words = line.split()
    if not words:
        return ""
    units = list(sim.units)
    if words[0].isdigit():
        u = int(words.pop(0))
        if u not in sim.units:
            return f"no unit {u} (units: {units})"
        units = [u]
    if not words:
        return "missing command (type help)"
    cmd, arg = words[0].lower(), (words[1].lower() if len(words) > 1 else "")
    if cmd == "help":
        return HELP
    if cmd == "show":
        return "\n".join(f"unit {u} ({sim.units[u].model}): {sim.state(u)}" for u in units)
    if cmd in _BOOL_CMDS and arg in ("on", "off"):
        for u in units:
            sim.set_state(u, **{_BOOL_CMDS[cmd]: arg == "on"})
        return f"{cmd} {arg} on unit(s) {units}"
    if cmd in _NUM_CMDS:
        try:
            value = float(arg)
        except ValueError:
            return f"{cmd} needs a number"
        for u in units:
            sim.set_state(u, **{_NUM_CMDS[cmd]: int(value) if cmd == "runtime" else value})
        return f"{cmd} = {value:g} on unit(s) {units}"
    return f"unknown command {line.strip()!r} (type help)"


def _parse_units(args: argparse.Namespace) -> dict[int, str]:
    units: dict[int, str] = {}
    for spec in args.unit or []:
        num, _, model = spec.partition("=")
        units[int(num)] = model
    if not units:
        units[1] = args.model
    for m in units.values():
        if m not in MODELS:
            raise SystemExit(f"unknown model {m!r}; known: {', '.join(MODELS)}")
    return units


async def _run(args: argparse.Namespace) -> int:
    sim = UpsSimulator(_parse_units(args), port=args.port, host=args.host, framer=args.framer)
    await sim.start()
    print(f"ups_modbus simulator on {args.host}:{sim.port} ({args.framer}); units: "
          + ", ".join(f"{u}={s.model}" for u, s in sim.units.items()), flush=True)
    print("type 'help' for commands; SIGUSR1 toggles mains", flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def toggle_mains() -> None:
        for u, unit in sim.units.items():
            sim.set_state(u, mains=not unit.state.mains)
        print("mains " + ("on" if next(iter(sim.units.values())).state.mains else "off"), flush=True)

    for sig, handler in ((signal.SIGINT, done.set), (signal.SIGTERM, done.set), (signal.SIGUSR1, toggle_mains)):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)

    def on_stdin() -> None:
        line = sys.stdin.readline()
        if not line:  # EOF: keep serving until a signal
            loop.remove_reader(sys.stdin)
            return
        if line.strip().lower() in ("quit", "exit"):
            done.set()
            return
        out = apply_command(sim, line)
        if out:
            print(out, flush=True)

    with contextlib.suppress(OSError, ValueError, PermissionError):
        loop.add_reader(sys.stdin, on_stdin)
    try:
        await done.wait()
    finally:
        with contextlib.suppress(OSError, ValueError):
            loop.remove_reader(sys.stdin)
        await sim.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anninh simulate ups_modbus",
                                description="Simulated UPS units / power meters over Modbus TCP.",
                                epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="apc_smt", choices=MODELS, help="model of unit 1 (default apc_smt)")
    p.add_argument("--unit", action="append", metavar="ID=MODEL",
                   help="serve unit ID with MODEL (repeatable; overrides --model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5020, help="TCP port (default 5020; 0 = any free port)")
    p.add_argument("--framer", choices=("socket", "rtu"), default="socket",
                   help="socket = Modbus TCP; rtu = RTU frames over TCP (transparent gateway)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
