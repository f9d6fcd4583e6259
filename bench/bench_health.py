"""Image-health benchmark: checks per second against bare PyAV decode, measured in the same run.

    python bench/bench_health.py [--seconds 3] [--commands 600] [--skip-latency] [--pool thread|process|both]

1. Per frame at 1920x1080 and 640x360: bare PyAV decode of the keyframes of an H.264 clip (the
   floor), the same decode plus the checks (from stream), and JPEG snapshot decode plus checks.
   Ratio = (checks time) / (bare decode time); the target is at most 1.0 (the checks add at most
   the decode time again). Three encodings of the same clip: what IP cameras send (H.264 main
   profile with CABAC, and baseline profile with CAVLC, both with the deblocking filter, which no
   camera encoder turns off), and the cheapest H.264 there is to decode (x264 ultrafast: CAVLC and
   no deblocking, what the test RTSP server sends), the hardest floor to stay under.
   Bare and checked decodes alternate in short rounds and the median round is reported, so a
   neighbour's load on this shared machine hits both alike.
2. CPU for 500 cameras every 10 minutes: 500/600 checks per second times the measured CPU per
   snapshot check, as a percentage of one core (target < 10 %).
3. MQTT command latency with checks off and on: a real hub (``hub_from_yaml``, in its own
   process) with a light on the Modbus relay simulator and 20 test cameras serving 1080p JPEG
   snapshots (a separate process, pre-encoded pictures), behind a real Mosquitto. An officer's
   client (TCP_NODELAY, like the hub's) sends ``/set`` at random 5–25 ms gaps and times each until
   the light's new state is published; p50/p99 over ``--commands`` commands with checks off
   (``health_interval: 0``), at the realistic rate (0.8 checks/s = 500 cameras every 10 minutes)
   and at a stress rate (20 checks/s), for the thread and the process pool. The levels run in
   interleaved rounds (``--rounds``); the spread of the per-round p99 shows this machine's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av
import cv2

from plugins.image_health.checks import analyse
from plugins.image_health.sources import check_snapshot, frame_to_gray
from tests.support.health import jpeg, make_clip

ENCODINGS = (("camera, main profile (CABAC, deblocking)", {"preset": "veryfast", "profile": "main", "g": "1"}),
             ("camera, baseline profile (CAVLC, deblocking)", {"preset": "veryfast", "profile": "baseline", "g": "1"}),
             ("no camera: x264 ultrafast (CAVLC, no deblocking)",
              {"preset": "ultrafast", "g": "1", "tune": "zerolatency"}))
"""Every frame a keyframe, so each decoded frame is one the checks would take."""


def encode_clip(path: Path, w: int, h: int, frames: int = 30, options: dict[str, str] | None = None) -> None:
    clip = make_clip("normal", w, h, frames=frames)
    out = av.open(str(path), "w")
    s = out.add_stream("libx264", rate=15, options=options or dict(ENCODINGS[-1][1]))
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


def interleaved(path: Path, snapshot: bytes, seconds: float, rounds: int = 9) -> tuple[float, float, float]:
    """Median seconds per frame of bare decode, decode + checks, snapshot decode + checks, over
    ``rounds`` rounds that alternate the three."""
    bare, checked, snap = [], [], []
    for _ in range(rounds):
        bare.append(per_frame(path, False, seconds / rounds))
        checked.append(per_frame(path, True, seconds / rounds))
        snap.append(per_snapshot(snapshot, seconds / rounds))
    return tuple(sorted(v)[len(v) // 2] for v in (bare, checked, snap))  # type: ignore[return-value]


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


# ---------------------------------------------------------------- 3. MQTT command latency
CAMERAS = 20
LEVELS = (("checks off", 0.0), ("realistic, 0.8 checks/s", 500 / 600), ("stress, 20 checks/s", 20.0))


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (the process pool's workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _camera_server(port: int, served: Any, stop: Any) -> None:
    """Process: 20 cameras' snapshots (``GET /NAME.jpg``), 1080p JPEGs encoded once up front, so
    the cameras' side costs next to nothing and the hub's checks are what is measured."""
    from aiohttp import web

    frames = [jpeg(f) for f in make_clip("normal", 1920, 1080, frames=6)]

    async def main() -> None:
        async def handle(request: web.Request) -> web.Response:
            with served.get_lock():
                served.value += 1
                n = served.value
            return web.Response(body=frames[n % len(frames)], content_type="image/jpeg")

        app = web.Application()
        app.router.add_get("/{name}.jpg", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await runner.cleanup()

    asyncio.run(main())


def _hub_process(yaml_text: str, folder: str, ready: Any, stop: Any, cv_threads: int | None,
                 nice: int | None, errors: Any, gc_freeze: bool = False) -> None:
    """Process: one hub (``hub_from_yaml``) with the built-in plugins and the ``testcam`` platform.
    ``errors`` counts the hub's error log lines (a failed check must not pass for a fast one)."""
    import logging

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            with errors.get_lock():
                errors.value += 1

    import plugins.image_health.pool

    if nice is not None:
        plugins.image_health.pool.WORKER_NICE = nice

    if cv_threads is not None:
        cv2.setNumThreads(cv_threads)

    import tests.support.health as testcam
    from tests.support.hubrun import hub_from_yaml, make_plugins

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().addHandler(Count(logging.ERROR))

    async def main() -> None:
        async with hub_from_yaml(yaml_text, Path(folder), plugins=make_plugins(("testcam", testcam))):
            if gc_freeze:  # what the proposed core change would do once the hub has started
                import gc

                gc.collect()
                gc.freeze()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)

    asyncio.run(main())


