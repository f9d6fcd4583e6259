"""A real RTSP stream behind a device simulator's stream URIs, where the machine has GStreamer.

The camera simulators hand out stream URIs (Hikvision ``/Streaming/Channels/101``, Dahua
``/cam/realmonitor?channel=1&subtype=0``, ONVIF ``GetStreamUri``). :class:`SimRtsp` serves those
paths with GStreamer's RTSP server (``hub/camera/rtsp_server.py``, run by the system Python, which has
the GObject bindings), so ``ffprobe`` or a video player given the URI really plays H.264: each
channel shows its own street scene (:func:`hub.camera.images.scene`) with a car driving across.

It binds 127.0.0.1 only and asks for the simulator's user name and password (RTSP Basic auth).
Every stream is 640x360 whatever resolution the simulated device claims (a 1080p x264 encode per
stream would not fit the test machines).
:func:`rtsp_unavailable` tells why it cannot run on this machine (``None`` when it can);
``scripts/test.sh`` installs the Debian packages it needs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import cv2
import numpy as np

from hub.camera.images import scene
from hub.camera.simserver import SimHttpServer
from hub.process import stop_process

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SCRIPT = Path(__file__).resolve().with_name("rtsp_server.py")
"""Shipped in the wheel beside this module: ``anninh simulate`` serves streams from an installed hub."""
_PROBE = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
          "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
          "missing = [e for e in ('appsrc', 'videoconvert', 'x264enc', 'h264parse', 'rtph264pay') "
          "if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))")


@functools.cache
def rtsp_unavailable() -> str | None:
    """Why the GStreamer RTSP server cannot run here, or ``None`` when it can (checked once)."""
    if not RTSP_SCRIPT.is_file():
        return f"{RTSP_SCRIPT} is missing (it ships with the hub package; reinstall it)"
    if not Path(SYSTEM_PYTHON).exists():
        return f"no {SYSTEM_PYTHON} (the GStreamer RTSP server runs under the system Python)"
    try:
        out = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {SYSTEM_PYTHON}: {exc}"
    if out.returncode != 0:
        return ("GStreamer's RTSP server is not installed (Debian: python3-gi gir1.2-gst-rtsp-server-1.0 "
                "gstreamer1.0-plugins-{base,good,ugly,bad}; scripts/test.sh installs them): "
                + (out.stderr.strip().splitlines() or ["?"])[-1])
    if out.stdout.strip():
        return f"GStreamer elements missing: {out.stdout.strip()} (Debian gstreamer1.0-plugins-ugly/bad)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clip(channel: int, width: int, height: int, frames: int) -> bytes:
    base = scene(channel, width, height, stamp="")
    out = []
    for i in range(frames):
        img = base.copy()
        x = int(i * width / frames)
        y = int(height * 0.78)
        cv2.rectangle(img, (x, y), (x + width // 8, y + height // 12), (30, 30, 190), -1)  # a car crossing
        out.append(np.ascontiguousarray(img).tobytes())
    return b"".join(out)


def launch(port: int, clips: str | Path, *, lifetime: float, auth: tuple[str, str] | None = None,
           mounts: list[str] | None = None, timeout: float = 15.0) -> subprocess.Popen[str]:
    """Start :data:`RTSP_SCRIPT` on ``port`` serving the clips in ``clips`` (``NAME.raw`` +
    ``NAME.json``), each ``PATH=NAME`` of ``mounts`` also on its path; return once it said READY
    and its port accepts connections. Raises ``RuntimeError`` (the process stopped) otherwise."""
    cmd = [SYSTEM_PYTHON, str(RTSP_SCRIPT), "--port", str(port), "--clips", str(clips), "--lifetime", str(lifetime)]
    for mount in mounts or ():
        cmd += ["--mount", mount]
    if auth is not None:
        cmd += ["--auth", f"{auth[0]}:{auth[1]}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        err = proc.stderr.read() if proc.stderr else ""
        close(proc)
        raise RuntimeError(f"the RTSP server did not start: {line.strip()!r} {err[-800:]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.02)
    close(proc)
    raise RuntimeError("the RTSP server did not open its port")


def close(proc: subprocess.Popen[str]) -> None:
    """Stop a server :func:`launch` started and close its pipes."""
    stop_process(proc)
    for f in (proc.stdout, proc.stderr):
        if f is not None:
            f.close()


class SimRtsp:
    """``paths`` maps an RTSP path (``/Streaming/Channels/101``) to the channel whose scene it shows."""

    def __init__(self, paths: dict[str, int], username: str | None = None, password: str | None = None, *,
                 width: int = 640, height: int = 360, fps: int = 10, frames: int = 10,
                 lifetime: float = 24 * 3600.0) -> None:
        self.paths = dict(paths)
        self.username = username
        self.password = password
        self.width, self.height, self.fps, self.frames = width, height, fps, frames
        self.lifetime = lifetime
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self._dir: str | None = None

    def url(self, path: str, credentials: bool = False) -> str:
        cred = f"{self.username}:{self.password}@" if credentials and self.username else ""
        return f"rtsp://{cred}127.0.0.1:{self.port}{path}"

    def _start(self, timeout: float) -> None:
        why = rtsp_unavailable()
        if why is not None:
            raise RuntimeError(f"no RTSP stream: {why}")
        self._dir = tempfile.mkdtemp(prefix="anninh-simrtsp-")
        for ch in sorted(set(self.paths.values())):
            name = f"ch{ch}"
            Path(self._dir, f"{name}.raw").write_bytes(_clip(ch, self.width, self.height, self.frames))
            Path(self._dir, f"{name}.json").write_text(json.dumps(
                {"width": self.width, "height": self.height, "fps": self.fps, "frames": self.frames, "osd": False}))
        self.port = _free_port()
        mounts = [f"{path}=ch{ch}" for path, ch in self.paths.items()]
        auth = None if self.username is None else (self.username, self.password or "")
        try:
            self.proc = launch(self.port, self._dir, lifetime=self.lifetime, auth=auth, mounts=mounts, timeout=timeout)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)  # the server read the clips before it said READY
            self._dir = None

    def _stop(self) -> None:
        if self.proc is not None:
            close(self.proc)
            self.proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def start(self, timeout: float = 15.0) -> SimRtsp:
        await asyncio.to_thread(self._start, timeout)
        return self

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop)


class RtspServing:
    """Mixin for a device simulator that serves its stream URIs over RTSP when ``rtsp`` is true:
    the simulator lists its paths in :meth:`rtsp_paths`, calls :meth:`start_rtsp` once it listens
    and :meth:`stop_rtsp` when it stops; ``rtsp_port`` becomes the served port."""

    rtsp: bool
    rtsp_port: int
    username: str
    password: str
    _rtsp_server: SimRtsp | None = None

    def rtsp_paths(self) -> dict[str, int]:
        """RTSP path -> the channel whose picture it shows."""
        raise NotImplementedError

    async def start_rtsp(self) -> None:
        if self.rtsp and self._rtsp_server is None:
            server = SimRtsp(self.rtsp_paths(), self.username, self.password)
            await server.start()
            self._rtsp_server = server
            self.rtsp_port = server.port

    async def stop_rtsp(self) -> None:
        if self._rtsp_server is not None:
            await self._rtsp_server.stop()
            self._rtsp_server = None


class RtspHttpSimulator(RtspServing, SimHttpServer):
    """An HTTP device simulator that also serves its streams over RTSP (``rtsp=True``):
    :meth:`prepare` runs first (what a recorder has before anyone asks, e.g. its footage), then
    the HTTP server listens, then the RTSP server starts; a failure there stops the HTTP server."""

    async def prepare(self) -> None:
        return None

    async def start(self) -> Self:
        await self.prepare()
        await super().start()
        try:
            await self.start_rtsp()
        except BaseException:
            await super().stop()
            raise
        return self

    async def stop(self) -> None:
        await super().stop()
        await self.stop_rtsp()
