"""Register maps as data: which Modbus table/address/type/scale holds each value, and which
status tokens (NUT vocabulary) follow from them.

The driver *decodes* with these maps. The simulator does not use them: it encodes from its own
tables written from the vendors' documentation, so a wrong address or scale here is caught by the
tests; the tests also decode hand-written register images taken from the reference's documented
examples.

Status follows NUT: each :class:`StatusRule` adds a token and/or an alarm text (NUT's
``ups.alarm``); a driver publishes ``ALARM`` first in the status while any alarm is present, as
NUT's ``status_commit`` does.

Conventions (docs/reference/power_lighting.md §1.0):

* ``address`` is the on-the-wire, 0-based protocol address (register 40001 = address 0).
* ``value = raw * scale / divisor`` (APC's "binary point" ÷2^n is ``divisor=2**n``).
* 32-bit values span two registers; ``word_order="big"`` = most significant register first
  (APC, Huawei, SDM float32), ``"little"`` = least significant first (PZEM-004T).
* ``str`` fields span ``length`` registers of two ASCII characters each, most significant byte
  first, space padded (APC inventory strings).
* ``invalid`` is the raw "not available" sentinel (e.g. APC input voltage ``0xFFFF``); such a
  value decodes to ``None`` ("the device does not report it"), never to a made-up number.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Table = Literal["holding", "input", "coil", "discrete"]
RegType = Literal["u16", "s16", "u32", "s32", "f32", "bit", "str"]
WordOrder = Literal["big", "little"]

MAX_REGS_PER_READ = 125  # Modbus limit for FC03/FC04
MAX_BITS_PER_READ = 2000  # Modbus limit for FC01/FC02
MERGE_GAP = 16  # read across holes of up to this many registers rather than issue another request


class DecodeError(ValueError):
    """The registers do not make sense for this map (e.g. an undefined status code)."""


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One value in the device: where it lives and how to turn raw registers into a number/bool."""

    name: str
    table: Table
    address: int
    type: RegType = "u16"
    scale: float = 1.0
    divisor: float = 1.0
    word_order: WordOrder = "big"
    bit: int | None = None
    """For ``bit`` fields in a register table: which bit (0 = LSB) of the (16- or 32-bit) value."""
    invalid: int | None = None
    digits: int = 3
    """Decimal places kept after scaling (avoids 230.50000000000003)."""
    length: int = 1
    """Registers of a ``str`` field."""

    @property
    def width(self) -> int:
        """Registers (or bits) this field occupies."""
        if self.table in ("coil", "discrete"):
            return 1
        if self.type == "str":
            return self.length
        if self.type in ("u32", "s32", "f32"):
            return 2
        return 1

    # ------------------------------------------------------------------ decode
    def decode(self, raw: Sequence[int] | Sequence[bool]) -> Any:
        """Decode this field from the ``width`` raw registers/bits starting at its address."""
        width = self.width
        if len(raw) < width:
            raise DecodeError(f"{self.name}: need {width} value(s), got {len(raw)}")
        if self.table in ("coil", "discrete"):
            return bool(raw[0])
        if self.type == "str":
            return decode_string([int(r) & 0xFFFF for r in raw[:width]])
        if width == 2:
            hi, lo = (int(raw[0]) & 0xFFFF, int(raw[1]) & 0xFFFF)
            if self.word_order != "big":
                hi, lo = lo, hi
            word = (hi << 16) | lo
        else:
            word = int(raw[0]) & 0xFFFF
        if self.bit is not None or self.type == "bit":
            return bool((word >> (self.bit or 0)) & 1)
        if self.invalid is not None and word == self.invalid:
            return None
        if self.type == "u16" or self.type == "u32":
            value: float = word
        elif self.type == "s16":
            value = word - 0x10000 if word & 0x8000 else word
        elif self.type == "s32":
            value = word - 0x100000000 if word & 0x80000000 else word
        else:  # f32
            value = struct.unpack(">f", struct.pack(">I", word))[0]
            if not math.isfinite(value):
                return None
        value = value * self.scale / self.divisor
        if self.type == "f32" or self.scale != 1 or self.divisor != 1:
            return round(value, self.digits)
        return int(value)


def decode_string(regs: Sequence[int]) -> str | None:
    """Two ASCII characters per register, most significant byte first; leading NUL registers,
    trailing NULs and spaces dropped, unprintable characters shown as spaces; ``None`` when
    nothing is left (the device reports no text)."""
    data = bytearray()
    for r in regs:
        data += bytes(((r >> 8) & 0xFF, r & 0xFF))
    text = data.lstrip(b"\0").rstrip(b"\0 ")
    out = "".join(chr(c) if 0x20 <= c <= 0x7E else " " for c in text).rstrip()
    return out or None


