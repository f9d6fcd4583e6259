"""Assembles a running hub: embedded broker (if asked), the hub core, the MQTT bridge."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from hub.bridge import MqttBridge, session_id
from hub.broker import (
    INSTALL_HINT,
    LOOPBACK,
    BrokerError,
    EmbeddedBroker,
    ManagedMosquitto,
    free_port,
    hub_login,
    mosquitto_binary,
    port_is_free,
    write_mosquitto_files,
)
from hub.clock import Clock
from hub.config import Config
from hub.core import Backoff, Hub
from hub.export.service import install as install_export
from hub.i18n import tr
from hub.mqtt import BrokerAddress, MqttConnection
from hub.ops.tickets import install as install_tickets
from hub.plugins import PluginManager
from hub.redact import register_secrets

log = logging.getLogger(__name__)


@dataclass
class RunningHub:
    hub: Hub
    bridge: MqttBridge
    broker: EmbeddedBroker | ManagedMosquitto | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def stop(self) -> None:
        await self.hub.stop()
        await self.bridge.stop()
        if self.broker is not None:
            await self.broker.stop()


async def start_embedded_broker(config: Config, plugins: PluginManager) -> tuple[
        EmbeddedBroker | ManagedMosquitto, str, str | None, str | None]:
    """Start the broker for ``mqtt.server: embedded``: a supervised Mosquitto when it is installed,
    else the loopback-only Python fallback. Returns the broker, the URL the hub connects to and the
    hub's login there. Raises :class:`BrokerError` with what to do when neither can serve the config."""
    m = config.mqtt
    port = m.embedded_port
    if port == 0 or not port_is_free(m.embedded_bind, port):
        new = free_port(m.embedded_bind)
        if port:
            log.warning("port %d is taken (by the system's own Mosquitto service? `sudo systemctl disable --now "
                        "mosquitto` frees it); the embedded broker uses %d instead", port, new)
        port = new
    local = "127.0.0.1" if m.embedded_bind in ("0.0.0.0", "127.0.0.1", "localhost") else m.embedded_bind
    url = f"mqtt://{local}:{port}" if ":" not in local else f"mqtt://[{local}]:{port}"
    binary = mosquitto_binary()
    if binary:
        user, secret, generated = hub_login(config)
        if generated:
            register_secrets([secret])
        files = write_mosquitto_files(config, plugins, config.data_dir / "mosquitto", m.embedded_bind, port,
                                      user, secret)
        broker: EmbeddedBroker | ManagedMosquitto = ManagedMosquitto(files.conf, m.embedded_bind, port,
                                                                     binary=binary)
        await broker.start()
        return broker, url, user, secret
    if config.users:
        raise BrokerError("users: need Mosquitto, which is not installed: the Python fallback broker has no ACL "
                          f"to enforce roles ({INSTALL_HINT}, or remove users: to run on loopback without roles)")
    if m.embedded_bind not in LOOPBACK:
        raise BrokerError(f"mqtt.embedded_bind is {m.embedded_bind}: without Mosquitto the embedded broker "
                          f"listens on loopback only ({INSTALL_HINT})")
    log.warning("Mosquitto is not installed: the embedded broker is the Python fallback (loopback only, no "
                "users); `%s` gives the full broker", INSTALL_HINT)
    broker = EmbeddedBroker(m.embedded_bind, port)
    await broker.start()
    password = m.password.get_secret_value() if m.password else None
    return broker, url, m.username, password


async def start_hub(config: Config, plugins: PluginManager, *, clock: Clock | None = None,
                    backoff: Backoff | None = None, connect_timeout: float = 5.0) -> RunningHub:
    register_secrets(config.secrets())
    broker = None
    server = config.mqtt.server
    m = config.mqtt
    username, password = m.username, (m.password.get_secret_value() if m.password else None)
    if server == "embedded":
        broker, server, username, password = await start_embedded_broker(config, plugins)
    try:
        return await _start_hub(config, plugins, server, username, password, broker, clock=clock,
                                backoff=backoff, connect_timeout=connect_timeout)
    except BaseException:
        if broker is not None:
            await broker.stop()
        raise


async def _start_hub(config: Config, plugins: PluginManager, server: str, username: str | None,
                     password: str | None, broker: EmbeddedBroker | ManagedMosquitto | None, *,
                     clock: Clock | None, backoff: Backoff | None, connect_timeout: float) -> RunningHub:
    m = config.mqtt
    hub = Hub(config, plugins, clock=clock, backoff=backoff)
    conn = MqttConnection(
        BrokerAddress.parse(server), client_id=m.client_id or session_id(config), username=username,
        password=password,
        will=(f"{m.base_topic}/bridge/state", '{"state":"offline"}'), keepalive=m.keepalive,
        ca_file=m.ca_file, cert_file=m.cert_file, key_file=m.key_file, queue_size=m.queue_size,
        outbox=config.data_dir / "outbox.db", clean_session=False)
    bridge = MqttBridge(hub, conn)
    install_export(hub)
    tickets = install_tickets(hub)
    await hub.start()
    await bridge.start()
    if not await conn.wait_connected(connect_timeout):
        log.warning("MQTT not connected yet (%s); running on and retrying",
                    conn.problem or f"no answer yet from {server}")
    # start-up objects (configs, plugins, imported modules) never die: keep them out of later full
    # collections, which otherwise paused the loop 44-99 ms while image checks allocated frames
    gc.collect()
    gc.freeze()
    return RunningHub(hub=hub, bridge=bridge, broker=broker, extra={"server": server, "tickets": tickets})


async def run_forever(config: Config, plugins: PluginManager) -> None:
    """``anninh run``: until SIGINT/SIGTERM, then stop cleanly."""
    running = await start_hub(config, plugins)
    console = None
    if config.web.enabled:
        from hub.web.server import start_console  # aiohttp's server and Jinja2 load only to serve the console

        console = await start_console(running.hub)
        if console is not None:
            print(console.banner(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except NotImplementedError:  # pragma: no cover
            pass
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        if console is not None:
            await console.stop()
        await running.stop()


def run_to_end(main: Coroutine[Any, Any, Any]) -> int:
    """Run the hub's (or the demo's) main coroutine until it ends or Ctrl-C: 0, or 1 with one line
    when the embedded broker could not be started."""
    try:
        asyncio.run(main)
    except KeyboardInterrupt:
        pass
    except BrokerError as exc:
        print(tr("error: embedded broker: {error}", error=exc), file=sys.stderr)
        return 1
    return 0
