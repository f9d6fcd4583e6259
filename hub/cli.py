"""The ``anninh`` command line.

    anninh run -c config.yaml        run the hub until Ctrl-C / SIGTERM
    anninh check -c config.yaml      validate a config (exit 1 with file:line: field: problem)
    anninh demo                      a whole simulated commune on this machine, with a live view
    anninh plugins                   list loaded plugins, platforms and rules
    anninh simulate NAME ...         run one plugin's device simulator
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from hub import API_VERSION, __version__
from hub.config import ConfigError, load_config
from hub.plugins import PluginManager, load_plugins
from hub.redact import install_log_redaction, register_secrets

log = logging.getLogger("hub.cli")

# Extra subcommands registered by other modules: name -> (help, add_arguments, handler)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]) -> Callable[
        [Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def wrap(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = (help, arguments, fn)
        return fn
    return wrap


LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class HubTimeFormatter(logging.Formatter):
    """Log times in the hub's timezone (``hub.timezone``), whatever the machine's is: a person
    compares them with the events' times (+07:00), so both must read the same."""

    def __init__(self, tz: tzinfo) -> None:
        super().__init__(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S")
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, self.tz).strftime(datefmt or "%Y-%m-%d %H:%M:%S")


def use_log_timezone(timezone: str) -> None:
    """From now on the log lines :func:`setup_logging` set up print times in ``timezone``
    (handlers someone else installed, a test runner's say, keep their own format)."""
    tz = ZoneInfo(timezone)
    for handler in logging.getLogger().handlers:
        if handler.formatter is not None and handler.formatter._fmt == LOG_FORMAT:
            handler.setFormatter(HubTimeFormatter(tz))


def setup_logging(verbosity: int, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbosity >= 1 else logging.INFO)
    logging.basicConfig(level=level, format=LOG_FORMAT,
                        datefmt="%Y-%m-%d %H:%M:%S", stream=sys.stderr, force=True)
    if verbosity < 2:
        for noisy in ("amqtt", "transitions", "httpx", "httpcore", "zeep", "asyncio",
                      "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # pymodbus logs every bad answer or timeout at ERROR with the last 20 raw frames of any
        # connection attached; the hub logs one "<device> offline: <cause>" line per transition
        # instead. -vv shows pymodbus again (with frames at DEBUG).
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL + 1)
    else:
        logging.getLogger("pymodbus").setLevel(logging.NOTSET)
    install_log_redaction()


RUN_DESCRIPTION = (
    "Run the hub in the foreground: connect to the MQTT broker (or start the embedded one), poll "
    "and listen to every device of the config, run the rules, and publish states and events. "
    "Ctrl-C or SIGTERM stops it after publishing every device offline. Check the config first "
    "with `anninh check -c FILE`.")
CHECK_DESCRIPTION = (
    "Validate a config without connecting to anything: YAML, !secret values from secrets.yaml, "
    "every device's platform keys, sites, users and rule options. Exit 0 if it is valid; exit 1 "
    "with one `file:line: field: problem` line per error.")


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, type=Path, metavar="FILE",
                   help="the hub's YAML config (secrets.yaml beside it holds the !secret values)")


def _dropin_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, default=None, metavar="FILE",
                   help="also load the drop-in plugins of this config's data_dir (default: ./data/plugins)")


