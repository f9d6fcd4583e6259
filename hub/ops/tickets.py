"""Maintenance tickets (issue 11, item 2): a fault that lasts opens a ticket for the contractor, with
the contract's deadline; it closes by itself once the fault is gone, or when the contractor resolves it.

A core component of the hub (not a plugin), fed by the state store's listeners:

* **faults** (codes in :data:`FAULTS`), one per (device, fault), for cameras, recorders, UPS units and
  lights: ``offline`` (offline, and not because its site lost power: the site's ``power`` is ``lost``,
  a cut is suspected there, or the ``offline_cause`` rule says ``site_power_lost``), the image faults
  of image health (the camera state's ``image`` list), a recorder's ``disk_error`` / ``disk_full``
  (its ``disks``) and ``retention_low`` (``retention_days`` under ``retention_target_days``), a UPS's
  ``replace_battery``, a light's ``relay_mismatch`` (the event; gone at the next command carried out
  without one). While a device is offline its other faults are unknown: they neither open nor close
  a ticket, and while its site has no power its ``offline`` is unknown too.
* a fault present for ``tickets.open_after`` opens one ticket (``ticket_opened``); due = opened + the
  contract's deadline for the device's kind (the contractor whose ``sites`` hold the device's site;
  without one, the default deadlines); ``ticket_overdue`` once at due (``overdue_sent`` is stored, so
  a restart does not repeat it); gone for ``tickets.close_after``: closed as ``recovered``
  (``ticket_resolved``), unless a contractor resolved it first with a note.
* a contractor (at their sites) or an installer acknowledges or resolves a ticket with a request on
  ``<base>/bridge/request/ticket/<user>`` (the broker's ACL lets only that user publish there; the hub
  checks role and sites again), or with ``anninh tickets ack|resolve`` (:mod:`hub.ops.tickets_cli`).
* the open tickets of each site are retained on ``<base>/site/<site>/tickets``.

Storage: the ``tickets`` table in the history database (``history.db``; SQLite WAL, its own
connection, each change committed at once, so a kill -9 keeps them; the ``ticket_opened`` … events
are flushed into the history right after), ``ticket_faults`` (when each fault not yet old enough for
a ticket began: a restart does not reset its count), and a ``ticket_requests``
table through which the command line hands a running hub its actions: the hub holds an exclusive
``flock`` on ``<data_dir>/tickets.lock`` while it runs; ``anninh tickets ack`` that cannot take it
queues the action there and waits for the hub's answer (the hub reads the queue every second), so
the events, the retained list and the audit come from the one process that owns the tickets. With
no hub running the command line takes the lock and carries the action out itself, writing the same
events and audit rows into the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hub.api import AvailabilityChange, HubEvent, StateChange
from hub.config import Config, DeadlinesConfig
from hub.core.state import Listener
from hub.i18n import N_, _, tr
from hub.storage import private_file

log = logging.getLogger("hub.tickets")

KINDS = ("camera", "recorder", "ups", "light")
FAULTS = ("offline", "image_blurry", "image_covered", "scene_moved", "image_dark", "stream_down",
          "disk_error", "disk_full", "retention_low", "replace_battery", "relay_mismatch")
IMAGE_FAULTS = {"blurry": "image_blurry", "covered": "image_covered", "moved": "scene_moved",
                "dark": "image_dark", "no_signal": "stream_down"}
"""image health's problem (the camera state's ``image`` list) -> the fault."""
EVENT_FAULTS = ("relay_mismatch",)
"""Faults known from an event only (no state field): kept while their ticket is open across a restart."""
FAULT_NAMES = {
    "offline": N_("offline"), "image_blurry": N_("blurred picture"), "image_covered": N_("lens covered"),
    "scene_moved": N_("camera moved"), "image_dark": N_("dark picture by day"), "stream_down": N_("no picture"),
    "disk_error": N_("disk error"), "disk_full": N_("disk full"), "retention_low": N_("footage kept under target"),
    "replace_battery": N_("UPS battery to replace"), "relay_mismatch": N_("light relay does not follow"),
}
KIND_NAMES = {"camera": N_("camera"), "recorder": N_("recorder"), "ups": N_("UPS"), "light": N_("light")}
FAULT_FIELDS = frozenset({"image", "disks", "retention_days", "retention_target_days", "replace_battery",
                          "offline_cause"})
"""The state fields :meth:`TicketService.faults` reads (a state change without them changes no fault)."""
ACTING_ROLES = ("contractor", "installer")
TICKET_REQUEST = "ticket"
TICK = 1.0
"""Seconds between two checks of the deadlines (open_after, close_after, due) and of the CLI queue."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, site TEXT, kind TEXT NOT NULL, fault TEXT NOT NULL,
    contractor TEXT, opened REAL NOT NULL, due REAL NOT NULL, acknowledged REAL, ack_by TEXT, resolved REAL,
    resolution TEXT, resolved_by TEXT, note TEXT, overdue_sent INTEGER NOT NULL DEFAULT 0, detail TEXT);
