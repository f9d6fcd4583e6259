"""The MQTT connection: paho-mqtt 2.x driven by the asyncio loop itself.

paho's socket is registered with the event loop (``add_reader``), so reading, writing and every
callback happen in the loop thread: no network thread, no GIL hand-offs per message (measured:
88k publishes/s against 44k with paho's own ``loop_start`` thread on the same broker). A message
received is handed to its handlers inside paho's read. The first publish of a loop turn is
written at once (a light's new state does not wait behind the audit and events that follow it);
what paho still holds is written on the way out of the turn (``call_soon``), with an epoll writer
only while the socket is full. A supervisor task sends keep-alives and reconnects with a 1 s to
30 s backoff; the blocking part of a (re)connect (TCP connect, TLS handshake) runs in a worker
thread. While a broker that refused TCP connections is waited for, a bare TCP connect every
:attr:`MqttConnection.probe_interval` seconds cuts the wait short as soon as it listens again.
A failure is logged once, saying what happened (:attr:`MqttConnection.problem`): nothing
listening, a TLS error and its reason, or a refused login.

While the broker is unreachable, non-retained messages (events) wait in a bounded outbox and
are sent oldest first after the reconnect; retained messages (states, availability, discovery)
are not queued but republished whole from the hub's state store by the ``on_connect`` callback.
Given a file, the outbox is SQLite (:class:`hub.storage.Outbox`): it survives a hub restart, and a
message leaves it only when the broker has acknowledged it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hub.netprobe import tcp_probe
from hub.storage import Outbox

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], "asyncio.Future[Any] | None"]
"""Called in the loop with (topic, payload). It may return the task that carries the message out;
the message is then acknowledged (QoS 1/2) when that task ends, otherwise when the handler returns."""


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        return cls(host=parts.hostname or "127.0.0.1", port=parts.port or (8883 if tls else 1883), tls=tls)


def _no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Small MQTT packets must not wait for Nagle's algorithm: with the peer's delayed ACK that
    costs 40 ms per hop (measured: 88 ms from /set to state published, 2 ms without)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


def describe_connect_error(exc: BaseException, address: BrokerAddress) -> str:
    """What a failed (re)connect means for the person reading the log, with what to check."""
    where = f"{address.host}:{address.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or str(exc)
        hint = ("the certificate does not name this host: use the name or address it was issued for"
                if "mismatch" in str(why).lower() else
                "check mqtt.ca_file: it must be the CA that signed the broker's certificate")
        return f"TLS error from {where}: certificate verify failed: {why} ({hint})"
    if isinstance(exc, ssl.SSLError):
        return describe_tls_failure(exc.reason or str(exc), where)
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where}: no MQTT broker listens there (is it running? is the port right?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer from {where} (timed out): check the address and the network"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {address.host!r}: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {exc.strerror or exc}"
    return f"cannot connect to {where}: {type(exc).__name__}: {exc}"


def describe_tls_failure(reason: str, where: str) -> str:
    """A TLS failure's OpenSSL reason (``WRONG_VERSION_NUMBER``, ``TLSV13_ALERT_CERTIFICATE_REQUIRED``
    ...) with what it usually means."""
    text = reason.upper()
    if "WRONG_VERSION" in text or "RECORD_LAYER" in text or "UNKNOWN_PROTOCOL" in text:
        hint = "the port does not speak TLS: use mqtt:// for it, or the broker's TLS port"
    elif "CERTIFICATE_REQUIRED" in text:
        hint = "the broker wants a client certificate: set mqtt.cert_file and mqtt.key_file"
    elif "BAD_CERTIFICATE" in text or "UNKNOWN_CA" in text or "CERTIFICATE_UNKNOWN" in text:
        hint = "the broker refused our client certificate (mqtt.cert_file): is it signed by the broker's CA?"
    else:
        hint = "check mqtt.ca_file, mqtt.cert_file and the broker's TLS listener"
    return f"TLS error from {where}: {reason} ({hint})"


def _describe_io_error(text: str, address: BrokerAddress) -> str:
    """paho's logged socket error (``failed to receive on socket: [SSL: X] x (_ssl.c:1)``)."""
    where = f"{address.host}:{address.port}"
    match = re.search(r"\[SSL: ([A-Z0-9_]+)\]", text)
    if match:
        return describe_tls_failure(match.group(1), where)
    detail = text.removeprefix("failed to receive on socket: ")
    if address.tls:
        # the broker ended the TLS session before its CONNACK (often without sending its alert
        # first): what Mosquitto does to a client without the certificate it requires
        return (f"TLS error from {where}: the broker closed the TLS connection before answering "
                f"({detail}) (does it want a client certificate? set mqtt.cert_file and mqtt.key_file, "
                f"signed by the CA it trusts)")
    return f"connection to {where} dropped before the broker answered ({detail})"


