"""An idle hub in its own process (``anninh run``) with three Modbus devices: a UPS, a power meter
and a relay board, each served by its plugin's simulator in another process. Used by
``bench/bench_core.py`` (resident memory) and ``tests/test_memory.py`` (no video stack imported).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from hub.process import stop_process
from tests.support.mosquitto import _free_port
from tests.support.mqtt import Recorder

VIDEO_STACK = ("cv2", "av", "numpy")
"""Top-level packages a hub without cameras must not import (tens of MB resident)."""

_HUB = """
import atexit, json, os, sys
def _modules():
    with open(os.environ["ANNINH_MODULES_OUT"], "w") as f:
        json.dump(sorted(sys.modules), f)
atexit.register(_modules)
from hub.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""The ``anninh`` console script's body (``hub.cli:main``), plus the list of imported modules
written at exit."""


@dataclass
class IdleHub:
    rss_mb: float
    """VmRSS of the hub process once its three devices are online and it has idled."""
    modules: list[str] = field(default_factory=list)
    """Every module the hub process had imported when it stopped."""

    def video_modules(self) -> list[str]:
        return [m for m in self.modules if m.split(".")[0] in VIDEO_STACK]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bare_python_rss_mb() -> float:
    """The floor: an idle Python process with the libraries the hub cannot do without (asyncio,
    paho-mqtt, pymodbus, pydantic, PyYAML) imported and nothing else."""
    code = ("import asyncio, paho.mqtt.client, pymodbus.client, pydantic, yaml, sys; "
            "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]); sys.stdout.flush()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout.strip()) / 1024


def config_text(broker_port: int, ups_port: int, relay_port: int) -> str:
    return textwrap.dedent(f"""\
        hub: {{name: Idle post, data_dir: ./data}}
        mqtt: {{server: "mqtt://127.0.0.1:{broker_port}", discovery: false}}
        web: {{enabled: false}}  # the hub core alone (the console's server: docs/web.md, bench/bench_web.py)
        sites: [{{id: kp3}}]
        devices:
          - {{id: ups-kp3, platform: ups_modbus, site: kp3, model: apc_smt, host: 127.0.0.1, port: {ups_port},
             unit: 1}}
          - {{id: meter-kp3, platform: ups_modbus, site: kp3, model: sdm120, host: 127.0.0.1, port: {ups_port},
             unit: 2}}
          - {{id: light-kp3, platform: lighting, site: kp3, driver: modbus_coil, host: 127.0.0.1,
             port: {relay_port}, unit: 1, channel: 0}}
        """)


def run_idle_hub(workdir: Path, broker_port: int, idle: float = 3.0, timeout: float = 30.0) -> IdleHub:
    """Start the simulators and ``anninh run`` (each its own process), wait until the three devices
    are online, let the hub idle ``idle`` seconds, read its RSS, stop it with SIGTERM."""
    ups_port, relay_port = _free_port(), _free_port()
    cfg = workdir / "config.yaml"
    cfg.write_text(config_text(broker_port, ups_port, relay_port))
    cfg.chmod(0o600)
    env = {**os.environ, "ANNINH_MODULES_OUT": str(workdir / "modules.json")}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    sims = [
        subprocess.Popen([sys.executable, "-m", "plugins.ups_modbus.simulator", "--unit", "1=apc_smt",
                          "--unit", "2=sdm120", "--port", str(ups_port)], cwd=root, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "plugins.lighting.simulator", "board", "--port", str(relay_port)],
                         cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    rec = Recorder(broker_port, topics=("anninh/+/availability",))
    hub = None
    try:
        hub = subprocess.Popen([sys.executable, "-c", _HUB, "run", "-c", str(cfg), "-q"], cwd=workdir, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for device in ("ups-kp3", "meter-kp3", "light-kp3"):
            rec.wait_topic(f"anninh/{device}/availability", lambda j: j["state"] == "online", timeout=timeout)
        time.sleep(idle)
        rss = rss_mb(hub.pid)
        hub.send_signal(signal.SIGTERM)
        try:
            _, err = hub.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            stop_process(hub)
            raise RuntimeError("the hub did not stop within 15 s of SIGTERM") from None
        if hub.returncode != 0:
            raise RuntimeError(f"anninh run exited {hub.returncode}: {err.decode(errors='replace')[-2000:]}")
        modules = json.loads((workdir / "modules.json").read_text())
        return IdleHub(rss_mb=rss, modules=modules)
    finally:
        rec.close()
        if hub is not None and hub.poll() is None:
            stop_process(hub)
        for p in sims:
            stop_process(p)
