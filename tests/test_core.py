"""The core against a real Mosquitto: lifecycle, availability, commands, broker restarts."""

from __future__ import annotations

import asyncio
import json
import types
from collections import deque
from pathlib import Path

import pytest

from hub.hookspecs import hookimpl
from tests import plugin_echo
from tests.support.hubrun import hub_from_yaml, make_plugins
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Recorder

BASE = "anninh"


def _yaml(port: int, devices: str = "", extra: str = "") -> str:
    return f"""
hub: {{name: Test post, latitude: 11.03, longitude: 106.76, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{port}", discovery: true}}
sites: [{{id: kp3}}, {{id: cho}}]
devices:
  - {{id: e1, platform: echo, site: kp3}}
  - {{id: e2, platform: echo, site: cho}}
{devices}
{extra}
"""


@pytest.fixture(autouse=True)
def _reset_echo():
    plugin_echo.BEHAVIOUR.clear()
    yield
    plugin_echo.BEHAVIOUR.clear()


def _plugins(*extra: tuple[str, types.ModuleType]):
    return make_plugins(("echo", plugin_echo), *extra, builtin=False)


async def _wait(pred, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def test_state_availability_and_commands(mosquitto: Mosquitto, tmp_path: Path) -> None:
    rec = Recorder(mosquitto.port)
    async with hub_from_yaml(_yaml(mosquitto.port), tmp_path, plugins=_plugins()) as running:
        state = await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", lambda j: j.get("value") == 0)
        assert state["model"] == "Echo-1" and state["serial"] == "SN-e1"
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1/availability", lambda j: j["state"] == "online")
        assert rec.last(f"{BASE}/bridge/state") == {"state": "online"}

        # the device raises: offline once (one event), state fields declared stale become null
        plugin_echo.BEHAVIOUR["e1"]["raise"] = "boom password-free"
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1/availability", lambda j: j["state"] == "offline")
        ev = await asyncio.to_thread(rec.wait_event, BASE, "device_offline", device="e1")
        assert ev["site"] == "kp3" and "boom" in ev["error"]
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", lambda j: j.get("value") is None)
        await asyncio.sleep(1.0)  # several retries happen meanwhile
        assert len(rec.events(BASE, "device_offline")) == 1
        assert running.hub.availability["e2"] is True  # the other device is untouched

        # it recovers
        plugin_echo.BEHAVIOUR["e1"]["raise"] = None
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1/availability", lambda j: j["state"] == "online")
        await asyncio.to_thread(rec.wait_event, BASE, "device_online", device="e1")

        # validated commands reach the driver, with their author
        mark = rec.count()
        rec.publish(f"{BASE}/e1/set/an", json.dumps({"state": "ON", "value": 7}))
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", lambda j: j["state"] == "ON" and j["value"] == 7,
                                after=mark)
        assert plugin_echo.BEHAVIOUR["e1"]["commands"] == [({"state": "ON", "value": 7}, "an")]
        rec.publish(f"{BASE}/e1/set", "OFF")
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", lambda j: j["state"] == "OFF", after=mark)
        ev = await asyncio.to_thread(rec.wait_event, BASE, "command", device="e1", user="an")
        assert ev["command"] == {"state": "ON", "value": 7}

        # out-of-range value: rejected by the driver's model, nothing changes
        rec.publish(f"{BASE}/e1/set", json.dumps({"value": 5000}))
        ev = await asyncio.to_thread(rec.wait_event, BASE, "command_rejected", device="e1")
        assert "value" in ev["error"]
        assert running.hub.states["e1"]["value"] == 7
    rec.close()
    assert rec.last(f"{BASE}/e1/availability") == {"state": "offline"}  # clean stop publishes offline
    assert rec.last(f"{BASE}/bridge/state") == {"state": "offline"}


async def test_discovery_and_homeassistant_birth(mosquitto: Mosquitto, tmp_path: Path) -> None:
    rec = Recorder(mosquitto.port)
    async with hub_from_yaml(_yaml(mosquitto.port), tmp_path, plugins=_plugins()):
        cfg = await asyncio.to_thread(rec.wait_topic, "homeassistant/switch/e1/state/config")
        assert cfg["command_topic"] == f"{BASE}/e1/set" and cfg["state_topic"] == f"{BASE}/e1"
        topics = {a["topic"] for a in cfg["availability"]}
        assert topics == {f"{BASE}/bridge/state", f"{BASE}/e1/availability"}
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", lambda j: "value" in j)
        mark = rec.count()
        rec.publish("homeassistant/status", "online")
        await asyncio.to_thread(rec.wait_topic, "homeassistant/switch/e1/state/config", after=mark)
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", after=mark)
    rec.close()


