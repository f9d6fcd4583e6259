"""Issue 15: a hub without cameras does not load the video stack (numpy, OpenCV, PyAV).

``anninh run`` in its own process, with a UPS, a meter and a relay board (their plugins'
simulators, other processes) and a real Mosquitto; the modules it imported are read at its exit.
bench/bench_core.py measures the same hub's resident memory (target <= 50 MB)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.support.idle import run_idle_hub


def test_modbus_only_hub_does_not_import_the_video_stack(mosquitto: Any, tmp_path: Path) -> None:
    result = run_idle_hub(tmp_path, mosquitto.port, idle=0.5)
    assert "hub.core" in result.modules and "pymodbus" in result.modules  # it did run
    assert result.video_modules() == [], result.video_modules()
    # nor the camera drivers' HTTP and SOAP stacks: no camera is configured
    heavy = [m for m in result.modules if m.split(".")[0] in ("aiohttp", "zeep", "onvif", "httpx", "lxml")]
    assert heavy == [], heavy


def test_the_video_stack_still_loads_when_asked() -> None:
    """The lazy imports lead somewhere: the image checks import OpenCV and numpy on first use."""
    import subprocess

    code = ("import sys; from plugins.image_health.monitor import HealthOptions; "
            "assert 'cv2' not in sys.modules; from plugins.image_health.sources import check_snapshot; "
            "print('cv2' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["True", "True"]
