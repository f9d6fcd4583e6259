"""Benchmark of the ONVIF Profile G download (RTSP replay -> H.264 -> MPEG-TS) against a floor
measured in the same run.

    python bench/bench_onvif_replay.py [--minutes 2] [--rounds 3]

The simulator replays ``--minutes`` of 1280x720, 25 fps, 4 Mbit/s H.264 (generated once into
``/tmp/anninh-bench-onvif-footage``) over loopback with ``Rate-Control: no``.

* floor: the same replay (DESCRIBE, SETUP, PLAY with the same Range) read off the socket and
  thrown away, no RTP parsing: what the network and the simulator cost;
* driver: ``OnvifDriver.download`` of the same segment (RTP parsed, H.264 depacketised, MPEG-TS
  muxed with PyAV, handed to a sink that drops it).

Prints seconds, MB/s, the ratio driver/floor per round and its median, and the resident memory
after each round (no growth from round to round: nothing is kept).
The simulator runs in the same process (and on the same 2 cores) as both.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.api.detached import DetachedContext
from hub.camera.simfootage import VideoFormat
from plugins.generic_onvif.driver import OnvifConfig, OnvifDriver
from plugins.generic_onvif.replay import RtspReplay
from plugins.generic_onvif.simulator import OnvifSimulator

CACHE = Path("/tmp/anninh-bench-onvif-footage")
START = datetime(2026, 11, 30, 19, 0)


def rss_mb() -> float:
    """Resident memory now (Linux), after a garbage collection."""
    gc.collect()
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 1e6


async def floor(uri: str, start: datetime, end: datetime, total: int | None) -> tuple[float, int]:
    """Seconds to receive the replay's bytes (``total``, or until 0.5 s of silence)."""
    session = RtspReplay(uri, "admin", "pw", timeout=10)
    t0 = time.perf_counter()
    await session.open(start, end)
    assert session.reader is not None
    got = 0
    last = t0
    while total is None or got < total:
        try:
            block = await asyncio.wait_for(session.reader.read(256 * 1024), 0.5 if total is None else 10)
        except TimeoutError:
            break
        if not block:
            break
        got += len(block)
        last = time.perf_counter()
    await session.close()
    return last - t0, got


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    video = VideoFormat(width=1280, height=720, fps=25, gop_seconds=2.0, bitrate=4_000_000, noise=True)
    sim = OnvifSimulator(password="pw", recordings=True, footage_dir=CACHE, video=video)
    end = START + timedelta(minutes=args.minutes)
    sim.add_footage(1, START, end)
    t = time.perf_counter()
    await sim.start()
    print(f"footage ready in {time.perf_counter() - t:.1f} s (cached in {CACHE})")
    try:
        cfg = OnvifConfig(id="bench", platform="generic_onvif", host="127.0.0.1", port=sim.port, username="admin",
                          password="pw", events=False)
        tz = ZoneInfo("Asia/Ho_Chi_Minh")
        driver = OnvifDriver(cfg, DetachedContext(cfg, tz=tz))
        await driver.connect()
        (segment,) = await driver.search_recordings(1, START, end)
        assert sim.replay is not None
        uri = sim.replay.url(segment.ref)
        a, b = (x.replace(tzinfo=tz) for x in (segment.start, segment.end))
        _, wire = await floor(uri, a, b, None)  # warm-up: how many bytes the replay sends
        rss0 = rss_mb()
        ratios = []
        for n in range(args.rounds):
            f_s, _ = await floor(uri, a, b, wire)
            out = 0

            async def sink(chunk: bytes) -> None:
                nonlocal out
                out += len(chunk)

            t = time.perf_counter()
            await driver.download(segment, sink)
            d_s = time.perf_counter() - t
            ratios.append(d_s / f_s)
            print(f"round {n + 1}: floor {f_s:.2f} s ({wire / f_s / 1e6:.1f} MB/s on the wire), driver {d_s:.2f} s "
                  f"({out / d_s / 1e6:.1f} MB/s of TS, {args.minutes * 60 / d_s:.0f}x real time), "
                  f"ratio {d_s / f_s:.2f}, RSS {rss_mb():.0f} MB")
        print(f"median ratio driver/floor {statistics.median(ratios):.2f}; RSS growth {rss_mb() - rss0:.0f} MB")
        await driver.close()
    finally:
        await sim.stop()


if __name__ == "__main__":
    asyncio.run(main())
