"""The embedded MQTT broker (amqtt, MQTT 3.1.1 only) for ``anninh demo`` and small installs.

It binds to 127.0.0.1 unless ``mqtt.embedded_bind`` says otherwise; when it listens on any
other address it requires the configured users' passwords (argon2 hashes, amqtt's format), so
an embedded broker is never an open door on the commune's network.
"""

from __future__ import annotations

import logging
import socket
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


class EmbeddedBroker:
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
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        from amqtt.broker import Broker

        plugins: dict[str, Any]
        if self.host in ("127.0.0.1", "localhost", "::1") and not self.users:
            plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
        else:
            if not self.users:
                raise ValueError("the embedded broker listens beyond 127.0.0.1: define users "
                                 "(users: in the config) so it can require passwords")
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
        self._broker = Broker(config)
        await self._broker.start()
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._broker is not None:
            try:
                await self._broker.shutdown()
            except Exception as exc:  # amqtt sometimes complains on shutdown; nothing to lose here
                log.debug("embedded broker shutdown: %r", exc)
            self._broker = None
        if self._tmp is not None:
            self._tmp.cleanup()
