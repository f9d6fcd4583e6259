"""Footage export: request an export from a recorder, follow its progress live, download the sealed
evidence package as a ZIP.

The request goes to the export service's own per-user handler (``bridge/request/export/<user>``),
so the web and MQTT share its checks (role, sites, one export per recorder at a time), its events
and its audit rows; a download is one more audit row (``{"export_download": package_id}``), part of
the package's chain of custody. The ZIP is written while it is sent (stored, not compressed: the
video is compressed already), so a package of gigabytes needs no second copy on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import queue
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub.api import HubEvent
from hub.core import Listener
from hub.i18n import N_, _
from hub.redact import redact
from hub.security import Access
from hub.web.pages import Page, access_of

if TYPE_CHECKING:
    from hub.web.server import WebConsole

log = logging.getLogger("hub.web")

PACKAGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_ADDRESS = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://\S+|\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?)", re.IGNORECASE)
STATUS_TEXT = {"queued": N_("waiting"), "running": N_("running"), "done": N_("done"),
               "gaps": N_("done, with gaps in the footage"), "failed": N_("failed")}
MAX_JOBS = 50


@dataclass
class Job:
    id: int
    user: str | None
    device: str
    start: str
    end: str
    status: str = "queued"
    percent: int = 0
    package_id: str | None = None
    error: str | None = None


def _public(text: str) -> str:
    """An error for a page: no secret, no device address (the export's errors may name the recorder's)."""
    return _ADDRESS.sub("…", redact(text))[:300]


def _exportable(console: WebConsole, access: Access) -> list[tuple[str, str]]:
    """Recorders, and cameras that record on one, at the person's sites."""
    hub = console.hub
    out = []
    for device_id, runner in hub.runners.items():
        cfg = runner.config
        if not access.sees_site(cfg.site):
            continue
        if runner.kind == "recorder" or (getattr(cfg, "recorder", None) and getattr(cfg, "recorder_channel", None)):
            out.append((device_id, cfg.name or device_id))
    return out


