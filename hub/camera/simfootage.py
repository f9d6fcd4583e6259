"""Generated recorder footage for the simulators and the export tests.

Every frame shows its own recorder time twice: as text a person can read (``2026-11-30 19:30:05
CH01``, drawn with OpenCV) and as a row of black and white blocks along the bottom edge that a
test reads back (:func:`read_stamp`): 17 bits of seconds since midnight and 3 bits of channel,
most significant first. Blocks of 16x16 pixels survive H.264 at any sane quality, so a test can
tell which second a decoded frame came from without OCR.

:func:`encode_h264` turns such frames into an H.264 elementary stream (Annex B, SPS/PPS before
every IDR as cameras send them, no B-frames, a fixed GOP) with PyAV's libx264, one access unit at a
time, so a container writer (Hikvision PS, Dahua DAV) can wrap each frame as the vendor does.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

STAMP_BITS = 20
SECOND_BITS = 17
CHANNEL_BITS = 3


def _blocks(width: int) -> int:
    return max(4, width // STAMP_BITS)


def render_frame(when: datetime, channel: int, width: int = 320, height: int = 180) -> np.ndarray:
    """A BGR frame showing ``when`` (recorder wall clock) and ``channel``."""
    img = _second_frame(when.replace(microsecond=0), channel, width, height).copy()
    # a moving bar so consecutive frames differ (P-frames carry something)
    x = int((when.microsecond / 1e6 + when.second % 4) / 4 * width)
    cv2.rectangle(img, (x, height // 3), (min(width - 1, x + width // 10), height // 2), (200, 200, 200), -1)
    return img


@functools.lru_cache(maxsize=4)
def _second_frame(when: datetime, channel: int, width: int, height: int) -> np.ndarray:
    img = np.full((height, width, 3), (60, 90, 40), np.uint8)
    scale = width / 640
    cv2.putText(img, when.strftime("%Y-%m-%d %H:%M:%S"), (8, int(40 * scale) + 8), cv2.FONT_HERSHEY_SIMPLEX,
                1.2 * scale, (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
    cv2.putText(img, f"CH{channel:02d}", (8, int(90 * scale) + 8), cv2.FONT_HERSHEY_SIMPLEX,
                1.2 * scale, (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)
    value = ((when.hour * 3600 + when.minute * 60 + when.second) << CHANNEL_BITS) | (channel % (1 << CHANNEL_BITS))
    bw = _blocks(width)
    top = height - bw
    for i in range(STAMP_BITS):
        bit = (value >> (STAMP_BITS - 1 - i)) & 1
        img[top:height, i * bw:(i + 1) * bw] = 255 if bit else 0
    return img


def read_stamp(frame: np.ndarray) -> tuple[int, int]:
    """``(seconds since midnight, channel % 8)`` read from a decoded BGR (or gray) frame."""
    gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape
    bw = _blocks(width)
    top = height - bw
    q = max(1, bw // 4)
    value = 0
    for i in range(STAMP_BITS):
        cell = gray[top + q:height - q, i * bw + q:(i + 1) * bw - q]
        value = (value << 1) | int(float(cell.mean()) > 127)
    return value >> CHANNEL_BITS, value & ((1 << CHANNEL_BITS) - 1)


def seconds_of_day(when: datetime) -> int:
    return when.hour * 3600 + when.minute * 60 + when.second


@functools.lru_cache(maxsize=8)
def _grain(shape: tuple[int, ...], n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 24, size=shape, dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class AccessUnit:
    index: int
    """Frame number from the start of the clip (time = start + index / fps)."""
    keyframe: bool
    data: bytes
    """Annex B NAL units of one frame."""


def encode_h264(start: datetime, seconds: float, channel: int, *, fps: int = 5, gop_seconds: float = 1.0,
                width: int = 320, height: int = 180, bitrate: int | None = None,
                noise: bool = False) -> Iterator[AccessUnit]:
    """Encode ``seconds`` of frames from ``start`` on, one :class:`AccessUnit` per frame."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.framerate = Fraction(fps)
    codec.time_base = Fraction(1, fps)
    keyint = max(1, round(fps * gop_seconds))
    options = {"preset": "ultrafast", "tune": "zerolatency",
               "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0"}
    if bitrate:
        codec.bit_rate = bitrate
    codec.options = options
    total = round(seconds * fps)
    out = 0

    def units(packets: list[av.Packet]) -> Iterator[AccessUnit]:
        nonlocal out
        for packet in packets:
            yield AccessUnit(out, bool(packet.is_keyframe), bytes(packet))
            out += 1

    for i in range(total):
        when = start + timedelta(seconds=i / fps)
        yuv = cv2.cvtColor(render_frame(when, channel, width, height), cv2.COLOR_BGR2YUV_I420)
        if noise:
            grain = _grain(yuv.shape, i % 7)
            yuv[: height - _blocks(width) - 2] = cv2.add(yuv[: height - _blocks(width) - 2],
                                                         grain[: height - _blocks(width) - 2])
        frame = av.VideoFrame.from_ndarray(yuv.astype(np.uint8, copy=False), format="yuv420p")
        frame.pts = i
        yield from units(codec.encode(frame))
    yield from units(codec.encode(None))


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
    noise: bool = False
    """Grain over the picture, so the encoder needs the bit rate asked for (benchmarks)."""


Writer = Callable[[Path, int, datetime, float, VideoFormat], list[tuple[float, int]]]
"""Writes one recording file ``(path, channel, start, seconds, format)`` in a vendor's container;
returns the keyframe index ``[(seconds from start, byte offset)]``."""


class FootageStore:
    """Footage per channel: spans of recording (recorder wall clock, naive), cut into files of
    ``segment_seconds``, generated into ``cache_dir`` on first use."""

    def __init__(self, cache_dir: Path, segment_seconds: float = 60.0, fmt: VideoFormat | None = None, *,
                 writer: Writer, suffix: str) -> None:
        self.writer = writer
        self.suffix = suffix
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
              f"{f.fps}fps_{f.gop_seconds:g}g_{'a' if f.audio else 'n'}_{f.bitrate or 0}{'_grain' if f.noise else ''}"
        cached = self._files.get(key)
        if cached is not None:
            return cached
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self.cache_dir / f"{key}.{self.suffix}"
        meta = self.cache_dir / f"{key}.json"
        if path.exists() and meta.exists():
            keyframes = [tuple(k) for k in json.loads(meta.read_text())]
        else:
            keyframes = self.writer(path, channel, start, (end - start).total_seconds(), f)
            meta.write_text(json.dumps(keyframes))
        ff = FootageFile(channel, index, start, end, path, path.stat().st_size,
                         tuple((float(t), int(o)) for t, o in keyframes))
        self._files[key] = ff
        self._files[ff.name] = ff
        return ff

    def by_name(self, name: str) -> FootageFile | None:
        return self._files.get(name)

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
