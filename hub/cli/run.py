"""``anninh run -c FILE``: the hub in the foreground."""

from __future__ import annotations

import argparse

from hub.api import CliContext, CommandSpec
from hub.cli.common import config_arg, load_or_exit
from hub.i18n import N_

RUN_DESCRIPTION = N_(
    "Run the hub in the foreground: connect to the MQTT broker (or start the embedded one), poll "
    "and listen to every device of the config, run the rules, and publish states and events. "
    "Ctrl-C or SIGTERM stops it after publishing every device offline. Check the config first "
    "with `anninh check -c FILE`.")


def cmd_run(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    from hub.app import run_forever, run_to_end

    config, plugins = load_or_exit(args.config)
    return run_to_end(run_forever(config, plugins))


RUN = CommandSpec(name="run", help=N_("run the hub in the foreground until Ctrl-C or SIGTERM"), run=cmd_run,
                  arguments=config_arg, description=RUN_DESCRIPTION)