class RaisingEverywhere:
    """A plugin whose every hook raises."""

    @hookimpl
    def anninh_platforms(self):
        raise RuntimeError("platforms broken")

    @hookimpl
    def anninh_rules(self):
        raise RuntimeError("rules broken")

    @hookimpl
    def anninh_simulators(self):
        raise RuntimeError("simulators broken")


async def test_plugin_raising_in_every_hook_does_not_stop_others(mosquitto: Mosquitto, tmp_path: Path) -> None:
    pm = _plugins()
    pm.register(RaisingEverywhere(), name="broken", source="test")
    assert "echo" in pm.platforms()
    assert pm.rules() == {}
    assert pm.simulators() == {}
    assert any("broken" in p and "platforms broken" in p for p in pm.problems)
    rec = Recorder(mosquitto.port)
    async with hub_from_yaml(_yaml(mosquitto.port), tmp_path, plugins=pm):
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e2/availability", lambda j: j["state"] == "online")
    rec.close()


async def test_driver_that_cannot_be_built_fails_alone(mosquitto: Mosquitto, tmp_path: Path) -> None:
    from hub.api import PlatformSpec

    class BadModule:
        @hookimpl
        def anninh_platforms(self):
            def factory(config, ctx):
                raise ValueError("constructor exploded")
            return [PlatformSpec(name="bad", config_model=plugin_echo.EchoConfig, driver=factory)]

    pm = _plugins(("badmod", BadModule()))  # type: ignore[arg-type]
    rec = Recorder(mosquitto.port)
    devices = "  - {id: b1, platform: bad, site: kp3}"
    async with hub_from_yaml(_yaml(mosquitto.port, devices), tmp_path, plugins=pm):
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/b1/availability", lambda j: j["state"] == "offline")
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1/availability", lambda j: j["state"] == "online")
        ev = await asyncio.to_thread(rec.wait_event, BASE, "device_offline", device="b1")
        assert "constructor exploded" in ev["error"]
    rec.close()


