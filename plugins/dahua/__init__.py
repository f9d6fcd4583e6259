"""Dahua CGI plugin: platform ``dahua`` and simulator ``dahua``."""

from __future__ import annotations

from hub.api import PlatformSpec
from hub.hookspecs import hookimpl

from .driver import DahuaConfig, DahuaDriver


@hookimpl
def anninh_platforms() -> list[PlatformSpec]:
    return [PlatformSpec(name="dahua", config_model=DahuaConfig, driver=DahuaDriver,
                         description="Dahua HTTP CGI cameras, NVRs and XVRs")]


@hookimpl
def anninh_simulators() -> dict[str, object]:
    from .simulator import main

    return {"dahua": main}
