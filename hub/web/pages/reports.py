"""Reports: the periodic report (:mod:`hub.ops.report`) of a month, a quarter or any days, for the
commune or one site, in Vietnamese or English, as PDF or HTML, downloaded from the page.

Everyone signed in may download the report of the sites they see; a person limited to some sites
gets one of theirs only (checked here, on the server). The report is written by ``anninh report`` (the
same code) in a child process, one at a time: the hub's loop goes on serving (in a thread of the hub,
the report's Python held the GIL enough to delay the loop by 13 ms at p99, 60 ms at worst, for the
2.4 s of a 100-device month) and its charts' libraries never load into the hub.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.i18n import LANGUAGES, N_, _, language
from hub.redact import redact
from hub.web.pages import Page, access_of

if TYPE_CHECKING:
    from hub.web.server import WebConsole

log = logging.getLogger("hub.web")

PERIODS = {"month": N_("a month"), "quarter": N_("a quarter"), "days": N_("from … to …")}
FORMATS = {"pdf": ("application/pdf", "PDF"), "html": ("text/html; charset=utf-8", "HTML")}
TIMEOUT = 300.0
"""Seconds a report may take (a quarter of a 500-device commune takes a few)."""


async def run_report(args: list[str]) -> tuple[int, str]:
    """``anninh report ARGS`` in a child process: its exit code and the end of its error output."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hub.cli", "report", *args,
                                                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except BaseException:  # timed out, or the page was closed / the hub stops: no orphan left behind
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    return proc.returncode or 0, err.decode("utf-8", "replace")[-1000:]


def setup(router: web.UrlDispatcher, console: WebConsole) -> None:
    hub = console.hub
    busy = asyncio.Lock()  # one report at a time: a child process's CPU work on a small machine
    config_path = str(Path(hub.config.path).resolve())

    def sites_of(access: Any) -> list[tuple[str, str]]:
        return [(s.id, s.name or s.id) for s in hub.config.sites if access.sees_site(s.id)]

    async def page(request: web.Request) -> web.StreamResponse:
        access = access_of(request)
        now = hub.clock.now().astimezone(hub.tz)
        quarter = (now.month - 1) // 3 + 1
        return console.render(request, "reports.html", sites=sites_of(access), every_site=access.sites is None,
                              periods=PERIODS, formats=FORMATS, lang_now=language(),
                              month=now.strftime("%Y-%m"), quarter=f"{now.year}-Q{quarter}",
                              today=now.strftime("%Y-%m-%d"), first=now.strftime("%Y-%m-01"), live=None)

    async def download(request: web.Request) -> web.StreamResponse:
        from hub.ops.report.data import days_period, month_period, quarter_period

        access = access_of(request)
        q = request.query
        site = q.get("site") or None
        if site is None and access.sites is not None:
            raise web.HTTPForbidden(text=_("Choose one of your sites."))
        if site is not None and (hub.config.site(site) is None or not access.sees_site(site)):
            raise web.HTTPNotFound(text=_("No such site."))
        fmt = q.get("format", "pdf")
        if fmt not in FORMATS:
            raise web.HTTPBadRequest(text=_("The report is a PDF or an HTML page."))
        lang = q.get("lang") or language()
        if lang not in LANGUAGES:
            raise web.HTTPBadRequest(text=_("Unknown language."))
        kind = q.get("period", "month")
        try:
            if kind == "month":
                month_period(q.get("month", ""), hub.tz)
                label, period = q.get("month", ""), ["--month", q.get("month", "")]
            elif kind == "quarter":
                quarter_period(q.get("quarter", ""), hub.tz)
                label, period = q.get("quarter", "").upper(), ["--quarter", q.get("quarter", "").upper()]
            elif kind == "days":
                days_period(q.get("from", ""), q.get("to", ""), hub.tz)
                label = f"{q.get('from')}_{q.get('to')}"
                period = ["--from", q.get("from", ""), "--to", q.get("to", "")]
            else:
                raise ValueError(_("Choose a month, a quarter or two days."))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        if not (hub.config.data_dir / "history.db").exists():
            raise web.HTTPNotFound(text=_("The hub has no history yet."))
        name = f"bao-cao-{label}{'-' + site if site else ''}.{fmt}"
        async with busy:
            with tempfile.TemporaryDirectory(prefix="anninh-report-") as tmp:
                out = Path(tmp) / f"report.{fmt}"
                args = ["-c", config_path, "--lang", lang, *period, "-o", str(out)]
                code, error = await run_report([*args, "--site", site] if site else args)
                if code != 0 or not out.exists():
                    log.error("web report %s (%s, %s) failed (exit %s): %s", label, site or "all sites", fmt, code,
                              redact(error.strip()))
                    raise web.HTTPInternalServerError(text=_("The report could not be written: see the hub's log."))
                data = await asyncio.to_thread(out.read_bytes)
        log.info("web report %s (%s, %s, %s) for %s", label, site or "all sites", fmt, lang, access.user)
        response = web.Response(body=data, headers={
            "Content-Type": FORMATS[fmt][0], "Content-Disposition": f'attachment; filename="{name}"'})
        return response

    router.add_get("/reports", page)
    router.add_get("/reports/download", download)


PAGE = Page(name="reports", title=N_("Reports"), path="/reports", setup=setup, order=60)
