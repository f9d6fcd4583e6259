"""The plugin boundary (docs/plugins.md, "What a plugin may import"): built-in plugins import only
the hub modules of plugin API v1 (``hub.API_MODULES``) and no other plugin; the hub never imports a
plugin (it finds them through hooks); the CLI modules import each other without a cycle. Read from
the source with ``ast``, so a lazy import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import API_MODULES
from hub.i18n import use_language

ROOT = Path(__file__).resolve().parent.parent

HUB_MAY_IMPORT_PLUGINS = {
    # test support that item 6 of issue 13 moves out of the package (it starts the plugins'
    # simulators to load a hub); the installed hub itself never imports a plugin
    "hub/testing/flood.py",
}


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every absolute module a file imports (``from a.b import c`` gives ``a.b.c`` and ``a.b``
    is not counted on its own, so ``from hub.camera import xml`` is ``hub.camera.xml``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def allowed(module: str) -> bool:
    """``module`` (``hub.x.y`` or ``hub.x.y.name``) is part of plugin API v1."""
    for api in API_MODULES:
        if module == api or module.startswith(api + "."):
            return True
    return False


def plugin_files() -> list[Path]:
    files = sorted((ROOT / "plugins").rglob("*.py"))
    assert len(files) > 20, "the built-in plugins were not found"
    return files


def test_builtin_plugins_import_only_the_plugin_api() -> None:
    bad = []
    for path in plugin_files():
        rel = path.relative_to(ROOT)
        own = rel.parts[1] if len(rel.parts) > 2 else None
        for line, module in imports(path):
            top = module.split(".")[0]
            if top == "hub" and not allowed(module):
                bad.append(f"{rel}:{line}: {module} is not part of plugin API v1")
            elif top == "plugins" and module.split(".")[1] != own:
                bad.append(f"{rel}:{line}: {module}: a plugin imports no other plugin")
    assert not bad, "\n".join(bad)


def test_the_hub_never_imports_a_plugin() -> None:
    bad = []
    for path in sorted((ROOT / "hub").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in HUB_MAY_IMPORT_PLUGINS:
            continue
        for line, module in imports(path):
            if module.split(".")[0] == "plugins":
                bad.append(f"{rel}:{line}: imports {module}")
    assert not bad, "\n".join(bad)


def test_the_checks_catch_what_they_look_for(tmp_path: Path) -> None:
    """The scanner sees top-level, lazy and ``from package import module`` imports alike."""
    src = tmp_path / "x.py"
    src.write_text("import hub.core\nfrom hub.camera import xml\ndef f():\n    from plugins.dahua import driver\n"
                   "from .local import thing\n")
    found = [m for _, m in imports(src)]
    assert found == ["hub.core", "hub.camera.xml", "plugins.dahua.driver"]
    assert not allowed("hub.core") and not allowed("hub.core.describe_error") and not allowed("hub.cameraman")
    assert allowed("hub.camera.xml") and allowed("hub.api.runtime.describe_error") and allowed("hub.modbus.short_error")


def test_the_documented_list_is_the_one_in_code() -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = re.search(r"^## What a plugin may import.*?(?=^## )", docs, re.M | re.S)
    assert section, "docs/plugins.md has no 'What a plugin may import' section"
    listed = re.findall(r"^- `(hub[\w.]*)`", section.group(0), re.M)
    assert listed == list(API_MODULES)


def _cli_graph() -> dict[str, set[str]]:
    modules = {f"hub.cli.{p.stem}" if p.stem != "__init__" else "hub.cli": p
               for p in (ROOT / "hub" / "cli").glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = set()
        for _, module in imports(path):
            # `from hub.cli import acl` is hub.cli.acl; `from hub.cli.common import x` is hub.cli.common
            while module and module not in modules:
                module = module.rpartition(".")[0]
            if module and module != name:
                graph[name].add(module)
    return graph


def test_the_cli_modules_import_each_other_without_a_cycle() -> None:
    graph = _cli_graph()
    assert {"hub.cli.main", "hub.cli.common", "hub.cli.run"} <= set(graph)
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(node):], node]))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    # and the command modules never import the parser module (that was the old circle)
    entry = ("hub.cli", "hub.cli.__main__")
    assert all("hub.cli.main" not in deps for name, deps in graph.items() if name not in entry)


def test_a_plugin_adds_a_command_through_the_hook(capsys: pytest.CaptureFixture[str]) -> None:
    """``anninh_commands``: a plugin's command gets its options and ``-v`` after it; a plugin
    command named like a built-in one is left out (the built-in one stays); a plugin whose hook
    returns something else is reported, not fatal."""
    import argparse
    import types

    from hub.api import CliContext, CommandSpec
    from hub.cli.common import Cli
    from hub.cli.main import build_parser
    from hub.hookspecs import hookimpl
    from hub.plugins import PluginManager

    def greet(args: argparse.Namespace, cli: CliContext) -> int:
        print(f"hello {args.name}")
        return 3

    def args_of(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", required=True)

    plugin = types.ModuleType("greeter")
    plugin.anninh_commands = hookimpl(lambda: [  # type: ignore[attr-defined]
        CommandSpec(name="greet", help="say hello", run=greet, arguments=args_of),
        CommandSpec(name="run", help="steal the run command", run=greet)])
    broken = types.ModuleType("broken")
    broken.anninh_commands = hookimpl(lambda: ["not a spec"])  # type: ignore[attr-defined]
    pm = PluginManager()
    assert pm.register(plugin, name="greeter", source="test") and pm.register(broken, name="broken", source="test")
    parser = build_parser(pm)
    args = parser.parse_args(["greet", "--name", "An", "-v"])
    assert args.verbose == 1 and args.func(args, Cli()) == 3
    assert capsys.readouterr().out == "hello An\n"
    assert parser.parse_args(["run", "-c", "x.yaml"]).func is not greet
    assert any("broken" in p and "not a CommandSpec" in p for p in pm.problems)


async def test_discover_asks_every_plugin_and_survives_a_broken_one(capsys: pytest.CaptureFixture[str]) -> None:
    """``anninh_discovery``: every discoverer's snippet is printed; one that raises is reported
    on stderr and loses only its own answer; none found anything -> exit 1."""
    import types

    from hub.api import DiscoveryRequest, DiscoveryResult, DiscoverySpec
    from hub.cli.discover import _discover
    from hub.hookspecs import hookimpl
    from hub.plugins import PluginManager

    seen: list[DiscoveryRequest] = []

    async def gates(request: DiscoveryRequest) -> DiscoveryResult:
        seen.append(request)
        return DiscoveryResult(count=1, snippet="- id: gate-1\n", message="1 gate found")

    async def broken(request: DiscoveryRequest) -> DiscoveryResult:
        raise ValueError("no such network")

    async def empty(request: DiscoveryRequest) -> DiscoveryResult:
        return DiscoveryResult(count=0, message="no relay answered")

    def pm_with(*specs: DiscoverySpec) -> PluginManager:
        plugin = types.ModuleType("finders")
        plugin.anninh_discovery = hookimpl(lambda: list(specs))  # type: ignore[attr-defined]
        pm = PluginManager()
        assert pm.register(plugin, name="finders", source="test")
        return pm

    request = DiscoveryRequest(address="127.0.0.1", port=9, timeout=1.0, username="admin", password="s3cret!")
    assert "s3cret!" not in repr(request)
    with use_language("en"):
        rc = await _discover(request, pm_with(DiscoverySpec("gate", gates), DiscoverySpec("broken", broken),
                                              DiscoverySpec("relay", empty)))
    out, err = capsys.readouterr()
    assert rc == 0 and out == "- id: gate-1\n" and seen == [request]
    assert "error: broken discovery failed: ValueError: no such network" in err
    assert "1 gate found" in err and "no relay answered" in err
    assert await _discover(request, pm_with(DiscoverySpec("relay", empty))) == 1


async def test_the_builtin_plugins_give_the_demo_its_simulators() -> None:
    """``anninh_simulator_factories``: the demo's five simulators come from the plugins; one
    started through its factory listens on a real socket and stops."""
    import asyncio

    from hub.plugins import load_plugins

    pm = load_plugins(None)
    factories = pm.simulator_factories()
    assert {"ups_modbus", "relay_board", "hikvision", "dahua", "onvif"} <= set(factories), pm.problems
    sim = await factories["relay_board"](boards={1: "waveshare"})
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        writer.close()
        await writer.wait_closed()
    finally:
        await sim.stop()
