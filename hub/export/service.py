"""The export on a running hub: the MQTT request, one export per recorder at a time, the events
and the chain of custody in the audit table (docs/design.md, "second batch").

An officer's app publishes on ``<base>/bridge/request/export/<user>`` (Zigbee2MQTT style, with
``transaction``)::

    {"device": "nvr1", "channel": 3, "start": "2026-11-30 19:30", "end": "2026-11-30 19:35",
     "case": "VV-2026-117", "reason": "...", "transaction": "t1"}

and gets ``{"status": "ok", "data": {"package_id", "path", "complete", "gaps"}}`` on
``<base>/bridge/response/export/<user>`` when the package is sealed. The user is the last topic
level, which the broker's ACL lets only that user publish (``anninh acl``); a ``user`` in the
payload is ignored. The hub checks the role again: only officers (at their sites) and installers
export. Events ``export_started``, ``export_progress`` (``percent``), ``export_done`` and
``export_failed`` go out on ``<base>/bridge/event``; every request, start, end and failure is an
audit row (who, when, what, the manifest's SHA-256).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

# PyAV, cryptography and the export code load on the first export, not when the hub starts (a hub
# without recorders never loads the video stack)

log = logging.getLogger("hub.export")

EXPORT_ROLES = ("officer", "installer")
MAX_WAITING = 4
STOP_POLL_S = 0.25
"""How often a running export looks whether its guard ended with a reconnect (a new one then)."""
STOP_WAIT_S = 20.0
"""How long the hub's stop waits for an export child to clean up (its own limit is 15 s)."""
T = TypeVar("T")
"""Exports queued per recorder behind the running one; more are refused (recorders are slow)."""


class ExportRefused(Exception):
    """The request is not allowed or not valid; the message says why."""


