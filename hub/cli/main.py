"""The ``anninh`` command line: the parser, and the one place commands are registered.

    anninh run -c config.yaml        run the hub until Ctrl-C / SIGTERM
    anninh check -c config.yaml      validate a config (exit 1 with file:line: field: problem)
    anninh demo                      a whole simulated commune on this machine, with a live view
    anninh plugins                   list loaded plugins, platforms and rules
    anninh simulate NAME ...         run one plugin's device simulator

One module per command (:mod:`hub.cli.run`, :mod:`hub.cli.check`, ...), each defining a
:class:`hub.api.CommandSpec`; plugins add theirs through the ``anninh_commands`` hook. To add a
built-in command: write its module and add its spec to :data:`BUILTIN` (or :data:`EXTRA`).
"""

from __future__ import annotations

import argparse
import logging
import sys

from hub import API_VERSION, __version__
from hub.api import CommandSpec
from hub.cli import acl, check, demo, discover, plugins, run, simulate
from hub.cli.common import Cli, apply_lang, lang_arg, setup_logging
from hub.export.cli import EXPORT
from hub.i18n import _
from hub.ops.report.cli import REPORT
from hub.ops.tickets_cli import TICKETS
from hub.plugins import PluginManager, load_plugins

log = logging.getLogger("hub.cli")

BUILTIN: tuple[CommandSpec, ...] = (run.RUN, check.CHECK, demo.DEMO, plugins.PLUGINS, simulate.SIMULATE)
"""Listed first, in this order, in ``anninh --help``."""
EXTRA: tuple[CommandSpec, ...] = (acl.ACL, discover.DISCOVER, EXPORT, TICKETS, REPORT)
"""Listed after, sorted by name together with the plugins' commands."""


def plugin_commands(taken: set[str], pm: PluginManager | None = None) -> list[CommandSpec]:
    """The commands of built-in and installed plugins (a name already taken is logged and skipped)."""
    pm = pm or load_plugins(None)
    out = []
    for spec in pm.commands():
        if spec.name in taken:
            log.error("plugin command %r left out: the name is taken", spec.name)
            continue
        taken.add(spec.name)
        out.append(spec)
    return out


def build_parser(plugins: PluginManager | None = None) -> argparse.ArgumentParser:
    """The whole parser; ``plugins`` (default: built-in and installed ones) add their commands."""
    parser = argparse.ArgumentParser(
        prog="anninh",
        description=_("AnNinh Hub: cameras, recorders, UPS units and black-spot lights of a commune "
                      "police post, on MQTT. Start with `anninh demo`, then write a config and run "
                      "`anninh check -c config.yaml` and `anninh run -c config.yaml`."))
    parser.add_argument("--version", action="version", version=f"anninh {__version__} (plugin API {API_VERSION})")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help=_("more log lines (-v debug, -vv also library debug)"))
    parser.add_argument("-q", "--quiet", action="store_true", help=_("warnings and errors only"))
    lang_arg(parser)
    # -v/-q also after the command (`anninh run -c x -v`); SUPPRESS keeps what was given before it
    logging_opts = argparse.ArgumentParser(add_help=False)
    logging_opts.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                              help=_("more log lines (-v debug, -vv also library debug)"))
    logging_opts.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                              help=_("warnings and errors only"))
    lang_opts = argparse.ArgumentParser(add_help=False)
    lang_arg(lang_opts)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    taken = {spec.name for spec in (*BUILTIN, *EXTRA)}
    extra = sorted((*EXTRA, *plugin_commands(taken, plugins)), key=lambda spec: spec.name)
    for spec in (*BUILTIN, *extra):
        text = _(spec.help)
        description = _(spec.description) if spec.description else text[:1].upper() + text[1:] + "."
        p = sub.add_parser(spec.name, help=text, description=description,
                           parents=[logging_opts, lang_opts] if spec.log_options else [lang_opts])
        if spec.arguments is not None:
            spec.arguments(p)
        p.set_defaults(func=spec.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    apply_lang(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args, Cli()) or 0)
    except KeyboardInterrupt:
        return 130
