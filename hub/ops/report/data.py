"""The report's figures, computed from the history (:class:`hub.storage.History`) for one period.

Everything here is plain data (dataclasses of numbers, seconds and Unix times) so a test can check
each figure exactly; :mod:`hub.ops.report.render` turns it into HTML and PDF.

Rules (docs/operations.md, "Báo cáo — Reports"):

* a device is *observed* from the start of the period, or from its first availability transition
  when that comes later (a device added mid-period counts from the moment it was first seen), to
  the end of the period or ``now`` when that comes earlier; its state at the start of the period is
  its last transition before it (which pruning keeps);
* availability = 1 - downtime / observed time; downtime is split by the cause recorded with the
  outage (``site_power``, ``network``, ``device``, ``unknown``); sites and the whole commune sum
  the seconds of their devices;
* power cuts of a host house run from ``power_lost`` / ``power_suspected_lost`` to
  ``power_restored`` / ``power_suspected_restored``, clipped to the period;
* retention: minimum and time-weighted average of the recorder's ``retention_days`` over the
  period, against ``retention_target_days``;
* lights: hours with ``state`` ON; switches while ``mode`` is ``auto`` are the night rule's, those
  in the audit table (a person's command with ``state``) the officers'; manual holds are the times
  ``mode`` became ``manual``;
* tickets from the ``ticket_*`` events of the period: mean time to repair = resolved - opened.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.i18n import tr
from hub.storage import CAUSES, History

KINDS = ("camera", "recorder", "ups", "light")
"""The kinds a report covers, in its order (other kinds, e.g. meters, are left out)."""
IMAGE_FAULTS = ("stream_down", "image_covered", "image_dark", "image_blurry", "image_frozen", "scene_moved")
DISK_FAULTS = ("disk_error", "disk_full", "disk_missing")
TICKET_EVENTS = ("ticket_opened", "ticket_resolved", "ticket_overdue")
CUT_STARTS = ("power_lost", "power_suspected_lost")
CUT_ENDS = ("power_restored", "power_suspected_restored")


@dataclass(frozen=True)
class ReportDevice:
    id: str
    kind: str
    site: str | None
    name: str | None = None


@dataclass
class Availability:
    observed_s: float = 0.0
    down_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0.0))

    @property
    def downtime_s(self) -> float:
        return sum(self.down_s.values())

    @property
    def ratio(self) -> float | None:
        """Available share of the observed time (``None``: never observed)."""
        return 1.0 - self.downtime_s / self.observed_s if self.observed_s > 0 else None

    def add(self, other: Availability) -> None:
        self.observed_s += other.observed_s
        for cause, seconds in other.down_s.items():
            self.down_s[cause] += seconds


@dataclass
class DeviceFigures:
    device: ReportDevice
    availability: Availability
    outages: int = 0
    observed_from: float | None = None
    """Unix time its observation began (``None``: no data in the period)."""
    observed_to: float | None = None


@dataclass
class PowerCut:
    start: float
    end: float
    suspected: bool
    ongoing: bool = False

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass
class SitePower:
    site: str
    cuts: list[PowerCut] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.cuts)

    @property
    def total_s(self) -> float:
        return sum(c.duration_s for c in self.cuts)

    @property
    def longest_s(self) -> float:
        return max((c.duration_s for c in self.cuts), default=0.0)


@dataclass
class RecorderFigures:
    device: ReportDevice
    target_days: float | None
    min_days: float | None
    avg_days: float | None
    disk_faults: dict[str, int]

    @property
    def below_target(self) -> bool:
        return self.target_days is not None and self.min_days is not None and self.min_days < self.target_days


@dataclass
class CameraFaults:
    device: ReportDevice
    faults: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.faults.values())


@dataclass
class LightFigures:
    device: ReportDevice
    hours_on: float
    rule_switches: int
    officer_switches: int
    holds: int


@dataclass
class ContractorTickets:
    contractor: str
    opened: int = 0
    resolved: int = 0
    overdue: int = 0
    within_deadline: int = 0
    repair_s: list[float] = field(default_factory=list)

    @property
    def mttr_s(self) -> float | None:
        return sum(self.repair_s) / len(self.repair_s) if self.repair_s else None

    @property
    def within_share(self) -> float | None:
        return self.within_deadline / self.resolved if self.resolved else None


@dataclass
class ReportData:
    commune: str
    start: datetime
    end: datetime
    site: str | None
    site_names: dict[str, str]
    devices: list[DeviceFigures]
    by_site: dict[str, Availability]
    by_kind: dict[str, Availability]
    overall: Availability
    daily: list[tuple[date, float | None]]
    power: list[SitePower]
    recorders: list[RecorderFigures]
    cameras: list[CameraFaults]
    lights: list[LightFigures]
    tickets: ContractorTickets
    contractors: list[ContractorTickets]


# ------------------------------------------------------------------------------------------ periods

def month_period(text: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``"2026-11"`` -> its first midnight and the next month's, in ``tz`` (ValueError otherwise)."""
    try:
        year, month = (int(p) for p in text.split("-"))
        start = datetime(year, month, 1, tzinfo=tz)
    except ValueError:
        raise ValueError(tr("bad month {text!r}: expected YYYY-MM, e.g. 2026-11", text=text)) from None
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
    return start, end


