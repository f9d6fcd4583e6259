"""Test support for the image-health checks (:mod:`hub.health.testing`: camera servers, clips).

The engine itself (checks, sources, pool, monitor, scheduler, reference pictures) is part of the
built-in plugin ``plugins/image_health``; the user's guide is ``docs/image_health.md``.
"""
