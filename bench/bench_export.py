"""Footage export benchmark: export time against a floor measured in the same run, memory, and
how much the export delays the event loop.

    python bench/bench_export.py [--minutes 10] [--fps 25] [--width 1920 --height 1080]
                                 [--bitrate 4000000] [--cache DIR] [--distinct 10]

A Hikvision simulator (its own process, so its memory is not counted) holds ``--minutes`` of
footage in 60-second PS files (generated once into ``--cache``). Only the first ``--distinct``
minutes are encoded (about 20 s each at 1080p); the later files are hard links to them (minute
k is minute k mod ``--distinct``: the picture's burned-in time repeats, the bytes, sizes and
packet times per file are those of real footage), so an hour costs no more to prepare than ten
minutes. Measured:

1. **Floor**: a plain HTTP download of the same files (aiohttp, Digest, the same simulator, each
   file's bytes written to disk) plus PyAV's bare remux of those files into one MP4 (demux and
   mux every video packet, nothing else).
2. **Export** (search, download, remux, hashing, signing) as the running hub does it
   (``--mode child``, the default: ``hub.export.child.export_in_child``, the whole export in a
   process of its own at niceness 10, the remux in a thread of it; its start, about 1 s of CPU
   for Python, the plugins and the config, is counted), or in this process as ``anninh export``
   does it (``--mode thread``: ``hub.export.run.export``, the remux in a worker thread;
   ``--mode process``: the remux in a child process). Ratio = export / floor; target <= 1.3.
   The floor copies video only;
   ``--audio drop`` compares like with like, the default also transcodes the G.711 audio to AAC.
   Each side starts after ``os.sync()`` (nothing of the other's left to write back), and a
   ``--warmup`` round (1) is run first and not counted.
   Beside the wall times, the CPU seconds of each (this process, the export's processes, the simulator
   sending): on a machine shared with other work the wall time of each side depends on what
   else runs at that moment, the CPU seconds much less.
3. **Memory**: this process's RSS before the export and its peak during it (sampled every 20 ms),
   and the peak RSS of the export's process (``--mode child``; ``process``: the remux child; the
   largest of this process's ended children), for the clip length given; run two lengths to see that it
   does not grow with the length (target: growth < 100 MB whatever the length).
4. **Event loop**: p50/p99 lateness of a 2 ms timer idle and during the export (a proxy for
   command latency while an export runs: a light command waits for the loop just as this timer
   does).
5. **Light commands during an export** (``--light-rounds``, 0 to skip): a real Mosquitto, the hub
   as ``anninh run`` in its own process with the NVR and a relay light (the relay board simulated
   in a process of its own), this process as the officer's app. Each round: commands
   (``/set`` -> coil written -> state published, one at a time, 20 ms apart) for the same time with
   the hub idle and while the hub runs an export asked for over MQTT
   (``bridge/request/export``); target: p99 during <= 1.5x p99 idle (median over the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import av

PW = "bench-pw"
ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 11, 30, 8, 0, 0)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) of this process (all threads), or of process ``pid``."""
    if pid is None:
        return time.process_time()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds of this process's ended children (the remux child, once waited for)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def repeat_after(writer: Any, distinct: int) -> Any:
    """A footage writer that encodes the first ``distinct`` minutes and makes minute k a hard link
    to minute k mod ``distinct`` (same folder; the cache key holds the start time)."""

    def stamp(t: datetime) -> str:
        return f"{t:%Y%m%dT%H%M%S}"

    def write(path: Path, channel: int, start: datetime, seconds: float, fmt: Any) -> list[tuple[float, int]]:
        k = int((start - START).total_seconds() // 60)
        if k < distinct:
            return writer(path, channel, start, seconds, fmt)
        back = start - timedelta(minutes=k // distinct * distinct)
        src = path.with_name(path.name.replace(stamp(start), stamp(back)))
        meta = src.with_suffix(".json")
        if src.exists() and meta.exists():
            keyframes = [tuple(k) for k in json.loads(meta.read_text())]
        else:
            keyframes = writer(src, channel, back, seconds, fmt)
            meta.write_text(json.dumps(keyframes))
        path.unlink(missing_ok=True)
        os.link(src, path)
        return keyframes

    return write


def _serve(q: Any, minutes: int, cache: str, fps: int, width: int, height: int, bitrate: int,
           distinct: int) -> None:
    from hub.camera.simfootage import VideoFormat
    from plugins.hikvision.simulator import HikvisionSimulator

    async def main() -> None:
        sim = HikvisionSimulator("nvr", channels=1, password=PW, footage_dir=cache,
                                 video=VideoFormat(width=width, height=height, fps=fps, gop_seconds=2.0, audio=True,
                                                   bitrate=bitrate, noise=True))
        sim.footage.writer = repeat_after(sim.footage.writer, distinct)
        sim.add_footage(1, START, START + timedelta(minutes=minutes))
        await sim.start()
        files = [(sim.footage.get(1, n, s, e)) for n, s, e in sim.footage.files(1)]
        q.put((sim.port, [(f.name, str(f.path), f.size) for f in files]))
        await asyncio.Event().wait()

    asyncio.run(main())


async def plain_download(port: int, names: list[str], out: Path) -> float:
    t = time.perf_counter()
    auth = aiohttp.DigestAuthMiddleware("admin", PW)
    async with aiohttp.ClientSession(middlewares=(auth,), read_bufsize=1 << 20) as session:
        for name in names:
            body = ("<downloadRequest><playbackURI>rtsp://x/?name=" + name + "</playbackURI></downloadRequest>")
            async with session.post(f"http://127.0.0.1:{port}/ISAPI/ContentMgmt/download", data=body) as r:
                with (out / name).open("wb") as f:
                    async for chunk in r.content.iter_any():
                        f.write(chunk)
    return time.perf_counter() - t


def bare_remux(paths: list[Path], out: Path) -> float:
    t = time.perf_counter()
    with av.open(str(out), "w", format="mp4") as o:
        ostream = None
        offset = 0
        for p in paths:
            with p.open("rb") as f:
                f.seek(40)
                with av.open(f, mode="r", format="mpeg") as c:
                    vs = c.streams.video[0]
                    if ostream is None:
                        ostream = o.add_stream_from_template(vs)
                    first = None
                    last = 0
                    for pkt in c.demux(vs):
                        if pkt.pts is None:
                            continue
                        first = pkt.pts if first is None else first
                        rel = pkt.pts - first
                        last = rel
                        pkt.pts = pkt.dts = rel + offset
                        pkt.stream = ostream
                        o.mux(pkt)
                    offset += last + 1
    return time.perf_counter() - t


class LoopProbe:
    """Lateness of a 2 ms timer on the running loop."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.002)
            self.samples.append((time.perf_counter() - t - 0.002) * 1000)

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> tuple[float, float]:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        s = sorted(self.samples) or [0.0]
        return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.99))]


async def run(args: argparse.Namespace) -> None:
    from hub.config import load_config
    from hub.export.child import export_in_child
    from hub.export.run import ExportRequest, export
    from tests.support.hubrun import make_plugins, write_config

    cache = Path(args.cache)
    q: Any = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_serve, daemon=True, args=(
        q, args.minutes, str(cache), args.fps, args.width, args.height, args.bitrate, args.distinct))
    t = time.perf_counter()
    proc.start()
    port, files = await asyncio.to_thread(q.get, True, 36000)
    total = sum(size for _, _, size in files)
    print(f"footage: {args.minutes} min, {len(files)} files, {total / 1e6:.1f} MB "
          f"({total * 8 / (args.minutes * 60) / 1e6:.2f} Mbit/s), {args.width}x{args.height} {args.fps} fps "
          f"(ready in {time.perf_counter() - t:.1f} s)")
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        probe = LoopProbe()
        probe.start()
        await asyncio.sleep(2.0)
        idle = await probe.stop()

        rounds = []
        for r in range(-args.warmup, args.rounds):
            d = work / f"plain{r}"
            d.mkdir()
            assert proc.pid is not None
            os.sync()  # each side starts with nothing of the other's left to write back
            c0, s0 = cpu_s(), cpu_s(proc.pid)
            dl = await plain_download(port, [n for n, _, _ in files], d)
            rx = await asyncio.to_thread(bare_remux, [d / n for n, _, _ in files], d / "bare.mp4")
            floor_cpu = cpu_s() - c0 + cpu_s(proc.pid) - s0
            shutil.rmtree(d)

            cfg_dir = work / f"cfg{r}"
            cfg_dir.mkdir()
            cfg = write_config(cfg_dir, f"""
                hub: {{data_dir: {cfg_dir / 'data'}}}
                export: {{audio: {args.audio}}}
                devices:
                  - {{id: nvr, platform: hikvision, host: 127.0.0.1, port: {port}, password: {PW}, kind: nvr,
                      timeout: 10}}
                """)
            plugins = make_plugins()
            config = load_config(cfg, plugins)
            request = ExportRequest(device="nvr", start=START, end=START + timedelta(minutes=args.minutes),
                                    out_dir=cfg_dir / "out")
            base = rss_mb()
            peak = [base]
            stop = threading.Event()

            def sample(peak: list[float] = peak, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], rss_mb())
                    time.sleep(0.02)

            os.sync()
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            probe.start()
            c0, s0, k0 = cpu_s(), cpu_s(proc.pid), children_cpu_s()
            t = time.perf_counter()
            # skew 0 on the simulator: the window is the footage (the clock offset is measured anyway)
            phases: dict[str, float] = {}

            def progress(message: str, fraction: float, phases: dict[str, float] = phases) -> None:
                phases.setdefault(message.split(" ")[0], time.perf_counter())

            if args.mode == "child":
                result = await export_in_child(cfg, request, progress)
            else:
                result = await export(config, plugins, request, progress, remux_process=args.mode == "process")
            exp = time.perf_counter() - t
            export_cpu = cpu_s() - c0 + cpu_s(proc.pid) - s0 + children_cpu_s() - k0
            child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KB on Linux
            marks = [("connect", t), *sorted(phases.items(), key=lambda kv: kv[1])]
            print("  phases: " + ", ".join(f"{a} {b[1] - a_t:.2f} s" for (a, a_t), b in itertools.pairwise(marks)))
            busy = await probe.stop()
            stop.set()
            sampler.join()
            if r >= 0:
                rounds.append((dl, rx, exp, peak[0] - base, busy, floor_cpu, export_cpu))
            label = f"round {r + 1}" if r >= 0 else "warm-up (not counted)"
            print(f"{label}: download {dl:.2f} s + bare remux {rx:.2f} s = floor {dl + rx:.2f} s; "
                  f"export {exp:.2f} s (ratio {exp / (dl + rx):.2f}); RSS {base:.0f} -> peak {peak[0]:.0f} MB "
                  f"(+{peak[0] - base:.0f}; export processes peak {child_peak:.0f} MB); "
                  f"loop lateness p50/p99 {busy[0]:.2f}/{busy[1]:.2f} ms; "
                  f"gaps {len(result.gaps)}; CPU floor {floor_cpu:.2f} s, export {export_cpu:.2f} s "
                  f"(ratio {export_cpu / floor_cpu:.2f}); load {os.getloadavg()[0]:.1f}")
            shutil.rmtree(cfg_dir)
        if rounds:  # --rounds 0: the light commands alone
            ratios = sorted(e / (d + x) for d, x, e, *_ in rounds)
            print(f"\nexport / floor: median {statistics.median(ratios):.2f} (rounds: "
                  f"{', '.join(f'{x:.2f}' for x in ratios)}; target <= 1.3)")
            cpu = sorted(r[6] / r[5] for r in rounds)
            print(f"CPU seconds export / floor: median {statistics.median(cpu):.2f} (rounds: "
                  f"{', '.join(f'{x:.2f}' for x in cpu)})")
            print(f"RSS growth during the export: max {max(r[3] for r in rounds):.0f} MB (target < 100 MB)")
            worst = max(r[4][1] for r in rounds)
            print(f"event-loop lateness p99: idle {idle[1]:.2f} ms, during export {worst:.2f} ms "
                  f"(ratio {worst / max(idle[1], 0.01):.2f}; proxy for the light-command target <= 1.5x)")
        if args.light_rounds:
            assert proc.pid is not None
            # the recorder is a box of its own in a commune: its simulator, sending at loopback speed
            # (300 MB/s, 25x a 100 Mbit/s LAN), takes no CPU from the hub's there
            os.setpriority(os.PRIO_PROCESS, proc.pid, args.recorder_nice)
            await light_commands(args, port, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        proc.kill()


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _relay_board(q: Any) -> None:
    """Process: the light's relay board, a device of its own on the network (not in the NVR's
    process, whose loop is busy sending footage)."""
    import logging

    from plugins.lighting.simulator import RelayBoardSimulator

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    async def main() -> None:
        relays = await RelayBoardSimulator({1: "waveshare"}).start()
        q.put(relays.port)
        await asyncio.Event().wait()

    asyncio.run(main())


async def light_commands(args: argparse.Namespace, nvr_port: int, work: Path) -> None:
    """(5) Light-command round trips on a hub in its own process, idle and during an export."""
    import subprocess

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from hub.mqtt import _no_delay
    from tests.support.mosquitto import Mosquitto

    loop = asyncio.get_running_loop()
    topics = ("anninh/light-1", "anninh/bridge/state", "anninh/bridge/response/export", "anninh/bridge/event")
    inbox: dict[str, asyncio.Queue[tuple[bytes, float]]] = {t: asyncio.Queue() for t in topics}
    folder = work / "light"
    folder.mkdir()
    rq: Any = mp.get_context("spawn").Queue()
    board = mp.get_context("spawn").Process(target=_relay_board, args=(rq,), daemon=True)
    board.start()
    relay_port = await asyncio.to_thread(rq.get, True, 60)
    with Mosquitto() as broker:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-officer")
        client.on_socket_open = _no_delay
        def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
            loop.call_soon_threadsafe(inbox[m.topic].put_nowait, (bytes(m.payload), time.perf_counter()))

        client.on_message = on_message
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        client.subscribe([(t, 1) for t in topics])
        config = folder / "config.yaml"
        config.write_text(f"""
hub: {{name: bench, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{broker.port}", discovery: false}}
export: {{audio: {args.audio}}}
sites: [{{id: s1}}]
devices:
  - {{id: light-1, platform: lighting, site: s1, driver: modbus_coil, host: 127.0.0.1, port: {relay_port}, unit: 1,
      channel: 0, poll_interval: 5}}
  - {{id: nvr, platform: hikvision, site: s1, host: 127.0.0.1, port: {nvr_port}, password: {PW}, kind: nvr,
      timeout: 10, event_stream: false}}
""")
        config.chmod(0o600)
        hub = subprocess.Popen([sys.executable, "-m", "hub.cli", "-q", "run", "-c", str(config)], cwd=ROOT)  # noqa: ASYNC220
        state = "OFF"
        exported: list[float] = []
        in_download: list[float] = []  # commands during an export's download phase, of all rounds
        in_remux: list[float] = []  # ... after it (the remux's tail, sealing)

        async def next_msg(topic: str, pred: Any, timeout: float = 30) -> tuple[bytes, float]:
            while True:
                payload, t = await asyncio.wait_for(inbox[topic].get(), timeout)
                if pred(payload):
                    return payload, t

        async def command() -> float:
            nonlocal state
            state = "ON" if state == "OFF" else "OFF"
            want = f'"state":"{state}"'.encode()
            t0 = time.perf_counter()
            client.publish("anninh/light-1/set/bench", f'{{"state":"{state}"}}', qos=1)
            _, t1 = await next_msg("anninh/light-1", lambda p: want in p)
            return t1 - t0

        async def commands_for(seconds: float) -> list[float]:
            out = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                out.append(await command())
                await asyncio.sleep(0.02)
            return out

        async def commands_during_export() -> list[float]:
            t0 = time.perf_counter()
            client.publish("anninh/bridge/request/export", json.dumps({
                "device": "nvr", "channel": 1, "start": f"{START:%Y-%m-%d %H:%M:%S}",
                "end": f"{START + timedelta(minutes=args.minutes):%Y-%m-%d %H:%M:%S}", "transaction": "b"}), qos=1)
            await next_msg("anninh/bridge/event", lambda p: b'"export_started"' in p)
            out = []
            answer: asyncio.Task[tuple[bytes, float]] = loop.create_task(
                next_msg("anninh/bridge/response/export", lambda p: True, timeout=3600))
            percent = 0
            while not answer.done():
                events = inbox["anninh/bridge/event"]
                while not events.empty():  # the export's progress: downloading below 90 %, then the MP4
                    body = json.loads(events.get_nowait()[0])
                    if body.get("type") == "export_progress":
                        percent = body.get("percent", percent)
                latency = await command()
                out.append(latency)
                (in_download if percent < 90 else in_remux).append(latency)
                await asyncio.sleep(0.02)
            payload, t1 = answer.result()
            body = json.loads(payload)
            if body.get("status") != "ok":
                raise RuntimeError(f"the export failed: {body}")
            exported.append(t1 - t0)
            shutil.rmtree(body["data"]["path"], ignore_errors=True)
            return out

        rows = []
        try:
            await next_msg("anninh/bridge/state", lambda p: b"online" in p)
            await asyncio.sleep(3)  # devices connected, first polls done
            for r in range(args.light_rounds):
                during = await commands_during_export()
                idle = await commands_for(min(exported[-1], 20.0))
                rows.append((_pct(idle, 50), _pct(idle, 99), _pct(during, 50), _pct(during, 99), len(during)))
                print(f"light round {r + 1}: idle p50/p99 {rows[-1][0] * 1000:.1f}/{rows[-1][1] * 1000:.1f} ms "
                      f"({len(idle)} commands); during the export ({exported[-1]:.1f} s, over MQTT) "
                      f"p50/p99 {rows[-1][2] * 1000:.1f}/{rows[-1][3] * 1000:.1f} ms ({len(during)} commands); "
                      f"p99 ratio {rows[-1][3] / rows[-1][1]:.2f}")
        finally:
            hub.terminate()
            await asyncio.to_thread(hub.wait, 30)
            client.loop_stop()
            client.disconnect()
            board.kill()
        if in_download and in_remux:
            print(f"light commands during the download phase: p50/p99 {_pct(in_download, 50) * 1000:.1f}/"
                  f"{_pct(in_download, 99) * 1000:.1f} ms ({len(in_download)}); after it (remux tail, sealing): "
                  f"{_pct(in_remux, 50) * 1000:.1f}/{_pct(in_remux, 99) * 1000:.1f} ms ({len(in_remux)})")
    ratios = sorted(r[3] / r[1] for r in rows)
    print(f"light-command p99 during / idle: median {statistics.median(ratios):.2f} (rounds: "
          f"{', '.join(f'{x:.2f}' for x in ratios)}; target <= 1.5); p50 during / idle median "
          f"{statistics.median(r[2] / r[0] for r in rows):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--bitrate", type=int, default=4_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--recorder-nice", type=int, default=19,
                    help="(5) the simulated recorder's niceness during the light commands: a box of its own in a "
                         "commune, it shares no CPU with the hub there (0: as in the rounds before)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="rounds first run and not counted: the first floor of a run took 2-3x the CPU of the "
                         "next ones (the simulator's files and the page cache still cold)")
    ap.add_argument("--light-rounds", type=int, default=3,
                    help="rounds of light commands idle and during an export on a hub process (0: skip)")
    ap.add_argument("--audio", choices=["aac", "drop"], default="aac",
                    help="export.audio: G.711 to AAC in the MP4 (default), or left out (the floor has no audio)")
    ap.add_argument("--mode", choices=["child", "process", "thread"], default="child",
                    help="the export in a child process as a running hub does it (default), or in this process "
                         "with the remux in a child process, or in a worker thread (`anninh export`)")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "anninh-bench-footage"))
    ap.add_argument("--distinct", type=int, default=10,
                    help="minutes of footage encoded; the later minutes repeat them (hard links)")
    args = ap.parse_args()
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
