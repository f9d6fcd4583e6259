"""A whole install (Mosquitto with the generated passwd/ACL, users, every camera platform with its
simulator, right and wrong device passwords, debug logging) and a search for the configured
passwords in everything the hub wrote: every MQTT message, every log line, the history and
registry files, diagnostics, `anninh check` and `anninh acl` output.

Adding a platform is one entry in SCENARIO: an async function that starts its simulator(s) on
the given exit stack and returns YAML device entries (use ``!secret NAME`` for passwords and add
NAME to ``secrets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from hub.config import load_config
from hub.redact import install_log_redaction
from tests import plugin_echo
from tests.certs import Client, GeneratedBroker
from tests.support.hubrun import hub_from_yaml, make_plugins, write_config
from tests.support.mosquitto import _free_port
from tests.support.mqtt import Recorder

BASE = "anninh"
Starter = Callable[[contextlib.AsyncExitStack, dict[str, str]], Awaitable[list[str]]]


async def _hikvision(stack: contextlib.AsyncExitStack, secrets: dict[str, str]) -> list[str]:
    from plugins.hikvision.simulator import HikvisionSimulator

    secrets |= {"hik_pw": "Hik:Pw/1@x y", "hik_wrong": "hik-WRONG-pw-7"}
    sim = HikvisionSimulator("nvr", 2, password=secrets["hik_pw"], repeat_interval=0.2)
    await sim.start()
    stack.push_async_callback(sim.stop)
    return [f"{{id: hik-nvr, platform: hikvision, site: kp3, host: 127.0.0.1, port: {sim.port}, "
            "password: !secret hik_pw, timeout: 3, health_interval: 0}",
            f"{{id: hik-bad, platform: hikvision, site: kp3, host: 127.0.0.1, port: {sim.port}, "
            "password: !secret hik_wrong, timeout: 3, health_interval: 0}"]


async def _dahua(stack: contextlib.AsyncExitStack, secrets: dict[str, str]) -> list[str]:
    from plugins.dahua.simulator import DahuaSimulator

    secrets |= {"dahua_pw": "Dh#pw&=?;x", "dahua_wrong": "dahua-WRONG-pw-8"}
    sim = DahuaSimulator("camera", password=secrets["dahua_pw"])
    await sim.start()
    stack.push_async_callback(sim.stop)
    return [f"{{id: dh-cam, platform: dahua, site: kp4, host: 127.0.0.1, port: {sim.port}, "
            "password: !secret dahua_pw, timeout: 3, health_interval: 0}",
            f"{{id: dh-bad, platform: dahua, site: kp4, host: 127.0.0.1, port: {sim.port}, "
            "password: !secret dahua_wrong, timeout: 3, health_interval: 0}"]


async def _onvif(stack: contextlib.AsyncExitStack, secrets: dict[str, str]) -> list[str]:
    from plugins.generic_onvif.simulator import OnvifSimulator

    secrets |= {"onvif_pw": 'Onvif<pw>&"1', "onvif_wrong": "onvif-WRONG-pw-9"}
    sim = OnvifSimulator(password=secrets["onvif_pw"], port=0)
    await sim.start()
    stack.push_async_callback(sim.stop)
    return [f"{{id: onvif-cam, platform: generic_onvif, site: kp3, host: 127.0.0.1, port: {sim.port}, "
            "username: admin, password: !secret onvif_pw, timeout: 5, health_interval: 0}",
            f"{{id: onvif-bad, platform: generic_onvif, site: kp3, host: 127.0.0.1, port: {sim.port}, "
            "username: admin, password: !secret onvif_wrong, timeout: 5, health_interval: 0}"]


async def _echo(stack: contextlib.AsyncExitStack, secrets: dict[str, str]) -> list[str]:
    return ["{id: light-kp3, platform: echo, site: kp3}"]


SCENARIO: dict[str, Starter] = {"hikvision": _hikvision, "dahua": _dahua, "generic_onvif": _onvif, "echo": _echo}
"""platform -> starter. Online devices must come online, ids ending in -bad must go offline."""

USER_SECRETS = {"mqtt_password": "Hub&Mqtt:pw#1", "alice": "Alice pw 2!", "carl": "carl/pw%3", "ian": "ian-pw-4x"}


def _yaml(port: int, devices: list[str]) -> str:
    items = "\n".join(f"  - {d}" for d in devices)
    return f"""
hub: {{name: Secret post, data_dir: ./data}}
mqtt:
  server: "mqtt://127.0.0.1:{port}"
  username: hub
  password: !secret mqtt_password
