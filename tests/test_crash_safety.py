"""kill -9 at any moment leaves the registry (JSON) and the history (SQLite) valid."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from hub.storage import History, Registry
from tests.support.mosquitto import Mosquitto

# A drop-in plugin (also exercising drop-in discovery) whose devices push state as fast as they can.
FIREHOSE = '''
import asyncio
from hub.api import DeviceConfig, DeviceInfo, Driver, PlatformSpec
from hub.hookspecs import hookimpl

class Firehose(Driver):
    async def connect(self):
        return DeviceInfo(model="Firehose", serial=self.config.id, firmware="9")

    async def listen(self):
        n = 0
        while True:
            n += 1
            self.ctx.update({"n": n})
            if n % 50 == 0:
                self.ctx.event("tick", n=n)
                await asyncio.sleep(0)

@hookimpl
def anninh_platforms():
    return [PlatformSpec(name="firehose", config_model=DeviceConfig, driver=Firehose)]
'''


def _write_setup(tmp_path: Path, port: int) -> Path:
    plugin = tmp_path / "data" / "plugins" / "firehose"
    plugin.mkdir(parents=True)
    (plugin / "manifest.json").write_text(json.dumps({"name": "firehose", "version": "1", "api_version": 1}))
    (plugin / "__init__.py").write_text(FIREHOSE)
    devices = "".join(f"  - {{id: f{i}, platform: firehose, poll_interval: 0.5}}\n" for i in range(20))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(textwrap.dedent(f"""\
        hub: {{data_dir: ./data}}
        mqtt: {{server: "mqtt://127.0.0.1:{port}", discovery: false}}
        devices:
        """) + devices)
    return cfg


def _rows(data: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{data / 'history.db'}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute("SELECT count(*) FROM states").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _check_files(data: Path) -> tuple[int, int]:
    reg = json.loads((data / "registry.json").read_text()) if (data / "registry.json").exists() else {}
    assert isinstance(reg, dict)
    db = sqlite3.connect(data / "history.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    states = db.execute("SELECT count(*) FROM states").fetchone()[0]
    events = db.execute("SELECT count(*) FROM events").fetchone()[0]
    db.close()
    return states, events


def test_kill_9_during_heavy_history_writes(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = _write_setup(tmp_path, mosquitto.port)
    rng = random.Random(7)
    total_states = 0
    for _round in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "-q", "run", "-c", str(cfg)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while _rows(tmp_path / "data") <= total_states:  # the hub is up and writing
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the hub wrote nothing"
            time.sleep(0.1)
        time.sleep(rng.random() * 2.0)  # then at a random moment of the flush cycle
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        states, events = _check_files(tmp_path / "data")
        assert states > total_states
        total_states = states
    assert events > 0
    # and the hub's own classes open them again
    hist = History(tmp_path / "data" / "history.db")
    assert hist.states("f0")
    hist.close()
    reg = Registry(tmp_path / "data" / "registry.json")
    assert reg.get("f0") and reg.get("f0")["model"] == "Firehose"  # type: ignore[index]
    reg.close()


REGISTRY_WRITER = """
import sys, datetime
from pathlib import Path
from hub.storage import Registry
reg = Registry(Path(sys.argv[1]))
i = 0
while True:
    i += 1
    for d in range(200):
        reg.seen(f"dev-{d}", "x", datetime.datetime.now(datetime.UTC))
    reg.flush()
    print(i, flush=True)
"""


def test_kill_9_during_registry_writes(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    script = tmp_path / "writer.py"
    script.write_text(REGISTRY_WRITER)
    rng = random.Random(3)
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one full write happened
        time.sleep(rng.random() * 0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        data = json.loads(path.read_text())
        assert len(data["devices"]) == 200
    assert Registry(path).get("dev-0") is not None
    # temp files of interrupted writes are swept when the registry is opened
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# ---------------------------------------------------------------- what an acknowledgement promises
LIGHT_HUB = """\
hub: {{data_dir: ./data, language: en}}
mqtt: {{server: "mqtt://127.0.0.1:{mqtt}", discovery: false}}
devices:
  - {{id: light-1, platform: lighting, driver: modbus_coil, host: 127.0.0.1, port: {relay}, unit: 1, channel: 0,
     poll_interval: 0.5, timeout: 1}}
