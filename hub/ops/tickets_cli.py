"""``anninh tickets``: the maintenance tickets, listed, acknowledged and resolved from the command line.

    anninh tickets -c FILE [--site S] [--all]                 open tickets (--all: closed ones too)
    anninh tickets ack ID --by USER [--note T] -c FILE        acknowledge
    anninh tickets resolve ID --by USER --note T -c FILE      resolve, saying what was done

The command line works on the hub's own database (``history.db``). While a hub runs (it holds
``<data_dir>/tickets.lock``), ``ack``/``resolve`` hand the action to it through the database's
``ticket_requests`` table and wait for its answer, so that the events, the retained list and the
audit come from the hub; with no hub running, the command carries the action out itself and writes
the same events and audit rows into the history (see :mod:`hub.ops.tickets`).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.api import CliContext, CommandSpec
from hub.cli.common import load_or_exit
from hub.config import Config
from hub.i18n import _, tr
from hub.ops.tickets import (
    FAULT_NAMES,
    KIND_NAMES,
    HubLock,
    Ticket,
    TicketDB,
    TicketRefused,
    act,
    action_event,
    audit_form,
    history_path,
    lock_path,
    ticket_message,
)

WAIT = 15.0
"""Seconds the command waits for a running hub to carry out its action."""


def _arguments(p: argparse.ArgumentParser) -> None:
    p.description = _("Maintenance tickets: list them; acknowledge or resolve one (ack|resolve ID --by USER).")
    p.add_argument("action", nargs="?", choices=["ack", "resolve"], help=_("acknowledge or resolve a ticket"))
    p.add_argument("ticket", nargs="?", type=int, help=_("the ticket's number"))
    p.add_argument("-c", "--config", type=Path, metavar="FILE", required=True, help=_("the hub's YAML config"))
    p.add_argument("--site", default=None, help=_("only this site's tickets"))
    p.add_argument("--all", action="store_true", help=_("closed tickets too"))
    p.add_argument("--by", default=None, help=_("the user acting (a contractor or an installer)"))
    p.add_argument("--note", default=None, help=_("what was done (needed to resolve)"))


def _fail(message: str) -> int:
    print(tr("error: {message}", message=message), file=sys.stderr)
    return 1


def cmd_tickets(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    config, _plugins = load_or_exit(args.config)
    if args.site is not None and config.site(args.site) is None:
        return _fail(tr("unknown site {site}", site=repr(args.site)))
    if args.action is None:
        return list_tickets(config, args.site, args.all)
    if args.ticket is None or args.by is None:
        return _fail(_("usage: anninh tickets ack|resolve ID --by USER [--note TEXT] -c FILE"))
    return act_on_ticket(config, args.ticket, args.action, args.by, args.note)


def _status(t: Ticket, now: float) -> str:
    if t.resolution == "recovered":
        return _("recovered")
    if t.resolution == "resolved":
        return _("resolved")
    status = _("acknowledged") if t.acknowledged is not None else _("open")
    return status + (", " + _("overdue") if t.overdue(now) else "")


def _when(ts: float | None, tz: ZoneInfo) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, tz).strftime("%d/%m/%Y %H:%M")


def list_tickets(config: Config, site: str | None, closed_too: bool) -> int:
    if not history_path(config).exists():
        print(_("No tickets."))
        return 0
    db = TicketDB(history_path(config))
    try:
        tickets = db.tickets(site, closed_too)
    finally:
        db.close()
    if not tickets:
        print(_("No open tickets.") if not closed_too else _("No tickets."))
        return 0
    tz = ZoneInfo(config.hub.timezone)
    now = time.time()
    header = [_("No."), _("Device"), _("Site"), _("Kind"), _("Fault"), _("Contractor"), _("Opened"), _("Due"),
              _("Status")]
    rows = [[f"#{t.id}", t.device, t.site or "", _(KIND_NAMES.get(t.kind, t.kind)),
             _(FAULT_NAMES.get(t.fault, t.fault)), t.contractor or "", _when(t.opened, tz), _when(t.due, tz),
             _status(t, now)] for t in tickets]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def act_on_ticket(config: Config, ticket_id: int, action: str, user: str, note: str | None) -> int:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    lock = HubLock(lock_path(config))
    db = TicketDB(history_path(config))
    try:
        if lock.acquire():
            try:
                return _act_here(config, db, ticket_id, action, user, note)
            finally:
                lock.release()
        return _ask_the_hub(db, ticket_id, action, user, note)
    finally:
        db.close()


def _done(action: str, ticket_id: int) -> int:
    print(tr("Ticket #{ticket} acknowledged.", ticket=ticket_id) if action == "ack"
          else tr("Ticket #{ticket} resolved.", ticket=ticket_id))
    return 0


def _ask_the_hub(db: TicketDB, ticket_id: int, action: str, user: str, note: str | None) -> int:
    """A hub runs: queue the action for it and wait for its answer."""
    request = db.queue(ticket_id, action, user, note)
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        done, error = db.outcome(request)
        if done:
            return _fail(error) if error else _done(action, ticket_id)
        time.sleep(0.2)
    if db.withdraw(request):
        return _fail(tr("the running hub did not answer within {seconds} s; nothing was changed",
                        seconds=int(WAIT)))
    done, error = db.outcome(request)
    return _fail(error) if error else _done(action, ticket_id)


def _act_here(config: Config, db: TicketDB, ticket_id: int, action: str, user: str, note: str | None) -> int:
    """No hub runs: carry the action out here, with the events and audit rows the hub would write."""
    from hub.storage import History

    tz = ZoneInfo(config.hub.timezone)
    now = datetime.now(UTC)
    history = History(history_path(config))
    try:
        current = db.get(ticket_id)
        try:
            ticket = act(db, config, ticket_id, action, user, note, now.timestamp())
        except TicketRefused as exc:
            history.add_audit(now, user, current.device if current else "-", audit_form(ticket_id, action, note),
                              "rejected", str(exc))
            return _fail(str(exc))
        history.add_audit(now, user, ticket.device, audit_form(ticket_id, action, note), "ok")
        type_, data = action_event(ticket, action, tz)
        data = {k: v for k, v in data.items() if v is not None}
        data["message"] = ticket_message(type_, ticket.device, ticket.site, data)
        history.add_event(now.astimezone(tz), type_, ticket.device, ticket.site, data)
    finally:
        history.close()
    return _done(action, ticket_id)


TICKETS = CommandSpec(
    name="tickets", help="maintenance tickets: list them, acknowledge or resolve one (ack|resolve ID --by USER)",
    run=cmd_tickets, arguments=_arguments)
