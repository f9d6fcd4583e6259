"""Start a real Mosquitto broker on a free loopback port (tests and benchmarks)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hub.process import stop_process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """``with Mosquitto() as m: m.port``. ``extra`` is appended to the generated config."""

    def __init__(self, port: int | None = None, extra: str = "", workdir: Path | None = None,
                 allow_anonymous: bool = True, persistence: bool = False) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(self.binary).exists():
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="anninh-mosq-")
        self.dir = workdir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.port = port or _free_port()
        self.extra = extra
        self.allow_anonymous = allow_anonymous
        self.persistence = persistence
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        lines = []
        if os.geteuid() == 0:
            lines.append("user root")
        lines += [f"listener {self.port} 127.0.0.1",
                  f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
                  *(["persistence true", f"persistence_location {self.dir}/"] if self.persistence
                    else ["persistence false"]),
                  "log_dest stderr", "log_type error", "log_type warning",
                  "max_queued_messages 100000",
                  "set_tcp_nodelay true",  # as production should: commands must not wait 40 ms for Nagle
                  self.extra]
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> Mosquitto:
        conf = self.write_config()
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=self._logf, stderr=self._logf)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("mosquitto did not open its port")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
            self._logf.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None
            self._logf.close()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
