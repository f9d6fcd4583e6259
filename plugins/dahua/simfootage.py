"""Recordings of the Dahua simulator: ``.dav`` files as Dahua recorders store and serve them
(docs/reference/recordings.md, Dahua), written here from the documented framing.

Every frame is one DHAV unit, little-endian:

* a 24-byte header: ``DHAV``, type (0xFD video keyframe, 0xFC other video frame, 0xF0 audio),
  subtype, channel, sub-sequence, sequence number (u32), total unit length (u32: header,
  extensions, payload and trailer), the date and time packed in a u32 (seconds in bits 0-5,
  minutes 6-11, hours 12-16, day 17-21, month 22-25, year-2000 26-31), a millisecond timestamp
  (u16, wraps), the length of the extension fields (u8) and a checksum (u8, the sum of the 23
  bytes before it);
* extension fields: on keyframes 0x82 (8 bytes: width and height as u16 at bytes 4 and 6) and
  0x81 (4 bytes: codec 2 = H.264 at byte 2, frame rate at byte 3); on audio 0x83 (4 bytes:
  channels, codec 0x0E = G.711 A-law, sample-rate index 2 = 8000 Hz);
* the payload (H.264 Annex B, or G.711 samples);
* an 8-byte trailer: ``dhav`` and the unit length again (a reader can walk backwards).

FFmpeg's ``dhav`` demuxer reads these files, so PyAV opens them with ``format="dhav"``.
"""

from __future__ import annotations

import os
import struct
from datetime import datetime, timedelta
from pathlib import Path

from hub.camera.simfootage import FootageStore, VideoFormat, alaw_tone, encode_h264

HEADER = 24
TRAILER = 8
VIDEO_KEY, VIDEO, AUDIO = 0xFD, 0xFC, 0xF0
CODEC_H264 = 0x02
AUDIO_ALAW = 0x0E
RATE_8000 = 0x02


def packed_date(t: datetime) -> int:
    return (t.second | (t.minute << 6) | (t.hour << 12) | (t.day << 17) | (t.month << 22)
            | ((t.year - 2000) << 26))


def unpack_date(v: int) -> datetime:
    return datetime(2000 + (v >> 26), (v >> 22) & 0x0F, (v >> 17) & 0x1F, (v >> 12) & 0x1F, (v >> 6) & 0x3F, v & 0x3F)


def dhav_unit(kind: int, channel: int, seq: int, when: datetime, ms: int, ext: bytes, payload: bytes) -> bytes:
    length = HEADER + len(ext) + len(payload) + TRAILER
    head = b"DHAV" + struct.pack("<BBBBIIIHB", kind, 0, channel, 0, seq, length, packed_date(when), ms & 0xFFFF,
                                 len(ext))
    head += bytes([sum(head) & 0xFF])
    return head + ext + payload + b"dhav" + struct.pack("<I", length)


def video_ext(fmt: VideoFormat) -> bytes:
    return (bytes([0x82, 0, 0, 0]) + struct.pack("<HH", fmt.width, fmt.height)
            + bytes([0x81, 0, CODEC_H264, fmt.fps]))


def write_dav_file(path: Path, channel: int, start: datetime, seconds: float, fmt: VideoFormat) -> list[
        tuple[float, int]]:
    """Write one ``.dav`` recording; returns the keyframe index."""

    index: list[tuple[float, int]] = []
    samples = 8000 // fmt.fps
    seq = 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for au in encode_h264(start, seconds, channel, fps=fmt.fps, gop_seconds=fmt.gop_seconds, width=fmt.width,
                              height=fmt.height, bitrate=fmt.bitrate, noise=fmt.noise):
            when = start + timedelta(seconds=au.index / fmt.fps)
            ms = (when.hour * 3600 + when.minute * 60 + when.second) * 1000 + when.microsecond // 1000
            if au.keyframe:
                index.append((au.index / fmt.fps, f.tell()))
            f.write(dhav_unit(VIDEO_KEY if au.keyframe else VIDEO, channel - 1, seq, when, ms,
                              video_ext(fmt) if au.keyframe else b"", au.data))
            seq += 1
            if fmt.audio:
                f.write(dhav_unit(AUDIO, channel - 1, seq, when, ms, bytes([0x83, 1, AUDIO_ALAW, RATE_8000]),
                                  alaw_tone(samples, au.index * samples)))
                seq += 1
    os.replace(tmp, path)
    return index


def dav_store(cache_dir: Path, segment_seconds: float = 60.0, fmt: VideoFormat | None = None) -> FootageStore:
    return FootageStore(cache_dir, segment_seconds, fmt, writer=write_dav_file, suffix="dav")