sites: [{{id: kp3}}, {{id: kp4}}]
devices:
{items}
users:
  - {{name: alice, role: officer, password: !secret alice}}
  - {{name: carl, role: contractor, password: !secret carl, sites: [kp3]}}
  - {{name: ian, role: installer, password: !secret ian}}
"""


def _forms(secret: str) -> set[str]:
    """The password and the encodings it could leak in (URL, JSON/HTML escapes)."""
    return {secret, quote(secret, safe=""), quote(secret), secret.replace('"', '\\"'),
            secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")}


async def test_no_password_anywhere(tmp_path: Path) -> None:
    port = _free_port()
    secrets = dict(USER_SECRETS)
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    install_log_redaction()
    pm = make_plugins(("echo", plugin_echo))
    try:
        async with contextlib.AsyncExitStack() as stack:
            devices: list[str] = []
            for starter in SCENARIO.values():
                devices += await starter(stack, secrets)
            text = _yaml(port, devices)
            config = load_config(write_config(tmp_path, text, secrets), pm)
            with GeneratedBroker(config, pm, tmp_path / "broker", port=port) as broker:
                # a login attempt with a wrong password and one with a user's password as user name
                for user, pw in (("alice", "nope"), (USER_SECRETS["alice"], "x")):
                    c = Client(broker.port, user, pw)
                    assert (await asyncio.to_thread(c.connect)).is_failure
                    c.close()
                rec = Recorder(broker.port, topics=("#", "$SYS/#"), username="hub",
                               password=USER_SECRETS["mqtt_password"])
                async with hub_from_yaml(text, tmp_path, plugins=pm, secrets=secrets) as running:
                    good = [d.id for d in config.devices if not d.id.endswith("-bad")]
                    bad = [d.id for d in config.devices if d.id.endswith("-bad")]
                    deadline = asyncio.get_running_loop().time() + 20
                    while not (all(running.hub.availability.get(d) for d in good)
                               and all(running.hub.availability.get(d) is False for d in bad)):
                        assert asyncio.get_running_loop().time() < deadline, (running.hub.availability,
                                                                              running.hub.errors)
                        await asyncio.sleep(0.1)
                    alice = Client(broker.port, "alice", USER_SECRETS["alice"])
                    await asyncio.to_thread(alice.connect)
                    await asyncio.to_thread(alice.publish, f"{BASE}/light-kp3/set/alice", '{"state":"ON"}')
                    await asyncio.to_thread(alice.publish, f"{BASE}/light-kp3/set/alice", '{"state":"ON","x":1}')
                    alice.close()
                    ian = Client(broker.port, "ian", USER_SECRETS["ian"])
                    await asyncio.to_thread(ian.connect)
                    for request in ("devices", "health_check"):
                        await asyncio.to_thread(ian.publish, f"{BASE}/bridge/request/{request}", "{}")
                    ian.close()
                    await asyncio.to_thread(rec.wait_topic, f"{BASE}/bridge/response/devices")
                    await asyncio.to_thread(rec.wait_event, BASE, "command_rejected", device="light-kp3")
                    await asyncio.sleep(0.5)
                rec.close()
                mqtt_text = "\n".join(f"{m.topic} {m.payload.decode('utf-8', 'replace')}" for m in rec.messages)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    log_text = logs.getvalue()
    assert "DEBUG" in log_text and "offline" in log_text  # the net was really cast
    for device in bad:
        assert running.hub.errors.get(device), device
    files_text = ""
    for f in sorted((tmp_path / "data").rglob("*")) + sorted((tmp_path / "broker").glob("*")):
        if f.is_file():
            files_text += f"\n== {f}\n" + f.read_bytes().decode("utf-8", "replace")
    cli = ""
    for args in (["-v", "check", "-c", str(tmp_path / "config.yaml")],
                 ["-v", "acl", "-c", str(tmp_path / "config.yaml"), "-o", str(tmp_path / "cli-acl")]):
        proc = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", "import sys; from hub.cli import main; sys.exit(main())", *args],
            capture_output=True, text=True, timeout=60)
        cli += proc.stdout + proc.stderr
    assert mqtt_text.count(f"{BASE}/bridge/event") > 3 and "history.db" in files_text
    every = {"mqtt": mqtt_text, "logs": log_text, "files": files_text, "cli": cli}
    found = [(where, name) for name, secret in secrets.items() for where, text in every.items()
             if any(form in text for form in _forms(secret))]
    assert not found, found
