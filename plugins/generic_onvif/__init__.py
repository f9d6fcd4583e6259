"""Built-in plugin ``generic_onvif``: any ONVIF Profile S/T camera (household cameras of unknown brand).

Hooks only: the work is in :mod:`.driver` (the hub driver), :mod:`.simulator` (a SOAP camera on
loopback) and :mod:`.discovery` (WS-Discovery, used by ``anninh discover``).
"""

from __future__ import annotations

from typing import Any

from hub.api import DiscoveryRequest, DiscoveryResult, DiscoverySpec, LazyPlatformSpec, PlatformSpec
from hub.hookspecs import hookimpl


@hookimpl
def anninh_platforms() -> list[PlatformSpec]:
    # the driver (onvif-zeep-async, zeep, lxml, aiohttp: ~20 MB) is imported when an ONVIF camera
    # is configured, not before
    return [LazyPlatformSpec(name="generic_onvif", module=f"{__name__}.driver", config_model="OnvifConfig",
                             driver="OnvifDriver",
                             description="any ONVIF Profile S/T camera (PullPoint events, snapshots, RTSP URI)",
                             simulator=_simulator)]


async def _simulator(**kwargs: Any) -> Any:
    """Start a simulated ONVIF camera (``OnvifSimulator(**kwargs)``) and return it, running."""
    from .simulator import OnvifSimulator

    return await OnvifSimulator(**kwargs).start()


@hookimpl
def anninh_simulators() -> dict[str, object]:
    from .simulator import main

    return {"onvif": main}


@hookimpl
def anninh_simulator_factories() -> dict[str, object]:
    return {"onvif": _simulator}


async def _discover(request: DiscoveryRequest) -> DiscoveryResult:
    from .discovery import discover

    return await discover(request)


@hookimpl
def anninh_discovery() -> list[DiscoverySpec]:
    return [DiscoverySpec(name="onvif", run=_discover,
                          description="ONVIF cameras by WS-Discovery (multicast or one address)")]