def _hub_yaml(mq_port: int, relay_port: int, cam_port: int, rate: float, pool: str) -> str:
    interval = CAMERAS / rate if rate > 0 else 0
    lines = ["hub: {name: bench, data_dir: ./data}",
             f'mqtt: {{server: "mqtt://127.0.0.1:{mq_port}", discovery: false}}',
             "sites: [{id: s1}]",
             "devices:",
             f"  - {{id: light-1, platform: lighting, site: s1, driver: modbus_coil, host: 127.0.0.1, "
             f"port: {relay_port}, unit: 1, channel: 0, poll_interval: 5}}"]
    for i in range(CAMERAS):
        lines.append(f"  - {{id: cam-{i}, platform: testcam, site: s1, health_interval: {interval:g}, "
                     f'snapshot_url: "http://127.0.0.1:{cam_port}/cam-{i}.jpg"}}')
    lines += ["rules:", f"  image_health: {{pool: {pool}, blackspot_interval: 0}}"]
    return "\n".join(lines) + "\n"


async def _commands(mq_port: int, relay: Any, n: int, seed: int, warmup: int = 20) -> list[float]:
    """``n`` light commands at random 5–25 ms gaps; seconds from publish to the state message.
    The first ``warmup`` are not counted (first use of the command path)."""
    import random

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from hub.mqtt import _no_delay

    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-officer-{seed}")
    client.on_socket_open = _no_delay  # like the hub's own client: no 40 ms Nagle/delayed-ACK stalls

    def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
        loop.call_soon_threadsafe(inbox.put_nowait, (bytes(m.payload), time.perf_counter()))

    client.on_message = on_message
    client.connect("127.0.0.1", mq_port)
    client.loop_start()
    client.subscribe([("anninh/light-1", 1)])
    await asyncio.sleep(0.5)
    rng = random.Random(seed)
    out = []
    state = "ON" if relay.relay(1, 0) else "OFF"
    try:
        for _ in range(warmup + n):
            await asyncio.sleep(rng.uniform(0.005, 0.025))
            state = "ON" if state == "OFF" else "OFF"
            want = f'"state":"{state}"'.encode()
            t0 = time.perf_counter()
            client.publish("anninh/light-1/set/bench", f'{{"state":"{state}"}}', qos=1)
            while True:
                payload, t1 = await asyncio.wait_for(inbox.get(), 10)
                if want in payload:
                    break
            out.append(t1 - t0)
            if relay.relay(1, 0) != (state == "ON"):
                raise RuntimeError("the relay did not follow the command")
    finally:
        client.loop_stop()
        client.disconnect()
    return out[warmup:]


async def _one_level(mq_port: int, rate: float, pool: str, commands: int, folder: Path, seed: int,
                     cv_threads: int | None = None, nice: int | None = None,
                     gc_freeze: bool = False) -> dict[str, Any]:
    import multiprocessing as mp

    from plugins.lighting.simulator import RelayBoardSimulator
    from tests.support.health import free_port

    ctx = mp.get_context("spawn")
    relay = await RelayBoardSimulator({1: "waveshare"}).start()
    served, cam_stop = ctx.Value("q", 0), ctx.Event()
    cam_port = free_port()
    cams = ctx.Process(target=_camera_server, args=(cam_port, served, cam_stop), daemon=True)
    cams.start()
    ready, stop, errors = ctx.Event(), ctx.Event(), ctx.Value("q", 0)
    # not daemonic: a daemonic process may not start the process pool's workers
    hub = ctx.Process(target=_hub_process, args=(_hub_yaml(mq_port, relay.port, cam_port, rate, pool), str(folder),
                                                 ready, stop, cv_threads, nice, errors, gc_freeze))
    hub.start()
    try:
        if not await asyncio.to_thread(ready.wait, 30):
            raise RuntimeError("the hub did not start")
        await asyncio.sleep(3.0)  # drivers connected, first checks (and process workers) started
        n0, cpu0, t0 = served.value, _cpu_seconds(hub.pid or 0), time.perf_counter()
        lat = await _commands(mq_port, relay, commands, seed)
        elapsed = time.perf_counter() - t0
        checks = served.value - n0
        cpu = (_cpu_seconds(hub.pid or 0) - cpu0) / elapsed
    finally:
        stop.set()
        cam_stop.set()
        await asyncio.to_thread(hub.join, 20)
        await asyncio.to_thread(cams.join, 10)
        for p in (hub, cams):
            if p.is_alive():
                p.kill()
        await relay.stop()
    if errors.value:
        raise RuntimeError(f"the hub logged {errors.value} error(s) during the run (see above)")
    return {"lat": lat, "checks_per_s": checks / elapsed, "cpu": cpu * 100}


