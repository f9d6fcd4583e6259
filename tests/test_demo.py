"""`anninh demo` plays its whole scenario on the embedded broker (run as a real command)."""

from __future__ import annotations

import subprocess
import sys


def test_demo_scenario_runs_end_to_end() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "demo", "--no-view", "--speed", "600", "--duration", "45", "--port", "0"],
        capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    # dusk: the rule switches both black-spot lights on
    assert "light-kp3 -> ON: night at a black spot" in out, out[-3000:]
    # the power cut at kp3-tam and its end, as events on the bus
    assert 'event power_lost {"site": "kp3-tam"' in out
    assert 'event low_battery {"device": "ups-kp3"' in out
    assert 'event power_restored {"site": "kp3-tam"' in out
    # the officer's command came in over MQTT with his name
    assert '"user": "an"' in out and '"command": {"state": "OFF"}' in out
    # the house without a UPS: suspected power loss, and the camera's offline cause
    assert 'event power_suspected_lost {"site": "kp5-hoa"' in out
    assert '"cause": "site_power_lost"' in out
    # the recorder keeps 12 days against a 30-day target
    assert '"days": 12, "target": 30' in out
    # morning: lights off
    assert "light-kp3 -> OFF: daylight" in out
    assert "mosquitto_pub -h 127.0.0.1" in out
    assert "Traceback" not in out
