"""Small, defensive XML helpers shared by the ONVIF driver, simulator and discovery.

Everything is looked up by *local name* and namespaces are ignored (docs/reference/protocols.md §0):
cameras disagree about prefixes and sometimes about namespaces themselves. Parsing never
resolves entities or touches the network, and every helper either returns a value, returns
``None``/a default, or raises :class:`SoapParseError` (a ``ValueError``) -- nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wstop": "http://docs.oasis-open.org/wsn/t-1",
    "wsa5": "http://www.w3.org/2005/08/addressing",
    "tns1": "http://www.onvif.org/ver10/topics",
    "ter": "http://www.onvif.org/ver10/error",
    "tnshik": "http://www.hikvision.com/2011/event/topics",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "wsd": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "dn": "http://www.onvif.org/ver10/network/wsdl",
    "wsrf-rw": "http://docs.oasis-open.org/wsrf/rw-2",
    "tse": "http://www.onvif.org/ver10/search/wsdl",
    "trp": "http://www.onvif.org/ver10/replay/wsdl",
}

MAX_XML_BYTES = 4 * 1024 * 1024


class SoapParseError(ValueError):
    """The bytes are not the XML we expected (never carries the raw payload)."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                           remove_comments=True, remove_pis=True, load_dtd=False)


def parse_xml(data: bytes | str) -> Any:
    """Parse a document and return its root element, or raise :class:`SoapParseError`."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not data or not data.strip():
        raise SoapParseError("empty document")
    if len(data) > MAX_XML_BYTES:
        raise SoapParseError(f"document too large ({len(data)} bytes)")
    try:
        root = etree.fromstring(data, _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise SoapParseError(f"not well-formed XML: {str(exc)[:120]}") from None
    if root is None:
        raise SoapParseError("no root element")
    return root


def local(el: Any) -> str:
    """Local name of an element's tag ('' for comments and other non-elements)."""
    tag = getattr(el, "tag", None)
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def children(el: Any, name: str | None = None) -> Iterator[Any]:
    if el is None:
        return
    for c in el:
        n = local(c)
        if n and (name is None or n == name):
            yield c


def child(el: Any, name: str) -> Any:
    return next(children(el, name), None)


def path(el: Any, *names: str) -> Any:
    for n in names:
        el = child(el, n)
        if el is None:
            return None
    return el


def descendants(el: Any, name: str) -> Iterator[Any]:
    if el is None:
        return
    for d in el.iter():
        if local(d) == name:
            yield d


def descendant(el: Any, name: str) -> Any:
    return next(descendants(el, name), None)


def text(el: Any, *names: str, default: str | None = None) -> str | None:
    """Stripped text of ``el/names...`` (``default`` when missing or empty)."""
    target = path(el, *names) if names else el
    if target is None or target.text is None:
        return default
    value = target.text.strip()
    return value if value else default


def body_element(root: Any) -> Any:
    """The first element inside ``Envelope/Body``, or ``None``."""
    if local(root) != "Envelope":
        return None
    return next(children(child(root, "Body")), None)


_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def parse_duration(value: str) -> float:
    """xs:duration (days, hours, minutes, seconds only) to seconds: ``PT60S`` -> 60.0."""
    m = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if not m or value.strip() in ("P", "PT"):
        raise SoapParseError(f"not a duration: {str(value)[:40]!r}")
    parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def parse_datetime(value: str) -> datetime:
    """xs:dateTime to an aware UTC datetime; accepts ``Z``, ``+00:00`` and no zone (taken as UTC)."""
    if not isinstance(value, str) or not value.strip():
        raise SoapParseError("empty dateTime")
    v = value.strip()
    if v.endswith(("Z", "z")):
        v = v[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise SoapParseError(f"not a dateTime: {value[:40]!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_datetime(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_termination(value: str, now: datetime) -> datetime:
    """A WS-BaseNotification termination time: a duration (relative) or a dateTime (absolute)."""
    value = (value or "").strip()
    if value.startswith("P"):
        return now + timedelta(seconds=parse_duration(value))
    return parse_datetime(value)


def escape(value: object) -> str:
    """Escape text for an XML element or attribute value."""
    s = str(value)
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))
