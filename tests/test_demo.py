"""`anninh demo` plays its whole scenario on the embedded broker (run as a real command)."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from hub.broker import free_port
from hub.cli import build_parser
from hub.demo import Demo, story_seconds


def test_demo_scenario_runs_end_to_end() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "demo", "--no-view", "--speed", "600", "--duration", "30", "--port", "0",
         "--lang", "en"],
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
    # the officer's export over MQTT: the events, and the sealed package's path on the phone
    assert 'event export_started {"device": "nvr-post"' in out, out[-3000:]
    assert re.search(r'event export_done \{"device": "nvr-post".*"complete": true', out), out[-3000:]
    assert re.search(r"The officer's phone gets the package nvr-post-ch01-\S+ \(complete\): /\S+/data/exports/", out)
    # a camera broken at a house with power: a maintenance ticket for the contractor
    assert 'event ticket_opened {"device": "cam-kp2"' in out, out[-3000:]
    assert '"contractor": "thau1"' in out
    # morning: lights off
    assert "light-kp3 -> OFF: daylight" in out
    assert "mosquitto_pub -h 127.0.0.1" in out
    assert "Traceback" not in out
    assert "Scenario complete" in out  # the whole story fits the duration
    # at the end, the report of the evening, from the hub's history
    report = re.search(r"(/\S+-report\.html)$", out, re.MULTILINE)
    assert report and "kp5-hoa" in Path(report.group(1)).read_text(encoding="utf-8"), out[-2000:]


# ---------------------------------------------------------------- the story's length, from the script

README = Path(__file__).resolve().parents[1] / "README.md"


def test_story_ends_within_the_readme_duration_all_year(tmp_path: Path) -> None:
    """`anninh demo --no-view --duration N` (N from the README) prints the whole story at the default
    speed, on any day of the year (dusk and dawn, which the story follows, move with the season)."""
    match = re.search(r"anninh demo --no-view --duration (\d+)", README.read_text())
    assert match, "the README no longer shows the --no-view --duration command"
    readme_duration = float(match.group(1))
    speed = build_parser().parse_args(["demo"]).speed
    for month in range(1, 13):
        for day in (1, 15):
            demo = Demo(speed, 0, tmp_path, day=date(2026, month, day), lang="en")
            steps = demo.steps()
            seconds = story_seconds(steps, speed)
            assert seconds < readme_duration - 15, (month, day, seconds)  # time left to read the end
            assert steps[-1].text.startswith("Scenario complete")
            # in order on the demo clock, the night jump aside, and around the real dusk and dawn
            clock = steps[0].at
            for step in steps:
                assert step.at >= clock, (step.text, step.at, clock)
                clock = step.jump_to or step.at
            sunset = next(s for s in steps if s.text.startswith("The sun is setting"))
            sunrise = next(s for s in steps if s.text.startswith("Dawn"))
            assert steps[0].at < sunset.at < demo.dusk < steps[2].at
            assert sunset.at.date() < sunrise.at.date() and sunrise.at < demo.dawn < steps[-1].at


# ---------------------------------------------------------------- the live view, at real terminal sizes

def _screen(demo: Demo, width: int, height: int) -> list[str]:
    console = Console(width=width, height=height, record=True, file=io.StringIO(), color_system="truecolor")
    console.print(demo.render(width, height))
    return console.export_text().rstrip("\n").split("\n")


async def test_live_view_fits_the_terminal_and_shows_the_newest(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """After the whole story and 60 commands from 60 people, the view at 80×24 and 160×50 (and other
    sizes) is no taller or wider than the terminal, and shows the newest event and the commands."""
    speed = 2400.0
    demo = Demo(speed, free_port(), tmp_path, lang="en")
    runner = asyncio.create_task(demo.run(0, view=False))
    try:
        await asyncio.wait_for(demo.done.wait(), 60)
        # the play loop keeps the time the script says (the README's duration is checked on that)
        assert demo.played_seconds is not None
        assert abs(demo.played_seconds - story_seconds(demo.steps(), speed)) < 0.5, demo.played_seconds
        for i in range(1, 61):  # a long evening: each command is an event on the bus, by its user
            demo.publish(f"anninh/light-kp3/set/u{i:02d}", '{"state":"ON"}' if i % 2 else '{"state":"OFF"}')
        for _ in range(200):
            last = demo.events[-1] if demo.events else None
            if last is not None and last.type == "command" and last.as_json().get("user") == "u60":
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"the 60th command never came back as an event: {list(demo.events)[-3:]}")

        for width, height in ((80, 24), (160, 50), (100, 30), (140, 30), (60, 15), (200, 60)):
            rows = _screen(demo, width, height)
            shown = "\n".join(rows)
            assert len(rows) <= height, (width, height, shown)
            assert max(cell_len(r) for r in rows) <= width, (width, height, shown)
            assert "Layout(" not in shown, (width, height, shown)  # no empty region's placeholder
            assert '"user":"u60"' in shown, (width, height, shown)  # the newest event
            assert '"user":"u01"' not in shown, (width, height, shown)  # not the oldest instead
            assert "Scenario complete" in shown, (width, height, shown)  # the newest narration
            if height >= 16:
                assert "Try it by hand" in shown
            # the one command that switches a light is on screen whole, on one line
            switch = demo.commands(short=True)[1]
            assert any(switch in r for r in rows) or width < len(switch) + 5, (width, height, shown)

        small = _screen(demo, 80, 24)
        ev = next(i for i, r in enumerate(small) if '"user":"u60"' in r)
        assert small[ev + 1].lstrip("─ ").startswith("Try it by hand"), small  # newest event at the bottom
        large = _screen(demo, 160, 50)
        for command in demo.commands():  # every command, whole, in the box
            assert any(command in r for r in large), (command, large)
        assert any("cam-kp3" in r for r in large)  # the device list has room there
    finally:
        demo.stop.set()
        await asyncio.wait_for(runner, 30)
    out = capsys.readouterr().out
    assert "Scenario complete" in out and "Traceback" not in out
