"""WS-Discovery (the ONVIF way of finding cameras) and config snippets for ``anninh discover``.

A Probe for ``dn:NetworkVideoTransmitter`` goes to UDP 3702 -- the multicast group
239.255.255.250 by default, or one address given with ``--address`` (unicast; useful when
multicast does not cross the network, and what the tests use on 127.0.0.1). Every camera that
answers sends a ProbeMatch with its service address (XAddrs) and scopes
(``onvif://www.onvif.org/name/...``, ``hardware/...``, ``location/...``).

Parsing never raises: a malformed answer is skipped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from hub.api import DeviceError, DiscoveryRequest, DiscoveryResult
from hub.i18n import tr

from .soapxml import SoapParseError, body_element, children, local, parse_xml, text

MULTICAST_ADDRESS = "239.255.255.250"
WSD_PORT = 3702


@dataclass
class DiscoveredDevice:
    """One camera that answered a Probe."""

    endpoint: str
    xaddrs: list[str]
    types: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    sender: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    """``GetDeviceInformation`` fields when credentials were given."""
    info_error: str | None = None

    def scope(self, kind: str) -> str | None:
        """The value of an ``onvif://www.onvif.org/<kind>/<value>`` scope, percent-decoded."""
        prefix = f"onvif://www.onvif.org/{kind}/"
        for s in self.scopes:
            if s.lower().startswith(prefix.lower()):
                value = unquote(s[len(prefix):]).strip().strip("/")
                if value:
                    return value
        return None

    @property
    def name(self) -> str | None:
        return self.scope("name")

    @property
    def hardware(self) -> str | None:
        return self.scope("hardware")

    @property
    def location(self) -> str | None:
        loc = self.scope("location")
        return loc

    @property
    def address(self) -> tuple[str, int] | None:
        """Host and port of the first usable ``http(s)://`` XAddr."""
        for x in self.xaddrs:
            try:
                parts = urlsplit(x)
                if parts.scheme in ("http", "https") and parts.hostname:
                    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                continue
        return None


def build_probe(message_id: str | None = None) -> bytes:
    """A WS-Discovery (2005/04, as ONVIF uses) Probe for network video transmitters."""
    mid = message_id or f"uuid:{uuid.uuid4()}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
        'xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
        f"<e:Header><w:MessageID>{mid}</w:MessageID>"
        "<w:To e:mustUnderstand=\"true\">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>"
        "<w:Action e:mustUnderstand=\"true\">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action>"
        "</e:Header><e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body>"
        "</e:Envelope>").encode()


def parse_probe_matches(data: bytes, sender: str | None = None) -> list[DiscoveredDevice]:
    """The devices in a ProbeMatches message (an empty list for anything else)."""
    try:
        root = parse_xml(data)
    except SoapParseError:
        return []
    body = body_element(root)
    if body is None or local(body) != "ProbeMatches":
        return []
    out = []
    for match in children(body, "ProbeMatch"):
        endpoint = text(match, "EndpointReference", "Address") or ""
        xaddrs = [x for x in (text(match, "XAddrs") or "").split() if x.startswith(("http://", "https://"))]
        if not xaddrs:
            continue
        types = (text(match, "Types") or "").split()
        scopes = (text(match, "Scopes") or "").split()
        out.append(DiscoveredDevice(endpoint=endpoint[:200] or xaddrs[0], xaddrs=xaddrs[:8],
                                    types=types[:16], scopes=scopes[:64], sender=sender))
    return out


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.found: dict[str, DiscoveredDevice] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        for dev in parse_probe_matches(data, sender=addr[0]):
            self.found.setdefault(dev.endpoint, dev)


async def probe(address: str = MULTICAST_ADDRESS, port: int = WSD_PORT, timeout: float = 3.0,
                bind: str | None = None, repeats: int = 2) -> list[DiscoveredDevice]:
    """Send a Probe to ``address:port`` and collect ProbeMatches for ``timeout`` seconds.

    ``bind`` picks the local address (the network interface for multicast); by default a
    loopback target is probed from 127.0.0.1 and anything else from all interfaces.
    """
    target = ipaddress.ip_address(address)
    local_addr = bind or ("127.0.0.1" if target.is_loopback else "0.0.0.0")
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setblocking(False)
        if target.is_multicast:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)  # stay on this network
            if bind:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bind))
        sock.bind((local_addr, 0))
    except OSError:
        sock.close()
        raise
    transport, collector = await loop.create_datagram_endpoint(_Collector, sock=sock)
    try:
        message = build_probe()
        for i in range(max(1, repeats)):
            transport.sendto(message, (address, port))
            if i + 1 < repeats:
                await asyncio.sleep(min(0.1, timeout / 4))
        await asyncio.sleep(timeout)
    finally:
        transport.close()
    return list(collector.found.values())


