"""Hikvision ISAPI plugin: platform ``hikvision`` and simulator ``hikvision``."""

from __future__ import annotations

from hub.api import PlatformSpec
from hub.hookspecs import hookimpl

from .driver import HikvisionConfig, HikvisionDriver


@hookimpl
def anninh_platforms() -> list[PlatformSpec]:
    return [PlatformSpec(name="hikvision", config_model=HikvisionConfig, driver=HikvisionDriver,
                         description="Hikvision ISAPI cameras, NVRs and DVRs")]


@hookimpl
def anninh_simulators() -> dict[str, object]:
    from .simulator import main

    return {"hikvision": main}
