"""Dahua CGI plugin: platform ``dahua`` and simulator ``dahua``."""

from __future__ import annotations

from typing import Any

from hub.api import LazyPlatformSpec, PlatformSpec
from hub.hookspecs import hookimpl


@hookimpl
def anninh_platforms() -> list[PlatformSpec]:
    # the driver (aiohttp) is imported when a device of this platform is configured, not before
    return [LazyPlatformSpec(name="dahua", module=f"{__name__}.driver", config_model="DahuaConfig",
                             driver="DahuaDriver", description="Dahua HTTP CGI cameras, NVRs and XVRs")]


@hookimpl
def anninh_simulators() -> dict[str, object]:
    from .simulator import main

    return {"dahua": main}


async def _simulator(**options: Any) -> Any:
    """Start a simulated Dahua camera or recorder (``DahuaSimulator(**options)``), running."""
    from .simulator import DahuaSimulator

    return await DahuaSimulator(**options).start()


@hookimpl
def anninh_simulator_factories() -> dict[str, Any]:
    return {"dahua": _simulator}
