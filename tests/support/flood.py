"""A command flood against a real hub process (issue 15), shared by ``bench/bench_command_flood.py``
and its scaled-down test: one account publishes malformed ``/set`` commands at a fixed rate
(QoS 1, its own process) while an officer's client sends valid light commands; then the valid
commands lost (not carried out and audited), the history's growth, the rejections reported and
the broker's warnings are counted.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Recorder

FLOODER = r"""
import subprocess, sys, time

port, rate, seconds, topic = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
# mosquitto_pub (C) publishes each stdin line at QoS 1 with up to 1000 in flight; this process only
# paces the lines, so the rate does not depend on a Python MQTT client keeping up
pub = subprocess.Popen(["mosquitto_pub", "-p", str(port), "-i", "flooder", "-q", "1", "-M", "1000", "-l",
                        "-t", topic], stdin=subprocess.PIPE)
payloads = [b"{not json\n", b'{"state":\n', b"[1,2\n", b'{"state":"ON","state":"OFF"}\n', b'"ON"\n']
sent = 0
start = time.monotonic()
while True:
    elapsed = time.monotonic() - start
    if elapsed >= seconds:
        break
    due = int(elapsed * rate)
    batch = b"".join(payloads[i % len(payloads)] for i in range(sent, due))
    if batch:
        pub.stdin.write(batch)
        pub.stdin.flush()
        sent = due
    time.sleep(0.002)
took = time.monotonic() - start
pub.stdin.close()
pub.wait(60)
print(sent, sent, round(took, 2), flush=True)
"""

CONFIG = """\
hub: {{data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mqtt}", discovery: false}}
devices:
  - {{id: light-1, platform: lighting, driver: modbus_coil, host: 127.0.0.1, port: {relay}, unit: 1, channel: 0,
     poll_interval: 5, timeout: 2}}
users:
  - {{name: an, role: officer, password: officer-an-pw}}
  - {{name: rogue, role: officer, password: officer-rogue-pw}}
"""


def _history_bytes(data: Path) -> int:
    """Bytes of data in history.db (pages in use, the WAL's included), not the file's size."""
    db = sqlite3.connect(f"file:{data / 'history.db'}?mode=ro", uri=True, timeout=5)
    try:
        pages, free, size = (db.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
    finally:
        db.close()
    return int((pages - free) * size)


def _history_rows(data: Path) -> int:
    db = sqlite3.connect(f"file:{data / 'history.db'}?mode=ro", uri=True, timeout=5)
    try:
        return sum(int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in ("states", "events", "audit"))
    finally:
        db.close()


def _audit_ok(data: Path, user: str) -> list[int]:
    db = sqlite3.connect(f"file:{data / 'history.db'}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT command FROM audit WHERE user=? AND result='ok'", (user,)).fetchall()
    finally:
        db.close()
    return [json.loads(r[0]).get("hold", 0) for r in rows]


def flood(tmp: Path, *, rate: float = 20000, seconds: float = 5.0, valid: int = 20) -> dict[str, Any]:
    """Runs the whole scenario (bounded: about ``seconds`` + 30 s at most) and returns the figures."""
    from plugins.lighting.simulator import RelayBoardSimulator

    loop = asyncio.new_event_loop()
    sim = RelayBoardSimulator({1: "waveshare"}, port=0)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(sim.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    out: dict[str, Any] = {}
    with Mosquitto(workdir=tmp) as broker:
        cfg = tmp / "config.yaml"
        cfg.write_text(CONFIG.format(mqtt=broker.port, relay=sim.port))
        cfg.chmod(0o600)
        data = tmp / "data"
        (tmp / "flooder.py").write_text(textwrap.dedent(FLOODER))
        rec = Recorder(broker.port, ("anninh/light-1", "anninh/light-1/availability", "anninh/bridge/event"))

        def start_hub() -> subprocess.Popen[bytes]:
            mark = rec.count()
            with open(tmp / "hub.log", "ab") as log:  # a file, not a pipe nobody reads while the hub runs
                proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "-q", "run", "-c", str(cfg)],
                                        stdout=subprocess.DEVNULL, stderr=log)
            rec.wait_topic("anninh/light-1/availability", lambda j: j["state"] == "online", 30, mark)
            return proc

        def stop_hub(proc: subprocess.Popen[bytes]) -> str:
            proc.terminate()
            proc.wait(30)
            return (tmp / "hub.log").read_text(errors="replace")

        stop_hub(start_hub())  # creates the files; the size before is that of a settled history
        before, rows_before = _history_bytes(data), _history_rows(data)
        hub = start_hub()
        try:
            flooder = subprocess.Popen([sys.executable, str(tmp / "flooder.py"), str(broker.port), str(rate),
                                        str(seconds), "anninh/light-1/set/rogue"], stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)
            holds = list(range(100, 100 + valid))
            latencies: list[float] = []
            gap = max(seconds - 1.0, 0.5) / valid
            for i, hold in enumerate(holds):
                mark = rec.count()
                want = "ON" if i % 2 == 0 else "OFF"
                t0 = time.perf_counter()
                rec.publish("anninh/light-1/set/an", json.dumps({"state": want, "hold": hold}))

                def reached(j: Any, w: str = want) -> bool:
                    return bool(j.get("state") == w)

                try:
                    rec.wait_topic("anninh/light-1", reached, 15, mark)
                    latencies.append(time.perf_counter() - t0)
                except TimeoutError:
                    pass
                time.sleep(max(0.0, gap - (time.perf_counter() - t0)))
            sent, acked, took = flooder.communicate(timeout=60)[0].split()
            time.sleep(1.0)
            audited = set(_audit_ok(data, "an"))
        finally:
            log = stop_hub(hub)
        rejected = [e for e in rec.events("anninh", "command_rejected") if e.get("user") == "rogue"]
        rec.close()
        out.update(
            flood_sent=int(sent), flood_acked=int(acked), flood_seconds=float(took),
            valid_sent=len(holds), valid_applied=len(latencies), valid_audited=len(audited & set(holds)),
            latency_p50=sorted(latencies)[len(latencies) // 2] if latencies else None,
            latency_max=max(latencies) if latencies else None,
            rejected_events=len(rejected), rejected_counted=sum(e.get("count", 1) for e in rejected),
            history_growth=_history_bytes(data) - before, history_rows=_history_rows(data) - rows_before,
            broker_warnings=[line for line in broker.log.read_text(errors="replace").splitlines()
                             if "drop" in line.lower()][:5],
            hub_log_lines=len(log.splitlines()))
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    return out
