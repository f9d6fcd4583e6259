"""Built-in plugin ``ups_modbus``: UPS units and AC power meters over Modbus (see README.md)."""

from __future__ import annotations

from typing import Any

from hub.api import PlatformSpec
from hub.hookspecs import hookimpl

from .driver import UpsConfig, make_driver


@hookimpl
def anninh_platforms() -> list[PlatformSpec]:
    return [PlatformSpec(name="ups_modbus", config_model=UpsConfig, driver=make_driver,
                         description="UPS units and power meters over Modbus TCP/RTU")]


@hookimpl
def anninh_simulators() -> dict[str, Any]:
    from .simulator import main

    return {"ups_modbus": main}


async def _simulator(**options: Any) -> Any:
    """Start a simulated Modbus UPS / meter bus (``UpsSimulator(**options)``), running."""
    from .simulator import UpsSimulator

    return await UpsSimulator(**options).start()


@hookimpl
def anninh_simulator_factories() -> dict[str, Any]:
    return {"ups_modbus": _simulator}
