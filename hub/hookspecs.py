"""The hooks a plugin may implement. Every hook is documented in docs/plugins.md too (a test
checks both). Hooks are synchronous and cheap: they *return specs*; the asyncio work happens in
the drivers and rules the specs name. A hook implementation may take fewer arguments than the
spec lists, so adding an argument later never breaks an old plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from hub.api import PlatformSpec, RuleSpec

PROJECT = "anninh"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def anninh_platforms() -> list[PlatformSpec]:
    """Return the device platforms this plugin provides.

    Each :class:`hub.api.PlatformSpec` names the platform (the ``platform:`` key in the config),
    its pydantic config model (a subclass of :class:`hub.api.DeviceConfig`) and its driver class.

    Example::

        from hub.api import DeviceConfig, Driver, PlatformSpec
        from hub.hookspecs import hookimpl

        class GateConfig(DeviceConfig):
            host: str

        class GateDriver(Driver):
            kind = "sensor"
            async def poll(self):
                return {"open": False}

        @hookimpl
        def anninh_platforms():
            return [PlatformSpec(name="gate", config_model=GateConfig, driver=GateDriver)]
    """


@hookspec
def anninh_rules() -> list[RuleSpec]:
    """Return the rules this plugin provides.

    A :class:`hub.api.RuleSpec` names the rule (its options live under ``rules.<name>`` in the
    config), a factory taking ``(ctx, options)`` and returning a :class:`hub.api.Rule`, and
    whether it runs when the config does not mention it.

    Example::

        from hub.api import Rule, RuleSpec
        from hub.hookspecs import hookimpl

        class Greeter(Rule):
            name = "greeter"
            def on_event(self, event):
                if event.type == "device_online":
                    self.ctx.log.info("welcome back %s", event.device)

        @hookimpl
        def anninh_rules():
            return [RuleSpec(name="greeter", factory=Greeter, default_enabled=False)]
    """


@hookspec
def anninh_simulators() -> dict[str, object]:
    """Return simulator entry points by name, for ``anninh simulate NAME``.

    Each value is a callable ``main(argv: list[str]) -> int`` that runs the simulator in the
    foreground, so an installer can try a config without hardware.

    Example::

        from hub.hookspecs import hookimpl
        from .simulator import main

        @hookimpl
        def anninh_simulators():
            return {"gate": main}
    """