async def test_malformed_commands(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """1,000 malformed commands: each rejected with an event, no state change, no crash."""
    rec = Recorder(mosquitto.port)
    async with hub_from_yaml(_yaml(mosquitto.port), tmp_path, plugins=_plugins()) as running:
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1/availability", lambda j: j["state"] == "online")
        await asyncio.sleep(0.2)
        before = {k: dict(v) for k, v in running.hub.states.items()}
        bad: list[tuple[str, bytes]] = []
        kinds = [
            (f"{BASE}/e1/set", b"{not json"),
            (f"{BASE}/e1/set", b'{"state": 1}'),
            (f"{BASE}/e1/set", b'{"state": "PURPLE"}'),
            (f"{BASE}/e1/set", b'{"colour": "red"}'),
            (f"{BASE}/e1/set", b'["ON"]'),
            (f"{BASE}/e1/set", b"\xff\xfe\x00garbage"),
            (f"{BASE}/e1/set", b"x" * 1_048_576),
            (f"{BASE}/nosuch/set", b'{"state": "ON"}'),
            (f"{BASE}/e1/set", b'{"value": "seven"}'),
            (f"{BASE}/e1/set", b"[" * 3000),
        ]
        for i in range(1000):
            bad.append(kinds[i % len(kinds)])
        for topic, payload in bad:
            rec.client.publish(topic, payload, qos=1)
        deadline = asyncio.get_running_loop().time() + 60
        while len(rec.events(BASE, "command_rejected")) < 1000:
            assert asyncio.get_running_loop().time() < deadline, len(rec.events(BASE, "command_rejected"))
            await asyncio.sleep(0.1)
        events = rec.events(BASE, "command_rejected")
        assert len(events) == 1000
        assert all(e["error"] for e in events)
        errors = {e["error"].split(" (")[0] for e in events}
        assert "payload is not UTF-8 text" in errors
        assert any("too large" in e for e in errors)
        assert "unknown device" in errors
        after = {k: {f: v for f, v in s.items()} for k, s in running.hub.states.items()}
        assert after["e1"]["state"] == before["e1"]["state"] == "OFF"
        assert "commands" not in plugin_echo.BEHAVIOUR["e1"]
        assert running.hub.availability["e1"] is True
        # and the hub still takes a good command
        rec.publish(f"{BASE}/e1/set", "ON")
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", lambda j: j["state"] == "ON")
    rec.close()


async def test_broker_restart(tmp_path: Path) -> None:
    """Broker killed and restarted: the hub reconnects, republishes bridge state, retained states and
    discovery, and delivers the events queued while the broker was down."""
    workdir = tmp_path / "mosq"
    workdir.mkdir()
    broker = Mosquitto(workdir=workdir, persistence=True).start()
    try:
        rec = Recorder(broker.port, client_id="restart-watcher", clean_session=False)
        async with hub_from_yaml(_yaml(broker.port), tmp_path, plugins=_plugins()) as running:
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1/availability", lambda j: j["state"] == "online")
            conn = running.bridge.conn
            connects = conn.connects
            broker.kill()
            await _wait(lambda: not conn.connected)
            # while the broker is down: events happen
            plugin_echo.BEHAVIOUR["e2"]["raise"] = "unplugged"
            await _wait(lambda: running.hub.availability.get("e2") is False)
            running.hub.emit("test_marker", device="e1", n=1)
            running.hub.emit("test_marker", device="e1", n=2)
            assert len(conn.queue) >= 3
            mark = rec.count()
            broker.start()
            await _wait(lambda: conn.connects > connects, timeout=20)
            # the watcher's persistent session gets what was queued, oldest first
            await asyncio.to_thread(rec.wait_event, BASE, "device_offline", device="e2", after=mark, timeout=15)
            m2 = await asyncio.to_thread(rec.wait_event, BASE, "test_marker", n=2, after=mark)
            markers = [e["n"] for e in rec.events(BASE, "test_marker")]
            assert markers == [1, 2], markers
            assert m2["device"] == "e1"
            # retained things republished after the reconnect
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/bridge/state", lambda j: j["state"] == "online",
                                    after=mark)
            await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", lambda j: j.get("model") == "Echo-1", after=mark)
            await asyncio.to_thread(rec.wait_topic, "homeassistant/switch/e1/state/config", after=mark)
            assert len(conn.queue) == 0
        rec.close()
        # a fresh subscriber sees the retained state
        fresh = Recorder(broker.port, topics=(f"{BASE}/e1",))
        await asyncio.to_thread(fresh.wait_topic, f"{BASE}/e1", lambda j: j.get("serial") == "SN-e1")
        fresh.close()
    finally:
        broker.stop()


async def test_event_queue_is_bounded(tmp_path: Path) -> None:
    from hub.mqtt import BrokerAddress, MqttConnection

    conn = MqttConnection(BrokerAddress("127.0.0.1", 1, False), queue_size=10)
    for i in range(25):
        conn.publish("t/e", str(i), 1, False)
    conn.publish("t/state", "x", 1, True)  # retained: not queued, republished from the store
    assert isinstance(conn.queue, deque)
    assert [p for _, p, _, _ in conn.queue] == [str(i).encode() for i in range(15, 25)]
    assert conn.dropped == 15


async def test_history_and_registry_written(mosquitto: Mosquitto, tmp_path: Path) -> None:
    from hub.storage import History, Registry

    rec = Recorder(mosquitto.port)
    async with hub_from_yaml(_yaml(mosquitto.port), tmp_path, plugins=_plugins()):
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1/availability", lambda j: j["state"] == "online")
        rec.publish(f"{BASE}/e1/set/an", "ON")
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", lambda j: j.get("state") == "ON")
    rec.close()
    reg = Registry(tmp_path / "data" / "registry.json")
    e1 = reg.get("e1")
    assert e1 is not None and e1["model"] == "Echo-1" and e1["serial"] == "SN-e1" and e1["firmware"] == "1.0"
    assert e1["first_seen"] <= e1["last_seen"]
    hist = History(tmp_path / "data" / "history.db")
    assert any(s.get("state") == "ON" for _, s in hist.states("e1"))
    audit = hist.audit()
    assert audit and audit[-1]["user"] == "an" and audit[-1]["result"] == "ok"
    assert audit[-1]["command"] == {"state": "ON"}
    hist.close()


