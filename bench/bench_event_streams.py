"""Event-stream parsing throughput: Hikvision alertStream and Dahua eventManager streams fed at
full speed over loopback, against the raw socket read of the same bytes in the same run.

    python bench/bench_event_streams.py [--events 20000] [--reps 3]

A sender process (plain blocking socket, 127.0.0.1) writes a pre-built stream and closes; the
measuring process reads it with asyncio, once raw (the floor: just read the bytes) and once
through the real path: :class:`hub.camera.multipart.MultipartParser` → the driver's own handler
(``HikvisionDriver.handle_alert`` / ``DahuaDriver.handle_part``: XML / key=value parsing, channel
mapping, flag edges, state updates). Every event toggles a flag, so every one is an edge (the
worst case: each produces a state update and an event). Figures are medians of ``--reps`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.camera.multipart import MultipartParser
from plugins.dahua.driver import DahuaConfig, DahuaDriver
from plugins.hikvision.driver import HikvisionConfig, HikvisionDriver
from tests.support.context import FakeDeviceContext

CHANNELS = 16


def hikvision_stream(n: int) -> bytes:
    out = []
    for i in range(n):
        ch = i % CHANNELS + 1
        state = "active" if (i // CHANNELS) % 2 == 0 else "inactive"
        xml = ('<EventNotificationAlert version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">\n'
               "<ipAddress>192.168.1.64</ipAddress>\n<portNo>80</portNo>\n<protocol>HTTP</protocol>\n"
               f"<macAddress>c0:6d:ed:02:d3:d9</macAddress>\n<dynChannelID>{ch}</dynChannelID>\n"
               f"<dateTime>2024-05-01T10:00:{i % 60:02d}+07:00</dateTime>\n<activePostCount>{i}</activePostCount>\n"
               f"<eventType>VMD</eventType>\n<eventState>{state}</eventState>\n"
               "<eventDescription>Motion alarm</eventDescription>\n</EventNotificationAlert>\n").encode()
        out.append(b'--boundary\nContent-Type: application/xml; charset="UTF-8"\nContent-Length: %d\n\n'
                   % len(xml) + xml)
    return b"".join(out)


def dahua_stream(n: int) -> bytes:
    out = []
    for i in range(n):
        idx = i % CHANNELS
        action = "Start" if (i // CHANNELS) % 2 == 0 else "Stop"
        body = f"Code=VideoMotion;action={action};index={idx}".encode()
        if i % 4 == 0 and action == "Start":
            body += b';data={\r\n   "Id" : [ 0 ],\r\n   "RegionName" : [ "Region1" ]\r\n}'
        out.append(b"--myboundary\r\nContent-Type: text/plain\r\nContent-Length:%d\r\n\r\n" % len(body) + body +
                   b"\r\n\r\n")
    return b"".join(out)


def sender(port_q: mp.Queue, payload: bytes, conns: int) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port_q.put(srv.getsockname()[1])
    for _ in range(conns):
        c, _ = srv.accept()
        c.sendall(payload)
        c.close()
    srv.close()


async def read_raw(port: int) -> tuple[float, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.perf_counter()
    total = 0
    while chunk := await reader.read(65536):
        total += len(chunk)
    dt = time.perf_counter() - t0
    writer.close()
    return dt, total


async def read_parsed(port: int, vendor: str) -> tuple[float, int]:
    ctx = FakeDeviceContext("bench")
    if vendor == "hikvision":
        cfg = HikvisionConfig(id="b", platform="hikvision", host="127.0.0.1", password="x", kind="nvr")
        hdrv = HikvisionDriver(cfg, ctx)
        hdrv.channels = list(range(1, CHANNELS + 1))
        handle = hdrv.handle_alert
        boundary = b"boundary"
    else:
        dcfg = DahuaConfig(id="b", platform="dahua", host="127.0.0.1", password="x", kind="nvr")
        ddrv = DahuaDriver(dcfg, ctx)
        ddrv.channels = list(range(1, CHANNELS + 1))
        handle = ddrv.handle_part
        boundary = b"myboundary"
    parser = MultipartParser(boundary)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.perf_counter()
    while chunk := await reader.read(65536):
        for part in parser.feed(chunk):
            handle(part.body)
    dt = time.perf_counter() - t0
    writer.close()
    return dt, len(ctx.events)


def run(vendor: str, n: int, reps: int) -> dict[str, float]:
    payload = hikvision_stream(n) if vendor == "hikvision" else dahua_stream(n)
    raw_times, parse_times = [], []
    for _ in range(reps):
        for mode in ("raw", "parsed"):
            q: mp.Queue = mp.Queue()
            p = mp.Process(target=sender, args=(q, payload, 1), daemon=True)
            p.start()
            port = q.get(timeout=10)
            if mode == "raw":
                dt, total = asyncio.run(read_raw(port))
                assert total == len(payload), (total, len(payload))
                raw_times.append(dt)
            else:
                dt, events = asyncio.run(read_parsed(port, vendor))
                assert events == n, f"{vendor}: {events} events out of {n}"
                parse_times.append(dt)
            p.join(10)
    raw, parsed = statistics.median(raw_times), statistics.median(parse_times)
    return {"bytes": len(payload), "raw_s": raw, "parsed_s": parsed, "raw_eps": n / raw, "parsed_eps": n / parsed,
            "ratio": parsed / raw}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # the measuring process: one core
    print(f"{args.events} events per stream, median of {args.reps} runs, 127.0.0.1, one core for the reader")
    print(f"{'stream':<10} {'MB':>6} {'raw read':>12} {'parsed':>12} {'raw ev/s':>12} {'parsed ev/s':>12} "
          f"{'cost ×raw':>10}")
    ok = True
    for vendor in ("hikvision", "dahua"):
        r = run(vendor, args.events, args.reps)
        print(f"{vendor:<10} {r['bytes'] / 1e6:6.2f} {r['raw_s'] * 1000:10.1f}ms {r['parsed_s'] * 1000:10.1f}ms "
              f"{r['raw_eps']:12,.0f} {r['parsed_eps']:12,.0f} {r['ratio']:10.1f}")
        ok &= r["parsed_eps"] >= 5000
    print("target ≥ 5,000 events/s on one core:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
