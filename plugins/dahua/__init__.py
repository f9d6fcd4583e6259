"""Dahua CGI plugin: platform ``dahua`` and simulator ``dahua``."""

from __future__ import annotations

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
