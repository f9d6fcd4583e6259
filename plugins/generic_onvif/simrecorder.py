"""ONVIF Profile G for the camera simulator: recordings found through the search service, a
replay URI from the replay service, and an RTSP replay server that plays them back.

Written from the ONVIF specifications, not from the hub's driver:

* Recording Search Service (search.wsdl): ``GetRecordingSummary``, ``GetRecordingInformation``,
  ``FindRecordings`` / ``GetRecordingSearchResults`` (at most ``MaxResults`` per answer, the
  ``SearchState`` ``Searching`` while more are left, ``Completed`` with the last ones),
  ``FindEvents`` / ``GetEventSearchResults`` (the ``tns1:RecordingHistory/Track/State`` events
  whose ``IsDataPresent`` says where the track has data and where it has none, with the start
  state when ``IncludeStartState`` is true), ``EndSearch``, ``GetServiceCapabilities``;
* Replay Control Service (replay.wsdl): ``GetReplayUri``, ``GetServiceCapabilities``;
* Streaming Specification, "playback": RTSP (RFC 2326) with Digest authentication, ``DESCRIBE``
  (SDP with ``a=x-onvif-track``), ``SETUP`` with RTP over the RTSP connection (``interleaved``),
  ``PLAY`` with ``Range: clock=<start>-[<end>]`` (UTC), ``Rate-Control: no`` (as fast as the
  connection takes; without it, at the recording's own pace), ``Require: onvif-replay``;
  ``TEARDOWN``. Playback starts at the clean point (keyframe) at or before the requested start.
  Every RTP packet that starts a frame carries the replay header extension (profile ``0xABAC``,
  length 3: the frame's NTP time, then the flags C = clean point, E = last packet before a gap
  or the end, D = first packet after a gap, T = terminal, the low 8 bits of the PLAY's CSeq).
  H.264 goes out as RFC 6184 packetization mode 1 (single NAL unit packets, FU-A fragments
  above 1400 bytes). After the last frame of the range an RTCP BYE (RFC 3550) goes on the
  RTCP channel.

Recordings come from :class:`hub.camera.simfootage.FootageStore` (recorder local time, the
simulator's ``CST-7`` zone, so UTC is 7 hours earlier), stored in a plain file of access units
(:func:`write_units`). One recording per channel: ``Recording_<n>``, source ``VideoSource_<n>``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import logging
import re
import secrets
import struct
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.camera.simfootage import FootageStore, VideoFormat, encode_h264
from hub.camera.simserver import parse_auth_params

log = logging.getLogger("anninh.sim.onvif.replay")

LOCAL_OFFSET = timedelta(hours=7)
"""The simulated recorder's zone (``CST-7:00:00`` in GetSystemDateAndTime): local = UTC + 7 h."""
UNIT = struct.Struct(">BII")  # keyframe flag, frame index, length of the Annex B bytes
RTP_MTU = 1400
NTP_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)
TRACK_TOKEN = "VIDEO001"
REPLAY_PREFIX = "/onvif-replay/"
MAX_REQUEST = 16 * 1024
READ_AHEAD = 50
"""Frames read from the stored recording per worker-thread call while replaying."""


# ---------------------------------------------------------------------- stored recordings
def write_units(path: Path, channel: int, start: datetime, seconds: float, fmt: VideoFormat) -> list[tuple[float, int]]:
    """One recording file: ``(keyframe, index, length)`` + Annex B bytes per frame (no audio:
    the Profile G simulator records video only)."""
    keyframes: list[tuple[float, int]] = []
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for au in encode_h264(start, seconds, channel, fps=fmt.fps, gop_seconds=fmt.gop_seconds, width=fmt.width,
                              height=fmt.height, bitrate=fmt.bitrate, noise=fmt.noise):
            if au.keyframe:
                keyframes.append((au.index / fmt.fps, f.tell()))
            f.write(UNIT.pack(int(au.keyframe), au.index, len(au.data)))
            f.write(au.data)
    tmp.replace(path)
    return keyframes


def read_units(path: Path, offset: int = 0) -> Iterator[tuple[bool, int, bytes]]:
    with path.open("rb") as f:
        f.seek(offset)
        while head := f.read(UNIT.size):
            key, index, length = UNIT.unpack(head)
            yield bool(key), index, f.read(length)


