"""Events: the timeline from the history, filtered by site, device, type and period, each line in
the reader's language; new events arrive live."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.api.contract import EVENTS
from hub.i18n import N_, _
from hub.web import model
from hub.web.pages import Page, access_of

if TYPE_CHECKING:
    from hub.web.server import WebConsole

PERIODS = {"1h": (N_("last hour"), 3600), "24h": (N_("last 24 hours"), 86400), "7d": (N_("last 7 days"), 7 * 86400),
           "30d": (N_("last 30 days"), 30 * 86400)}
LIMIT = 300


def query(path: Any, since: float, site: str | None, device: str | None, type: str | None,
          sites: frozenset[str] | None, limit: int = LIMIT) -> list[dict[str, Any]]:
    """The newest events matching, from the history database (its own read-only connection)."""
    q = "SELECT ts, type, device, site, data FROM events WHERE ts >= ?"
    args: list[Any] = [since]
    for column, value in (("site", site), ("device", device), ("type", type)):
        if value:
            q += f" AND {column} = ?"
            args.append(value)
    if sites is not None:
        q += f" AND site IN ({','.join('?' * len(sites))})" if sites else " AND 0"
        args += sorted(sites)
    q += " ORDER BY ts DESC LIMIT ?"
    args.append(limit)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return []
    try:
        rows = db.execute(q, args).fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.close()
    return [{**json.loads(r[4]), "ts": r[0], "type": r[1], "device": r[2], "site": r[3]} for r in rows]


def setup(router: web.UrlDispatcher, console: WebConsole) -> None:
    hub = console.hub

    async def events(request: web.Request) -> web.StreamResponse:
        access = access_of(request)
        if not access.events:
            return console.refuse(request, _("Your role does not read the event stream."))
        q = request.query
        site = q.get("site") or None
        device = q.get("device") or None
        type_ = q.get("type") or None
        period = q.get("period") or "24h"
        if period not in PERIODS:
            period = "24h"
        if site is not None and not access.sees_site(site):
            site = "-"  # matches nothing
        if type_ is not None and type_ not in EVENTS:
            type_ = None
        if hub.history is not None:
            hub.history.flush()  # the last second's events too (in the loop, as the hub's own flushes)
        path = hub.config.data_dir / "history.db"
        rows = await asyncio.to_thread(query, path, time.time() - PERIODS[period][1], site, device, type_,
                                       access.sites)
        lines = [model.event_line(hub, r) for r in rows]
        sites = [(s.id, s.name or s.id) for s in hub.config.sites if access.sees_site(s.id)]
        devices = [(f.id, f.name) for f in model.visible_devices(hub, access)]
        return console.render(request, "events.html", lines=lines, sites=sites, devices=devices,
                              types=sorted(EVENTS), periods=PERIODS, f_site=site or "", f_device=device or "",
                              f_type=type_ or "", f_period=period, live="events", live_site=site or "",
                              live_device=device or "", live_type=type_ or "")

    router.add_get("/events", events)


PAGE = Page(name="events", title=N_("Events"), path="/events", setup=setup, order=30,
            visible=lambda access: access.events)
