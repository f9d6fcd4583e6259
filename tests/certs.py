"""Test helpers for the security tests: a throw-away CA made with openssl, and a Mosquitto
started from exactly the files ``anninh acl`` writes (passwd, acl, mosquitto.conf)."""

from __future__ import annotations

import os
import ssl
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hub.config import Config
from hub.security import ListenerOptions, generate
from tests.support.mosquitto import Mosquitto, _free_port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass
class CertAuthority:
    dir: Path
    ca: Path
    ca_key: Path

    def issue(self, name: str, cn: str, server: bool = False) -> tuple[Path, Path]:
        """A certificate and key signed by this CA (server ones valid for 127.0.0.1/localhost)."""
        key, csr, crt = self.dir / f"{name}.key", self.dir / f"{name}.csr", self.dir / f"{name}.crt"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                 "-subj", f"/CN={cn}", cwd=self.dir)
        ext = self.dir / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server else
                       "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key),
                 "-CAcreateserial", "-out", str(crt), "-days", "1", "-extfile", str(ext), cwd=self.dir)
        key.chmod(0o600)
        return crt, key


def make_ca(directory: Path, name: str = "ca") -> CertAuthority:
    directory.mkdir(parents=True, exist_ok=True)
    ca, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN=test-{name}",
             "-keyout", str(key), "-out", str(ca), cwd=directory)
    return CertAuthority(directory, ca, key)


class GeneratedBroker(Mosquitto):
    """Mosquitto running on the ``mosquitto.conf`` that ``anninh acl`` wrote (plus logging and,
    when the tests run as root, ``user root`` so the broker can read the 0600 files)."""

    def __init__(self, config: Config, plugins: Any, out_dir: Path, *, port: int | None = None,
                 tls_port: int | None = None, ca: CertAuthority | None = None, require_certificate: bool = False,
                 plain: bool = True) -> None:
        self.out_dir = out_dir
        self.tls_port = tls_port
        port = port or _free_port()
        opts = ListenerOptions(listen=f"127.0.0.1:{port}" if plain else None)
        if tls_port:
            assert ca is not None
            crt, key = ca.issue("server", "localhost", server=True)
            opts = ListenerOptions(listen=opts.listen, tls_listen=f"127.0.0.1:{tls_port}", cafile=str(ca.ca),
                                   certfile=str(crt), keyfile=str(key), require_certificate=require_certificate)
        self.result = generate(config, plugins, out_dir, opts)
        workdir = out_dir / "mosq"
        workdir.mkdir(exist_ok=True)
        super().__init__(port=port if plain else tls_port, workdir=workdir, allow_anonymous=False)

    def write_config(self) -> Path:
        head = ["user root"] if os.geteuid() == 0 else []
        head += ["log_dest stderr", "log_type error", "log_type warning", "log_type notice", "persistence false"]
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join(head) + "\n" + (self.out_dir / "mosquitto.conf").read_text())
        return conf


class Client:
    """A synchronous MQTT 5 client: connect result and each publish's PUBACK reason code."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None,
                 v5: bool = True, tls: dict[str, Any] | None = None) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set(**tls)
        self.connected = threading.Event()
        self.rc: Any = None
        self.acks: dict[int, Any] = {}
        self._ack = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.port = port

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.rc = rc
        self.connected.set()

    def _on_publish(self, c: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
        with self._ack:
            self.acks[mid] = rc
            self._ack.notify_all()

    def connect(self, timeout: float = 5.0) -> Any:
        """Returns the CONNACK reason code, or raises (e.g. ``ssl.SSLError``) if the link fails."""
        self.client.connect("127.0.0.1", self.port, 30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise TimeoutError("no CONNACK")
        return self.rc

    def publish(self, topic: str, payload: str, timeout: float = 5.0) -> Any:
        """Publish at QoS 1 and return the broker's PUBACK reason code (135 = not authorized)."""
        info = self.client.publish(topic, payload, qos=1)
        with self._ack:
            if not self._ack.wait_for(lambda: info.mid in self.acks, timeout):
                raise TimeoutError(f"no PUBACK for {topic}")
            return self.acks[info.mid]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def tls_refused(port: int, **tls: Any) -> BaseException | None:
    """Connect with these TLS settings; return the exception if the handshake fails."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    c.tls_set(**tls)
    try:
        c.connect("127.0.0.1", port, 30)
        # the handshake ran in connect(); a broker that wants a client certificate may only
        # refuse on the first read, so drive the loop once
        for _ in range(20):
            rc = c.loop(0.1)
            if rc != paho.MQTT_ERR_SUCCESS:
                return ConnectionError(f"loop rc {rc}")
        return None
    except (ssl.SSLError, OSError) as exc:
        return exc
    finally:
        c.disconnect()
