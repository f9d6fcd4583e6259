"""Users, roles and the Mosquitto files that enforce them (``anninh acl``).

Roles (see docs/security.md for the full table):

========== ============================================================================
officer    reads everything; commands lights and other switchable devices under their
           own name (``<base>/<device>/set/<name>``); requests snapshots
contractor reads availability, site power, the open tickets, and the state of UPS units,
           power meters, recorders and cameras (image health); acknowledges and resolves
           tickets under their own name; no commands, no event stream
installer  everything a person needs: reads all, commands (named and unnamed ``/set``),
           every ``bridge/request``, Home Assistant discovery and status
viewer     reads everything, commands nothing
========== ============================================================================

``sites`` on an officer, contractor or viewer limits them to the devices at those sites: the
ACL then lists their devices one by one (``<base>/<device>``, ``<base>/<device>/availability``,
``<base>/site/<site>``), because device topics do not carry the site. Such users do not read
the shared ``<base>/bridge/event`` topic (it mixes sites); they read ``<base>/site/<site>/event``.

Why the ACL names each user literally instead of one ``pattern ... %u`` line: Mosquitto applies
``pattern`` lines to *every* client, whatever ``user`` section they follow (measured on 2.0.11:
a user with no ACL lines of their own could publish on ``pattern write a/+/set/%u``), so a
``%u`` pattern would let contractors and viewers send commands under their own names. Writing
``topic write anninh/light-kp3/set/alice`` in alice's section has the same effect as ``%u`` for
alice (she cannot publish under bob's name), and a user the ACL does not name can do nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets as _random
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.api.detached import DetachedContext
from hub.config import Config, UserConfig

CONTRACTOR_STATE_KINDS = frozenset({"ups", "meter", "recorder", "camera"})
"""Driver kinds whose state topic a contractor may read (power, recorder disks, camera health)."""

SNAPSHOT_REQUESTS = ("snapshot",)
READ_REQUESTS = ("health_check", "devices")
SITE_SAFE_REQUESTS = ("health_check",)
EXPORT_ROLES = ("officer", "installer")  # who may export footage (hub.export.service checks it again)
TICKET_ROLES = ("contractor", "installer")  # who may act on tickets (hub.ops.tickets checks it again)
"""Requests whose answer reveals nothing of any site: the only ones a site-limited user gets."""


class AclError(Exception):
    """The config cannot be turned into broker files; the message says what to fix."""


@dataclass(frozen=True)
class RoleRights:
    """What a role may do on the broker."""

    state_kinds: frozenset[str] | None  # None: every device's state
    command: bool
    unnamed_set: bool
    events: bool
    requests: tuple[str, ...]  # ("#",) means every request
    discovery: bool
    ha_status: bool
    honours_sites: bool
    summary: str


RIGHTS: dict[str, RoleRights] = {
    "officer": RoleRights(None, command=True, unnamed_set=False, events=True,
                          requests=SNAPSHOT_REQUESTS + READ_REQUESTS, discovery=True, ha_status=False,
                          honours_sites=True,
                          summary="reads everything; switches lights and other switchable devices under "
                                  "its own name; requests snapshots"),
    "contractor": RoleRights(CONTRACTOR_STATE_KINDS, command=False, unnamed_set=False, events=False,
                             requests=READ_REQUESTS, discovery=False, ha_status=False, honours_sites=True,
                             summary="reads availability, site power, UPS/meter/recorder/camera state, "
                                     "tickets; acts on its tickets; no commands"),
    "installer": RoleRights(None, command=True, unnamed_set=True, events=True, requests=("#",),
                            discovery=True, ha_status=True, honours_sites=False,
                            summary="everything: reads all, commands, requests, Home Assistant"),
    "viewer": RoleRights(None, command=False, unnamed_set=False, events=True, requests=READ_REQUESTS,
                         discovery=True, ha_status=False, honours_sites=True, summary="reads everything"),
}


@dataclass(frozen=True)
class DeviceFacts:
    """What the ACL needs to know about a configured device."""

    id: str
    site: str | None
    kind: str
    switchable: bool


@dataclass
class UserAcl:
    name: str
    role: str
    comment: str
    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    readwrite: list[str] = field(default_factory=list)


def device_facts(config: Config, plugins: Any | None) -> list[DeviceFacts]:
    """Kind and switchability of every enabled device, from its platform's driver.

    The driver is constructed (never connected) so a driver that sets ``kind`` per device is
    read correctly; if that fails, the class attributes are used.
    """
    platforms = plugins.platforms() if plugins is not None else {}
    out = []
    for dev in config.devices:
        if not dev.enabled:
            continue
        spec = platforms.get(dev.platform)
        kind, model = "device", None
        if spec is not None:
            kind = getattr(spec.driver, "kind", "device")
            model = getattr(spec.driver, "command_model", None)
            try:
                driver = spec.driver(dev, DetachedContext(dev, log_name="hub.acl"))
                kind, model = driver.kind, driver.command_model
            except Exception:
                pass  # the class attributes read above stay
        out.append(DeviceFacts(dev.id, dev.site, str(kind), model is not None))
    return out


def plan_acl(config: Config, devices: list[DeviceFacts]) -> list[UserAcl]:
    """The ACL entries for the hub's own user and every configured user."""
    if config.users and not (config.mqtt.username and config.mqtt.password):
        raise AclError("mqtt.username and mqtt.password are needed: with users defined the broker refuses "
                       "anonymous clients, so the hub must log in too (add them under mqtt: in the config)")
    b = config.mqtt.base_topic
    prefix = config.mqtt.discovery_prefix
    hub_user = config.mqtt.username
    out: list[UserAcl] = []
    if hub_user:
        for u in config.users:
            if u.name == hub_user:
                raise AclError(f"users: {u.name!r} is also mqtt.username (the hub's own login); "
                               "give the person another name")
        out.append(UserAcl(hub_user, "hub", "the hub itself: publishes states, reads commands, drives "
                           "MQTT relays", readwrite=["#"]))
    all_sites = [s.id for s in config.sites]
    for user in config.users:
        out.append(_user_acl(user, b, prefix, devices, all_sites))
    return out


