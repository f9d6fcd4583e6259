"""Parse vendor XML by local name: namespaces (Hikvision ships at least six, some documents
redeclare one mid-way, some have none) are stripped, so ``find(root, "hddList", "hdd")`` works on
every firmware.

Garbage never escapes as anything but :class:`hub.api.DeviceError`: documents with a DTD or
entity declarations are refused (no entity expansion), size is capped, a bare ``&`` (seen on real
firmware) is escaped before parsing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime

from hub.api import DeviceError

MAX_XML = 2 * 1024 * 1024
_BARE_AMP = re.compile(rb"&(?!(?:[A-Za-z][A-Za-z0-9]{0,15}|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)")


def local(tag: str) -> str:
    """``{http://www.isapi.org/ver20/XMLSchema}model`` → ``model``; ``a:b`` → ``b``."""
    if tag[:1] == "{":
        return tag.rsplit("}", 1)[-1]
    return tag.rsplit(":", 1)[-1]


def parse(data: bytes | str, what: str = "XML") -> ET.Element:
    """Parse and strip namespaces from every tag. Raises DeviceError on anything odd."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if len(data) > MAX_XML:
        raise DeviceError(f"{what}: document too large ({len(data)} bytes)")
    head = data[:4096]
    if b"<!DOCTYPE" in head or b"<!ENTITY" in data:
        raise DeviceError(f"{what}: documents with a DTD are not accepted")
    data = _BARE_AMP.sub(b"&amp;", data.strip())
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DeviceError(f"{what}: not well-formed XML ({exc})") from None
    except (ValueError, RecursionError) as exc:
        raise DeviceError(f"{what}: cannot be parsed ({type(exc).__name__})") from None
    for el in root.iter():
        if isinstance(el.tag, str):
            el.tag = local(el.tag)
        if el.attrib:
            el.attrib = {local(k): v for k, v in el.attrib.items()}
    return root


def find(el: ET.Element | None, *path: str) -> ET.Element | None:
    """Follow child local names; ``None`` when any step is missing."""
    for name in path:
        if el is None:
            return None
        el = el.find(name)
    return el


def findall(el: ET.Element | None, *path: str) -> list[ET.Element]:
    """All elements at the path (the last step may match many)."""
    if el is None or not path:
        return []
    parent = find(el, *path[:-1]) if len(path) > 1 else el
    return [] if parent is None else parent.findall(path[-1])


def iter_named(el: ET.Element | None, name: str) -> Iterator[ET.Element]:
    """Every descendant with this local name, at any depth."""
    if el is None:
        return iter(())
    return el.iter(name)


def text(el: ET.Element | None, *path: str, default: str | None = None) -> str | None:
    """Stripped text at the path (``default`` when missing or empty)."""
    node = find(el, *path) if path else el
    if node is None or node.text is None:
        return default
    value = node.text.strip()
    return value if value else default


def deep_text(el: ET.Element | None, name: str, default: str | None = None) -> str | None:
    """Text of the first descendant with this local name, at any depth."""
    for node in iter_named(el, name):
        if node.text and node.text.strip():
            return node.text.strip()
    return default


def as_int(value: str | None, default: int | None = None) -> int | None:
    if value is None:
        return default
    try:
        return int(float(value.strip()))
    except (ValueError, OverflowError):
        return default


def as_bool(value: str | None, default: bool | None = None) -> bool | None:
    if value is None:
        return default
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on", "connect", "online"):
        return True
    if v in ("false", "0", "no", "off", "offline", "disconnect"):
        return False
    return default


_DT_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?\s*(Z|[+-]\d{2}:?\d{2})?$")


def parse_datetime(value: str | None) -> datetime | None:
    """ISO-ish device times: with ``Z``, an offset, or none (naive); ``None`` when malformed."""
    if not value:
        return None
    m = _DT_RE.match(value.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, tz = m.groups()
    try:
        base = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
    except ValueError:
        return None
    if not tz:
        return base
    if tz == "Z":
        tz = "+00:00"
    tz = tz if ":" in tz else f"{tz[:3]}:{tz[3:]}"
    try:
        return datetime.fromisoformat(base.isoformat() + tz)
    except ValueError:
        return None
