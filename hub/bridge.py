"""The MQTT contract (docs/design.md): Zigbee2MQTT-style topics over one :class:`MqttConnection`.

| topic | what |
|---|---|
| ``<base>/bridge/state`` | ``{"state":"online"}``; last will ``{"state":"offline"}`` |
| ``<base>/<device>`` | the device's state, retained |
| ``<base>/<device>/availability`` | ``{"state":"online"|"offline"}``, retained |
| ``<base>/<device>/set`` and ``/set/<user>`` | commands, QoS 1 |
| ``<base>/site/<site>`` | the site's state, retained |
| ``<base>/bridge/event`` | events, QoS 1, not retained |
| ``<base>/bridge/request/<name>`` | requests; answered on ``<base>/bridge/response/<name>`` |
| ``<discovery_prefix>/<component>/<device>/<field>/config`` | Home Assistant discovery |
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from hub import __version__
from hub.api import AvailabilityChange, Entity, HubEvent, StateChange
from hub.config import Config
from hub.core import Hub, HubView, Listener, RequestHandler, describe_error
from hub.mqtt import BrokerAddress, MqttConnection
from hub.redact import redact, redact_cut

log = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 4096
ONLINE = json.dumps({"state": "online"})
OFFLINE = json.dumps({"state": "offline"})



class CommandParseError(ValueError):
    pass


def parse_command(payload: bytes) -> dict[str, Any]:
    """Turn a ``/set`` payload into a dict, or raise :class:`CommandParseError` saying why.

    Accepts a JSON object, or the plain words ``ON`` / ``OFF`` / ``TOGGLE`` (any case), which
    mean ``{"state": "ON"}`` etc. Strict JSON: a key given twice, ``NaN`` or ``Infinity`` is an
    error (Python's parser would take the last key and the non-standard constants silently);
    the values' types are checked by the device's model, strictly (no ``"3600"`` for 3600).
    """
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandParseError(f"payload too large ({len(payload)} bytes; limit {MAX_COMMAND_BYTES})")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandParseError("payload is not UTF-8 text") from None
    if not text:
        raise CommandParseError("empty payload")
    if text.upper() in ("ON", "OFF", "TOGGLE"):
        return {"state": text.upper()}
    try:
        value = _DECODER.decode(text)
    except CommandParseError:
        raise
    except RecursionError:
        raise CommandParseError("payload nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise CommandParseError(f"not JSON ({exc.msg} at column {exc.colno}); "
                                'expected an object such as {"state":"ON"} or ON/OFF') from None
    except ValueError as exc:
        raise CommandParseError(f"not JSON ({exc}); "
                                'expected an object such as {"state":"ON"} or ON/OFF') from None
    if not isinstance(value, dict):
        raise CommandParseError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise CommandParseError(f"key {redact_cut(dup, 32)!r} given more than once")
    return out


def _no_constant(name: str) -> Any:
    raise CommandParseError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def session_id(config: Config) -> str:
    """The hub's MQTT client id when the config names none: stable for one data dir and base
    topic, so that the broker keeps the hub's session (persistent, ``clean_session`` false) across
    a hub restart and delivers again the commands it acknowledged to their sender but the hub
    had not yet acknowledged (a hub killed in between)."""
    digest = hashlib.sha256(f"{config.data_dir}\0{config.mqtt.base_topic}".encode()).hexdigest()
    return f"anninh-{digest[:12]}"


def _dumps(data: Mapping[str, Any]) -> str:
    # one encoder for all messages: json.dumps with options builds a new encoder per call
    return _ENCODER.encode(data)


class MqttBridge:
    """Connects a :class:`Hub` to MQTT per the contract. It reads the hub through its read-only
    :class:`HubView`, sends commands to its command service, and answers the requests of its
    :class:`RequestRegistry`."""

    def __init__(self, hub: Hub, connection: MqttConnection | None = None) -> None:
        self.view: HubView = hub.view
        self.commands = hub.commands
        self.requests = hub.requests
        self._create_task = hub.create_task
        cfg = hub.config.mqtt
        self.base = cfg.base_topic
        self.discovery = cfg.discovery
        self.prefix = cfg.discovery_prefix
        self._discovered: dict[str, set[str]] = {}
        # devices whose state is published: from their first successful poll on. Before it the state
        # holds only what connect() found (model, manufacturer...), and a retained partial state would
        # replace the last complete one that Home Assistant (and every other subscriber) reads
        self._complete: set[str] = set()
        self.republishers: list[Callable[[], None]] = []
        """More retained topics (the open tickets of each site), published again with the rest."""
        if connection is None:
            address = BrokerAddress.parse(cfg.server)
            connection = MqttConnection(
                address, client_id=cfg.client_id or session_id(hub.config), username=cfg.username,
                password=cfg.password.get_secret_value() if cfg.password else None,
                will=(f"{self.base}/bridge/state", OFFLINE), keepalive=cfg.keepalive,
                ca_file=cfg.ca_file, cert_file=cfg.cert_file, key_file=cfg.key_file,
                queue_size=cfg.queue_size, outbox=hub.config.data_dir / "outbox.db", clean_session=False)
        self.conn = connection
        self.conn.on_connect_cb = self._on_connect
        hub.mqtt_access = self
        hub.add_listener(Listener(on_state=self._on_state, on_availability=self._on_availability,
                                      on_event=self._on_event, on_site=self._on_site,
                                      on_device_info=self._on_device_info))
        self.register_request("health_check", self._health_check)
        self.register_request("devices", self._devices)
        self.register_request("snapshot", self._snapshot)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        b = self.base
        # a command left retained on a /set topic (an app's "retain" switch) would otherwise be
        # carried out again at every reconnect: commands come from live publishes only
        self.conn.subscribe(f"{b}/+/set", self._on_set, qos=1, retained=False)
        self.conn.subscribe(f"{b}/+/set/+", self._on_set, qos=1, retained=False)
        self.conn.subscribe(f"{b}/bridge/request/#", self._on_request, qos=1)
        if self.discovery:
            self.conn.subscribe(f"{self.prefix}/status", self._on_ha_status, qos=1)
        await self.conn.start()

    async def stop(self) -> None:
        final = [(f"{self.base}/{d}/availability", OFFLINE, 1, True) for d in self.view.device_ids()]
        final.append((f"{self.base}/bridge/state", OFFLINE, 1, True))
        await self.conn.stop(final)

    # ---------------------------------------------------------------- MqttAccess for drivers
    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> None:
        self.conn.publish(topic, payload, qos, retain)

    def subscribe(self, topic: str, callback: Callable[[str, bytes], None]) -> Callable[[], None]:
        return self.conn.subscribe(topic, callback)

    def register_request(self, name: str, handler: RequestHandler) -> None:
        """Answer ``<base>/bridge/request/<name>`` on ``<base>/bridge/response/<name>``."""
        self.requests.register(name, handler)

    # ---------------------------------------------------------------- republish
    def _on_connect(self) -> None:
        self.republish(discovery=True)

    def republish(self, discovery: bool = False) -> None:
        """Everything retained, again: bridge state, discovery, states, availability, sites."""
        pub = self.conn.publish
        pub(f"{self.base}/bridge/state", ONLINE, 1, True)
        pub(f"{self.base}/bridge/info", _dumps({"version": __version__, "name": self.view.config.hub.name,
                                                "devices": self.view.device_count()}), 1, True)
        if discovery and self.discovery:
            self._publish_bridge_discovery()
            for device_id in self.view.device_ids():
                self._publish_discovery(device_id)
        for device_id, state in self.view.states.items():
            if state and device_id in self._complete:
                pub(f"{self.base}/{device_id}", redact(_dumps(state)), 1, True)
        for device_id, available in self.view.availability.items():
            pub(f"{self.base}/{device_id}/availability", ONLINE if available else OFFLINE, 1, True)
        for site_id, state in self.view.site_states.items():
            pub(f"{self.base}/site/{site_id}", _dumps(state), 1, True)
        for again in self.republishers:
            again()

    # ---------------------------------------------------------------- hub listeners
    def _on_state(self, change: StateChange) -> None:
        if change.device_id in self._complete:
            self.conn.publish(f"{self.base}/{change.device_id}", redact(_dumps(change.state)), 0, True)

    def _on_availability(self, change: AvailabilityChange) -> None:
        if change.available and change.device_id not in self._complete:
            # the first successful poll: the state is complete now, and goes out before "online"
            self._complete.add(change.device_id)
            state = self.view.states.get(change.device_id)
            if state:
                self.conn.publish(f"{self.base}/{change.device_id}", redact(_dumps(state)), 1, True)
        self.conn.publish(f"{self.base}/{change.device_id}/availability",
                          ONLINE if change.available else OFFLINE, 1, True)

    def _on_event(self, event: HubEvent) -> None:
        payload = redact(_dumps(event.as_json()))
        self.conn.publish(f"{self.base}/bridge/event", payload, 1, False)
        if event.site is not None:
            # per-site copy: users limited to some sites are granted only their sites' events
            self.conn.publish(f"{self.base}/site/{event.site}/event", payload, 1, False)

    def _on_site(self, site_id: str, state: Mapping[str, Any]) -> None:
        self.conn.publish(f"{self.base}/site/{site_id}", _dumps(state), 1, True)

    def _on_device_info(self, device_id: str) -> None:
        if self.discovery and self.conn.connected:
            self._publish_discovery(device_id)

    # ---------------------------------------------------------------- incoming
    def _on_set(self, topic: str, payload: bytes) -> asyncio.Task[bool] | None:
        parts = topic[len(self.base) + 1:].split("/")
        device_id = parts[0]
        user = parts[2] if len(parts) == 3 else None
        try:
            command = parse_command(payload)
        except CommandParseError as exc:
            self.commands.reject_command(device_id, str(exc), user=user, payload={"bytes": len(payload)},
                                         source="mqtt", kind="malformed")
            return None
        return self._create_task(self.commands.command(device_id, command, source="mqtt", user=user),
                                 name=f"command-{device_id[:32]}")

    def _on_ha_status(self, topic: str, payload: bytes) -> None:
        if payload.strip().lower() == b"online":
            log.info("Home Assistant is online: republishing discovery and states")
            self.republish(discovery=True)

    def _on_request(self, topic: str, payload: bytes) -> None:
        name = topic[len(f"{self.base}/bridge/request/"):]
        self._create_task(self._answer(name, payload), name=f"request-{name[:32]}")

    async def _answer(self, name: str, payload: bytes) -> None:
        response: dict[str, Any]
        transaction = None
        try:
            body = json.loads(payload.decode("utf-8")) if payload.strip() else {}
            if not isinstance(body, dict):
                body = {"value": body}
            transaction = body.get("transaction")
            handler = self.requests.get(name)
            if handler is None:
                raise ValueError(f"unknown request {name!r} (known: {', '.join(self.requests.names())})")
            response = {"status": "ok", "data": await handler(body)}
        except Exception as exc:
            response = {"status": "error", "error": describe_error(exc)}
        if transaction is not None:
            response["transaction"] = transaction
        self.conn.publish(f"{self.base}/bridge/response/{name}", redact(_dumps(response)), 1, False)

    async def _health_check(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"healthy": True, "devices": self.view.device_count(),
                "online": sum(1 for v in self.view.availability.values() if v)}

    async def _devices(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for device_id in self.view.device_ids():
            config = self.view.device_config(device_id)
            out.append({"id": device_id, "platform": config.platform, "site": config.site,
                        "kind": self.view.device_kind(device_id), "available": self.view.availability.get(device_id),
                        "error": self.view.errors.get(device_id)})
        return out

    async def _snapshot(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{"device": "cam-kp3", "channel": 1}`` (channel optional) -> one JPEG from the camera or
        recorder, base64 in ``image``, with its ``size`` in bytes. The broker's ACL grants this request
        to officers and installers (RIGHTS in hub.security); site-limited users do not get it."""
        device = body.get("device")
        if not isinstance(device, str) or not device:
            raise ValueError('"device" (a device id) is required')
        channel = body.get("channel")
        if channel is not None and (not isinstance(channel, int) or isinstance(channel, bool) or channel < 0):
            raise ValueError('"channel" must be a whole number')
        if not self.view.has_device(device):
            raise ValueError(f"unknown device {redact_cut(device, 64)!r}")
        image = await self.view.snapshot(device, channel)
        return {"device": device, "channel": channel, "content_type": "image/jpeg", "size": len(image),
                "time": self.view.local_now().isoformat(), "image": base64.b64encode(image).decode("ascii")}

    # ---------------------------------------------------------------- Home Assistant discovery
    # docs/home-assistant.md says what a user gets; tests/test_ha_discovery.py checks every config and
    # every state the hub publishes against Home Assistant's rules (templates, device classes, units)
    def _bridge_device(self) -> dict[str, Any]:
        return {"identifiers": [BRIDGE_IDENTIFIER], "name": self.view.config.hub.name,
                "manufacturer": "AnNinh", "model": "AnNinh Hub", "sw_version": __version__}

    def _publish_bridge_discovery(self) -> None:
        """The bridge's own device, which every device names as ``via_device``."""
        b = self.base
        origin = {"name": "AnNinh Hub", "sw_version": __version__}
        configs: list[tuple[str, str, dict[str, Any]]] = [
            ("binary_sensor", "connection_state", {
                "name": "Connection state", "state_topic": f"{b}/bridge/state",
                "value_template": "{{ value_json.state }}", "payload_on": "online", "payload_off": "offline",
                "device_class": "connectivity", "entity_category": "diagnostic"}),
            ("sensor", "devices", {
                "name": "Devices", "state_topic": f"{b}/bridge/info", "value_template": "{{ value_json.devices }}",
                "state_class": "measurement", "entity_category": "diagnostic", "icon": "mdi:devices",
                "availability_topic": f"{b}/bridge/state", "availability_template": "{{ value_json.state }}"}),
        ]
        for component, key, payload in configs:
            payload.update(unique_id=f"{BRIDGE_IDENTIFIER}_{key}",
                           default_entity_id=f"{component}.{BRIDGE_IDENTIFIER}_{key}",
                           device=self._bridge_device(), origin=origin)
            self.conn.publish(f"{self.prefix}/{component}/{BRIDGE_IDENTIFIER}/{key}/config", _dumps(payload), 1, True)

    def _publish_discovery(self, device_id: str) -> None:
        config = self.view.device_config(device_id)
        try:
            entities = self.view.entities(device_id)
        except Exception as exc:
            log.error("%s: entities() failed: %s", device_id, describe_error(exc))
            return
        if entities is None:
            return
        state = self.view.state(device_id)
        device = {"identifiers": [f"anninh_{device_id}"],
                  "name": config.name or device_id,
                  "via_device": BRIDGE_IDENTIFIER}
        for key, target in (("model", "model"), ("manufacturer", "manufacturer"), ("firmware", "sw_version"),
                            ("serial", "serial_number")):
            if state.get(key):
                device[target] = str(state[key])
        if config.site:
            device["suggested_area"] = config.site
        for entity in [Entity("binary_sensor", "_availability", "Connectivity", "connectivity"), *entities]:
            topic, payload = self._entity_config(device_id, device, entity)
            self.conn.publish(topic, _dumps(payload), 1, True)

    def _entity_config(self, device_id: str, device: dict[str, Any],
                       entity: Entity) -> tuple[str, dict[str, Any]]:
        b = self.base
        object_id = entity.field.strip("_") or "value"
        uid = f"anninh_{device_id}_{object_id}"
        payload: dict[str, Any] = {
            "name": entity.name, "unique_id": uid,
            # the entity id a new install gets: device id and entity name, as Home Assistant names
            # entities itself (binary_sensor.ups_kp3_mains_power); object_id is deprecated since 2025.10
            "default_entity_id": f"{entity.component}.{entity_slug(device_id, entity.name)}",
            "device": device, "origin": {"name": "AnNinh Hub", "sw_version": __version__},
        }
        if entity.field == "_availability":
            payload.update(state_topic=f"{b}/{device_id}/availability",
                           value_template="{{ 'ON' if value_json.state == 'online' else 'OFF' }}",
                           device_class="connectivity", entity_category="diagnostic",
                           availability_topic=f"{b}/bridge/state",
                           availability_template="{{ value_json.state }}")
            return f"{self.prefix}/binary_sensor/{device_id}/{object_id}/config", payload
        payload["state_topic"] = f"{b}/{device_id}"
        payload["availability"] = [
            {"topic": f"{b}/bridge/state", "value_template": "{{ value_json.state }}"},
            {"topic": f"{b}/{device_id}/availability", "value_template": "{{ value_json.state }}"}]
        payload["availability_mode"] = "all"
        f = entity.field
        if entity.component == "binary_sensor":
            on = entity.payload_on if entity.payload_on is not None else True
            # null (a stale value while the device is offline) is unknown, never "off"
            # a field the device has not reported yet (an ONVIF camera's first tamper event, say) renders
            # empty, which Home Assistant ignores: the entity keeps its state instead of a warning
            v = f"value_json.{f}"
            payload["value_template"] = (
                f"{{% if {v} is not defined %}}{{% elif {v} is none %}}None"
                f"{{% elif {v} == {json.dumps(on)} %}}ON{{% else %}}OFF{{% endif %}}")
        elif entity.component == "light":
            # the JSON schema reads {"state": "ON"|"OFF"} from the device's state and sends the same
            # to /set; the default schema cannot (it compares the templated state with payload_on)
            if f != "state":
                log.warning("%s: light entity on field %r: the JSON schema reads only 'state'", device_id, f)
            payload["schema"] = "json"
            payload["command_topic"] = f"{b}/{device_id}/set"
            payload["supported_color_modes"] = ["onoff"]
        elif entity.component == "switch":
            payload["command_topic"] = f"{b}/{device_id}/set"
            payload["value_template"] = "{{ value_json.%s }}" % f  # noqa: UP031
            payload["payload_on"] = _dumps({f: entity.payload_on or "ON"})
            payload["payload_off"] = _dumps({f: entity.payload_off or "OFF"})
            payload["state_on"] = entity.payload_on or "ON"
            payload["state_off"] = entity.payload_off or "OFF"
        elif entity.device_class not in (None, "timestamp", "date", "enum") or entity.unit or entity.state_class:
            # numeric: a field that comes later (an NVR's retention_days, from its slower check) renders
            # empty until then, which Home Assistant ignores for a numeric sensor
            payload["value_template"] = "{{ value_json.%s if value_json.%s is defined else '' }}" % (f, f)  # noqa: UP031
        else:
            # text and timestamps: an empty text would become the state, so these fields are always there
            payload["value_template"] = "{{ value_json.%s }}" % f  # noqa: UP031
        if entity.device_class:
            payload["device_class"] = entity.device_class
        if entity.unit:
            payload["unit_of_measurement"] = entity.unit
        if entity.state_class:
            payload["state_class"] = entity.state_class
        if entity.icon:
            payload["icon"] = entity.icon
        return f"{self.prefix}/{entity.component}/{device_id}/{object_id}/config", payload


BRIDGE_IDENTIFIER = "anninh_bridge"


def entity_slug(*parts: str) -> str:
    """Home Assistant's object id rules: lowercase ASCII letters, digits and single underscores."""
    text = "_".join(parts).replace("đ", "d").replace("Đ", "D")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_") or "entity"
