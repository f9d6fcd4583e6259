"""500 simulated cameras + 20 recorders polled by one hub: CPU and RSS of the hub process, with
a raw floor measured in the same run.

    python bench/bench_cameras.py [--cameras 500] [--recorders 20] [--seconds 30] [--poll 10]

The simulators (half Hikvision, half Dahua; every device with an armed event stream) run in a
child process; Mosquitto runs as a real broker; the hub runs in this process with every device
configured. After all devices are online, the hub's CPU time (user+sys) over ``--seconds`` is
measured, with the number of HTTP requests the simulators answered in that window. The floor is
the CPU this process needs to make the same number of authenticated requests with a bare aiohttp
client (the library the hub's CameraHttp uses; no parsing, no state, no MQTT), at the same
concurrency as there are devices; bare httpx is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---------------------------------------------------------------------- simulator process
async def serve(cameras: int, recorders: int) -> None:
    from plugins.dahua.simulator import DahuaSimulator
    from plugins.hikvision.simulator import HikvisionSimulator

    sims: list[tuple[str, str, object]] = []
    for i in range(cameras):
        sim = HikvisionSimulator("camera", password="pw", heartbeat=10) if i % 2 == 0 else \
            DahuaSimulator("camera", password="pw")
        sims.append(("hikvision" if i % 2 == 0 else "dahua", "camera", sim))
    for i in range(recorders):
        sim = HikvisionSimulator("nvr", 8, password="pw") if i % 2 == 0 else DahuaSimulator("nvr", 8, password="pw")
        for ch in range(1, 9):
            sim.set_recordings(ch, 20)
        sims.append(("hikvision" if i % 2 == 0 else "dahua", "recorder", sim))
    for _, _, s in sims:
        await s.start()  # type: ignore[attr-defined]
    print(json.dumps([[p, k, s.port] for p, k, s in sims]), flush=True)  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"count":
            print(sum(s.requests for _, _, s in sims), flush=True)  # type: ignore[attr-defined]
        elif line.strip() == b"motion":
            for i, (_, _, s) in enumerate(sims):
                s.trigger("motion", 1, i % 2 == 0)  # type: ignore[attr-defined]
    for _, _, s in sims:
        await s.stop()  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- hub side
async def measure(args: argparse.Namespace) -> None:
    from tests.support.hubrun import hub_from_yaml
    from tests.support.mosquitto import Mosquitto

    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", "--cameras", str(args.cameras), "--recorders", str(args.recorders),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 24)
    assert proc.stdout is not None and proc.stdin is not None
    devices = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))

    async def ask(cmd: bytes) -> int:
        proc.stdin.write(cmd + b"\n")  # type: ignore[union-attr]
        await proc.stdin.drain()  # type: ignore[union-attr]
        return int(await proc.stdout.readline()) if cmd == b"count" else 0  # type: ignore[union-attr]

    tmp = Path(tempfile.mkdtemp(prefix="bench-cams-"))
    lines = []
    for i, (platform, kind, port) in enumerate(devices):
        lines.append(f"  - id: {kind[:3]}{i}\n    platform: {platform}\n    host: 127.0.0.1\n    port: {port}\n"
                     f"    password: pw\n    poll_interval: {args.poll}\n    timeout: 10\n")
    with Mosquitto(workdir=tmp) as mq:
        yaml = (f"hub:\n  name: bench\n  timezone: Asia/Ho_Chi_Minh\n  data_dir: {tmp / 'data'}\n"
                f"mqtt:\n  server: mqtt://127.0.0.1:{mq.port}\n  base_topic: b\n  discovery: false\n"
                "devices:\n" + "".join(lines))
        rss0 = rss_mb()
        t0 = time.monotonic()
        async with hub_from_yaml(yaml, tmp) as running:
            hub = running.hub
            while sum(1 for v in hub.availability.values() if v) < len(devices):
                if time.monotonic() - t0 > 180:
                    break
                await asyncio.sleep(0.5)
            online = sum(1 for v in hub.availability.values() if v)
            startup = time.monotonic() - t0
            await asyncio.sleep(2)
            req0, c0, w0 = await ask(b"count"), cpu_s(), time.monotonic()
            await ask(b"motion")  # one event per device during the window
            await asyncio.sleep(args.seconds)
            req1, c1, w1 = await ask(b"count"), cpu_s(), time.monotonic()
            rss = rss_mb()
        hub_cpu = (c1 - c0) / (w1 - w0)
        n_req = req1 - req0

        # floors: the same number of digest-authenticated GETs with a bare client, aiohttp (what
        # the hub's CameraHttp uses) and httpx (what it used before), at the same concurrency
        import aiohttp
        import httpx

        paths = [(port, "/ISAPI/System/status" if platform == "hikvision" else
                  "/cgi-bin/magicBox.cgi?action=getDeviceType") for platform, _kind, port in devices]
        per = max(1, n_req // len(paths))

        async def floor_aiohttp() -> float:
            sessions = [(aiohttp.ClientSession(middlewares=(aiohttp.DigestAuthMiddleware("admin", "pw"),)),
                         f"http://127.0.0.1:{port}{p}") for port, p in paths]

            async def get(s: aiohttp.ClientSession, url: str) -> None:
                async with s.get(url) as r:
                    await r.read()

            await asyncio.gather(*(get(s, u) for s, u in sessions))  # prime challenges and connections
            f0 = cpu_s()

            async def hammer(s: aiohttp.ClientSession, url: str) -> None:
                for _ in range(per):
                    await get(s, url)

            await asyncio.gather(*(hammer(s, u) for s, u in sessions))
            used = cpu_s() - f0
            for s, _ in sessions:
                await s.close()
            return used

        async def floor_httpx() -> float:
            clients = [(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", auth=httpx.DigestAuth("admin", "pw")),
                        p) for port, p in paths]
            await asyncio.gather(*(c.get(p) for c, p in clients))
            f0 = cpu_s()

            async def hammer(c: httpx.AsyncClient, p: str) -> None:
                for _ in range(per):
                    await c.get(p)

            await asyncio.gather(*(hammer(c, p) for c, p in clients))
            used = cpu_s() - f0
            for c, _ in clients:
                await c.aclose()
            return used

        floor_cpu_s = await floor_aiohttp()
        httpx_cpu_s = await floor_httpx()
    proc.stdin.close()
    await proc.wait()
    scale = n_req / (per * len(paths)) / (w1 - w0)
    floor_per_s, httpx_per_s = floor_cpu_s * scale, httpx_cpu_s * scale
    print(f"devices: {args.cameras} cameras + {args.recorders} recorders (half Hikvision, half Dahua), "
          f"poll every {args.poll:g} s, event streams armed")
    print(f"online: {online}/{len(devices)} after {startup:.1f} s")
    print(f"HTTP requests answered in {w1 - w0:.0f} s: {n_req} ({n_req / (w1 - w0):.0f}/s)")
    print(f"hub CPU: {hub_cpu * 100:.1f} % of one core; RSS {rss:.0f} MB ({rss - rss0:+.0f} MB for the devices)")
    print(f"raw floor (same requests, bare aiohttp, the hub's HTTP library): {floor_per_s * 100:.1f} % of one core"
          f" (bare httpx: {httpx_per_s * 100:.1f} %)")
    print(f"hub / floor: {hub_cpu / floor_per_s:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=500)
    ap.add_argument("--recorders", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--poll", type=float, default=10)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.cameras, args.recorders))
        return 0
    import logging
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(measure(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
