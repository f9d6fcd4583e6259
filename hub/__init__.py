"""AnNinh Hub: one asyncio process that connects a commune's cameras, recorders, UPS units and
black-spot lights to MQTT through pluggy plugins."""

__version__ = "0.1.0"
API_VERSION = 1
"""Version of the plugin API (hookspecs and :mod:`hub.api`). Drop-in manifests name the version
they were written for; a plugin written for a newer API is refused."""

API_MODULES = (
    "hub.api",
    "hub.hookspecs",
    "hub.camera.base",
    "hub.camera.http",
    "hub.camera.multipart",
    "hub.camera.xml",
    "hub.camera.images",
    "hub.camera.simserver",
    "hub.camera.simrtsp",
    "hub.camera.simfootage",
    "hub.modbus",
    "hub.i18n",
)
"""Plugin API v1: the only hub modules a plugin may import (``hub.api`` with its submodules; the
others exactly). docs/plugins.md lists them with what each is for; tests/test_boundary.py fails
when a built-in plugin imports anything else from the hub, or the hub imports a plugin."""