async def test_roles_checked_in_the_hub_and_site_events(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """Defence in depth: even if a broker lets a command through, the hub checks the author's role
    and sites; events also go to <base>/site/<site>/event; secrets typed into commands are redacted."""
    from hub.storage import History

    users = """users:
  - {name: an, role: officer, password: !secret an_pw, sites: [kp3]}
  - {name: thau, role: contractor, password: !secret thau_pw}
"""
    rec = Recorder(mosquitto.port)
    secrets = {"an_pw": "officer-pass-123", "thau_pw": "contractor-pass-456"}
    async with hub_from_yaml(_yaml(mosquitto.port, extra=users), tmp_path, plugins=_plugins(), secrets=secrets):
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e2/availability", lambda j: j["state"] == "online")
        rec.publish(f"{BASE}/e1/set/thau", "ON")
        ev = await asyncio.to_thread(rec.wait_event, BASE, "command_rejected", user="thau")
        assert "contractor may not send commands" in ev["error"]
        rec.publish(f"{BASE}/e2/set/an", "ON")  # e2 stands at cho, an is limited to kp3
        ev = await asyncio.to_thread(rec.wait_event, BASE, "command_rejected", user="an")
        assert "may not command devices at this site" in ev["error"]
        rec.publish(f"{BASE}/e1/set/mallory", "ON")
        ev = await asyncio.to_thread(rec.wait_event, BASE, "command_rejected", user="mallory")
        assert "unknown user" in ev["error"]
        assert "commands" not in plugin_echo.BEHAVIOUR.get("e1", {})
        rec.publish(f"{BASE}/e1/set/an", json.dumps({"state": "ON"}))
        await asyncio.to_thread(rec.wait_topic, f"{BASE}/e1", lambda j: j.get("state") == "ON")
        site_ev = await asyncio.to_thread(rec.wait_topic, f"{BASE}/site/kp3/event",
                                          lambda j: j["type"] == "command" and j["user"] == "an")
        assert site_ev["device"] == "e1"
        # someone pastes a password into a command: rejected, and stored redacted
        rec.publish(f"{BASE}/e1/set/an", json.dumps({"state": "officer-pass-123"}))
        await asyncio.to_thread(rec.wait_event, BASE, "command_rejected", user="an",
                                after=rec.count() - 1)
        await asyncio.sleep(1.5)  # one history flush
    rec.close()
    hist = History(tmp_path / "data" / "history.db")
    dump = json.dumps(hist.audit()) + json.dumps(hist.events())
    hist.close()
    assert "officer-pass-123" not in dump and "***" in dump
    # nothing the hub published repeats it (the officer's own /set message is his)
    assert all("officer-pass-123" not in m.payload.decode(errors="replace") for m in rec.messages
               if "/set" not in m.topic)


async def test_qos1_command_acknowledged_once_carried_out(tmp_path: Path) -> None:
    """A handler that returns its task gets its QoS 1 message acknowledged when the task ends, not on
    receipt. Seen through the broker: with one message in flight allowed, the second message only
    arrives once the first one's task is done; a handler returning nothing is acknowledged at once."""
    from hub.mqtt import BrokerAddress, MqttConnection

    with Mosquitto(extra="max_inflight_messages 1") as broker:
        conn = MqttConnection(BrokerAddress("127.0.0.1", broker.port, False), client_id="ack-test")
        loop = asyncio.get_running_loop()
        got: list[bytes] = []
        gate: asyncio.Future[None] = loop.create_future()
        arrived = asyncio.Event()

        def handler(topic: str, payload: bytes) -> asyncio.Future[None] | None:
            got.append(payload)
            arrived.set()
            return gate if payload == b"1" else None

        conn.subscribe("acktest/#", handler, qos=1)
        await conn.start()
        assert await conn.wait_connected(10)
        sender = Recorder(broker.port, topics=())
        await asyncio.sleep(0.3)  # the subscription is in place
        for n in (1, 2, 3):
            sender.publish("acktest/x", str(n), qos=1)
        await asyncio.wait_for(arrived.wait(), 10)
        await asyncio.sleep(0.5)
        assert got == [b"1"], "the broker sent more before the first message was acknowledged"
        gate.set_result(None)
        deadline = loop.time() + 10
        while len(got) < 3 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert got == [b"1", b"2", b"3"]
        # a task that never ends is acknowledged after ack_deadline: it cannot hold back the rest
        conn.ack_deadline = 0.8
        stuck: asyncio.Future[None] = loop.create_future()
        gate = stuck
        t0 = loop.time()
        sender.publish("acktest/x", "1", qos=1)
        sender.publish("acktest/x", "4", qos=1)
        while len(got) < 5 and loop.time() < t0 + 10:
            await asyncio.sleep(0.02)
        assert got[3:] == [b"1", b"4"]
        assert loop.time() - t0 >= 0.7, "the message after the stuck one came before the deadline"
        stuck.cancel()
        sender.close()
        await conn.stop()
