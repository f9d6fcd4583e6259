"""How many commands the managed Mosquitto keeps for a slow hub session during a burst (issue 15).

    python bench/bench_broker_queue.py [--messages 40000] [--drain 5000]

One account publishes ``--messages`` QoS 1 commands as fast as paho can send them; the "hub" (a
paho client subscribed at QoS 1, as the hub is) reads them at ``--drain`` messages/s at most. The
same burst runs twice on the same machine: against Mosquitto with its default queue (1,000 queued
messages per client, the floor) and with the queue sizing the hub writes into its generated
config (hub.broker.MAX_QUEUED_MESSAGES / MAX_QUEUED_BYTES). Prints what the hub received and what
the broker dropped in each run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hub.broker import MAX_INFLIGHT_MESSAGES, MAX_QUEUED_BYTES, MAX_QUEUED_MESSAGES
from tests.support.mosquitto import Mosquitto


def _hub(port: int, drain: float, ready: Any, result: Any, quiet_s: float = 2.0) -> None:
    got = 0
    last = time.monotonic()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-hub", protocol=paho.MQTTv311)

    def on_message(client: Any, u: Any, msg: Any) -> None:
        nonlocal got, last
        got += 1
        last = time.monotonic()
        time.sleep(1.0 / drain)  # the hub's handling time per command

    c.on_message = on_message
    c.on_subscribe = lambda *a: ready.set()
    c.on_connect = lambda client, *a: client.subscribe("anninh/+/set/+", qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.wait(10)
    start = time.monotonic()
    while time.monotonic() - last < quiet_s or (got == 0 and time.monotonic() - start < 30):
        time.sleep(0.1)
    c.loop_stop()
    result.put(got)


def _burst(port: int, n: int) -> float:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-flood", protocol=paho.MQTTv311)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.monotonic()
    infos = [c.publish("anninh/light-a/set/flood", '{"state":"ON"}', qos=1) for _ in range(n)]
    for info in infos:
        info.wait_for_publish(60)
    took = time.monotonic() - t0
    c.disconnect()
    c.loop_stop()
    return n / took


def run(extra: str, n: int, drain: float) -> tuple[int, float]:
    with Mosquitto(extra=extra) as broker:
        ready = mp.Event()
        result: Queue[int] = mp.Queue()
        p = mp.Process(target=_hub, args=(broker.port, drain, ready, result))
        p.start()
        ready.wait(10)
        rate = _burst(broker.port, n)
        got = result.get(timeout=n / drain + 60)
        p.join(10)
    return got, rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=40000)
    ap.add_argument("--drain", type=float, default=5000.0, help="the hub's reading rate, messages/s")
    args = ap.parse_args()
    # the test fixture's Mosquitto sets max_queued_messages 100000 itself; the floor restores the default
    floor_conf = "max_queued_messages 1000\nmax_inflight_messages 20"
    sized = (f"max_queued_messages {MAX_QUEUED_MESSAGES}\nmax_queued_bytes {MAX_QUEUED_BYTES}\n"
             f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}")
    for name, extra in (("Mosquitto default queue (floor)", floor_conf), ("generated config", sized)):
        got, rate = run(extra, args.messages, args.drain)
        print(f"{name:34} burst {rate:8.0f} msg/s  hub received {got:6d} / {args.messages}  "
              f"dropped {args.messages - got:6d}")


if __name__ == "__main__":
    main()
