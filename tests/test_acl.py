"""Roles enforced by a real Mosquitto running on the files ``anninh acl`` writes, with the hub
behind it: who may command, who may pose as whom, who sees which site."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub.api import PlatformSpec
from hub.config import load_config
from hub.hookspecs import hookimpl
from hub.security import (
    AclError,
    device_facts,
    mosquitto_hash,
    plan_acl,
    render_acl,
    write_password_file,
)
from tests import plugin_echo
from tests.certs import Client, GeneratedBroker
from tests.support.hubrun import hub_from_yaml, make_plugins, write_config
from tests.support.mosquitto import _free_port
from tests.support.mqtt import Recorder

BASE = "anninh"
NOT_AUTHORIZED = 135

SECRETS = {"mqtt_password": "hub-Secret-1", "alice": "alice: pw #1 ", "bob": "bob-pw-2", "carl": "carl-pw-3",
           "cora": "cora-pw-4", "ian": "ian-pw-5", "vic": "vic-pw-6"}


class UpsEcho(plugin_echo.EchoDriver):
    """An echo device that says it is a UPS and takes no commands (contractors may read it)."""

    kind = "ups"
    command_model = None


class _TestPlatforms:
    @hookimpl
    def anninh_platforms(self) -> list[PlatformSpec]:
        return [PlatformSpec(name="ups_echo", config_model=plugin_echo.EchoConfig, driver=UpsEcho,
                             description="test UPS")]


def _plugins():
    return make_plugins(("echo", plugin_echo), ("ups_echo", _TestPlatforms()), builtin=False)  # type: ignore[arg-type]


def _yaml(port: int) -> str:
    return f"""
hub: {{name: Test post, data_dir: ./data}}
mqtt:
  server: "mqtt://127.0.0.1:{port}"
  username: hub
  password: !secret mqtt_password
  discovery: true
sites: [{{id: kp3}}, {{id: kp4}}]
devices:
  - {{id: light-kp3, platform: echo, site: kp3}}
  - {{id: light-kp4, platform: echo, site: kp4}}
  - {{id: ups-kp3, platform: ups_echo, site: kp3}}
  - {{id: ups-kp4, platform: ups_echo, site: kp4}}
users:
  - {{name: alice, role: officer, password: !secret alice}}
  - {{name: bob, role: officer, password: !secret bob}}
  - {{name: carl, role: contractor, password: !secret carl, sites: [kp3]}}
  - {{name: cora, role: contractor, password: !secret cora}}
  - {{name: ian, role: installer, password: !secret ian}}
  - {{name: vic, role: viewer, password: !secret vic, sites: [kp4]}}
