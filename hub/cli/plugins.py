"""``anninh plugins``: the loaded plugins, their platforms and rules, and what failed to load."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub import API_VERSION
from hub.api import CliContext, CommandSpec
from hub.cli.common import dropin_config_arg, dropin_dir
from hub.plugins import load_plugins


def cmd_plugins(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    plugins = load_plugins(dropin_dir(args))
    print(f"hub API version {API_VERSION}")
    for name, p in plugins.plugins.items():
        version = p.manifest.version if p.manifest else "-"
        print(f"plugin {name} {version} ({p.source})")
    for name, spec in sorted(plugins.platforms().items()):
        print(f"  platform {name}: {spec.description}")
    for name, rule in sorted(plugins.rules().items()):
        print(f"  rule {name}{'' if rule.default_enabled else ' (off by default)'}: {rule.description}")
    for problem in plugins.problems:
        print(f"problem: {problem}")
    return 0


def _plugins_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help="also load drop-ins from DIR/plugins")
    dropin_config_arg(p)



PLUGINS = CommandSpec(
    name="plugins", help="list plugins, platforms and rules", run=cmd_plugins, arguments=_plugins_args,
    description="List the loaded plugins, their platforms and rules, and any plugin that failed to load.")
