"""``anninh simulate NAME ...``: run one plugin's device simulator in the foreground."""

from __future__ import annotations

import argparse
import sys

from hub.api import CliContext, CommandSpec
from hub.cli.common import config_language, dropin_config_arg, dropin_dir
from hub.i18n import N_, _, tr
from hub.plugins import load_plugins


def cmd_simulate(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    config_language(args)
    sims = load_plugins(dropin_dir(args)).simulators()
    if args.name == "list":
        for name in sorted(sims):
            print(name)
        return 0
    if args.name not in sims:
        print(tr("unknown simulator {name}; available: {names}", name=repr(args.name),
                 names=", ".join(sorted(sims)) or _("none")), file=sys.stderr)
        return 2
    return int(sims[args.name](args.args) or 0)


def _simulate_args(p: argparse.ArgumentParser) -> None:
    dropin_config_arg(p)
    p.add_argument("name", help=_("simulator name (see `anninh simulate list`)"))
    p.add_argument("args", nargs=argparse.REMAINDER, help=_("arguments for the simulator (--help)"))


SIMULATE = CommandSpec(
    name="simulate", help=N_("run a plugin's device simulator (try a config without hardware)"), run=cmd_simulate,
    arguments=_simulate_args, log_options=False,
    description=N_("Run one plugin's device simulator on this machine, to try a config without hardware. "
                   "`anninh simulate list` names them; `anninh simulate NAME --help` shows a simulator's options."))
