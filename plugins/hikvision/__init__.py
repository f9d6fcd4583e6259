"""Hikvision ISAPI plugin: platform ``hikvision`` and simulator ``hikvision``."""

from __future__ import annotations

from typing import Any

from hub.api import LazyPlatformSpec, PlatformSpec
from hub.hookspecs import hookimpl


@hookimpl
def anninh_platforms() -> list[PlatformSpec]:
    # the driver (aiohttp) is imported when a device of this platform is configured, not before
    return [LazyPlatformSpec(name="hikvision", module=f"{__name__}.driver", config_model="HikvisionConfig",
                             driver="HikvisionDriver", description="Hikvision ISAPI cameras, NVRs and DVRs")]


@hookimpl
def anninh_simulators() -> dict[str, object]:
    from .simulator import main

    return {"hikvision": main}


async def _simulator(**options: Any) -> Any:
    """Start a simulated Hikvision camera or recorder (``HikvisionSimulator(**options)``), running."""
    from .simulator import HikvisionSimulator

    return await HikvisionSimulator(**options).start()


@hookimpl
def anninh_simulator_factories() -> dict[str, Any]:
    return {"hikvision": _simulator}