def nal_units(annexb: bytes) -> list[bytes]:
    """The NAL units of an Annex B access unit (start codes removed)."""
    out = []
    for part in re.split(b"\x00\x00\x01", annexb):
        part = part.rstrip(b"\x00")  # a 4-byte start code leaves a zero behind (NAL units never end in one)
        if part:
            out.append(part)
    return out


def utc_text(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_clock(value: str) -> datetime:
    """``20261130T120130.5Z`` (RFC 2326 ``clock`` time) -> aware UTC datetime."""
    m = re.fullmatch(r"(\d{8})T(\d{6})(?:\.(\d+))?Z", value.strip())
    if not m:
        raise ValueError(f"bad clock time {value!r}")
    t = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    if m.group(3):
        t += timedelta(seconds=float("0." + m.group(3)))
    return t


@dataclass
class Frame:
    when: datetime  # UTC, aware
    keyframe: bool
    data: bytes
    after_gap: bool = False
    before_gap: bool = False


class Recordings:
    """The footage of each channel as ONVIF recordings (UTC on the wire, local on the pictures)."""

    def __init__(self, store: FootageStore) -> None:
        self.store = store

    def channels(self) -> list[int]:
        return sorted(self.store.spans)

    @staticmethod
    def token(channel: int) -> str:
        return f"Recording_{channel}"

    def channel_of(self, token: str) -> int | None:
        m = re.fullmatch(r"Recording_(\d+)", token or "")
        if not m or int(m.group(1)) not in self.store.spans:
            return None
        return int(m.group(1))

    def spans_utc(self, channel: int) -> list[tuple[datetime, datetime]]:
        return [((a - LOCAL_OFFSET).replace(tzinfo=UTC), (b - LOCAL_OFFSET).replace(tzinfo=UTC))
                for a, b in self.store.spans.get(channel, [])]

    def frames(self, channel: int, start: datetime, end: datetime | None) -> Iterator[Frame]:
        """Frames from the keyframe at or before ``start`` (or the first after it, when
        ``start`` falls in no recording) until before ``end`` (UTC), in order (blocking I/O)."""
        fps = self.store.fmt.fps
        local_start = start.astimezone(UTC).replace(tzinfo=None) + LOCAL_OFFSET
        local_end = None if end is None else end.astimezone(UTC).replace(tzinfo=None) + LOCAL_OFFSET
        prev_end: datetime | None = None
        pending: Frame | None = None
        for n, s, e in self.store.files(channel):
            if e <= local_start or (local_end is not None and s >= local_end):
                continue
            ff = self.store.get(channel, n, s, e)
            offset = 0
            if s <= local_start:  # seek to the keyframe at or before the start
                for seconds, off in ff.keyframes:
                    if s + timedelta(seconds=seconds) <= local_start:
                        offset = off
            gap = prev_end is not None and (s - prev_end).total_seconds() > 1.0 / fps + 1e-6
            first = True
            for key, index, data in read_units(ff.path, offset):
                when = s + timedelta(seconds=index / fps)
                if local_end is not None and when >= local_end:
                    break
                if pending is not None:
                    pending.before_gap = gap and first
                    yield pending
                pending = Frame((when - LOCAL_OFFSET).replace(tzinfo=UTC), key, data, after_gap=gap and first)
                first = False
            prev_end = e
        if pending is not None:
            pending.before_gap = True
            yield pending


# ---------------------------------------------------------------------- SOAP operations
@dataclass
class Search:
    kind: str  # "recordings" or "events"
    results: list[str]
    expires: datetime
    endpoint: datetime | None = None


@dataclass
class ProfileG:
    """The search and replay services' state, owned by the :class:`OnvifSimulator`."""

    recordings: Recordings
    searches: dict[str, Search] = field(default_factory=dict)
    page_limit: int = 100
    """Most results per GetRecordingSearchResults / GetEventSearchResults answer, whatever the
    client's ``MaxResults`` (devices cap it: the client must page)."""


def recording_information(rec: Recordings, channel: int) -> str:
    spans = rec.spans_utc(channel)
    first, last = spans[0][0], spans[-1][1]
    return (f"<tt:RecordingToken>{rec.token(channel)}</tt:RecordingToken>"
            f"<tt:Source><tt:SourceId>VideoSource_{channel}</tt:SourceId><tt:Name>CH{channel:02d}</tt:Name>"
            "<tt:Location>khanh-binh</tt:Location><tt:Description>camera</tt:Description>"
            f"<tt:Address>VideoSource_{channel}</tt:Address></tt:Source>"
            f"<tt:EarliestRecording>{utc_text(first)}</tt:EarliestRecording>"
            f"<tt:LatestRecording>{utc_text(last)}</tt:LatestRecording>"
            "<tt:Content>continuous</tt:Content>"
            f"<tt:Track><tt:TrackToken>{TRACK_TOKEN}</tt:TrackToken><tt:TrackType>Video</tt:TrackType>"
            f"<tt:Description>video</tt:Description><tt:DataFrom>{utc_text(first)}</tt:DataFrom>"
            f"<tt:DataTo>{utc_text(last)}</tt:DataTo></tt:Track>"
            "<tt:RecordingStatus>Stopped</tt:RecordingStatus>")


def track_state_event(rec: Recordings, channel: int, when: datetime, present: bool, start_state: bool) -> str:
    return (f"<tt:RecordingToken>{rec.token(channel)}</tt:RecordingToken><tt:TrackToken>{TRACK_TOKEN}"
            f"</tt:TrackToken><tt:Time>{utc_text(when)}</tt:Time>"
            "<tt:Event><wsnt:Topic Dialect=\"http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet\">"
            "tns1:RecordingHistory/Track/State</wsnt:Topic><wsnt:Message>"
            f'<tt:Message UtcTime="{utc_text(when)}"><tt:Source>'
            f'<tt:SimpleItem Name="RecordingToken" Value="{rec.token(channel)}"/>'
            f'<tt:SimpleItem Name="Track" Value="{TRACK_TOKEN}"/></tt:Source><tt:Data>'
            f'<tt:SimpleItem Name="IsDataPresent" Value="{"true" if present else "false"}"/>'
            "</tt:Data></tt:Message></wsnt:Message></tt:Event>"
            f"<tt:StartStateEvent>{'true' if start_state else 'false'}</tt:StartStateEvent>")


# ---------------------------------------------------------------------- RTP (RFC 3550, 6184)
def ntp_time(t: datetime) -> int:
    d = t - NTP_EPOCH
    return ((d.days * 86400 + d.seconds) << 32) | (d.microseconds << 32) // 1_000_000


def replay_extension(t: datetime, *, clean: bool, end: bool, discontinuity: bool, terminal: bool, cseq: int) -> bytes:
    flags = (clean << 7) | (end << 6) | (discontinuity << 5) | (terminal << 4)
    return struct.pack(">HHQBBH", 0xABAC, 3, ntp_time(t), flags, cseq & 0xFF, 0)


def rtp_packets(frame: Frame, seq: int, ssrc: int, timestamp: int, cseq: int, last: bool) -> list[bytes]:
    """The RTP packets of one frame (payload type 96); the first carries the replay extension."""
    payloads: list[bytes] = []
    for nal in nal_units(frame.data):
        if len(nal) <= RTP_MTU:
            payloads.append(nal)
            continue
        header, body = nal[0], nal[1:]
        indicator = (header & 0xE0) | 28
        for i in range(0, len(body), RTP_MTU):
            s = 0x80 if i == 0 else 0
            e = 0x40 if i + RTP_MTU >= len(body) else 0
            payloads.append(bytes([indicator, s | e | (header & 0x1F)]) + body[i:i + RTP_MTU])
    out = []
    for i, payload in enumerate(payloads):
        first, final = i == 0, i == len(payloads) - 1
        ext = replay_extension(frame.when, clean=frame.keyframe and first, end=(frame.before_gap or last) and final,
                               discontinuity=frame.after_gap and first, terminal=last and final,
                               cseq=cseq) if first else b""
        b0 = 0x80 | (0x10 if ext else 0)
        b1 = (0x80 if final else 0) | 96
        out.append(struct.pack(">BBHII", b0, b1, (seq + i) & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc) + ext + payload)
    return out


def interleaved(channel: int, data: bytes) -> bytes:
    return struct.pack(">cBH", b"$", channel, len(data)) + data


# ---------------------------------------------------------------------- RTSP replay server
class ReplayServer:
    """RTSP replay of :class:`Recordings` on ``rtsp://host:port/onvif-replay/<RecordingToken>``."""

    def __init__(self, recordings: Recordings, username: str, password: str, host: str = "127.0.0.1") -> None:
        self.recordings = recordings
        self.username, self.password, self.host = username, password, host
        self.port = 0
        self.realm = "ONVIF replay"
        self.sessions = 0
        """PLAY requests served."""
        self.plays: list[dict[str, str]] = []
        """The headers of every PLAY (tests check ``Range``, ``Require``, ``Rate-Control``)."""
        self.drop_after: int | None = None
        self.drop_times = 0
        self._server: asyncio.Server | None = None
        self._nonces: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def drop_replay_after(self, nbytes: int, times: int = 1) -> None:
        """Close the next ``times`` replay connections that get that far after ``nbytes`` of RTP."""
        self.drop_after, self.drop_times = nbytes, times

    def url(self, token: str) -> str:
        return f"rtsp://{self.host}:{self.port}{REPLAY_PREFIX}{token}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    # -------------------------------------------------------------- auth (RFC 2617 Digest)
    def _authorized(self, method: str, headers: dict[str, str]) -> bool:
        value = headers.get("authorization", "")
        if not value.lower().startswith("digest "):
            return False
        p = parse_auth_params(value[7:])
        if p.get("username") != self.username or p.get("nonce") not in self._nonces:
            return False
        ha1 = hashlib.md5(f"{self.username}:{self.realm}:{self.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{p.get('uri', '')}".encode()).hexdigest()
        expected = hashlib.md5(f"{ha1}:{p['nonce']}:{ha2}".encode()).hexdigest()
        return secrets.compare_digest(expected, p.get("response", ""))

    # -------------------------------------------------------------- connection
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        state: dict[str, Any] = {"channel": None, "sender": None}
        try:
            while True:
                first = await reader.readexactly(1)
                if first == b"$":  # RTCP from the client: read and ignore
                    _, length = struct.unpack(">BH", await reader.readexactly(3))
                    await reader.readexactly(length)
                    continue
                head = first + await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_REQUEST:
                    break
                lines = head.decode("utf-8", "replace").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    break
                method, uri, _ = parts
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                if int(headers.get("content-length", "0") or 0):
                    await reader.readexactly(int(headers["content-length"]))
                if not await self._answer(method, uri, headers, writer, state):
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            sender = state.get("sender")
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(BaseException):
                    await sender
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._tasks.discard(task)

    def _reply(self, writer: asyncio.StreamWriter, cseq: str, status: str = "200 OK", extra: str = "",
               body: str = "") -> None:
        msg = f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\nServer: anninh-sim ONVIF replay\r\n{extra}"
        if body:
            msg += f"Content-Length: {len(body.encode())}\r\n"
        writer.write((msg + "\r\n" + body).encode())

    async def _answer(self, method: str, uri: str, headers: dict[str, str], writer: asyncio.StreamWriter,
                      state: dict[str, Any]) -> bool:
        cseq = headers.get("cseq", "0")
        if method == "OPTIONS":
            self._reply(writer, cseq, extra="Public: OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN\r\n")
            return True
        if not self._authorized(method, headers):
            nonce = secrets.token_hex(16)
            self._nonces.add(nonce)
            self._reply(writer, cseq, "401 Unauthorized", f'WWW-Authenticate: Digest realm="{self.realm}", '
                                                          f'nonce="{nonce}"\r\n')
            return True
        path = re.sub(r"^rtsp://[^/]+", "", uri).split("?")[0]
        if path.startswith(REPLAY_PREFIX):
            token = path[len(REPLAY_PREFIX):].split("/")[0]
            channel = self.recordings.channel_of(token)
        else:
            channel = None
        if method == "TEARDOWN":
            sender = state.get("sender")
            if sender is not None:
                sender.cancel()
            self._reply(writer, cseq, extra=f"Session: {state.get('session', '')}\r\n")
            await writer.drain()
            return False
        if channel is None:
            self._reply(writer, cseq, "404 Not Found")
            return True
        if method == "DESCRIBE":
            self._reply(writer, cseq, extra=f"Content-Type: application/sdp\r\nContent-Base: {uri.rstrip('/')}/\r\n",
                        body=await asyncio.to_thread(self._sdp, channel))
            return True
        if method == "SETUP":
            transport = headers.get("transport", "")
            m = re.search(r"interleaved=(\d+)-(\d+)", transport)
            if "TCP" not in transport.upper() or not m:
                self._reply(writer, cseq, "461 Unsupported Transport")
                return True
            state["channel"] = channel
            state["interleaved"] = int(m.group(1))
            state["session"] = secrets.token_hex(8)
            self._reply(writer, cseq, extra=f"Session: {state['session']};timeout=60\r\n"
                                            f"Transport: RTP/AVP/TCP;unicast;interleaved={m.group(1)}-{m.group(2)}"
                                            f";ssrc={secrets.token_hex(4).upper()}\r\n")
            return True
        if method == "PLAY":
            if state.get("session") is None:
                self._reply(writer, cseq, "455 Method Not Valid in This State")
                return True
            self.plays.append(dict(headers))
            rng = headers.get("range", "")
            m = re.match(r"clock=([0-9TZ.]+)-([0-9TZ.]*)", rng)
            spans = self.recordings.spans_utc(channel)
            try:
                start = parse_clock(m.group(1)) if m else spans[0][0]
                end = parse_clock(m.group(2)) if m and m.group(2) else None
            except ValueError:
                self._reply(writer, cseq, "457 Invalid Range")
                return True
            if headers.get("require", "").lower() != "onvif-replay" and not m:
                log.debug("PLAY without Require: onvif-replay: replaying from the start of the recording")
            fast = headers.get("rate-control", "yes").lower() == "no"
            frames = self.recordings.frames(channel, start, end)
            first = await asyncio.to_thread(next, frames, None)
            clock = utc_text(first.when).replace("-", "").replace(":", "") if first else m.group(1) if m else ""
            self._reply(writer, cseq, extra=f"Session: {state['session']}\r\nRange: clock={clock}-"
                                            f"{m.group(2) if m else ''}\r\nRTP-Info: url={uri};seq=0;rtptime=0\r\n")
            await writer.drain()
            self.sessions += 1
            old = state.get("sender")
            if old is not None:
                old.cancel()
            state["sender"] = asyncio.get_running_loop().create_task(
                self._send(writer, frames, first, state["interleaved"], int(cseq or 0), fast))
            return True
        self._reply(writer, cseq, "405 Method Not Allowed")
        return True

    def _sdp(self, channel: int) -> str:
        spans = self.recordings.spans_utc(channel)
        sps = pps = b""
        for frame in self.recordings.frames(channel, spans[0][0], None):
            for nal in nal_units(frame.data):
                if nal[0] & 0x1F == 7:
                    sps = nal
                elif nal[0] & 0x1F == 8:
                    pps = nal
            break
        sprop = ",".join(base64.b64encode(x).decode() for x in (sps, pps) if x)
        clock = [utc_text(t).replace("-", "").replace(":", "") for t in (spans[0][0], spans[-1][1])]
        return ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=ONVIF replay\r\nt=0 0\r\na=control:*\r\n"
                f"a=range:clock={clock[0]}-{clock[1]}\r\n"
                "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                f"a=fmtp:96 packetization-mode=1;profile-level-id=42C01E;sprop-parameter-sets={sprop}\r\n"
                f"a=control:track1\r\na=x-onvif-track:{TRACK_TOKEN}\r\na=recvonly\r\n")

    async def _send(self, writer: asyncio.StreamWriter, frames: Iterator[Frame], first: Frame | None,
                    rtp_channel: int, cseq: int, fast: bool) -> None:
        ssrc = secrets.randbits(32)
        seq = secrets.randbits(16)
        sent = 0
        drop = self.drop_after if self.drop_times > 0 else None
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        origin = first.when if first is not None else None
        ahead: deque[Frame] = deque([first] if first is not None else [])
        more = first is not None
        while ahead:
            if more and len(ahead) < 2:  # read the next frames in a worker thread, a batch at a time
                batch = await asyncio.to_thread(lambda: list(itertools.islice(frames, READ_AHEAD)))
                more = len(batch) == READ_AHEAD
                ahead.extend(batch)
            frame = ahead.popleft()
            assert origin is not None
            rtp_ts = round((frame.when - origin).total_seconds() * 90_000)
            if not fast:
                delay = (frame.when - origin).total_seconds() - (loop.time() - t0)
                if delay > 0:
                    await asyncio.sleep(delay)
            for packet in rtp_packets(frame, seq, ssrc, rtp_ts, cseq, last=not ahead):
                writer.write(interleaved(rtp_channel, packet))
                seq += 1
                sent += len(packet)
                if drop is not None and sent >= drop and self.drop_times > 0:
                    self.drop_times -= 1
                    await writer.drain()
                    writer.transport.abort()
                    return
            await writer.drain()
        # RTCP BYE (RFC 3550 6.6): the range is over
        writer.write(interleaved(rtp_channel + 1, struct.pack(">BBHI", 0x81, 203, 1, ssrc)))
        await writer.drain()


