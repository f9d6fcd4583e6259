"""Maintenance tickets: the open tickets (and the recently closed ones) of the sites a person sees,
with their deadline and overdue marked; contractors (at their sites) and installers acknowledge and
resolve them from here.

An action goes to the ticket service's own per-user handler (the one behind
``bridge/request/ticket/<user>``), so the web and MQTT share its checks (role, sites, a note to
resolve), its ``ticket_*`` events and its audit rows naming the person. The page follows the
``ticket_*`` events live.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.i18n import N_, _, format_datetime
from hub.ops.tickets import (
    ACTING_ROLES,
    FAULT_NAMES,
    KIND_NAMES,
    RESOLUTION_NAMES,
    TICKET_REQUEST,
    Ticket,
    TicketRefused,
)
from hub.security import Access
from hub.web.model import site_name
from hub.web.pages import Page, access_of

if TYPE_CHECKING:
    from hub.web.server import WebConsole

log = logging.getLogger("hub.web")

SHOW = {"open": N_("open"), "closed": N_("closed recently"), "all": N_("open and closed recently")}
CLOSED_DAYS = 30
"""Closed tickets shown: those closed in the last days."""
MAX_CLOSED = 200


def may_act(access: Access, site: str | None) -> bool:
    """Whether the page offers the buttons (the ticket service checks again when they are used)."""
    return access.role in ACTING_ROLES and access.sees_site(site)


def setup(router: web.UrlDispatcher, console: WebConsole) -> None:
    hub = console.hub

    def service() -> Any:
        return getattr(hub, "tickets", None)

    def when(ts: float | None) -> str:
        return "" if ts is None else format_datetime(datetime.fromtimestamp(ts, hub.tz), "short")

    def row(t: Ticket, access: Access, now: float) -> dict[str, Any]:
        return {"id": t.id, "site": t.site or "", "site_name": site_name(hub, t.site) if t.site else "",
                "device": t.device, "device_name": _device_name(hub, t.device),
                "kind": _(KIND_NAMES.get(t.kind, t.kind)),
                "fault": _(FAULT_NAMES.get(t.fault, t.fault)), "detail": t.detail or "",
                "contractor": t.contractor or "", "opened": when(t.opened), "due": when(t.due),
                "overdue": t.overdue(now), "open": t.is_open, "acknowledged": when(t.acknowledged),
                "ack_by": t.ack_by or "", "resolved": when(t.resolved), "resolved_by": t.resolved_by or "",
                "resolution": _(RESOLUTION_NAMES.get(t.resolution or "", t.resolution or "")),
                "note": t.note or "", "act": t.is_open and may_act(access, t.site)}

    async def page(request: web.Request) -> web.StreamResponse:
        return show(request)

    def show(request: web.Request, error: str = "", status: int = 200) -> web.StreamResponse:
        """The list; ``error``: why the action just tried was refused (never taken from the URL)."""
        access = access_of(request)
        svc = service()
        if svc is None or svc.db is None:
            return console.refuse(request, _("Maintenance tickets are not handled by this hub."), status=503)
        q = request.query
        show = q.get("show", "open") if q.get("show", "open") in SHOW else "open"
        site = q.get("site") or None
        if site is not None and not access.sees_site(site):
            raise web.HTTPNotFound(text=_("No such site."))
        now = hub.clock.now().timestamp()
        tickets = [t for t in svc.db.tickets(site=site, closed_too=show != "open") if access.sees_site(t.site)]
        shown_open = [t for t in tickets if t.is_open] if show != "closed" else []
        closed = [t for t in tickets if not t.is_open and t.resolved is not None
                  and t.resolved >= now - CLOSED_DAYS * 86400] if show != "open" else []
        closed = sorted(closed, key=lambda t: t.resolved or 0, reverse=True)[:MAX_CLOSED]
        shown_open.sort(key=lambda t: t.due)
        sites = [(s.id, s.name or s.id) for s in hub.config.sites if access.sees_site(s.id)]
        return console.render(request, "tickets.html", open_rows=[row(t, access, now) for t in shown_open],
                              closed_rows=[row(t, access, now) for t in closed], show=show, shows=SHOW,
                              sites=sites, f_site=site or "", result=q.get("result", ""), error=error,
                              live="tickets", live_site=site or "", status=status)

    async def act(request: web.Request) -> web.StreamResponse:
        access = access_of(request)
        action = request.match_info["action"]
        try:
            number = int(request.match_info["ticket"])
        except ValueError:
            raise web.HTTPNotFound(text=_("No such ticket.")) from None
        handler = hub.requests.per_user(TICKET_REQUEST)
        if handler is None:
            raise web.HTTPServiceUnavailable(text=_("Maintenance tickets are not handled by this hub."))
        form = await request.post()
        body: dict[str, Any] = {"action": action, "ticket": number}
        note = str(form.get("note", "")).strip()[:500]
        if note:
            body["note"] = note
        try:
            await handler(body, user=access.user)
        except TicketRefused as exc:  # the service audited the refusal, naming the person
            svc = service()
            ticket = svc.db.get(number) if svc is not None and svc.db is not None else None
            if ticket is None or not access.sees_site(ticket.site):
                raise web.HTTPNotFound(text=_("No such ticket.")) from None
            if not may_act(access, ticket.site):
                raise web.HTTPForbidden(text=str(exc)) from None
            return show(request, str(exc)[:300], status=409)
        raise web.HTTPSeeOther("/tickets?" + _query(result=f"{action}:{number}"))

    router.add_get("/tickets", page)
    router.add_post(r"/tickets/{ticket:\d+}/{action:ack|resolve}", act)


def _query(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def _device_name(hub: Any, device: str) -> str:
    runner = hub.runners.get(device)
    return (runner.config.name or device) if runner is not None else device


PAGE = Page(name="tickets", title=N_("Tickets"), path="/tickets", setup=setup, order=40)
