"""Image health checks for cameras and recorders.

* :mod:`hub.health.checks` — small pure functions (numpy / OpenCV) measuring one picture:
  brightness, sharpness, structure, change against the previous sample, shift against a
  reference. Every threshold is documented where it is used.
* :mod:`hub.health.sources` — where pictures come from: a JPEG snapshot from the camera's driver
  or one keyframe of its RTSP stream (PyAV, TCP, short timeouts); the job functions the worker
  pool runs.
* :mod:`hub.health.pool` — the bounded worker pool (threads or processes) that keeps decoding and
  OpenCV off the event loop.
* :mod:`hub.health.monitor` — per-camera debounce and hysteresis: turns measurements into the
  state fields ``brightness``, ``sharpness``, ``image``, ``dark`` and the ``image_*`` events.
* :mod:`hub.health.scheduler` — spreads the checks of many cameras over their interval.
* :mod:`hub.health.reference` — reference pictures in the data directory.

The rule that ties them to the hub is the built-in plugin ``plugins/image_health``; the user's
guide is ``docs/image_health.md``.
"""
