"""``anninh acl -c FILE -o DIR``: the Mosquitto files that enforce the config's users and roles.

Writes into DIR:

* ``passwd`` (mode 0600): one Mosquitto ``$7$`` hash per user and for the hub's own login,
  made by ``mosquitto_passwd -U`` when it is installed;
* ``acl``: per-user topic rights (see :mod:`hub.security` and docs/security.md);
* ``mosquitto.conf``: a snippet for ``/etc/mosquitto/conf.d/`` that turns off anonymous access,
  points at the two files and opens the listeners (``--listen``, and ``--tls-listen`` with
  ``--cafile/--certfile/--keyfile`` for TLS).

Run it again whenever users, passwords or devices change, then reload Mosquitto
(``systemctl reload mosquitto`` or ``kill -HUP``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hub.api import CliContext, CommandSpec
from hub.cli.common import load_or_exit
from hub.i18n import N_, _, tr
from hub.security import AclError, ListenerOptions, generate


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, type=Path, metavar="FILE",
                   help=_("the hub's YAML config (users: and mqtt.username/password)"))
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                   help=_("folder for passwd, acl and mosquitto.conf (created if missing)"))
    p.add_argument("--listen", default="127.0.0.1:1883", metavar="HOST:PORT",
                   help=_("plain MQTT listener in mosquitto.conf (default 127.0.0.1:1883; 'none' for TLS only)"))
    p.add_argument("--tls-listen", default=None, metavar="HOST:PORT",
                   help=_("also a TLS listener, e.g. 0.0.0.0:8883 (needs --cafile, --certfile, --keyfile)"))
    p.add_argument("--cafile", default=None,
                   help=_("CA certificate (PEM) that signed the broker's and clients' certificates"))
    p.add_argument("--certfile", default=None, help=_("the broker's certificate (PEM)"))
    p.add_argument("--keyfile", default=None, help=_("the broker's private key (PEM)"))
    p.add_argument("--require-certificate", action="store_true",
                   help=_("TLS clients must also present a certificate signed by the CA"))
    p.add_argument("--bind-client-ids", action="store_true",
                   help=_("make each client's id its user name (use_username_as_clientid), so no login can take "
                        "the hub's session; each login then holds one connection at a time"))
    p.add_argument("--no-mosquitto-passwd", action="store_true",
                   help=_("hash passwords here instead of with mosquitto_passwd (same $7$ format)"))


def cmd_acl(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    config, plugins = load_or_exit(args.config)
    opts = ListenerOptions(listen=None if args.listen in ("none", "") else args.listen,
                           tls_listen=args.tls_listen, cafile=args.cafile, certfile=args.certfile,
                           keyfile=args.keyfile, require_certificate=args.require_certificate,
                           bind_client_ids=args.bind_client_ids)
    try:
        result = generate(config, plugins, args.output, opts,
                          tool=None if args.no_mosquitto_passwd else "auto")
    except AclError as exc:
        print(tr("error: {issue}", issue=exc), file=sys.stderr)
        return 1
    for u in config.users:
        if u.role == "installer" and u.sites is not None:
            print(tr("note: {user} is an installer; installers see every site (sites: is ignored)", user=u.name),
                  file=sys.stderr)
    for path in result.files:
        print(tr("wrote {path}", path=path))
    print(tr("{n} login(s), passwords hashed by {tool}.", n=result.users, tool=result.hashing))
    print(tr("Next: copy {conf} into /etc/mosquitto/conf.d/, make passwd and acl readable by the mosquitto "
             "user (chown mosquitto: ...), and reload Mosquitto.", conf=args.output / "mosquitto.conf"))
    return 0


ACL = CommandSpec(name="acl", help=N_("write a Mosquitto password file, ACL and config snippet enforcing the "
                  "config's users and roles"), run=cmd_acl, arguments=_arguments)