"""


@pytest.fixture(autouse=True)
def _reset_echo():
    plugin_echo.BEHAVIOUR.clear()
    yield
    plugin_echo.BEHAVIOUR.clear()


def _config(tmp_path: Path, port: int = 1883):
    path = write_config(tmp_path, _yaml(port), SECRETS)
    pm = _plugins()
    return load_config(path, pm), pm


# ---------------------------------------------------------------- the files themselves
def test_acl_lines_follow_roles(tmp_path: Path) -> None:
    config, pm = _config(tmp_path)
    facts = {d.id: d for d in device_facts(config, pm)}
    assert facts["light-kp3"].switchable and facts["light-kp3"].kind == "light"
    assert not facts["ups-kp3"].switchable and facts["ups-kp3"].kind == "ups"
    acl = {e.name: e for e in plan_acl(config, list(facts.values()))}
    assert acl["hub"].readwrite == ["#"]
    # officers: commands under their own name, only on switchable devices
    assert f"{BASE}/light-kp3/set/alice" in acl["alice"].write and f"{BASE}/light-kp4/set/alice" in acl["alice"].write
    assert not any("/set/bob" in t or t.endswith("/set") or "ups-" in t for t in acl["alice"].write)
    # contractors never write a command topic; a site-limited one reads only its site's devices
    assert not any("/set" in t for t in acl["carl"].write + acl["cora"].write)
    assert f"{BASE}/ups-kp3" in acl["carl"].read and f"{BASE}/light-kp3/availability" in acl["carl"].read
    assert f"{BASE}/light-kp3" not in acl["carl"].read  # light state is not a contractor's business
    assert not any("kp4" in t for t in acl["carl"].read + acl["carl"].write)
    assert f"{BASE}/bridge/event" not in acl["carl"].read + acl["cora"].read
    assert not any("#" in t for t in acl["carl"].read + acl["cora"].read)
    # viewer limited to kp4: per-site events, no commands, no wildcard reads of the tree
    assert f"{BASE}/site/kp4/event" in acl["vic"].read and not any("/set" in t for t in acl["vic"].write)
    assert f"{BASE}/#" not in acl["vic"].read
    # installer: unnamed /set for Home Assistant, its own name, every request
    assert f"{BASE}/light-kp4/set" in acl["ian"].write and f"{BASE}/light-kp4/set/ian" in acl["ian"].write
    text = render_acl(acl.values())
    assert text.index("user hub") > 0 and "%u" not in text.split("user hub")[0]
    for secret in SECRETS.values():
        assert secret not in text


def test_acl_refuses_unusable_configs(tmp_path: Path) -> None:
    config, pm = _config(tmp_path)
    facts = device_facts(config, pm)
    no_hub = type(config.mqtt).model_validate({**config.mqtt.model_dump(), "username": None})
    with pytest.raises(AclError, match=r"mqtt\.username"):
        plan_acl(type(config)(**{**config.__dict__, "mqtt": no_hub}), facts)
    clash = type(config.mqtt).model_validate({**config.mqtt.model_dump(), "username": "alice"})
    with pytest.raises(AclError, match="alice"):
        plan_acl(type(config)(**{**config.__dict__, "mqtt": clash}), facts)
    with pytest.raises(AclError, match="line break"):
        write_password_file(tmp_path / "p", {"x": "a\nb"})
    with pytest.raises(AclError, match="empty"):
        write_password_file(tmp_path / "p", {"x": ""})


@pytest.mark.parametrize("tool", ["auto", None])
def test_password_file_matches_mosquitto_format(tmp_path: Path, tool: str | None) -> None:
    if tool == "auto" and not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto_passwd not installed")
    users = {"alice": "a: b #c ü ", "bob": " lead", "carl": "x" * 200}
    write_password_file(tmp_path / "passwd", users, tool)
    assert (tmp_path / "passwd").stat().st_mode & 0o777 == 0o600
    lines = (tmp_path / "passwd").read_text().splitlines()
    assert [line.split(":", 1)[0] for line in lines] == list(users)
    for line in lines:
        name, h = line.split(":", 1)
        _, seven, iterations, salt, _digest = h.split("$")
        assert seven == "7"
        assert mosquitto_hash(users[name], base64.b64decode(salt), int(iterations)) == h
        assert users[name] not in line
    assert not list(tmp_path.glob(".anninh-acl-*"))  # the private work folder is gone


def test_cli_writes_files_and_hides_passwords(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # `anninh acl` in a subprocess, as an installer runs it (loads only built-in plugins, so use a
    # config whose devices exist there: none)
    cfg = tmp_path / "cli" / "config.yaml"
    cfg.parent.mkdir()
    text = _yaml(1883).split("devices:")[0] + "users:" + _yaml(1883).split("users:")[1]
    cfg.write_text(text)
    (cfg.parent / "secrets.yaml").write_text("".join(f"{k}: {v!r}\n" for k, v in SECRETS.items()))
    for p in (cfg, cfg.parent / "secrets.yaml"):
        p.chmod(0o600)
    proc = subprocess.run([sys.executable, "-c", "import sys; from hub.cli import main; sys.exit(main())",
                           "-v", "acl", "-c", str(cfg), "-o", str(out), "--tls-listen", "127.0.0.1:8883",
                           "--cafile", "ca.crt", "--certfile", "s.crt", "--keyfile", "s.key"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {"passwd", "acl", "mosquitto.conf"}
    conf = (out / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "listener 1883 127.0.0.1" in conf and "listener 8883 127.0.0.1" in conf
    assert "require_certificate false" in conf
    for secret in SECRETS.values():
        assert secret not in proc.stdout + proc.stderr
        for f in out.iterdir():
            assert secret not in f.read_text()
    bad = subprocess.run([sys.executable, "-c", "import sys; from hub.cli import main; sys.exit(main())",
                          "acl", "-c", str(cfg), "-o", str(out), "--tls-listen", "127.0.0.1:8883"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "--cafile" in bad.stderr


# ---------------------------------------------------------------- a real broker with the hub behind it
async def _wait(pred, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


def _commands(device: str) -> list:
    return plugin_echo.BEHAVIOUR.get(device, {}).get("commands", [])


async def test_roles_against_real_mosquitto(tmp_path: Path) -> None:
    port = _free_port()
    (tmp_path / "gen").mkdir()
    config, pm = _config(tmp_path / "gen", port)
    with GeneratedBroker(config, pm, tmp_path / "broker", port=port) as broker:
        # anonymous and wrong passwords are refused, at CONNACK
        for user, pw in ((None, None), ("alice", "wrong"), ("nobody", "x"), ("alice", SECRETS["bob"])):
            c = Client(broker.port, user, pw)
            rc = await asyncio.to_thread(c.connect)
            c.close()
            assert rc.is_failure and rc.value == NOT_AUTHORIZED, (user, rc)

        carl = Recorder(broker.port, username="carl", password=SECRETS["carl"])   # contractor at kp3
        vic = Recorder(broker.port, username="vic", password=SECRETS["vic"])      # viewer at kp4
        ian = Recorder(broker.port, username="ian", password=SECRETS["ian"])      # installer: sees all
        async with hub_from_yaml(_yaml(port), tmp_path / "gen", plugins=pm, secrets=SECRETS) as running:
            await asyncio.to_thread(ian.wait_topic, f"{BASE}/light-kp3/availability", lambda j: j["state"] == "online")
            await _wait(lambda: all(running.hub.availability.get(d) for d in
                                    ("light-kp3", "light-kp4", "ups-kp3", "ups-kp4")))

            # a contractor's publish to any /set topic is refused by the broker and changes nothing
            contractor = Client(broker.port, "cora", SECRETS["cora"])
            assert not (await asyncio.to_thread(contractor.connect)).is_failure
            for topic in (f"{BASE}/light-kp3/set", f"{BASE}/light-kp3/set/cora", f"{BASE}/light-kp3/set/alice",
                          f"{BASE}/ups-kp3/set/cora"):
                rc = await asyncio.to_thread(contractor.publish, topic, '{"state":"ON"}')
                assert rc.value == NOT_AUTHORIZED, topic
            contractor.close()
            # an officer cannot publish as another officer, nor on the unnamed topic
            alice = Client(broker.port, "alice", SECRETS["alice"])
            assert not (await asyncio.to_thread(alice.connect)).is_failure
            for topic in (f"{BASE}/light-kp3/set/bob", f"{BASE}/light-kp3/set"):
                assert (await asyncio.to_thread(alice.publish, topic, '{"state":"ON"}')).value == NOT_AUTHORIZED
            # her own name works: the light switches and the audit trail names her
            mark = ian.count()
            rc = await asyncio.to_thread(alice.publish, f"{BASE}/light-kp3/set/alice", '{"state":"ON"}')
            assert not rc.is_failure
            event = await asyncio.to_thread(ian.wait_event, BASE, "command", after=mark, device="light-kp3")
            assert event["user"] == "alice" and event["command"] == {"state": "ON"}
            await asyncio.to_thread(ian.wait_topic, f"{BASE}/light-kp3", lambda j: j["state"] == "ON", after=mark)
            alice.close()
            assert _commands("light-kp3") == [({"state": "ON"}, "alice")]  # nobody else's got through
            assert _commands("light-kp4") == []
            history = running.hub.history
            assert history is not None
            await asyncio.to_thread(history.flush)
            audit = history.audit()
            assert [(a["user"], a["device"], a["command"], a["result"]) for a in audit] == [
                ("alice", "light-kp3", {"state": "ON"}, "ok")]
            assert audit[0]["ts"] > 0

            # the contractor limited to kp3 sees kp3 and nothing of kp4
            await asyncio.to_thread(carl.wait_topic, f"{BASE}/ups-kp3", lambda j: j.get("model") == "Echo-1")
            await asyncio.to_thread(carl.wait_topic, f"{BASE}/site/kp3")
            await asyncio.to_thread(vic.wait_topic, f"{BASE}/light-kp4/availability")
            await asyncio.sleep(0.3)
        # after the hub stopped (offline states published): still nothing of the other site
        carl_topics = {m.topic for m in carl.messages}
        vic_topics = {m.topic for m in vic.messages}
        for rec in (carl, vic, ian):
            rec.close()
    assert carl_topics >= {f"{BASE}/ups-kp3", f"{BASE}/ups-kp3/availability", f"{BASE}/light-kp3/availability",
                           f"{BASE}/site/kp3", f"{BASE}/bridge/state"}
    assert not [t for t in carl_topics if "kp4" in t], carl_topics
    assert f"{BASE}/light-kp3" not in carl_topics and f"{BASE}/bridge/event" not in carl_topics
    assert not [t for t in carl_topics if t.startswith("homeassistant/")]
    assert not [t for t in vic_topics if "kp3" in t], vic_topics
    assert f"{BASE}/light-kp4" in vic_topics


async def test_hub_with_wrong_password_is_refused_and_says_so(tmp_path: Path, caplog) -> None:
    port = _free_port()
    (tmp_path / "gen").mkdir()
    config, pm = _config(tmp_path / "gen", port)
    with GeneratedBroker(config, pm, tmp_path / "broker", port=port):
        wrong = dict(SECRETS, mqtt_password="not-the-hub-password")
        caplog.set_level("INFO")
        async with hub_from_yaml(_yaml(port), tmp_path / "gen", plugins=pm, secrets=wrong,
                                 connect_timeout=1.0) as running:
            assert not running.bridge.conn.connected
        assert "refused the connection" in caplog.text
        assert "not-the-hub-password" not in caplog.text
