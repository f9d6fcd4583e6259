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
from dataclasses import dataclass, field, replace
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
          "`load`; light: `state`, `mode`, `reason`, `reason_code`, `hold_until`; camera/recorder: `model`, "
          "`firmware`, `serial`, `motion`, `video_loss`, `tamper`, `disks`, `channels`, `retention_days`, "
          "image health)"),
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
    #: a field whose value picks the sentence (``"active"``: started/ended; ``"cause"``: why a camera is
    #: offline), and the sentence per value (``N_``-marked); a value not listed gets ``message``
    by: str = ""
    messages: Mapping[Any, str] = field(default_factory=dict)


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


_MESSAGES: dict[str, str] = {
    "device_online": N_("{device} is back online"),
    "device_offline": N_("{device} is not answering (offline)"),
    "command": N_("Command carried out on {device}"),
    "command_failed": N_("{device} could not carry out the command"),
    "command_rejected": N_("A command was refused (malformed, unknown device or not allowed)"),
    "export_started": N_("Footage export from {device}, channel {channel}, started"),
    "export_progress": N_("Footage export from {device}: {percent} %"),
    "export_done": N_("Evidence package {package_id} sealed"),
    "export_failed": N_("Footage export from {device} failed"),
    "power_lost": N_("Mains power lost at {site}"),
    "power_restored": N_("Mains power back at {site}"),
    "power_suspected_lost": N_("Power cut suspected at {site}: all its devices went offline together"),
    "power_suspected_restored": N_("A device at {site} is back: the suspected power cut is over"),
    "camera_offline": N_("Camera {device} is offline"),
    "reference_set": N_("Reference picture stored for {device}"),
    "network_broken": N_("Recorder {device} lost its network connection"),
    "ip_conflict": N_("Recorder {device}: another device uses its IP address"),
    "illegal_access": N_("Repeated failed logins on recorder {device}"),
    "recording_failure": N_("Recorder {device} fails to record"),
    "channel_offline": N_("Recorder {device} lost the camera on channel {channel}"),
    "channel_online": N_("Recorder {device}: the camera on channel {channel} is back"),
    "disk_full": N_("A disk of recorder {device} is full"),
    "disk_error": N_("A disk of recorder {device} reports an error"),
    "disk_missing": N_("A disk of recorder {device} is missing"),
    "retention_low": N_("Recorder {device} keeps {days} days of footage, under the {target}-day target"),
    "retention_ok": N_("Recorder {device} keeps {days} days of footage again (target {target})"),
    "relay_mismatch": N_("Light {device}: the relay did not follow the command (asked {requested}, "
                         "reads {actual})"),
    "on_battery": N_("UPS {device} runs on its battery: mains power lost"),
    "on_line": N_("UPS {device}: mains power back"),
    "low_battery": N_("UPS {device}: battery low"),
    "replace_battery": N_("UPS {device} needs a new battery"),
}
"""The sentence of each event type (``message``), for the types without one sentence per value."""

_FLAG_MESSAGES: dict[str, tuple[str, str]] = {
    "motion": (N_("Motion at {device}"), N_("Motion at {device} ended")),
    "video_loss": (N_("Video lost at {device}"), N_("Video back at {device}")),
    "tamper": (N_("Camera {device} covered or tampered with"), N_("Tampering alarm at {device} ended")),
    "line_crossing": (N_("Tripwire crossed at {device}"), N_("Tripwire alarm at {device} ended")),
    "intrusion": (N_("Intrusion into a watched area at {device}"), N_("Intrusion alarm at {device} ended")),
    "region_entrance": (N_("Someone entered a watched region at {device}"),
                        N_("Region entrance alarm at {device} ended")),
    "region_exiting": (N_("Someone left a watched region at {device}"), N_("Region exit alarm at {device} ended")),
    "scene_change": (N_("The scene changed at {device}"), N_("Scene change alarm at {device} ended")),
    "defocus": (N_("The picture of {device} lost focus"), N_("The picture of {device} is sharp again")),
    "alarm_input": (N_("Alarm input triggered at {device}"), N_("Alarm input at {device} back to normal")),
    "pir": (N_("The PIR sensor of {device} saw someone"), N_("PIR alarm at {device} ended")),
    "face": (N_("Face detected at {device}"), N_("Face alarm at {device} ended")),
    "unattended_baggage": (N_("An object was left at {device}"), N_("Left object alarm at {device} ended")),
    "object_removal": (N_("An object was taken away at {device}"), N_("Removed object alarm at {device} ended")),
    "bad_video": (N_("Abnormal video signal at {device}"), N_("Video signal at {device} normal again")),
    "video_mismatch": (N_("Video standard mismatch at {device}"), N_("Video standard at {device} matches again")),
}
"""Flag events: (the sentence when ``active`` is true, when it is false)."""

