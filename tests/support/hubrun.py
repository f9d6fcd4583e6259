"""Run a hub from YAML text in a test: ``async with hub_from_yaml(text, tmp_path, port) as running``."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from hub.api import HubEvent
from hub.api.contract import EVENTS, ContractError, check_event
from hub.app import RunningHub, start_hub
from hub.clock import Clock
from hub.config import Config, load_config
from hub.core import Backoff, Listener
from hub.plugins import PluginManager


def write_config(tmp_path: Path, yaml_text: str, secrets: dict[str, str] | None = None) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(yaml_text))
    path.chmod(0o600)
    if secrets:
        s = tmp_path / "secrets.yaml"
        s.write_text(yaml.safe_dump(secrets, allow_unicode=True))
        s.chmod(0o600)
    return path


def make_plugins(*extra: tuple[str, ModuleType], builtin: bool = True) -> PluginManager:
    pm = PluginManager()
    if builtin:
        pm.discover(None, entry_points=False)
    for name, module in extra:
        pm.register(module, name=name, source="test")
    return pm


@contextlib.asynccontextmanager
async def hub_from_yaml(yaml_text: str, tmp_path: Path, *, plugins: PluginManager | None = None,
                        secrets: dict[str, str] | None = None, clock: Clock | None = None,
                        backoff: Backoff | None = None, **kw: Any) -> AsyncIterator[RunningHub]:
    path = write_config(tmp_path, yaml_text, secrets)
    pm = plugins or make_plugins()
    config: Config = load_config(path, pm)
    running = await start_hub(config, pm, clock=clock, backoff=backoff or Backoff(initial=0.2, maximum=1.0,
                                                                                   auth_minimum=1.0), **kw)
    broken: list[str] = []

    def check(event: HubEvent) -> None:
        if event.type in EVENTS:  # a drop-in's own event types are its own business
            try:
                check_event(event.type, event.data)
            except ContractError as exc:
                broken.append(str(exc))

    running.hub.add_listener(Listener(on_event=check))
    try:
        yield running
    finally:
        await running.stop()
    if broken:  # every whole-hub test also checks the events it caused against hub.api.contract
        raise ContractError("; ".join(dict.fromkeys(broken)))


async def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 50 ms on the running loop; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