users: [{{name: an, role: officer, password: officer-pw-1}}]
"""


def _start_hub(cfg: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "hub.cli", "-q", "run", "-c", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _audit(data: Path) -> list[tuple[str | None, dict[str, Any], str]]:
    db = sqlite3.connect(f"file:{data / 'history.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT user, command, result FROM audit ORDER BY rowid").fetchall()
    finally:
        db.close()
    return [(u, json.loads(c), r) for u, c, r in rows]


async def test_kill_9_after_acknowledged_commands(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The hub as a real process, a real Mosquitto, the relay-board simulator: commands sent with
    QoS 1 by an officer's client, SIGKILL one second after the PUBACK, and again at once after it.
    After each restart the manual hold is back and every acknowledged command is in the audit."""
    from plugins.lighting.simulator import RelayBoardSimulator
    from tests.support.mqtt import Recorder

    async with RelayBoardSimulator({1: "waveshare"}, port=0) as sim:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(LIGHT_HUB.format(mqtt=mosquitto.port, relay=sim.port))
        cfg.chmod(0o600)
        data = tmp_path / "data"
        rec = await asyncio.to_thread(Recorder, mosquitto.port, ("anninh/light-1", "anninh/light-1/availability"))

        async def up(mark: int) -> None:
            await asyncio.to_thread(rec.wait_topic, "anninh/light-1/availability",
                                    lambda j: j["state"] == "online", 30, mark)

        proc = _start_hub(cfg)
        try:
            await up(0)
            # 1. a manual hold, acknowledged, then kill -9 one second later
            sim.press(1, 0, True)
            await asyncio.to_thread(rec.publish, "anninh/light-1/set/an", json.dumps({"state": "OFF", "hold": 3600}))
            await asyncio.sleep(1.0)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            assert sim.relay(1, 0) is False
            assert (None, {}, "") not in _audit(data)
            assert [c for u, c, r in _audit(data) if u == "an"] == [{"state": "OFF", "hold": 3600}]
            mark = rec.count()
            proc = _start_hub(cfg)
            await up(mark)
            st = await asyncio.to_thread(rec.wait_topic, "anninh/light-1", lambda j: j.get("mode") is not None,
                                         30, mark)
            assert st["mode"] == "manual" and st["hold_until"], st
            assert "kept across a hub restart" in st["reason"]

            # 2. twenty commands, each acknowledged by the broker; kill -9 the moment the last
            # PUBACK arrives (the hub may not even have read them: its persistent session gets them
            # again after the restart)
            holds = list(range(100, 120))
            for h in holds:
                await asyncio.to_thread(rec.publish, "anninh/light-1/set/an",
                                        json.dumps({"state": "ON" if h % 2 else "OFF", "hold": h}))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            mark = rec.count()
            proc = _start_hub(cfg)
            await up(mark)
            deadline = asyncio.get_running_loop().time() + 30
            while not set(holds) <= {c.get("hold") for u, c, r in _audit(data) if u == "an"}:
                assert asyncio.get_running_loop().time() < deadline, _audit(data)
                await asyncio.sleep(0.2)
            # 3. commands carried out (their new state seen), kill -9 0.1 s later, well within the
            # history's 1 s flush: the audit rows are in the file already, before any restart
            before = len(_audit(data))
            for h in range(200, 205):
                mark = rec.count()
                want = "ON" if h % 2 else "OFF"
                await asyncio.to_thread(rec.publish, "anninh/light-1/set/an", json.dumps({"state": want, "hold": h}))

                def reached(j: Any, w: str = want) -> bool:
                    return bool(j.get("state") == w)

                await asyncio.to_thread(rec.wait_topic, "anninh/light-1", reached, 10, mark)
            await asyncio.sleep(0.1)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            rows = _audit(data)[before:]
            assert [(c["hold"], r) for u, c, r in rows] == [(h, "ok") for h in range(200, 205)]
            # and the hold of the last one is what a restarted hub restores
            mark = rec.count()
            proc = _start_hub(cfg)
            await up(mark)
            st = await asyncio.to_thread(rec.wait_topic, "anninh/light-1", lambda j: j.get("mode") is not None,
                                         30, mark)
            assert st["mode"] == "manual" and "kept across a hub restart" in st["reason"], st
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
            rec.close()
    assert History(data / "history.db").audit()  # the hub's own class reads the file again


