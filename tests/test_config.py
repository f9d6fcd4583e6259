"""`anninh check`: exit 0 on a good config, 1 with file:line and field on each broken one."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.cli import main
from hub.config import ConfigError, load_config
from hub.i18n import use_language
from hub.plugins import PluginManager

ROOT = Path(__file__).resolve().parent.parent

GADGET_PLUGIN = '''
from pydantic import Field
from hub.api import DeviceConfig, Driver, PlatformSpec
from hub.hookspecs import hookimpl

class GadgetConfig(DeviceConfig):
    host: str
    port: int = Field(80, ge=1, le=65535)

class Gadget(Driver):
    async def poll(self):
        return {"ok": True}

@hookimpl
def anninh_platforms():
    return [PlatformSpec(name="gadget", config_model=GadgetConfig, driver=Gadget)]
'''


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """The messages below are checked in English (in Vietnamese: tests/test_i18n_coverage.py)."""
    with use_language("en"):
        yield

GOOD = """\
hub:
  name: Test post
  latitude: 11.03
  longitude: 106.76
  data_dir: ./data
mqtt:
  server: mqtt://127.0.0.1:1883
  password: !secret mqtt_password
sites:
  - id: kp3-tam
    blackspot: true
devices:
  - id: gadget-1
    platform: gadget
    site: kp3-tam
    host: 192.0.2.1
    port: 8080
"""


def _setup(tmp_path: Path, text: str) -> Path:
    plugin = tmp_path / "data" / "plugins" / "gadget"
    plugin.mkdir(parents=True, exist_ok=True)
    (plugin / "manifest.json").write_text(json.dumps({"name": "gadget", "version": "1.0", "api_version": 1}))
    (plugin / "__init__.py").write_text(GADGET_PLUGIN)
    (tmp_path / "secrets.yaml").write_text("mqtt_password: s3cret-hub-pw\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    return cfg


def _check(cfg: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(["-q", "--lang", "en", "check", "-c", str(cfg)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_good_config_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _check(_setup(tmp_path, GOOD), capsys)
    assert code == 0, out
    assert "OK" in out and "1 device" in out
    assert "s3cret-hub-pw" not in out


# (name, replacement of GOOD's text, expected line, expected field, words in the message)
BROKEN = [
    ("bad yaml", ("    blackspot: true\n", "    blackspot: [true\n"), 12, "", "started on line 11"),
    ("unknown key", ("    port: 8080\n", "    port: 8080\n    colour: red\n"), 18, "devices[0].colour", "unknown key"),
    ("unknown top key", ("mqtt:\n", "mqttt: {}\nmqtt:\n"), 6, "mqttt", "unknown key"),
    ("bad id", ("  - id: gadget-1\n", "  - id: Gadget 1\n"), 13, "devices[0].id", "not a valid id"),
    ("reserved id", ("  - id: gadget-1\n", "  - id: bridge\n"), 13, "devices[0].id", "reserved"),
    ("duplicate id", ("    port: 8080\n", "    port: 8080\n  - id: gadget-1\n    platform: gadget\n"
                                             "    host: 192.0.2.2\n"), 18, "devices[1].id", "duplicate device id"),
    ("missing secret", ("!secret mqtt_password", "!secret nope"), 8, "", "!secret nope"),
    ("unknown platform", ("    platform: gadget\n", "    platform: gadgett\n"), 14, "devices[0].platform",
     "unknown platform"),
    ("unknown site", ("    site: kp3-tam\n", "    site: kp4\n"), 15, "devices[0].site", "unknown site"),
    ("wrong type", ("  latitude: 11.03\n", "  latitude: north\n"), 3, "hub.latitude", "valid number"),
    ("out of range", ("    port: 8080\n", "    port: 70000\n"), 17, "devices[0].port", "less than or equal to 65535"),
    ("bad plugin section", ("    host: 192.0.2.1\n", ""), 13, "devices[0].host", "required key is missing"),
    ("bad timezone", ("  data_dir: ./data\n", "  data_dir: ./data\n  timezone: Mars/Base\n"), 6, "hub.timezone",
     "unknown timezone"),
    ("bad mqtt url", ("mqtt://127.0.0.1:1883", "http://x"), 7, "mqtt.server", "expected 'embedded'"),
    ("duplicate key", ("    port: 8080\n", "    port: 8080\n    port: 8081\n"), 18, "port", "duplicate key"),
    ("unknown rule", ("devices:\n", "rules:\n  night_lite: {}\ndevices:\n"), 13, "rules.night_lite", "unknown rule"),
]


@pytest.mark.parametrize(("name", "change", "line", "field", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_fails_with_location(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                           change: tuple[str, str], line: int, field: str, words: str) -> None:
    assert change[0] in GOOD, name
    cfg = _setup(tmp_path, GOOD.replace(change[0], change[1], 1))
    code, out = _check(cfg, capsys)
    assert code == 1, out
    errors = [ln for ln in out.splitlines() if ln.startswith("error: ")]
    assert errors, out
    pattern = re.escape(f"{cfg}:{line}: ") + (re.escape(f"{field}: ") if field else "")
    assert any(re.match("error: " + pattern, e) and words in e for e in errors), (pattern, words, out)
    assert "s3cret-hub-pw" not in out


def test_example_config_is_valid() -> None:
    """The README's example config passes `anninh check` (run as a real command)."""
    result = subprocess.run([sys.executable, "-m", "hub.cli", "check", "-c", str(ROOT / "examples/config.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "change-me" not in result.stdout + result.stderr


def test_errors_are_all_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("    port: 8080\n", "    port: 0\n").replace("  latitude: 11.03\n", "  latitude: 91\n")
    cfg = _setup(tmp_path, text)
    pm = PluginManager().discover(tmp_path / "data", builtin=False, entry_points=False)
    with pytest.raises(ConfigError) as err:
        load_config(cfg, pm)
    fields = {i.field for i in err.value.issues}
    assert {"hub.latitude", "devices[0].port"} <= fields


def test_did_you_mean(tmp_path: Path) -> None:
    cfg = _setup(tmp_path, GOOD.replace("    port: 8080\n", "    prot: 8080\n"))
    pm = PluginManager().discover(tmp_path / "data", builtin=False, entry_points=False)
    with pytest.raises(ConfigError) as err:
        load_config(cfg, pm)
    assert "did you mean 'port'?" in str(err.value)


def test_world_readable_secrets_warns(tmp_path: Path) -> None:
    cfg = _setup(tmp_path, GOOD)
    (tmp_path / "secrets.yaml").chmod(0o644)
    pm = PluginManager().discover(tmp_path / "data", builtin=False, entry_points=False)
    config = load_config(cfg, pm)
    assert any("secrets.yaml is readable by every user" in w for w in config.warnings)
    (tmp_path / "secrets.yaml").chmod(0o600)
    cfg.chmod(0o600)
    assert load_config(cfg, pm).warnings == []


def test_secret_value_never_in_repr(tmp_path: Path) -> None:
    cfg = _setup(tmp_path, GOOD)
    pm = PluginManager().discover(tmp_path / "data", builtin=False, entry_points=False)
    config = load_config(cfg, pm)
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "s3cret-hub-pw"
    assert "s3cret-hub-pw" not in repr(config) + str(config.mqtt)


def test_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(textwrap.dedent("""\
        sites: [{id: a}]
    """))
    config = load_config(cfg, PluginManager())
    assert config.mqtt.server == "embedded"
    assert config.mqtt.base_topic == "anninh"
    assert config.data_dir == (tmp_path / "data").resolve()
