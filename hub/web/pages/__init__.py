"""The console's pages: one module each, found here at start.

A page module defines ``PAGE = Page(...)``: its name, its menu title (``N_``-marked), its path, where
it goes in the menu, who sees it in the menu, and ``setup(router, console)`` adding its routes. The
tickets and reports pages are such modules too: adding ``hub/web/pages/tickets.py`` is all it takes.
A handler checks the person's rights (``access_of(request)``, a :class:`hub.security.Access`) itself:
the menu only hides what they may not use.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.security import Access

if TYPE_CHECKING:
    from hub.web.server import WebConsole

log = logging.getLogger("hub.web")


ACCESS = web.RequestKey("anninh_access", Access)
"""The person's rights (set by the console's middleware for every page; absent before sign-in)."""


def access_of(request: web.Request) -> Access:
    """The signed-in person's rights (the middleware lets no page handler run without them)."""
    return request[ACCESS]


def _everyone(access: Access) -> bool:
    return True


@dataclass(frozen=True)
class Page:
    name: str
    title: str
    """``N_``-marked: translated when the menu is drawn"""
    path: str
    setup: Callable[[web.UrlDispatcher, WebConsole], None]
    order: int = 100
    menu: bool = True
    visible: Callable[[Access], bool] = _everyone


def load_pages() -> list[Page]:
    """Every ``PAGE`` of the modules of this package, by ``order``; a module that fails to import
    is logged and left out (the other pages still work)."""
    pages: list[Page] = []
    for info in pkgutil.iter_modules(__path__):
        try:
            module: Any = importlib.import_module(f"{__name__}.{info.name}")
        except Exception:
            log.exception("web page module %s failed to load and is left out", info.name)
            continue
        page = getattr(module, "PAGE", None)
        if isinstance(page, Page):
            pages.append(page)
    return sorted(pages, key=lambda p: (p.order, p.name))
