"""Hikvision ISAPI plugin: platform ``hikvision`` and simulator ``hikvision``."""

from __future__ import annotations

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