_IMAGE_MESSAGES: dict[str, tuple[str, str]] = {
    "stream_down": (N_("No picture from camera {device}"), N_("Camera {device} gives a picture again")),
    "image_covered": (N_("The lens of camera {device} is covered"),
                      N_("The lens of camera {device} is no longer covered")),
    "image_dark": (N_("The picture of camera {device} is dark by day"),
                   N_("The picture of camera {device} is bright again")),
    "image_blurry": (N_("The picture of camera {device} is blurred"),
                     N_("The picture of camera {device} is sharp again")),
    "image_frozen": (N_("The picture of camera {device} is frozen"),
                     N_("The picture of camera {device} moves again")),
    "scene_moved": (N_("Camera {device} points elsewhere"), N_("Camera {device} points the right way again")),
}
"""Image problems: (the sentence when it starts, when it clears)."""

OFFLINE_CAUSES: dict[str, str] = {
    "auth_refused": N_("Camera {device} is offline: it refused the user name or password"),
    "site_power_lost": N_("Camera {device} is offline: power cut at {site}"),
    "recorder_video_loss": N_("Camera {device} is offline: its recorder reports video loss on its channel"),
    "site_unreachable": N_("Camera {device} is offline: the whole site {site} is unreachable (host house "
                           "network or power)"),
    "camera_down": N_("Camera {device} is offline: the camera alone is down"),
}
"""``camera_offline``: the sentence per ``cause`` (the offline-cause rule's codes)."""


def event_message(type: str, fields: Mapping[str, Any]) -> str:
    """The sentence for one event, in the current language (``hub.i18n.use_language`` to choose).

    ``fields`` are the event's JSON fields (``device``, ``site`` and its data); a placeholder the event
    does not carry shows as ``{name}`` rather than failing, and an unknown type gives its code."""
    from hub.i18n import tr

    spec = EVENTS.get(type)
    if spec is None:
        return type
    params = {k: _spoken(v) for k, v in fields.items() if k not in ("type", "time", "message")}
    template = spec.messages.get(fields.get(spec.by)) if spec.by else None
    return tr(template or spec.message or spec.meaning, **params)


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
                                    source="default_rules", by="cause", messages=OFFLINE_CAUSES),
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
    for flag, (started, ended) in _FLAG_MESSAGES.items():
        ev[flag] = replace(ev[flag], message=started, by="active", messages={True: started, False: ended})
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
        for n, m, text in ((name, meaning, _IMAGE_MESSAGES[name][0]),
                           (name + "_cleared", meaning + ": no longer", _IMAGE_MESSAGES[name][1])):
            ev[n] = EventType(m, {"problem": "the image problem"},
                              {"error": "why no picture", "brightness": "0..255", "sharpness": "focus measure",
                               "changed": "fraction changed", "shift_x": "", "shift_y": "", "match": ""},
                              source="image_health", message=text)
    for name, text in _MESSAGES.items():
        if name in ev and not ev[name].message:
            ev[name] = replace(ev[name], message=text)
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
