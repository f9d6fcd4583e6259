"""The broker behind ``mqtt.server: embedded``.

* :class:`ManagedMosquitto` (whenever ``mosquitto`` is installed): the hub writes a Mosquitto
  config with the same users and ACL as ``anninh acl`` into ``<data_dir>/mosquitto/`` (0700
  folder, 0600 files), runs Mosquitto as a child process before the hub connects, keeps its
  persistence there, logs its output through the hub's logger, restarts it with capped backoff
  if it dies, and stops it when the hub stops. Client ids are bound to logins
  (``use_username_as_clientid``) whenever users are defined, so nobody can take the hub's
  session; see docs/security.md.
* :class:`EmbeddedBroker` (no Mosquitto on the machine): amqtt in the hub's process, on
  loopback only (any other address is refused), with two of amqtt 0.12's delivery faults
  worked around. It has no ACL, binds no client id and speaks MQTT 3.1.1 only; the hub refuses
  to run ``users:`` on it (see :func:`choose_broker` and docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
mosquitto_log = logging.getLogger("hub.broker.mosquitto")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
INSTALL_HINT = "sudo apt-get install mosquitto"
HUB_ACCOUNT = "anninh.hub"
"""The hub's own login on the managed broker when the config has no ``mqtt.username``. The dot
cannot appear in a configured user's name (ids are ``[a-z0-9_-]+``), so no person can hold it."""

# Queue sizing of the managed broker (docs/security.md, "The embedded broker"). Mosquitto applies
# these per client session; the hub's session is the one that receives every command.
MAX_INFLIGHT_MESSAGES = 20
"""QoS 1 messages sent to one client and not yet acknowledged (Mosquitto's default, kept: the
hub acknowledges each command within 1 s, see hub.mqtt.MqttConnection.ack_deadline)."""
MAX_QUEUED_MESSAGES = 100_000
"""QoS 1 messages queued for one client above those in flight before Mosquitto drops new ones
silently (its default is 1,000: a 20,000 commands/s burst overflowed the hub's session)."""
MAX_QUEUED_BYTES = 64 * 1024 * 1024
"""The same queue bounded in bytes, so a stalled client costs the broker at most 64 MiB."""


class BrokerError(Exception):
    """The embedded broker cannot start; the message says why and what to do."""


def mosquitto_binary() -> str | None:
    """The Mosquitto broker executable, or None when it is not installed.

    ``ANNINH_MOSQUITTO`` names another executable, or ``none`` to use the Python fallback."""
    forced = os.environ.get("ANNINH_MOSQUITTO")
    if forced is not None:
        return None if forced.lower() in ("", "none", "no", "false", "0") else forced
    found = shutil.which("mosquitto")
    if found:
        return found
    for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(path, os.X_OK):
            return path
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _connect_host(bind: str) -> str:
    """Where a local client reaches a broker bound to ``bind``."""
    if bind in ("0.0.0.0", "", "localhost"):
        return "127.0.0.1"
    if bind == "::":
        return "::1"
    return bind


# ---------------------------------------------------------------------------- Mosquitto
@dataclass
class MosquittoFiles:
    """What :func:`write_mosquitto_files` wrote."""

    dir: Path
    conf: Path
    hub_username: str
    anonymous: bool
    bound_client_ids: bool


def hub_login(config: Any) -> tuple[str, str, bool]:
    """(username, password, generated) of the hub on the managed broker: ``mqtt.username`` and
    ``mqtt.password`` when given, else the internal ``anninh.hub`` account with a fresh random
    password (never logged: registered for redaction by the caller)."""
    m = config.mqtt
    if m.username and m.password:
        return m.username, m.password.get_secret_value(), False
    return HUB_ACCOUNT, secrets.token_urlsafe(24), True


