"""Built-in plugin ``lighting``: black-spot lights on relays (see README.md)."""

from __future__ import annotations

from typing import Any

from hub.api import PlatformSpec
from hub.hookspecs import hookimpl

from .driver import LightConfig, LightDriver


@hookimpl
def anninh_platforms() -> list[PlatformSpec]:
    return [PlatformSpec(name="lighting", config_model=LightConfig, driver=LightDriver,
                         description="street lights and floodlights on Modbus or Tasmota relays")]


@hookimpl
def anninh_simulators() -> dict[str, Any]:
    from .simulator import board_main, tasmota_main

    return {"lighting": board_main, "tasmota": tasmota_main}


async def _simulator(**options: Any) -> Any:
    """Start a simulated Modbus relay board (``RelayBoardSimulator(**options)``), running."""
    from .simulator import RelayBoardSimulator

    return await RelayBoardSimulator(**options).start()


@hookimpl
def anninh_simulator_factories() -> dict[str, Any]:
    return {"relay_board": _simulator}
