"""The project's pytest plugin (``pytest_plugins`` in the root ``conftest.py``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.i18n import set_language, use_language
from hub.redact import clear_secrets
from tests.support.mosquitto import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto on a free loopback port, for one test."""
    workdir = tmp_path / "mosq"
    workdir.mkdir()
    with Mosquitto(workdir=workdir) as m:
        yield m


@pytest.fixture(autouse=True)
def _reset_secrets() -> Iterator[None]:
    yield
    clear_secrets()


@pytest.fixture(autouse=True)
def _reset_language() -> Iterator[None]:
    """A hub started in a test sets the process language from its config: back to the default after."""
    yield
    set_language(None)


@pytest.fixture
def english() -> Iterator[None]:
    """The test reads the hub's English texts (Vietnamese is the default language)."""
    with use_language("en"):
        yield


@pytest.fixture(autouse=True)
def _quiet_libs() -> None:
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # frame dumps on expected timeouts