CREATE INDEX IF NOT EXISTS tickets_open ON tickets (resolved, site);
CREATE TABLE IF NOT EXISTS ticket_requests (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, ticket INTEGER NOT NULL, action TEXT NOT NULL, user TEXT,
    note TEXT, done INTEGER NOT NULL DEFAULT 0, error TEXT);
CREATE INDEX IF NOT EXISTS ticket_requests_done ON ticket_requests (done);
CREATE TABLE IF NOT EXISTS ticket_faults (
    device TEXT NOT NULL, fault TEXT NOT NULL, since REAL NOT NULL, PRIMARY KEY (device, fault));
"""


class TicketRefused(Exception):
    """The action is not allowed or not valid; the message says why (in the current language)."""


@dataclass
class Ticket:
    id: int
    device: str
    site: str | None
    kind: str
    fault: str
    contractor: str | None
    opened: float
    due: float
    acknowledged: float | None = None
    ack_by: str | None = None
    resolved: float | None = None
    resolution: str | None = None
    resolved_by: str | None = None
    note: str | None = None
    overdue_sent: int = 0
    detail: str | None = None

    @property
    def is_open(self) -> bool:
        return self.resolved is None

    def overdue(self, now: float) -> bool:
        return self.resolved > self.due if self.resolved is not None else now >= self.due

    def as_json(self, tz: ZoneInfo, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "device": self.device, "site": self.site, "kind": self.kind,
                               "fault": self.fault, "contractor": self.contractor,
                               "opened": iso(self.opened, tz), "due": iso(self.due, tz),
                               "acknowledged": iso(self.acknowledged, tz), "ack_by": self.ack_by,
                               "overdue": self.overdue(now), "detail": self.detail}
        if not self.is_open:
            out.update(resolved=iso(self.resolved, tz), resolution=self.resolution, resolved_by=self.resolved_by,
                       note=self.note)
        return out


_COLUMNS = tuple(f.name for f in fields(Ticket))


def iso(ts: float | None, tz: ZoneInfo) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def history_path(config: Config) -> Path:
    """The history database, which holds the tickets too (hub/core/storage.py opens the same file)."""
    return config.data_dir / "history.db"


def lock_path(config: Config) -> Path:
    return config.data_dir / "tickets.lock"


class TicketDB:
    """The ``tickets`` and ``ticket_requests`` tables, on their own connection to the history database
    (WAL; every change is its own committed transaction)."""

    def __init__(self, path: Path) -> None:
        private_file(path)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _rows(self, where: str = "", args: tuple[Any, ...] = ()) -> list[Ticket]:
        rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM tickets {where} ORDER BY id", args).fetchall()
        return [Ticket(*r) for r in rows]

    def get(self, ticket_id: int) -> Ticket | None:
        found = self._rows("WHERE id = ?", (ticket_id,))
        return found[0] if found else None

    def open_tickets(self) -> list[Ticket]:
        return self._rows("WHERE resolved IS NULL")

    def tickets(self, site: str | None = None, closed_too: bool = False) -> list[Ticket]:
        where, args = [], []
        if not closed_too:
            where.append("resolved IS NULL")
        if site is not None:
            where.append("site = ?")
            args.append(site)
        return self._rows(("WHERE " + " AND ".join(where)) if where else "", tuple(args))

    def insert(self, t: Ticket) -> Ticket:
        values = asdict(t)
        del values["id"]
        cur = self._db.execute(f"INSERT INTO tickets ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                               tuple(values.values()))
        t.id = int(cur.lastrowid or 0)
        return t

    def save(self, t: Ticket) -> None:
        values = asdict(t)
        del values["id"]
        self._db.execute(f"UPDATE tickets SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                         (*values.values(), t.id))

    # ---------------------------------------------------------------- faults not yet old enough for a ticket
    def fault_since(self) -> dict[tuple[str, str], float]:
        return {(d, f): since for d, f, since in self._db.execute("SELECT device, fault, since FROM ticket_faults")}

    def set_fault_since(self, changes: Mapping[tuple[str, str], float | None]) -> None:
        """Starts (a time) and ends (None) of faults, in one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            for (device, fault), since in changes.items():
                if since is None:
                    self._db.execute("DELETE FROM ticket_faults WHERE device = ? AND fault = ?", (device, fault))
                else:
                    self._db.execute("INSERT OR REPLACE INTO ticket_faults VALUES (?, ?, ?)", (device, fault, since))

    # ---------------------------------------------------------------- the command line's queue
    def queue(self, ticket_id: int, action: str, user: str | None, note: str | None) -> int:
        cur = self._db.execute("INSERT INTO ticket_requests (ts, ticket, action, user, note) VALUES (?,?,?,?,?)",
                               (time.time(), ticket_id, action, user, note))
        return int(cur.lastrowid or 0)

    def pending(self) -> list[tuple[int, int, str, str | None, str | None]]:
        return [tuple(r) for r in self._db.execute(
            "SELECT id, ticket, action, user, note FROM ticket_requests WHERE done = 0 ORDER BY id")]

    def finish(self, request_id: int, error: str | None) -> None:
        self._db.execute("UPDATE ticket_requests SET done = 1, error = ? WHERE id = ?", (error, request_id))

    def outcome(self, request_id: int) -> tuple[bool, str | None]:
        """(done, error) of a queued request."""
        row = self._db.execute("SELECT done, error FROM ticket_requests WHERE id = ?", (request_id,)).fetchone()
        return (True, _("the request is gone")) if row is None else (bool(row[0]), row[1])

    def withdraw(self, request_id: int) -> bool:
        """Take back a request the hub has not carried out; False when it already did."""
        return self._db.execute("DELETE FROM ticket_requests WHERE id = ? AND done = 0",
                                (request_id,)).rowcount == 1


