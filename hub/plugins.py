"""Plugin discovery and the one facade the rest of the hub uses to talk to plugins.

Discovery order (first wins on a name clash, which is reported with both sources):

1. built-in plugins: every package under ``plugins/`` that has a ``manifest.json``;
2. the ``anninh.plugins`` entry-point group of installed distributions;
3. drop-in folders ``<data_dir>/plugins/<name>/`` with a ``manifest.json`` and ``__init__.py``.

A plugin that fails to import, has a bad manifest, misspells a hook or raises in a hook is
reported (``PluginManager.problems`` and one log line) and left out; the others keep working.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from hub import API_VERSION, hookspecs
from hub.api import CommandSpec, DiscoverySpec, PlatformSpec, RuleSpec

log = logging.getLogger(__name__)

BUILTIN_PACKAGE = "plugins"
ENTRY_POINT_GROUP = "anninh.plugins"


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    api_version: int
    description: str = ""

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PluginError(f"{path}: cannot read manifest: {exc}") from None
        if not isinstance(raw, dict):
            raise PluginError(f"{path}: manifest must be a JSON object")
        missing = [k for k in ("name", "version", "api_version") if k not in raw]
        if missing:
            raise PluginError(f"{path}: manifest lacks {', '.join(missing)}")
        unknown = set(raw) - {"name", "version", "api_version", "description", "requirements"}
        if unknown:
            raise PluginError(f"{path}: unknown manifest key(s) {', '.join(sorted(unknown))}")
        api = raw["api_version"]
        if not isinstance(api, int) or isinstance(api, bool):
            raise PluginError(f"{path}: api_version must be an integer, got {api!r}")
        if api > API_VERSION or api < 1:
            raise PluginError(
                f"{path}: written for hub API version {api}, this hub provides {API_VERSION}")
        if not isinstance(raw["name"], str) or not raw["name"].isidentifier():
            raise PluginError(f"{path}: name must be a Python identifier, got {raw['name']!r}")
        return cls(name=raw["name"], version=str(raw["version"]), api_version=api,
                   description=str(raw.get("description", "")))


class PluginError(Exception):
    """A plugin could not be loaded; the message says which and why."""


@dataclass
class LoadedPlugin:
    name: str
    source: str  # "builtin", "entry point <dist>", "drop-in <path>"
    module: ModuleType
    manifest: Manifest | None = None


@dataclass
class PluginManager:
    """Typed facade over pluggy: nothing else in the hub touches ``pm.hook``."""

    pm: pluggy.PluginManager = field(default_factory=lambda: _new_pm())
    plugins: dict[str, LoadedPlugin] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _platforms: dict[str, tuple[PlatformSpec, str]] | None = None
    _rules: dict[str, tuple[RuleSpec, str]] | None = None

    # ---------------------------------------------------------------- discovery
    def discover(self, data_dir: Path | None = None, *, builtin: bool = True,
                 entry_points: bool = True) -> PluginManager:
        if builtin:
            self._discover_builtin()
        if entry_points:
            self._discover_entry_points()
        if data_dir is not None:
            self._discover_dropins(Path(data_dir) / "plugins")
        return self

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.error("plugin problem: %s", message)

    def _discover_builtin(self) -> None:
        try:
            pkg = importlib.import_module(BUILTIN_PACKAGE)
        except ImportError as exc:
            self._problem(f"built-in plugins package cannot be imported: {exc}")
            return
        for base in pkg.__path__:
            for folder in sorted(Path(base).iterdir()):
                manifest = folder / "manifest.json"
                if not manifest.is_file():
                    continue
                try:
                    man = Manifest.load(manifest)
                    module = importlib.import_module(f"{BUILTIN_PACKAGE}.{folder.name}")
                except PluginError as exc:
                    self._problem(str(exc))
                    continue
                except Exception as exc:
                    self._problem(f"built-in plugin {folder.name}: import failed: {exc!r}")
                    continue
                self.register(module, name=man.name, source="builtin", manifest=man)

    def _discover_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "?"
            try:
                module = ep.load()
            except Exception as exc:
                self._problem(f"entry point {ep.name} ({dist}): import failed: {exc!r}")
                continue
            self.register(module, name=ep.name, source=f"entry point of {dist}")

    def _discover_dropins(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        for sub in sorted(folder.iterdir()):
            if not sub.is_dir() or sub.name.startswith((".", "_")):
                continue
            try:
                man = Manifest.load(sub / "manifest.json")
                init = sub / "__init__.py"
                if not init.is_file():
                    raise PluginError(f"{sub}: drop-in plugin has no __init__.py")
                modname = f"anninh_dropin_{man.name}"
                spec = importlib.util.spec_from_file_location(
                    modname, init, submodule_search_locations=[str(sub)])
                if spec is None or spec.loader is None:
                    raise PluginError(f"{sub}: cannot import")
                module = importlib.util.module_from_spec(spec)
                sys.modules[modname] = module
                try:
                    spec.loader.exec_module(module)
                except Exception as exc:
                    sys.modules.pop(modname, None)
                    raise PluginError(f"drop-in plugin {sub}: import failed: {exc!r}") from None
            except PluginError as exc:
                self._problem(str(exc))
                continue
            self.register(module, name=man.name, source=f"drop-in {sub}", manifest=man)

    # ---------------------------------------------------------------- registration
    def register(self, module: Any, *, name: str, source: str,
                 manifest: Manifest | None = None) -> bool:
        if name in self.plugins:
            self._problem(f"plugin name {name!r} from {source} clashes with the one from "
                          f"{self.plugins[name].source}; keeping the first")
            return False
        try:
            self.pm.register(module, name=name)
        except Exception as exc:  # pluggy validates hookimpl signatures here
            self._problem(f"plugin {name} ({source}): {exc}")
            return False
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(module)
            self._problem(f"plugin {name} ({source}): {exc}")
            return False
        self.plugins[name] = LoadedPlugin(name=name, source=source, module=module, manifest=manifest)
        self._platforms = self._rules = None
        return True

    def _call_each(self, hook_name: str) -> list[tuple[str, Any]]:
        """Call one hook on every plugin separately, so one raising plugin loses only itself."""
        caller = getattr(self.pm.hook, hook_name)
        results: list[tuple[str, Any]] = []
        for impl in caller.get_hookimpls():
            try:
                results.append((impl.plugin_name, impl.function()))
            except Exception as exc:
                self._problem(f"plugin {impl.plugin_name}: hook {hook_name} raised {exc!r}")
        return results

    # ---------------------------------------------------------------- queries
    def platforms(self) -> dict[str, PlatformSpec]:
        if self._platforms is None:
            self._platforms = {}
            for plugin, result in self._call_each("anninh_platforms"):
                for spec in result or []:
                    if not isinstance(spec, PlatformSpec):
                        self._problem(f"plugin {plugin}: anninh_platforms returned {spec!r}, "
                                      "not a PlatformSpec")
                        continue
                    if spec.name in self._platforms:
                        other = self._platforms[spec.name][1]
                        self._problem(f"platform {spec.name!r} of plugin {plugin} clashes with "
                                      f"plugin {other}; keeping {other}'s")
                        continue
                    self._platforms[spec.name] = (spec, plugin)
        return {k: v[0] for k, v in self._platforms.items()}

    def platform_plugin(self, platform: str) -> str | None:
        """The plugin that registered ``platform`` (scripts/gen_docs.py groups the config tables by it)."""
        self.platforms()
        assert self._platforms is not None
        entry = self._platforms.get(platform)
        return entry[1] if entry else None

    def rules(self) -> dict[str, RuleSpec]:
        if self._rules is None:
            self._rules = {}
            for plugin, result in self._call_each("anninh_rules"):
                for spec in result or []:
                    if not isinstance(spec, RuleSpec):
                        self._problem(f"plugin {plugin}: anninh_rules returned {spec!r}, not a RuleSpec")
                        continue
                    if spec.name in self._rules:
                        other = self._rules[spec.name][1]
                        self._problem(f"rule {spec.name!r} of plugin {plugin} clashes with plugin "
                                      f"{other}; keeping {other}'s")
                        continue
                    self._rules[spec.name] = (spec, plugin)
        return {k: v[0] for k, v in self._rules.items()}

    def simulators(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _plugin, result in self._call_each("anninh_simulators"):
            if isinstance(result, dict):
                for k, v in result.items():
                    out.setdefault(k, v)
        return out

    def simulator_factories(self) -> dict[str, Any]:
        """Name -> ``async factory(**options)`` of every plugin (first plugin wins a name)."""
        out: dict[str, Any] = {}
        for plugin, result in self._call_each("anninh_simulator_factories"):
            if not isinstance(result, dict):
                self._problem(f"plugin {plugin}: anninh_simulator_factories returned {result!r}, not a dict")
                continue
            for k, v in result.items():
                if not callable(v):
                    self._problem(f"plugin {plugin}: simulator factory {k!r} is not callable")
                    continue
                out.setdefault(k, v)
        return out

    def discoverers(self) -> list[DiscoverySpec]:
        return self._specs("anninh_discovery", DiscoverySpec)

    def commands(self) -> list[CommandSpec]:
        return self._specs("anninh_commands", CommandSpec)

    def _specs(self, hook_name: str, kind: type[Any]) -> list[Any]:
        out: list[Any] = []
        for plugin, result in self._call_each(hook_name):
            for spec in result or []:
                if not isinstance(spec, kind):
                    self._problem(f"plugin {plugin}: {hook_name} returned {spec!r}, not a {kind.__name__}")
                    continue
                out.append(spec)
        return out


def _new_pm() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins(data_dir: Path | None = None) -> PluginManager:
    return PluginManager().discover(data_dir)
