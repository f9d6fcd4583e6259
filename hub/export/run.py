"""One export: from a request (device, channel, window in the hub's local time) to a sealed
evidence package ``<out>/<package_id>/`` (docs/design.md, "second batch").

Steps: measure the recorder's clock skew and move the window onto the recorder's clock; search;
check the window length and the free space; download every file to ``original/`` exactly as sent
(resuming a broken download from where it stopped); remux the video into ``video/*.mp4`` (one per
stretch without gaps) cut to the window on keyframes; hash everything, write and sign the
manifest; rename ``<package_id>.part`` to ``<package_id>`` last, so a package that looks complete
is complete (a killed export leaves only a ``.part`` directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import av

from hub import __version__
from hub.api import AuthError, DeviceConfig, DeviceError, DeviceInfo, Driver, ExportUnsupportedError, Segment
from hub.api.detached import DetachedContext
from hub.export import keys as hubkeys
from hub.export.package import seal
from hub.export.remux import Original, RemuxJob, VideoResult, probe
from hub.export.service import lock_part
from hub.storage import fsync_dir

log = logging.getLogger("hub.export")

GAP_TOLERANCE_S = 1.0
"""Holes in the recording shorter than this are not gaps (file boundaries, one frame)."""
MAX_RETRIES = 5
"""Attempts in a row without a byte of progress before a download is given up."""
PROGRESS_STEPS = 200
"""Progress reports while downloading: one per 0.5 % of the bytes (a report per chunk was a JSON
line from the export process to the hub's loop every 64-256 KiB: 28,000 an hour of footage)."""
WRITE_BLOCK = 1 << 20
"""Bytes gathered before a write and its SHA-256 update go to a worker thread: the recorder's
bytes arrive as the socket had them (64-256 KiB over loopback), and a thread hop per chunk cost
more than the hashing."""
SPACE_MARGIN = 64 * 1024 * 1024

Progress = Callable[[str, float], None]
"""Called with a short message and the fraction done (0..1)."""


class ExportError(Exception):
    """The export failed; the message is one clear line for the officer."""


@dataclass
class ExportRequest:
    device: str
    start: datetime
    """The hub's local wall clock, naive."""
    end: datetime
    out_dir: Path
    channel: int | None = None
    case: str | None = None
    reason: str | None = None
    requested_by: str | None = None


@dataclass
class ExportResult:
    path: Path
    package_id: str
    manifest: dict[str, Any]
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.gaps


def resolve_device(config: Any, device_id: str, channel: int | None) -> tuple[DeviceConfig, int, str | None]:
    """``(recorder config, channel, camera id)``: a camera that records on a recorder
    (``recorder``/``recorder_channel``) is exported from that recorder."""
    dev = config.device(device_id)
    if dev is None:
        raise ExportError(f"no device {device_id!r} in the config")
    recorder_id = getattr(dev, "recorder", None)
    if recorder_id and getattr(dev, "recorder_channel", None):
        rec = config.device(recorder_id)
        if rec is None:
            raise ExportError(f"camera {device_id!r} records on {recorder_id!r}, which is not in the config")
        return rec, int(dev.recorder_channel), device_id
    return dev, channel or 1, None


async def export(config: Any, plugins: Any, request: ExportRequest, progress: Progress | None = None,
                 remux_process: bool = False) -> ExportResult:
    """Export from a device of ``config`` (the driver is started for the export and closed after)."""
    device, channel, camera = resolve_device(config, request.device, request.channel)
    spec = plugins.platforms().get(device.platform)
    if spec is None:
        raise ExportError(f"platform {device.platform!r} of {device.id!r} is not loaded")
    tz = ZoneInfo(config.hub.timezone)
    ctx = DetachedContext(device, tz=tz, log_name="hub.export")
    driver = spec.driver(device, ctx)
    try:
        try:
            info = await asyncio.wait_for(driver.connect(), timeout=device.timeout * 3)
        except AuthError as exc:
            raise ExportError(f"{device.id}: wrong username or password ({exc})") from None
        except (DeviceError, TimeoutError) as exc:
            raise ExportError(f"{device.id}: recorder unreachable ({exc or type(exc).__name__})") from None
        site = device.site
        if camera is not None:
            cam = config.device(camera)
            site = getattr(cam, "site", None) or site
        return await export_from_driver(
            driver, device, info, channel, request, tz=tz, hub_name=config.hub.name, data_dir=config.data_dir,
            max_hours=config.export.max_hours, progress=progress, site=site, camera=camera,
            remux_process=remux_process, audio=config.export.audio)
    finally:
        await ctx.cancel_tasks()
        with contextlib.suppress(Exception):
            await driver.close()


def _offset(delta: timedelta | None) -> str:
    """``+07:00`` (ISO 8601)."""
    minutes = round((delta or timedelta()).total_seconds() / 60)
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _iso(t: datetime, tz: tzinfo) -> str:
    return t.replace(tzinfo=tz).isoformat(timespec="seconds" if not t.microsecond else "milliseconds")


def find_gaps(segments: list[Segment], start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Stretches of ``start``..``end`` that no segment covers (longer than the tolerance)."""
    gaps = []
    cursor = start
    for seg in sorted(segments, key=lambda s: s.start):
        if (seg.start - cursor).total_seconds() > GAP_TOLERANCE_S:
            gaps.append((cursor, min(seg.start, end)))
        cursor = max(cursor, seg.end)
        if cursor >= end:
            break
    if (end - cursor).total_seconds() > GAP_TOLERANCE_S:
        gaps.append((cursor, end))
    return gaps


def runs(segments: list[Segment]) -> list[list[Segment]]:
    """Segments grouped into stretches without gaps (one MP4 each)."""
    out: list[list[Segment]] = []
    for seg in sorted(segments, key=lambda s: s.start):
        if out and (seg.start - out[-1][-1].end).total_seconds() <= GAP_TOLERANCE_S:
            out[-1].append(seg)
        else:
            out.append([seg])
    return out


async def _download(driver: Driver, seg: Segment, path: Path, on_bytes: Callable[[int], None]) -> tuple[str, int]:
    """Download to ``path``, resuming after a break; returns (SHA-256, bytes) of what was written,
    hashed on the way (the file is only ever appended to, so the hash covers it exactly). Writing
    and hashing run in a worker thread (both release the GIL), off the event loop, a
    :data:`WRITE_BLOCK` at a time."""
    failures = 0
    digest = hashlib.sha256()
    with path.open("wb") as f:
        pending: list[bytes] = []
        size = 0

        def write(chunks: list[bytes]) -> None:
            for chunk in chunks:
                f.write(chunk)
                digest.update(chunk)

        async def flush() -> None:
            nonlocal pending, size
            if pending:
                chunks, pending, size = pending, [], 0
                await asyncio.to_thread(write, chunks)

        async def sink(chunk: bytes) -> None:
            nonlocal size
            pending.append(chunk)
            size += len(chunk)
            on_bytes(len(chunk))
            if size >= WRITE_BLOCK:
                await flush()

        while True:
            offset = f.tell()
            try:
                await driver.download(seg, sink, offset)
                await flush()
                return digest.hexdigest(), f.tell()
            except (ExportUnsupportedError, AuthError):
                raise
            except DeviceError as exc:
                await flush()  # what arrived before the break is good: the resume asks for the rest
                failures = failures + 1 if f.tell() == offset else 1
                if failures > MAX_RETRIES:
                    raise ExportError(f"download of {seg.name} failed {MAX_RETRIES} times in a row "
                                      f"at byte {f.tell()}: {exc}") from None
                log.warning("download of %s broke at byte %d (%s); resuming", seg.name, f.tell(), exc)
                await asyncio.sleep(min(5.0, 0.2 * 2 ** failures))


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "recording"


async def export_from_driver(driver: Driver, device: DeviceConfig, info: DeviceInfo | None, channel: int,
                             request: ExportRequest, *, tz: tzinfo, hub_name: str, data_dir: Path,
                             max_hours: float = 12, progress: Progress | None = None, site: str | None = None,
                             camera: str | None = None, remux_process: bool = False,
                             audio: str = "aac") -> ExportResult:
    """The export itself, from a connected driver (the hub's own, or one started by :func:`export`).
    ``remux_process``: remux in a child process (a running hub, whose loop must stay responsive)
    rather than a worker thread (the command line)."""
    report = progress or (lambda message, fraction: None)
    start, end = request.start.replace(tzinfo=None), request.end.replace(tzinfo=None)
    if end <= start:
        raise ExportError("the end of the window must be after its start")
    hours = (end - start).total_seconds() / 3600
    if hours > max_hours:
        raise ExportError(f"window too long: {hours:g} h (export.max_hours is {max_hours:g} h); split it")
    key = hubkeys.load_or_create(data_dir)

    try:
        skew = await driver.recorder_clock_skew()
        rec_offset = await driver.recorder_utc_offset()
    except DeviceError as exc:
        raise ExportError(f"{device.id}: recorder unreachable ({exc})") from None
    skew_s = float(round(skew)) if skew is not None else 0.0
    # a recorder set to another timezone writes its files in that zone's wall clock: a setting,
    # not drift, so it moves the window but is kept out of clock_skew_s (recorded apart)
    hub_offset = start.replace(tzinfo=tz).utcoffset()
    zone_s = (rec_offset - hub_offset).total_seconds() if rec_offset is not None and hub_offset is not None else 0.0
    shift = timedelta(seconds=skew_s + zone_s)
    rec_start, rec_end = start + shift, end + shift
    report("searching", 0.0)
    try:
        segments = await driver.search_recordings(channel, rec_start, rec_end)
    except ExportUnsupportedError as exc:
        raise ExportError(f"{device.id}: {exc}") from None
    except AuthError as exc:
        raise ExportError(f"{device.id}: wrong username or password ({exc})") from None
    except DeviceError as exc:
        raise ExportError(f"{device.id}: recording search failed ({exc})") from None
    segments = sorted((s for s in segments if s.end > rec_start and s.start < rec_end), key=lambda s: s.start)
    if not segments:
        raise ExportError(f"no footage on {device.id} channel {channel} between {start:%Y-%m-%d %H:%M:%S} "
                          f"and {end:%Y-%m-%d %H:%M:%S}")

    total = sum(s.size or 0 for s in segments)
    estimate = total or int(sum((s.end - s.start).total_seconds() for s in segments) * 1_000_000)
    request.out_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(request.out_dir).free
    if free < 2 * estimate + SPACE_MARGIN:
        raise ExportError(f"disk too small: the export needs about {(2 * estimate + SPACE_MARGIN) >> 20} MB "
                          f"in {request.out_dir}, {free >> 20} MB are free")

    created = datetime.now(tz)
    package_id = f"{device.id}-ch{channel:02d}-{start:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    part = request.out_dir / f"{package_id}.part"
    final = request.out_dir / package_id
    (part / "original").mkdir(parents=True)
    (part / "video").mkdir()
    lock = lock_part(part)
    try:
        originals: list[Original] = []
        hashes: dict[Path, tuple[str, int]] = {}
        received = 0
        names: set[str] = set()

        step = -1  # the last progress reported while downloading, in PROGRESS_STEPS of the whole

        def on_bytes(n: int) -> None:
            nonlocal received, step
            received += n
            if total and (now := int(PROGRESS_STEPS * received / total)) != step:
                step = now  # a report per step, not per chunk (thousands per hour of footage)
                report("downloading", min(0.9, 0.9 * received / total))

        # one MP4 per stretch without gaps; each remux starts with its first file and takes the next
        # ones as their downloads complete (remuxing overlaps downloading)
        groups = runs(segments)
        jobs: dict[int, tuple[RemuxJob, Segment]] = {}
        for n, group in enumerate(groups):
            out = part / "video" / (f"{package_id}.mp4" if len(groups) == 1 else f"{package_id}_{n + 1}.mp4")
            job = RemuxJob(rec_start, rec_end, out, process=remux_process, audio=audio == "aac")
            for seg in group:
                jobs[id(seg)] = (job, group[-1])
        started_jobs: list[RemuxJob] = []
        finishing: list[asyncio.Task[VideoResult | None]] = []
        videos: list[VideoResult] = []
        try:
            # the first remux starts now, not when its first file is in: a child process takes
            # about a second to start (Python, PyAV), which then overlaps the first download
            first_job = jobs[id(segments[0])][0]
            await first_job.begin()
            started_jobs.append(first_job)
            for i, seg in enumerate(segments):
                name = _safe_name(seg.name)
                if name in names:
                    name = f"{i:03d}_{name}"
                names.add(name)
                path = part / "original" / name
                report(f"downloading {name}", 0.9 * i / len(segments) if not total else 0.9 * received / total)
                try:
                    hashes[path] = await _download(driver, seg, path, on_bytes)
                except AuthError as exc:
                    raise ExportError(f"{device.id}: wrong username or password ({exc})") from None
                except DeviceError as exc:
                    raise ExportError(f"{device.id}: download failed ({exc})") from None
                original = Original(path, seg)
                originals.append(original)
                job, last_of_group = jobs[id(seg)]
                if job not in started_jobs:
                    await job.begin()
                    started_jobs.append(job)
                await job.add(original)
                if seg is last_of_group:
                    finishing.append(asyncio.get_running_loop().create_task(job.finish()))
            report("making the MP4", 0.9)
            for task in finishing:
                try:
                    result = await task
                except (OSError, RuntimeError, ValueError, av.FFmpegError) as exc:
                    raise ExportError(f"the recorder's files could not be read as video ({type(exc).__name__}: "
                                      f"{exc})") from None
                if result is not None:
                    videos.append(result)
        except BaseException:
            for task in finishing:
                task.cancel()
            for job in started_jobs:
                await job.abort()
            raise
        if not videos:
            raise ExportError(f"no video frames on {device.id} channel {channel} in that window")

        report("sealing", 0.95)
        gaps = [(a - shift, b - shift) for a, b in find_gaps(segments, rec_start, rec_end)]
        first = min(v.first for v in videos) - shift
        last = max(v.last + timedelta(seconds=v.frame_duration) for v in videos) - shift
        notes = [f"times are the hub's local time ({getattr(tz, 'key', tz)}); the recorder's clock was "
                 f"{skew_s:+g} s off, so the recorder's own times (its file list, the time shown in the "
                 "picture) read that much later"]
        if zone_s:
            notes.append(f"the recorder keeps its clock in UTC{_offset(rec_offset)}, the hub in "
                         f"UTC{_offset(hub_offset)}: its own times read {zone_s:+g} s later again (a timezone "
                         "setting, not drift: not part of clock_skew_s)")
        lead = max(0.0, (start + shift - min(v.first for v in videos)).total_seconds())
        if lead > 0:
            notes.append(f"a copy starts on a keyframe: the MP4 begins {lead:g} s before the requested start")
        for v in videos:
            for note in v.notes:
                if note not in notes:
                    notes.append(note)
        files: list[dict[str, Any]] = []
        read = {k: v for video in videos for k, v in video.originals.items()}
        for o in originals:
            digest, size = hashes[o.path]
            meta = read.get(str(o.path))
            if not meta:
                meta = await asyncio.to_thread(probe, o.path, o.segment.container)
            files.append({"path": f"original/{o.path.name}", "bytes": size, "sha256": digest, "kind": "original",
                          "duration_s": round((o.segment.end - o.segment.start).total_seconds(), 3), **meta,
                          "recorder_start": o.segment.start.isoformat(), "recorder_end": o.segment.end.isoformat(),
                          "container": o.segment.container})
        for v in videos:  # hashed and measured by the remux, right after writing
            files.append({"path": f"video/{v.path.name}", "bytes": v.mp4["bytes"], "sha256": v.mp4["sha256"],
                          "kind": "mp4", **{k: v.mp4[k] for k in ("duration_s", "codec", "width", "height")},
                          "start": _iso(v.first - shift, tz),
                          "end": _iso(v.last - shift + timedelta(seconds=v.frame_duration), tz)})
        info = info or DeviceInfo()
        manifest: dict[str, Any] = {
            "package_id": package_id,
            "created": created.isoformat(timespec="seconds"),
            "hub": {"name": hub_name, "version": __version__},
            "requested_by": request.requested_by,
            "case": request.case,
            "reason": request.reason,
            "device": {"id": device.id, "model": info.model, "serial": info.serial, "firmware": info.firmware,
                       "site": site},
            "camera": camera,
            "channel": channel,
            "requested": {"start": _iso(start, tz), "end": _iso(end, tz)},
            "recorded": {"start": _iso(first, tz), "end": _iso(last, tz)},
            "clock_skew_s": skew_s,
            "recorder_utc_offset": _offset(rec_offset) if rec_offset is not None else None,
            "gaps": [{"start": _iso(a, tz), "end": _iso(b, tz)} for a, b in gaps],
            "files": files,
            "timezone": str(getattr(tz, "key", tz)),
            "notes": notes,
        }
        await asyncio.to_thread(seal, part, manifest, key)
        os.replace(part, final)
        fsync_dir(request.out_dir)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)
    report("done", 1.0)
    return ExportResult(final, package_id, manifest, gaps)