def _user_acl(user: UserConfig, b: str, prefix: str, devices: list[DeviceFacts],
              all_sites: list[str]) -> UserAcl:
    rights = RIGHTS[user.role]
    limited = user.sites is not None and rights.honours_sites
    sites = list(user.sites or []) if limited else all_sites
    where = f"sites: {', '.join(sites) or 'none'}" if limited else "all sites"
    acl = UserAcl(user.name, user.role, f"{user.role} {user.name} ({where})")
    read, write = acl.read, acl.write
    visible = [d for d in devices if not limited or (d.site is not None and d.site in sites)]
    if not limited and rights.state_kinds is None:
        # reads the whole tree: states, availability, sites, events, responses, commands' authors
        read.append(f"{b}/#")
        if rights.discovery:
            read.append(f"{prefix}/#")
    else:
        read += [f"{b}/bridge/state", f"{b}/bridge/info"]
        for s in sites:
            read.append(f"{b}/site/{s}")
            read.append(f"{b}/site/{s}/tickets")
            if rights.events and limited:
                read.append(f"{b}/site/{s}/event")
        if rights.events and not limited:
            read.append(f"{b}/bridge/event")
        for d in visible:
            if rights.state_kinds is None or d.kind in rights.state_kinds:
                read.append(f"{b}/{d.id}")
            read.append(f"{b}/{d.id}/availability")
            if rights.discovery:
                read.append(f"{prefix}/+/{d.id}/#")
    if rights.command:
        for d in visible:
            if d.switchable:
                write.append(f"{b}/{d.id}/set/{user.name}")
                if rights.unnamed_set:
                    write.append(f"{b}/{d.id}/set")
    if user.role in EXPORT_ROLES and "#" not in rights.requests:
        write.append(f"{b}/bridge/request/export/{user.name}")  # footage export, under their own name only
        read.append(f"{b}/bridge/response/export/{user.name}")
    if user.role in TICKET_ROLES and "#" not in rights.requests:
        write.append(f"{b}/bridge/request/ticket/{user.name}")  # maintenance tickets, under their own name only
        read.append(f"{b}/bridge/response/ticket/{user.name}")
    requests = rights.requests if not limited else tuple(r for r in rights.requests if r in SITE_SAFE_REQUESTS)
    for r in requests:
        write.append(f"{b}/bridge/request/{r}")
        if not (not limited and rights.state_kinds is None):
            read.append(f"{b}/bridge/response/{r}")
    if rights.ha_status:
        write.append(f"{prefix}/status")
    return acl


