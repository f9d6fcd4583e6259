"""The ``anninh`` command line (entry point ``hub.cli:main``); see :mod:`hub.cli.main`."""

from hub.cli.common import HubTimeFormatter, load_or_exit, setup_logging, use_log_timezone
from hub.cli.main import build_parser, main

__all__ = ["HubTimeFormatter", "build_parser", "load_or_exit", "main", "setup_logging", "use_log_timezone"]
