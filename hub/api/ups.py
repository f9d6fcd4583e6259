"""The ``ups`` device class: what a UPS publishes, and the base every UPS driver subclasses (API v1).

The vocabulary is NUT's (Network UPS Tools), so whoever knows ``upsc`` reads the hub's state:

* ``status`` — NUT ``ups.status`` tokens, space separated: ``OL`` on line, ``OB`` on battery,
  ``LB`` low battery, ``RB`` replace battery, ``CHRG``/``DISCHRG``, ``BYPASS``, ``CAL``, ``OFF``,
  ``OVER``, ``TRIM``/``BOOST``, ``FSD``, ``TEST``; ``ALARM`` first while any alarm is present;
* ``on_battery`` — ``OB`` present (``true``), ``OL`` present (``false``), else ``null``;
* ``low_battery`` — ``LB`` present;
* ``replace_battery`` — ``RB`` present, ``null`` for a UPS that cannot report it;
* ``alarm`` — NUT ``ups.alarm``: the alarm texts, or ``null``;
* measured values, each only when the UPS reports it: ``battery_charge`` (%), ``battery_runtime``
  (s), ``battery_voltage``, ``input_voltage``, ``output_voltage`` (V), ``load`` (% of rating).

Events (upsmon's ONBATT/ONLINE/LOWBATT/REPLBATT): ``on_battery`` and ``on_line``, ``low_battery``,
``replace_battery``, each with ``status``, ``battery_charge`` (and ``battery_runtime`` when rising);
a UPS already on battery at the hub's first poll gives ``on_battery`` too.

A UPS plugin subclasses :class:`UpsDriver` and implements :meth:`UpsDriver.read_ups`, returning
an :class:`UpsReading` (the UPS's own tokens, alarm texts and measured values, raw); the base
applies the ``low_battery_charge`` / ``low_battery_runtime`` thresholds (NUT ``ignorelb``), puts
``ALARM`` first (NUT ``status_commit``) and emits the events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import Field

from . import DeviceConfig, DeviceContext, Driver, Entity, StrictModel

C = TypeVar("C", bound=DeviceConfig)

STATUS_FIELDS = ("status", "on_battery", "low_battery", "replace_battery", "alarm")
"""Fields derived from the status tokens (published by every UPS)."""
VALUE_FIELDS = ("battery_charge", "battery_runtime", "battery_voltage", "input_voltage", "output_voltage", "load")
"""Measured fields, published when the UPS reports them."""

EVENTS: dict[str, tuple[str, str | None]] = {
    "on_battery": ("on_battery", "on_line"), "low_battery": ("low_battery", None),
    "replace_battery": ("replace_battery", None)}
"""State field → (event when it becomes true, event when it becomes false)."""

SENSORS: dict[str, tuple[str, str | None, str, str | None]] = {
    "battery_charge": ("Battery charge", "battery", "%", None),
    "battery_runtime": ("Battery runtime", "duration", "s", None),
    "input_voltage": ("Input voltage", "voltage", "V", None),
    "output_voltage": ("Output voltage", "voltage", "V", None),
    "battery_voltage": ("Battery voltage", "voltage", "V", None),
    # load is % of the UPS's rated power: Home Assistant has no device class for it (power_factor is
    # cos φ), so none, with its unit
    "load": ("Load", None, "%", "mdi:gauge")}


class UpsThresholds(StrictModel):
    """Config keys every UPS platform offers (mix into the platform's config model)."""

    low_battery_charge: float | None = Field(
        None, ge=0, le=100, description="like NUT ignorelb + battery.charge.low: the UPS's own LB flag is "
                                        "ignored and LB is set while the charge is below this (%); unset or 0 = off")
    low_battery_runtime: float | None = Field(
        None, ge=0, description="like NUT ignorelb + battery.runtime.low: the UPS's own LB flag is ignored and "
                                "LB is set while the runtime is below this (s); unset or 0 = off")


@dataclass(slots=True)
class UpsReading:
    """One poll of a UPS, as the UPS reports it: its status tokens (NUT vocabulary, without
    ``ALARM``), its alarm texts, and measured values by field name."""

    tokens: Sequence[str]
    alarms: Sequence[str] = ()
    values: Mapping[str, Any] = field(default_factory=dict)


def derive_status(reading: UpsReading, *, low_battery_charge: float | None = None,
                  low_battery_runtime: float | None = None, reports_rb: bool = True) -> dict[str, Any]:
    """NUT's ``status_commit``: with a threshold set, the UPS's LB is replaced by the thresholds
    (``ignorelb``: charge and runtime compared as whole numbers, on line too); then ``ALARM`` leads
    the status while any alarm is present. Returns the :data:`STATUS_FIELDS`."""
    tokens = list(reading.tokens)
    charge_low, runtime_low = low_battery_charge or None, low_battery_runtime or None  # 0 = off
    if charge_low is not None or runtime_low is not None:
        tokens = [t for t in tokens if t != "LB"]
        charge, runtime = reading.values.get("battery_charge"), reading.values.get("battery_runtime")
        if (charge_low is not None and charge is not None and int(charge) < int(charge_low)) \
                or (runtime_low is not None and runtime is not None and int(runtime) < int(runtime_low)):
            tokens.append("LB")
    alarms = list(reading.alarms)
    status = (["ALARM"] if alarms and "ALARM" not in tokens else []) + tokens
    return {
        "status": " ".join(status) or None,
        "on_battery": True if "OB" in tokens else False if "OL" in tokens else None,
        "low_battery": "LB" in tokens,
        "replace_battery": ("RB" in tokens) if reports_rb else None,
        "alarm": " ".join(alarms) or None,
    }


class UpsDriver(Driver, Generic[C]):
    """Base of every UPS driver: implement :meth:`read_ups` (and ``connect``/``close``).

    Set ``value_fields`` (the measured fields this UPS publishes; default all of
    :data:`VALUE_FIELDS`), ``reports_rb`` (it can say "replace battery") and ``reports_alarm``
    (it has alarm texts) before the first poll, e.g. in ``__init__``. Name your config model as the
    parameter (``class MyUps(UpsDriver[MyConfig])``) and ``self.config`` is typed as it."""

    kind = "ups"
    value_fields: tuple[str, ...] = VALUE_FIELDS
    reports_rb: bool = True
    reports_alarm: bool = True
    config: C

    def __init__(self, config: C, ctx: DeviceContext) -> None:
        super().__init__(config, ctx)
        self._last: dict[str, bool | None] = {}

    @property
    def stale_fields(self) -> tuple[str, ...]:
        """Everything measured becomes null when the device goes offline (never a stale "OL")."""
        return (*STATUS_FIELDS, *self.value_fields)

    async def read_ups(self) -> UpsReading:
        """Read the UPS. Raise :class:`hub.api.DeviceError` on failure or garbage."""
        raise NotImplementedError

    def build_state(self, reading: UpsReading) -> dict[str, Any]:
        state = derive_status(reading, low_battery_charge=getattr(self.config, "low_battery_charge", None),
                              low_battery_runtime=getattr(self.config, "low_battery_runtime", None),
                              reports_rb=self.reports_rb)
        state.update({k: reading.values.get(k) for k in self.value_fields})
        return state

    async def poll(self) -> dict[str, Any]:
        state = self.build_state(await self.read_ups())
        self.emit_transitions(state)
        return state

    def emit_transitions(self, state: Mapping[str, Any]) -> None:
        for key, (rising, falling) in EVENTS.items():
            now = state.get(key)
            before = self._last.get(key)
            if now is None:
                continue
            self._last[key] = bool(now)
            if now and not before:  # includes the first poll when the state is already bad
                self.ctx.event(rising, status=state.get("status"), battery_charge=state.get("battery_charge"),
                               battery_runtime=state.get("battery_runtime"))
            elif not now and before and falling:
                self.ctx.event(falling, status=state.get("status"), battery_charge=state.get("battery_charge"))

    def entities(self) -> list[Entity]:
        ents = [
            Entity("binary_sensor", "on_battery", "Mains power", "power", payload_on=False),
            Entity("binary_sensor", "low_battery", "Battery low", "battery"),
            Entity("sensor", "status", "UPS status", icon="mdi:power-plug-battery"),
        ]
        if self.reports_rb:
            ents.append(Entity("binary_sensor", "replace_battery", "Replace battery", "problem"))
        if self.reports_alarm:
            ents.append(Entity("sensor", "alarm", "UPS alarm", icon="mdi:alert"))
        for name in self.value_fields:
            if name in SENSORS:
                label, dc, unit, icon = SENSORS[name]
                ents.append(Entity("sensor", name, label, dc, unit, state_class="measurement", icon=icon))
        return ents
