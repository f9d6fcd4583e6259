"""The hooks a plugin may implement. Every hook is documented in docs/plugins.md too (a test
checks both). Hooks are synchronous and cheap: they *return specs*; the asyncio work happens in
the drivers and rules the specs name. A hook implementation may take fewer arguments than the
spec lists, so adding an argument later never breaks an old plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from hub.api import CommandSpec, DiscoverySpec, PlatformSpec, RuleSpec, SimulatorFactory

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


@hookspec
def anninh_simulator_factories() -> dict[str, SimulatorFactory]:
    """Return in-process simulator factories by name, for ``anninh demo`` (and tests).

    Each value is an ``async`` callable taking the simulator's own keyword options and returning
    the simulator *started*: it has a ``port`` attribute (the one it listens on, chosen free when
    ``port=0``) and an ``async stop()``. The demo asks for the names it plays with (``ups_modbus``,
    ``relay_board``, ``hikvision``, ``dahua``, ``onvif``) and goes on without any that is missing.

    Example::

        from hub.hookspecs import hookimpl

        async def _gate(**options):
            from .simulator import GateSimulator
            return await GateSimulator(**options).start()

        @hookimpl
        def anninh_simulator_factories():
            return {"gate": _gate}
    """


@hookspec
def anninh_discovery() -> list[DiscoverySpec]:
    """Return the ways this plugin finds devices on the network, for ``anninh discover``.

    A :class:`hub.api.DiscoverySpec` names the protocol and an ``async run(request)`` taking a
    :class:`hub.api.DiscoveryRequest` (address, port, timeout, bind, optional credentials) and
    returning a :class:`hub.api.DiscoveryResult` (how many devices, a YAML ``devices:`` snippet,
    a line for the person). ``anninh discover`` prints every snippet and exits 1 when none found
    anything.

    Example::

        from hub.api import DiscoveryResult, DiscoverySpec
        from hub.hookspecs import hookimpl

        async def _find(request):
            found = await probe(request.address, request.timeout)
            return DiscoveryResult(count=len(found), snippet=yaml_for(found),
                                   message=f"{len(found)} gate(s) found")

        @hookimpl
        def anninh_discovery():
            return [DiscoverySpec(name="gate", run=_find)]
    """


@hookspec
def anninh_commands() -> list[CommandSpec]:
    """Return ``anninh`` subcommands this plugin adds.

    A :class:`hub.api.CommandSpec` names the command, its one-line help, a function adding its
    options to an :class:`argparse.ArgumentParser`, and ``run(args, cli)`` returning the exit
    code; ``cli`` (a :class:`hub.api.CliContext`) loads the config and makes drivers for its
    devices. Commands come from built-in and installed (entry point) plugins: the command line is
    parsed before any config names a data directory, so a drop-in cannot add one. A command whose
    name is taken is reported (``anninh plugins``) and left out.

    Example::

        from hub.api import CommandSpec
        from hub.hookspecs import hookimpl

        def _args(p):
            p.add_argument("-c", "--config", required=True)

        def _count(args, cli):
            print(len(cli.load_config(args.config).devices))
            return 0

        @hookimpl
        def anninh_commands():
            return [CommandSpec(name="count", help="count the configured devices", arguments=_args,
                                run=_count)]
    """