def setup(router: web.UrlDispatcher, console: WebConsole) -> None:
    hub = console.hub
    jobs: list[Job] = []
    numbers = itertools.count(1)
    exports_dir = hub.config.data_dir / "exports"

    def on_event(event: HubEvent) -> None:
        if event.type != "export_progress" and event.type != "export_started":
            return
        for job in jobs:
            if job.device == event.device and job.user == event.data.get("user") and job.status in ("queued",
                                                                                                     "running"):
                job.status = "running"
                job.percent = int(event.data.get("percent", job.percent))

    hub.add_listener(Listener(on_event=on_event))

    def allowed(access: Access) -> None:
        if not access.export:
            raise web.HTTPForbidden(text=_("Your role may not export footage."))

    async def page(request: web.Request) -> web.StreamResponse:
        access = access_of(request)
        if not access.export:
            return console.refuse(request, _("Your role may not export footage."))
        mine = [j for j in jobs if access.user is None or j.user == access.user]
        rows = [{"id": j.id, "device": j.device, "start": j.start, "end": j.end, "percent": j.percent,
                 "status": _(STATUS_TEXT[j.status]), "package_id": j.package_id, "error": j.error}
                for j in reversed(mine)]
        return console.render(request, "export.html", devices=_exportable(console, access), jobs=rows,
                              live="export", live_site="")

    async def run(job: Job, body: dict[str, Any], user: str | None) -> None:
        handler = hub.requests.per_user("export")
        try:
            if handler is None:
                raise RuntimeError("the export service is not running")
            result = await handler(body, user=user)
        except asyncio.CancelledError:
            job.status, job.error = "failed", _("the hub stopped")
            raise
        except Exception as exc:  # refused or failed: the service sent export_failed and audited it
            job.status, job.error = "failed", _public(str(exc))
            return
        job.percent = 100
        job.package_id = str(result.get("package_id"))
        job.status = "done" if result.get("complete", True) else "gaps"

    async def request_export(request: web.Request) -> web.StreamResponse:
        access = access_of(request)
        allowed(access)
        form = await request.post()
        device = str(form.get("device", ""))[:64]
        if device not in dict(_exportable(console, access)):
            raise web.HTTPForbidden(text=_("No such recorder at your sites."))
        body: dict[str, Any] = {k: str(form.get(k, "")).strip()[:200] for k in ("start", "end", "case", "reason")}
        body = {k: v.replace("T", " ") if k in ("start", "end") else v for k, v in body.items() if v}
        body["device"] = device
        channel = str(form.get("channel", "")).strip()
        if channel:
            if not channel.isdigit():
                raise web.HTTPBadRequest(text=_("The channel is a number."))
            body["channel"] = int(channel)
        job = Job(next(numbers), access.user, device, body.get("start", ""), body.get("end", ""))
        jobs.append(job)
        del jobs[:-MAX_JOBS]
        hub.create_task(run(job, body, access.user), name=f"web-export-{job.id}")
        raise web.HTTPSeeOther("/export")

    def package_dir(access: Access, package_id: str) -> tuple[Path, dict[str, Any]]:
        if not PACKAGE_ID.fullmatch(package_id) or package_id.endswith(".part"):
            raise web.HTTPNotFound(text=_("No such package."))
        folder = exports_dir / package_id
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise web.HTTPNotFound(text=_("No such package.")) from None
        device = manifest.get("device") or {}
        if not access.sees_site(device.get("site")):
            raise web.HTTPNotFound(text=_("No such package."))
        return folder, manifest

    async def download(request: web.Request) -> web.StreamResponse:
        access = access_of(request)
        allowed(access)
        package_id = request.match_info["package"]
        folder, manifest = await asyncio.to_thread(package_dir, access, package_id)
        history = hub.history
        if history is not None:
            history.add_audit(hub.clock.now(), access.user, str((manifest.get("device") or {}).get("id", "-"))[:64],
                              {"export_download": package_id}, "downloaded")
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{package_id}.zip"'})
        console.secure(response)
        await response.prepare(request)
        chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        stop = threading.Event()
        writer = asyncio.get_running_loop().run_in_executor(None, _zip_into, folder, package_id, chunks, stop)
        try:
            while True:
                chunk = await asyncio.to_thread(chunks.get)
                if chunk is None:
                    break
                await response.write(chunk)
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    chunks.get_nowait()
            await writer
        await response.write_eof()
        return response

    router.add_get("/export", page)
    router.add_post("/export", request_export)
    router.add_get("/export/{package}.zip", download)


class _Sink:
    """A write-only file for ``zipfile`` that hands its bytes to the sending side in chunks."""

    def __init__(self, chunks: queue.Queue[bytes | None], stop: threading.Event) -> None:
        self.chunks = chunks
        self.stop = stop
        self.buf = bytearray()
        self.written = 0

    def write(self, data: bytes) -> int:
        if self.stop.is_set():
            raise OSError("download cancelled")
        self.buf += data
        self.written += len(data)
        if len(self.buf) >= 256 * 1024:
            self.flush()
        return len(data)

    def tell(self) -> int:
        return self.written

    def close(self) -> None:
        self.flush()

    def flush(self) -> None:
        if self.buf:
            self.chunks.put(bytes(self.buf))
            self.buf.clear()


def _zip_into(folder: Path, package_id: str, chunks: queue.Queue[bytes | None], stop: threading.Event) -> None:
    sink = _Sink(chunks, stop)
    try:
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
                with path.open("rb") as src, zf.open(f"{package_id}/{path.relative_to(folder)}", "w",
                                                     force_zip64=True) as dst:
                    while block := src.read(1024 * 1024):
                        dst.write(block)
        sink.flush()
    except OSError as exc:
        if not stop.is_set():
            log.warning("web download of %s stopped: %s", package_id, exc)
    finally:
        if not stop.is_set():
            chunks.put(None)


PAGE = Page(name="export", title=N_("Footage export"), path="/export", setup=setup, order=50,
            visible=lambda access: access.export)
