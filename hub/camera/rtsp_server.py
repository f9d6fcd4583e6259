"""A real RTSP server for the camera simulators (:mod:`hub.camera.simrtsp`, ``anninh simulate``) and
the image-health tests, built on GStreamer's gst-rtsp-server. It ships in the package because
``anninh simulate`` runs it from an installed hub; it imports nothing from the hub.

Run it with the *system* Python, which has the GObject bindings (Debian packages
``gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-{base,good,ugly,bad} gstreamer1.0-libav python3-gi``)::

    /usr/bin/python3 .../hub/camera/rtsp_server.py --port 8554 --clips DIR [--auth user:pass] [--lifetime 120]
                                              [--mount /Streaming/Channels/101=NAME ...]

``DIR`` holds clips written by the test: ``NAME.raw`` (frames of packed BGR24, one after another) and
``NAME.json`` (``{"width": W, "height": H, "fps": F, "frames": N, "osd": true}``; ``osd`` adds
a wall-clock overlay, as cameras have). Each clip is served, looping, on
``rtsp://127.0.0.1:PORT/NAME`` as H.264 (x264, one keyframe per second). The frame shown depends on
the wall time since the server started, as with a live camera: two clients a second apart see
different frames of a moving clip, and the same frame of a still ("frozen") clip. ``--mount
PATH=NAME`` (repeatable) also serves clip ``NAME`` on ``PATH``, e.g. a camera's own stream paths
for the device simulators; a query string in the client's URL (``?channel=1&subtype=0``) is not
part of the path GStreamer matches.

It binds 127.0.0.1 only, prints ``READY <port>`` on stdout once it listens, and exits after
``--lifetime`` seconds, on SIGTERM, or when its parent process is gone. No numpy here: the system
Python may not have it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

T0 = time.monotonic()


class Clip:
    def __init__(self, folder: str, name: str) -> None:
        with open(os.path.join(folder, name + ".json")) as f:
            meta = json.load(f)
        self.width = int(meta["width"])
        self.height = int(meta["height"])
        self.fps = int(meta.get("fps", 15))
        self.osd = bool(meta.get("osd", False))
        with open(os.path.join(folder, name + ".raw"), "rb") as f:
            data = f.read()
        size = self.width * self.height * 3
        self.frames = [data[i:i + size] for i in range(0, len(data) - size + 1, size)]
        if not self.frames:
            raise SystemExit(f"clip {name}: no frames")


class ClipFactory(GstRtspServer.RTSPMediaFactory):
    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.clip = clip
        c = clip
        self.set_launch(
            f"( appsrc name=src is-live=true format=time do-timestamp=false "
            f"caps=video/x-raw,format=BGR,width={c.width},height={c.height},framerate={c.fps}/1 "
            f"! videoconvert ! video/x-raw,format=I420 "
            + ('! clockoverlay time-format="%H:%M:%S" font-desc="Sans 10" ' if c.osd else "") +
            f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={c.fps} bframes=0 "
            f"! video/x-h264,profile=baseline ! h264parse "
            f"! rtph264pay name=pay0 pt=96 config-interval=1 )")
        self.set_shared(False)
        self.connect("media-configure", self._configure)

    def _configure(self, factory: object, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_by_name_recurse_up("src")
        clip = self.clip
        state = {"n": 0, "start": int((time.monotonic() - T0) * clip.fps)}
        duration = Gst.SECOND // clip.fps

        def need_data(appsrc: Gst.Element, length: int) -> None:
            index = (state["start"] + state["n"]) % len(clip.frames)
            buf = Gst.Buffer.new_wrapped(clip.frames[index])
            buf.pts = state["n"] * duration
            buf.duration = duration
            state["n"] += 1
            appsrc.emit("push-buffer", buf)

        src.connect("need-data", need_data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clips", required=True, help="folder of NAME.raw + NAME.json clips")
    ap.add_argument("--auth", default=None, help="user:pass for basic authentication")
    ap.add_argument("--lifetime", type=float, default=300.0, help="exit after this many seconds")
    ap.add_argument("--mount", action="append", default=[], metavar="PATH=NAME",
                    help="also serve clip NAME on PATH (repeatable)")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    names = sorted(f[:-5] for f in os.listdir(args.clips) if f.endswith(".json"))
    clips = {name: Clip(args.clips, name) for name in names}
    paths = [("/" + name, name) for name in names]
    for item in args.mount:
        path, _, name = item.partition("=")
        if name not in clips or not path.startswith("/"):
            print(f"bad --mount {item!r}: want /PATH=NAME with a clip NAME", file=sys.stderr)
            return 2
        paths.append((path, name))
    for path, name in paths:
        factory = ClipFactory(clips[name])
        if args.auth:
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_permission_for_role("user", "media.factory.access", True)
            permissions.add_permission_for_role("user", "media.factory.construct", True)
            factory.set_permissions(permissions)
        mounts.add_factory(path, factory)
    if args.auth:
        user, _, password = args.auth.partition(":")
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
    if server.attach(None) == 0:
        print("could not listen", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.timeout_add(int(args.lifetime * 1000), loop.quit)
    parent = os.getppid()
    # a parent killed without cleaning up (SIGKILL, SIGTERM to a CLI) must not leave this server behind
    GLib.timeout_add(500, lambda: (loop.quit() or False) if os.getppid() != parent else True)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, lambda *a: loop.quit() or False)
    print(f"READY {args.port} {' '.join(names)}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
