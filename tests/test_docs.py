"""The documentation covers every config key and MQTT topic users rely on."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from hub.api import contract
from hub.config import HubSection, MqttSection, SiteConfig, UserConfig

ROOT = Path(__file__).resolve().parent.parent


def test_readme_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1: lines.index("```bash") + 3]
    assert block[0].startswith("pip install -e . && anninh demo")
    assert block[1].startswith("bash scripts/test.sh")
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_every_config_key_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    model: type[BaseModel]
    for section, model in (("hub", HubSection), ("mqtt", MqttSection)):
        for name in model.model_fields:
            assert f"`{section}.{name}`" in readme or f"`{section}.{name}`," in readme or \
                f"{section}.{name}" in readme, f"{section}.{name} is not in README.md"
    for model in (SiteConfig, UserConfig):
        for name in model.model_fields:
            assert f"`{name}`" in readme, f"{model.__name__}.{name} is not in README.md"


def test_every_topic_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    for topic in ("<base>/bridge/state", "<base>/<device>", "<base>/<device>/availability", "<base>/<device>/set",
                  "<base>/<device>/set/<user>", "<base>/site/<site>", "<base>/bridge/event",
                  "<base>/bridge/request/<name>", "homeassistant/<component>/<device>/<field>/config"):
        assert f"`{topic}`" in readme, topic


def test_generated_docs_are_current() -> None:
    """README's topic table and event list, docs/plugins.md's and the plugins' READMEs' config keys are
    generated from hub.api.contract and the config models."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"docs are stale: run python scripts/gen_docs.py\n{result.stdout}{result.stderr}"


def test_the_generator_sees_a_change(tmp_path: Path) -> None:
    """The check is not blind: a doc whose generated block was edited by hand is stale."""
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    readme = (ROOT / "README.md").read_text()
    edited = readme.replace("| `power_lost` |", "| `power_gone` |")
    assert edited != readme
    blocks = dict(gen.targets()[ROOT / "README.md"])
    assert gen.replace_block(edited, "events", blocks["events"](), ROOT / "README.md") == readme
    for name, event in contract.EVENTS.items():
        assert f"| `{name}` |" in readme and event.meaning in readme
    for topic in contract.TOPICS:
        assert f"| `{topic.pattern}` |" in readme


def test_every_event_type_emitted_in_code_is_declared() -> None:
    """A literal event type passed to ``.event(...)`` / ``.emit(...)`` anywhere in hub/ or plugins/ is in
    hub.api.contract.EVENTS (the drivers' and whole-hub tests check the fields of what they emit)."""
    found: dict[str, str] = {}
    for path in [*(ROOT / "hub").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        if path.name == "rtsp_server.py":  # a GStreamer script: its .emit() calls are GObject signals
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            if name in ("event", "emit") and node.args:
                for arg in (node.args[0].body, node.args[0].orelse) if isinstance(node.args[0], ast.IfExp) \
                        else (node.args[0],):
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found[arg.value] = f"{path.relative_to(ROOT)}:{node.lineno}"
    assert len(found) > 15, found  # the scan sees the code
    undeclared = {k: v for k, v in found.items() if k not in contract.EVENTS}
    assert not undeclared, f"event types emitted but not declared in hub.api.contract: {undeclared}"


def test_check_event_refuses_what_does_not_match() -> None:
    contract.check_event("motion", {"channel": 2, "active": False, "ended": "timeout"})
    contract.check_event("disk_missing", {"disk": None, "error": "no working disk"})  # None is dropped
    with pytest.raises(contract.ContractError, match="not declared"):
        contract.check_event("motion_detected", {})
    with pytest.raises(contract.ContractError, match="lacks active"):
        contract.check_event("motion", {"channel": 1})
    with pytest.raises(contract.ContractError, match="undeclared field"):
        contract.check_event("motion", {"active": False, "timed_out": True})