def quarter_period(text: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``"2026-Q4"`` -> 1 October 00:00 to 1 January 00:00, in ``tz``."""
    try:
        year_text, q_text = text.upper().split("-Q")
        year, q = int(year_text), int(q_text)
        if not 1 <= q <= 4:
            raise ValueError
        start = datetime(year, 3 * q - 2, 1, tzinfo=tz)
    except ValueError:
        raise ValueError(tr("bad quarter {text!r}: expected YYYY-Qn, e.g. 2026-Q4", text=text)) from None
    end = datetime(year + (q == 4), (3 * q) % 12 + 1, 1, tzinfo=tz)
    return start, end


def days_period(first: str, last: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``--from 2026-11-01 --to 2026-11-15``: both days included (ends at the midnight after ``last``)."""
    try:
        a, b = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        raise ValueError(tr("bad date {first!r} or {last!r}: expected YYYY-MM-DD", first=first,
                            last=last)) from None
    if b < a:
        raise ValueError(tr("--to {last} is before --from {first}", first=first, last=last))
    return datetime(a.year, a.month, a.day, tzinfo=tz), datetime(b.year, b.month, b.day, tzinfo=tz) + timedelta(days=1)


def local_midnights(start: datetime, end: datetime) -> list[datetime]:
    """``start``, the local midnights after it, and ``end``: the bounds of the period's days."""
    tz = start.tzinfo
    out = [start]
    day = start.date() + timedelta(days=1)
    while True:
        m = datetime(day.year, day.month, day.day, tzinfo=tz)
        if m >= end:
            out.append(end)
            return out
        out.append(m)
        day += timedelta(days=1)


# ------------------------------------------------------------------------------------------ compute

def compute(history: History, devices: Iterable[ReportDevice], start: datetime, end: datetime, *,
            commune: str, site: str | None = None, site_names: dict[str, str] | None = None,
            now: datetime | None = None) -> ReportData:
    """The figures of the period [``start``, ``end``) (aware datetimes in the hub's timezone) for
    ``devices`` (those of ``site`` only when given); nothing after ``now`` is counted."""
    devs = [d for d in devices if d.kind in KINDS and (site is None or d.site == site)]
    s = start.timestamp()
    e = min(end.timestamp(), now.timestamp()) if now is not None else end.timestamp()
    e = max(e, s)
    bounds = [m.timestamp() for m in local_midnights(start, end)]
    figures, daily_down = _availability(history, devs, s, e, bounds)
    by_site: dict[str, Availability] = {}
    by_kind: dict[str, Availability] = {k: Availability() for k in KINDS}
    overall = Availability()
    for f in figures:
        by_site.setdefault(f.device.site or "-", Availability()).add(f.availability)
        by_kind[f.device.kind].add(f.availability)
        overall.add(f.availability)
    daily: list[tuple[date, float | None]] = []
    for i in range(len(bounds) - 1):
        a, b = bounds[i], min(bounds[i + 1], e)
        observed = sum(max(0.0, min(b, f.observed_to) - max(a, f.observed_from))
                       for f in figures if f.observed_from is not None and f.observed_to is not None)
        down = daily_down.get(i, 0.0)
        day = datetime.fromtimestamp(bounds[i], start.tzinfo).date()
        daily.append((day, 1.0 - down / observed if observed > 0 else None))
    sites = sorted({d.site for d in devs if d.site} | ({site} if site else set()))
    return ReportData(
        commune=commune, start=start, end=end, site=site, site_names=dict(site_names or {}),
        devices=figures, by_site=dict(sorted(by_site.items())), by_kind=by_kind, overall=overall, daily=daily,
        power=_power(history, sites, s, e), recorders=_recorders(history, devs, s, e),
        cameras=_camera_faults(history, devs, s, e), lights=_lights(history, devs, s, e),
        **_tickets(history, site, s, e))


def _split(a: float, b: float, bounds: list[float], into: dict[int, float]) -> None:
    """Add the seconds of [a, b) to the local days they fall in."""
    import bisect

    i = max(bisect.bisect_right(bounds, a) - 1, 0)
    while a < b and i < len(bounds) - 1:
        part_end = min(b, bounds[i + 1])
        if part_end > a:
            into[i] = into.get(i, 0.0) + part_end - a
        a = part_end
        i += 1


def _availability(history: History, devs: list[ReportDevice], s: float, e: float,
                  bounds: list[float]) -> tuple[list[DeviceFigures], dict[int, float]]:
    # per device, its transitions of the period read through the covering index (device, ts,
    # available, cause), walked once: each offline row lasts until the next row (or the end). Plain
    # rows walked in Python measured faster here than SQLite's LEAD() window over the same rows.
    daily: dict[int, float] = defaultdict(float)
    last_day = len(bounds) - 2
    figures = []
    for dev in devs:
        before = history.availability_before(dev.id, s)
        rows = history.query("SELECT ts, available, cause FROM availability WHERE device=? AND ts>=? AND ts<? "
                             "ORDER BY ts", (dev.id, s, e))
        if before is None and not rows:
            figures.append(DeviceFigures(dev, Availability()))
            continue
        begin = s if before is not None else float(rows[0][0])
        down = dict.fromkeys(CAUSES, 0.0)
        outages = 0
        day = 0
        # the state when the period began (its last transition before), then each transition
        at, up, cause = (s, before[1], before[2]) if before is not None else rows[0]
        was_up = True
        for nxt in (*rows[1 if before is None else 0:], (e, True, None)):
            until = nxt[0]
            if not up and was_up:  # an outage begins (a second "offline" row, e.g. after a restart, does not)
                outages += 1
            if not up and until > at:
                down[cause if cause in CAUSES else "unknown"] += until - at
                while day < last_day and bounds[day + 1] <= at:
                    day += 1
                if until <= bounds[day + 1]:
                    daily[day] += until - at
                else:
                    _split(at, until, bounds, daily)
            was_up = bool(up)
            at, up, cause = nxt
        figures.append(DeviceFigures(dev, Availability(observed_s=e - begin, down_s=down), outages, begin, e))
    return figures, daily


def _events(history: History, types: Iterable[str], s: float, e: float,
            site: str | None = None) -> list[tuple[float, str, str | None, str | None, dict[str, Any]]]:
    types = tuple(types)
    marks = ",".join("?" * len(types))
    q = f"SELECT ts, type, device, site, data FROM events WHERE type IN ({marks}) AND ts >= ? AND ts < ?"
    args: tuple[Any, ...] = (*types, s, e)
    if site is not None:
        q += " AND site = ?"
        args += (site,)
    return [(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in history.query(q + " ORDER BY ts, rowid", args)]


def _power(history: History, sites: list[str], s: float, e: float) -> list[SitePower]:
    out = []
    marks = ",".join("?" * (len(CUT_STARTS) + len(CUT_ENDS)))
    for site in sites:
        sp = SitePower(site)
        prior = history.query(f"SELECT ts, type FROM events WHERE site=? AND ts<? AND type IN ({marks}) "
                              "ORDER BY ts DESC, rowid DESC LIMIT 1", (site, s, *CUT_STARTS, *CUT_ENDS))
        open_at: float | None = None
        suspected = False
        if prior and prior[0][1] in CUT_STARTS:
            open_at, suspected = s, prior[0][1] == "power_suspected_lost"
        for ts, type_, _dev, _site, _data in _events(history, (*CUT_STARTS, *CUT_ENDS), s, e, site):
            if type_ in CUT_STARTS:
                if open_at is None:
                    open_at, suspected = ts, type_ == "power_suspected_lost"
                elif type_ == "power_lost":
                    suspected = False  # a suspicion confirmed by a UPS
            elif open_at is not None:
                sp.cuts.append(PowerCut(open_at, ts, suspected))
                open_at = None
        if open_at is not None:
            sp.cuts.append(PowerCut(open_at, e, suspected, ongoing=True))
        out.append(sp)
    return out


def _state_rows(history: History, device: str, keys: tuple[str, ...], s: float,
                e: float) -> list[tuple[float, dict[str, Any]]]:
    """The device's state rows of the period carrying one of ``keys`` (only those keys; JSON null
    kept as ``None``), led by a row at the period's start with each key's last value before it.
    SQLite picks the rows (``instr``) and the values (``json_extract``): no row is parsed in Python."""
    marks = [f'"{k}":' for k in keys]
    paths = [f"$.{k}" for k in keys]
    first: dict[str, Any] = {}
    for key, mark, path in zip(keys, marks, paths, strict=True):
        prior = history.query("SELECT json_extract(state, ?) FROM states WHERE device=? AND ts<? AND instr(state, ?) "
                              "ORDER BY ts DESC LIMIT 1", (path, device, s, mark))
        if prior:
            first[key] = prior[0][0]
    rows: list[tuple[float, dict[str, Any]]] = [(s, first)] if first else []
    cols = ", ".join("instr(state, ?), json_extract(state, ?)" for _ in keys)
    present = " OR ".join("instr(state, ?)" for _ in keys)
    for ts, *values in history.query(
            f"SELECT ts, {cols} FROM states WHERE device=? AND ts>=? AND ts<? AND ({present}) ORDER BY ts",
            (*(x for pair in zip(marks, paths, strict=True) for x in pair), device, s, e, *marks)):
        rows.append((ts, {k: values[2 * i + 1] for i, k in enumerate(keys) if values[2 * i]}))
    return rows


def _of_kind(devs: list[ReportDevice], kind: str) -> Iterable[ReportDevice]:
    return (d for d in devs if d.kind == kind)


def _recorders(history: History, devs: list[ReportDevice], s: float, e: float) -> list[RecorderFigures]:
    out = []
    for dev in _of_kind(devs, "recorder"):
        target: float | None = None
        rows = _state_rows(history, dev.id, ("retention_days", "retention_target_days"), s, e)
        for _ts, st in rows:
            if st.get("retention_target_days") is not None:
                target = float(st["retention_target_days"])
        values: list[float] = []
        weighted = 0.0
        span = 0.0
        kept = [(ts, st["retention_days"]) for ts, st in rows if "retention_days" in st]  # null: unknown from then
        for i, (ts, value) in enumerate(kept):
            if value is None:
                continue
            until = kept[i + 1][0] if i + 1 < len(kept) else e
            values.append(float(value))
            weighted += float(value) * (until - ts)
            span += until - ts
        faults = dict.fromkeys(DISK_FAULTS, 0)
        for _ts, type_, _d, _s, _data in _events_of(history, dev.id, DISK_FAULTS, s, e):
            faults[type_] += 1
        out.append(RecorderFigures(dev, target, min(values) if values else None,
                                   weighted / span if span > 0 else (values[-1] if values else None), faults))
    return out


def _events_of(history: History, device: str, types: tuple[str, ...], s: float,
               e: float) -> list[tuple[float, str, str | None, str | None, dict[str, Any]]]:
    marks = ",".join("?" * len(types))
    return [(r[0], r[1], r[2], r[3], {}) for r in history.query(
        f"SELECT ts, type, device, site FROM events WHERE type IN ({marks}) AND ts>=? AND ts<? AND device=?",
        (*types, s, e, device))]


def _camera_faults(history: History, devs: list[ReportDevice], s: float, e: float) -> list[CameraFaults]:
    out = []
    for dev in _of_kind(devs, "camera"):
        faults = dict.fromkeys(IMAGE_FAULTS, 0)
        for _ts, type_, *_rest in _events_of(history, dev.id, IMAGE_FAULTS, s, e):
            faults[type_] += 1
        out.append(CameraFaults(dev, faults))
    return out


def _lights(history: History, devs: list[ReportDevice], s: float, e: float) -> list[LightFigures]:
    out = []
    for dev in _of_kind(devs, "light"):
        rows = _state_rows(history, dev.id, ("state", "mode"), s, e)
        on_s = 0.0
        rule = 0
        state: str | None = None
        mode: str | None = None
        holds = 0
        for i, (ts, st) in enumerate(rows):
            until = rows[i + 1][0] if i + 1 < len(rows) else e
            if st.get("mode") is not None:
                if st["mode"] == "manual" and mode != "manual" and i > 0:
                    holds += 1
                mode = st["mode"]
            new = st.get("state", state)
            if i > 0 and new in ("ON", "OFF") and state in ("ON", "OFF") and new != state and mode != "manual":
                rule += 1
            state = new
            if state == "ON":
                on_s += until - ts
        officer = 0
        for (command,) in history.query("SELECT command FROM audit WHERE device=? AND ts>=? AND ts<? AND result='ok'",
                                        (dev.id, s, e)):
            try:
                parsed = json.loads(command)
            except ValueError:
                continue
            officer += isinstance(parsed, dict) and "state" in parsed
        out.append(LightFigures(dev, on_s / 3600.0, rule, officer, holds))
    return out


def _tickets(history: History, site: str | None, s: float, e: float) -> dict[str, Any]:
    total = ContractorTickets("")
    per: dict[str, ContractorTickets] = {}
    for ts, type_, _dev, _site, data in _events(history, TICKET_EVENTS, s, e, site):
        name = str(data.get("contractor") or "")
        c = per.setdefault(name, ContractorTickets(name))
        for t in (total, c):
            if type_ == "ticket_opened":
                t.opened += 1
            elif type_ == "ticket_overdue":
                t.overdue += 1
            else:
                t.resolved += 1
                t.within_deadline += bool(data.get("within_deadline"))
                try:
                    opened = datetime.fromisoformat(str(data["opened"])).timestamp()
                    t.repair_s.append(ts - opened)
                except (KeyError, ValueError):
                    pass
    return {"tickets": total, "contractors": sorted(per.values(), key=lambda c: (c.contractor == "", c.contractor))}
