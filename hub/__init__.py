"""AnNinh Hub: one asyncio process that connects a commune's cameras, recorders, UPS units and
black-spot lights to MQTT through pluggy plugins."""

__version__ = "0.1.0"
API_VERSION = 1
"""Version of the plugin API (hookspecs and :mod:`hub.api`). Drop-in manifests name the version
they were written for; a plugin written for a newer API is refused."""
