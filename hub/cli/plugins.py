"""``anninh plugins``: the loaded plugins, their platforms and rules, and what failed to load."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub import API_VERSION
from hub.api import CliContext, CommandSpec
from hub.cli.common import config_language, dropin_config_arg, dropin_dir
from hub.i18n import N_, _, tr
from hub.plugins import load_plugins


def cmd_plugins(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    config_language(args)
    plugins = load_plugins(dropin_dir(args))
    print(tr("hub API version {version}", version=API_VERSION))
    for name, p in plugins.plugins.items():
        version = p.manifest.version if p.manifest else "-"
        print(tr("plugin {name} {version} ({source})", name=name, version=version, source=p.source))
    for name, spec in sorted(plugins.platforms().items()):
        print(tr("  platform {name}: {description}", name=name, description=spec.description))
    for name, rule in sorted(plugins.rules().items()):
        if rule.default_enabled:
            print(tr("  rule {name}: {description}", name=name, description=rule.description))
        else:
            print(tr("  rule {name} (off by default): {description}", name=name, description=rule.description))
    for problem in plugins.problems:
        print(tr("problem: {problem}", problem=problem))
    return 0


def _plugins_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help=_("also load drop-ins from DIR/plugins"))
    dropin_config_arg(p)



PLUGINS = CommandSpec(
    name="plugins", help=N_("list plugins, platforms and rules"), run=cmd_plugins, arguments=_plugins_args,
    description=N_("List the loaded plugins, their platforms and rules, and any plugin that failed to load."))
