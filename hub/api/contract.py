"""The MQTT contract, declared once (API v1): the topics the hub publishes and reads, and every event
type with its fields. README.md's topic table and event list are generated from here
(``python scripts/gen_docs.py``; ``tests/test_docs.py`` fails when they are stale), and
:func:`check_event` checks an event against its declaration (the drivers' test context uses it, so
every driver test also checks what the driver emits).

The device classes declare their own events (:mod:`hub.api.cameras`, :mod:`hub.api.recorders`,
:mod:`hub.api.lights`, :mod:`hub.api.ups`); this module gathers them with the hub's and the
built-in rules' events.

Shared conventions: every event has ``type`` and ``time`` (ISO-8601 with the hub's offset), and
``device`` and/or ``site`` when it concerns one. A flag event (``active`` true/false) whose end the
device never sends ends after a timeout with ``ended: "timeout"``, the same in every driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.i18n import N_

from . import cameras, lights, recorders, ups


@dataclass(frozen=True)
class Topic:
    """One MQTT topic of the contract. ``pattern`` has ``<base>`` and ``<placeholders>``."""

    pattern: str
    payload: str
    retained: bool = True
    qos: int = 1
    direction: str = "out"  # "out": the hub publishes; "in": the hub reads


TOPICS: tuple[Topic, ...] = (
    Topic("<base>/bridge/state",
          '`{"state":"online"}`; the broker publishes `{"state":"offline"}` as the hub\'s last will'),
    Topic("<base>/bridge/info", "hub version, name, device count"),
    Topic("<base>/<device>",
          "the device's state, from its first successful poll on (UPS: `status` NUT tokens, `on_battery`, "
          "`low_battery`, `alarm` (NUT `ups.alarm`), `battery_charge`, `battery_runtime`, `input_voltage`, "
          "`load`; light: `state`, `mode`, `reason`, `hold_until`; camera/recorder: `model`, `firmware`, "
          "`serial`, `motion`, `video_loss`, `tamper`, `disks`, `channels`, `retention_days`, image health)"),
    Topic("<base>/<device>/availability", '`{"state":"online"}` / `{"state":"offline"}`'),
    Topic("<base>/<device>/set",
          'commands (QoS 1, not retained: a retained one is ignored): `{"state":"ON"}`, `OFF`, '
          '`{"mode":"auto"}`, `{"state":"ON","hold":3600}` (`hold`: whole seconds, 1..86400)',
          retained=False, direction="in"),
    Topic("<base>/<device>/set/<user>",
          "the same, by a named user (the broker's ACL keeps users from using others' names)",
          retained=False, direction="in"),
    Topic("<base>/site/<site>", '`{"power":"ok"\\|"lost"\\|"unknown", ...}`'),
    Topic("<base>/site/<site>/event",
          "not retained: the events of that site again (users limited to some sites read only these)",
          retained=False),
    Topic("<base>/bridge/event",
          'not retained, QoS 1: `{"type":..., "time": ISO-8601 with offset, "device"/"site": ...}`; '
          "the types and their fields are listed below",
          retained=False),
    Topic("<base>/bridge/request/<name>` → `<base>/bridge/response/<name>",
          "requests (`health_check`, `devices`, `snapshot`, reference images), Zigbee2MQTT style, with "
          "`transaction` echoed; `snapshot` `{\"device\":\"cam-kp3\",\"channel\":1}` (channel optional) "
          "answers `{\"device\",\"channel\",\"content_type\":\"image/jpeg\",\"size\",\"time\",\"image\": "
          "base64 JPEG}`", retained=False, direction="in"),
    Topic("<base>/bridge/request/export/<user>` → `<base>/bridge/response/export/<user>",
          'footage export by an officer or installer (the user is the topic\'s; `{"device", "channel", '
          '"start", "end", "case", "reason"}`), answered with `package_id` and `path` once sealed; events '
          "`export_started`, `export_progress` (`percent`), `export_done`, `export_failed` "
          "([docs/export.md](docs/export.md))", retained=False, direction="in"),
    Topic("<base>/bridge/request/ticket/<user>` → `<base>/bridge/response/ticket/<user>",
          'a contractor (at their sites) or an installer acts on a maintenance ticket (the user is the '
          'topic\'s): `{"action": "ack"\\|"resolve", "ticket": 12, "note": "..."}` (`resolve` needs the '
          "`note`), answered with the ticket; events `ticket_acknowledged`, `ticket_resolved` "
          "([docs/operations.md](docs/operations.md))", retained=False, direction="in"),
    Topic("<base>/site/<site>/tickets",
          '`{"site", "count", "tickets": [{"id", "device", "kind", "fault", "contractor", "opened", "due", '
          '"acknowledged", "ack_by", "overdue", "detail"}]}`: the open maintenance tickets of the site'),
    Topic("homeassistant/<component>/<device>/<field>/config",
          "Home Assistant discovery (with availability); the hub itself is the device `anninh_bridge`; "
          "what a user gets: [docs/home-assistant.md](docs/home-assistant.md)"),
)
"""The topics, in the order README.md lists them."""

BRIDGE_STATE = "{base}/bridge/state"
BRIDGE_INFO = "{base}/bridge/info"
BRIDGE_EVENT = "{base}/bridge/event"
BRIDGE_REQUEST = "{base}/bridge/request/{name}"
BRIDGE_RESPONSE = "{base}/bridge/response/{name}"
DEVICE_STATE = "{base}/{device}"
DEVICE_AVAILABILITY = "{base}/{device}/availability"
DEVICE_SET = "{base}/{device}/set"
SITE_STATE = "{base}/site/{site}"
SITE_EVENT = "{base}/site/{site}/event"
SITE_TICKETS = "{base}/site/{site}/tickets"
"""``str.format`` templates of the topics above, for code that builds them."""

COMMON_FIELDS = ("type", "time", "device", "site", "message")
"""Fields any event may carry besides its own (``message``: the sentence for people, in the hub's language)."""


@dataclass(frozen=True)
class EventType:
    """One event type: its fields (name → one-line meaning), which are required, and who emits it.
    ``open``: the event may carry further measurements (image health adds what it measured)."""

    meaning: str
    required: Mapping[str, str] = field(default_factory=dict)
    optional: Mapping[str, str] = field(default_factory=dict)
    source: str = "hub"
    open: bool = False
    #: the sentence a person reads, marked with ``N_`` and translated when the event is emitted (in
    #: ``hub.language``) or shown (in the reader's language); ``{device}``, ``{site}`` and the event's
    #: fields are its placeholders. Empty: the event's meaning is used.
    message: str = ""


_WHO = {"user": "the user who asked, when a named user did"}
_TICKET = {"ticket": "the ticket's number"}
_TICKET_FAULT = {"fault": "`offline`, `image_blurry`, `disk_error`, … (docs/operations.md)",
                 "kind": "`camera`, `recorder`, `ups` or `light`"}
_CHANNEL = {"channel": "the channel (1 for a camera; ONVIF cameras, one video source, leave it out)"}
_ACTIVE = {"active": "true when it starts, false when it ends"}
_ENDED = {"ended": '`"timeout"` when the device never sent the end and the hub ended it'}
_FLAG_EXTRA = {"reason": '`"timeout"` too (ONVIF drivers before API v1; read `ended`)',
               "topic": "the ONVIF notification topic", "source": "the ONVIF source items"}
_FLAG_MEANING = {"motion": "motion detected", "video_loss": "a channel lost its video",
                 "tamper": "the camera was covered or tampered with", "line_crossing": "a tripwire was crossed",
                 "intrusion": "someone entered a watched area"}
_DISK_FIELDS = {"disk": "the disk's id (left out when the recorder does not say)", "capacity": "MB",
                "status": "the disk's status as the recorder says it", "previous": "the disk's earlier status",
                "error": "why (no working disk at all)"}
_DISK_MEANING = {"disk_full": "a recorder disk is full", "disk_error": "a recorder disk reports an error",
                 "disk_missing": "a disk the recorder had is gone"}
_RECORDER_FIELDS = {"channel": "the channel", "days": "days of footage kept", "target": "days wanted",
                    "channels": "per-channel days"}
_RECORDER_MEANING = {"channel_offline": "a recorder channel lost its camera", "channel_online": "it is back",
                     "retention_low": "footage kept is under the target", "retention_ok": "back at the target"}
_UPS_FIELDS = {"status": "NUT status tokens", "battery_charge": "percent",
               "battery_runtime": "seconds left on battery"}
_UPS_MEANING = {"on_battery": "the UPS runs on its battery (mains lost)", "on_line": "mains back on the UPS",
                "low_battery": "the battery is low", "replace_battery": "the UPS asks for a new battery"}
_IMAGE_MEANING = {"stream_down": "no picture can be had", "image_covered": "the lens is covered",
                  "image_dark": "the picture is dark by day", "image_blurry": "the picture is blurred",
                  "image_frozen": "the picture does not change", "scene_moved": "the camera points elsewhere"}


def event_message(type: str, fields: Mapping[str, Any]) -> str:
    """The sentence for one event, in the current language (``hub.i18n.use_language`` to choose).

    ``fields`` are the event's JSON fields (``device``, ``site`` and its data); a placeholder the event
    does not carry shows as ``{name}`` rather than failing, and an unknown type gives its code."""
    from hub.i18n import tr

    spec = EVENTS.get(type)
    if spec is None:
        return type
    params = {k: _spoken(v) for k, v in fields.items() if k not in ("type", "time", "message")}
    return tr(spec.message or spec.meaning, **params)


def _spoken(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return value


def _events() -> dict[str, EventType]:
    ev: dict[str, EventType] = {
        "device_online": EventType("a device answers again after being offline"),
        "device_offline": EventType("a device stopped answering", {"error": "why (no password in it)"}),
        "command": EventType("a command was carried out",
                             {"source": "`mqtt`, `rule:<name>`, …", "command": "what was done"},
                             {"user": "the named user"}),
        "command_failed": EventType("a device could not carry out a valid command",
                                    {"error": "why", "source": "where it came from"}, {"user": "the named user"}),
        "command_rejected": EventType("a command was refused (malformed, unknown device, not allowed)",
                                      {"error": "why", "source": "where it came from"},
                                      {"user": "the named user", "count": "rejections summarised in this event",
                                       "target": "the unknown device named"}),
        "export_started": EventType("a footage export began", {"channel": "recorder channel", "start": "window start",
                                                              "end": "window end"}, _WHO, source="export"),
        "export_progress": EventType("export progress", {"percent": "0..100"}, _WHO, source="export"),
        "export_done": EventType("the evidence package is sealed",
                                 {"package_id": "package id", "path": "where it is",
                                  "complete": "no gaps in the footage", "gaps": "number of gaps",
                                  "manifest_sha256": "digest of the signed manifest"}, _WHO, source="export"),
        "export_failed": EventType("an export failed", {"error": "why"}, _WHO, source="export"),
        "power_lost": EventType("mains lost at a site", {"cause": "what says so", "sources": "the devices that say so"},
                                source="default_rules"),
        "power_restored": EventType("mains back at a site", {"cause": "what says so"},
                                    {"duration_s": "how long it was out"}, source="default_rules"),
        "power_suspected_lost": EventType("every device of a site went offline together (no UPS says so)",
                                          {"devices": "the devices", "cause": "why it is suspected"},
                                          source="default_rules"),
        "power_suspected_restored": EventType("a device of such a site is back", {"cause": "which one"},
                                              source="default_rules"),
        "camera_offline": EventType("a camera is offline, with the likely cause",
                                    {"cause": "`power`, `network`, `camera`, …", "detail": "what was seen"},
                                    source="default_rules"),
        "ticket_opened": EventType(
            "a fault lasted longer than `tickets.open_after`: a maintenance ticket is opened",
            {**_TICKET, **_TICKET_FAULT, "opened": "when (ISO-8601)", "due": "the contract's deadline (ISO-8601)"},
            {"contractor": "the contractor in charge", "detail": "what was seen"}, source="ops",
            message=N_("Maintenance ticket #{ticket} opened for {device}: {fault}; repair due {due}")),
        "ticket_acknowledged": EventType(
            "a contractor took a ticket on", {**_TICKET, "by": "the user"}, {"note": "their note"}, source="ops",
            message=N_("Ticket #{ticket} ({device}) acknowledged by {by}")),
        "ticket_resolved": EventType(
            "a ticket is closed: the fault is gone (`recovered`) or a contractor repaired it (`resolved`)",
            {**_TICKET, **_TICKET_FAULT, "resolution": "`recovered` or `resolved`", "opened": "ISO-8601",
             "due": "ISO-8601", "within_deadline": "closed by the deadline"},
            {"by": "the user who resolved it", "note": "their note", "contractor": "the contractor in charge"},
            source="ops", message=N_("Ticket #{ticket} ({device}, {fault}) closed: {resolution}")),
        "ticket_overdue": EventType(
            "a ticket passed its deadline still open", {**_TICKET, **_TICKET_FAULT, "due": "the deadline"},
            {"contractor": "the contractor in charge"}, source="ops",
            message=N_("Ticket #{ticket} ({device}, {fault}) is past its repair deadline {due}")),
        "reference_set": EventType("a reference picture was stored", {"source": "`auto`, `cli`, `mqtt`"},
                                   source="image_health"),
    }
    for flag in cameras.FLAGS:
        ev[flag] = EventType(_FLAG_MEANING[flag], _ACTIVE, {**_CHANNEL, **_ENDED, **_FLAG_EXTRA},
                             source="camera, recorder")
    for flag, meaning in cameras.MORE_FLAGS.items():
        ev[flag] = EventType(meaning, _ACTIVE, {**_CHANNEL, **_ENDED}, source="camera, recorder")
    for name, meaning in recorders.DEVICE_EVENTS.items():
        ev[name] = EventType(meaning, source="recorder")
    for name, fields in recorders.RECORDER_EVENTS.items():
        if name in ev:
            continue
        if name.startswith("disk_"):  # from the event stream the recorder names no disk; a poll does
            ev[name] = EventType(_DISK_MEANING[name], {}, {f: _DISK_FIELDS[f] for f in _DISK_FIELDS
                                                            if f in fields or (name == "disk_missing"
                                                                               and f in ("previous", "error"))},
                                 source="recorder")
        else:
            ev[name] = EventType(_RECORDER_MEANING[name], {f: _RECORDER_FIELDS[f] for f in fields},
                                 source="recorder")
    meanings = {"requested": "`ON`/`OFF` written", "actual": "`ON`/`OFF` read back", "channel": "relay channel"}
    for name, fields in lights.EVENTS.items():
        ev[name] = EventType("the relay did not follow a write", {f: meanings.get(f, f) for f in fields},
                             source="light")
    for rising, falling in ups.EVENTS.values():
        for ups_event in (rising, falling):
            if ups_event:
                ev[ups_event] = EventType(_UPS_MEANING.get(ups_event, ups_event), {"status": _UPS_FIELDS["status"]},
                                     {k: v for k, v in _UPS_FIELDS.items() if k != "status"}, source="ups")
    for name, meaning in _IMAGE_MEANING.items():
        for n, m in ((name, meaning), (name + "_cleared", meaning + ": no longer")):
            ev[n] = EventType(m, {"problem": "the image problem"},
                              {"error": "why no picture", "brightness": "0..255", "sharpness": "focus measure",
                               "changed": "fraction changed", "shift_x": "", "shift_y": "", "match": ""},
                              source="image_health")
    return ev


EVENTS: dict[str, EventType] = _events()
"""Every event type on ``<base>/bridge/event``."""


class ContractError(ValueError):
    """An event that does not match its declaration."""


def check_event(type: str, data: Mapping[str, Any]) -> None:
    """Raise :class:`ContractError` if an event of ``type`` with ``data`` (``None`` values are dropped,
    as the hub does) does not match :data:`EVENTS`."""
    spec = EVENTS.get(type)
    if spec is None:
        raise ContractError(f"event type {type!r} is not declared in hub.api.contract.EVENTS")
    present = {k for k, v in data.items() if v is not None}
    missing = [k for k in spec.required if k not in present]
    if missing:
        raise ContractError(f"event {type!r} lacks {', '.join(missing)} (has {sorted(present)})")
    if not spec.open:
        extra = present - set(spec.required) - set(spec.optional) - set(COMMON_FIELDS)
        if extra:
            raise ContractError(f"event {type!r} has undeclared field(s) {', '.join(sorted(extra))}")
