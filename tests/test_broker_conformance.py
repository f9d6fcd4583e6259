"""The embedded broker behaves as an MQTT broker must: the same cases against the managed
Mosquitto and against the Python fallback (amqtt), with real paho clients on real sockets.

Cases the fallback cannot pass are strict expected failures, with the reason (docs/security.md,
"The embedded broker", lists them)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.broker import EmbeddedBroker, ManagedMosquitto, free_port, hub_login, write_mosquitto_files
from hub.config import load_config
from tests import plugin_echo
from tests.support.hubrun import make_plugins, write_config

KINDS = ["mosquitto", "python"]
NO_ACL = "the Python fallback (amqtt) has no ACL; the hub refuses users: on it"
NO_CLIENT_ID_BINDING = ("the Python fallback (amqtt) lets any login reuse the hub's client id: the hub stays "
                        "connected but its session's subscriptions are dropped, so commands stop arriving")

USERS_YAML = """
hub: {data_dir: ./data}
mqtt: {server: embedded}
devices:
  - {id: light-a, platform: echo}
users:
  - {name: alice, role: officer, password: !secret alice}
  - {name: bob, role: officer, password: !secret bob}
  - {name: cora, role: contractor, password: !secret cora}
"""
USER_SECRETS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "cora": "cora-pw-3"}


@dataclass
class Broker:
    kind: str
    port: int
    impl: Any
    logins: dict[str, str] = field(default_factory=dict)
    hub_user: str | None = None


async def _start(kind: str, tmp_path: Path, users: bool) -> Broker:
    (tmp_path / "cfg").mkdir(exist_ok=True)
    if users:
        path = write_config(tmp_path / "cfg", USERS_YAML, USER_SECRETS)
        pm = make_plugins(("echo", plugin_echo), builtin=False)
    else:
        path = write_config(tmp_path / "cfg", "hub: {data_dir: ./data}\n")
        pm = None
    config = load_config(path, pm)
    port = free_port()
    hub_user, hub_password, _ = hub_login(config)
    logins = {hub_user: hub_password, **USER_SECRETS} if users else {}
    impl: Any
    if kind == "mosquitto":
        files = write_mosquitto_files(config, pm, tmp_path / "mosquitto", "127.0.0.1", port, hub_user, hub_password)
        impl = ManagedMosquitto(files.conf, "127.0.0.1", port)
    else:
        impl = EmbeddedBroker("127.0.0.1", port, users=logins or None)
    await impl.start()
    return Broker(kind, port, impl, logins, hub_user if users else None)


@pytest.fixture(params=KINDS)
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    b = await _start(request.param, tmp_path, users=False)
    yield b
    await b.impl.stop()


@pytest.fixture(params=KINDS)
async def broker_users(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    b = await _start(request.param, tmp_path, users=True)
    yield b
    await b.impl.stop()


class Peer:
    """A paho client in its own network thread that records what it receives."""

    def __init__(self, port: int, topics: tuple[str, ...] = (), *, client_id: str | None = None,
                 username: str | None = None, password: str | None = None,
                 will: tuple[str, str] | None = None, qos: int = 1) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connects = 0
        self.disconnects = 0
        self.connect_rc: Any = None
        self._cond = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"p-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        if will:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.topics = topics
        self.qos = qos
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = threading.Event()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        with self._cond:
            self.connect_rc = rc
            if not rc.is_failure:
                self.connects += 1
            self._cond.notify_all()
        if self.topics and not rc.is_failure:
            c.subscribe([(t, self.qos) for t in self.topics])
        elif not rc.is_failure:
            self.subscribed.set()

    def _on_subscribe(self, *a: Any) -> None:
        self.subscribed.set()

    def _on_disconnect(self, *a: Any) -> None:
        with self._cond:
            self.disconnects += 1
            self._cond.notify_all()

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def ready(self, timeout: float = 5.0) -> Peer:
        assert self.subscribed.wait(timeout), f"not connected/subscribed (rc {self.connect_rc})"
        return self

    def wait(self, pred: Any, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def count(self, topic: str) -> int:
        with self._cond:
            return sum(1 for t, _, _ in self.messages if t == topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self) -> None:
        """Close the TCP connection without DISCONNECT, as a crashed process or a cut cable does."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            assert isinstance(sock, socket.socket)  # plain TCP or TLS here, never websockets
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _publish_and_leave(port: int, topic: str, payload: str, qos: int, retain: bool = False, **login: Any) -> None:
    """As ``mosquitto_pub`` does: connect, publish, disconnect at once (after PUBACK for QoS 1)."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv311)
    if login:
        c.username_pw_set(login["username"], login["password"])
    c.connect("127.0.0.1", port)
    c.loop_start()
    info = c.publish(topic, payload, qos=qos, retain=retain)
    if qos:
        info.wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


# ------------------------------------------------------------------------------- retained messages
async def test_retained_message_goes_only_to_matching_subscriptions(broker: Broker) -> None:
    def run() -> None:
        watcher = Peer(broker.port, ("a/#",)).ready()   # another client's subscription matching a/state
        _publish_and_leave(broker.port, "a/state", "retained-state", 1, retain=True)
        assert watcher.wait(lambda p: p.count("a/state") == 1)
        setter = Peer(broker.port, ("a/x/set", "a/+/set")).ready()
        plain = Peer(broker.port).ready()                   # subscribes to nothing
        reader = Peer(broker.port, ("a/state",)).ready()    # control: retained delivery works
        assert reader.wait(lambda p: p.messages == [("a/state", b"retained-state", True)]), reader.messages
        time.sleep(0.5)
        assert setter.messages == [] and plain.messages == []
        for p in (watcher, setter, plain, reader):
            p.close()

    await asyncio.to_thread(run)


# ------------------------------------------------------------------------------- delivery with a watcher
@pytest.mark.parametrize("qos", [0, 1])
async def test_commands_delivered_while_another_client_watches_everything(broker: Broker, qos: int) -> None:
    """The issue's case: `mosquitto_sub -t 'anninh/#'` running, 300 retained states on the broker
    (as the hub keeps), commands sent as `mosquitto_pub` sends them: every one arrives."""
    if broker.kind == "python" and qos == 0:
        pytest.skip("the fallback (amqtt) may drop a QoS 0 PUBLISH from a client that disconnects at once: it "
                    "handles each packet in its own task (3 of 200 lost on a loaded 2-core machine); the demo's "
                    "commands are QoS 1 (docs/security.md)")
    def run() -> None:
        states = Peer(broker.port).ready()
        for i in range(300):
            states.client.publish(f"anninh/dev-{i}", f'{{"n":{i}}}', qos=1, retain=True)
        watcher = Peer(broker.port, ("anninh/#",), qos=1).ready()
        assert watcher.wait(lambda p: len(p.messages) >= 300, 10)
        hub = Peer(broker.port, ("anninh/+/set", "anninh/+/set/+"), qos=1).ready()
        for i in range(21):
            _publish_and_leave(broker.port, "anninh/light-a/set/an", f'{{"n":{i}}}', qos)
        assert hub.wait(lambda p: p.count("anninh/light-a/set/an") == 21, 10), hub.count("anninh/light-a/set/an")
        assert watcher.wait(lambda p: p.count("anninh/light-a/set/an") == 21, 10)
        assert [m for m in hub.messages if m[0].startswith("anninh/dev-")] == []
        for p in (states, watcher, hub):
            p.close()

    await asyncio.to_thread(run)


# ------------------------------------------------------------------------------- last will
async def test_last_will_on_abrupt_disconnect(broker: Broker) -> None:
    def run() -> None:
        watcher = Peer(broker.port, ("anninh/bridge/state",)).ready()
        hub = Peer(broker.port, will=("anninh/bridge/state", '{"state":"offline"}')).ready()
        hub.client.publish("anninh/bridge/state", '{"state":"online"}', qos=1, retain=True).wait_for_publish(5)
        assert watcher.wait(lambda p: p.count("anninh/bridge/state") == 1)
        hub.drop()
        assert watcher.wait(lambda p: (p.messages[-1][1] == b'{"state":"offline"}'), 5), watcher.messages
        late = Peer(broker.port, ("anninh/bridge/state",)).ready()   # the will was retained
        assert late.wait(lambda p: p.messages == [("anninh/bridge/state", b'{"state":"offline"}', True)])
        # a clean DISCONNECT sends no will
        quiet = Peer(broker.port, will=("anninh/other", "gone")).ready()
        quiet.close()
        time.sleep(0.3)
        later = Peer(broker.port, ("anninh/other",)).ready()
        time.sleep(0.3)
        assert later.messages == []
        for p in (watcher, late, later):
            p.close()

    await asyncio.to_thread(run)


# ------------------------------------------------------------------------------- users and ACL
async def test_anonymous_and_wrong_passwords_refused_with_users(broker_users: Broker) -> None:
    def run() -> None:
        for user, pw in ((None, None), ("alice", "wrong"), ("alice", USER_SECRETS["bob"])):
            p = Peer(broker_users.port, username=user, password=pw)
            assert p.wait(lambda q: q.connect_rc is not None and q.connect_rc.is_failure, 5), (user, p.connect_rc)
            p.client.loop_stop()
        ok = Peer(broker_users.port, username="alice", password=USER_SECRETS["alice"]).ready()
        ok.close()

    await asyncio.to_thread(run)


def _acl_case(b: Broker) -> None:
    hub = Peer(b.port, ("anninh/+/set/+",), username=b.hub_user, password=b.logins[b.hub_user or ""]).ready()
    alice: dict[str, Any] = {"username": "alice", "password": USER_SECRETS["alice"]}
    _publish_and_leave(b.port, "anninh/light-a/set/bob", '{"state":"ON"}', 1, **alice)   # posing as bob
    _publish_and_leave(b.port, "anninh/light-a/set/cora", '{"state":"ON"}', 1,
                       username="cora", password=USER_SECRETS["cora"])                   # contractor: no commands
    _publish_and_leave(b.port, "anninh/light-a/set/alice", '{"state":"OFF"}', 1, **alice)  # her own name
    assert hub.wait(lambda p: p.count("anninh/light-a/set/alice") == 1)
    time.sleep(0.3)
    topics = [m[0] for m in hub.messages]
    hub.close()
    assert topics == ["anninh/light-a/set/alice"], topics


@pytest.mark.parametrize("kind", [
    "mosquitto", pytest.param("python", marks=pytest.mark.xfail(strict=True, reason=NO_ACL))])
async def test_acl_user_cannot_command_under_another_name(kind: str, tmp_path: Path) -> None:
    b = await _start(kind, tmp_path, users=True)
    try:
        await asyncio.to_thread(_acl_case, b)
    finally:
        await b.impl.stop()


def _takeover_case(port: int, hub_login: tuple[str | None, str | None], intruder: tuple[str | None, str | None],
                   watcher_login: tuple[str | None, str | None] = (None, None),
                   hub_id: str = "anninh-hub-fixed", attempts: int = 10) -> tuple[int, list[bytes], bool]:
    """A contractor connects ten times in 2 s with the hub's client id; returns how often the
    hub's session was knocked off, what the watcher saw on the hub's state topic, and whether
    the hub's session still receives a command afterwards."""
    watcher = Peer(port, ("anninh/bridge/state",), username=watcher_login[0], password=watcher_login[1]).ready()
    hub = Peer(port, ("anninh/+/set/+",), client_id=hub_id, username=hub_login[0], password=hub_login[1],
               will=("anninh/bridge/state", '{"state":"offline"}')).ready()
    hub.client.publish("anninh/bridge/state", '{"state":"online"}', qos=1, retain=True).wait_for_publish(5)
    assert watcher.wait(lambda p: p.count("anninh/bridge/state") >= 1)
    for _ in range(attempts):
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=hub_id, protocol=paho.MQTTv311)
        if intruder[0]:
            c.username_pw_set(intruder[0], intruder[1])
        c.connect("127.0.0.1", port)
        c.loop_start()
        time.sleep(0.2)
        c.disconnect()
        c.loop_stop()
    time.sleep(0.3)
    knocked = hub.disconnects
    login: dict[str, Any] = {"username": watcher_login[0], "password": watcher_login[1]} if watcher_login[0] else {}
    _publish_and_leave(port, f"anninh/light-a/set/{watcher_login[0] or 'an'}", '{"state":"ON"}', 1, **login)
    commanded = hub.wait(lambda p: any("/set/" in m[0] for m in p.messages), 3)
    seen = [m[1] for m in watcher.messages]
    hub.close()
    watcher.close()
    return knocked, seen, commanded


@pytest.mark.parametrize("kind", [
    "mosquitto", pytest.param("python", marks=pytest.mark.xfail(strict=True, reason=NO_CLIENT_ID_BINDING))])
async def test_user_cannot_take_the_hubs_client_id(kind: str, tmp_path: Path) -> None:
    b = await _start(kind, tmp_path, users=True)
    try:
        knocked, seen, commanded = await asyncio.to_thread(
            _takeover_case, b.port, (b.hub_user, b.logins[b.hub_user or ""]), ("cora", USER_SECRETS["cora"]),
            ("alice", USER_SECRETS["alice"]), attempts=10 if kind == "mosquitto" else 2)  # 2 suffice to break amqtt
    finally:
        await b.impl.stop()
    assert knocked == 0 and b'{"state":"offline"}' not in seen, (knocked, seen)
    assert commanded, "the hub's session no longer receives commands"


async def test_takeover_happens_on_a_broker_without_the_binding(mosquitto: Any) -> None:
    """The witness that the case above can fail: a plain Mosquitto lets the id be taken."""
    knocked, seen, _ = await asyncio.to_thread(_takeover_case, mosquitto.port, (None, None), (None, None))
    assert knocked >= 1 and b'{"state":"offline"}' in seen, (knocked, seen)
