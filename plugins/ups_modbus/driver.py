"""The ``ups_modbus`` platform: UPS units and AC power meters over Modbus TCP / RTU.

A device entry names a register map with ``model:`` (see :mod:`plugins.ups_modbus.maps` and the
README). Each poll reads the map's contiguous blocks (one request per block, not per register),
decodes them into the UPS's own status tokens, alarms and values; the ``ups`` device class
(:mod:`hub.api.ups`) derives the published status and the events from them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from hub.api import DeviceConfig, DeviceContext, DeviceError, DeviceInfo, Driver, Entity, StrictModel
from hub.api.ups import UpsDriver as UpsBase
from hub.api.ups import UpsReading, UpsThresholds
from hub.modbus import ModbusDeviceConfig

from .client import ModbusLink
from .maps import (
    BUILTIN_MAPS,
    Contact,
    DecodeError,
    FieldDef,
    RegisterMap,
    StatusRule,
    dry_contact_map,
)

Model = Literal["apc_smt", "huawei_ups2000", "generic_dry_contact", "pzem004t", "sdm120", "inline"]

MANUFACTURERS = {"apc_smt": "American Power Conversion", "huawei_ups2000": "Huawei", "pzem004t": "Peacefair",
                 "sdm120": "Eastron"}


class ContactConfig(StrictModel):
    """A dry contact: ``address`` in ``table`` (default a discrete input, FC02); ``invert`` when
    the contact is *open* in the named state (NUT's ``noro``)."""

    address: int = Field(ge=0, le=65535)
    table: Literal["holding", "input", "coil", "discrete"] = "discrete"
    invert: bool = False
    bit: int = Field(0, ge=0, le=15, description="bit of the register, for holding/input tables")


class InlineField(StrictModel):
    """One value of an inline map; ``value = raw * scale / divisor``."""

    field: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    address: int = Field(ge=0, le=65535)
    type: Literal["u16", "s16", "u32", "s32", "f32", "bit"] = "u16"
    scale: float = 1.0
    divisor: float = Field(1.0, gt=0)
    word_order: Literal["big", "little"] = "big"
    bit: int | None = Field(None, ge=0, le=31)
    invalid: int | None = Field(None, ge=0, le=0xFFFFFFFF, description="raw value meaning 'not available'")

    @model_validator(mode="after")
    def _bit_type(self) -> InlineField:
        if self.type == "bit" and self.bit is None and self.table in ("holding", "input"):
            raise ValueError("type bit needs 'bit' (which bit of the register)")
        if self.bit is not None and self.table in ("coil", "discrete"):
            raise ValueError("'bit' only applies to holding/input registers")
        return self


class InlineStatus(StrictModel):
    """A status rule: NUT ``token`` while ``field`` is true (false with ``invert``), or
    ``values`` mapping an enum field's values to tokens; ``alarm`` adds an alarm text (and the
    ``ALARM`` token) under the same condition."""

    field: str
    token: str | None = Field(None, pattern=r"^[A-Z]+( [A-Z]+)*$")
    invert: bool = False
    values: dict[int, str] | None = None
    alarm: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one(self) -> InlineStatus:
        if self.token is not None and self.values is not None:
            raise ValueError("give either 'token' or 'values', not both")
        if self.token is None and self.values is None and self.alarm is None:
            raise ValueError("give 'token', 'values' or 'alarm'")
        return self


class InlineMap(StrictModel):
    """A register map written in the config (``model: inline``)."""

    kind: Literal["ups", "meter"] = "ups"
    fields: list[InlineField] = Field(min_length=1)
    status: list[InlineStatus] = Field(default_factory=list)

    @model_validator(mode="after")
    def _builds(self) -> InlineMap:
        self.build()  # raises ValueError (→ a located config error) on unknown fields etc.
        return self

    def build(self) -> RegisterMap:
        fields = tuple(FieldDef(f.field, f.table, f.address, f.type, scale=f.scale, divisor=f.divisor,
                                word_order=f.word_order, bit=f.bit, invalid=f.invalid) for f in self.fields)
        rules = tuple(StatusRule(s.field, s.token, invert=s.invert, values=s.values, alarm=s.alarm)
                      for s in self.status)
        return RegisterMap(name="inline", kind=self.kind, fields=fields, status=rules)


class UpsConfig(ModbusDeviceConfig, UpsThresholds):
    """A UPS or power meter reached over Modbus (see the plugin README for every key)."""

    model: Model
    map: InlineMap | None = Field(None, description="the register map when model is 'inline'")
    contacts: dict[str, ContactConfig] | None = Field(
        None, description="generic_dry_contact: NUT state → contact (default OL on DI 0, LB on DI 1)")
    mains_min_voltage: float = Field(100.0, ge=0, description="meters: mains present at or above this voltage")
    poll_interval: float = Field(5.0, gt=0, le=86400)
    timeout: float = Field(3.0, gt=0, le=300)

    @model_validator(mode="after")
    def _consistent(self) -> UpsConfig:
        if (self.model == "inline") != (self.map is not None):
            raise ValueError("'map' is required when model is 'inline', and only then")
        if self.contacts is not None and self.model != "generic_dry_contact":
            raise ValueError("'contacts' only applies to model generic_dry_contact")
        if self.transport == "serial":
            if not self.serial_port:
                raise ValueError("transport serial needs serial_port (e.g. /dev/ttyUSB0)")
        elif not self.host:
            raise ValueError(f"transport {self.transport} needs host")
        if self.model == "generic_dry_contact":
            resolve_map(self)  # unknown NUT states → config error
        return self


DEFAULT_CONTACTS = {"OL": Contact(0), "LB": Contact(1)}


def resolve_map(config: UpsConfig) -> RegisterMap:
    if config.model == "inline":
        assert config.map is not None
        return config.map.build()
    if config.model == "generic_dry_contact":
        if config.contacts is None:
            return dry_contact_map(DEFAULT_CONTACTS)
        return dry_contact_map({k: Contact(c.address, c.table, c.invert, c.bit) for k, c in config.contacts.items()})
    return BUILTIN_MAPS[config.model]


def published(name: str) -> bool:
    """Map fields that become state fields (the rest only feed status tokens)."""
    return not name.startswith(("_", "flag_", "contact_"))


METER_FIELDS = ("mains",)


class UpsDriver(UpsBase[UpsConfig]):
    """A UPS: status tokens, battery charge/runtime, input voltage, load; upsmon-style events."""

    kind = "ups"
    config: UpsConfig

    def __init__(self, config: UpsConfig, ctx: DeviceContext) -> None:
        super().__init__(config, ctx)
        self.map = resolve_map(config)
        self.link: ModbusLink | None = None
        self._values = tuple(f.name for f in self.map.fields if published(f.name))
        self.value_fields = self._values
        self.reports_rb = any("RB" in (r.token or "").split() or
                              any("RB" in v.split() for v in (r.values or {}).values())
                              for r in self.map.status)
        self.reports_alarm = any(r.alarm for r in self.map.status)

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> DeviceInfo:
        c = self.config
        per_request = max(0.1, c.timeout / (len(self.map.blocks) + 0.5))
        self.link = ModbusLink(timeout=per_request, **c.link_args())
        try:
            await self.link.connect()
        except DeviceError:
            self.link.close()
            self.link = None
            raise
        inventory = await self.read_inventory()
        return DeviceInfo(model=inventory.get("model"), serial=inventory.get("serial"),
                          firmware=inventory.get("firmware"), manufacturer=MANUFACTURERS.get(c.model))

    async def read_inventory(self) -> dict[str, Any]:
        """Model, serial and firmware as the device reports them (once per connection, as NUT
        does); empty when the map has no inventory. A failure here fails the connection."""
        if not self.map.inventory_blocks:
            return {}
        if self.link is None:
            raise DeviceError("not connected")
        try:
            data = {block: await self.link.read(block) for block in self.map.inventory_blocks}
        except DeviceError:
            self.link.close()
            self.link = None
            raise
        return {k: v for k, v in self.map.decode_inventory(data).items() if v is not None}

    async def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    async def read_values(self) -> tuple[dict[str, Any], list[str]]:
        """One poll's worth of reads: decoded values and status tokens."""
        if self.link is None:
            raise DeviceError("not connected")
        data = {}
        for block in self.map.blocks:
            data[block] = await self.link.read(block)
        try:
            values = self.map.decode(data)
            tokens = self.map.tokens(values)
            alarms = self.map.alarms(values)
        except (DecodeError, ValueError, KeyError) as exc:
            raise DeviceError(f"garbage from {self.link.where}: {exc}") from None
        values["_alarms"] = alarms
        return values, tokens

    async def read_ups(self) -> UpsReading:
        values, tokens = await self.read_values()
        return UpsReading(tokens, values.pop("_alarms"), values)


class MeterDriver(UpsDriver):
    """An AC power meter: voltage, current, power, energy, frequency, and ``mains`` present."""

    kind = "meter"

    @property
    def stale_fields(self) -> tuple[str, ...]:
        return (*METER_FIELDS, *self._values)

    async def poll(self) -> dict[str, Any]:
        values, _tokens = await self.read_values()
        state = {k: values.get(k) for k in self._values}
        v = values.get("input_voltage")
        state["mains"] = None if v is None else v >= self.config.mains_min_voltage
        return state

    def entities(self) -> list[Entity]:
        ents = [Entity("binary_sensor", "mains", "Mains power", "power")]
        sensors = {"input_voltage": ("Voltage", "voltage", "V", "measurement"),
                   "current": ("Current", "current", "A", "measurement"),
                   "power": ("Power", "power", "W", "measurement"),
                   "energy": ("Energy", "energy", "Wh", "total_increasing"),
                   "frequency": ("Frequency", "frequency", "Hz", "measurement"),
                   "power_factor": ("Power factor", "power_factor", None, "measurement")}
        for name in self._values:
            if name in sensors:
                label, dc, unit, sc = sensors[name]
                ents.append(Entity("sensor", name, label, dc, unit, state_class=sc))
        return ents


def make_driver(config: DeviceConfig, ctx: DeviceContext) -> Driver:
    """Platform factory: a meter map gets a :class:`MeterDriver`, a UPS map an :class:`UpsDriver`."""
    assert isinstance(config, UpsConfig)
    cls = MeterDriver if resolve_map(config).kind == "meter" else UpsDriver
    return cls(config, ctx)