class ExportService:
    def __init__(self, hub: Any, max_waiting: int = MAX_WAITING) -> None:
        self.hub = hub
        self.max_waiting = max_waiting
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}
        self.cleanup: asyncio.Task[list[Path]] | None = None

    def install(self) -> None:
        """Answer ``bridge/request/export`` (no user: only when the config has no users) and
        ``bridge/request/export/<user>``; remove the ``.part`` directories that a hub stopped during
        an export left behind (in a worker thread: one may hold gigabytes)."""
        self.hub.requests.register("export", lambda body: self.request(body, None))
        self.hub.requests.register_per_user("export", self.request)
        exports = self.hub.config.data_dir / "exports"
        started = time.time()
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to clean up after
            self.cleanup = asyncio.get_running_loop().create_task(
                asyncio.to_thread(remove_stale_parts, exports, started), name="export-cleanup")

    def _refuse(self, user: str | None, site: str | None) -> str | None:
        users = self.hub.config.users
        if not users:
            return None
        if user is None:
            return "send the export request on bridge/request/export/<your user name>"
        account = next((u for u in users if u.name == user), None)
        if account is None:
            return f"unknown user {user[:32]!r}"
        if account.role not in EXPORT_ROLES:
            return f"role {account.role} may not export footage (officers and installers may)"
        if account.role == "officer" and account.sites is not None and site not in account.sites:
            return f"user {user} may not export from devices at this site"
        return None

    def _audit(self, user: str | None, device: str, what: dict[str, Any], result: str,
               error: str | None = None) -> None:
        history = self.hub.history
        if history is not None:
            history.add_audit(self.hub.clock.now(), user, device[:64], {"export": what}, result, error)

    async def request(self, body: dict[str, Any], user: str | None) -> dict[str, Any]:
        from hub.export.run import ExportError, resolve_device
        from hub.export.times import parse_time

        config = self.hub.config
        device_id = str(body.get("device") or "")[:64]
        what: dict[str, Any] = {k: body.get(k) for k in ("device", "channel", "start", "end", "case", "reason")
                                if k in body}
        try:
            if not device_id:
                raise ExportRefused("give the device to export from")
            try:
                channel = int(body["channel"]) if body.get("channel") is not None else None
                start = parse_time(str(body.get("start", "")))
                end = parse_time(str(body.get("end", "")))
            except (ValueError, TypeError) as exc:
                raise ExportRefused(f"bad request: {exc}") from None
            try:
                recorder, channel, camera = resolve_device(config, device_id, channel)
            except ExportError as exc:
                raise ExportRefused(str(exc)) from None
            site = getattr(config.device(device_id), "site", None) or recorder.site
            refusal = self._refuse(user, site)
            if refusal is not None:
                raise ExportRefused(refusal)
            runner = self.hub.runners.get(recorder.id)
            if runner is None or runner.driver is None:
                raise ExportRefused(f"{recorder.id} is not running")
            if self._waiting.get(recorder.id, 0) > self.max_waiting:
                raise ExportRefused(f"{recorder.id} already has {self.max_waiting} exports waiting; try later")
        except ExportRefused as exc:
            self._audit(user, device_id or "-", what, "rejected", str(exc))
            self.hub.emit("export_failed", device=device_id if device_id in self.hub.runners else None,
                          user=user, error=str(exc))
            raise
        self._audit(user, recorder.id, what, "requested")
        lock = self._locks.setdefault(recorder.id, asyncio.Lock())
        self._waiting[recorder.id] = self._waiting.get(recorder.id, 0) + 1
        try:
            async with lock:
                return await self._run(runner, recorder, channel, camera, site, start, end, body, user, what)
        finally:
            self._waiting[recorder.id] -= 1

    async def _run(self, runner: Any, recorder: Any, channel: int, camera: str | None, site: str | None,
                   start: Any, end: Any, body: dict[str, Any], user: str | None,
                   what: dict[str, Any]) -> dict[str, Any]:
        from hub.export.child import export_in_child
        from hub.export.package import MANIFEST
        from hub.export.run import ExportError, ExportRequest, export_from_driver

        hub = self.hub
        config = hub.config
        emit: Callable[..., None] = hub.emit
        emit("export_started", device=recorder.id, user=user, channel=channel, start=str(start), end=str(end))
        self._audit(user, recorder.id, what, "started")
        last = -1

        def progress(message: str, fraction: float) -> None:
            nonlocal last
            percent = int(fraction * 100)
            if percent >= last + 10 or (percent == 100 and last != 100):
                last = percent
                emit("export_progress", device=recorder.id, user=user, percent=percent)

        request = ExportRequest(device=recorder.id, start=start, end=end, out_dir=config.data_dir / "exports",
                                channel=channel, case=_text(body.get("case")), reason=_text(body.get("reason")),
                                requested_by=user)
        try:
            if not runner.connected:
                raise ExportError(f"{recorder.id}: recorder unreachable ({runner.error or 'not connected'})")
            if config.path.is_file():
                # in a process of its own, below the hub in the CPU queue (hub.export.child): the
                # loop only relays progress; the child reads the same config file
                request.device = camera or recorder.id
                result = await _until_stopped(runner, export_in_child(config.path, request, progress))
            else:  # a config built in memory (no file to read again): with the hub's own driver
                result = await export_from_driver(
                    runner.driver, recorder, _info_from_state(hub.states.get(recorder.id, {})), channel,
                    request, tz=hub.tz, hub_name=config.hub.name, data_dir=config.data_dir,
                    max_hours=config.export.max_hours, progress=progress, site=site, camera=camera,
                    remux_process=True, audio=config.export.audio)
        except ExportError as exc:
            emit("export_failed", device=recorder.id, user=user, error=str(exc))
            self._audit(user, recorder.id, what, "failed", str(exc))
            raise
        except asyncio.CancelledError:
            emit("export_failed", device=recorder.id, user=user, error="the hub stopped")
            self._audit(user, recorder.id, what, "failed", "the hub stopped")
            raise
        digest = await asyncio.to_thread(lambda: hashlib.sha256((result.path / MANIFEST).read_bytes()).hexdigest())
        gaps = [{"start": a.isoformat(), "end": b.isoformat()} for a, b in result.gaps]
        emit("export_done", device=recorder.id, user=user, package_id=result.package_id, path=str(result.path),
             complete=result.complete, gaps=len(gaps), manifest_sha256=digest)
        self._audit(user, recorder.id, {**what, "package_id": result.package_id, "manifest_sha256": digest},
                    "done" if result.complete else "done_with_gaps")
        return {"package_id": result.package_id, "path": str(result.path), "complete": result.complete,
                "gaps": gaps, "manifest_sha256": digest}


