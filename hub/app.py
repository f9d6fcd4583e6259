"""Assembles a running hub: embedded broker (if asked), the hub core, the MQTT bridge."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from hub.bridge import MqttBridge
from hub.broker import EmbeddedBroker, free_port, port_is_free
from hub.clock import Clock
from hub.config import Config
from hub.core import Backoff, Hub
from hub.export.service import install as install_export
from hub.mqtt import BrokerAddress, MqttConnection
from hub.plugins import PluginManager
from hub.redact import register_secrets

log = logging.getLogger(__name__)


@dataclass
class RunningHub:
    hub: Hub
    bridge: MqttBridge
    broker: EmbeddedBroker | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def stop(self) -> None:
        await self.hub.stop()
        await self.bridge.stop()
        if self.broker is not None:
            await self.broker.stop()


async def start_hub(config: Config, plugins: PluginManager, *, clock: Clock | None = None,
                    backoff: Backoff | None = None, connect_timeout: float = 5.0) -> RunningHub:
    register_secrets(config.secrets())
    broker = None
    server = config.mqtt.server
    if server == "embedded":
        m = config.mqtt
        port = m.embedded_port
        if port == 0 or not port_is_free(m.embedded_bind, port):
            new = free_port(m.embedded_bind)
            if port:
                log.warning("port %d is taken; the embedded broker uses %d instead", port, new)
            port = new
        users = {u.name: u.password.get_secret_value() for u in config.users}
        if m.username and m.password:
            users[m.username] = m.password.get_secret_value()
        broker = EmbeddedBroker(m.embedded_bind, port, users if m.embedded_bind != "127.0.0.1" else None)
        await broker.start()
        server = f"mqtt://127.0.0.1:{port}" if m.embedded_bind in ("0.0.0.0", "127.0.0.1") else broker.url
    hub = Hub(config, plugins, clock=clock, backoff=backoff)
    m = config.mqtt
    conn = MqttConnection(
        BrokerAddress.parse(server), client_id=m.client_id, username=m.username,
        password=m.password.get_secret_value() if m.password else None,
        will=(f"{m.base_topic}/bridge/state", '{"state":"offline"}'), keepalive=m.keepalive,
        ca_file=m.ca_file, cert_file=m.cert_file, key_file=m.key_file, queue_size=m.queue_size)
    bridge = MqttBridge(hub, conn)
    install_export(hub)
    await hub.start()
    await bridge.start()
    if not await conn.wait_connected(connect_timeout):
        log.warning("MQTT broker %s not reachable yet; running on and retrying", server)
    # start-up objects (configs, plugins, imported modules) never die: keep them out of later full
    # collections, which otherwise paused the loop 44-99 ms while image checks allocated frames
    gc.collect()
    gc.freeze()
    return RunningHub(hub=hub, bridge=bridge, broker=broker, extra={"server": server})


async def run_forever(config: Config, plugins: PluginManager) -> None:
    """``anninh run``: until SIGINT/SIGTERM, then stop cleanly."""
    running = await start_hub(config, plugins)
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
        await running.stop()
