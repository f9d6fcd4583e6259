"""Registers the project's pytest plugin (fixtures and helpers live in tests/support/, outside the
installed package)."""

pytest_plugins = ["tests.support.plugin"]
