"""What the pages show of a site or a device, as plain text in the reader's language.

One function per thing shown (:func:`device_row`, :func:`site_card`, :func:`event_line`) serves the
first rendering of a page and its live updates alike, so both always say the same. Everything here
is text (escaped by the templates, set with ``textContent`` by the browser): never HTML. Nothing here
reads a device's address, user name or password, nor the raw error of a failed poll (it may name
the device's address); an offline device shows its cause as a translated code.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hub.api.contract import event_message
from hub.i18n import N_, _, format_datetime, format_duration, format_number, language, tr, use_language
from hub.security import Access

if TYPE_CHECKING:
    from hub.core import Hub

SUMMARY_FIELDS = frozenset({"state", "on_battery", "image", "disks", "retention_days", "retention_target_days"})
"""The state fields a site's card counts (with the devices' availability and the site's power)."""

SEVERITY = ("power", "offline", "image", "disk", "ok")
"""A site's colour: its worst problem first."""

PROBLEM_TEXT = {
    "power": N_("Power lost"),
    "offline": N_("Devices offline"),
    "image": N_("Image faults"),
    "disk": N_("Recorder disk faults"),
    "ok": N_("All normal"),
}

ROLE_TEXT = {"officer": N_("officer"), "contractor": N_("contractor"), "installer": N_("installer"),
             "viewer": N_("viewer")}

KIND_TEXT = {
    "ups": N_("UPS"), "light": N_("Light"), "camera": N_("Camera"), "recorder": N_("Recorder"),
    "meter": N_("Power meter"), "device": N_("Device"),
}

CAUSE_TEXT = {
    "auth_refused": N_("refuses the hub's password"),
    "site_power_lost": N_("power cut at the site"),
    "recorder_video_loss": N_("the recorder sees no video"),
    "site_unreachable": N_("the whole site is unreachable (network or power)"),
    "camera_down": N_("the camera alone is down"),
    "auth": N_("refuses the hub's password"),
}

IMAGE_TEXT = {
    "no_signal": N_("no picture"), "covered": N_("lens covered"), "dark": N_("dark by day"),
    "blurry": N_("blurred"), "frozen": N_("frozen"), "moved": N_("points elsewhere"),
}


@dataclass
class DeviceFacts:
    id: str
    name: str
    site: str | None
    kind: str
    switchable: bool


def device_facts(hub: Hub, device_id: str) -> DeviceFacts:
    runner = hub.runners[device_id]
    cfg = runner.config
    switchable = runner.driver is not None and runner.driver.command_model is not None
    return DeviceFacts(cfg.id, cfg.name or cfg.id, cfg.site, runner.kind, switchable)


def visible_devices(hub: Hub, access: Access, site: str | None = None) -> list[DeviceFacts]:
    out = []
    for device_id in hub.runners:
        facts = device_facts(hub, device_id)
        if access.sees_site(facts.site) and (site is None or facts.site == site):
            out.append(facts)
    return out


@functools.lru_cache(maxsize=512)
def _fixed(lang: str, message: str) -> str:
    with use_language(lang):
        return _(message)


def _c(message: str) -> str:
    """``_(message)`` memoised per language: a row's fixed words, rendered thousands of times a second
    under load (gettext's lookup was half of a row's cost)."""
    return _fixed(language(), message)


def _when(hub: Hub, value: datetime | None) -> str:
    if value is None:
        return "—"
    return format_datetime(value.astimezone(hub.tz), "short")


def _ups(state: Mapping[str, Any]) -> tuple[str, str]:
    """(summary, power details)"""
    parts = []
    if state.get("battery_charge") is not None:
        parts.append(tr("battery {charge} %", charge=format_number(state["battery_charge"], 0)))
    if state.get("battery_runtime") is not None:
        parts.append(tr("{runtime} left", runtime=format_duration(float(state["battery_runtime"]))))
    if state.get("status"):
        parts.append(tr("status {status}", status=state["status"]))
    if state.get("on_battery"):
        summary = _("On battery: mains lost")
    elif state.get("on_battery") is False:
        summary = _("On mains")
    else:
        summary = "—"
    if state.get("low_battery"):
        summary += " · " + _("battery low")
    if state.get("replace_battery"):
        summary += " · " + _("replace the battery")
    return summary, ", ".join(parts) or "—"


def disk_faults(state: Mapping[str, Any]) -> list[str]:
    faults = []
    for disk in state.get("disks") or []:
        if isinstance(disk, dict) and str(disk.get("status", "ok")).lower() not in ("ok", "normal", "idle", "sleep"):
            faults.append(tr("disk {disk}: {status}", disk=disk.get("id", "?"), status=disk.get("status")))
    days, target = state.get("retention_days"), state.get("retention_target_days")
    if isinstance(days, int | float) and isinstance(target, int | float) and days < target:
        faults.append(tr("footage kept {days} of {target} days", days=format_number(days, 0),
                         target=format_number(target, 0)))
    return faults


def _recorder(state: Mapping[str, Any]) -> str:
    disks = [d for d in state.get("disks") or [] if isinstance(d, dict)]
    parts = []
    if disks:
        parts.append(tr("{n} disk(s)", n=len(disks)))
    days, target = state.get("retention_days"), state.get("retention_target_days")
    if isinstance(days, int | float):
        if isinstance(target, int | float):
            parts.append(tr("footage kept {days} of {target} days", days=format_number(days, 0),
                            target=format_number(target, 0)))
        else:
            parts.append(tr("footage kept {days} days", days=format_number(days, 0)))
    faults = disk_faults(state)
    parts += [f for f in faults if f not in parts]
    return ", ".join(parts) or "—"