def write_mosquitto_files(config: Any, plugins: Any, directory: Path, host: str, port: int,
                          hub_username: str, hub_password: str) -> MosquittoFiles:
    """Write ``mosquitto.conf``, ``passwd`` and ``acl`` for the managed broker into ``directory``.

    With ``users:`` the files are those of ``anninh acl`` (same hashes, same ACL), anonymous
    clients are refused and every client id is replaced by the client's user name, so no person
    can take the hub's session. Without users the broker must stay on loopback and lets local
    clients in without a password (the demo's ``mosquitto_pub`` commands work as printed).
    """
    from pydantic import SecretStr

    from hub.security import AclError, device_facts, plan_acl, render_acl, write_password_file

    if not config.users and host not in LOOPBACK:
        raise BrokerError(f"mqtt.embedded_bind is {host}: the embedded broker listens beyond 127.0.0.1 "
                          "only with users (define users: in the config) so it can require passwords")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    data = directory / "data"
    data.mkdir(exist_ok=True)
    os.chmod(data, 0o700)
    effective = replace(config, mqtt=config.mqtt.model_copy(
        update={"username": hub_username, "password": SecretStr(hub_password)}))
    logins = {hub_username: hub_password}
    logins.update({u.name: u.password.get_secret_value() for u in config.users})
    try:
        write_password_file(directory / "passwd", logins)
        acl_path = None
        if config.users:
            acl_path = directory / "acl"
            text = render_acl(plan_acl(effective, device_facts(effective, plugins)), str(config.path))
            _write_private(acl_path, text)
    except AclError as exc:
        raise BrokerError(str(exc)) from None
    lines = [
        "# Written by the AnNinh hub at each start for `mqtt.server: embedded`; edits are overwritten.",
        *(["user root"] if os.geteuid() == 0 else []),  # else Mosquitto drops to `mosquitto`: no access to 0600 files
        "per_listener_settings false",
        f"allow_anonymous {'false' if config.users else 'true'}",
        f"password_file {directory / 'passwd'}",
        *([f"acl_file {acl_path}"] if acl_path else []),
        "persistence true",
        f"persistence_location {data}/",
        "autosave_interval 60",
        "log_dest stderr",
        "log_timestamp false",
        "log_type error", "log_type warning", "log_type notice", "log_type information",
        "connection_messages true",
        "set_tcp_nodelay true",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"listener {port} {host}",
        *(["use_username_as_clientid true"] if config.users else []),
        "",
    ]
    conf = directory / "mosquitto.conf"
    _write_private(conf, "\n".join(lines))
    return MosquittoFiles(directory, conf, hub_username, anonymous=not config.users,
                          bound_client_ids=bool(config.users))


def _write_private(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ManagedMosquitto:
    """Mosquitto as a supervised child process of the hub.

    :meth:`start` returns once the broker accepts connections (or raises :class:`BrokerError`
    with the end of its log). If it dies later it is started again after 0.5 s, doubling up to
    ``max_backoff`` (reset after a minute of good running); :meth:`stop` ends it (SIGTERM, which
    makes Mosquitto save its persistence file, then SIGKILL after 5 s).
    """

    kind = "mosquitto"

    def __init__(self, conf: Path, host: str, port: int, *, binary: str | None = None,
                 max_backoff: float = 30.0) -> None:
        self.conf = conf
        self.host = host
        self.port = port
        self.binary = binary or mosquitto_binary()
        if not self.binary:
            raise BrokerError(f"mosquitto is not installed ({INSTALL_HINT})")
        self.max_backoff = max_backoff
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.log_tail: deque[str] = deque(maxlen=50)
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._readers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    async def start(self, timeout: float = 10.0) -> None:
        await self._spawn()
        await self._wait_ready(timeout)
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name="mosquitto-supervisor")
        log.info("embedded broker: Mosquitto (pid %s) listening on %s:%d", self.pid, self.host, self.port)

    async def _spawn(self) -> None:
        assert self.binary is not None
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "-c", str(self.conf), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent)
        task = asyncio.get_running_loop().create_task(self._read_log(self.proc), name="mosquitto-log")
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)

    async def _read_log(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self.log_tail.append(line)
            if "should not be run as root" in line:  # `user root` is chosen when the hub itself runs as root
                mosquitto_log.debug("%s", line)
            elif line.startswith(("Error", "Warning")) or "already connected, closing old connection" in line:
                mosquitto_log.warning("%s", line)
            elif line.startswith(("mosquitto version", "Opening ", "Saving ")):
                mosquitto_log.info("%s", line)
            else:
                mosquitto_log.debug("%s", line)

    async def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        target = _connect_host(self.host)
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                await asyncio.sleep(0.05)  # let the log reader take the last lines
                tail = " | ".join(list(self.log_tail)[-5:]) or "no output"
                raise BrokerError(f"Mosquitto exited at start (code {self.proc.returncode}): {tail}")
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(target, self.port), 0.5)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.02)
                continue
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        raise BrokerError(f"Mosquitto did not open {self.host}:{self.port} within {timeout:g} s")

    async def _supervise(self) -> None:
        delay = 0.5
        failures = 0  # failed restarts in a row: the first is logged as a warning, the rest at debug
        while not self._stopping:
            proc = self.proc
            assert proc is not None
            started = time.monotonic()
            code = await proc.wait()
            if self._stopping:
                return
            if time.monotonic() - started > 60:
                delay = 0.5
            if not failures:
                log.warning("embedded broker: Mosquitto exited (code %s: %s); restarting in %.1f s", code,
                            self.log_tail[-1] if self.log_tail else "no output", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)
            if self._stopping:
                return
            try:
                await self._spawn()
                await self._wait_ready(10.0)
            except (BrokerError, OSError) as exc:
                failures += 1
                (log.warning if failures == 1 else log.debug)(
                    "embedded broker: restart failed: %s; retrying every %g s at most", exc, self.max_backoff)
                continue
            failures = 0
            self.restarts += 1
            log.info("embedded broker: Mosquitto restarted (pid %s)", self.pid)

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
            self._supervisor = None
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for task in list(self._readers):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 2.0)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the hub dies, even by kill -9 (Linux), so no
    orphaned broker holds the port and the persistence file."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------------------- Python fallback
