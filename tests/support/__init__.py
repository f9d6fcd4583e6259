"""Test support: everything tests and benchmarks share, kept out of the installed package.

* :mod:`tests.support.plugin` — the pytest plugin (fixture ``mosquitto``, secrets reset, quiet
  libraries), registered by the root ``conftest.py``;
* :mod:`tests.support.context` — :class:`FakeDeviceContext`, the one fake ``hub.api.DeviceContext``;
* :mod:`tests.support.mosquitto` — a real Mosquitto on a free loopback port;
* :mod:`tests.support.mqtt` — an MQTT client that records what it sees (:class:`Recorder`);
* :mod:`tests.support.hubrun` — a hub from YAML text in a test (:func:`hub_from_yaml`);
* :mod:`tests.support.rtsp` — ``ffprobe`` a simulator's RTSP stream (:func:`probe_stream`);
* :mod:`tests.support.health` — pictures with known properties, RTSP and snapshot servers, the
  ``testcam`` platform (image-health tests);
* :mod:`tests.support.idle`, :mod:`tests.support.flood` — whole-hub scenarios shared by a test and
  a benchmark.

Benchmarks under ``bench/`` import these from the source tree (they put its root on ``sys.path``).
"""
