"""The web console: the commune at a glance in a browser, served by the hub itself (issue 12).

* :mod:`hub.web.server`: the aiohttp application (sign-in, sessions, CSRF, security headers,
  language), started by ``anninh run`` and ``anninh demo``;
* :mod:`hub.web.sessions`: sessions in Fernet cookies, CSRF tokens, sign-in throttling;
* :mod:`hub.web.model`: what a page shows of a site or a device, shared by the first rendering
  and the live updates;
* :mod:`hub.web.live`: live updates over WebSocket;
* :mod:`hub.web.pages`: the page modules (overview, site, events, export ...), one module each.
"""
