"""Recordings of the Hikvision simulator: footage files as an NVR stores them, in the vendor's
container (docs/reference/recordings.md, Hikvision).

A file is an MPEG-2 Program Stream (ISO/IEC 13818-1 §2.5) written here from the standard, not by
a library muxer, so the simulator stays an independent witness of the format:

* a 40-byte media header first, ``IMKH`` and the stream description, little-endian (Hikvision's
  PlayM4 ``MEDIA_INFO``: fourcc, version 0x0101, device id, system format 2 = MPEG-2 PS, video
  format 0x0100 = H.264, audio format 0x7111 = G.711 A-law or 0 = none, channels, bits per
  sample, sample rate, bit rate, 16 reserved bytes);
* per frame a pack header (``00 00 01 BA``, SCR in 90 kHz); before every keyframe a system header
  (``BB``) and a program stream map (``BC``: stream type 0x1B H.264 on ``E0``, 0x90 G.711 A-law on
  ``C0``) with its CRC-32/MPEG-2;
* the frame in video PES packets (``E0``) of at most 64 KB each, PTS on the first with the
  data_alignment_indicator set; G.711 audio in ``C0`` PES packets after it.

Files are generated on first use and cached on disk per (channel, start, length, format), so the
tests pay for the H.264 encoding once. An index of keyframe byte offsets lets the simulator serve
a clip of a file as recorders do (from the keyframe at or before the start).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from hub.testing.footage import encode_h264

PS_CLOCK = 90_000
MAX_PES_PAYLOAD = 65_000
IMKH_SIZE = 40


def _crc32_mpeg2(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def imkh_header(audio: bool) -> bytes:
    """The 40-byte Hikvision media header."""
    return struct.pack("<4sHHHHHBBII16x", b"IMKH", 0x0101, 0, 0x0002, 0x0100, 0x7111 if audio else 0,
                       1 if audio else 0, 16 if audio else 0, 8000 if audio else 0, 64000 if audio else 0)


def pack_header(scr: int, mux_rate: int = 20_000) -> bytes:
    """MPEG-2 pack header (14 bytes, no stuffing); ``mux_rate`` in units of 50 bytes/s."""
    b = bytearray(b"\x00\x00\x01\xba")
    b.append(0x44 | ((scr >> 27) & 0x38) | ((scr >> 28) & 0x03))
    b.append((scr >> 20) & 0xFF)
    b.append(((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03))
    b.append((scr >> 5) & 0xFF)
    b.append(((scr << 3) & 0xF8) | 0x04)  # SCR extension 0
    b.append(0x01)
    b += bytes([(mux_rate >> 14) & 0xFF, (mux_rate >> 6) & 0xFF, ((mux_rate << 2) & 0xFC) | 0x03])
    b.append(0xF8)  # reserved, stuffing length 0
    return bytes(b)


def system_header(audio: bool, rate_bound: int = 20_000) -> bytes:
    body = bytearray()
    body += bytes([0x80 | ((rate_bound >> 15) & 0x7F), (rate_bound >> 7) & 0xFF, ((rate_bound << 1) & 0xFE) | 1])
    body.append(((1 if audio else 0) << 2) | 0x00)  # audio_bound, fixed 0, CSPS 0
    body.append(0xE1)  # audio lock, video lock, marker, video_bound 1
    body.append(0x7F)  # packet rate restriction 0, reserved
    body += bytes([0xE0, 0xE0 | 0x20 | 0x00, 0x80])  # video: buffer bound scale 1, 128 KB
    if audio:
        body += bytes([0xC0, 0xC0 | 0x00, 0x20])      # audio: scale 0, 4 KB
    return b"\x00\x00\x01\xbb" + struct.pack(">H", len(body)) + bytes(body)


def program_stream_map(audio: bool) -> bytes:
    es = bytes([0x1B, 0xE0, 0, 0])
    if audio:
        es += bytes([0x90, 0xC0, 0, 0])
    body = bytes([0x80 | 0x01, 0xFF]) + struct.pack(">H", 0) + struct.pack(">H", len(es)) + es
    length = len(body) + 4
    head = b"\x00\x00\x01\xbc" + struct.pack(">H", length)
    return head + body + struct.pack(">I", _crc32_mpeg2(head + body))


def _pts_bytes(pts: int) -> bytes:
    return bytes([0x21 | ((pts >> 29) & 0x0E), (pts >> 22) & 0xFF, 0x01 | ((pts >> 14) & 0xFE),
                  (pts >> 7) & 0xFF, 0x01 | ((pts << 1) & 0xFE)])


def pes_packets(stream_id: int, payload: bytes, pts: int) -> bytes:
    """A frame as PES packets; PTS and data_alignment_indicator on the first."""
    out = bytearray()
    first = True
    for i in range(0, max(len(payload), 1), MAX_PES_PAYLOAD):
        chunk = payload[i:i + MAX_PES_PAYLOAD]
        ext = _pts_bytes(pts) if first else b""
        head = bytes([0x84 if first else 0x80, 0x80 if first else 0x00, len(ext)]) + ext
        out += b"\x00\x00\x01" + bytes([stream_id]) + struct.pack(">H", len(head) + len(chunk)) + head + chunk
        first = False
    return bytes(out)


def alaw_tone(samples: int, phase: int) -> bytes:
    """A quiet 440 Hz tone in G.711 A-law (encoded from the standard's segment table)."""
    t = (np.arange(samples) + phase) / 8000
    pcm = (np.sin(2 * np.pi * 440 * t) * 2000).astype(np.int32)
    sign = np.where(pcm >= 0, 0x80, 0x00)
    mag = np.minimum(np.abs(pcm), 32767) >> 3  # 13-bit magnitude
    seg = np.zeros_like(mag)
    for s in range(1, 8):
        seg = np.where(mag >= (32 << (s - 1)), s, seg)
    mant = np.where(seg == 0, mag >> 1, mag >> np.maximum(seg, 1)) & 0x0F
    code = (sign | (seg << 4) | mant) ^ 0x55
    return code.astype(np.uint8).tobytes()


@dataclass(frozen=True)
class FootageFile:
    channel: int
    index: int
    start: datetime  # recorder wall clock, naive
    end: datetime
    path: Path
    size: int
    keyframes: tuple[tuple[float, int], ...]  # (seconds from start, byte offset of its pack header)

    @property
    def name(self) -> str:
        return f"ch{self.channel:02d}_{self.index:017d}"


@dataclass(frozen=True)
class VideoFormat:
    width: int = 320
    height: int = 180
    fps: int = 5
    gop_seconds: float = 1.0
    audio: bool = True
    bitrate: int | None = None


def write_ps_file(path: Path, channel: int, start: datetime, seconds: float, fmt: VideoFormat) -> list[
        tuple[float, int]]:
    """Write one recording file; returns the keyframe index."""
    index: list[tuple[float, int]] = []
    pts0 = int(hashlib.sha256(f"{channel}{start}".encode()).hexdigest()[:7], 16)  # arbitrary, as on devices
    samples = 8000 // fmt.fps
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        f.write(imkh_header(fmt.audio))
        for au in encode_h264(start, seconds, channel, fps=fmt.fps, gop_seconds=fmt.gop_seconds, width=fmt.width,
                              height=fmt.height, bitrate=fmt.bitrate):
            pts = (pts0 + au.index * PS_CLOCK // fmt.fps) & ((1 << 33) - 1)
            if au.keyframe:
                index.append((au.index / fmt.fps, f.tell()))
            block = bytearray(pack_header(pts))
            if au.keyframe:
                block += system_header(fmt.audio) + program_stream_map(fmt.audio)
            block += pes_packets(0xE0, au.data, pts)
            if fmt.audio:
                block += pack_header(pts) + pes_packets(0xC0, alaw_tone(samples, au.index * samples), pts)
            f.write(block)
    os.replace(tmp, path)
    return index


class FootageStore:
    """Footage per channel: spans of recording (recorder wall clock, naive), cut into files of
    ``segment_seconds``, generated into ``cache_dir`` on first use."""

    def __init__(self, cache_dir: Path, segment_seconds: float = 60.0, fmt: VideoFormat | None = None) -> None:
        self.cache_dir = Path(cache_dir)
        self.segment_seconds = segment_seconds
        self.fmt = fmt or VideoFormat()
        self.spans: dict[int, list[tuple[datetime, datetime]]] = {}
        self._files: dict[str, FootageFile] = {}
        self._lock = threading.Lock()

    def add(self, channel: int, start: datetime, end: datetime) -> None:
        self.spans.setdefault(channel, []).append((start.replace(tzinfo=None), end.replace(tzinfo=None)))
        self.spans[channel].sort()

    def files(self, channel: int) -> list[tuple[int, datetime, datetime]]:
        """``(index, start, end)`` of every file of ``channel``, oldest first (nothing generated)."""
        out = []
        n = 0
        step = timedelta(seconds=self.segment_seconds)
        for start, end in self.spans.get(channel, []):
            t = start
            while t < end:
                out.append((n, t, min(t + step, end)))
                n += 1
                t += step
        return out

    def get(self, channel: int, index: int, start: datetime, end: datetime) -> FootageFile:
        """The file, generated if not cached yet (blocking: call it in a thread)."""
        with self._lock:
            return self._get(channel, index, start, end)

    def prepare(self) -> None:
        """Generate every file not cached yet (blocking)."""
        for channel in list(self.spans):
            for n, s, e in self.files(channel):
                self.get(channel, n, s, e)

    def _get(self, channel: int, index: int, start: datetime, end: datetime) -> FootageFile:
        f = self.fmt
        key = f"ch{channel:02d}_{start:%Y%m%dT%H%M%S}_{(end - start).total_seconds():g}s_{f.width}x{f.height}_" \
              f"{f.fps}fps_{f.gop_seconds:g}g_{'a' if f.audio else 'n'}_{f.bitrate or 0}"
        cached = self._files.get(key)
        if cached is not None:
            return cached
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{key}.ps"
        meta = self.cache_dir / f"{key}.json"
        if path.exists() and meta.exists():
            keyframes = [tuple(k) for k in json.loads(meta.read_text())]
        else:
            keyframes = write_ps_file(path, channel, start, (end - start).total_seconds(), f)
            meta.write_text(json.dumps(keyframes))
        ff = FootageFile(channel, index, start, end, path, path.stat().st_size,
                         tuple((float(t), int(o)) for t, o in keyframes))
        self._files[key] = ff
        self._files[ff.name] = ff
        return ff

    def by_name(self, name: str) -> FootageFile | None:
        return self._files.get(name)
