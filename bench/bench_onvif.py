"""Benchmark of the generic_onvif driver against its simulator, with raw floors from the same run.

    python bench/bench_onvif.py [--n 200]

Measures, each against a floor that does the same network work without the driver/zeep:

* poll (GetSystemDateAndTime through onvif-zeep-async)  vs  the same SOAP POST with raw aiohttp;
* snapshot (httpx + Digest, JPEG check)                 vs  raw httpx GET with Digest;
* motion event latency (simulator trigger -> driver state) vs  a raw PullMessages long poll
  answered by the same trigger.

Prints medians, p95 and the ratio driver/floor. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import httpx

from plugins.generic_onvif.driver import OnvifConfig, OnvifDriver
from plugins.generic_onvif.simulator import OnvifSimulator
from tests.support.context import FakeDeviceContext

TIME_REQ = (b'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
            b'<s:Body><GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>')


def stats(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.95))]


def line(name: str, drv: list[float], raw: list[float]) -> None:
    dm, dp = stats(drv)
    rm, rp = stats(raw)
    print(f"{name:<22} driver {dm * 1000:7.2f} ms (p95 {dp * 1000:6.2f})   floor {rm * 1000:7.2f} ms "
          f"(p95 {rp * 1000:6.2f})   ratio {dm / rm:5.2f}x")


async def main(n: int) -> None:
    async with OnvifSimulator(password="pw") as sim:
        cfg = OnvifConfig(id="bench", platform="generic_onvif", host="127.0.0.1", port=sim.port, password="pw")
        ctx = FakeDeviceContext("bench")
        driver = OnvifDriver(cfg, ctx)
        t0 = time.perf_counter()
        await driver.connect()
        print(f"connect (skew, services, info, profiles, URIs): {(time.perf_counter() - t0) * 1000:.1f} ms")

        url = f"{sim.base_url}/onvif/device_service"
        async with aiohttp.ClientSession() as session:
            raw_poll = []
            for _ in range(n):
                t = time.perf_counter()
                async with session.post(url, data=TIME_REQ,
                                        headers={"Content-Type": "application/soap+xml"}) as r:
                    await r.read()
                raw_poll.append(time.perf_counter() - t)
        drv_poll = []
        for _ in range(n):
            t = time.perf_counter()
            await driver.poll()
            drv_poll.append(time.perf_counter() - t)
        line("poll (time + skew)", drv_poll, raw_poll)

        snap_url = f"{sim.base_url}/onvif/snapshot?Profile_1"
        async with httpx.AsyncClient() as client:
            auth = httpx.DigestAuth("admin", "pw")
            raw_snap = []
            for _ in range(n // 4):
                t = time.perf_counter()
                (await client.get(snap_url, auth=auth)).raise_for_status()
                raw_snap.append(time.perf_counter() - t)
        drv_snap = []
        for _ in range(n // 4):
            t = time.perf_counter()
            await driver.snapshot()
            drv_snap.append(time.perf_counter() - t)
        line("snapshot (JPEG)", drv_snap, raw_snap)

        # event latency through the driver's PullPoint loop
        listen = asyncio.create_task(driver.listen())
        while "motion" not in ctx.fields:
            await asyncio.sleep(0.01)
        drv_ev = []
        for i in range(n // 4):
            ctx.updated.clear()
            t = time.perf_counter()
            sim.trigger_motion(i % 2 == 0)
            await asyncio.wait_for(ctx.updated.wait(), 5)
            drv_ev.append(time.perf_counter() - t)
            await asyncio.sleep(0.01)
        listen.cancel()
        await asyncio.gather(listen, return_exceptions=True)
        await driver.close()

        # floor: the same long poll done by hand (no WS-Security, no zeep), answered by the same trigger
        client_cam = OnvifDriver(cfg, FakeDeviceContext("bench"))
        await client_cam.connect()
        assert client_cam.client is not None  # connect() made it
        await client_cam.client.subscribe(60)
        sub_url = client_cam.client.cam.xaddrs["http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"]
        pull = (b'<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
                b'<PullMessages xmlns="http://www.onvif.org/ver10/events/wsdl"><Timeout>PT5S</Timeout>'
                b"<MessageLimit>100</MessageLimit></PullMessages></s:Body></s:Envelope>")
        raw_ev = []
        sim.time_tolerance = 1e9
        old_check = sim.check_auth
        sim.check_auth = lambda root: None  # type: ignore[method-assign]  # the floor sends no credentials
        async with aiohttp.ClientSession() as session:
            async with session.post(sub_url, data=pull) as r:  # drain the Initialized messages
                await r.read()
            for i in range(n // 4):
                req = asyncio.create_task(session.post(sub_url, data=pull))
                await asyncio.sleep(0.02)  # let the long poll reach the simulator
                t = time.perf_counter()
                sim.trigger_motion(i % 2 == 0)
                async with await req as r:
                    await r.read()
                raw_ev.append(time.perf_counter() - t)
        sim.check_auth = old_check  # type: ignore[method-assign]
        await client_cam.close()
        line("motion event latency", drv_ev, raw_ev)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    asyncio.run(main(ap.parse_args().n))