def image_problems(state: Mapping[str, Any]) -> list[str]:
    problems = state.get("image")
    return [str(p) for p in problems] if isinstance(problems, list) else []


def _image(state: Mapping[str, Any]) -> str:
    problems = image_problems(state)
    if problems:
        return ", ".join(_(IMAGE_TEXT[p]) if p in IMAGE_TEXT else p for p in problems)
    if state.get("brightness") is not None:
        return _("picture good")
    return "—"


def _light(state: Mapping[str, Any]) -> str:
    on = state.get("state")
    text = _("On") if on == "ON" else _("Off") if on == "OFF" else "—"
    mode = state.get("mode")
    if mode == "auto":
        text += " · " + _("automatic")
    elif mode:
        text += " · " + _("manual")
    return text


def device_row(hub: Hub, access: Access, facts: DeviceFacts, seen: datetime | None) -> dict[str, Any]:
    """A device as its row shows it: ``cls`` (its problem), ``f`` (text per cell)."""
    store = hub.store
    state = store.state(facts.id)
    available = store.availability.get(facts.id)
    shows_state = access.sees_state(facts.kind)
    f: dict[str, str] = {
        "avail": _c(N_("online")) if available else _c(N_("offline")) if available is False else _c(N_("not yet seen")),
        "seen": _c(N_("now")) if available else _when(hub, seen),
        "cause": "—", "state": "—", "power": "—", "disks": "—", "image": "—",
    }
    if available is False:
        cause = state.get("offline_cause") or store.error_kinds.get(facts.id)
        f["cause"] = _(CAUSE_TEXT[cause]) if cause in CAUSE_TEXT else _("does not answer")
    cls = "offline" if available is False else "ok" if available else "unknown"
    if shows_state:
        if facts.kind == "ups":
            f["state"], f["power"] = _ups(state)
            if state.get("on_battery") and cls == "ok":
                cls = "power"
        elif facts.kind == "light":
            f["state"] = _light(state)
        elif facts.kind == "recorder":
            f["disks"] = _recorder(state)
            f["state"] = f["disks"]
            if disk_faults(state) and cls == "ok":
                cls = "disk"
        elif facts.kind == "camera":
            f["image"] = _image(state)
            f["state"] = f["image"]
            if image_problems(state) and cls == "ok":
                cls = "image"
        elif facts.kind == "meter" and state.get("input_voltage") is not None:
            f["state"] = tr("{volts} V", volts=format_number(state["input_voltage"], 0))
        elif state.get("status") is not None:  # another kind (a drop-in's) that reports a status
            f["state"] = str(state["status"])
    return {"id": facts.id, "cls": cls, "f": f}


def site_problem(hub: Hub, site: str, devices: Iterable[str] | None = None) -> tuple[str, dict[str, int]]:
    """The site's worst problem and its counts (cameras up/down, lights on/off, offline devices).
    ``devices``: the site's device ids, when the caller has them (else every device is looked at)."""
    store = hub.store
    counts = {"cam_up": 0, "cam_down": 0, "light_on": 0, "light_off": 0, "offline": 0, "image": 0, "disk": 0}
    power = store.site_state(site).get("power")
    ids = devices if devices is not None else [d for d, r in hub.runners.items() if r.config.site == site]
    for device_id in ids:
        runner = hub.runners[device_id]
        state = store.state(device_id)
        available = store.availability.get(device_id)
        if available is False:
            counts["offline"] += 1
        if runner.kind == "camera":
            counts["cam_up" if available else "cam_down"] += 1
            if image_problems(state):
                counts["image"] += 1
        elif runner.kind == "light":
            if state.get("state") == "ON":
                counts["light_on"] += 1
            elif state.get("state") == "OFF":
                counts["light_off"] += 1
        elif runner.kind == "recorder" and disk_faults(state):
            counts["disk"] += 1
        elif runner.kind == "ups" and state.get("on_battery"):
            power = "lost"
    worst = ("power" if power == "lost" else "offline" if counts["offline"] else "image" if counts["image"]
             else "disk" if counts["disk"] else "ok")
    return worst, counts


def site_card(hub: Hub, site: str, devices: Iterable[str] | None = None, *, lights: bool = True) -> dict[str, Any]:
    """A site's card; ``lights``: whether the reader may read the lights' state (contractors may not)."""
    worst, c = site_problem(hub, site, devices)
    f = {
        "problem": _(PROBLEM_TEXT[worst]),
        "cams": tr("cameras: {up} up, {down} down", up=c["cam_up"], down=c["cam_down"]),
        "lights": tr("lights: {on} on, {off} off", on=c["light_on"], off=c["light_off"]) if lights else "",
        "offline": tr("{n} device(s) offline", n=c["offline"]) if c["offline"] else _("every device answers"),
    }
    return {"id": site, "cls": worst, "f": f}


def site_name(hub: Hub, site: str | None) -> str:
    cfg = hub.config.site(site) if site else None
    return (cfg.name or cfg.id) if cfg is not None else (site or "—")


def event_line(hub: Hub, ev: Mapping[str, Any]) -> dict[str, str]:
    """One history or live event: time, where, and its sentence in the current language."""
    when = ev.get("time")
    if isinstance(when, datetime):
        stamp = when
    else:
        stamp = datetime.fromtimestamp(float(ev.get("ts") or 0), hub.tz)
    fields = {k: v for k, v in ev.items() if k not in ("ts", "time", "message")}
    return {"time": format_datetime(stamp.astimezone(hub.tz), "short"), "type": str(ev.get("type", "")),
            "site": site_name(hub, ev.get("site")) if ev.get("site") else "", "device": str(ev.get("device") or ""),
            "text": event_message(str(ev.get("type", "")), fields)}