class HubLock:
    """The exclusive ``flock`` a running hub holds on ``<data_dir>/tickets.lock`` (dropped by the kernel
    when the process dies, kill -9 included)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# -------------------------------------------------------------------- the actions (hub and command line)
def parse_ticket_id(value: Any) -> int:
    """The ticket's number: a JSON integer (strict, as commands are: ``"12"`` is not 12)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TicketRefused(_("give the ticket's number"))
    return value


def check_user(config: Config, user: str | None, site: str | None) -> None:
    """Raise :class:`TicketRefused` unless ``user`` may act on a ticket of ``site``: a contractor at
    their sites, or an installer. Without ``users:`` in the config there are no roles to check."""
    if not config.users:
        return
    if user is None:
        raise TicketRefused(_("send the request on bridge/request/ticket/<your user name>"))
    account = config.user(user)
    if account is None:
        raise TicketRefused(tr("unknown user {user}", user=repr(user[:32])))
    if account.role not in ACTING_ROLES:
        raise TicketRefused(tr("role {role} may not act on tickets (contractors and installers may)",
            role=account.role))
    if account.role == "contractor" and account.sites is not None and site not in account.sites:
        raise TicketRefused(tr("user {user} may not act on tickets of this site", user=user))


def act(db: TicketDB, config: Config, ticket_id: int, action: str, user: str | None, note: str | None,
        now: float) -> Ticket:
    """Acknowledge or resolve a ticket (checked, saved). Raises :class:`TicketRefused`."""
    if action not in ("ack", "resolve"):
        raise TicketRefused(tr("unknown action {action} (ack or resolve)", action=repr(str(action)[:16])))
    ticket = db.get(ticket_id)
    if ticket is None:
        raise TicketRefused(tr("no ticket #{ticket}", ticket=ticket_id))
    check_user(config, user, ticket.site)
    if not ticket.is_open:
        raise TicketRefused(tr("ticket #{ticket} is already closed", ticket=ticket_id))
    note = note.strip()[:500] if isinstance(note, str) and note.strip() else None
    if action == "ack":
        if ticket.acknowledged is not None:
            raise TicketRefused(tr("ticket #{ticket} is already acknowledged by {user}",
                ticket=ticket_id, user=ticket.ack_by))
        ticket.acknowledged, ticket.ack_by = now, user
        ticket.note = note or ticket.note
    else:
        if note is None:
            raise TicketRefused(_("resolving a ticket needs a note saying what was done"))
        ticket.resolved, ticket.resolution, ticket.resolved_by, ticket.note = now, "resolved", user, note
    db.save(ticket)
    return ticket


