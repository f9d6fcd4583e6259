"""Image-health benchmark: checks per second against bare PyAV decode, measured in the same run.

    python bench/bench_health.py [--seconds 4] [--skip-latency]

1. Per frame at 1920x1080 and 640x360: bare PyAV decode of the keyframes of an H.264 clip (the
   floor), the same decode plus the checks (from stream), and JPEG snapshot decode plus checks.
   Ratio = (checks time) / (bare decode time); the target is at most 1.0 (the checks add at most
   the decode time again).
2. CPU for 500 cameras every 10 minutes: 500/600 checks per second times the measured CPU per
   snapshot check, as a percentage of one core (target < 10 %).
3. Event-loop latency (p50/p99 of a 1 ms timer, a stand-in for handling an MQTT command) with and
   without checks running continuously in the worker pool, threads and processes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
import cv2

from hub.health.checks import analyse
from hub.health.pool import HealthPool
from hub.health.sources import check_snapshot, frame_to_gray
from hub.health.testing import jpeg, make_clip


def encode_clip(path: Path, w: int, h: int, frames: int = 30) -> None:
    clip = make_clip("normal", w, h, frames=frames)
    out = av.open(str(path), "w")
    s = out.add_stream("libx264", rate=15, options={"preset": "ultrafast", "g": "1", "tune": "zerolatency"})
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    for img in clip:
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
    out.close()


def per_frame(path: Path, with_checks: bool, seconds: float) -> float:
    """Seconds per keyframe: demux + decode (+ luma + checks), single thread."""
    n, t0 = 0, time.perf_counter()
    previous = None
    while time.perf_counter() - t0 < seconds:
        with av.open(str(path)) as c:
            st = c.streams.video[0]
            st.thread_type = "NONE"
            for packet in c.demux(st):
                if not packet.size or not packet.is_keyframe:
                    continue
                for frame in packet.decode():
                    if with_checks:
                        stats = analyse(frame_to_gray(frame), previous)
                        previous = stats.compare
                    n += 1
    return (time.perf_counter() - t0) / n


def per_snapshot(data: bytes, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    previous = None
    while time.perf_counter() - t0 < seconds:
        previous = check_snapshot(data, previous).compare
        n += 1
    return (time.perf_counter() - t0) / n


def cpu_per_snapshot(data: bytes, n: int = 200) -> float:
    t0 = time.process_time()
    for _ in range(n):
        check_snapshot(data)
    return (time.process_time() - t0) / n


async def loop_latency(pool: HealthPool | None, data: bytes, seconds: float) -> tuple[float, float]:
    stop = False

    async def load() -> None:
        while not stop:
            await pool.run(check_snapshot, data)  # type: ignore[union-attr]

    workers = [asyncio.create_task(load()) for _ in range(pool.workers * 2)] if pool else []
    lat = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        lat.append(time.perf_counter() - t - 0.001)
    stop = True
    for w in workers:
        await w
    lat.sort()
    return statistics.median(lat) * 1000, lat[int(len(lat) * 0.99)] * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    print(f"OpenCV {cv2.__version__}, PyAV {av.__version__}, one thread per measurement")
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in ((1920, 1080), (640, 360)):
            path = Path(tmp) / f"clip{w}.mp4"
            encode_clip(path, w, h)
            bare = per_frame(path, False, args.seconds)
            checked = per_frame(path, True, args.seconds)
            snap = jpeg(make_clip("normal", w, h, frames=1)[0])
            s = per_snapshot(snap, args.seconds)
            print(f"{w}x{h}: bare keyframe decode {bare * 1000:.2f} ms | decode+checks {checked * 1000:.2f} ms "
                  f"(checks add {(checked - bare) / bare:.2f}x the decode; {1 / checked:.0f} checks/s/core "
                  f"from stream) | snapshot decode+checks {s * 1000:.2f} ms ({1 / s:.0f} checks/s/core, "
                  f"{s / bare:.2f}x bare decode)")
        snap = jpeg(make_clip("normal", 1920, 1080, frames=1)[0])
        cpu = cpu_per_snapshot(snap)
        share = 500 / 600 * cpu * 100
        print(f"500 cameras / 10 min (1080p snapshots): {cpu * 1000:.2f} ms CPU per check -> {share:.2f} % of one "
              f"core (target < 10 %)")
        if not args.skip_latency:
            small = jpeg(make_clip("normal", 1920, 1080, frames=1)[0])
            base = asyncio.run(loop_latency(None, small, args.seconds))
            print(f"loop latency, idle:            p50 {base[0]:.3f} ms  p99 {base[1]:.3f} ms")
            for mode in ("thread", "process"):
                pool = HealthPool(2, mode)  # type: ignore[arg-type]
                lat = asyncio.run(loop_latency(pool, small, args.seconds))
                pool.close()
                print(f"loop latency, {mode} pool busy: p50 {lat[0]:.3f} ms  p99 {lat[1]:.3f} ms "
                      f"(p99 ratio {lat[1] / max(base[1], 1e-6):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
