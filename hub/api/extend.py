"""The specs of the hooks that extend the hub beyond devices and rules (part of plugin API v1,
re-exported by :mod:`hub.api`): commands for the ``anninh`` CLI, device discovery for
``anninh discover``, and simulator factories that ``anninh demo`` (and tests) start in-process.

Nothing here imports the rest of the hub: the CLI, the demo and the discovery command find these
specs through :class:`hub.plugins.PluginManager`, never by importing a plugin.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hub.api import DeviceConfig, Driver


class CliContext(Protocol):
    """What the CLI hands a plugin's command (:attr:`CommandSpec.run`)."""

    def load_config(self, path: Path) -> Any:
        """Load the plugins (built-in, entry points, drop-ins of the config's data dir) and the
        config at ``path`` (a ``hub.config.Config``: ``devices``, ``device(id)``, ``data_dir``,
        ``hub.timezone`` ...), or print every error as ``file:line: field: problem`` and exit 1."""

    def driver(self, device: DeviceConfig) -> Driver:
        """A driver for one device of the loaded config, to use outside a running hub (the
        caller connects and closes it; its context's ``update`` and ``event`` go nowhere)."""


@dataclass(frozen=True)
class CommandSpec:
    """An ``anninh`` subcommand, returned by the ``anninh_commands`` hook.

    ``arguments`` adds the command's options to its :class:`argparse.ArgumentParser` (``-v`` and
    ``-q`` are already there); ``run(args, cli)`` does the work and returns the exit code (0 done,
    1 failed, 2 bad usage). ``description`` defaults to ``help`` as a sentence.

    Example::

        CommandSpec(name="gate", help="open or close a gate", arguments=gate_args, run=run_gate)
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace, CliContext], int]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str = ""
    log_options: bool = True
    """False for a command that passes the rest of its line on (``-v`` after it is not the hub's)."""


@dataclass(frozen=True)
class DiscoveryRequest:
    """What ``anninh discover`` was asked: where to probe, how long, and optional credentials to
    read each device's model and serial (never printed)."""

    address: str
    port: int
    timeout: float
    bind: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DiscoveryResult:
    """What one discoverer found: ``count`` devices, a YAML ``devices:`` snippet for the config
    (printed on stdout, with ``!secret`` passwords), and a one-line ``message`` for the person
    (stderr): how many, or why none answered."""

    count: int
    snippet: str = ""
    message: str = ""


@dataclass(frozen=True)
class DiscoverySpec:
    """A way to find devices on the network, returned by the ``anninh_discovery`` hook.
    ``run`` may raise :class:`OSError` when it cannot send at all."""

    name: str
    run: Callable[[DiscoveryRequest], Awaitable[DiscoveryResult]]
    description: str = ""


SimulatorFactory = Callable[..., Awaitable[Any]]
"""``await factory(**options)`` returns a *started* simulator with a ``port`` attribute and an
``async stop()`` method; the options are the simulator's own (see the plugin's README)."""
