"""Home Assistant's MQTT discovery rules, as tables of our own, and a checker that applies them.

Written from Home Assistant's source (homeassistant/components/mqtt/{sensor,binary_sensor,switch}.py,
mqtt/light/schema_json.py, sensor/const.py, binary_sensor/__init__.py, helpers/template.py) and its
MQTT docs, as of 2026.2. What Home Assistant does with what we publish:

* a discovery config failing the component's schema is rejected (the entity never appears);
* ``object_id`` is deprecated (removed in 2026.4); ``default_entity_id`` is ``<domain>.<object id>``;
* a sensor with a device class, a unit or a state class expects a number: any other rendered value
  is an error on every message, except ``None`` (unknown) and an empty string (ignored);
  a ``timestamp`` sensor expects ISO 8601 with a time zone;
* a binary sensor takes ``payload_on`` / ``payload_off``, ``None`` (unknown) or an empty render
  (ignored); anything else is a "No matching payload" warning;
* a template naming an attribute the payload lacks logs a warning and renders empty; here that is a
  failure (StrictUndefined), unless the template guards it with ``is defined``;
* a JSON-schema light reads ``{"state": "ON"|"OFF"|null}`` from its state topic.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2

# ---------------------------------------------------------------- tables (Home Assistant 2026.2)
_TIME: set[str | None] = {"d", "h", "min", "s", "ms"}
_ENERGY: set[str | None] = {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh",
                             "cal", "kcal", "Mcal", "Gcal"}
_MEASUREMENT = {"measurement"}
_ALL_STATE_CLASSES = {"measurement", "total", "total_increasing"}

# device class -> (allowed units, allowed state classes); only the classes a hub could sensibly use
# carry units here, every other class name is still known (and rejected if used, so it gets added)
SENSOR_DEVICE_CLASSES: dict[str, tuple[set[str | None], set[str]]] = {
    "apparent_power": ({"VA", "mVA", "kVA"}, _MEASUREMENT),
    "battery": ({"%"}, _MEASUREMENT),
    "current": ({"A", "mA"}, _MEASUREMENT),
    "data_rate": ({"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "B/s", "kB/s", "MB/s", "GB/s", "KiB/s", "MiB/s",
                   "GiB/s"}, _MEASUREMENT),
    "data_size": ({"bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "PB", "KiB", "MiB", "GiB", "TiB",
                   "PiB"}, _ALL_STATE_CLASSES),
    "date": ({None}, set()),
    "duration": (_TIME, _ALL_STATE_CLASSES),
    "energy": (_ENERGY, {"total", "total_increasing"}),
    "enum": ({None}, set()),
    "frequency": ({"Hz", "kHz", "MHz", "GHz"}, _MEASUREMENT),
    "humidity": ({"%"}, _MEASUREMENT),
    "power": ({"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"}, _MEASUREMENT),
    "power_factor": ({"%", None}, _MEASUREMENT),
    "reactive_power": ({"var", "kvar"}, _MEASUREMENT),
    "signal_strength": ({"dB", "dBm"}, _MEASUREMENT),
    "temperature": ({"°C", "°F", "K"}, _MEASUREMENT),
    "timestamp": ({None}, set()),
    "voltage": ({"V", "mV", "µV", "kV", "MV"}, _MEASUREMENT),
}
OTHER_SENSOR_DEVICE_CLASSES = {
    "aqi", "area", "atmospheric_pressure", "blood_glucose_concentration", "carbon_monoxide", "carbon_dioxide",
    "conductivity", "distance", "energy_distance", "energy_storage", "gas", "illuminance", "irradiance",
    "moisture", "monetary", "nitrogen_dioxide", "nitrogen_monoxide", "nitrous_oxide", "ozone", "ph", "pm1",
    "pm10", "pm25", "precipitation", "precipitation_intensity", "pressure", "sound_pressure", "speed",
    "sulphur_dioxide", "temperature_delta", "volatile_organic_compounds", "volatile_organic_compounds_parts",
    "volume", "volume_storage", "volume_flow_rate", "water", "weight", "wind_direction", "wind_speed",
}
NON_NUMERIC_SENSOR_CLASSES = {"date", "enum", "timestamp"}
BINARY_SENSOR_DEVICE_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas",
    "heat", "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power",
    "presence", "problem", "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
}
SWITCH_DEVICE_CLASSES = {"outlet", "switch"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
COLOR_MODES = {"onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"}
MAX_STATE_LENGTH = 255
PAYLOAD_NONE = "None"
# homeassistant.core.valid_entity_id
ENTITY_ID_RE = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")

COMMON_KEYS = {
    "name", "unique_id", "default_entity_id", "device", "origin", "availability", "availability_mode",
    "availability_topic", "availability_template", "payload_available", "payload_not_available",
    "entity_category", "icon", "enabled_by_default", "json_attributes_topic", "json_attributes_template",
    "qos", "encoding", "entity_picture",
}
COMPONENT_KEYS: dict[str, tuple[set[str], set[str]]] = {  # component -> (required, optional)
    "sensor": ({"state_topic"}, {"value_template", "device_class", "unit_of_measurement", "state_class",
                                 "expire_after", "force_update", "suggested_display_precision", "options",
                                 "last_reset_value_template"}),
    "binary_sensor": ({"state_topic"}, {"value_template", "device_class", "payload_on", "payload_off",
                                        "expire_after", "force_update", "off_delay"}),
    "switch": ({"command_topic"}, {"state_topic", "value_template", "device_class", "payload_on", "payload_off",
                                   "state_on", "state_off", "optimistic", "retain", "command_template"}),
    # light, JSON schema (mqtt/light/schema_json.py): no templates, no payload_on/off, state from "state"
    "light": ({"command_topic", "schema", "supported_color_modes"},
              {"state_topic", "brightness", "brightness_scale", "effect", "effect_list", "flash_time_long",
               "flash_time_short", "max_kelvin", "min_kelvin", "optimistic", "retain", "transition"}),
}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "model_id", "sw_version",
               "hw_version", "serial_number", "suggested_area", "via_device", "configuration_url"}


# ---------------------------------------------------------------- templates as Home Assistant renders them
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def render(template: str, payload: bytes | str) -> str:
    """Render ``template`` with ``value`` and ``value_json`` (when the payload is JSON), as
    MqttValueTemplate does. A missing attribute raises (Home Assistant would warn and render "")."""
    text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    variables: dict[str, Any] = {"value": text}
    try:
        variables["value_json"] = json.loads(text)
    except ValueError:
        pass
    return _ENV.from_string(template).render(variables).strip()


# ---------------------------------------------------------------- the checker
@dataclass
class Announced:
    topic: str
    component: str
    config: dict[str, Any]

    @property
    def unique_id(self) -> str:
        return str(self.config.get("unique_id"))


@dataclass
class Checker:
    """Collects every failure: configs first (:meth:`add_config`), then states (:meth:`check_state`)."""

    entities: dict[str, Announced] = field(default_factory=dict)  # by discovery topic
    failures: list[str] = field(default_factory=list)
    states_checked: int = 0

    def fail(self, where: str, why: str) -> None:
        self.failures.append(f"{where}: {why}")

    # ------------------------------------------------------------ discovery configs
    def add_config(self, topic: str, payload: bytes, prefix: str = "homeassistant") -> None:
        parts = topic.split("/")
        if len(parts) not in (4, 5) or parts[0] != prefix or parts[-1] != "config":
            self.fail(topic, "not a discovery topic <prefix>/<component>/[<node_id>/]<object_id>/config")
            return
        if not payload:
            self.entities.pop(topic, None)  # an empty retained config removes the entity
            return
        try:
            cfg = json.loads(payload)
        except ValueError as exc:
            self.fail(topic, f"config is not JSON: {exc}")
            return
        component = parts[1]
        self.entities[topic] = Announced(topic, component, cfg)
        self._check_config(topic, component, cfg)

    def _check_config(self, topic: str, component: str, cfg: dict[str, Any]) -> None:
        if component not in COMPONENT_KEYS:
            self.fail(topic, f"component {component!r} is not covered by these rules")
            return
        required, optional = COMPONENT_KEYS[component]
        for key in sorted(required - cfg.keys()):
            self.fail(topic, f"{component} requires {key!r}")
        for key in sorted(cfg.keys() - required - optional - COMMON_KEYS):
            self.fail(topic, f"{key!r} is not an option of an MQTT {component}"
                      + (" (deprecated since 2025.10, gone in 2026.4: use default_entity_id)"
                         if key == "object_id" else ""))
        if not cfg.get("unique_id"):
            self.fail(topic, "no unique_id (the entity could not be renamed or put in an area)")
        eid = cfg.get("default_entity_id")
        if eid is not None and (not ENTITY_ID_RE.match(str(eid)) or str(eid).split(".")[0] != component):
            self.fail(topic, f"default_entity_id {eid!r} is not a valid {component} entity id")
        cat = cfg.get("entity_category")
        if cat is not None and (cat not in ENTITY_CATEGORIES or (component in ("sensor", "binary_sensor")
                                                                 and cat == "config")):
            self.fail(topic, f"entity_category {cat!r} is not allowed for a {component}")
        dev = cfg.get("device")
        if dev is not None:
            if not (dev.get("identifiers") or dev.get("connections")):
                self.fail(topic, "device without identifiers or connections")
            for key in sorted(dev.keys() - DEVICE_KEYS):
                self.fail(topic, f"device option {key!r} unknown")
        for tkey in ("value_template", "availability_template"):
            if tkey in cfg:
                self._compiles(topic, tkey, cfg[tkey])
        for av in cfg.get("availability") or []:
            if "topic" not in av:
                self.fail(topic, "availability entry without topic")
            if "value_template" in av:
                self._compiles(topic, "availability.value_template", av["value_template"])
        if cfg.get("availability_mode", "latest") not in ("all", "any", "latest"):
            self.fail(topic, f"availability_mode {cfg['availability_mode']!r}")
        dc = cfg.get("device_class")
        if component == "sensor":
            self._check_sensor_config(topic, cfg)
        elif component == "binary_sensor":
            if dc is not None and dc not in BINARY_SENSOR_DEVICE_CLASSES:
                self.fail(topic, f"binary_sensor device_class {dc!r} does not exist")
        elif component == "switch":
            if dc is not None and dc not in SWITCH_DEVICE_CLASSES:
                self.fail(topic, f"switch device_class {dc!r} does not exist")
        elif component == "light":
            if cfg.get("schema") != "json":
                self.fail(topic, "light: only the JSON schema follows a state object; schema must be 'json'")
            modes = cfg.get("supported_color_modes") or []
            if not modes or not set(modes) <= COLOR_MODES or ("onoff" in modes and len(modes) > 1):
                self.fail(topic, f"supported_color_modes {modes!r} invalid (onoff must be alone)")

    def _check_sensor_config(self, topic: str, cfg: dict[str, Any]) -> None:
        dc, unit, sc = cfg.get("device_class"), cfg.get("unit_of_measurement"), cfg.get("state_class")
        if sc is not None and sc not in _ALL_STATE_CLASSES:
            self.fail(topic, f"state_class {sc!r} does not exist")
        if dc is None:
            return
        if dc in OTHER_SENSOR_DEVICE_CLASSES:
            self.fail(topic, f"device_class {dc!r}: add its units to the rules table before using it")
            return
        if dc not in SENSOR_DEVICE_CLASSES:
            self.fail(topic, f"sensor device_class {dc!r} does not exist")
            return
        units, state_classes = SENSOR_DEVICE_CLASSES[dc]
        if unit not in units:
            self.fail(topic, f"unit {unit!r} is not a unit of device_class {dc!r} (allowed: "
                      f"{sorted(str(u) for u in units)})")
        if sc is not None and sc not in state_classes:
            self.fail(topic, f"state_class {sc!r} is not allowed with device_class {dc!r}")

    def _compiles(self, topic: str, key: str, template: str) -> None:
        try:
            _ENV.parse(template)
        except jinja2.TemplateSyntaxError as exc:
            self.fail(topic, f"{key} does not compile: {exc}")

    # ------------------------------------------------------------ cross checks
    def check_devices(self) -> None:
        """Every via_device names a device some entity announces; unique_ids and entity ids are unique."""
        identifiers = {i for a in self.entities.values() for i in (a.config.get("device") or {}).get(
            "identifiers", [])}
        for a in self.entities.values():
            via = (a.config.get("device") or {}).get("via_device")
            if via is not None and via not in identifiers:
                self.fail(a.topic, f"via_device {via!r} is announced by no entity (a nameless device)")
            if "name" not in (a.config.get("device") or {"name": 1}):
                self.fail(a.topic, "device without a name")
        for key in ("unique_id", "default_entity_id"):
            seen: dict[str, str] = {}
            for a in self.entities.values():
                v = a.config.get(key)
                if v is not None and v in seen:
                    self.fail(a.topic, f"{key} {v!r} also used by {seen[v]}")
                seen[str(v)] = a.topic

    # ------------------------------------------------------------ states
    def listening(self, topic: str) -> list[tuple[Announced, str, str]]:
        """(entity, what, template) for every template Home Assistant renders on a message to ``topic``."""
        out = []
        for a in self.entities.values():
            cfg = a.config
            if cfg.get("state_topic") == topic:
                out.append((a, "state", cfg.get("value_template", "")))
            if cfg.get("availability_topic") == topic:
                out.append((a, "availability", cfg.get("availability_template", "")))
            for av in cfg.get("availability") or []:
                if av.get("topic") == topic:
                    out.append((a, "availability", av.get("value_template", "")))
        return out

    def check_message(self, topic: str, payload: bytes, label: str = "") -> int:
        """Apply every entity listening on ``topic`` to one message; returns how many listened."""
        listeners = self.listening(topic)
        for a, what, template in listeners:
            where = f"{a.config.get('default_entity_id') or a.topic} {label}{what} {payload[:300]!r}"
            self.states_checked += 1
            if what == "state" and a.component == "light":
                self._check_json_light(where, payload)
                continue
            try:
                value = render(template, payload) if template else payload.decode("utf-8")
            except jinja2.UndefinedError as exc:
                self.fail(where, f"template {template!r}: {exc.message} (guard it with 'is defined')")
                continue
            except Exception as exc:
                self.fail(where, f"template {template!r} failed: {exc!r}")
                continue
            if what == "availability":
                ok = {a.config.get("payload_available", "online"), a.config.get("payload_not_available", "offline")}
                if value not in ok:
                    self.fail(where, f"availability rendered {value!r}, expected one of {sorted(ok)}")
            elif a.component == "sensor":
                self._check_sensor_value(where, a.config, value)
            elif a.component == "binary_sensor":
                ok = {a.config.get("payload_on", "ON"), a.config.get("payload_off", "OFF"), PAYLOAD_NONE, ""}
                if value not in ok:
                    self.fail(where, f"rendered {value!r}: no matching payload (expected one of {sorted(ok)})")
            elif a.component == "switch":
                on = a.config.get("state_on", a.config.get("payload_on", "ON"))
                off = a.config.get("state_off", a.config.get("payload_off", "OFF"))
                if value not in (on, off, PAYLOAD_NONE):
                    self.fail(where, f"rendered {value!r}, neither state_on {on!r} nor state_off {off!r}")
        return len(listeners)

    def _check_json_light(self, where: str, payload: bytes) -> None:
        try:
            values = json.loads(payload)
        except ValueError:
            self.fail(where, "a JSON-schema light needs a JSON object")
            return
        if not isinstance(values, dict) or "state" not in values:
            self.fail(where, "a JSON-schema light needs a 'state' key")
        elif values["state"] not in ("ON", "OFF", None):
            self.fail(where, f"light state {values['state']!r} is not ON/OFF/null")

    def _check_sensor_value(self, where: str, cfg: dict[str, Any], value: str) -> None:
        dc = cfg.get("device_class")
        if value == PAYLOAD_NONE:
            return
        numeric = (dc not in NON_NUMERIC_SENSOR_CLASSES) and (
            dc is not None or cfg.get("unit_of_measurement") is not None or cfg.get("state_class") is not None)
        if numeric:
            if value == "":
                return  # ignored by Home Assistant
            try:
                float(value)
            except ValueError:
                self.fail(where, f"numeric sensor rendered {value!r}, not a number")
        elif dc in ("timestamp", "date"):
            try:
                stamp = datetime.fromisoformat(value)
            except ValueError:
                self.fail(where, f"{dc} sensor rendered {value!r}, not ISO 8601")
                return
            if dc == "timestamp" and stamp.tzinfo is None:
                self.fail(where, f"timestamp {value!r} has no time zone")
        elif len(value) > MAX_STATE_LENGTH:
            self.fail(where, f"state longer than {MAX_STATE_LENGTH} characters")

    # ------------------------------------------------------------ what a user gets
    def entity_table(self, device_ids: dict[str, str]) -> str:
        """A markdown table per device kind: ``device_ids`` maps a device id to its kind's title."""
        out = []
        done: set[str] = set()
        for dev_id, title in device_ids.items():
            if title in done:
                continue
            done.add(title)
            rows = []
            for a in sorted(self.entities.values(), key=lambda a: (a.component != "light", a.topic)):
                ids = (a.config.get("device") or {}).get("identifiers") or []
                if ids != [f"anninh_{dev_id}"] and not (dev_id == "bridge" and ids == ["anninh_bridge"]):
                    continue
                c = a.config
                domain, _, object_id = str(c.get("default_entity_id", "")).partition(".")
                eid = f"{domain}.{object_id if dev_id == 'bridge' else object_id.replace(_slug(dev_id), '<device>', 1)}"
                rows.append(f"| `{eid}` | {c.get('name')} | {c.get('device_class') or ''} | "
                            f"{c.get('unit_of_measurement') or ''} | {c.get('state_class') or ''} | "
                            f"{c.get('entity_category') or ''} |")
            out.append(f"#### {title}\n\n| entity id | name | device class | unit | state class | category |\n"
                       "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
        return "\n".join(out)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
