"""Where pictures come from, and the jobs the worker pool runs.

Two sources, chosen per camera with ``health_source``:

``snapshot`` (the default)
    The camera driver's :meth:`hub.api.Driver.snapshot` returns one JPEG (fetched on the event
    loop, it is only network I/O); :func:`check_snapshot` decodes it in a worker, straight to grey
    and at reduced scale for big pictures (libjpeg's DCT scaling), and measures it. Cheapest on a
    host house's weak wifi: one picture of 100–400 kB per check.
``stream``
    :func:`check_stream` opens the RTSP URL with PyAV over TCP, with short connect and read
    timeouts, skips every packet that is not a keyframe *before* decoding it, decodes the first
    keyframe, reads its luma (Y) plane directly, and closes the connection. A stream that ends
    (the server closed it) before a picture arrived is a failure like a timeout: PyAV ends the
    packet iterator without an exception in that case.

Both raise :class:`hub.api.DeviceError` (:class:`hub.api.AuthError` for a refused password) with a
message that never contains the URL: PyAV puts the URL, credentials included, into its exception
text, so only the error's ``strerror`` is kept.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hub.api import AuthError, DeviceError

from .checks import WORK_WIDTH, FrameStats, analyse, limited_to_full, work_picture

JPEG_QUALITY = 85
PICTURE_WIDTH = 960
"""Pictures kept for people (latest frame, references from streams) are at most this wide."""

_YUV_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21",
                          "yuv411p", "yuv440p", "yuvj440p"})


# ------------------------------------------------------------------ files
def write_atomic(path: str | Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ JPEG
def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, or ``None`` if there is none."""
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if length < 2:
            return None
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            return (width, height) if width and height else None
        i += 2 + length
    return None


def decode_jpeg_gray(data: bytes) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode a JPEG to grey, at 1/2 or 1/4 scale when it is at least 2x or 4x :data:`WORK_WIDTH`
    wide (the checks reduce it to that width anyway). Returns the picture and the JPEG's full
    (width, height). Raises :class:`DeviceError` on anything that is not a decodable JPEG."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < 4 or bytes(data[:2]) != b"\xff\xd8":
        raise DeviceError("the snapshot is not a JPEG picture")
    size = jpeg_size(bytes(data[:65536]))
    flag = cv2.IMREAD_GRAYSCALE
    if size is not None:
        if size[0] >= 4 * WORK_WIDTH:
            flag = cv2.IMREAD_REDUCED_GRAYSCALE_4
        elif size[0] >= 2 * WORK_WIDTH:
            flag = cv2.IMREAD_REDUCED_GRAYSCALE_2
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None or img.ndim != 2 or min(img.shape) < 16:
        raise DeviceError("the snapshot could not be decoded as a picture")
    return img, size or (img.shape[1], img.shape[0])


