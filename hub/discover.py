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

from hub.cli import command

PASSWORD_ENV = "ANNINH_CAMERA_PASSWORD"


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default="239.255.255.250",
                   help="where to send the WS-Discovery probe: the multicast group (default) or one "
                        "camera's IP address")
    p.add_argument("--port", type=int, default=3702, help="WS-Discovery UDP port (default 3702)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for answers (default 3)")
    p.add_argument("--bind", default=None, metavar="IP",
                   help="local address to send from (chooses the network interface for multicast)")
    p.add_argument("--username", default=None,
                   help="also log in and read model, serial and firmware (needs the password too)")
    p.add_argument("--password", default=None,
                   help=f"camera password for --username (or set {PASSWORD_ENV})")


@command("discover", "find ONVIF cameras (WS-Discovery) and print a config snippet for each", _arguments)
def cmd_discover(args: argparse.Namespace) -> int:
    try:
        ipaddress.ip_address(args.address)
    except ValueError:
        print(f"error: --address must be an IP address, got {args.address!r}", file=sys.stderr)
        return 2
    if not 0 < args.timeout <= 60:
        print("error: --timeout must be between 0 and 60 seconds", file=sys.stderr)
        return 2
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    if args.username and not password:
        print(f"error: --username needs --password (or {PASSWORD_ENV})", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_discover(args, password))
    except OSError as exc:
        print(f"error: cannot send the probe: {exc}", file=sys.stderr)
        return 1


async def _discover(args: argparse.Namespace, password: str | None) -> int:
    from plugins.generic_onvif.discovery import probe, snippet

    devices = await probe(args.address, args.port, args.timeout, bind=args.bind)
    if not devices:
        print(f"no ONVIF device answered within {args.timeout:g} s (is ONVIF enabled on the cameras? "
              "multicast blocked? try --address CAMERA_IP)", file=sys.stderr)
        return 1
    if args.username and password:
        from hub.api import DeviceError
        from plugins.generic_onvif.driver import gather_info

        async def fill(dev: object) -> None:
            addr = dev.address  # type: ignore[attr-defined]
            if addr is None:
                return
            try:
                dev.info = await gather_info(addr[0], addr[1], args.username, password,  # type: ignore[attr-defined]
                                             timeout=max(2.0, args.timeout))
            except DeviceError as exc:
                dev.info_error = str(exc)  # type: ignore[attr-defined]

        await asyncio.gather(*(fill(d) for d in devices))
    print(snippet(devices, args.username or "admin"), end="")
    print(f"{len(devices)} ONVIF device(s) found", file=sys.stderr)
    return 0