def command_latency_report(commands: int, pools: tuple[str, ...], cv_threads: int | None = None,
                           levels: tuple[tuple[str, float], ...] = LEVELS, gc_freeze: bool = False,
                           rounds: int = 3) -> None:
    """Each pool: ``rounds`` rounds, each running every level for ``commands // rounds`` commands
    (a fresh hub per level and round), so that a neighbour's load falls on all levels alike. The
    spread of the per-round p99 with checks off is this machine's noise."""
    from tests.support.mosquitto import Mosquitto

    threads = "OpenCV default threads" if cv_threads is None else f"cv2.setNumThreads({cv_threads}) in the hub"
    threads += ", gc.freeze() after start-up" if gc_freeze else ""
    per_round = max(50, commands // rounds)
    print(f"MQTT /set -> state published, {per_round * rounds} commands per level ({rounds} interleaved rounds) at "
          f"random 5-25 ms gaps, {CAMERAS} cameras with 1080p snapshots, hub in its own process ({threads}):")
    with Mosquitto() as broker, tempfile.TemporaryDirectory() as tmp:
        for pool in pools:
            lat: dict[str, list[float]] = {label: [] for label, _ in levels}
            p99s: dict[str, list[float]] = {label: [] for label, _ in levels}
            rates: dict[str, list[float]] = {label: [] for label, _ in levels}
            cpus: dict[str, list[float]] = {label: [] for label, _ in levels}
            for r in range(rounds):
                for i, (label, rate) in enumerate(levels):
                    folder = Path(tmp) / f"{pool}{r}-{i}"
                    folder.mkdir()
                    res = asyncio.run(_one_level(broker.port, rate, pool, per_round, folder, r * 10 + i, cv_threads,
                                                 gc_freeze=gc_freeze))
                    lat[label] += res["lat"]
                    p99s[label].append(_pct(res["lat"], 99) * 1000)
                    rates[label].append(res["checks_per_s"])
                    cpus[label].append(res["cpu"])
            base = _pct(lat[levels[0][0]], 99)
            for label, _ in levels:
                v = lat[label]
                p50, p99 = _pct(v, 50) * 1000, _pct(v, 99) * 1000
                print(f"  {pool:7} pool, {label:24} p50 {p50:5.2f} ms  p99 {p99:5.2f} ms  max {max(v) * 1000:6.2f} ms"
                      f"  (p99 {p99 / 1000 / base:4.2f}x checks off; per-round p99 {min(p99s[label]):.2f}-"
                      f"{max(p99s[label]):.2f} ms; {statistics.mean(rates[label]):5.2f} checks/s, hub CPU "
                      f"{statistics.mean(cpus[label]):5.1f} % of a core)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="per measurement, split into 9 rounds")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--commands", type=int, default=900, help="MQTT commands per load level (at least 500)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all load levels")
    ap.add_argument("--pool", choices=("thread", "process", "both"), default="both")
    ap.add_argument("--gc-freeze", action="store_true",
                    help="gc.freeze() in the hub once started (the proposed core change)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    print(f"OpenCV {cv2.__version__}, PyAV {av.__version__}, one thread per measurement")
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in ((1920, 1080), (640, 360)):
            snap = jpeg(make_clip("normal", w, h, frames=1)[0])
            for label, options in ENCODINGS:
                path = Path(tmp) / f"clip{w}.mp4"
                encode_clip(path, w, h, options=options)
                bare, checked, s = interleaved(path, snap, args.seconds)
                print(f"{w}x{h} {label}: bare keyframe decode {bare * 1000:.2f} ms | decode+checks "
                      f"{checked * 1000:.2f} ms (checks add {(checked - bare) / bare:.2f}x the decode; "
                      f"{1 / checked:.0f} checks/s/core from stream)")
            print(f"{w}x{h} JPEG snapshot: decode+checks {s * 1000:.2f} ms ({1 / s:.0f} checks/s/core, "
                  f"{s / bare:.2f}x the cheapest bare keyframe decode)")
        snap = jpeg(make_clip("normal", 1920, 1080, frames=1)[0])
        cpu = cpu_per_snapshot(snap)
        share = 500 / 600 * cpu * 100
        print(f"500 cameras / 10 min (1080p snapshots): {cpu * 1000:.2f} ms CPU per check -> {share:.2f} % of one "
              f"core (target < 10 %)")
    if not args.skip_latency:
        pools = ("thread", "process") if args.pool == "both" else (args.pool,)
        command_latency_report(args.commands, pools, gc_freeze=args.gc_freeze, rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
