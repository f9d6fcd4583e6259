"""Helpers for tests, benchmarks and plugin authors: a real Mosquitto on a free loopback port,
an MQTT client that records what it sees, and a way to run a hub from a config dict."""