def peek_data_dir(path: Path) -> Path | None:
    """The data dir named in a config, read before validation (drop-in plugins live there)."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        data_dir = Path(str(raw["hub"]["data_dir"])) if isinstance(raw, dict) else None
    except Exception:
        data_dir = None
    if data_dir is None:
        data_dir = Path("./data")
    return data_dir if data_dir.is_absolute() else (path.parent / data_dir).resolve()


def load_or_exit(path: Path, plugins: PluginManager | None = None) -> tuple:
    """Load plugins (built-in, entry points, drop-ins of the config's data dir) and the config,
    or print every error as ``file:line: field: problem`` and exit 1."""
    plugins = plugins or load_plugins(peek_data_dir(path))
    try:
        config = load_config(path, plugins)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        print(f"{len(exc.issues)} error(s) in {path}", file=sys.stderr)
        raise SystemExit(1) from None
    register_secrets(config.secrets())
    use_log_timezone(config.hub.timezone)
    for warning in config.warnings:
        log.warning("%s", warning)
    return config, plugins


def cmd_check(args: argparse.Namespace) -> int:
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


def cmd_run(args: argparse.Namespace) -> int:
    from hub.app import run_forever
    from hub.broker import BrokerError

    config, plugins = load_or_exit(args.config)
    try:
        asyncio.run(run_forever(config, plugins))
    except KeyboardInterrupt:
        pass
    except BrokerError as exc:
        print(f"error: embedded broker: {exc}", file=sys.stderr)
        return 1
    return 0


def _dropin_dir(args: argparse.Namespace) -> Path:
    """Where `plugins` and `simulate` look for drop-ins: ``--data-dir``, else the data_dir of
    ``-c CONFIG``, else ./data (the default data_dir)."""
    if getattr(args, "data_dir", None) is not None:
        return Path(args.data_dir)
    if getattr(args, "config", None) is not None:
        return peek_data_dir(args.config) or Path("./data")
    return Path("./data")


def cmd_plugins(args: argparse.Namespace) -> int:
    plugins = load_plugins(_dropin_dir(args))
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


def cmd_simulate(args: argparse.Namespace) -> int:
    sims = load_plugins(_dropin_dir(args)).simulators()
    if args.name == "list":
        for name in sorted(sims):
            print(name)
        return 0
    if args.name not in sims:
        print(f"unknown simulator {args.name!r}; available: {', '.join(sorted(sims)) or 'none'}",
              file=sys.stderr)
        return 2
    return int(sims[args.name](args.args) or 0)


def cmd_demo(args: argparse.Namespace) -> int:
    from hub.demo import run_demo

    return run_demo(args)


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--speed", type=float, default=240.0,
                   help="demo clock speed: simulated seconds per real second (default 240)")
    p.add_argument("--duration", type=float, default=0.0,
                   help="stop after this many real seconds (default: run until Ctrl-C)")
    p.add_argument("--port", type=int, default=1883, help="embedded broker port (default 1883, "
                   "or a free one if taken)")
    p.add_argument("--no-view", action="store_true", help="log lines instead of the live view")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anninh",
        description="AnNinh Hub: cameras, recorders, UPS units and black-spot lights of a commune "
                    "police post, on MQTT. Start with `anninh demo`, then write a config and run "
                    "`anninh check -c config.yaml` and `anninh run -c config.yaml`.")
    parser.add_argument("--version", action="version", version=f"anninh {__version__} (plugin API {API_VERSION})")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log lines (-v debug, -vv also library debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    # -v/-q also after the command (`anninh run -c x -v`); SUPPRESS keeps what was given before it
    logging_opts = argparse.ArgumentParser(add_help=False)
    logging_opts.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                              help="more log lines (-v debug, -vv also library debug)")
    logging_opts.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                              help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the hub in the foreground until Ctrl-C or SIGTERM",
                       parents=[logging_opts], description=RUN_DESCRIPTION)
    _config_arg(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("check", help="validate a config: exit 0 if valid, 1 with every error's file:line",
                       parents=[logging_opts], description=CHECK_DESCRIPTION)
    _config_arg(p)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("demo", help="a whole simulated commune: embedded broker, simulated devices, "
                       "the hub and a live view", parents=[logging_opts],
                       description="A whole simulated commune on this machine: an embedded MQTT broker, "
                       "simulated UPS units, meter, relay board, cameras and NVR, the hub, and a scripted "
                       "evening (dusk, a power cut, an officer switching a light, power back, morning).")
    _demo_args(p)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("plugins", help="list plugins, platforms and rules", parents=[logging_opts],
                       description="List the loaded plugins, their platforms and rules, and any plugin "
                       "that failed to load.")
    p.add_argument("--data-dir", type=Path, default=None, help="also load drop-ins from DIR/plugins")
    _dropin_config_arg(p)
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser("simulate", help="run a plugin's device simulator (try a config without hardware)",
                       description="Run one plugin's device simulator on this machine, to try a config "
                       "without hardware. `anninh simulate list` names them; `anninh simulate NAME --help` "
                       "shows a simulator's options.")
    _dropin_config_arg(p)
    p.add_argument("name", help="simulator name (see `anninh simulate list`)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the simulator (--help)")
    p.set_defaults(func=cmd_simulate)
    _load_extra_commands()
    for name, (help_text, arguments, handler) in sorted(COMMANDS.items()):
        p = sub.add_parser(name, help=help_text, parents=[logging_opts],
                           description=help_text[:1].upper() + help_text[1:] + ".")
        arguments(p)
        p.set_defaults(func=handler)
    return parser


def _load_extra_commands() -> None:
    import importlib

    for module in ("hub.acl", "hub.discover", "hub.reference", "hub.export.cli"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # run as `python -m hub.cli`: call the importable module's main, where extra commands register
    from hub.cli import main as _main

    sys.exit(_main())
