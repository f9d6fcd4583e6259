"""Live updates: state changes reach open pages over a WebSocket, within a second.

The feed is a listener of the state store. A change only marks its device (and site) dirty; every
:data:`TICK` seconds the dirty ones are rendered, once per group of clients that see the same thing
(language, what their role and sites let them read, the page they have open), and the one encoded
message is queued to each client of the group. A client that does not read its socket has at most
:data:`MAX_QUEUED` messages waiting; past that it is told to reload (its page is then rebuilt whole),
so a stalled phone costs memory for a few messages, never for the stream.

Messages are JSON: ``{"rows": [{"id", "cls", "f": {cell: text}}], "sites": [...], "events": [...]}``;
the browser sets each cell with ``textContent`` (never as HTML).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from hub.api import AvailabilityChange, HubEvent, StateChange
from hub.core import Listener
from hub.i18n import use_language
from hub.security import Access
from hub.web import model

if TYPE_CHECKING:
    from hub.core import Hub

log = logging.getLogger("hub.web")

TICK = 0.05
"""Seconds between a first change and the message that carries it (changes in between are merged)."""
SLICE = 0.05
"""Seconds of rendering at most before the tick lets the loop serve something else (a command waits
no longer for the console than for one of a busy hub's own bursts; smaller slices, measured with
bench_web's flat-out load, stretched a tick over many bursts: 10 ms slices gave p99 1.0 s)."""
MAX_QUEUED = 50
BUFFERED = 64 * 1024
"""Bytes a reader's socket may hold unsent before its messages go through its own writer task (which
waits for the socket to drain): below that, the tick writes the shared frame to the socket itself."""
MAX_EVENTS = 50
"""Events carried by one message at most (the newest)."""


@dataclass(frozen=True)
class View:
    """What a page shows live: ``overview``, ``site`` (one site), ``events`` (filtered), ``export``,
    ``tickets`` (the ``ticket_*`` events of the person's sites, or of one)."""

    page: str
    site: str | None = None
    device: str | None = None
    type: str | None = None


@dataclass(eq=False)
class Client:
    ws: web.WebSocketResponse
    access: Access
    lang: str
    view: View
    sid: str = ""
    """the session's id: its sockets close when it signs out"""
    queue: list[str] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    transport: asyncio.Transport | None = None
    """the connection, written directly by the tick while the reader keeps up (see :meth:`LiveFeed.send`)"""
    busy: bool = False
    """its writer task is sending: what comes next waits in the queue, behind what it sends"""

    def group(self) -> tuple[Any, ...]:
        a = self.access
        return (self.lang, a.sites, a.state_kinds, a.events, self.view,
                a.user if self.view.page == "export" else None)


@dataclass
class _Tick:
    groups: list[list[Client]]
    by_site: dict[str | None, list[str]]
    sites: set[str]
    events: list[dict[str, Any]]


class LiveFeed:
    """Dirty devices and sites, new events; rendered and sent every :data:`TICK`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.clients: set[Client] = set()
        self.seen: dict[str, datetime] = {}
        """device -> when it was last seen: its last state change, or when it came online or went offline"""
        self.by_site: dict[str | None, list[str]] = {}
        self._dirty_devices: set[str] = set()
        self._dirty_sites: set[str] = set()
        self._events: list[dict[str, Any]] = []
        self._scheduled: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent = 0

    def install(self) -> None:
        self._loop = asyncio.get_running_loop()
        for device_id, runner in self.hub.runners.items():
            self.by_site.setdefault(runner.config.site, []).append(device_id)
        self.hub.add_listener(Listener(on_state=self._on_state, on_availability=self._on_availability,
                                       on_event=self._on_event, on_site=self._on_site))

    # ---------------------------------------------------------------- the store's listener
    def _schedule(self) -> None:
        if self._scheduled is None and self.clients and self._loop is not None:
            self._scheduled = self._loop.call_later(TICK, self._tick)

    def _tick(self) -> None:
        self._scheduled = None
        if self._flushing is not None and not self._flushing.done():  # the last one is still sending
            self._schedule()
            return
        assert self._loop is not None
        work = self._collect()
        if not self._send_some(work):  # the first slice at once, the rest in a task that yields between
            self._flushing = self._loop.create_task(self._send_rest(work), name="web-live-flush")

    def _mark(self, device_id: str, site: str | None) -> None:
        if not self.clients:  # nobody watching: nothing to send later either (a page opens with the state)
            return
        self._dirty_devices.add(device_id)
        if site is not None:
            self._dirty_sites.add(site)
        self._schedule()

    def _on_state(self, change: StateChange) -> None:
        self.seen[change.device_id] = change.time
        if not self.clients:
            return
        self._dirty_devices.add(change.device_id)
        if change.site is not None and not model.SUMMARY_FIELDS.isdisjoint(change.changed):
            self._dirty_sites.add(change.site)  # only what a site's card counts recomputes the card
        self._schedule()

    def _on_availability(self, change: AvailabilityChange) -> None:
        # going offline is noticed within a poll of the last answer: that is when it was last seen
        self.seen[change.device_id] = change.time
        self._mark(change.device_id, change.site)

    def _on_site(self, site: str, state: Mapping[str, Any]) -> None:
        if not self.clients:
            return
        self._dirty_sites.add(site)
        self._schedule()

    def _on_event(self, event: HubEvent) -> None:
        if not self.clients:
            return
        self._events.append({"time": event.time, "type": event.type, "device": event.device, "site": event.site,
                             **event.data})
        del self._events[:-MAX_EVENTS]
        self._schedule()

    # ---------------------------------------------------------------- rendering
    def _collect(self) -> _Tick:
        """What changed since the last tick, and who is to be told (grouped)."""
        devices, self._dirty_devices = self._dirty_devices, set()
        sites, self._dirty_sites = self._dirty_sites, set()
        events, self._events = self._events, []
        groups: dict[tuple[Any, ...], list[Client]] = {}
        for client in self.clients:
            groups.setdefault(client.group(), []).append(client)
        where = self.hub.store.sites
        by_site: dict[str | None, list[str]] = {}
        for device_id in devices:
            by_site.setdefault(where.get(device_id), []).append(device_id)
        return _Tick(list(groups.values()), by_site, sites, events)

    def _send_some(self, work: _Tick) -> bool:
        """Render and queue groups for :data:`SLICE` seconds at most; True when all are done."""
        assert self._loop is not None
        slice_end = self._loop.time() + SLICE
        while work.groups:
            members = work.groups.pop()
            first = members[0]
            with use_language(first.lang):
                message = self.render(first.access, first.view, work.by_site, work.sites, work.events)
            if message is not None:
                self.send(members, json.dumps(message, ensure_ascii=False, separators=(",", ":")))
            if self._loop.time() > slice_end:
                return not work.groups
        return True

    async def _send_rest(self, work: _Tick) -> None:
        while not self._send_some(work):
            await asyncio.sleep(0)  # let commands and polls through, then go on

    def send(self, members: list[Client], text: str) -> None:
        """One group's message to each of its readers. A server's WebSocket frame is not masked (RFC 6455,
        5.1), so it is the same bytes for every reader: it is built once and written to each reader's
        connection from here, without a task per reader; a reader whose socket is behind, or whose
        writer task is still sending, gets it through :meth:`queue` (in order, with the reload limit)."""
        frame = b""
        for client in members:
            t = client.transport
            if (client.closed or client.busy or client.queue or t is None or t.is_closing()
                    or client.ws.closed or t.get_write_buffer_size() > BUFFERED):
                self.queue(client, text)
                continue
            if not frame:
                frame = text_frame(text.encode())
            t.write(frame)
            self.sent += 1

    def queue(self, client: Client, text: str) -> None:
        if client.closed:
            return
        if len(client.queue) >= MAX_QUEUED:
            client.queue[:] = ['{"reload":true}']
        else:
            client.queue.append(text)
        client.wake.set()

    def render(self, access: Access, view: View, devices: Mapping[str | None, list[str]], sites: set[str],
               events: list[dict[str, Any]]) -> dict[str, Any] | None:
        """One group's message: ``devices`` are the changed ones by site."""
        hub = self.hub
        out: dict[str, Any] = {}
        if view.page in ("overview", "site"):
            shown = [s for s in sites if access.sees_site(s) and (view.site is None or s == view.site)]
            if shown:
                lights = access.sees_state("light")
                out["sites"] = [model.site_card(hub, s, self.by_site.get(s, ()), lights=lights) for s in shown]
        if view.page == "site" and view.site is not None:
            rows = []
            for device_id in devices.get(view.site, ()) if access.sees_site(view.site) else ():
                rows.append(model.device_row(hub, access, model.device_facts(hub, device_id),
                                             self.seen.get(device_id)))
            if rows:
                out["rows"] = rows
        wanted = [e for e in events if self._shows(access, view, e)]
        if wanted:
            out["events"] = [model.event_line(hub, e) for e in wanted]
        return out or None

    @staticmethod
    def _shows(access: Access, view: View, event: Mapping[str, Any]) -> bool:
        if view.page == "export":
            return str(event.get("type", "")).startswith("export_") and (
                access.user is None or event.get("user") == access.user)
        if view.page == "tickets":  # contractors read their sites' tickets, not the event stream
            return str(event.get("type", "")).startswith("ticket_") and access.sees_site(event.get("site")) and (
                view.site is None or event.get("site") == view.site)
        if not access.events or not access.sees_site(event.get("site")):
            return False
        if view.site is not None and event.get("site") != view.site:
            return False
        if view.device is not None and event.get("device") != view.device:
            return False
        return view.type is None or event.get("type") == view.type

    # ---------------------------------------------------------------- a client's socket
    async def serve(self, request: web.Request, access: Access, lang: str, view: View,
                    sid: str = "") -> web.WebSocketResponse:
        # no permessage-deflate: browsers ask for it, and it would compress the one shared message once
        # per reader (for large ones in a thread each), where sending it as it is costs a write
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096, compress=False)
        await ws.prepare(request)
        client = Client(ws, access, lang, view, sid, transport=request.transport)
        self.clients.add(client)
        writer = asyncio.get_running_loop().create_task(self._write(client), name="web-live-writer")
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break  # the browser sends nothing we act on
        finally:
            client.closed = True
            self.clients.discard(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _write(self, client: Client) -> None:
        ws = client.ws
        try:
            while not ws.closed:
                await client.wake.wait()
                client.wake.clear()
                client.busy = True
                while client.queue and not client.closed:
                    await ws.send_str(client.queue.pop(0))
                    self.sent += 1
                client.busy = False
        except (ConnectionError, RuntimeError):
            pass  # the page was closed mid-send

    async def drop(self, sid: str) -> None:
        """Close the sockets of a session that signed out."""
        for client in [c for c in self.clients if c.sid == sid]:
            client.closed = True
            with contextlib.suppress(Exception):
                await client.ws.close()

    async def close(self) -> None:
        for client in list(self.clients):
            client.closed = True
            with contextlib.suppress(Exception):
                await client.ws.close()
        if self._scheduled is not None:
            self._scheduled.cancel()
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing


def text_frame(payload: bytes) -> bytes:
    """An unfragmented, unmasked WebSocket text frame (RFC 6455, 5.2): FIN + opcode 1, then the length
    in 7 bits, or 126 and 16 bits, or 127 and 64 bits."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload
