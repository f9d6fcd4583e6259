"""``anninh reference``: the reference pictures the image-health checks compare cameras against.

    anninh reference set CAMERA -c config.yaml [--force]     take a picture now and store it
    anninh reference show CAMERA -c config.yaml -o FILE.png  reference | latest | difference
    anninh reference clear CAMERA -c config.yaml             forget it (the next healthy daylight
                                                              picture becomes the reference)

``set`` talks to the camera itself (its driver, with the config's credentials), so it works with
or without the hub running; a running hub notices the new reference by the file's time. ``show``
uses the latest picture the hub kept, or a fresh one with ``--live``. Files live in
``<data_dir>/references/`` (see :mod:`plugins.image_health.reference`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hub.api import CliContext, CommandSpec, DeviceConfig, DeviceError
from hub.api.runtime import describe_error
from hub.i18n import N_, _, tr

from .monitor import HealthOptions

# .reference and .sources (OpenCV, numpy, PyAV) are imported by the command itself: the CLI
# imports this module to build its parser for every command, `anninh run` included


async def take_picture(device: DeviceConfig, cli: CliContext, source: str | None = None) -> Any:
    """Connect to one camera with its driver and take one measured picture (with its JPEG)."""
    from .sources import check_snapshot, check_stream

    driver = cli.driver(device)
    source = source or getattr(device, "health_source", "snapshot")
    opts = HealthOptions()
    try:
        await asyncio.wait_for(driver.connect(), device.timeout)
        url = driver.stream_url(None) if source == "stream" else None
        if url:
            return await asyncio.to_thread(check_stream, url, want_picture=True, connect_timeout=opts.connect_timeout,
                                           read_timeout=opts.read_timeout, frame_timeout=opts.frame_timeout)
        jpeg = await asyncio.wait_for(driver.snapshot(None), device.timeout)
        stats = await asyncio.to_thread(check_snapshot, jpeg)
        from dataclasses import replace

        return replace(stats, picture=bytes(jpeg))
    finally:
        try:
            await asyncio.wait_for(driver.close(), 5)
        except Exception:  # closing is best effort
            pass


def _camera(config: Any, name: str) -> DeviceConfig:
    device = config.device(name)
    if device is None or not hasattr(device, "health_interval"):
        cams = [d.id for d in config.devices if hasattr(d, "health_interval")]
        print(tr("error: {name} is not a camera in {path} (cameras: {cameras})", name=repr(name), path=config.path,
                 cameras=", ".join(cams) or _("none")), file=sys.stderr)
        raise SystemExit(2)
    return device


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("set", "show", "clear"),
                   help=_("set: store the current picture; show: write reference | latest | difference to -o "
                          "FILE; clear: forget the reference"))
    p.add_argument("camera", help=_("device id of the camera (or recorder)"))
    p.add_argument("-c", "--config", required=True, type=Path, metavar="FILE",
                   help=_("the hub's YAML config"))
    p.add_argument("-o", "--output", type=Path, metavar="FILE.png", help=_("show: picture to write"))
    p.add_argument("--force", action="store_true",
                   help=_("set: store even a dark, covered or blurry picture"))
    p.add_argument("--live", action="store_true",
                   help=_("show: take a fresh picture instead of the hub's latest"))
    p.add_argument("--source", choices=("snapshot", "stream"),
                   help=_("take the picture from here (default: the camera's health_source)"))


def cmd_reference(args: argparse.Namespace, cli: CliContext) -> int:
    from .reference import ReferenceStore

    config = cli.load_config(args.config)
    device = _camera(config, args.camera)
    store = ReferenceStore(config.data_dir)
    if args.action == "clear":
        if store.clear(device.id):
            print(tr("{device}: reference removed", device=device.id))
        else:
            print(tr("{device}: reference was not set", device=device.id))
        return 0
    if args.action == "show" and not args.output:
        print(_("error: show needs -o FILE.png"), file=sys.stderr)
        return 2
    stats = None
    if args.action == "set" or args.live:
        try:
            stats = asyncio.run(take_picture(device, cli, args.source))
        except (DeviceError, TimeoutError, OSError) as exc:
            print(tr("error: {device}: no picture: {error}", device=device.id,
                     error=describe_error(exc, device.timeout)), file=sys.stderr)
            return 1
    if args.action == "set":
        assert stats is not None and stats.picture is not None
        opts = HealthOptions()
        problems = []
        if stats.brightness < opts.dark_below:
            problems.append(tr("dark (brightness {brightness})", brightness=format(stats.brightness, ".0f")))
        elif stats.contrast < opts.cover_max_contrast and stats.edges < opts.cover_max_edges:
            problems.append(_("covered (no structure)"))
        elif stats.sharpness < opts.blur_below:
            problems.append(tr("blurry (sharpness {sharpness})", sharpness=format(stats.sharpness, ".2f")))
        if problems and not args.force:
            print(tr("error: {device}: the picture is {problems}; use --force to store it anyway", device=device.id,
                     problems=", ".join(problems)), file=sys.stderr)
            return 1
        meta = store.save(device.id, stats.picture, source="cli", time=datetime.now(UTC), width=stats.width,
                          height=stats.height, brightness=stats.brightness, sharpness=stats.sharpness)
        print(tr("{device}: reference stored in {path}", device=device.id, path=store.picture_path(device.id)))
        # the file keeps UTC; the person reading this gets the hub's timezone
        shown = {**meta, "time": datetime.fromisoformat(meta["time"]).astimezone(ZoneInfo(config.hub.timezone))
                 .isoformat(timespec="seconds")} if isinstance(meta.get("time"), str) else meta
        print(json.dumps(shown))
        return 0
    try:
        summary = store.compose(device.id, args.output, latest=stats.picture if stats is not None else None)
    except (FileNotFoundError, ValueError) as exc:
        print(tr("error: {issue}", issue=exc), file=sys.stderr)
        return 1
    print(tr("{device}: wrote {path} (reference | latest | difference)", device=device.id, path=args.output))
    print(json.dumps(summary))
    return 0


REFERENCE = CommandSpec(name="reference", run=cmd_reference, arguments=_args,
                        help=N_("store, show or clear a camera's reference picture (image health checks)"))
