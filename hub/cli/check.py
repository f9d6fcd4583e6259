"""``anninh check -c FILE``: validate a config without connecting to anything."""

from __future__ import annotations

import argparse
import sys

from hub.api import CliContext, CommandSpec
from hub.cli.common import config_arg, load_or_exit

CHECK_DESCRIPTION = (
    "Validate a config without connecting to anything: YAML, !secret values from secrets.yaml, "
    "every device's platform keys, sites, users and rule options. Exit 0 if it is valid; exit 1 "
    "with one `file:line: field: problem` line per error.")


def cmd_check(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    config, plugins = load_or_exit(args.config)
    for problem in plugins.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if config.mqtt.server == "embedded" and config.users:
        from hub.broker import INSTALL_HINT, mosquitto_binary

        if not mosquitto_binary():
            print(f"warning: users: with `mqtt.server: embedded` need Mosquitto, not installed here ({INSTALL_HINT}); "
                  "`anninh run` refuses to start without it", file=sys.stderr)
    print(f"{args.config}: OK ({len(config.sites)} site(s), {len(config.devices)} device(s), "
          f"{len(config.users)} user(s), rules: "
          f"{', '.join(n for n, on in sorted(config.rules_enabled.items()) if on) or 'none'})")
    return 0


CHECK = CommandSpec(name="check", help="validate a config: exit 0 if valid, 1 with every error's file:line",
                    run=cmd_check, arguments=config_arg, description=CHECK_DESCRIPTION)
