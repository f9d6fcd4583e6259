"""TLS with a test CA, client certificates, the embedded broker's passwords, file-permission
warnings, and secrets in `anninh check` output."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from hub.broker import EmbeddedBroker
from hub.config import load_config
from tests.certs import Client, GeneratedBroker, make_ca, tls_refused
from tests.support.hubrun import hub_from_yaml, make_plugins, write_config
from tests.support.mosquitto import _free_port
from tests.support.mqtt import Recorder

BASE = "anninh"
SECRETS = {"mqtt_password": "hub-tls-Secret", "alice": "alice-tls-pw", "ian": "ian-tls-pw"}


def _yaml(server: str, mqtt_extra: str = "") -> str:
    return f"""
hub: {{name: TLS post, data_dir: ./data}}
mqtt:
  server: "{server}"
  username: hub
  password: !secret mqtt_password
{mqtt_extra}
sites: [{{id: kp3}}]
users:
  - {{name: alice, role: officer, password: !secret alice}}
  - {{name: ian, role: installer, password: !secret ian}}
"""


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory):
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def rogue_ca(tmp_path_factory: pytest.TempPathFactory):
    return make_ca(tmp_path_factory.mktemp("rogue"), name="rogue")


async def test_tls_hub_and_clients(tmp_path: Path, ca, rogue_ca) -> None:
    tls_port = _free_port()
    extra = f"  ca_file: {ca.ca}"
    path = write_config(tmp_path, _yaml(f"mqtts://127.0.0.1:{tls_port}", extra), SECRETS)
    pm = make_plugins(builtin=False)
    config = load_config(path, pm)
    with GeneratedBroker(config, pm, tmp_path / "out", tls_port=tls_port, ca=ca, plain=False):
        conf = (tmp_path / "out" / "mosquitto.conf").read_text()
        assert f"listener {tls_port} 127.0.0.1" in conf and "require_certificate false" in conf
        rec = Recorder(tls_port, topics=(f"{BASE}/#",), username="ian", password=SECRETS["ian"], ca_certs=str(ca.ca))
        async with hub_from_yaml(_yaml(f"mqtts://127.0.0.1:{tls_port}", extra), tmp_path, plugins=pm,
                                 secrets=SECRETS) as running:
            assert running.bridge.conn.connected
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/bridge/state", lambda j: j["state"] == "online")
        rec.close()
        # a client that does not trust the CA cannot connect: system CAs, or another CA
        for tls in ({}, {"ca_certs": str(rogue_ca.ca)}):
            exc = await asyncio.to_thread(tls_refused, tls_port, **tls)
            assert exc is not None and "CERTIFICATE_VERIFY_FAILED" in str(exc), exc
        # and with the CA but the wrong password: refused at CONNACK
        c = Client(tls_port, "alice", "wrong", tls={"ca_certs": str(ca.ca)})
        assert (await asyncio.to_thread(c.connect)).is_failure
        c.close()


async def test_tls_client_certificates(tmp_path: Path, ca, rogue_ca) -> None:
    tls_port = _free_port()
    hub_crt, hub_key = ca.issue("hubclient", "hub")
    rogue_crt, rogue_key = rogue_ca.issue("rogueclient", "hub")
    extra = f"  ca_file: {ca.ca}\n  cert_file: {hub_crt}\n  key_file: {hub_key}"
    path = write_config(tmp_path, _yaml(f"mqtts://127.0.0.1:{tls_port}", extra), SECRETS)
    pm = make_plugins(builtin=False)
    config = load_config(path, pm)
    with GeneratedBroker(config, pm, tmp_path / "out", tls_port=tls_port, ca=ca, plain=False,
                         require_certificate=True):
        assert "require_certificate true" in (tmp_path / "out" / "mosquitto.conf").read_text()
        # no client certificate, or one from another CA: the handshake fails
        assert await asyncio.to_thread(tls_refused, tls_port, ca_certs=str(ca.ca)) is not None
        assert await asyncio.to_thread(tls_refused, tls_port, ca_certs=str(ca.ca), certfile=str(rogue_crt),
                                       keyfile=str(rogue_key)) is not None
        async with hub_from_yaml(_yaml(f"mqtts://127.0.0.1:{tls_port}", extra), tmp_path, plugins=pm,
                                 secrets=SECRETS) as running:
            assert running.bridge.conn.connected
            rec = Recorder(tls_port, topics=(f"{BASE}/#",), username="ian", password=SECRETS["ian"],
                           ca_certs=str(ca.ca), certfile=str(hub_crt), keyfile=str(hub_key))
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/bridge/state", lambda j: j["state"] == "online")
            rec.close()


async def test_embedded_broker_requires_passwords_when_users_given() -> None:
    port = _free_port()
    broker = EmbeddedBroker("127.0.0.1", port, users={"hub": "emb-hub-pw", "alice": "emb-alice-pw"})
    await broker.start()
    try:
        for user, pw, refused in ((None, None, True), ("alice", "nope", True), ("alice", "emb-alice-pw", False)):
            c = Client(port, user, pw, v5=False)  # amqtt speaks MQTT 3.1.1 only
            rc = await asyncio.to_thread(c.connect)
            c.close()
            assert rc.is_failure is refused, (user, rc)
    finally:
        await broker.stop()


async def test_embedded_broker_is_loopback_by_default_and_never_open_beyond() -> None:
    from hub.config import MqttSection

    assert MqttSection().embedded_bind == "127.0.0.1"
    with pytest.raises(ValueError, match="define users"):
        # refused before anything is bound: an embedded broker beyond loopback needs passwords
        await EmbeddedBroker("0.0.0.0", _free_port()).start()


def _anninh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys; from hub.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, timeout=60)


def test_world_readable_config_and_secrets_warn(tmp_path: Path) -> None:
    path = write_config(tmp_path, _yaml("mqtt://127.0.0.1:1883"), SECRETS)
    assert load_config(path).warnings == []
    path.chmod(0o644)
    (tmp_path / "secrets.yaml").chmod(0o644)
    warnings = load_config(path).warnings
    assert len(warnings) == 2 and all("readable by every user" in w for w in warnings)
    proc = _anninh("-v", "check", "-c", str(path))
    assert proc.returncode == 0
    assert "secrets.yaml is readable by every user" in proc.stderr and "chmod o-r" in proc.stderr
    for secret in SECRETS.values():
        assert secret not in proc.stdout + proc.stderr


# A `!secret` value put (by mistake) where the config expects something else must not be echoed
# by `anninh check` (config.py shows misplaced secrets as <secret NAME>).
MISPLACED_SECRET = {
    "hub.timezone": "hub: {timezone: !secret x}",
    "hub.latitude": "hub: {latitude: !secret x, longitude: 1}",
    "mqtt.server": "mqtt: {server: !secret x}",
    "mqtt.base_topic": "mqtt: {base_topic: !secret x}",
    "mqtt.discovery_prefix": "mqtt: {discovery_prefix: !secret x}",
    "mqtt.keepalive": "mqtt: {keepalive: !secret x}",
    "mqtt.username": "mqtt: {username: [!secret x]}",
    "sites.id": "sites: [{id: !secret x}]",
    "devices.id": "devices: [{id: !secret x, platform: echo}]",
    "devices.platform": "devices: [{id: a, platform: !secret x}]",
    "devices.site": "devices: [{id: a, platform: echo, site: !secret x}]",
    "devices.value": "devices: [{id: a, platform: echo, value: !secret x}]",
    "devices.key": "devices: [{id: a, platform: echo, !secret x: 1}]",
    "users.name": "users: [{name: !secret x, role: officer, password: p}]",
    "users.role": "users: [{name: a, role: !secret x, password: p}]",
    "users.sites": "users: [{name: a, role: officer, password: p, sites: [!secret x]}]",
    "users.password": "users: [{name: a, role: officer, password: [!secret x]}]",
    "rules.name": "rules: {!secret x: {}}",
    "top": "!secret x",
}


@pytest.mark.parametrize("where", list(MISPLACED_SECRET))
def test_config_errors_never_show_a_secret(tmp_path: Path, where: str) -> None:
    from hub.config import ConfigError
    from tests import plugin_echo

    secret = "s3cr3t#Leak me/"
    path = write_config(tmp_path, MISPLACED_SECRET[where] + "\n", {"x": secret})
    with pytest.raises(ConfigError) as info:
        load_config(path, make_plugins(("echo", plugin_echo), builtin=False))
    assert "s3cr3t" not in str(info.value)


def test_check_output_never_shows_a_secret(tmp_path: Path) -> None:
    text = "mqtt:\n  server: mqtt://127.0.0.1:1\n  keepalive: !secret mqtt_password\n  username: hub\n" \
           "  password: !secret mqtt_password\nusers: [{name: x, role: officer, password: !secret alice}]\n"
    path = write_config(tmp_path, text, SECRETS)
    proc = _anninh("-v", "check", "-c", str(path))
    assert proc.returncode == 1 and "mqtt.keepalive" in proc.stderr
    for secret in SECRETS.values():
        assert secret not in proc.stdout + proc.stderr


# ---------------------------------------------------------------- what history.db keeps (issue 15)
async def test_history_redacts_every_stored_form(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Passwords with ``"`` and ``\\`` (stored JSON-escaped), typed as a command value, as the user
    of ``/set/<user>``, as a device id, longer than any cut; free text never stored verbatim; the
    data files are created 0600."""
    import json
    import logging
    import os

    from hub.core import Hub
    from hub.redact import register_secrets
    from tests import plugin_echo

    quoted = 'pa"ss\\word-1'
    long = "L0ng-pass-phrase-of-more-than-thirty-two-characters"
    path = write_config(tmp_path, """
hub: {data_dir: ./data}
devices: [{id: e1, platform: echo}]
users:
  - {name: an, role: officer, password: !secret an}
  - {name: ba, role: officer, password: !secret ba}
""", {"an": quoted, "ba": long})
    pm = make_plugins(("echo", plugin_echo), builtin=False)
    config = load_config(path, pm)
    register_secrets(config.secrets())
    old_umask = os.umask(0o022)
    caplog.set_level(logging.INFO)
    hub = Hub(config, pm)
    hub.rejection_interval = 0.0  # every rejection reported (the summaries are tested elsewhere)
    try:
        await hub.start()
        for device, command, user in (("e1", {"state": quoted}, "an"), ("e1", {"state": "ON", "note": long}, "an"),
                                      ("e1", {"state": "ON"}, quoted), ("e1", {"state": "ON"}, long),
                                      (long, {"state": "ON"}, "ba"),
                                      ("e1", {"state": "ON", "colour": "free text, maybe a PIN 4711"}, "ba")):
            assert not await hub.command(device, command, user=user)
            await asyncio.sleep(0.01)  # the next rejection in a new (zero-length) interval
        assert await hub.command("e1", {"state": "ON"}, user="ba")
        assert hub.history is not None
        hub.history.flush()
        audit = hub.history.audit()
    finally:
        await hub.stop()
        os.umask(old_umask)
        plugin_echo.BEHAVIOUR.clear()
    data = tmp_path / "data"
    for name in ("history.db", "history.db-wal", "outbox.db"):
        if (data / name).exists():
            assert (data / name).stat().st_mode & 0o777 == 0o600, name
    assert (data / "history.db").stat().st_mode & 0o777 == 0o600
    stored = b"".join((data / n).read_bytes() for n in ("history.db", "history.db-wal") if (data / n).exists())
    forms = {quoted, json.dumps(quoted)[1:-1], long, long[:32], long[:30], "free text", "4711"}
    for form in forms:
        assert form.encode() not in stored, form
        assert form not in caplog.text, form
    assert len(audit) == 7 and audit[-1]["result"] == "ok"
    assert audit[0]["command"] == {"state": "***"}          # a known secret: masked
    assert audit[1]["command"] == {"state": "ON", "note": "***"}
    assert audit[5]["command"] == {"state": "ON", "colour": "<text of 27 chars>"}  # other text: its length
    assert {a["user"] for a in audit[2:4]} == {"***"} and audit[4]["device"] == "***"
    # officer commands and rejections are logged at INFO, one line each, naming user and device
    lines = [r.getMessage() for r in caplog.records if r.name == "hub" and "command" in r.getMessage()]
    assert any(m.startswith("command: user ba -> e1") and '"state":"ON"' in m for m in lines), lines
    assert sum(m.startswith("command rejected: user") for m in lines) == 6, lines
