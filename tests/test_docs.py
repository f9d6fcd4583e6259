"""The documentation covers every config key and MQTT topic users rely on."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

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