# ---------------------------------------------------------------------- config snippets
def slug(text_: str) -> str:
    """ASCII id fragment from a (Vietnamese) name: ``Cổng UBND phường`` -> ``cong-ubnd-phuong``."""
    t = text_.replace("đ", "d").replace("Đ", "D")
    t = unicodedata.normalize("NFKD", t).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", t.lower()).strip("-")[:40].strip("-")


def device_id(dev: DiscoveredDevice, taken: set[str]) -> str:
    base = slug(dev.name or "")
    if not base:
        addr = dev.address
        base = slug(addr[0]) if addr else "onvif"
    base = base if base.startswith("cam") else f"cam-{base}"
    candidate, n = base, 2
    while candidate in taken or candidate in ("bridge", "site"):
        candidate, n = f"{base}-{n}", n + 1
    taken.add(candidate)
    return candidate


def snippet(devices: list[DiscoveredDevice], username: str = "admin") -> str:
    """A ``devices:`` YAML block with one ``generic_onvif`` entry per camera."""
    taken: set[str] = set()
    lines = ["devices:"]
    secret_names = []
    for dev in devices:
        addr = dev.address
        if addr is None:
            continue
        host, port = addr
        ident = device_id(dev, taken)
        secret = f"{ident}_password"
        secret_names.append(secret)
        facts = [f for f in (dev.info.get("Manufacturer"), dev.info.get("Model") or dev.hardware) if f]
        if dev.info.get("SerialNumber"):
            facts.append(f"serial {dev.info['SerialNumber']}")
        if dev.info.get("FirmwareVersion"):
            facts.append(f"firmware {dev.info['FirmwareVersion']}")
        lines.append(f"  # {dev.name or host}: {', '.join(str(f) for f in facts) or 'ONVIF device'}"
                     f" at {dev.xaddrs[0]}")
        if dev.info_error:
            lines.append(f"  # could not read device information: {_comment(dev.info_error)}")
        lines.append(f"  - id: {ident}")
        lines.append("    platform: generic_onvif")
        if dev.name:
            lines.append(f"    name: {json.dumps(dev.name, ensure_ascii=False)}")
        lines.append(f"    host: {json.dumps(host)}")
        lines.append(f"    port: {port}")
        lines.append(f"    username: {json.dumps(username, ensure_ascii=False)}")
        lines.append(f"    password: !secret {secret}")
    header = ["# ONVIF devices found by `anninh discover`. Put each camera's password in secrets.yaml",
              "# beside your config, e.g.:"]
    header += [f"#   {s}: \"the camera's password\"" for s in secret_names]
    return "\n".join(header + lines) + "\n"


def _comment(text_: str) -> str:
    return " ".join(str(text_).split())[:200]


async def discover(request: DiscoveryRequest) -> DiscoveryResult:
    """The ``anninh discover`` entry (``anninh_discovery`` hook): probe, then with credentials read
    each camera's model, serial and firmware; a YAML snippet for the config."""
    devices = await probe(request.address, request.port, request.timeout, bind=request.bind)
    if not devices:
        return DiscoveryResult(count=0, message=tr(
            "no ONVIF device answered within {seconds} s (is ONVIF enabled on the cameras? multicast blocked? "
            "try --address CAMERA_IP)", seconds=format(request.timeout, "g")))
    username, password = request.username, request.password
    if username and password:
        from .driver import gather_info

        async def fill(dev: DiscoveredDevice) -> None:
            addr = dev.address
            if addr is None:
                return
            try:
                dev.info = await gather_info(addr[0], addr[1], username, password,
                                             timeout=max(2.0, request.timeout))
            except DeviceError as exc:
                dev.info_error = str(exc)

        await asyncio.gather(*(fill(d) for d in devices))
    return DiscoveryResult(count=len(devices), snippet=snippet(devices, username or "admin"),
                           message=tr("{n} ONVIF device(s) found", n=len(devices)))