def _refusal_hint(reason: str) -> str:
    low = reason.lower()
    if "not authori" in low or "user name or password" in low or "bad username" in low:
        return "not authorised: check mqtt.username/password (and the broker's password file)"
    if "identifier" in low:
        return f"{reason}: check mqtt.client_id"
    return reason


class _ErrorSink:
    """Takes paho's log calls while not connected and keeps its last error: a TLS alert received
    after the handshake (client certificate missing or refused) shows up only there, paho then
    reports a generic lost connection."""

    def __init__(self, conn: MqttConnection) -> None:
        self.conn = conn

    def log(self, level: int, fmt: str, *args: Any) -> None:
        if level >= logging.ERROR:
            self.conn._io_error = fmt % args


class MqttConnection:
    """One MQTT client session for the hub.

    ``will`` is ``(topic, payload)`` for the last will (retained, QoS 1).
    ``on_connect`` runs in the loop after every (re)connect, after subscriptions are renewed and
    before queued messages are sent.
    """

    ack_deadline = 1.0
    """Seconds after which a message whose handler's task is still running is acknowledged anyway."""

    max_backoff = 30.0
    """Longest wait between two (re)connect attempts."""

    probe_interval = 2.0
    """While waiting out the backoff after a refused/unreachable TCP connect: seconds between bare
    TCP connects that end the wait as soon as the broker listens again."""

    def __init__(self, address: BrokerAddress, *, client_id: str | None = None,
                 username: str | None = None, password: str | None = None,
                 will: tuple[str, str] | None = None, keepalive: int = 30,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None,
                 queue_size: int = 10000, on_connect: Callable[[], None] | None = None,
                 outbox: Path | None = None, clean_session: bool = True) -> None:
        self.address = address
        self.keepalive = keepalive
        self.on_connect_cb = on_connect
        self.connected = False
        self.dropped = 0
        self.outbox = Outbox(outbox, queue_size) if outbox is not None else None
        self.queue: deque[tuple[str, bytes, int, bool]] | Outbox = (
            self.outbox if self.outbox is not None else deque(maxlen=queue_size))
        """What waits for the broker: the outbox, or without a file an in-memory queue."""
        self._outbox_sent: dict[int, int] = {}  # paho message id -> outbox row, until the PUBACK
        self._outbox_commit_pending = False
        self.connects = 0
        self._handlers: list[tuple[str, int, MessageHandler]] = []
        self._no_retained: set[MessageHandler] = set()  # handlers never given retained messages
        self._retained_seen: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected_event = asyncio.Event()
        self._last_error: str | None = None
        self.problem: str | None = None
        """Why the hub is not connected, as logged (None while connected or before a first try)."""
        self._io_error: str | None = None  # the last socket error paho logged (TLS alerts on read)
        self._network_down = False  # the last attempt found nothing listening: probe while waiting
        self._stopping = False
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"anninh-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv311, clean_session=clean_session, manual_ack=True)
        self.client.max_inflight_messages_set(200)
        self._fd: int | None = None
        self._loop_thread: int | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._attempts = 0
        self._reading = False
        self._flush_pending = False
        self._writer_added = False
        if username:
            self.client.username_pw_set(username, password)
        if will:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        if address.tls:
            ctx = ssl.create_default_context(cafile=ca_file)
            if cert_file:
                ctx.load_cert_chain(cert_file, key_file)
            self.client.tls_set_context(ctx)
        self.client.on_socket_open = self._sock_open
        self.client.on_socket_close = self._sock_close
        self.client.on_socket_register_write = self._want_write
        self.client.on_socket_unregister_write = self._done_writing
        self.client.on_connect = self._paho_connect
        self.client.on_disconnect = self._paho_disconnect
        self.client.on_message = self._paho_message
        self.client.enable_logger(_ErrorSink(self))  # type: ignore[arg-type]  # until connected
        # on_publish is set only while outbox rows wait for their PUBACK: with it, paho builds a
        # ReasonCode and a Properties object and calls back for every publish (bench_core: hub/bare
        # 0.62 with it always set, 1.15 without)

    # ---------------------------------------------------------------- paho's socket in the loop
    def _in_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """paho calls the socket callbacks from the loop, or from the worker thread that runs a
        (re)connect: hop to the loop in that case."""
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def _sock_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        _no_delay(client, userdata, sock)
        self._in_loop(self._watch, sock.fileno())

    def _watch(self, fd: int) -> None:
        assert self._loop is not None
        sock = self.client.socket()
        if sock is None or sock.fileno() != fd:
            return  # closed again before the loop got here (a refused or failed handshake)
        self._fd = fd
        self._loop.add_reader(fd, self._readable)

    def _sock_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._unwatch, self._fd)

    def _unwatch(self, fd: int | None) -> None:
        if fd is not None and self._loop is not None:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        if fd == self._fd:
            self._fd = None
            self._writer_added = False

    def _want_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._schedule_flush)

    def _schedule_flush(self) -> None:
        """paho has packets to send: send them on this loop turn's way out (``call_soon``), not
        through an epoll writer registered and removed for every packet (two syscalls each)."""
        if not self._flush_pending and self._loop is not None:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self._fd is None or not self.client.want_write():
            return
        self.client.loop_write()
        # the write may have found the connection gone (paho closed the socket, ``_unwatch``
        # cleared the descriptor): nothing to wait for then
        if self._fd is not None and self.client.want_write() and not self._writer_added and self._loop is not None:
            # the socket is full: wait until the kernel takes more
            self._loop.add_writer(self._fd, self._writable)
            self._writer_added = True

    def _writable(self) -> None:
        self.client.loop_write()
        if not self.client.want_write():
            self._remove_writer()

    def _done_writing(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._remove_writer)

    def _remove_writer(self) -> None:
        if self._writer_added and self._fd is not None and self._loop is not None:
            self._loop.remove_writer(self._fd)
        self._writer_added = False

    def _readable(self) -> None:
        self._reading = True
        try:
            self.client.loop_read()
            sock = self.client.socket()
            # TLS may hold decrypted packets that no longer make the descriptor readable
            while sock is not None and getattr(sock, "pending", lambda: 0)():
                self.client.loop_read()
                sock = self.client.socket()
        finally:
            self._reading = False

    async def _supervise(self) -> None:
        """Keep-alives once a second; (re)connect with a 1 s to 30 s backoff when not connected."""
        assert self._loop is not None
        delay = 1.0
        while not self._stopping:
            if self.client.socket() is None:
                if self._attempts and not self.connected:
                    await self._wait_before_retry(delay)
                    delay = min(delay * 2, self.max_backoff)
                if self._stopping:
                    break
                self._attempts += 1
                self._io_error = None
                try:
                    await self._loop.run_in_executor(None, self.client.reconnect)
                except (OSError, ssl.SSLError, ValueError) as exc:
                    self._network_down = not isinstance(exc, ssl.SSLError) and isinstance(exc, OSError)
                    self._report(describe_connect_error(exc, self.address))
                    continue
                self._network_down = False
            else:
                if self.connected:
                    delay = 1.0
                self.client.loop_misc()
            await asyncio.sleep(1.0 if self.connected else 0.2)

    async def _wait_before_retry(self, delay: float) -> None:
        """Sleep ``delay``; but when the broker was not listening, look every :attr:`probe_interval`
        seconds with a bare TCP connect (cheap for both sides) and stop waiting once it accepts.
        TLS and login failures are not probed: the port is open then, and retrying faster would
        only hammer the broker with the same refused attempt."""
        assert self._loop is not None
        if not self._network_down:
            await asyncio.sleep(delay)
            return
        deadline = self._loop.time() + delay
        while not self._stopping:
            left = deadline - self._loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(self.probe_interval, left))
            if await tcp_probe(self.address.host, self.address.port, timeout=1.0):
                return

    def _report(self, problem: str) -> None:
        """Log a connection problem once (again only when it changes)."""
        self.problem = problem
        if self._last_error != problem:
            log.warning("MQTT: %s; retrying", problem)
            self._last_error = problem

    # ---------------------------------------------------------------- paho callbacks
    def _soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run after paho's read/write returns (never inside it); no self-pipe wake-up when
        already in the loop thread."""
        if self._loop is None or self._loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self._loop.call_soon(fn, *args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _paho_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                      properties: Any) -> None:
        if reason_code.is_failure:
            self._soon(self._refused, str(reason_code))
        else:
            self._soon(self._connected)

    def _paho_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any,
                         properties: Any) -> None:
        self._soon(self._disconnected, str(reason_code))

    def _paho_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if threading.get_ident() == self._loop_thread:
            # in paho's read: writes wait for the flush
            self._dispatch(msg.topic, bytes(msg.payload), msg.mid, msg.qos, bool(msg.retain))
        else:
            self._soon(self._dispatch, msg.topic, bytes(msg.payload), msg.mid, msg.qos, bool(msg.retain))

    def _paho_published(self, client: paho.Client, userdata: Any, mid: int, reason_code: Any,
                        properties: Any) -> None:
        row = self._outbox_sent.pop(mid, None)
        if not self._outbox_sent:
            self.client.on_publish = None
        if row is not None and self.outbox is not None:
            self.outbox.done(row)
            self._in_loop(self._schedule_outbox_commit)

    def _schedule_outbox_commit(self) -> None:
        """One outbox transaction per loop turn, however many messages it took or gave."""
        if self._outbox_commit_pending:
            return
        if self._loop is None or self._loop.is_closed():
            self._commit_outbox()
            return
        self._outbox_commit_pending = True
        self._loop.call_soon(self._commit_outbox)

    def _commit_outbox(self) -> None:
        self._outbox_commit_pending = False
        if self.outbox is not None:
            try:
                self.outbox.commit()
            except Exception as exc:  # a full disk must not stop the loop
                log.error("MQTT outbox write failed: %s: %s", type(exc).__name__, exc)

    # ---------------------------------------------------------------- loop side
    def _refused(self, reason: str) -> None:
        problem = f"refused the connection: {_refusal_hint(reason)}"
        self.problem = problem
        if self._last_error != problem:
            log.error("MQTT broker %s:%d %s", self.address.host, self.address.port, problem)
            self._last_error = problem

    def _connected(self) -> None:
        self.connected = True
        self.connects += 1
        self._last_error = None
        self.problem = None
        self.client.disable_logger()  # nothing to catch while connected: no cost per packet
        log.info("MQTT connected to %s:%d", self.address.host, self.address.port)
        for topic, qos, _ in self._handlers:
            self.client.subscribe(topic, qos)
        if self.on_connect_cb is not None:
            try:
                self.on_connect_cb()
            except Exception:
                log.exception("MQTT on_connect callback failed")
        if self.outbox is not None:
            queued = self._send_outbox()
        else:
            assert isinstance(self.queue, deque)
            queued = len(self.queue)
            while self.queue and self.connected:
                topic, payload, qos, retain = self.queue.popleft()
                self.client.publish(topic, payload, qos, retain)
        if queued:
            log.info("MQTT sent %d queued message(s)%s", queued,
                     f"; {self.dropped} older ones were dropped (queue full)" if self.dropped else "")
            self.dropped = 0
        self._connected_event.set()

    def _send_outbox(self) -> int:
        """Publish the outbox, oldest first; rows leave it at their PUBACK. Rows that paho already
        holds from before a reconnect are resent by paho itself (same message id)."""
        assert self.outbox is not None
        try:
            rows = self.outbox.rows()
        except Exception as exc:
            log.error("MQTT outbox unreadable: %s: %s", type(exc).__name__, exc)
            return 0
        sending = set(self._outbox_sent.values())
        sent = 0
        self.client.on_publish = self._paho_published
        for row, topic, payload, qos, retain in rows:
            if row in sending:
                continue
            info = self.client.publish(topic, payload, qos, retain)
            sent += 1
            if qos:
                self._outbox_sent[info.mid] = row
            else:
                self.outbox.done(row)
        if not self._outbox_sent:
            self.client.on_publish = None
        self.dropped += self.outbox.take_dropped()
        self._schedule_outbox_commit()
        return sent

    def _disconnected(self, reason: str) -> None:
        if self.connected and not self._stopping:
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting", self.address.host,
                        self.address.port, reason)
        elif not self._stopping and self._io_error:
            # dropped before the CONNACK; with TLS, the broker refused the handshake (a client
            # certificate missing or not trusted shows up only as an alert on the first read)
            self._report(_describe_io_error(self._io_error, self.address))
        self._io_error = None
        if self.connected:
            self.client.enable_logger(_ErrorSink(self))  # type: ignore[arg-type]
        self.connected = False
        self._connected_event.clear()

    def _dispatch(self, topic: str, payload: bytes, mid: int = 0, qos: int = 0, retain: bool = False) -> None:
        """Hand a message to its handlers, then acknowledge it (QoS 1/2): when the tasks the
        handlers returned have ended, or at once if they returned none (paho's ``manual_ack``).
        So a light's ``/set`` is acknowledged once it was carried out, and its PUBACK does not
        compete with the Modbus write and the new state for the socket and the CPU. A task still
        running after :attr:`ack_deadline` seconds (a device that is slow to answer) gets its
        acknowledgement then: the broker sends only a few unacknowledged messages at a time
        (Mosquitto: 20), and slow commands must not hold back everything else."""
        tasks: list[asyncio.Future[Any]] = []
        try:
            for pattern, _qos, handler in self._handlers:
                if paho.topic_matches_sub(pattern, topic):
                    if retain and handler in self._no_retained:
                        if topic not in self._retained_seen and len(self._retained_seen) < 10000:
                            self._retained_seen.add(topic)
                            log.warning("ignoring the retained message on %s: commands are never taken "
                                        "from retained messages (the sender's retain flag was set); "
                                        "it stays on the broker until its sender clears it", topic)
                        continue
                    try:
                        task = handler(topic, payload)
                    except Exception:
                        log.exception("MQTT handler for %s failed on %s", pattern, topic)
                    else:
                        if task is not None:
                            tasks.append(task)
        finally:
            if qos:
                if tasks and self._loop is not None:
                    self._ack_when_done(tasks, mid, qos)
                else:
                    self.client.ack(mid, qos)

    def _ack_when_done(self, tasks: list[asyncio.Future[Any]], mid: int, qos: int) -> None:
        """Acknowledge once every task has ended, or at :attr:`ack_deadline`, whichever is first."""
        assert self._loop is not None
        running = len(tasks)  # -1 once acknowledged
        connects = self.connects

        def ack() -> None:
            nonlocal running
            if running < 0:
                return
            running = -1
            timer.cancel()
            # not after stop, nor on a new connection: a clean session forgot the message, a
            # persistent one sends it again (with a new delivery to acknowledge)
            if not self._stopping and self.connected and self.connects == connects:
                self.client.ack(mid, qos)

        def done(_: asyncio.Future[Any]) -> None:
            nonlocal running
            if running > 0:
                running -= 1
                if not running:
                    ack()

        timer = self._loop.call_later(self.ack_deadline, ack)
        for task in tasks:
            task.add_done_callback(done)

    # ---------------------------------------------------------------- API
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.client.connect_async(self.address.host, self.address.port, keepalive=self.keepalive)
        self._supervisor = self._loop.create_task(self._supervise(), name="mqtt-supervisor")

    async def wait_connected(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._connected_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def publish(self, topic: str, payload: str | bytes, qos: int = 0, retain: bool = False) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        if self.connected:
            batching = self._flush_pending  # something already waits for this turn's flush
            info = self.client.publish(topic, data, qos, retain)
            if info.rc == paho.MQTT_ERR_SUCCESS or retain:
                if not batching and not self._reading and threading.get_ident() == self._loop_thread:
                    # the first message of a loop turn goes at once (a light's new state should
                    # not wait behind the audit and events that follow it); the rest of a burst
                    # goes with the flush; never from inside paho's read (its callback lock)
                    self.client.loop_write()
                return
            # the socket went away before the loop heard of it: keep the message
        if retain:
            return  # republished from the state store on reconnect
        if self.outbox is not None:
            self.outbox.put(topic, data, qos, retain)
            self._schedule_outbox_commit()
            return
        assert isinstance(self.queue, deque)
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append((topic, data, qos, retain))

    def subscribe(self, topic: str, handler: MessageHandler, qos: int = 1,
                  retained: bool = True) -> Callable[[], None]:
        """``retained=False``: the handler never gets retained messages (they are acknowledged
        and logged once per topic), e.g. commands, which must come from a live publish only."""
        entry = (topic, qos, handler)
        self._handlers.append(entry)
        if not retained:
            self._no_retained.add(handler)
        if self.connected:
            self.client.subscribe(topic, qos)

        def unsubscribe() -> None:
            if entry in self._handlers:
                self._handlers.remove(entry)
                if self.connected and not any(t == topic for t, _, _ in self._handlers):
                    self.client.unsubscribe(topic)

        return unsubscribe

    async def stop(self, final: list[tuple[str, str, int, bool]] | None = None,
                   timeout: float = 3.0) -> None:
        """Publish ``final`` messages (e.g. offline states), wait for them, disconnect."""
        self._stopping = True
        if self.connected and final:
            infos = [self.client.publish(t, p, q, r) for t, p, q, r in final]
            deadline = asyncio.get_running_loop().time() + timeout
            for info in infos:
                try:
                    while not info.is_published() and asyncio.get_running_loop().time() < deadline:
                        await asyncio.sleep(0.01)
                except ValueError:  # paho could not queue it (e.g. message id clash): nothing to wait for
                    continue
        self.client.disconnect()
        deadline = asyncio.get_running_loop().time() + 2.0
        while self.client.socket() is not None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # the DISCONNECT is written by the loop, then paho closes
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.wait({self._supervisor}, timeout=5)
        self._unwatch(self._fd)
        self.connected = False
        if self.outbox is not None:
            self.outbox.close()