@dataclass(frozen=True, slots=True)
class StatusRule:
    """How a decoded field contributes NUT status tokens.

    * ``token`` set: the token is present while the field is truthy (falsy with ``invert``).
    * ``values`` set: the field is an enum; its value maps to one or more space-separated tokens
      (``""`` = none). With ``strict``, a value not in the table is garbage → :class:`DecodeError`.
    * ``alarm`` set: while the rule's condition holds, this text is an alarm (NUT ``ups.alarm``;
      the status then starts with ``ALARM``). A rule may carry an alarm and no token.
    """

    field: str
    token: str | None = None
    invert: bool = False
    values: Mapping[int, str] | None = None
    strict: bool = False
    alarm: str | None = None


@dataclass(frozen=True, slots=True)
class Block:
    """One batched read: ``count`` registers/bits of ``table`` from ``address``."""

    table: Table
    address: int
    count: int


@dataclass(frozen=True)
class RegisterMap:
    """A device's register map: fields, status rules, and what kind of device it is."""

    name: str
    kind: Literal["ups", "meter"]
    fields: tuple[FieldDef, ...]
    status: tuple[StatusRule, ...] = ()
    description: str = ""
    inventory: tuple[FieldDef, ...] = ()
    """Identity read once per connection: ``model``, ``serial``, ``firmware`` (as NUT's
    ``ups.model`` / ``ups.serial`` / ``ups.firmware``)."""
    blocks: tuple[Block, ...] = field(default=(), compare=False)
    inventory_blocks: tuple[Block, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"map {self.name}: duplicate field(s) {', '.join(sorted(dupes))}")
        for rule in self.status:
            if rule.field not in names:
                raise ValueError(f"map {self.name}: status rule uses unknown field {rule.field!r}")
            if rule.token is not None and rule.values is not None:
                raise ValueError(f"map {self.name}: status rule on {rule.field!r} has both token and values")
            if rule.token is None and rule.values is None and rule.alarm is None:
                raise ValueError(f"map {self.name}: status rule on {rule.field!r} needs token, values or alarm")
        bad = {f.name for f in self.inventory} - {"model", "serial", "firmware"}
        if bad:
            raise ValueError(f"map {self.name}: unknown inventory field(s) {', '.join(sorted(bad))}")
        if not self.blocks:
            object.__setattr__(self, "blocks", tuple(plan_blocks(self.fields)))
        if self.inventory and not self.inventory_blocks:
            object.__setattr__(self, "inventory_blocks", tuple(plan_blocks(self.inventory)))

    def field(self, name: str) -> FieldDef:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    # ------------------------------------------------------------------ decode
    @functools.cached_property
    def _plan(self) -> tuple[tuple[FieldDef, Block, int, int], ...]:
        return _decode_plan(self.fields, self.blocks)

    @functools.cached_property
    def _inventory_plan(self) -> tuple[tuple[FieldDef, Block, int, int], ...]:
        return _decode_plan(self.inventory, self.inventory_blocks)

    def decode(self, data: Mapping[Block, Sequence[int] | Sequence[bool]]) -> dict[str, Any]:
        """Decode every field from the blocks read (``{block: values}``)."""
        return _decode(self._plan, data)

    def decode_inventory(self, data: Mapping[Block, Sequence[int] | Sequence[bool]]) -> dict[str, Any]:
        """Decode the inventory fields from the :attr:`inventory_blocks` read."""
        return _decode(self._inventory_plan, data)

    def decode_image(self, image: Mapping[str, Mapping[int, int]]) -> dict[str, Any]:
        """Decode from a register image ``{table: {address: raw}}`` (missing addresses read 0,
        as APC block reads do). Used by tests with hand-written images."""
        data: dict[Block, list[Any]] = {}
        for b in self.blocks:
            t = image.get(b.table, {})
            data[b] = [t.get(b.address + i, 0) for i in range(b.count)]
        return self.decode(data)

    def tokens(self, values: Mapping[str, Any]) -> list[str]:
        """NUT status tokens from decoded values, in rule order, without duplicates."""
        out: list[str] = []
        for rule in self.status:
            v = values.get(rule.field)
            if v is None:
                continue
            if rule.values is not None:
                text = rule.values.get(int(v))
                if text is None:
                    if rule.strict:
                        raise DecodeError(f"{rule.field}: undefined value {v!r}")
                    continue
                new = text.split()
            else:
                new = rule.token.split() if rule.token and bool(v) != rule.invert else []
            out.extend(t for t in new if t not in out)
        return out

    def alarms(self, values: Mapping[str, Any]) -> list[str]:
        """Alarm texts (NUT ``ups.alarm`` parts) of the rules whose condition holds, in rule order."""
        out: list[str] = []
        for rule in self.status:
            v = values.get(rule.field)
            if rule.alarm is None or v is None:
                continue
            if rule.values is not None:
                hit = int(v) in rule.values
            else:
                hit = bool(v) != rule.invert
            if hit and rule.alarm not in out:
                out.append(rule.alarm)
        return out

    def decode_inventory_image(self, image: Mapping[str, Mapping[int, int]]) -> dict[str, Any]:
        """:meth:`decode_image` for the inventory fields."""
        data: dict[Block, list[Any]] = {}
        for b in self.inventory_blocks:
            t = image.get(b.table, {})
            data[b] = [t.get(b.address + i, 0) for i in range(b.count)]
        return self.decode_inventory(data)