def action_event(ticket: Ticket, action: str, tz: ZoneInfo) -> tuple[str, dict[str, Any]]:
    """The event an action produces: its type and fields (besides device and site)."""
    if action == "ack":
        return "ticket_acknowledged", {"ticket": ticket.id, "by": ticket.ack_by, "note": ticket.note}
    return "ticket_resolved", closed_fields(ticket, tz)


def closed_fields(t: Ticket, tz: ZoneInfo) -> dict[str, Any]:
    return {"ticket": t.id, "fault": t.fault, "kind": t.kind, "resolution": t.resolution, "opened": iso(t.opened, tz),
            "due": iso(t.due, tz), "within_deadline": t.resolved is not None and t.resolved <= t.due,
            "by": t.resolved_by, "note": t.note if t.resolution == "resolved" else None, "contractor": t.contractor}


RESOLUTION_NAMES = {"recovered": N_("recovered"), "resolved": N_("resolved")}


def ticket_message(type: str, device: str, site: str | None, data: Mapping[str, Any]) -> str:
    """The event's sentence in the current language, with the fault and resolution in words and the
    times as ``dd/mm/yyyy HH:MM`` (the template of :mod:`hub.api.contract` with the codes spelt out)."""
    from hub.api.contract import event_message

    words = dict(data)
    if "fault" in words:
        words["fault"] = _(FAULT_NAMES.get(words["fault"], words["fault"]))
    if "resolution" in words:
        words["resolution"] = _(RESOLUTION_NAMES.get(words["resolution"], words["resolution"]))
    for key in ("due", "opened"):
        if isinstance(words.get(key), str):
            with contextlib.suppress(ValueError):
                words[key] = datetime.fromisoformat(words[key]).strftime("%d/%m/%Y %H:%M")
    return event_message(type, {"device": device, "site": site, **words})


def audit_form(ticket_id: Any, action: Any, note: Any) -> dict[str, Any]:
    return {"ticket": {"action": str(action)[:16], "id": ticket_id if isinstance(ticket_id, int) else None,
                       "note": str(note)[:500] if note is not None else None}}


