"""Plugin discovery, isolation of broken plugins, and hook documentation."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

from hub import hookspecs
from hub.api import PlatformSpec
from hub.hookspecs import hookimpl
from hub.plugins import PluginManager

ROOT = Path(__file__).resolve().parent.parent
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("anninh_")]

GOOD = '''
from hub.api import DeviceConfig, Driver, PlatformSpec
from hub.hookspecs import hookimpl

@hookimpl
def anninh_platforms():
    return [PlatformSpec(name="{name}", config_model=DeviceConfig, driver=Driver)]
'''


def _dropin(root: Path, folder: str, manifest: object, code: str = "") -> None:
    d = root / "plugins" / folder
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    (d / "__init__.py").write_text(code or GOOD.format(name=folder))


def test_every_hook_is_documented() -> None:
    """A hook without a docstring example or a heading in docs/plugins.md fails this test."""
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert HOOKS, "no hooks found"
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Example::" in doc, f"hookspec {name} has no example in its docstring"
        assert re.search(rf"^### {name}$", docs, re.M), f"docs/plugins.md has no '### {name}' section"


def test_dropins_good_and_broken(tmp_path: Path) -> None:
    _dropin(tmp_path, "good", {"name": "good", "version": "1.0", "api_version": 1})
    _dropin(tmp_path, "newer", {"name": "newer", "version": "1.0", "api_version": 99})
    _dropin(tmp_path, "nomanifest", "{not json")
    _dropin(tmp_path, "missing", {"name": "missing", "version": "1.0"})
    _dropin(tmp_path, "crashes", {"name": "crashes", "version": "1", "api_version": 1},
            "raise RuntimeError('import-time bug')")
    _dropin(tmp_path, "typo", {"name": "typo", "version": "1", "api_version": 1},
            "from hub.hookspecs import hookimpl\n@hookimpl\ndef anninh_platfroms():\n    return []\n")
    pm = PluginManager().discover(tmp_path, builtin=False, entry_points=False)
    assert set(pm.plugins) == {"good"}
    assert "good" in pm.platforms()
    text = "\n".join(pm.problems)
    assert "hub API version 99" in text
    assert "nomanifest" in text and "cannot read manifest" in text
    assert "lacks api_version" in text
    assert "import-time bug" in text
    assert "anninh_platfroms" in text  # misspelt hook caught by check_pending


def test_name_clash_reported_with_both_sources(tmp_path: Path) -> None:
    class A:
        @hookimpl
        def anninh_platforms(self):
            return [PlatformSpec(name="thing", config_model=PlatformSpec.__init__.__class__, driver=object)]  # type: ignore[arg-type]

    class B:
        @hookimpl
        def anninh_platforms(self):
            return [PlatformSpec(name="thing", config_model=PlatformSpec.__init__.__class__, driver=object)]  # type: ignore[arg-type]

    pm = PluginManager()
    assert pm.register(A(), name="a", source="first place")
    assert not pm.register(A(), name="a", source="second place")
    assert "first place" in pm.problems[-1] and "second place" in pm.problems[-1]
    pm.register(B(), name="b", source="elsewhere")
    assert set(pm.platforms()) == {"thing"}
    assert any("clashes" in p and "thing" in p for p in pm.problems)


def test_hook_returning_garbage_is_reported() -> None:
    class Garbage:
        @hookimpl
        def anninh_platforms(self):
            return ["not a spec"]

    pm = PluginManager()
    pm.register(Garbage(), name="garbage", source="test")
    assert pm.platforms() == {}
    assert "not a PlatformSpec" in pm.problems[-1]


def test_builtin_plugins_have_manifests_and_readmes() -> None:
    for folder in sorted((ROOT / "plugins").iterdir()):
        if not folder.is_dir() or folder.name.startswith(("_", ".")):
            continue
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["name"] == folder.name
        assert manifest["api_version"] == 1
        assert (folder / "README.md").is_file(), f"{folder.name} has no README.md"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_signatures_are_typed(hook: str) -> None:
    sig = inspect.signature(getattr(hookspecs, hook))
    assert sig.return_annotation is not inspect.Signature.empty
