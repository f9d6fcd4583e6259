"""Download of an ONVIF Profile G recording: RTSP replay (ONVIF Streaming Specification,
"playback") read over the RTSP connection, H.264 taken out of RTP and written as MPEG-TS.

* RTSP (RFC 2326) with Digest (RFC 2617, ``qop=auth`` or none) or Basic authentication:
  ``DESCRIBE`` (``Require: onvif-replay``), ``SETUP`` of the video track with
  ``RTP/AVP/TCP;unicast;interleaved=0-1``, ``PLAY`` with ``Range: clock=<start>-<end>`` (UTC),
  ``Rate-Control: no`` (the recorder sends as fast as the connection takes, not at the pace of
  the recording) and ``Require: onvif-replay``; ``TEARDOWN`` at the end.
* RTP (RFC 3550) over the RTSP connection (``$``, channel, length); RTCP is read and only a BYE
  is used (the range is over). Each frame's recording time is the NTP time of the replay header
  extension (profile ``0xABAC``); a recorder that sends none gets the PLAY answer's
  ``Range: clock=`` start plus the RTP timestamps.
* H.264 (RFC 6184): single NAL unit packets, STAP-A and FU-A, put back into Annex B access units
  (the SDP's ``sprop-parameter-sets`` go before the first keyframe when the stream does not carry
  them).
* The access units are written unchanged into an MPEG-TS (PyAV's muxer, 90 kHz time stamps =
  recording time since the segment's start). That file is what ``original/`` holds for an ONVIF
  export: the recorder's H.264 bytes, only the RTP packetisation replaced by TS packets.

The bytes written are a function of the frames the recorder sends; a replay of the same range
sends the same frames, so a broken download is resumed by replaying again and skipping the bytes
already saved.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import secrets
import struct
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import av

from hub.api import AuthError, DeviceError

NTP_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)
REPLAY_EXTENSION = 0xABAC
MAX_HEADERS = 64 * 1024
READ_BLOCK = 256 * 1024
MAX_NAL = 8 * 1024 * 1024
"""Longest access unit accepted (a 4K keyframe is well under this)."""
TS_TIME_BASE = Fraction(1, 90_000)


@dataclass
class ReplayFrame:
    when: datetime
    """Recording time (UTC, aware)."""
    keyframe: bool
    data: bytes
    """Annex B access unit."""
    discontinuity: bool = False


def clock(t: datetime) -> str:
    """RFC 2326 ``clock`` time: ``20261130T120130.250Z``."""
    t = t.astimezone(UTC)
    return t.strftime("%Y%m%dT%H%M%S") + (f".{t.microsecond // 1000:03d}" if t.microsecond else "") + "Z"


def _parse_clock(value: str) -> datetime | None:
    m = re.match(r"\s*clock=(\d{8}T\d{6})(?:\.(\d+))?Z", value)
    if not m:
        return None
    t = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return t + timedelta(seconds=float("0." + m.group(2))) if m.group(2) else t


def _ntp(value: int) -> datetime:
    return NTP_EPOCH + timedelta(seconds=(value >> 32) + (value & 0xFFFFFFFF) / (1 << 32))


def _auth_params(value: str) -> dict[str, str]:
    return {k.lower(): v1 or v2 for k, v1, v2 in re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', value)}


class H264Depacketizer:
    """RTP payloads of one H.264 stream -> Annex B access units (RFC 6184, packetization modes 0
    and 1)."""

    def __init__(self, parameter_sets: list[bytes]) -> None:
        self.parameter_sets = parameter_sets
        self.nals: list[bytes] = []
        self.fragment: bytearray | None = None
        self.size = 0
        self.seen_parameter_sets = False

    def add(self, payload: bytes) -> None:
        if not payload:
            return
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._nal(payload)
        elif kind == 24:  # STAP-A
            i = 1
            while i + 2 <= len(payload):
                (n,) = struct.unpack_from(">H", payload, i)
                if n == 0 or i + 2 + n > len(payload):
                    break
                self._nal(payload[i + 2:i + 2 + n])
                i += 2 + n
        elif kind == 28 and len(payload) >= 2:  # FU-A
            header = payload[1]
            if header & 0x80:
                self.fragment = bytearray([(payload[0] & 0xE0) | (header & 0x1F)])
            if self.fragment is None:
                return  # the start of this NAL unit was lost
            self.fragment += payload[2:]
            if len(self.fragment) > MAX_NAL:
                raise DeviceError("replay: an H.264 NAL unit larger than 8 MB (not a video stream?)")
            if header & 0x40:
                self._nal(bytes(self.fragment))
                self.fragment = None
        # other types (STAP-B, MTAP, FU-B: interleaved mode) are not used over RTSP/TCP replay

    def _nal(self, nal: bytes) -> None:
        self.size += len(nal)
        if self.size > MAX_NAL:
            raise DeviceError("replay: an access unit larger than 8 MB (not a video stream?)")
        self.nals.append(nal)

    def take(self) -> tuple[bool, bytes] | None:
        """The access unit collected so far: ``(keyframe, Annex B bytes)``, or ``None``."""
        nals, self.nals, self.size, self.fragment = self.nals, [], 0, None
        if not nals:
            return None
        types = {n[0] & 0x1F for n in nals}
        keyframe = 5 in types
        if 7 in types:
            self.seen_parameter_sets = True
        elif keyframe and not self.seen_parameter_sets and self.parameter_sets:
            nals = self.parameter_sets + nals
        return keyframe, b"".join(b"\x00\x00\x00\x01" + n for n in nals)


class RtspReplay:
    """One replay session of ``url`` (never logged with credentials: they go in headers only)."""

    def __init__(self, url: str, username: str, password: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() != "rtsp" or not parts.hostname:
            raise DeviceError(f"GetReplayUri answered a URI that is not rtsp:// ({parts.scheme or 'none'})")
        # credentials go in the Authorization header, never in the URI (which servers may log)
        self.url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, ""))
        self.host, self.port = parts.hostname, parts.port or 554
        self.where = f"{self.host}:{self.port}"
        self.username, self._password = username, password
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.cseq = 0
        self.session: str | None = None
        self.session_timeout = 60.0
        self._challenge: dict[str, str] | None = None
        self._basic = False
        self.play_cseq = 0
        self.rtp_channel = 0
        self.payload_type: int | None = None
        self.parameter_sets: list[bytes] = []
        self.start_clock: datetime | None = None
        self.ended: str | None = None
        """How :meth:`frames` ended: ``bye`` (RTCP BYE), ``terminal`` (the T flag), ``idle`` (the
        recorder went quiet), or ``None`` (the caller stopped reading)."""

    # ------------------------------------------------------------ RTSP
    async def _connect(self) -> None:
        try:
            self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port),
                                                              self.timeout)
        except (OSError, TimeoutError) as exc:
            raise DeviceError(f"{self.where}: replay: cannot connect ({type(exc).__name__})") from None

    def _authorization(self, method: str, uri: str) -> str:
        if self._basic:
            token = base64.b64encode(f"{self.username}:{self._password}".encode()).decode()
            return f"Authorization: Basic {token}\r\n"
        c = self._challenge
        if c is None:
            return ""
        realm, nonce = c.get("realm", ""), c.get("nonce", "")
        ha1 = hashlib.md5(f"{self.username}:{realm}:{self._password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
        extra = ""
        if "auth" in (c.get("qop") or "").split(","):
            cnonce = secrets.token_hex(8)
            response = hashlib.md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()
            extra = f', qop=auth, nc=00000001, cnonce="{cnonce}"'
        else:
            response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
        opaque = f', opaque="{c["opaque"]}"' if "opaque" in c else ""
        return (f'Authorization: Digest username="{self.username}", realm="{realm}", nonce="{nonce}", '
                f'uri="{uri}", response="{response}"{extra}{opaque}\r\n')

    async def request(self, method: str, uri: str, headers: str = "") -> tuple[int, dict[str, str], bytes]:
        """Send a request (answering one 401 with the credentials); returns status, headers, body."""
        for attempt in range(2):
            self.cseq += 1
            session = f"Session: {self.session}\r\n" if self.session else ""
            msg = (f"{method} {uri} RTSP/1.0\r\nCSeq: {self.cseq}\r\nUser-Agent: AnNinh-Hub\r\n{session}"
                   f"{self._authorization(method, uri)}{headers}\r\n")
            assert self.writer is not None
            self.writer.write(msg.encode())
            status, head, body = await self._response()
            if status != 401 or attempt:
                break
            challenges = [v for k, v in head.items() if k == "www-authenticate"]
            value = challenges[0] if challenges else ""
            if value.lower().startswith("digest"):
                self._challenge = _auth_params(value[6:])
            elif value.lower().startswith("basic"):
                self._basic = True
            else:
                break
        if status == 401:
            raise AuthError(f"{self.where}: replay: the recorder refused the user name or password (RTSP 401)")
        return status, head, body

    async def _response(self) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None
        while True:
            first = await asyncio.wait_for(self.reader.readexactly(1), self.timeout)
            if first == b"$":  # interleaved data before the answer: skip it
                _, n = struct.unpack(">BH", await self.reader.readexactly(3))
                await self.reader.readexactly(n)
                continue
            raw = first + await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), self.timeout)
            if len(raw) > MAX_HEADERS:
                raise DeviceError(f"{self.where}: replay: RTSP answer too long")
            lines = raw.decode("utf-8", "replace").split("\r\n")
            m = re.match(r"RTSP/1\.\d (\d{3})", lines[0])
            if not m:
                raise DeviceError(f"{self.where}: replay: not an RTSP answer")
            head: dict[str, str] = {}
            for line in lines[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    head.setdefault(k.strip().lower(), v.strip())
            length = int(head.get("content-length", "0") or 0)  # ValueError: mapped by the caller
            if length > MAX_HEADERS:
                raise DeviceError(f"{self.where}: replay: RTSP answer too long")
            body = await asyncio.wait_for(self.reader.readexactly(length), self.timeout) if length else b""
            return int(m.group(1)), head, body

    def _keepalive(self) -> None:
        assert self.writer is not None
        self.cseq += 1
        self.writer.write(f"OPTIONS {self.url} RTSP/1.0\r\nCSeq: {self.cseq}\r\nSession: {self.session}\r\n"
                          f"{self._authorization('OPTIONS', self.url)}\r\n".encode())

    def _check(self, what: str, status: int) -> None:
        if status == 200:
            return
        if status in (403,):
            raise AuthError(f"{self.where}: replay: {what} refused (RTSP {status})")
        raise DeviceError(f"{self.where}: replay: {what} answered RTSP {status}")

    async def open(self, start: datetime, end: datetime) -> None:
        """Connect, describe, set up the video track and play ``start``..``end`` (aware)."""
        await self._connect()
        try:
            status, head, body = await self.request("DESCRIBE", self.url,
                                                    "Accept: application/sdp\r\nRequire: onvif-replay\r\n")
            self._check("DESCRIBE", status)
            base = head.get("content-base") or head.get("content-location") or self.url
            control = self._sdp(body.decode("utf-8", "replace"))
            track = control if control.lower().startswith("rtsp://") else urljoin(base.rstrip("/") + "/", control)
            status, head, _ = await self.request("SETUP", track, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
                                                 "Require: onvif-replay\r\n")
            self._check("SETUP", status)
            self.session = (head.get("session") or "").split(";")[0].strip() or None
            m = re.search(r"timeout=(\d+)", head.get("session", ""))
            if m:
                self.session_timeout = max(10.0, float(m.group(1)))
            m = re.search(r"interleaved=(\d+)", head.get("transport", ""))
            self.rtp_channel = int(m.group(1)) if m else 0
            status, head, _ = await self.request("PLAY", self.url, f"Range: clock={clock(start)}-{clock(end)}\r\n"
                                                 "Rate-Control: no\r\nRequire: onvif-replay\r\n")
            self._check("PLAY", status)
            self.play_cseq = self.cseq
            self.start_clock = _parse_clock(head.get("range", "")) or start
        except TimeoutError:  # before OSError, of which it is a subclass
            raise DeviceError(f"{self.where}: replay: no answer within {self.timeout:g} s") from None
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            raise DeviceError(f"{self.where}: replay: the recorder closed the connection ({type(exc).__name__})") \
                from None
        except (asyncio.LimitOverrunError, ValueError) as exc:
            raise DeviceError(f"{self.where}: replay: the recorder's RTSP answer is unreadable "
                              f"({type(exc).__name__})") from None

    def _sdp(self, sdp: str) -> str:
        """The video track's control URL; remembers its payload type and parameter sets."""
        control = ""
        in_video = False
        for line in sdp.splitlines():
            line = line.strip()
            if line.startswith("m="):
                if self.payload_type is not None:
                    break  # the first video track only
                in_video = line.startswith("m=video")
                if in_video:
                    parts = line.split()
                    self.payload_type = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else None
                continue
            if not in_video:
                continue
            if line.startswith("a=control:"):
                control = line[10:].strip()
            elif line.startswith("a=rtpmap:"):
                m = re.match(r"a=rtpmap:(\d+)\s+([\w.-]+)/", line)
                if m and int(m.group(1)) == self.payload_type and m.group(2).upper() != "H264":
                    raise DeviceError(f"{self.where}: replay: the recording is {m.group(2)}; only H.264 "
                                      "recordings can be exported from ONVIF devices")
            elif line.startswith("a=fmtp:"):
                m = re.search(r"sprop-parameter-sets=([A-Za-z0-9+/=,]+)", line)
                if m:
                    with contextlib.suppress(ValueError):
                        self.parameter_sets = [base64.b64decode(x) for x in m.group(1).split(",") if x]
        if self.payload_type is None:
            raise DeviceError(f"{self.where}: replay: the recording has no video track")
        return control or self.url

    # ------------------------------------------------------------ RTP
    async def frames(self, idle: float) -> AsyncGenerator[ReplayFrame, None]:
        """The access units as they arrive, until the recorder ends the range (RTCP BYE, the T
        flag) or goes quiet for ``idle`` seconds."""
        assert self.reader is not None
        depack = H264Depacketizer(self.parameter_sets)
        cur_ts: int | None = None
        first_ts: int | None = None
        cur_ntp: int | None = None
        cur_flags = 0
        terminal = False
        try:
            async with contextlib.aclosing(self._interleaved(idle)) as blocks:
                async for block in blocks:
                    for channel, packet in block:
                        if channel != self.rtp_channel:
                            if channel == self.rtp_channel + 1 and _has_bye(packet):
                                self.ended = "bye"
                                break
                            continue
                        if len(packet) < 12 or packet[0] >> 6 != 2:
                            continue
                        b0, b1, _seq, ts, _ssrc = struct.unpack_from(">BBHII", packet)
                        if self.payload_type is not None and b1 & 0x7F != self.payload_type:
                            continue
                        i = 12 + 4 * (b0 & 0x0F)
                        ntp = flags = None
                        if b0 & 0x10 and len(packet) >= i + 4:
                            profile, words = struct.unpack_from(">HH", packet, i)
                            if profile == REPLAY_EXTENSION and words >= 3 and len(packet) >= i + 16:
                                ntp, flags = struct.unpack_from(">QB", packet, i + 4)
                            i += 4 + 4 * words
                        end = len(packet) - (packet[-1] if b0 & 0x20 and packet else 0)
                        if cur_ts is not None and ts != cur_ts:
                            frame = self._frame(depack, cur_ts, first_ts, cur_ntp, cur_flags)
                            if frame is not None:
                                yield frame
                            cur_ntp, cur_flags = None, 0
                        if first_ts is None:
                            first_ts = ts
                        cur_ts = ts
                        if ntp is not None and cur_ntp is None:
                            cur_ntp, cur_flags = ntp, flags or 0
                        depack.add(packet[i:end])
                        if flags is not None and flags & 0x10:
                            terminal = True
                        if b1 & 0x80:  # marker: the access unit is complete
                            frame = self._frame(depack, cur_ts, first_ts, cur_ntp, cur_flags)
                            cur_ts, cur_ntp, cur_flags = None, None, 0
                            if frame is not None:
                                yield frame
                            if terminal:
                                self.ended = "terminal"
                                break
                    if self.ended is not None:  # BYE or the T flag
                        break
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            raise DeviceError(f"{self.where}: replay: the recorder closed the connection "
                              f"({type(exc).__name__})") from None
        except (asyncio.LimitOverrunError, ValueError) as exc:
            raise DeviceError(f"{self.where}: replay: the recorder sent something that is not RTSP/RTP "
                              f"({type(exc).__name__})") from None
        if cur_ts is not None:
            frame = self._frame(depack, cur_ts, first_ts, cur_ntp, cur_flags)
            if frame is not None:
                yield frame

    async def _interleaved(self, idle: float) -> AsyncGenerator[list[tuple[int, bytes]], None]:
        """The RTP/RTCP interleaved on the RTSP connection (RFC 2326 10.12) as ``(channel,
        packet)``, a list per block read (one await per 256 KB block, not per packet); RTSP
        messages in between (the keep-alive's answers) are skipped. Ends after ``idle`` quiet
        seconds."""
        assert self.reader is not None
        loop = asyncio.get_running_loop()
        keepalive = loop.time() + self.session_timeout / 2
        buf = b""
        while True:
            if loop.time() >= keepalive:  # a long replay: keep the RTSP session alive
                keepalive = loop.time() + self.session_timeout / 2
                self._keepalive()
            items: list[tuple[int, bytes]] = []
            pos, size = 0, len(buf)
            while size - pos >= 4:  # every complete item in the buffer
                if buf[pos] == 0x24:  # "$", channel, length
                    n = (buf[pos + 2] << 8) | buf[pos + 3]
                    if size - pos < 4 + n:
                        break
                    items.append((buf[pos + 1], buf[pos + 4:pos + 4 + n]))
                    pos += 4 + n
                    continue
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    if size - pos > MAX_HEADERS:
                        raise ValueError("an RTSP message without end")
                    break
                m = re.search(rb"(?i)content-length:\s*(\d+)", buf[pos:end])
                length = int(m.group(1)) if m else 0
                if length > MAX_HEADERS:
                    raise ValueError("an RTSP message too long")
                if size - end - 4 < length:
                    break
                pos = end + 4 + length
            if items:
                yield items
            buf = buf[pos:]
            try:
                block = await asyncio.wait_for(self.reader.read(READ_BLOCK), idle)
            except TimeoutError:
                self.ended = "idle"
                return
            if not block:
                raise ConnectionResetError("end of stream")
            buf += block

    def _frame(self, depack: H264Depacketizer, ts: int | None, first_ts: int | None, ntp: int | None,
               flags: int) -> ReplayFrame | None:
        unit = depack.take()
        if unit is None or ts is None:
            return None
        if ntp is not None:
            when = _ntp(ntp)
        else:  # no replay extension: the PLAY answer's start plus the RTP clock (90 kHz)
            assert self.start_clock is not None and first_ts is not None
            when = self.start_clock + timedelta(seconds=((ts - first_ts) & 0xFFFFFFFF) / 90_000)
        return ReplayFrame(when, unit[0], unit[1], bool(flags & 0x20))

    async def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        with contextlib.suppress(Exception):
            if self.session:
                self.cseq += 1
                writer.write(f"TEARDOWN {self.url} RTSP/1.0\r\nCSeq: {self.cseq}\r\nSession: {self.session}\r\n"
                             f"{self._authorization('TEARDOWN', self.url)}\r\n".encode())
                await asyncio.wait_for(writer.drain(), 1.0)
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