def _decode_plan(fields: Iterable[FieldDef], blocks: Sequence[Block]) -> tuple[tuple[FieldDef, Block, int, int], ...]:
    """Per field: its block, its offset there and its width, worked out once per map (a poll
    decodes ~40 fields; finding each one's block every time was most of the decoding cost)."""
    out = []
    for f in fields:
        block = _block_of(blocks, f)
        out.append((f, block, f.address - block.address, f.width))
    return tuple(out)


def _decode(plan: Iterable[tuple[FieldDef, Block, int, int]],
            data: Mapping[Block, Sequence[int] | Sequence[bool]]) -> dict[str, Any]:
    return {f.name: f.decode(data[block][off: off + width]) for f, block, off, width in plan}


def _block_of(blocks: Iterable[Block], f: FieldDef) -> Block:
    for b in blocks:
        if b.table == f.table and b.address <= f.address and f.address + f.width <= b.address + b.count:
            return b
    raise KeyError(f"no block holds field {f.name}")


def plan_blocks(fields: Iterable[FieldDef], gap: int = MERGE_GAP) -> list[Block]:
    """Group fields into as few contiguous reads as possible (per table, within Modbus limits)."""
    by_table: dict[str, list[tuple[int, int]]] = {}
    for f in fields:
        by_table.setdefault(f.table, []).append((f.address, f.address + f.width))
    blocks: list[Block] = []
    for table, spans in by_table.items():
        limit = MAX_BITS_PER_READ if table in ("coil", "discrete") else MAX_REGS_PER_READ
        spans.sort()
        start, end = spans[0]
        for a, e in spans[1:]:
            if a <= end + gap and max(end, e) - start <= limit:
                end = max(end, e)
            else:
                blocks.append(Block(table, start, end - start))  # type: ignore[arg-type]
                start, end = a, e
        blocks.append(Block(table, start, end - start))  # type: ignore[arg-type]
    return blocks


# ====================================================================== built-in maps
def _hr(name: str, address: int, type: RegType = "u16", **kw: Any) -> FieldDef:
    return FieldDef(name, "holding", address, type, **kw)


def _ir(name: str, address: int, type: RegType = "u16", **kw: Any) -> FieldDef:
    return FieldDef(name, "input", address, type, **kw)


# NUT apc_modbus alarm texts (``ups.alarm``), in the order NUT sets them
_APC_POWER_SYSTEM_ALARMS = (
    (0, "Output overload"), (1, "Output short circuit"), (2, "Output overvoltage"), (4, "Overtemperature"),
    (5, "Backfeed relay fault"), (6, "AVR relay fault"), (7, "PFC input relay fault"), (8, "Output relay fault"),
    (9, "Bypass relay fault"), (11, "PFC fault"), (12, "DC bus overvoltage"), (13, "Inverter fault"),
)
_APC_BATTERY_SYSTEM_ALARMS = (
    (0, "Disconnected"), (1, "Over voltage"), (2, "Needs replacement"), (3, "Over temperature"),
    (4, "Charger fault"), (5, "Temperature sensor fault"), (6, "Bus soft start fault"),
)

