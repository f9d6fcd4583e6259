"""``anninh report``: the periodic report of the commune's system, from the hub's history.

    anninh report -c FILE (--month YYYY-MM | --quarter YYYY-Qn | --from DATE --to DATE) [--site S]
                  [--lang vi|en] -o FILE.pdf|FILE.html      (--lang: every command's option)

Periods are in the hub's timezone (``hub.timezone``); ``--to`` includes its day. Exit codes: 0 written
(the path is printed), 1 bad arguments or no history (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hub.api import CliContext, CommandSpec
from hub.i18n import N_, _, tr


def _arguments(p: argparse.ArgumentParser) -> None:
    p.description = _("Write the periodic report (availability, power cuts, recorders, image faults, lights, "
                      "tickets) of a month, a quarter or any days, as PDF or HTML, from the hub's history.")
    p.add_argument("-c", "--config", type=Path, metavar="FILE", help=_("the hub's YAML config"))
    p.add_argument("--month", metavar="YYYY-MM", help=_("a calendar month, e.g. 2026-11"))
    p.add_argument("--quarter", metavar="YYYY-Qn", help=_("a quarter, e.g. 2026-Q4"))
    p.add_argument("--from", dest="first", metavar="DATE", help=_("first day, YYYY-MM-DD (with --to)"))
    p.add_argument("--to", dest="last", metavar="DATE", help=_("last day, included, YYYY-MM-DD"))
    p.add_argument("--site", help=_("only this site"))
    p.add_argument("-o", "--out", type=Path, metavar="FILE", help=_("FILE.pdf or FILE.html"))


def _fail(message: str) -> int:
    print(tr("error: {message}", message=message), file=sys.stderr)
    return 1


def period_of(args: argparse.Namespace, tz: ZoneInfo) -> tuple[datetime, datetime]:
    from .data import days_period, month_period, quarter_period

    chosen = [n for n, v in (("--month", args.month), ("--quarter", args.quarter),
                             ("--from/--to", args.first or args.last)) if v]
    if len(chosen) != 1:
        raise ValueError(_("give one period: --month YYYY-MM, --quarter YYYY-Qn or --from DATE --to DATE"))
    if args.month:
        return month_period(args.month, tz)
    if args.quarter:
        return quarter_period(args.quarter, tz)
    if not (args.first and args.last):
        raise ValueError(_("--from and --to go together"))
    return days_period(args.first, args.last, tz)


def cmd_report(args: argparse.Namespace, cli: CliContext | None = None) -> int:
    """``--lang`` (every command's) or the config's ``hub.language`` chooses the report's language;
    :func:`hub.cli.common.load_or_exit` sets it."""
    from hub.cli.common import load_or_exit

    if args.config is None or args.out is None:
        return _fail(_("missing -c FILE or -o FILE (see anninh report --help)"))
    config, plugins = load_or_exit(args.config)
    return _report(args, config, plugins)


def _report(args: argparse.Namespace, config: Any, plugins: Any) -> int:
    from .service import write_report

    tz = ZoneInfo(config.hub.timezone)
    try:
        start, end = period_of(args, tz)
    except ValueError as exc:
        return _fail(str(exc))
    if args.out.suffix.lower() not in (".pdf", ".html", ".htm"):
        return _fail(tr("{path}: the report is written as .pdf or .html", path=str(args.out)))
    if not args.out.parent.is_dir():
        return _fail(tr("{path}: no such directory", path=str(args.out.parent)))
    sites = [s.id for s in config.sites]
    if args.site is not None and args.site not in sites:
        return _fail(tr("unknown site {site!r} (the config has: {sites})", site=args.site,
                        sites=", ".join(sites) or "-"))
    path = config.data_dir / "history.db"
    if not path.exists():
        return _fail(tr("no history at {path}: has the hub run with this config?", path=str(path)))
    try:
        write_report(config, plugins, start, end, args.out, config.hub.language, site=args.site,
                     now=datetime.now(tz))
    except OSError as exc:
        return _fail(tr("cannot write {path}: {error}", path=str(args.out), error=exc.strerror or str(exc)))
    print(args.out)
    return 0


REPORT = CommandSpec(name="report", help=N_("write the monthly/quarterly report as PDF or HTML"), run=cmd_report,
                     arguments=_arguments)
