"""A running hub's export in a process of its own (``python -m hub.export.child``).

The hub's event loop only relays the progress: the download (a recorder sends as fast as the
network allows: 300 MB/s over loopback), the SHA-256 of every byte, the files written and the
remux (in a worker thread of this process: one process of about 125 MB whatever the length,
where a remux grandchild added 75 MB for the same CPU) all run below the hub in the CPU queue
(niceness :data:`CHILD_NICE`), so a light command or a power-cut event that arrives meanwhile
gets a core first. On a small box the export is the one that can wait.

Protocol: the hub writes one JSON line (the config file, the request) and keeps the pipe open;
the child answers JSON lines on stdout, ``{"progress": [message, fraction]}`` as it goes and one
``{"result": {...}}`` or ``{"error": "one line"}`` at the end. When its stdin closes (the hub
stops, cancels the export, or died: kill -9), the child cancels the export, which removes the
``.part`` directory, and exits: no export outlives its hub, and no package is sealed that the
hub's audit table does not record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.export.run import ExportError, ExportRequest, ExportResult

log = logging.getLogger("hub.export")

CHILD_NICE = 10
"""The export child's niceness: the hub's own work (commands, events, MQTT) goes first."""
STOP_GRACE_S = 15.0
"""How long the hub waits for a cancelled export child to clean up before killing it."""


def _request_json(request: ExportRequest) -> dict[str, Any]:
    return {"device": request.device, "channel": request.channel, "start": request.start.isoformat(),
            "end": request.end.isoformat(), "out_dir": str(request.out_dir), "case": request.case,
            "reason": request.reason, "requested_by": request.requested_by}


def _request_from(data: dict[str, Any]) -> ExportRequest:
    return ExportRequest(device=data["device"], channel=data["channel"], start=datetime.fromisoformat(data["start"]),
                         end=datetime.fromisoformat(data["end"]), out_dir=Path(data["out_dir"]), case=data["case"],
                         reason=data["reason"], requested_by=data["requested_by"])


async def export_in_child(config_path: Path, request: ExportRequest,
                          progress: Callable[[str, float], None] | None = None) -> ExportResult:
    """Run the export of ``request`` (from the device config of ``config_path``, the hub's own
    file) in a child process; :class:`ExportError` with the child's one line when it fails.
    Cancelled, it closes the child's stdin and waits for it to clean up."""
    report = progress or (lambda message, fraction: None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.export.child", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []

    async def relay_log(stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            lines.append(text)
            del lines[:-20]
            log.info("export process: %s", text)

    stderr = asyncio.get_running_loop().create_task(relay_log(proc.stderr))
    try:
        proc.stdin.write((json.dumps({"config": str(config_path), "request": _request_json(request)}) + "\n").encode())
        await proc.stdin.drain()
        answer: dict[str, Any] | None = None
        while line := await proc.stdout.readline():
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if "progress" in msg:
                    report(str(msg["progress"][0]), float(msg["progress"][1]))
                else:
                    answer = msg
        await proc.wait()
        if answer is None or "result" not in answer:
            if answer is not None and "error" in answer:
                raise ExportError(str(answer["error"]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stderr), 5)
            last = lines[-1] if lines else "no message"
            raise ExportError(f"the export process ended without a result (exit {proc.returncode}): {last}")
        r = answer["result"]
        manifest = json.loads((Path(r["path"]) / "manifest.json").read_text(encoding="utf-8"))
        return ExportResult(Path(r["path"]), r["package_id"], manifest,
                            [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in r["gaps"]])
    except BaseException:
        if proc.returncode is None:
            proc.stdin.close()  # the child cancels its export, removes the .part directory, exits
            await _wait_or_kill(proc, STOP_GRACE_S)
        raise
    finally:
        if not stderr.done():
            stderr.cancel()
        with contextlib.suppress(BaseException):
            await stderr


async def _wait_or_kill(proc: asyncio.subprocess.Process, limit: float) -> None:
    """Wait up to ``limit`` seconds for ``proc`` to end (however often this task is cancelled
    meanwhile: the hub's stop cancels its tasks repeatedly), then kill it."""
    deadline = asyncio.get_running_loop().time() + limit
    waiting = asyncio.ensure_future(proc.wait())
    while not waiting.done():
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({waiting}, timeout=left)
    if not waiting.done():
        log.warning("the export process did not stop within %.0f s; killed", limit)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        waiting.cancel()


async def _child(job: dict[str, Any]) -> dict[str, Any]:
    from hub.cli.common import peek_data_dir
    from hub.config import ConfigError, load_config
    from hub.export.run import export
    from hub.plugins import load_plugins
    from hub.redact import register_secrets

    path = Path(job["config"])
    try:
        plugins = load_plugins(peek_data_dir(path))
        config = load_config(path, plugins)
    except (ConfigError, OSError) as exc:
        return {"error": f"the hub's config could not be read again ({exc})"}
    register_secrets(config.secrets())

    def progress(message: str, fraction: float) -> None:
        sys.stdout.write(json.dumps({"progress": [message, fraction]}) + "\n")
        sys.stdout.flush()

    loop = asyncio.get_running_loop()
    work = loop.create_task(export(config, plugins, _request_from(job["request"]), progress, remux_process=False))
    # the hub closes the pipe to stop the export (and so does its death); a daemon thread waits
    # for that, so that the end of the export does not wait for it
    closed: asyncio.Future[None] = loop.create_future()

    def stop() -> None:
        if not closed.done():
            closed.set_result(None)

    def wait_for_eof() -> None:
        sys.stdin.read()
        with contextlib.suppress(RuntimeError):  # the loop has ended: nothing to stop
            loop.call_soon_threadsafe(stop)

    threading.Thread(target=wait_for_eof, name="stdin", daemon=True).start()
    waiting: set[asyncio.Future[Any]] = {work, closed}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if work not in done:
        work.cancel()
        with contextlib.suppress(BaseException):
            await work
        return {"error": "the export was cancelled"}
    try:
        result = work.result()
    except ExportError as exc:
        return {"error": str(exc)}
    return {"result": {"path": str(result.path), "package_id": result.package_id,
                       "gaps": [[a.isoformat(), b.isoformat()] for a, b in result.gaps]}}


def _main() -> None:
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICE)
    # log lines (a download resumed, a recorder slow to answer) go to stderr, which the hub logs
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    job = json.loads(sys.stdin.readline())
    answer = asyncio.run(_child(job))
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _main()
