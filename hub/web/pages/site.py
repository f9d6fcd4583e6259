"""A site: its devices with their state, availability, last answer, offline cause, UPS, recorder
disks and retention, image health with a snapshot fetched through the hub, and the lights' buttons
for those whose role may switch them (through the hub's command service, as an MQTT ``/set/<user>``:
checked, carried out and audited under the person's name)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.api import DeviceError
from hub.core.runner import describe_error
from hub.i18n import N_, _
from hub.web import model
from hub.web.pages import Page, access_of, events

if TYPE_CHECKING:
    from hub.web.server import WebConsole

LIGHT_ACTIONS: dict[str, dict[str, Any]] = {"on": {"state": "ON"}, "off": {"state": "OFF"}, "auto": {"mode": "auto"}}
LATEST = 20
"""The site's events shown when its page opens."""
SNAPSHOT_CACHE_S = 10.0
"""A camera is asked for a picture at most this often, however many pages show it."""
log = logging.getLogger("hub.web")
RESULTS = {"ok": N_("Done: the light follows your command."),
           "failed": N_("The light did not take the command (see the events).")}


def setup(router: web.UrlDispatcher, console: WebConsole) -> None:
    hub = console.hub
    snapshots: dict[str, tuple[float, bytes]] = {}
    failed: set[str] = set()

    def site_or_404(request: web.Request) -> str:
        site = request.match_info["site"]
        access = access_of(request)
        if hub.config.site(site) is None or not access.sees_site(site):
            raise web.HTTPNotFound(text=_("No such site."))
        return site

    async def site_page(request: web.Request) -> web.StreamResponse:
        site = site_or_404(request)
        access = access_of(request)
        rows = []
        for facts in model.visible_devices(hub, access, site):
            row = model.device_row(hub, access, facts, console.feed.seen.get(facts.id))
            row.update(name=facts.name, kind=facts.kind, kind_text=_(model.KIND_TEXT.get(facts.kind, "Device")),
                       buttons=access.commands(site, facts.switchable) and facts.kind == "light",
                       snapshot=access.snapshot and facts.kind == "camera")
            rows.append(row)
        card = model.site_card(hub, site, console.feed.by_site.get(site, ()), lights=access.sees_state("light"))
        lines = []
        if access.events:  # the site's latest events, then new ones live
            rows_ = await asyncio.to_thread(events.query, hub.config.data_dir / "history.db", 0.0, site, None, None,
                                            access.sites, LATEST)
            lines = [model.event_line(hub, e) for e in rows_]
        result = request.query.get("result")
        return console.render(request, "site.html", site=site, site_name=model.site_name(hub, site), card=card,
                              rows=rows, lines=lines, result=_(RESULTS[result]) if result in RESULTS else None,
                              live="site", live_site=site)

    async def light(request: web.Request) -> web.StreamResponse:
        site = site_or_404(request)
        access = access_of(request)
        device_id = request.match_info["device"]
        runner = hub.runners.get(device_id)
        form = await request.post()
        action = str(form.get("action", ""))
        if runner is None or runner.config.site != site or action not in LIGHT_ACTIONS:
            raise web.HTTPNotFound(text=_("No such light or action."))
        payload = dict(LIGHT_ACTIONS[action])
        facts = model.device_facts(hub, device_id)
        if not access.commands(site, facts.switchable):
            # refused here, and audited like a refused MQTT command of this person
            hub.reject_command(device_id, f"role {access.role} may not switch lights here (web console)",
                               user=access.user, payload=payload, source="web", kind="not_allowed")
            return console.refuse(request, _("Your role may not switch lights."))
        ok = await hub.command(device_id, payload, source="web", user=access.user)
        raise web.HTTPSeeOther(f"/site/{site}?result={'ok' if ok else 'failed'}")

    async def snapshot(request: web.Request) -> web.StreamResponse:
        access = access_of(request)
        device_id = request.match_info["device"]
        runner = hub.runners.get(device_id)
        if runner is None or not access.sees_site(runner.config.site) or not access.snapshot:
            raise web.HTTPNotFound(text=_("No such camera."))
        now = time.monotonic()
        cached = snapshots.get(device_id)
        if cached is None or now - cached[0] > SNAPSHOT_CACHE_S:
            try:
                image = await hub.view.snapshot(device_id)
            except (DeviceError, TimeoutError, NotImplementedError, OSError) as exc:
                if device_id not in failed:  # once per camera, not per page view
                    failed.add(device_id)
                    log.info("snapshot of %s for the web console failed: %s", device_id, describe_error(exc))
                raise web.HTTPServiceUnavailable(text=_("No picture now.")) from None
            cached = (now, image)
            snapshots[device_id] = cached
        return web.Response(body=cached[1], content_type="image/jpeg")

    router.add_get("/site/{site}", site_page)
    router.add_post("/site/{site}/light/{device}", light)
    router.add_get("/snapshot/{device}.jpg", snapshot)


PAGE = Page(name="site", title=N_("Site"), path="/", setup=setup, order=20, menu=False)
