"""Helpers shared by the camera and recorder plugins (Hikvision ISAPI, Dahua CGI).

* :mod:`hub.camera.http` — async HTTP client: unauthenticated first, then Digest (Basic only when
  that is all the device offers); clean :class:`hub.api.AuthError` / :class:`hub.api.DeviceError`.
* :mod:`hub.camera.multipart` — incremental, resynchronising multipart parser for event streams.
* :mod:`hub.camera.xml` — parse vendor XML by local name, whatever the namespace.
* :mod:`hub.camera.simserver` — a loopback HTTP server base for protocol simulators.
* :mod:`hub.camera.retention` — how many days of footage a recorder keeps.
* :mod:`hub.camera.base` — event flags with implicit ends, disk and retention events.
* :mod:`hub.camera.images` — plausible JPEG scenes for simulators.
"""
