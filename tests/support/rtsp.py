"""Checking that a simulator's RTSP stream really plays: ``ffprobe`` decodes a few frames (camera
driver tests)."""

from __future__ import annotations

import json
import shutil
import subprocess

from hub.camera.simrtsp import rtsp_unavailable


def probe_unavailable() -> str | None:
    """Why a stream cannot be served and probed here (GStreamer or ffprobe missing), or ``None``."""
    return rtsp_unavailable() or (None if shutil.which("ffprobe") else "ffprobe is not installed (Debian ffmpeg)")


def probe_stream(url: str, frames: int = 5, timeout: float = 30.0) -> dict[str, object]:
    """``ffprobe`` the stream at ``url`` (RTSP over TCP), decoding ``frames`` frames: returns the
    first video stream's ``codec_name``, ``width``, ``height`` and ``nb_read_frames``. Raises
    ``RuntimeError`` with ffprobe's message when it cannot play it."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise RuntimeError("ffprobe is not installed (Debian package ffmpeg)")
    cmd = [ffprobe, "-v", "error", "-rtsp_transport", "tcp", "-analyzeduration", "1000000", "-probesize", "200000",
           "-select_streams", "v:0", "-read_intervals", f"%+#{frames}", "-count_frames",
           "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    streams = json.loads(out.stdout or "{}").get("streams") or []
    if out.returncode != 0 or not streams:
        raise RuntimeError(f"ffprobe could not play the stream: {out.stderr.strip()[-300:] or 'no video stream'}")
    info: dict[str, object] = streams[0]
    return info
