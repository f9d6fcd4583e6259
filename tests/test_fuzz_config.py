"""Fuzz the config loader: whatever the file holds, ``load_config`` returns a Config or raises
ConfigError (with file and message) — never another exception, never a hang.

CI runs a small budget; ``FUZZ_LONG=1`` multiplies it (the long run is reported in
docs/security.md). Run:
``FUZZ_LONG=1 python -m pytest -q tests/test_fuzz_*.py --timeout=0 --hypothesis-show-statistics``.
"""

from __future__ import annotations

import os
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.config import Config, ConfigError, load_config
from tests import plugin_echo
from tests.support.hubrun import make_plugins

LONG = os.environ.get("FUZZ_LONG") == "1"


def budget(n: int) -> Any:
    return settings(max_examples=n * 40 if LONG else n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


PLUGINS = make_plugins(("echo", plugin_echo), builtin=False)


def _load(text: str | bytes, secrets: str | bytes | None = None) -> Config | None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        path.chmod(0o600)
        if secrets is not None:
            s = Path(d) / "secrets.yaml"
            if isinstance(secrets, bytes):
                s.write_bytes(secrets)
            else:
                s.write_text(secrets)
        try:
            return load_config(path, PLUGINS)
        except ConfigError as exc:
            assert exc.issues, "a ConfigError names at least one issue"
            for issue in exc.issues:
                assert issue.file.name in ("config.yaml", "secrets.yaml")
                assert isinstance(str(issue), str) and issue.message
            return None


@budget(150)
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    _load(data)


YAML_CHARS = (st.sampled_from([*list(":-[]{},#&*!|>'\"%@` \n\t?"), "!secret ", "<<: ", "  ", "- "])
              | st.characters(exclude_categories=["Cs"]))


@budget(200)
@given(st.lists(YAML_CHARS, max_size=300).map("".join), st.lists(YAML_CHARS, max_size=80).map("".join))
def test_yaml_punctuation(config: str, secrets: str) -> None:
    _load(config, secrets)


KEYS = ["hub", "mqtt", "sites", "devices", "users", "rules", "name", "latitude", "longitude", "timezone",
        "data_dir", "history_days", "server", "username", "password", "base_topic", "discovery", "keepalive",
        "ca_file", "queue_size", "embedded_bind", "embedded_port", "id", "blackspot", "platform", "site",
        "poll_interval", "timeout", "enabled", "value", "role", "echo", "kp3", "bridge", "x"]
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
           | st.sampled_from(["echo", "kp3", "officer", "embedded", "mqtt://127.0.0.1:1", "Asia/Ho_Chi_Minh",
                              "bridge", "site", "", "ON"]) | st.text(max_size=20))
TREES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.sampled_from(KEYS), kids, max_size=5), max_leaves=30)


@budget(300)
@given(st.dictionaries(st.sampled_from([*KEYS[:6], "x"]), TREES, max_size=6))
def test_structured_configs(tree: dict[str, Any]) -> None:
    config = _load(yaml.safe_dump(tree, allow_unicode=True))
    if config is not None:  # a valid config is a consistent one
        ids = [d.id for d in config.devices]
        assert len(ids) == len(set(ids))
        assert all(d.site is None or config.site(d.site) for d in config.devices)


# Deep nesting: PyYAML recurses per level; hub.config.load_yaml reports "nested too deeply"
# instead of letting RecursionError out (found by this file's first fuzz run).
@pytest.mark.parametrize("opener", ["[", "{", "- ", "a: ", "&a [*a, "])
def test_deep_nesting(opener: str) -> None:
    _load(opener * 1200)


@budget(30)
@given(st.integers(1, 14), st.sampled_from(["hub", "devices", "users", "rules", "x"]))
def test_alias_expansion_is_cheap(depth: int, key: str) -> None:
    """A "billion laughs" of YAML aliases neither hangs nor eats memory (aliases are shared)."""
    lines = ["a0: &a0 [{id: a, platform: echo}, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, depth)]
    tracemalloc.start()
    try:
        _load("\n".join(lines) + f"\n{key}: *a{depth - 1}\n")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
