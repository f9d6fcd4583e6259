"""``anninh demo``: a whole simulated commune (the work is in :mod:`hub.demo`)."""

from __future__ import annotations

import argparse

from hub.api import CliContext, CommandSpec
from hub.i18n import N_, _


def cmd_demo(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    from hub.demo import run_demo

    return run_demo(args)


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--speed", type=float, default=240.0,
                   help=_("demo clock speed: simulated seconds per real second (default 240)"))
    p.add_argument("--duration", type=float, default=0.0,
                   help=_("stop after this many real seconds (default: run until Ctrl-C)"))
    p.add_argument("--port", type=int, default=1883, help=_("embedded broker port (default 1883, "
                   "or a free one if taken)"))
    p.add_argument("--no-view", action="store_true", help=_("log lines instead of the live view"))


DEMO = CommandSpec(
    name="demo", help=N_("a whole simulated commune: embedded broker, simulated devices, the hub and a live view"),
    run=cmd_demo, arguments=_demo_args,
    description=N_("A whole simulated commune on this machine: an embedded MQTT broker, simulated UPS units, "
    "meter, relay board, cameras and NVR, the hub, and a scripted evening (dusk, a power cut, an officer "
    "switching a light, power back, morning)."))
