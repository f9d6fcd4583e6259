"""Map ONVIF notification topics to the hub's camera events (motion, tamper, video loss).

Sources for the table: Home Assistant ``components/onvif/parsers.py`` (topic names and data item
names), captures quoted in docs/reference/protocols.md §3.5 (Hikvision ``tnshik`` vendor topics,
upper-case ``FALSE``, missing ``Z``). Unknown topics are skipped, never guessed at, except that a
topic whose last segment mentions ``Motion`` and that carries a boolean is taken as motion.

The functions here are pure and never raise on odd input: they return ``None`` (skip).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .soapxml import child, children, descendant, local, text

# normalised topic (namespace prefixes removed) -> (kind, preferred data item names)
TOPICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "RuleEngine/CellMotionDetector/Motion": ("motion", ("IsMotion",)),
    "VideoSource/MotionAlarm": ("motion", ("State",)),
    "RuleEngine/MotionRegionDetector/Motion": ("motion", ("State",)),
    "VideoAnalytics/MotionAlarm": ("motion", ("State", "IsMotion")),          # tnshik vendor topic
    "RuleEngine/FieldDetector/ObjectsInside": ("motion", ("IsInside",)),
    "VideoSource/GlobalSceneChange/ImagingService": ("tamper", ("State",)),
    "VideoSource/GlobalSceneChange/AnalyticsService": ("tamper", ("State",)),
    "VideoSource/GlobalSceneChange/RecordingService": ("tamper", ("State",)),
    "RuleEngine/TamperDetector/Tamper": ("tamper", ("IsTamper", "State")),
    "UserAlarm/VideoCover": ("tamper", ("State",)),                            # Hikvision vendor topic
    "VideoSource/SignalLoss": ("video_loss", ("State",)),
    "Device/HardwareFailure/VideoLoss": ("video_loss", ("State",)),
}

KINDS = ("motion", "tamper", "video_loss")

_TRUE = {"true", "1", "active", "on", "yes"}
_FALSE = {"false", "0", "inactive", "off", "no"}


@dataclass(frozen=True, slots=True)
class OnvifEvent:
    """One interpreted notification."""

    kind: str
    active: bool
    topic: str
    source: str | None = None
    initialized: bool = False
    """``PropertyOperation="Initialized"``: the current state sent right after subscribing."""


def normalise_topic(topic: Any) -> str:
    """``tns1:VideoAnalytics/tnshik:MotionAlarm`` -> ``VideoAnalytics/MotionAlarm``."""
    if not isinstance(topic, str):
        return ""
    segments = [s.strip().rsplit(":", 1)[-1] for s in topic.strip().split("/")]
    return "/".join(s for s in segments if s)


def parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    return None


def classify(topic: Any, data: Iterable[tuple[str, str]], source: Iterable[tuple[str, str]] = (),
             operation: str | None = None) -> OnvifEvent | None:
    """Interpret one notification, or ``None`` when it is not a motion/tamper/video-loss one."""
    norm = normalise_topic(topic)
    if not norm:
        return None
    try:
        items = [(str(n), str(v)) for n, v in data][:32]
        src = [(str(n), str(v)) for n, v in source][:32]
    except (TypeError, ValueError):
        return None
    entry = TOPICS.get(norm)
    if entry is None:
        last = norm.rsplit("/", 1)[-1]
        if "motion" not in last.lower():
            return None
        entry = ("motion", ("IsMotion", "State"))
    kind, preferred = entry
    value: bool | None = None
    for name in preferred:
        for n, v in items:
            if n == name:
                value = parse_bool(v)
                break
        if value is not None:
            break
    if value is None and items:
        value = parse_bool(items[0][1])
    if value is None:
        return None
    source_text = ",".join(v for _, v in src)[:80] or None
    return OnvifEvent(kind=kind, active=value, topic=norm, source=source_text,
                      initialized=(operation or "").strip().lower() == "initialized")


def simple_items(el: Any) -> list[tuple[str, str]]:
    """``SimpleItem Name/Value`` pairs under an lxml element (``tt:Source`` or ``tt:Data``)."""
    out: list[tuple[str, str]] = []
    for item in children(el, "SimpleItem"):
        name, value = item.get("Name"), item.get("Value")
        if name is not None and value is not None:
            out.append((name, value))
    return out


def from_notification_element(el: Any) -> OnvifEvent | None:
    """Interpret a ``wsnt:NotificationMessage`` lxml element."""
    try:
        topic = text(el, "Topic")
        message = child(el, "Message")
        inner = descendant(message, "Message") if message is not None else None
        if inner is None or inner is message:
            inner = message
        if inner is not None and local(inner) == "Message" and child(inner, "Data") is None:
            nested = child(inner, "Message")
            inner = nested if nested is not None else inner
        data = simple_items(child(inner, "Data"))
        source = simple_items(child(inner, "Source"))
        operation = inner.get("PropertyOperation") if inner is not None else None
        return classify(topic, data, source, operation)
    except (AttributeError, TypeError, ValueError):
        return None


def _zeep_items(obj: Any) -> list[tuple[str, str]]:
    items = getattr(obj, "SimpleItem", None) if obj is not None else None
    out = []
    for item in items or []:
        name, value = getattr(item, "Name", None), getattr(item, "Value", None)
        if name is not None and value is not None:
            out.append((str(name), str(value)))
    return out


def from_zeep_notification(msg: Any) -> OnvifEvent | None:
    """Interpret a NotificationMessage as zeep returns it from ``PullMessages``.

    zeep gives ``msg.Topic._value_1`` (the topic text) and ``msg.Message._value_1``, which is
    either a parsed object (``.Source.SimpleItem``, ``.Data.SimpleItem``, ``.PropertyOperation``)
    or a raw lxml element when the schema could not be applied. Both are handled.
    """
    try:
        topic_obj = getattr(msg, "Topic", None)
        topic = getattr(topic_obj, "_value_1", topic_obj)
        message = getattr(msg, "Message", None)
        inner = getattr(message, "_value_1", message)
        if inner is None:
            return None
        if isinstance(getattr(inner, "tag", None), str):  # lxml element
            data = simple_items(child(inner, "Data"))
            source = simple_items(child(inner, "Source"))
            operation = inner.get("PropertyOperation")
        else:
            data = _zeep_items(getattr(inner, "Data", None))
            source = _zeep_items(getattr(inner, "Source", None))
            operation = getattr(inner, "PropertyOperation", None)
        return classify(topic, data, source, str(operation) if operation is not None else None)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError):
        return None
