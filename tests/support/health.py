"""Helpers for the image-health tests and benchmark (also handy to try the checks by hand).

* :func:`make_clip` — pictures with known properties (normal, dark, blurred, frozen, covered,
  shifted by 10 % of the width), at day or night brightness, generated with numpy/OpenCV.
* :class:`RtspServer` — runs ``hub/camera/rtsp_server.py`` (GStreamer, system Python) on a free
  loopback port serving such clips over RTSP/TCP.
* :class:`SnapshotServer` — an aiohttp server on loopback serving the same clips as JPEG
  snapshots (``GET /NAME.jpg``), with digest-free basic auth and switchable failures.
* the ``testcam`` platform (:class:`TestCamDriver`): a camera driver that fetches its snapshot
  over real HTTP and hands out an RTSP URL, registered by tests with
  ``make_plugins(("testcam", tests.support.health))``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import SecretStr

from hub.api import AuthError, CameraConfig, DeviceError, DeviceInfo, Driver, PlatformSpec
from hub.camera.simrtsp import SYSTEM_PYTHON, close, launch
from hub.hookspecs import hookimpl
from tests.support.mosquitto import _free_port

KINDS = ("normal", "dark", "blurred", "frozen", "covered", "shifted")
free_port = _free_port


# ------------------------------------------------------------------ pictures
def make_scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A street-like test scene: sky and road, boxes, poles and wires, a sign (BGR, mean ~120)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = (110, 120, 125)
    img[int(height * 0.6):] = (90, 95, 100)
    for _ in range(25):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 30, width // 6)), int(rng.integers(height // 30, height // 5))
        cv2.rectangle(img, (x, y), (x + w, y + h), tuple(int(v) for v in rng.integers(20, 240, 3)), -1)
    for _ in range(10):
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(img, p1, p2, tuple(int(v) for v in rng.integers(0, 255, 3)), max(1, width // 300))
    cv2.putText(img, "KP3 TAM", (width // 10, height // 3), cv2.FONT_HERSHEY_SIMPLEX, width / 400,
                (250, 250, 250), max(1, width // 200))
    return img


def make_clip(kind: str, width: int = 320, height: int = 180, frames: int = 17, night: bool = False,
              seed: int = 0) -> list[np.ndarray]:
    """Frames (BGR) of a clip with one known property.

    ``normal``: the scene, a car moving across, sensor noise. ``dark``: the same at ~10 %
    light (mean luma ~11). ``blurred``: Gaussian blur of width/160 px. ``frozen``: one noisy
    frame repeated. ``covered``: a flat cloth-like surface. ``shifted``: the scene moved right by
    10 % of the width (the camera was knocked). ``night`` scales the light to 35 % with more noise
    (mean luma ~50, a lit street at night).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown clip kind {kind!r} (known: {', '.join(KINDS)})")
    rng = np.random.default_rng(seed + 1)
    base: np.ndarray = make_scene(width, height, seed).astype(np.float32)
    if kind == "blurred":
        base = cv2.GaussianBlur(base, (0, 0), width / 160)
    elif kind == "shifted":
        m = np.array([[1, 0, width * 0.1], [0, 1, 0]], dtype=np.float32)
        base = cv2.warpAffine(base, m, (width, height), borderMode=cv2.BORDER_REFLECT)
    elif kind == "covered":
        base = np.zeros((height, width, 3), np.float32)
        base[:] = (60, 70, 80)
        base += np.linspace(0, 15, width, dtype=np.float32)[None, :, None]
    gain, offset, noise = (0.35, 8.0, 4.0) if night else (1.0, 0.0, 3.0)
    if kind == "dark":
        gain, offset, noise = 0.08, 2.0, 2.0
    if kind == "covered":
        noise = 2.0
    out = []
    for i in range(frames):
        img = base.copy()
        if kind not in ("covered", "frozen"):
            x = int((i * width / frames) % width)
            cv2.rectangle(img, (x, int(height * 0.7)), (x + width // 10, int(height * 0.8)), (40, 40, 200), -1)
        img = img * gain + offset + rng.normal(0, noise, img.shape).astype(np.float32)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
        if kind == "frozen":
            return out * frames
    return out


def write_clip(folder: Path, name: str, frames: list[np.ndarray], fps: int = 15, osd: bool = True) -> None:
    """Write a clip for ``hub/camera/rtsp_server.py`` (``NAME.raw`` + ``NAME.json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    (folder / f"{name}.raw").write_bytes(b"".join(np.ascontiguousarray(f).tobytes() for f in frames))
    (folder / f"{name}.json").write_text(json.dumps({"width": w, "height": h, "fps": fps, "frames": len(frames),
                                                     "osd": osd}))


def jpeg(bgr: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


# ------------------------------------------------------------------ RTSP server (GStreamer)
class RtspServer:
    """``with RtspServer(clips_dir) as srv: srv.url("normal")`` — a real RTSP server on loopback."""

    def __init__(self, clips: Path, auth: tuple[str, str] | None = None, lifetime: float = 300.0) -> None:
        self.clips = Path(clips)
        self.auth = auth
        self.lifetime = lifetime
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None

    def url(self, name: str, credentials: bool = True) -> str:
        cred = f"{self.auth[0]}:{self.auth[1]}@" if self.auth and credentials else ""
        return f"rtsp://{cred}127.0.0.1:{self.port}/{name}"

    def start(self, timeout: float = 10.0) -> RtspServer:
        if not Path(SYSTEM_PYTHON).exists():
            raise RuntimeError("the RTSP test server needs the system Python with GStreamer bindings")
        self.proc = launch(self.port, self.clips, lifetime=self.lifetime, auth=self.auth, timeout=timeout)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            close(self.proc)
            self.proc = None

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------ snapshot server (aiohttp)
class SnapshotServer:
    """Serves ``GET /NAME.jpg``: the clip's frame for the current time, with a clock overlay
    (like a camera's OSD) when ``osd`` is on. ``fail[NAME] = "500" | "hang" | "garbage"`` makes
    that camera misbehave. Basic auth when ``auth`` is given."""

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.clips: dict[str, tuple[list[np.ndarray], bool]] = {}
        self.fail: dict[str, str] = {}
        self.auth = auth
        self.port = free_port()
        self.requests = 0
        self._runner: Any = None
        self._t0 = time.monotonic()

    def set_clip(self, name: str, frames: list[np.ndarray], osd: bool = True) -> None:
        self.clips[name] = (frames, osd)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.jpg"

    def picture(self, name: str) -> bytes:
        frames, osd = self.clips[name]
        elapsed = time.monotonic() - self._t0
        img = frames[int(elapsed * 15) % len(frames)]
        if osd:
            img = img.copy()
            cv2.putText(img, f"{elapsed:9.2f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        return jpeg(img)

    async def start(self) -> SnapshotServer:
        from aiohttp import web

        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            if self.auth:
                expected = "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
                if request.headers.get("Authorization") != expected:
                    return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="cam"'})
            name = request.match_info["name"]
            mode = self.fail.get(name)
            if mode == "500":
                return web.Response(status=500, text="encoder error")
            if mode == "hang":
                await asyncio.sleep(30)
            if mode == "garbage":
                return web.Response(body=b"\xff\xd8garbage" + os.urandom(200), content_type="image/jpeg")
            if name not in self.clips:
                return web.Response(status=404)
            body = await asyncio.to_thread(self.picture, name)
            return web.Response(body=body, content_type="image/jpeg")

        app = web.Application()
        app.router.add_get("/{name}.jpg", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# ------------------------------------------------------------------ the "testcam" platform
class TestCamConfig(CameraConfig):
    """A test camera: snapshot over HTTP, stream over RTSP (both on loopback)."""

    snapshot_url: str | None = None
    rtsp_url: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    poll_interval: float = 30.0
    timeout: float = 3.0


class TestCamDriver(Driver):
    kind = "camera"

    async def connect(self) -> DeviceInfo:
        from hub.camera.http import CameraHttp, split_url

        cfg: TestCamConfig = self.config  # type: ignore[assignment]
        self._http: CameraHttp | None = None
        if cfg.snapshot_url:  # fetched like the vendor drivers fetch theirs (CameraHttp)
            host, port, https, self._path = split_url(cfg.snapshot_url, "127.0.0.1")
            self._http = CameraHttp(host, port, https=https, username=cfg.username or "",
                                    password=cfg.password.get_secret_value() if cfg.password else "",
                                    timeout=cfg.timeout)
        return DeviceInfo(model="TestCam", serial=f"TC-{cfg.id}", firmware="1.0")

    async def poll(self) -> dict[str, Any]:
        return {"online": True}

    async def snapshot(self, channel: int | None = None) -> bytes:
        if self._http is None:
            raise DeviceError("this camera has no snapshot URL")
        try:
            r = await self._http.request("GET", self._path)
        except AuthError:
            raise AuthError("the camera refused the credentials") from None
        except DeviceError as exc:
            raise DeviceError(f"snapshot failed: {exc}") from None
        if r.status_code != 200:
            raise DeviceError(f"snapshot failed: HTTP {r.status_code}")
        return r.content

    def stream_url(self, channel: int | None = None) -> str | None:
        cfg: TestCamConfig = self.config  # type: ignore[assignment]
        if not cfg.rtsp_url:
            return None
        if cfg.username and cfg.password:
            scheme, rest = cfg.rtsp_url.split("://", 1)
            return f"{scheme}://{cfg.username}:{cfg.password.get_secret_value()}@{rest}"
        return cfg.rtsp_url

    async def close(self) -> None:
        http = getattr(self, "_http", None)
        if http is not None:
            await http.close()


@hookimpl
def anninh_platforms() -> list[PlatformSpec]:
    return [PlatformSpec(name="testcam", config_model=TestCamConfig, driver=TestCamDriver,
                         description="test camera (snapshot over HTTP, RTSP stream) for image-health tests")]


if __name__ == "__main__":  # pragma: no cover - manual use: write the clips of a folder
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "clips")
    for k in KINDS:
        write_clip(target, k, make_clip(k), osd=k != "frozen")
    print(f"wrote {len(KINDS)} clips to {target}")