def render_acl(entries: Iterable[UserAcl], source: str = "") -> str:
    """Mosquitto ``acl_file`` text. Nothing is granted to anonymous clients."""
    lines = ["# Mosquitto ACL written by `anninh acl`" + (f" from {source}" if source else "") + ".",
             "# Do not edit: change the hub config and run `anninh acl` again.",
             "# Anonymous clients get nothing (no lines before the first `user`).", ""]
    for e in entries:
        lines.append(f"# {e.comment}")
        lines.append(f"user {e.name}")
        lines += [f"topic readwrite {t}" for t in e.readwrite]
        lines += [f"topic read {t}" for t in e.read]
        lines += [f"topic write {t}" for t in e.write]
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------ password file
PBKDF2_ITERATIONS = 101  # Mosquitto 2.0's default for $7$ (sha512-pbkdf2)


def mosquitto_hash(password: str, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A password hash in Mosquitto 2.0's own ``$7$`` format (PBKDF2-HMAC-SHA512, 12-byte salt)."""
    salt = salt if salt is not None else _random.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, dklen=64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _check_password(name: str, password: str) -> None:
    if not password:
        raise AclError(f"user {name!r} has an empty password")
    if any(c in password for c in "\r\n\0"):
        raise AclError(f"the password of {name!r} contains a line break or NUL, which a Mosquitto "
                       "password file cannot hold")


def write_password_file(path: Path, users: Mapping[str, str], tool: str | None = "auto") -> str:
    """Write ``path`` (mode 0600) with a Mosquitto hash per user. Returns how it was hashed.

    With ``tool="auto"`` Mosquitto's own ``mosquitto_passwd`` hashes each password, given on its
    standard input (never on a command line, where ``ps`` would show it; and not through
    ``mosquitto_passwd -U``, which cuts a password at its first ``:`` and strips leading and
    trailing spaces, measured on 2.0.11). Without the tool the same ``$7$`` format is computed
    here. The file is built in a private (0700) folder beside ``path`` and moved into place.
    """
    for name, pw in users.items():
        if ":" in name or not name or any(c.isspace() for c in name):
            raise AclError(f"user name {name!r} cannot be used in a password file")
        _check_password(name, pw)
    path.parent.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("mosquitto_passwd") if tool == "auto" else tool
    with tempfile.TemporaryDirectory(prefix=".anninh-acl-", dir=path.parent) as tmp:
        os.chmod(tmp, 0o700)
        work = Path(tmp) / "passwd"
        if exe:
            for i, (name, pw) in enumerate(users.items()):
                argv = [exe, *(["-c"] if i == 0 else []), str(work), name]
                proc = subprocess.run(argv, input=f"{pw}\n{pw}\n", capture_output=True, text=True,
                                      encoding="utf-8", timeout=60)
                if proc.returncode != 0:
                    raise AclError(f"mosquitto_passwd failed for user {name!r} (exit {proc.returncode})")
            method = exe
        else:
            fd = os.open(work, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.writelines(f"{n}:{mosquitto_hash(p)}\n" for n, p in users.items())
            method = "built-in $7$ (PBKDF2-SHA512, as mosquitto_passwd)"
        os.chmod(work, 0o600)
        written = {line.split(":", 1)[0] for line in work.read_text(encoding="utf-8").splitlines() if line}
        if written != set(users):
            raise AclError("the password file does not hold every user; not written")
        os.replace(work, path)
    return method


# ------------------------------------------------------------------ mosquitto.conf snippet
@dataclass
class ListenerOptions:
    listen: str | None = "127.0.0.1:1883"
    tls_listen: str | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    require_certificate: bool = False
    bind_client_ids: bool = False


def _host_port(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise AclError(f"{what}: expected HOST:PORT, e.g. 127.0.0.1:1883 (got {value!r})")
    return host.strip("[]") or "0.0.0.0", int(port)


def render_mosquitto_conf(out_dir: Path, opts: ListenerOptions) -> str:
    """A Mosquitto config snippet using the generated files (drop it into /etc/mosquitto/conf.d/)."""
    out_dir = out_dir.resolve()
    lines = ["# Mosquitto settings written by `anninh acl`; put this file in /etc/mosquitto/conf.d/",
             "# (or include its lines in mosquitto.conf). Paths are absolute.",
             "per_listener_settings false",
             "allow_anonymous false",
             f"password_file {out_dir / 'passwd'}",
             f"acl_file {out_dir / 'acl'}",
             "# officers' commands must not wait 40 ms for Nagle's algorithm at each hop",
             "set_tcp_nodelay true",
             ""]
    # a client's id becomes its user name: no login can take the hub's session (or another's)
    bind_ids = ["use_username_as_clientid true"] if opts.bind_client_ids else []
    if opts.listen:
        host, port = _host_port(opts.listen, "--listen")
        lines += [f"listener {port} {host}", *bind_ids, ""]
    if opts.tls_listen:
        host, port = _host_port(opts.tls_listen, "--tls-listen")
        if not (opts.cafile and opts.certfile and opts.keyfile):
            raise AclError("--tls-listen needs --cafile, --certfile and --keyfile (the broker's certificate "
                           "and key, and the CA that signed it)")
        lines += [f"listener {port} {host}", *bind_ids,
                  f"cafile {Path(opts.cafile).resolve()}",
                  f"certfile {Path(opts.certfile).resolve()}",
                  f"keyfile {Path(opts.keyfile).resolve()}",
                  "tls_version tlsv1.2",
                  f"require_certificate {'true' if opts.require_certificate else 'false'}", ""]
    return "\n".join(lines)


@dataclass
class AclResult:
    files: list[Path]
    hashing: str
    users: int


def generate(config: Config, plugins: Any | None, out_dir: Path, opts: ListenerOptions | None = None,
             tool: str | None = "auto") -> AclResult:
    """Write ``passwd``, ``acl`` and ``mosquitto.conf`` into ``out_dir``."""
    entries = plan_acl(config, device_facts(config, plugins))
    if not entries:
        raise AclError("nothing to write: the config has no users: and no mqtt.username")
    logins: dict[str, str] = {}
    if config.mqtt.username and config.mqtt.password:
        logins[config.mqtt.username] = config.mqtt.password.get_secret_value()
    for u in config.users:
        logins[u.name] = u.password.get_secret_value()
    out_dir.mkdir(parents=True, exist_ok=True)
    passwd = out_dir / "passwd"
    method = write_password_file(passwd, logins, tool)
    acl = out_dir / "acl"
    acl.write_text(render_acl(entries, str(config.path)), encoding="utf-8")
    os.chmod(acl, 0o640)
    conf = out_dir / "mosquitto.conf"
    conf.write_text(render_mosquitto_conf(out_dir, opts or ListenerOptions()), encoding="utf-8")
    return AclResult([passwd, acl, conf], method, len(logins))


# ------------------------------------------------------------------ what a person sees (web console)
@dataclass(frozen=True)
class Access:
    """What one person may see and do, read from :data:`RIGHTS` and their ``sites`` exactly as
    :func:`plan_acl` writes the broker's ACL (the web console asks this, never the role name)."""

    user: str | None
    role: str
    sites: frozenset[str] | None
    """the sites they see; None: every site"""
    state_kinds: frozenset[str] | None
    """driver kinds whose state they read; None: every kind"""
    command: bool
    events: bool
    snapshot: bool
    export: bool

    def sees_site(self, site: str | None) -> bool:
        return self.sites is None or (site is not None and site in self.sites)

    def sees_state(self, kind: str) -> bool:
        return self.state_kinds is None or kind in self.state_kinds

    def commands(self, site: str | None, switchable: bool) -> bool:
        """Whether the ACL lets them write the device's ``/set/<user>`` topic."""
        return self.command and switchable and self.sees_site(site)


def user_access(config: Config, user: UserConfig | None) -> Access:
    """The rights of ``user``; ``None`` (a config without ``users:``, where the broker trusts every
    loopback client) gets the installer's."""
    if user is None:
        r = RIGHTS["installer"]
        return Access(None, "installer", None, r.state_kinds, command=True, events=True, snapshot=True,
                      export=True)
    rights = RIGHTS[user.role]
    limited = user.sites is not None and rights.honours_sites
    requests = rights.requests if not limited else tuple(r for r in rights.requests if r in SITE_SAFE_REQUESTS)
    return Access(user.name, user.role, frozenset(user.sites or ()) if limited else None, rights.state_kinds,
                  command=rights.command, events=rights.events,
                  snapshot="#" in requests or any(r in requests for r in SNAPSHOT_REQUESTS),
                  export=user.role in EXPORT_ROLES)