# ---------------------------------------------------------------------- the services, for OnvifSimulator
SEARCH_PATH = "/onvif/search_service"
REPLAY_PATH = "/onvif/replay_service"
SEARCH_ROUTES = {
    "GetServiceCapabilities": "_op_search_caps", "GetRecordingSummary": "_op_recording_summary",
    "GetRecordingInformation": "_op_recording_information", "FindRecordings": "_op_find_recordings",
    "GetRecordingSearchResults": "_op_recording_results", "FindEvents": "_op_find_events",
    "GetEventSearchResults": "_op_event_results", "EndSearch": "_op_end_search",
}
REPLAY_ROUTES = {"GetServiceCapabilities": "_op_replay_caps", "GetReplayUri": "_op_replay_uri"}
SEARCH_PAGE = 10
"""Results per answer when the client gives no ``MaxResults``."""


class ProfileGServices:
    """Search and replay operations, mixed into :class:`OnvifSimulator` (``recordings=``)."""

    profile_g: ProfileG | None
    replay: ReplayServer | None

    def _fault(self, subcode: str, reason: str) -> Any:  # pragma: no cover - provided by the simulator
        raise NotImplementedError

    def _search_fault(self) -> Any:
        return self._fault("ter:InvalidToken", "The search token is invalid")

    def _require_g(self) -> ProfileG:
        assert self.profile_g is not None
        return self.profile_g

    def _op_search_caps(self, op: Any) -> str:
        return ('<tse:GetServiceCapabilitiesResponse><tse:Capabilities MetadataSearch="false" '
                'GeneralStartEvents="false"/></tse:GetServiceCapabilitiesResponse>')

    def _op_replay_caps(self, op: Any) -> str:
        return ('<trp:GetServiceCapabilitiesResponse><trp:Capabilities ReversePlayback="false" '
                'SessionTimeoutRange="10 60" RTP_RTSP_TCP="true"/></trp:GetServiceCapabilitiesResponse>')

    def _op_recording_summary(self, op: Any) -> str:
        rec = self._require_g().recordings
        spans = [s for ch in rec.channels() for s in rec.spans_utc(ch)]
        first = min(a for a, _ in spans)
        last = max(b for _, b in spans)
        return ("<tse:GetRecordingSummaryResponse><tse:Summary>"
                f"<tt:DataFrom>{utc_text(first)}</tt:DataFrom><tt:DataUntil>{utc_text(last)}</tt:DataUntil>"
                f"<tt:NumberRecordings>{len(rec.channels())}</tt:NumberRecordings>"
                "</tse:Summary></tse:GetRecordingSummaryResponse>")

    def _op_recording_information(self, op: Any) -> Any:
        from .soapxml import text

        rec = self._require_g().recordings
        channel = rec.channel_of(text(op, "RecordingToken") or "")
        if channel is None:
            return self._fault("ter:InvalidArgVal", "No such recording")
        return ("<tse:GetRecordingInformationResponse><tse:RecordingInformation>"
                f"{recording_information(rec, channel)}</tse:RecordingInformation>"
                "</tse:GetRecordingInformationResponse>")

    def _new_search(self, kind: str, results: list[str], op: Any, endpoint: datetime | None = None) -> str:
        from .soapxml import parse_duration, text

        g = self._require_g()
        keep = parse_duration(text(op, "KeepAliveTime") or "PT10S")
        max_matches = text(op, "MaxMatches")
        if max_matches and max_matches.isdigit():
            results = results[:int(max_matches)]
        now = datetime.now(UTC)
        for token in [t for t, s in g.searches.items() if s.expires < now]:
            del g.searches[token]
        token = f"Search_{secrets.token_hex(4)}"
        g.searches[token] = Search(kind, results, now + timedelta(seconds=keep), endpoint)
        return token

    def _op_find_recordings(self, op: Any) -> str:
        from .soapxml import children, path, text

        rec = self._require_g().recordings
        scope = path(op, "Scope")
        wanted_sources = {text(s, "Token") for s in children(scope, "IncludedSources")}
        wanted_recordings = {(r.text or "").strip() for r in children(scope, "IncludedRecordings")}
        results = []
        for ch in rec.channels():
            if wanted_sources - {None} and f"VideoSource_{ch}" not in wanted_sources:
                continue
            if wanted_recordings and rec.token(ch) not in wanted_recordings:
                continue
            results.append(recording_information(rec, ch))
        token = self._new_search("recordings", results, op)
        return f"<tse:FindRecordingsResponse><tse:SearchToken>{token}</tse:SearchToken></tse:FindRecordingsResponse>"

    def _page(self, op: Any, kind: str, response: str, item: str) -> Any:
        """The next page of a search session, as the ``response`` element of ``ResultList``."""
        from .soapxml import text

        g = self._require_g()
        search = g.searches.get(text(op, "SearchToken") or "")
        if search is None or search.kind != kind:
            return self._search_fault()
        size = text(op, "MaxResults")
        n = min(int(size) if size and size.isdigit() and int(size) > 0 else SEARCH_PAGE, g.page_limit)
        page, search.results = search.results[:n], search.results[n:]
        search.expires = datetime.now(UTC) + timedelta(seconds=60)
        state = "Searching" if search.results else "Completed"
        return (f"<tse:{response}><tse:ResultList><tt:SearchState>{state}</tt:SearchState>"
                f"{''.join(f'<tt:{item}>{x}</tt:{item}>' for x in page)}</tse:ResultList></tse:{response}>")

    def _op_recording_results(self, op: Any) -> Any:
        return self._page(op, "recordings", "GetRecordingSearchResultsResponse", "RecordingInformation")

    def _op_find_events(self, op: Any) -> Any:
        from .soapxml import SoapParseError, children, parse_datetime, path, text

        rec = self._require_g().recordings
        try:
            start = parse_datetime(text(op, "StartPoint") or "")
            end_text = text(op, "EndPoint")
            end = parse_datetime(end_text) if end_text else None
        except SoapParseError:
            return self._fault("ter:InvalidArgVal", "Bad StartPoint or EndPoint")
        if end is not None and end < start:
            return self._fault("ter:InvalidArgVal", "Backward searches are not supported")
        with_start_state = (text(op, "IncludeStartState") or "").lower() == "true"
        scope = path(op, "Scope")
        wanted = {(r.text or "").strip() for r in children(scope, "IncludedRecordings")}
        results: list[tuple[datetime, str]] = []
        for ch in rec.channels():
            if wanted and rec.token(ch) not in wanted:
                continue
            spans = rec.spans_utc(ch)
            if with_start_state:
                present = any(a <= start < b for a, b in spans)
                results.append((start, track_state_event(rec, ch, start, present, True)))
            for a, b in spans:
                for t, present in ((a, True), (b, False)):
                    if start < t and (end is None or t <= end):
                        results.append((t, track_state_event(rec, ch, t, present, False)))
        results.sort(key=lambda r: r[0])
        token = self._new_search("events", [x for _, x in results], op, end)
        return f"<tse:FindEventsResponse><tse:SearchToken>{token}</tse:SearchToken></tse:FindEventsResponse>"

    def _op_event_results(self, op: Any) -> Any:
        return self._page(op, "events", "GetEventSearchResultsResponse", "Result")

    def _op_end_search(self, op: Any) -> Any:
        from .soapxml import text

        g = self._require_g()
        search = g.searches.pop(text(op, "SearchToken") or "", None)
        if search is None:
            return self._search_fault()
        endpoint = search.endpoint or datetime.now(UTC)
        return f"<tse:EndSearchResponse><tse:Endpoint>{utc_text(endpoint)}</tse:Endpoint></tse:EndSearchResponse>"

    def _op_replay_uri(self, op: Any) -> Any:
        from .soapxml import text

        g = self._require_g()
        token = text(op, "RecordingToken") or ""
        if g.recordings.channel_of(token) is None or self.replay is None:
            return self._fault("ter:InvalidArgVal", "No such recording")
        return f"<trp:GetReplayUriResponse><trp:Uri>{self.replay.url(token)}</trp:Uri></trp:GetReplayUriResponse>"
