"""kill -9 at any moment leaves the registry (JSON) and the history (SQLite) valid."""

from __future__ import annotations

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

from hub.storage import History, Registry
from hub.testing.mosquitto import Mosquitto

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
