"""What every ``anninh`` command shares: logging set-up (times in the hub's timezone), the
``-c CONFIG`` option, and loading plugins and config or exiting with every error.

No module of :mod:`hub.cli` imports another except through this one and :mod:`hub.cli.main`
(which imports each command module to register it): no import cycles.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.api import DeviceConfig, Driver
from hub.api.detached import DetachedContext
from hub.config import Config, ConfigError, load_config
from hub.i18n import N_, _, normalize, set_language, tr
from hub.plugins import PluginManager, load_plugins
from hub.redact import install_log_redaction, register_secrets

log = logging.getLogger("hub.cli")

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


LANG_HELP = N_("language of the output: vi (Vietnamese) or en (English); default: the config's "
               "hub.language, else vi")
lang_override: str | None = None
"""``--lang`` from the command line: wins over the config's ``hub.language``."""


def lang_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lang", choices=("vi", "en"), default=argparse.SUPPRESS, help=_(LANG_HELP))


def apply_lang(argv: list[str]) -> None:
    """Set the process language from ``--lang X`` / ``--lang=X`` before the parser is built (its help
    texts are translated when it is built); an unknown value is left to argparse to refuse."""
    global lang_override
    lang_override = None
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--lang" and i + 1 < len(argv) else arg.removeprefix("--lang=")
        if arg == "--lang" or arg.startswith("--lang="):
            try:
                lang_override = set_language(value)
            except ValueError:
                pass


def config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, type=Path, metavar="FILE",
                   help=_("the hub's YAML config (secrets.yaml beside it holds the !secret values)"))


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


def peek_language(path: Path) -> str | None:
    """The ``hub.language`` named in a config, read before validation (so that its errors are told in
    it); ``None`` when it cannot be read or is not a language."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return normalize(str(raw["hub"]["language"]))
    except Exception:
        return None


def dropin_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, default=None, metavar="FILE",
                   help=_("also load the drop-in plugins of this config's data_dir (default: ./data/plugins)"))


def config_language(args: argparse.Namespace) -> None:
    """For a command that reads no config but may name one (``plugins``, ``simulate``): speak ``--lang``,
    else that config's ``hub.language``, else Vietnamese."""
    config = getattr(args, "config", None)
    set_language(lang_override or (peek_language(config) if config is not None else None))


def dropin_dir(args: argparse.Namespace) -> Path:
    """Where `plugins` and `simulate` look for drop-ins: ``--data-dir``, else the data_dir of
    ``-c CONFIG``, else ./data (the default data_dir)."""
    if getattr(args, "data_dir", None) is not None:
        return Path(args.data_dir)
    if getattr(args, "config", None) is not None:
        return peek_data_dir(args.config) or Path("./data")
    return Path("./data")


def load_or_exit(path: Path, plugins: PluginManager | None = None) -> tuple:
    """Load plugins (built-in, entry points, drop-ins of the config's data dir) and the config,
    or print every error as ``file:line: field: problem`` and exit 1."""
    set_language(lang_override or peek_language(path))
    plugins = plugins or load_plugins(peek_data_dir(path))
    try:
        config = load_config(path, plugins)
    except ConfigError as exc:
        for issue in exc.issues:
            print(tr("error: {issue}", issue=issue), file=sys.stderr)
        print(tr("{n} error(s) in {path}", n=len(exc.issues), path=path), file=sys.stderr)
        raise SystemExit(1) from None
    if lang_override is not None:
        config.hub = config.hub.model_copy(update={"language": lang_override})
    set_language(config.hub.language)
    register_secrets(config.secrets())
    use_log_timezone(config.hub.timezone)
    for warning in config.warnings:
        log.warning("%s", warning)
    return config, plugins




class Cli:
    """The :class:`hub.api.CliContext` a command gets."""

    def __init__(self) -> None:
        self.config: Config | None = None
        self.plugins: PluginManager | None = None

    def load_config(self, path: Path) -> Config:
        self.config, self.plugins = load_or_exit(Path(path))
        return self.config

    def driver(self, device: DeviceConfig) -> Driver:
        if self.plugins is None:
            raise RuntimeError("load_config() first")
        spec = self.plugins.platforms()[device.platform]
        return spec.driver(device, DetachedContext(device))