def _has_bye(packet: bytes) -> bool:
    """Whether a compound RTCP packet holds a BYE (packet type 203)."""
    i = 0
    while i + 4 <= len(packet):
        pt = packet[i + 1]
        (words,) = struct.unpack_from(">H", packet, i + 2)
        if pt == 203:
            return True
        i += 4 * (words + 1)
    return False


class TsWriter:
    """Access units -> MPEG-TS bytes (PyAV's muxer, no re-encoding), handed out as they are made."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._out: Any = av.open(self, "w", format="mpegts")
        self._stream: Any = self._out.add_stream("h264", rate=90_000)
        self._stream.time_base = TS_TIME_BASE
        self._origin: datetime | None = None
        self._last = -1

    def write(self, data: bytes) -> int:  # the file interface PyAV writes to
        self._parts.append(bytes(data))
        return len(data)

    def add(self, frame: ReplayFrame, origin: datetime) -> bytes:
        """Mux one access unit (time stamp: recording time since ``origin``); returns the bytes
        the muxer wrote meanwhile."""
        pts = round((frame.when - origin).total_seconds() * 90_000)
        if pts <= self._last:  # a recorder repeating a time: keep the order strictly increasing
            pts = self._last + 1
        self._last = pts
        packet = av.Packet(frame.data)
        packet.stream = self._stream
        packet.time_base = TS_TIME_BASE
        packet.pts = packet.dts = pts
        packet.is_keyframe = frame.keyframe
        self._out.mux(packet)
        return self._take()

    def close(self) -> bytes:
        self._out.close()
        return self._take()

    def _take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data
