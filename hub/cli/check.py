"""``anninh check -c FILE``: validate a config without connecting to anything."""

from __future__ import annotations

import argparse
import sys

from hub.api import CliContext, CommandSpec
from hub.cli.common import config_arg, load_or_exit
from hub.i18n import N_, _, tr

CHECK_DESCRIPTION = N_(
    "Validate a config without connecting to anything: YAML, !secret values from secrets.yaml, "
    "every device's platform keys, sites, users and rule options. Exit 0 if it is valid; exit 1 "
    "with one `file:line: field: problem` line per error.")


def cmd_check(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    config, plugins = load_or_exit(args.config)
    for problem in plugins.problems:
        print(tr("warning: {problem}", problem=problem), file=sys.stderr)
    if config.mqtt.server == "embedded" and config.users:
        from hub.broker import INSTALL_HINT, mosquitto_binary

        if not mosquitto_binary():
            print(tr("warning: users: with `mqtt.server: embedded` need Mosquitto, not installed here ({hint}); "
                     "`anninh run` refuses to start without it", hint=INSTALL_HINT), file=sys.stderr)
    print(tr("{path}: OK ({sites} site(s), {devices} device(s), {users} user(s), rules: {rules})",
             path=args.config, sites=len(config.sites), devices=len(config.devices), users=len(config.users),
             rules=", ".join(n for n, on in sorted(config.rules_enabled.items()) if on) or _("none")))
    return 0


CHECK = CommandSpec(name="check", help=N_("validate a config: exit 0 if valid, 1 with every error's file:line"),
                    run=cmd_check, arguments=config_arg, description=CHECK_DESCRIPTION)
