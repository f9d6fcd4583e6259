"""Write a report of a period from a hub's config and history: what ``anninh report`` and the demo
call."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from hub.i18n import tr

from .data import ReportData, ReportDevice, compute

log = logging.getLogger(__name__)


def guess_kind(device: Any, plugins: Any) -> str:
    """A device's kind from its config when the history has not recorded it (never online)."""
    if getattr(device, "kind", None) in ("nvr", "dvr"):
        return "recorder"
    try:
        driver = plugins.platforms()[device.platform].driver
    except Exception:
        return "device"
    kind = getattr(driver, "kind", None) if isinstance(driver, type) else None
    return kind if isinstance(kind, str) else "device"


def report_data(config: Any, plugins: Any, start: datetime, end: datetime, *, site: str | None = None,
                now: datetime | None = None) -> ReportData:
    """The figures of [``start``, ``end``) from ``config``'s history (``<data_dir>/history.db``),
    for the devices of the config (their kinds as the history recorded them)."""
    from hub.storage import History

    history = History(config.data_dir / "history.db")
    try:
        kinds = history.device_kinds()
        devices = [ReportDevice(d.id, kinds[d.id][0] if d.id in kinds else guess_kind(d, plugins), d.site, d.name)
                   for d in config.devices]
        return compute(history, devices, start, end, commune=config.hub.name, site=site,
                       site_names={s.id: s.name or s.id for s in config.sites}, now=now)
    finally:
        history.close()


def write_report(config: Any, plugins: Any, start: datetime, end: datetime, out: Path, lang: str, *,
                 site: str | None = None, now: datetime | None = None) -> ReportData:
    """Compute and write the report (PDF or HTML by ``out``'s suffix)."""
    from .render import build_view, write

    data = report_data(config, plugins, start, end, site=site, now=now)
    write(build_view(data, lang, generated=now), out)
    return data


def evening_report(config: Any, plugins: Any, start: datetime, end: datetime, out: Path, lang: str) -> str:
    """The demo's last line: the report of the scripted evening written to ``out``, or why not."""
    try:
        write_report(config, plugins, start, end, out, lang, now=end)
    except Exception as exc:
        log.error("demo report failed: %s", exc)
        return tr("The evening's report could not be written: {error}", error=str(exc))
    return tr("Report of the evening: {path}", path=str(out))
