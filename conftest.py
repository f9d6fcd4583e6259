from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hub.redact import clear_secrets
from hub.testing.mosquitto import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path):
    """A real Mosquitto on a free loopback port, for one test."""
    workdir = tmp_path / "mosq"
    workdir.mkdir()
    with Mosquitto(workdir=workdir) as m:
        yield m


@pytest.fixture(autouse=True)
def _reset_secrets():
    yield
    clear_secrets()


@pytest.fixture(autouse=True)
def _quiet_libs():
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # frame dumps on expected timeouts