APC_SMT = RegisterMap(
    name="apc_smt",
    kind="ups",
    description="APC Smart-UPS SMT/SMX/SRT (Application Note 176, as read by NUT apc_modbus): FC03 "
                "status block 0-26 and dynamic block 128-171; inventory 516-571 once per connection",
    fields=(
        # status block (UPSStatus_BF is a UINT32, MSW first, at 0-1)
        _hr("flag_online", 0, "u32", bit=1),
        _hr("flag_on_battery", 0, "u32", bit=2),
        _hr("flag_bypass", 0, "u32", bit=3),
        _hr("flag_output_off", 0, "u32", bit=4),
        _hr("flag_fault", 0, "u32", bit=5),
        _hr("flag_input_bad", 0, "u32", bit=6),
        _hr("flag_test", 0, "u32", bit=7),
        _hr("flag_overload", 0, "u32", bit=21),
        _hr("_transfer_cause", 2),
        _hr("flag_low_battery", 18, bit=1),        # SimpleSignalingStatus_BF ShutdownImminent
        *(_hr(f"flag_power_error_{b}", 20, "u32", bit=b) for b, _ in _APC_POWER_SYSTEM_ALARMS),  # PowerSystemError_BF
        *(_hr(f"flag_battery_error_{b}", 22, bit=b) for b, _ in _APC_BATTERY_SYSTEM_ALARMS),  # BatterySystemError_BF
        # 23 ReplaceBatteryTestStatus_BF is a test *result* (NUT ups.test.result), never a token
        _hr("flag_calibration", 24, bit=1),        # RunTimeCalibrationStatus_BF InProgress
        # dynamic block (two decimals, as NUT prints them)
        _hr("battery_runtime", 128, "u32"),                       # seconds
        _hr("battery_charge", 130, divisor=512, digits=2),        # % (2^9)
        _hr("battery_voltage", 131, "s16", divisor=32, digits=2),  # V (2^5)
        _hr("load", 136, divisor=256, digits=2),                  # % real power (2^8)
        _hr("output_voltage", 142, divisor=64, digits=2),         # V (2^6)
        _hr("flag_boost", 150, bit=5),
        _hr("flag_trim", 150, bit=6),
        _hr("input_voltage", 151, divisor=64, digits=2, invalid=0xFFFF),  # V (2^6), 0xFFFF = NA
    ),
    # in the order NUT apc_modbus sets them, so ups.status reads the same
    status=(
        StatusRule("flag_online", "OL"),
        StatusRule("flag_on_battery", "OB"),
        StatusRule("flag_bypass", "BYPASS"),
        StatusRule("flag_output_off", "OFF"),
        StatusRule("flag_fault", alarm="General fault"),
        StatusRule("flag_input_bad", alarm="Input not acceptable"),
        StatusRule("flag_test", "TEST"),           # UPSStatus_BF Test only: register 23 may stay latched
        StatusRule("flag_overload", "OVER"),
        *(StatusRule(f"flag_power_error_{b}", alarm=f"Power system - {text}") for b, text in _APC_POWER_SYSTEM_ALARMS),
        StatusRule("flag_low_battery", "LB"),
        *(StatusRule(f"flag_battery_error_{b}", "RB" if b == 2 else None, alarm=f"Battery system - {text}")
          for b, text in _APC_BATTERY_SYSTEM_ALARMS),
        StatusRule("flag_calibration", "CAL"),
        StatusRule("flag_boost", "BOOST"),
        StatusRule("flag_trim", "TRIM"),
    ),
    inventory=(
        _hr("firmware", 516, "str", length=8),
        _hr("model", 532, "str", length=16),
        _hr("serial", 564, "str", length=8),
    ),
)

HUAWEI_OFFSET = 10000  # every UPS2000 register is read at datasheet number + 10000 × ups_number

