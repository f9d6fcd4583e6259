"""An MQTT client for tests that records every message and waits for conditions."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


@dataclass
class Msg:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """Subscribes to ``topics`` and keeps everything, thread-safely."""

    def __init__(self, port: int, topics: tuple[str, ...] = ("#",), host: str = "127.0.0.1",
                 username: str | None = None, password: str | None = None, client_id: str | None = None,
                 clean_session: bool = True, **tls: Any) -> None:
        self.messages: list[Msg] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.connected = threading.Event()
        self.connect_rc: Any = None
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"rec-{uuid.uuid4().hex[:6]}",
                                  clean_session=clean_session)
        self.client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]  # paho annotates int; a float works
        from hub.mqtt import _no_delay

        self.client.on_socket_open = _no_delay
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(**tls)
        self.topics = topics

        def on_connect(c: paho.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
            self.connect_rc = rc
            if not rc.is_failure:
                for t in self.topics:
                    c.subscribe(t, 1)
            self.connected.set()

        def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
            with self._cond:
                self.messages.append(Msg(m.topic, bytes(m.payload), bool(m.retain), m.qos))
                self._cond.notify_all()

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.connect(host, port, 30)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise TimeoutError("recorder could not connect")
        time.sleep(0.05)

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos, retain).wait_for_publish(5)

    def wait_for(self, pred: Callable[[Msg], bool], timeout: float = 10.0, after: int = 0) -> Msg:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages[after:]:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching message in {timeout} s; last: "
                                       f"{[(m.topic, m.payload[:80]) for m in self.messages[-8:]]}")
                self._cond.wait(left)

    def wait_topic(self, topic: str, pred: Callable[[Any], bool] = lambda j: True, timeout: float = 10.0,
                   after: int = 0) -> Any:
        def match(m: Msg) -> bool:
            if m.topic != topic:
                return False
            try:
                return bool(pred(m.json()))
            except (ValueError, KeyError, TypeError):
                return False
        return self.wait_for(match, timeout, after).json()

    def wait_event(self, base: str, type: str, timeout: float = 10.0, after: int = 0,
                   **fields: Any) -> dict[str, Any]:
        return self.wait_topic(f"{base}/bridge/event",
                               lambda j: j.get("type") == type and all(j.get(k) == v for k, v in fields.items()),
                               timeout, after)

    def last(self, topic: str) -> Any:
        with self._lock:
            for m in reversed(self.messages):
                if m.topic == topic:
                    return m.json()
        return None

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def events(self, base: str, type: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            msgs = [m for m in self.messages if m.topic == f"{base}/bridge/event"]
        out = [m.json() for m in msgs]
        return [e for e in out if type is None or e.get("type") == type]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