async def test_outbox_survives_a_hub_restart_during_a_broker_outage(tmp_path: Path) -> None:
    """Events emitted while the broker is down are in outbox.db; a hub restarted before the
    broker comes back sends them afterwards, oldest first, once."""
    from tests import plugin_echo
    from tests.support.hubrun import hub_from_yaml, make_plugins
    from tests.support.mqtt import Recorder

    workdir = tmp_path / "mosq"
    workdir.mkdir()
    broker = Mosquitto(workdir=workdir).start()
    yaml_text = f"""
hub: {{data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{broker.port}", discovery: false}}
devices: [{{id: e1, platform: echo}}]
"""
    pm = make_plugins(("echo", plugin_echo), builtin=False)
    try:
        async with hub_from_yaml(yaml_text, tmp_path, plugins=pm) as running:
            conn = running.bridge.conn
            broker.kill()
            deadline = asyncio.get_running_loop().time() + 10
            while conn.connected:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            for n in range(1, 51):
                running.hub.emit("test_marker", device="e1", n=n)
            await asyncio.sleep(0.05)  # the loop turn's outbox commit
            assert len(conn.queue) >= 50
        assert (tmp_path / "data" / "outbox.db").stat().st_mode & 0o777 == 0o600
        broker.start()
        rec = await asyncio.to_thread(Recorder, broker.port, ("anninh/bridge/event",))
        async with hub_from_yaml(yaml_text, tmp_path, plugins=pm) as running:
            await asyncio.to_thread(rec.wait_event, "anninh", "test_marker", 15.0, 0, n=50)
            await asyncio.sleep(0.3)
            markers = [e["n"] for e in rec.events("anninh", "test_marker")]
            assert markers == list(range(1, 51)), markers
            deadline = asyncio.get_running_loop().time() + 5
            while len(running.bridge.conn.queue):  # rows leave the outbox at their PUBACK
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
        rec.close()
    finally:
        plugin_echo.BEHAVIOUR.clear()
        broker.stop()


def test_outbox_is_bounded_in_order_and_counts_what_it_drops(tmp_path: Path) -> None:
    from hub.storage import Outbox

    box = Outbox(tmp_path / "outbox.db", max_rows=100)
    for i in range(250):
        box.put("t", str(i).encode(), 1, False)
        if i % 40 == 0:
            box.commit()
    box.close()
    box = Outbox(tmp_path / "outbox.db", max_rows=100)  # reopened: the rows and the count are kept
    rows = box.rows()
    assert [int(r[2]) for r in rows] == list(range(150, 250))
    assert box.take_dropped() == 150 and box.take_dropped() == 0
    for r in rows[:10]:
        box.done(r[0])
    box.commit()
    assert len(box) == 90 and int(box.rows()[0][2]) == 160
    box.close()


def test_history_size_budget_keeps_the_audit(tmp_path: Path) -> None:
    import datetime as dt

    hist = History(tmp_path / "history.db", max_bytes=200_000)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for i in range(3000):
        when = t0 + dt.timedelta(seconds=i)
        hist.add_event(when, "tick", "d", None, {"n": i, "pad": "x" * 100})
        if i % 100 == 0:
            hist.add_audit(when, "an", "d", {"state": "ON"}, "ok")
        hist.add_state(when, f"d{i % 7}", {"n": i})
        if i % 500 == 0:
            hist.flush()
    hist.flush()
    assert hist.size() > 200_000
    assert hist.enforce_budget() > 0
    assert hist.size() <= 200_000
    events = hist.events()
    assert events and events[-1]["n"] == 2999 and events[0]["n"] > 0  # the oldest went
    assert len(hist.audit()) == 30
    hist.close()