class EmbeddedBroker:
    """The loopback-only Python fallback (amqtt, MQTT 3.1.1) for machines without Mosquitto.

    With ``users`` it requires their passwords (argon2 hashes in a private temporary file), but it
    has no ACL and binds no client id, so the hub does not run ``users:`` on it. Any address other
    than loopback is refused.
    """

    kind = "python"

    def __init__(self, host: str = "127.0.0.1", port: int = 1883,
                 users: dict[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self.users = users or {}
        self._broker: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        if self.host not in LOOPBACK:
            if not self.users:
                raise ValueError(f"the embedded broker would listen on {self.host}, beyond 127.0.0.1: define "
                                 "users (users: in the config) so it can require passwords, and install "
                                 f"Mosquitto ({INSTALL_HINT})")
            raise BrokerError(f"the Python fallback broker listens on loopback only, not on {self.host}: "
                              f"it has no ACL. Install Mosquitto ({INSTALL_HINT}) to listen beyond 127.0.0.1")
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        from amqtt.broker import Broker

        plugins: dict[str, Any]
        if not self.users:
            plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
        else:
            from pwdlib import PasswordHash
            from pwdlib.hashers.argon2 import Argon2Hasher

            hasher = PasswordHash((Argon2Hasher(),))
            self._tmp = tempfile.TemporaryDirectory(prefix="anninh-broker-")
            pwfile = Path(self._tmp.name) / "passwd"
            pwfile.write_text("".join(f"{u}:{hasher.hash(p)}\n" for u, p in self.users.items()))
            pwfile.chmod(0o600)
            plugins = {"amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(pwfile)}}
        config = {"listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                  "plugins": plugins}
        self._broker = _fixed_broker_class(Broker)(config)
        await self._broker.start()
        log.info("embedded MQTT broker (Python fallback) listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._broker is not None:
            try:
                await self._broker.shutdown()
            except Exception as exc:  # amqtt sometimes complains on shutdown; nothing to lose here
                log.debug("embedded broker shutdown: %r", exc)
            self._broker = None
        if self._tmp is not None:
            self._tmp.cleanup()


def _fixed_broker_class(base: type) -> type:
    """amqtt's Broker with its retained-message fault fixed.

    amqtt 0.12.1, on every connect, sends the new client the retained messages matching *every*
    subscription in the broker (any client's), whether or not this client subscribed: a client
    subscribed to ``a/x/set`` received ``a/state``. With a watcher on ``anninh/#`` each
    ``mosquitto_pub`` was flooded with the hub's retained states before its PUBLISH was read; it
    had already sent DISCONNECT and gone, so its command was lost (0 of 21 in the issue). Here a
    retained message goes only to a session that holds the matching subscription.
    """

    class FixedBroker(base):
        async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int],
                                                              session: Any) -> None:
            holders = self._subscriptions.get(subscription[0], ())
            if not any(held is session for held, _qos in holders):
                return
            await super()._publish_retained_messages_for_subscription(subscription, session)

    return FixedBroker