# -------------------------------------------------------------------- the hub's component
class TicketService:
    """Watches the faults, opens and closes tickets, answers the contractors' requests."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.config: Config = hub.config
        self.open_after = self.config.tickets.open_after
        self.close_after = self.config.tickets.close_after
        self.db: TicketDB | None = None
        self.lock = HubLock(lock_path(self.config))
        self.open: dict[tuple[str, str], Ticket] = {}
        self.present_since: dict[tuple[str, str], float] = {}
        self.absent_since: dict[tuple[str, str], float] = {}
        self.restored: dict[tuple[str, str], float] = {}
        """Faults present when the hub last stopped, with their start: one still there when its device
        reports again keeps its start (a restart does not reset the open_after count)."""
        self._since_dirty: dict[tuple[str, str], float | None] = {}
        self.mismatch: set[str] = set()
        self._mismatch_now: set[str] = set()
        self.task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle
    def install(self) -> None:
        hub = self.hub
        if not self.lock.acquire():
            log.warning("another hub holds %s: tickets are not handled by this one", self.lock.path)
            return
        self.db = TicketDB(history_path(self.config))
        self.restored = self.db.fault_since()
        for t in self.db.open_tickets():
            self.open[(t.device, t.fault)] = t
            if t.fault in EVENT_FAULTS:
                self.mismatch.add(t.device)
        hub.add_listener(Listener(on_state=self._on_state, on_availability=self._on_availability,
                                  on_event=self._on_event, on_site=self._on_site))
        hub.requests.register(TICKET_REQUEST, lambda body: self.request(body, None))
        hub.requests.register_per_user(TICKET_REQUEST, self.request)
        bridge = getattr(hub, "mqtt_access", None)
        if bridge is not None and hasattr(bridge, "republishers"):
            bridge.republishers.append(self.publish_all)
        self.task = hub.create_task(self._run(), name="tickets")

    async def _run(self) -> None:
        try:
            await self.hub.started.wait()
            self.publish_all()
            while True:
                try:
                    self.tick()
                except Exception:
                    log.exception("ticket check failed")
                await asyncio.sleep(TICK)
        finally:
            if self.db is not None:
                if self._since_dirty:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.set_fault_since(self._since_dirty)
                self.db.close()
                self.db = None
            self.lock.release()

    # ---------------------------------------------------------------- faults
    def _kind(self, device: str) -> str | None:
        runner = self.hub.runners.get(device)
        kind = runner.kind if runner is not None else None
        return kind if kind in KINDS else None

    def _power_cut(self, device: str) -> bool:
        store = self.hub.store
        if store.state(device).get("offline_cause") == "site_power_lost":
            return True
        site = store.sites.get(device)
        if site is None:
            return False
        s = store.site_state(site)
        return s.get("power") == "lost" or bool(s.get("suspected_power_loss"))

    def faults(self, device: str) -> dict[str, bool]:
        """The device's faults whose presence is known now: fault -> present."""
        kind = self._kind(device)
        store = self.hub.store
        available = store.availability.get(device)
        if kind is None or available is None:
            return {}
        if not available:
            return {} if self._power_cut(device) else {"offline": True}
        out = {"offline": False}
        state = store.state(device)
        image = state.get("image")
        if isinstance(image, list):
            for problem, fault in IMAGE_FAULTS.items():
                out[fault] = problem in image
        if kind == "recorder":
            from hub.camera.base import EMPTY_DISK, GOOD_DISK

            disks = state.get("disks")
            if isinstance(disks, list):
                statuses = [(str(d.get("status") or "unknown").lower(), d.get("free")) for d in disks
                            if isinstance(d, Mapping)]
                out["disk_error"] = any(s not in GOOD_DISK and s not in EMPTY_DISK for s, _f in statuses)
                out["disk_full"] = any(s in GOOD_DISK and f == 0 for s, f in statuses)
            days, target = state.get("retention_days"), state.get("retention_target_days")
            if isinstance(days, int | float) and isinstance(target, int | float):
                out["retention_low"] = days < target
        elif kind == "ups":
            rb = state.get("replace_battery")
            if isinstance(rb, bool):
                out["replace_battery"] = rb
        elif kind == "light":
            out["relay_mismatch"] = device in self.mismatch
        return out

    def evaluate(self, device: str) -> None:
        if self.db is None:
            return
        now = self.hub.clock.now().timestamp()
        known = self.faults(device)
        for fault in FAULTS:
            key = (device, fault)
            present = known.get(fault)
            if present:
                self.absent_since.pop(key, None)
                if key not in self.present_since:
                    self._since(key, self.restored.pop(key, now))
            elif present is False:
                self.restored.pop(key, None)
                self._since(key, None)
                if key in self.open:
                    self.absent_since.setdefault(key, now)
            else:  # unknown: neither opens nor closes
                self._since(key, None)
                self.absent_since.pop(key, None)

    def _since(self, key: tuple[str, str], since: float | None) -> None:
        """Start (a time) or forget (None) a fault's count towards open_after, written to the database
        with the next :meth:`tick` (one transaction a second, not one per change)."""
        if since is None:
            if self.present_since.pop(key, None) is None:
                return
        else:
            self.present_since[key] = since
        self._since_dirty[key] = since

    def _on_state(self, change: StateChange) -> None:
        if not FAULT_FIELDS.isdisjoint(change.changed):  # motion and the like: nothing to evaluate
            self.evaluate(change.device_id)

    def _on_availability(self, change: AvailabilityChange) -> None:
        self.evaluate(change.device_id)

    def _on_site(self, site: str, state: Mapping[str, Any]) -> None:
        for device, s in self.hub.store.sites.items():
            if s == site:
                self.evaluate(device)

    def _on_event(self, event: HubEvent) -> None:
        if event.device is None:
            return
        if event.type == "relay_mismatch":
            self.mismatch.add(event.device)
            self._mismatch_now.add(event.device)
            self.evaluate(event.device)
        elif event.type == "command_failed":
            self._mismatch_now.discard(event.device)
        elif event.type == "command" and event.device in self.mismatch:
            # the command event follows the relay_mismatch of the same command; a command without one
            # means the relay follows again
            if event.device in self._mismatch_now:
                self._mismatch_now.discard(event.device)
            else:
                self.mismatch.discard(event.device)
                self.evaluate(event.device)

    # ---------------------------------------------------------------- the clock
    def tick(self) -> None:
        """Open, close and mark overdue what is due now; carry out the command line's queue."""
        db = self.db
        if db is None:
            return
        now = self.hub.clock.now().timestamp()
        if self._since_dirty:
            dirty, self._since_dirty = self._since_dirty, {}
            db.set_fault_since(dirty)
        for key, since in list(self.present_since.items()):
            if key not in self.open and now - since >= self.open_after:
                self._open(key, now)
        for key, since in list(self.absent_since.items()):
            if key in self.open and now - since >= self.close_after:
                self._close_recovered(key, now)
        for ticket in list(self.open.values()):
            if not ticket.overdue_sent and now >= ticket.due:
                ticket.overdue_sent = 1
                db.save(ticket)
                self._emit("ticket_overdue", ticket, ticket=ticket.id, fault=ticket.fault, kind=ticket.kind,
                           due=iso(ticket.due, self.hub.tz), contractor=ticket.contractor)
                log.warning("ticket #%d (%s %s) is overdue", ticket.id, ticket.device, ticket.fault)
                self.publish_site(ticket.site)
        for request_id, ticket_id, action, user, note in db.pending():
            try:
                self._act(ticket_id, action, user, note)
                error = None
            except TicketRefused as exc:
                error = str(exc)
            db.finish(request_id, error)

    def _open(self, key: tuple[str, str], now: float) -> None:
        assert self.db is not None
        device, fault = key
        kind = self._kind(device) or "camera"
        site = self.hub.store.sites.get(device)
        contractor = self.config.contractor_for(site)
        deadlines = contractor.deadlines if contractor is not None else DeadlinesConfig()
        detail = self._detail(device, fault)
        ticket = self.db.insert(Ticket(0, device, site, kind, fault, contractor.name if contractor else None,
                                       opened=now, due=now + getattr(deadlines, kind), detail=detail))
        self.open[key] = ticket
        log.warning("ticket #%d opened: %s %s", ticket.id, device, fault)
        tz = self.hub.tz
        self._emit("ticket_opened", ticket, ticket=ticket.id, fault=fault, kind=kind, opened=iso(now, tz),
                   due=iso(ticket.due, tz), contractor=ticket.contractor, detail=detail)
        self.publish_site(site)

    def _detail(self, device: str, fault: str) -> str | None:
        store = self.hub.store
        if fault == "offline":
            state = store.state(device)
            return state.get("offline_detail") or store.errors.get(device)
        return None

    def _close_recovered(self, key: tuple[str, str], now: float) -> None:
        assert self.db is not None
        ticket = self.open.pop(key)
        self.absent_since.pop(key, None)
        ticket.resolved, ticket.resolution = now, "recovered"
        self.db.save(ticket)
        if key[1] in EVENT_FAULTS:
            self.mismatch.discard(key[0])
        log.info("ticket #%d closed: %s %s recovered", ticket.id, ticket.device, ticket.fault)
        self._emit("ticket_resolved", ticket, **closed_fields(ticket, self.hub.tz))
        self.publish_site(ticket.site)

    def _emit(self, type: str, about: Ticket, /, **data: Any) -> None:
        data = {k: v for k, v in data.items() if v is not None}
        self.hub.emit(type, device=about.device, site=about.site,
                      message=ticket_message(type, about.device, about.site, data), **data)
        history = self.hub.history
        if history is not None:  # the ticket's row is committed: its event too, at once
            history.flush()

    # ---------------------------------------------------------------- actions
    def _act(self, ticket_id: Any, action: Any, user: str | None, note: Any) -> Ticket:
        assert self.db is not None
        now = self.hub.clock.now().timestamp()
        history = self.hub.history
        device = "-"
        try:
            number = parse_ticket_id(ticket_id)
            current = self.db.get(number)
            device = current.device if current is not None else "-"
            ticket = act(self.db, self.config, number, str(action), user, note if isinstance(note, str) else None,
                         now)
        except TicketRefused as exc:
            if history is not None:
                history.add_audit(self.hub.clock.now(), user, device, audit_form(ticket_id, action, note),
                                  "rejected", str(exc))
            raise
        if history is not None:
            history.add_audit(self.hub.clock.now(), user, ticket.device, audit_form(ticket.id, action, note), "ok")
        key = (ticket.device, ticket.fault)
        if ticket.is_open:
            self.open[key] = ticket
        else:
            self.open.pop(key, None)
            self.absent_since.pop(key, None)
            if key in self.present_since:  # still there: it must last open_after again to reopen
                self._since(key, now)
            if ticket.fault in EVENT_FAULTS:
                self.mismatch.discard(ticket.device)
        type_, data = action_event(ticket, str(action), self.hub.tz)
        self._emit(type_, ticket, **data)
        self.publish_site(ticket.site)
        return ticket

    async def request(self, body: dict[str, Any], user: str | None) -> dict[str, Any]:
        """``bridge/request/ticket[/<user>]``: ``{"action": "ack"|"resolve", "ticket": 12, "note": "..."}``."""
        if self.db is None:
            raise TicketRefused(_("tickets are not handled by this hub"))
        if user is None and not self.config.users:
            by = body.get("by")
            user = str(by)[:64] if by is not None else None
        ticket = self._act(body.get("ticket"), body.get("action"), user, body.get("note"))
        await self.hub.durable()
        return ticket.as_json(self.hub.tz, self.hub.clock.now().timestamp())

    # ---------------------------------------------------------------- retained lists
    def site_list(self, site: str) -> dict[str, Any]:
        now = self.hub.clock.now().timestamp()
        tickets = sorted((t for t in self.open.values() if t.site == site), key=lambda t: t.id)
        return {"site": site, "count": len(tickets), "tickets": [t.as_json(self.hub.tz, now) for t in tickets]}

    def publish_site(self, site: str | None) -> None:
        bridge = getattr(self.hub, "mqtt_access", None)
        if site is None or bridge is None:
            return
        topic = f"{self.config.mqtt.base_topic}/site/{site}/tickets"
        bridge.publish(topic, json.dumps(self.site_list(site), ensure_ascii=False, separators=(",", ":")), 1, True)

    def publish_all(self) -> None:
        if self.db is None:
            return
        for site in self.config.sites:
            self.publish_site(site.id)


def install(hub: Any) -> TicketService:
    service = TicketService(hub)
    with contextlib.suppress(OSError):
        service.config.data_dir.mkdir(parents=True, exist_ok=True)
    service.install()
    hub.tickets = service  # the web console's tickets page lists them
    return service