def encode_picture(bgr: np.ndarray) -> bytes:
    """A JPEG of a colour picture, reduced to at most :data:`PICTURE_WIDTH` wide."""
    h, w = bgr.shape[:2]
    if w > PICTURE_WIDTH:
        bgr = cv2.resize(bgr, (PICTURE_WIDTH, max(1, round(h * PICTURE_WIDTH / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise DeviceError("could not encode the picture")
    return buf.tobytes()


def keep_latest(path: str, picture: bytes, when: str | None) -> None:
    """Store the latest picture (``NAME.latest.jpg``) and its time (``NAME.latest.json``)."""
    write_atomic(path, picture)
    write_atomic(Path(path).with_suffix(".json"), json.dumps({"time": when}).encode())


def check_snapshot(jpeg: bytes, previous: np.ndarray | None = None, reference: np.ndarray | None = None,
                   latest_path: str | None = None, want_picture: bool = False,
                   latest_time: str | None = None) -> FrameStats:
    """Worker job: decode and measure one JPEG snapshot; optionally keep it as the latest frame."""
    gray, (width, height) = decode_jpeg_gray(jpeg)
    stats = analyse(gray, previous, reference)
    if latest_path:
        keep_latest(latest_path, bytes(jpeg), latest_time)
    return _with(stats, width=width, height=height, picture=bytes(jpeg) if want_picture else None)


def _with(stats: FrameStats, **changes: Any) -> FrameStats:
    from dataclasses import replace

    return replace(stats, **changes)


# ------------------------------------------------------------------ RTSP / video
def _av_reason(exc: BaseException) -> str:
    """The reason of a PyAV error without its filename (which is the URL, with credentials)."""
    reason = getattr(exc, "strerror", None)
    return str(reason) if reason else type(exc).__name__


def frame_to_gray(frame: Any) -> np.ndarray:
    """Full-range grey picture (reduced to :data:`WORK_WIDTH`) from a PyAV video frame.

    For YUV frames the luma plane is read in place (no colour conversion); limited-range luma is
    stretched to full range so brightness means the same for streams and JPEG snapshots."""
    name = frame.format.name
    if name in _YUV_FORMATS:
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]
        small = work_picture(y)
        full = name.startswith("yuvj") or int(getattr(frame, "color_range", 0) or 0) == 2
        return np.ascontiguousarray(small) if full else limited_to_full(small)
    return work_picture(frame.to_ndarray(format="gray"))


def open_stream(url: str, connect_timeout: float = 5.0, read_timeout: float = 3.0) -> Any:
    """Open a stream with PyAV: RTSP over TCP, short probing, the given timeouts."""
    import av

    options = {"timeout": str(int(read_timeout * 1_000_000)), "analyzeduration": "500000",
               "probesize": "65536"}
    if url.startswith(("rtsp://", "rtsps://")):
        options["rtsp_transport"] = "tcp"
    try:
        return av.open(url, options=options, timeout=(connect_timeout, read_timeout))
    except av.error.HTTPUnauthorizedError:
        raise AuthError("the RTSP server refused the credentials") from None
    except av.error.HTTPForbiddenError:
        raise AuthError("the RTSP server refused access (403)") from None
    except (av.FFmpegError, OSError) as exc:
        raise DeviceError(f"cannot open the stream: {_av_reason(exc)}") from None


def grab_keyframe(url: str, connect_timeout: float = 5.0, read_timeout: float = 3.0,
                  frame_timeout: float = 8.0, want_picture: bool = False) -> tuple[np.ndarray, tuple[int, int],
                                                                                   bytes | None]:
    """Connect, decode the first keyframe, disconnect. Returns (grey work picture, (width, height),
    JPEG or ``None``). Only keyframe packets are decoded; the rest are dropped unread."""
    import av

    start = time.monotonic()
    container = open_stream(url, connect_timeout, read_timeout)
    try:
        if not container.streams.video:
            raise DeviceError("the stream has no video")
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if time.monotonic() - start > frame_timeout:
                raise DeviceError(f"no picture within {frame_timeout:g} s")
            if not packet.size or not packet.is_keyframe:
                continue
            for frame in packet.decode():
                gray = frame_to_gray(frame)
                picture = None
                if want_picture:
                    w, h = frame.width, frame.height
                    if w > PICTURE_WIDTH:
                        w, h = PICTURE_WIDTH, max(2, round(h * PICTURE_WIDTH / w) // 2 * 2)
                    picture = encode_picture(frame.reformat(width=w, height=h, format="bgr24").to_ndarray())
                return gray, (frame.width, frame.height), picture
        raise DeviceError("the stream ended before a picture arrived")
    except av.FFmpegError as exc:
        raise DeviceError(f"the stream failed: {_av_reason(exc)}") from None
    finally:
        container.close()


def check_stream(url: str, previous: np.ndarray | None = None, reference: np.ndarray | None = None,
                 latest_path: str | None = None, want_picture: bool = False, connect_timeout: float = 5.0,
                 read_timeout: float = 3.0, frame_timeout: float = 8.0, latest_time: str | None = None) -> FrameStats:
    """Worker job: one keyframe from a stream, measured; optionally kept as the latest frame."""
    gray, (width, height), picture = grab_keyframe(url, connect_timeout, read_timeout, frame_timeout,
                                                   want_picture=want_picture or bool(latest_path))
    stats = analyse(gray, previous, reference)
    if latest_path and picture is not None:
        keep_latest(latest_path, picture, latest_time)
    return _with(stats, width=width, height=height, picture=picture if want_picture else None)