HUAWEI_UPS2000 = RegisterMap(
    name="huawei_ups2000",
    kind="ups",
    description="Huawei UPS2000-A/-G (NUT huawei-ups2000): FC03 at datasheet register + 10000",
    fields=(
        _hr("input_voltage", 11000, divisor=10, digits=1, invalid=0x7FFF),
        _hr("input_frequency", 11003, divisor=10, digits=1, invalid=0x7FFF),
        _hr("output_voltage", 11008, divisor=10, digits=1, invalid=0x7FFF),
        _hr("load", 11021, divisor=10, digits=1, invalid=0x7FFF),
        _hr("_power_status", 11024),                # 0 OFF, 1 BYPASS, 2 OL, 3 OB, 5 OL (ECO)
        _hr("flag_calibration", 11043, bit=2),     # self-test → CAL (NUT)
        _hr("flag_low_battery", 11043, bit=6),
        _hr("battery_voltage", 12000, divisor=10, digits=1, invalid=0x7FFF),
        _hr("_charger_status", 12002),              # 2 resting, 3 float, 4 equalising, 5 discharging
        _hr("battery_charge", 12003, invalid=0xFFFF),
        _hr("battery_runtime", 12004, "u32", invalid=0xFFFFFFFF),
    ),
    status=(
        StatusRule("_power_status", values={0: "OFF", 1: "BYPASS", 2: "OL", 3: "OB", 5: "OL"}, strict=True),
        StatusRule("flag_low_battery", "LB"),
        StatusRule("_charger_status", values={2: "", 3: "CHRG", 4: "CHRG", 5: "DISCHRG"}),
        StatusRule("flag_calibration", "CAL"),
    ),
)

PZEM004T = RegisterMap(
    name="pzem004t",
    kind="meter",
    description="Peacefair PZEM-004T v3 AC meter: FC04 input registers 0-9, 32-bit values low word first",
    fields=(
        _ir("input_voltage", 0, divisor=10, digits=1),
        _ir("current", 1, "u32", divisor=1000, word_order="little"),
        _ir("power", 3, "u32", divisor=10, digits=1, word_order="little"),
        _ir("energy", 5, "u32", word_order="little"),  # Wh
        _ir("frequency", 7, divisor=10, digits=1),
        _ir("power_factor", 8, divisor=100, digits=2),
        _ir("_alarm", 9),
    ),
)

SDM120 = RegisterMap(
    name="sdm120",
    kind="meter",
    description="Eastron SDM120/SDM230 single-phase meter: FC04 IEEE-754 float32, big-endian",
    fields=(
        _ir("input_voltage", 0x0000, "f32", digits=1),
        _ir("current", 0x0006, "f32"),
        _ir("power", 0x000C, "f32", digits=1),
        _ir("power_factor", 0x001E, "f32", digits=2),
        _ir("frequency", 0x0046, "f32", digits=2),
        _ir("energy", 0x0048, "f32", scale=1000, digits=0),  # import kWh → Wh
    ),
)

BUILTIN_MAPS: dict[str, RegisterMap] = {m.name: m for m in (APC_SMT, HUAWEI_UPS2000, PZEM004T, SDM120)}

DRY_CONTACT_TOKENS = ("OL", "OB", "LB", "HB", "RB", "CHRG", "DISCHRG", "BYPASS", "FSD")


@dataclass(frozen=True, slots=True)
class Contact:
    """One dry contact (NUT generic_modbus ``<X>_addr``/``<X>_regtype``/``<X>_noro``)."""

    address: int
    table: Table = "discrete"
    invert: bool = False
    bit: int = 0


def dry_contact_map(contacts: Mapping[str, Contact]) -> RegisterMap:
    """A map with one contact per NUT state, as NUT's generic_modbus.

    If ``OL`` is wired, an open OL contact means ``OB`` (and vice versa when only ``OB`` is).
    """
    fields: list[FieldDef] = []
    rules: list[StatusRule] = []
    for token, c in contacts.items():
        if token not in DRY_CONTACT_TOKENS:
            raise ValueError(f"unknown NUT state {token!r} (use {', '.join(DRY_CONTACT_TOKENS)})")
        name = f"contact_{token.lower()}"
        if c.table in ("coil", "discrete"):
            fields.append(FieldDef(name, c.table, c.address))
        else:
            fields.append(FieldDef(name, c.table, c.address, "u16", bit=c.bit))
        rules.append(StatusRule(name, token, invert=c.invert))
        discharge = "" if ("CHRG" in contacts or "DISCHRG" in contacts) else " DISCHRG"
        if token == "OL" and "OB" not in contacts:
            rules.append(StatusRule(name, "OB" + discharge, invert=not c.invert))
        if token == "OB" and "OL" not in contacts:
            rules.append(StatusRule(name, "OL", invert=not c.invert))
            if discharge:
                rules.append(StatusRule(name, "DISCHRG", invert=c.invert))
    if "OL" not in contacts and "OB" not in contacts:
        raise ValueError("a dry-contact UPS needs an OL or OB contact")
    return RegisterMap(name="generic_dry_contact", kind="ups", fields=tuple(fields), status=tuple(rules),
                       description="dry contacts read through a Modbus remote I/O (NUT generic_modbus)")
