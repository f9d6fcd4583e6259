"""Benchmarks of issue 3 (power and lighting), each against a floor measured in the same run.

    python bench/bench_power_lighting.py [--fleet 2000] [--window 30] [--commands 1000] [--cuts 20]

(a) fleet: N simulated Modbus devices (80% APC UPS units, 20% relay channels) spread over 4
    simulator processes, polled every 5 s by one hub process (`anninh run`). Hub CPU (% of one
    core, and ms per device poll) against a bare pymodbus process doing the same block reads on the
    same schedule; RSS per device (hub RSS with the fleet minus the RSS of the same hub with none).
(b) command latency: MQTT `/set` -> coil written and read back -> state published, p50/p99 over
    M commands, against the floor = bare MQTT round trip + bare Modbus write+read, same run. As in
    a commune: the hub is `anninh run` in its own process, the relay board and UPS simulators
    another process, the officer's client this one. The floors and the hub are measured in
    alternating rounds of 50, so that a neighbour's load on a shared machine hits them alike.
(c) power-cut detection: mains lost at a random moment -> `power_lost` event received, against
    the poll interval.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.idle import rss_mb  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402

UPS_PER_SERVER = 200
TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- simulator processes
def _sim_process(n_ups: int, n_relays: int, q: Any) -> None:
    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    from plugins.lighting.simulator import RelayBoardSimulator
    from plugins.ups_modbus.simulator import UpsSimulator

    async def main() -> None:
        ports: list[tuple[str, int, int, int]] = []  # (kind, port, unit, channel)
        sims: list[Any] = []
        left = n_ups
        while left > 0:
            k = min(UPS_PER_SERVER, left)
            sim = await UpsSimulator({u: "apc_smt" for u in range(1, k + 1)}).start()
            sims.append(sim)
            ports += [("ups", sim.port, u, 0) for u in range(1, k + 1)]
            left -= k
        boards = max(1, (n_relays + 7) // 8)
        relay = await RelayBoardSimulator({u: "waveshare" for u in range(1, boards + 1)}).start()
        sims.append(relay)
        ports += [("relay", relay.port, 1 + i // 8, i % 8) for i in range(n_relays)]
        q.put(ports)
        await asyncio.Event().wait()

    asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICK


BARE_POLLER = r'''
import asyncio, json, sys, logging
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
from pymodbus.client import AsyncModbusTcpClient
from plugins.ups_modbus.maps import APC_SMT
devices = json.load(open(sys.argv[1])); interval = float(sys.argv[2])
async def one(kind, port, unit, channel, offset):
    c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    await c.connect()
    await asyncio.sleep(offset)
    while True:
        if kind == "ups":
            for b in APC_SMT.blocks:
                await c.read_holding_registers(b.address, count=b.count, device_id=unit)
        else:
            await c.read_coils(channel, count=1, device_id=unit)
        await asyncio.sleep(interval)
async def main():
    await asyncio.gather(*(one(*d, i * interval / len(devices)) for i, d in enumerate(devices)))
asyncio.run(main())
'''


ECHO = r'''
import sys, paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from hub.mqtt import _no_delay
c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-echo")
c.on_socket_open = _no_delay
c.on_connect = lambda cl, u, f, rc, p: (cl.subscribe("bench/ping", 1), print("ready", flush=True))
c.on_message = lambda cl, u, m: cl.publish("bench/pong", m.payload, 0)
c.connect("127.0.0.1", int(sys.argv[1]))
c.loop_forever()
'''


def fleet(n: int, window: float, mq_port: int, tmp: Path) -> dict[str, float]:
    n_relays = n // 5
    n_ups = n - n_relays
    procs, devices = [], []
    q: Any = mp.Queue()
    for i in range(4):
        p = mp.Process(target=_sim_process, args=(n_ups // 4 + (i < n_ups % 4), n_relays // 4 + (i < n_relays % 4), q),
                       daemon=True)
        p.start()
        procs.append(p)
    for _ in procs:
        devices += q.get(timeout=120)
    out: dict[str, float] = {}
    try:
        # the floor: bare pymodbus, same reads, same 5 s schedule
        devfile = tmp / "devices.json"
        devfile.write_text(json.dumps(devices))
        (tmp / "bare.py").write_text(BARE_POLLER)
        bare = subprocess.Popen([sys.executable, str(tmp / "bare.py"), str(devfile), "5"], cwd=ROOT)
        out["bare_cpu"] = _measure_cpu(bare.pid, window, warmup=8)
        bare.terminate()
        bare.wait(10)

        # the hub with no devices (baseline RSS), then with the fleet
        empty = _hub_config(tmp / "empty", mq_port, [])
        hub0 = subprocess.Popen([sys.executable, "-m", "hub.cli", "-q", "run", "-c", str(empty)], cwd=ROOT)
        time.sleep(6)
        out["rss_empty"] = rss_mb(hub0.pid)
        hub0.terminate()
        hub0.wait(20)

        cfg = _hub_config(tmp / "fleet", mq_port, devices)
        hub = subprocess.Popen([sys.executable, "-m", "hub.cli", "-q", "run", "-c", str(cfg)], cwd=ROOT)
        out["hub_cpu"] = _measure_cpu(hub.pid, window, warmup=15)
        out["rss_fleet"] = rss_mb(hub.pid)
        hub.terminate()
        hub.wait(30)
    finally:
        for p in procs:
            p.terminate()
    polls = n * window / 5.0
    out["hub_ms_per_poll"] = out["hub_cpu"] * window / polls * 1000
    out["bare_ms_per_poll"] = out["bare_cpu"] * window / polls * 1000
    out["kb_per_device"] = (out["rss_fleet"] - out["rss_empty"]) * 1024 / n
    return out


def _measure_cpu(pid: int, window: float, warmup: float) -> float:
    time.sleep(warmup)
    c0, t0 = _cpu_seconds(pid), time.monotonic()
    time.sleep(window)
    return (_cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def _hub_config(d: Path, mq_port: int, devices: list[tuple[str, int, int, int]]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    lines = ["hub: {data_dir: ./data}", f'mqtt: {{server: "mqtt://127.0.0.1:{mq_port}", discovery: false}}',
             "devices:" if devices else "devices: []"]
    for i, (kind, port, unit, ch) in enumerate(devices):
        if kind == "ups":
            lines.append(f"  - {{id: u{i}, platform: ups_modbus, host: 127.0.0.1, port: {port}, unit: {unit}, "
                         f"model: apc_smt, poll_interval: 5}}")
        else:
            lines.append(f"  - {{id: l{i}, platform: lighting, driver: modbus_coil, host: 127.0.0.1, port: {port}, "
                         f"unit: {unit}, channel: {ch}, poll_interval: 5}}")
    path = d / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------- (b) command latency, (c) power cuts
def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _device_process(conn: Any) -> None:
    """Process: the light's relay board and a UPS, as separate devices on the network would be.
    Sends its ports, then obeys ``("mains", bool)`` until told ``None``."""
    import logging
    import threading

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    from plugins.lighting.simulator import RelayBoardSimulator
    from plugins.ups_modbus.simulator import UpsSimulator

    async def main() -> None:
        loop = asyncio.get_running_loop()
        relays = await RelayBoardSimulator({1: "waveshare", 2: "waveshare"}).start()
        ups = await UpsSimulator({1: "apc_smt"}).start()
        done = asyncio.Event()

        def commands() -> None:
            while (cmd := conn.recv()) is not None:
                loop.call_soon_threadsafe(functools.partial(ups.set_state, 1, mains=cmd[1]))
            loop.call_soon_threadsafe(done.set)

        threading.Thread(target=commands, daemon=True).start()
        conn.send((relays.port, ups.port))
        await done.wait()
        await relays.stop()
        await ups.stop()

    asyncio.run(main())


async def latency(mq_port: int, commands: int, cuts: int, tmp: Path) -> dict[str, Any]:
    """(b) and (c) in the topology of a commune: the hub is ``anninh run`` in its own process, the
    relay board and the UPS are another process (devices on the LAN), the officer's client is this
    process. The floors are measured from this process over the same sockets."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from pymodbus.client import AsyncModbusTcpClient

    from hub.mqtt import _no_delay

    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    devices = ctx.Process(target=_device_process, args=(there,), daemon=True)
    devices.start()
    relay_port, ups_port = await asyncio.to_thread(here.recv)
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[str, bytes, float]] = asyncio.Queue()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-officer")
    client.on_socket_open = _no_delay  # like the hub's own client: no 40 ms Nagle/delayed-ACK stalls

    def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
        loop.call_soon_threadsafe(inbox.put_nowait, (m.topic, bytes(m.payload), time.perf_counter()))

    client.on_message = on_message
    client.connect("127.0.0.1", mq_port)
    client.loop_start()
    client.subscribe([("bench/echo", 1), ("bench/pong", 1), ("anninh/light-1", 1), ("anninh/bridge/event", 1),
                      ("anninh/bridge/state", 1)])
    await asyncio.sleep(0.5)

    async def next_msg(pred: Any, timeout: float = 10) -> float:
        while True:
            topic, payload, t = await asyncio.wait_for(inbox.get(), timeout)
            if pred(topic, payload):
                return t

    out: dict[str, Any] = {}
    (tmp / "echo.py").write_text(ECHO)
    echo = subprocess.Popen([sys.executable, str(tmp / "echo.py"), str(mq_port)], cwd=ROOT,  # noqa: ASYNC220
                            stdout=subprocess.PIPE, text=True)
    assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
    mb = AsyncModbusTcpClient("127.0.0.1", port=relay_port, timeout=3, retries=0)
    await mb.connect()
    folder = tmp / "lat"
    folder.mkdir()
    config = folder / "config.yaml"
    config.write_text(f"""
hub: {{name: bench, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mq_port}", discovery: false}}
sites: [{{id: s1}}, {{id: s2}}]
devices:
  - {{id: light-1, platform: lighting, site: s1, driver: modbus_coil, host: 127.0.0.1, port: {relay_port}, unit: 1,
      channel: 0, poll_interval: 5}}
  - {{id: ups-1, platform: ups_modbus, site: s2, host: 127.0.0.1, port: {ups_port}, unit: 1, model: apc_smt,
      poll_interval: 1}}
""")
    config.chmod(0o600)
    hub = subprocess.Popen([sys.executable, "-m", "hub.cli", "-q", "run", "-c", str(config)], cwd=ROOT)  # noqa: ASYNC220
    mqtt_rt: list[float] = []
    echo_rt: list[float] = []
    mb_rt: list[float] = []
    hub_rt: list[float] = []
    seq = iter(range(1 << 30))
    state = "OFF"

    async def bare_rt() -> None:  # floor 1: bare MQTT round trip through the same broker
        i = next(seq)
        t0 = time.perf_counter()
        client.publish("bench/echo", str(i), qos=1)
        mqtt_rt.append(await next_msg(lambda tp, p: tp == "bench/echo" and p == str(i).encode()) - t0)

    async def echo_once() -> None:
        # floor 1b: a request answered by another process (client -> broker -> bare paho echo ->
        # broker -> client): the transport path a /set and its state message take, nothing done
        i = next(seq)
        t0 = time.perf_counter()
        client.publish("bench/ping", str(i), qos=1)
        echo_rt.append(await next_msg(lambda tp, p: tp == "bench/pong" and p == str(i).encode()) - t0)

    async def modbus_once() -> None:  # floor 2: bare Modbus write + read-back, another board of the simulator
        i = next(seq)
        t0 = time.perf_counter()
        await mb.write_coil(3, bool(i % 2), device_id=2)
        await mb.read_coils(3, count=1, device_id=2)
        mb_rt.append(time.perf_counter() - t0)

    async def hub_once() -> None:
        nonlocal state
        state = "ON" if state == "OFF" else "OFF"
        want = f'"state":"{state}"'.encode()
        t0 = time.perf_counter()
        client.publish("anninh/light-1/set/bench", f'{{"state":"{state}"}}', qos=1)
        hub_rt.append(await next_msg(lambda tp, p: tp == "anninh/light-1" and want in p) - t0)
        coil = (await mb.read_coils(0, count=1, device_id=1)).bits[0]  # the relay really followed
        if coil != (state == "ON"):
            raise RuntimeError("the relay did not follow the command")

    try:
        await next_msg(lambda tp, p: tp == "anninh/bridge/state" and b"online" in p, timeout=30)
        await asyncio.sleep(2)  # devices connected, first polls done
        # the floors and the hub in alternating rounds, so that a neighbour's load on this shared
        # machine falls on all of them alike
        per_round = 50
        for _ in range(max(1, commands // per_round)):
            for measure in (bare_rt, echo_once, modbus_once, hub_once):
                for _ in range(per_round):
                    await measure()
                    await asyncio.sleep(0.002)
        out["hub"] = hub_rt
        # (c) power cuts at random moments of the poll cycle
        detect = []
        rng = random.Random(1)
        for _ in range(cuts):
            await asyncio.sleep(1.0 + rng.random())
            t0 = time.perf_counter()
            here.send(("mains", False))
            t1 = await next_msg(lambda tp, p: tp == "anninh/bridge/event" and b'"power_lost"' in p)
            detect.append(t1 - t0)
            here.send(("mains", True))
            await next_msg(lambda tp, p: tp == "anninh/bridge/event" and b'"power_restored"' in p)
        out["detect"] = detect
    finally:
        hub.terminate()
        echo.terminate()
        await asyncio.to_thread(hub.wait, 30)
        await asyncio.to_thread(echo.wait, 5)
        mb.close()
        client.loop_stop()
        client.disconnect()
        here.send(None)
        await asyncio.to_thread(devices.join, 10)
    out["mqtt_rt"], out["mb_rt"], out["echo_rt"] = mqtt_rt, mb_rt, echo_rt
    out["floor"] = [a + b for a, b in zip(sorted(mqtt_rt), sorted(mb_rt), strict=True)]
    out["floor_echo"] = [a + b for a, b in zip(sorted(echo_rt), sorted(mb_rt), strict=True)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fleet", type=int, default=2000)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--commands", type=int, default=1000)
    ap.add_argument("--cuts", type=int, default=20)
    ap.add_argument("--skip-fleet", action="store_true")
    args = ap.parse_args()
    with Mosquitto() as broker, tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        lat = asyncio.run(latency(broker.port, args.commands, args.cuts, tmp))
        ms = 1000.0
        print(f"(b) command latency over {args.commands} commands (MQTT /set -> coil -> state published):")
        labels = {"mqtt_rt": "bare MQTT round trip", "echo_rt": "bare MQTT via echo proc",
                  "mb_rt": "bare Modbus write+read", "floor": "floor A (RT + Modbus)",
                  "floor_echo": "floor B (echo + Modbus)", "hub": "hub"}
        for name, label in labels.items():
            v = lat[name]
            print(f"    {label:24} p50 {_pct(v, 50) * ms:6.2f} ms   p99 {_pct(v, 99) * ms:6.2f} ms")
        for f in ("floor", "floor_echo"):
            print(f"    ratio hub/{labels[f][:7]}        p50 {_pct(lat['hub'], 50) / _pct(lat[f], 50):6.2f}      "
                  f"p99 {_pct(lat['hub'], 99) / _pct(lat[f], 99):6.2f}   (target p99 <= 2.0)")
        d = lat["detect"]
        print(f"(c) power-cut detection over {len(d)} cuts, UPS poll interval 1.0 s: "
              f"mean {statistics.mean(d):.2f} s, max {max(d):.2f} s (= {max(d) / 1.0:.2f} poll intervals)")
        if not args.skip_fleet:
            fl = fleet(args.fleet, args.window, broker.port, tmp)
            print(f"(a) fleet of {args.fleet} Modbus devices polled every 5 s ({args.window:.0f} s window):")
            print(f"    bare pymodbus poller   CPU {fl['bare_cpu'] * 100:5.1f}% of one core  "
                  f"{fl['bare_ms_per_poll']:.3f} ms/poll")
            print(f"    hub (anninh run)       CPU {fl['hub_cpu'] * 100:5.1f}% of one core  "
                  f"{fl['hub_ms_per_poll']:.3f} ms/poll   (target < 25%)")
            print(f"    ratio hub/bare CPU     {fl['hub_cpu'] / fl['bare_cpu']:.2f}")
            print(f"    RSS: {fl['rss_empty']:.0f} MB empty, {fl['rss_fleet']:.0f} MB with the fleet = "
                  f"{fl['kb_per_device']:.1f} KB per device   (target < 100 KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