async def _until_stopped(runner: Any, work: Coroutine[Any, Any, T]) -> T:
    """``work`` (an export in a child process), stopped with the recorder's runner: the child does
    not use the runner's driver, whose closing ended an export that did. A task in the runner's
    device context (cancelled and awaited when the runner stops) cancels ``work`` and waits for
    the child to clean up, so the hub's stop returns after it; when the runner only reconnects
    (the same cancellation, without ``stopping``), the export goes on under a new guard."""
    task = asyncio.get_running_loop().create_task(work)

    async def guard() -> None:
        try:
            await asyncio.get_running_loop().create_future()  # until cancelled
        except asyncio.CancelledError:
            if runner.stopping:
                task.cancel()
                await _settle(task, STOP_WAIT_S)
            raise

    watch = runner.ctx.create_task(guard(), name=f"export-guard-{runner.config.id}")
    try:
        while not task.done():
            if watch.done() and not runner.stopping:
                watch = runner.ctx.create_task(guard(), name=f"export-guard-{runner.config.id}")
            await asyncio.wait({task}, timeout=STOP_POLL_S)
        if task.cancelled() and runner.stopping:
            from hub.export.run import ExportError

            raise ExportError("the hub stopped")
        return task.result()
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            await _settle(task, STOP_WAIT_S)


async def _settle(task: asyncio.Task[Any], limit: float) -> None:
    """Wait up to ``limit`` seconds for a cancelled ``task`` to finish its cleanup, even while
    this one is cancelled again (the hub's stop cancels its tasks every 0.2 s)."""
    deadline = asyncio.get_running_loop().time() + limit
    while not task.done() and asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task}, timeout=deadline - asyncio.get_running_loop().time())


def _try_lock(part: Path) -> tuple[int | None, bool]:
    """Open the ``.part`` directory and try its exclusive ``flock``: ``(fd, held elsewhere)``;
    ``fd`` is None when it cannot be opened. A file system without locks counts as not held."""
    try:
        fd = os.open(part, os.O_RDONLY)
    except OSError:
        return None, False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return fd, True
    except OSError:
        pass
    return fd, False


def lock_part(part: Path) -> int | None:
    """An exclusive ``flock`` on the ``.part`` directory while the export writes it (the kernel
    drops it when the process dies): a hub starting meanwhile sees the export is alive and leaves
    it (:func:`remove_stale_parts`). On a file system without locks the age test alone protects it."""
    return _try_lock(part)[0]


def part_in_use(part: Path) -> bool:
    """Whether an export (of any process) holds the ``.part`` directory's lock."""
    fd, held = _try_lock(part)
    if fd is not None:
        os.close(fd)
    return held


def remove_stale_parts(directory: Path, before: float) -> list[Path]:
    """Remove the unfinished packages (``<package_id>.part``) in ``directory`` in which nothing
    changed since ``before`` (the hub's start) and that no live export holds locked: an export
    the hub was running when it stopped (kill -9, power cut) never finishes. One still being
    written (``anninh export -o`` into the same directory while the hub starts) is left alone."""
    removed: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for part in entries:
        if not part.name.endswith(".part") or part.is_symlink() or not part.is_dir():
            continue
        try:
            newest = max([part.stat().st_mtime] + [os.stat(os.path.join(root, name)).st_mtime
                                                   for root, dirs, files in os.walk(part) for name in dirs + files])
        except OSError:
            continue  # changing under us: in progress
        if newest >= before:
            continue
        if part_in_use(part):  # an export still writing it (its process holds the lock)
            continue
        shutil.rmtree(part, ignore_errors=True)
        if not part.exists():
            removed.append(part)
            log.warning("removed %s: an export left unfinished when the hub stopped", part)
    return removed


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:500]


def _info_from_state(state: dict[str, Any]) -> Any:
    from hub.api import DeviceInfo

    return DeviceInfo(model=state.get("model"), serial=state.get("serial"), firmware=state.get("firmware"))


def install(hub: Any) -> ExportService:
    service = ExportService(hub)
    service.install()
    return service
