"""Overview: every site the person sees, as a card (and a map marker where the site has
coordinates), coloured by its worst problem."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from hub.i18n import N_
from hub.web import model
from hub.web.pages import Page, access_of

if TYPE_CHECKING:
    from hub.web.server import WebConsole


def setup(router: web.UrlDispatcher, console: WebConsole) -> None:
    hub = console.hub

    async def overview(request: web.Request) -> web.StreamResponse:
        access = access_of(request)
        cards = []
        markers = []
        for site in hub.config.sites:
            if not access.sees_site(site.id):
                continue
            card = model.site_card(hub, site.id, console.feed.by_site.get(site.id, ()),
                                   lights=access.sees_state("light"))
            card["name"] = site.name or site.id
            cards.append(card)
            if site.latitude is not None and site.longitude is not None:
                markers.append({"id": site.id, "name": card["name"], "lat": site.latitude, "lon": site.longitude,
                                "cls": card["cls"], "url": f"/site/{site.id}"})
        return console.render(request, "overview.html", cards=cards, markers=markers,
                              tile_url=hub.config.web.tile_url or "", live="overview", live_site="")

    router.add_get("/", overview)


PAGE = Page(name="overview", title=N_("Overview"), path="/", setup=setup, order=10)
