"""``anninh discover``: find ONVIF cameras on the network and print a config snippet for each.

    anninh discover                                   # multicast probe on the local network, 3 s
    anninh discover --timeout 5 --bind 192.168.1.10   # pick the network interface
    anninh discover --address 192.168.1.64            # ask one camera directly (unicast)
    anninh discover --username admin --password ...   # also read model/serial/firmware

The password may also come from the environment variable ``ANNINH_CAMERA_PASSWORD`` (so it
does not show in the shell history or the process list). The snippet goes to stdout; paste it
under ``devices:`` in your config, put the passwords in ``secrets.yaml``, and run
``anninh check -c config.yaml``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import sys

from hub.api import CliContext, CommandSpec, DiscoveryRequest, DiscoveryResult
from hub.api.runtime import describe_error
from hub.i18n import N_, _, tr
from hub.plugins import PluginManager, load_plugins

PASSWORD_ENV = "ANNINH_CAMERA_PASSWORD"


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default="239.255.255.250",
                   help=_("where to send the WS-Discovery probe: the multicast group (default) or one "
                        "camera's IP address"))
    p.add_argument("--port", type=int, default=3702, help=_("WS-Discovery UDP port (default 3702)"))
    p.add_argument("--timeout", type=float, default=3.0, help=_("seconds to wait for answers (default 3)"))
    p.add_argument("--bind", default=None, metavar="IP",
                   help=_("local address to send from (chooses the network interface for multicast)"))
    p.add_argument("--username", default=None,
                   help=_("also log in and read model, serial and firmware (needs the password too)"))
    p.add_argument("--password", default=None,
                   help=tr("camera password for --username (or set {variable})", variable=PASSWORD_ENV))


def cmd_discover(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    try:
        ipaddress.ip_address(args.address)
    except ValueError:
        print(tr("error: --address must be an IP address, got {value}", value=repr(args.address)), file=sys.stderr)
        return 2
    if not 0 < args.timeout <= 60:
        print(_("error: --timeout must be between 0 and 60 seconds"), file=sys.stderr)
        return 2
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    if args.username and not password:
        print(tr("error: --username needs --password (or {variable})", variable=PASSWORD_ENV), file=sys.stderr)
        return 2
    try:
        return asyncio.run(_discover(DiscoveryRequest(
            address=args.address, port=args.port, timeout=args.timeout, bind=args.bind,
            username=args.username, password=password)))
    except OSError as exc:
        print(tr("error: cannot send the probe: {error}", error=exc), file=sys.stderr)
        return 1


async def _discover(request: DiscoveryRequest, plugins: PluginManager | None = None) -> int:
    """Ask every plugin's discoverer (``anninh_discovery`` hook); print their snippets."""
    discoverers = (plugins or load_plugins()).discoverers()
    if not discoverers:
        print(_("error: no plugin offers discovery (`anninh plugins` lists them)"), file=sys.stderr)
        return 1
    outcomes = await asyncio.gather(*(d.run(request) for d in discoverers), return_exceptions=True)
    results: list[DiscoveryResult] = []
    for spec, outcome in zip(discoverers, outcomes, strict=True):
        if isinstance(outcome, OSError) and len(discoverers) == 1:
            raise outcome  # "cannot send the probe", as before plugins could add discoverers
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            # one broken discoverer loses only its own answer
            print(tr("error: {name} discovery failed: {error}", name=spec.name, error=describe_error(outcome)),
                  file=sys.stderr)
            continue
        if not isinstance(outcome, DiscoveryResult):
            print(tr("error: {name} discovery returned {type}, not a DiscoveryResult", name=spec.name,
                     type=type(outcome).__name__), file=sys.stderr)
            continue
        results.append(outcome)
    for result in results:
        if result.snippet:
            print(result.snippet, end="")
        if result.message:
            print(result.message, file=sys.stderr)
    return 0 if any(r.count for r in results) else 1


DISCOVER = CommandSpec(name="discover",
                       help=N_("find ONVIF cameras (WS-Discovery) and print a config snippet for each"),
                       run=cmd_discover, arguments=_arguments)
