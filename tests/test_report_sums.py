"""The report's availability figures summed by SQLite (``down_from``/``down_cause`` on the row
that ends an outage) against the plain walk over every transition that computed them before, on
random histories: late clocks, repeated offline rows, causes named later, pruning, a history
written before those columns existed (migrated when opened), a site filter and a "now" clip."""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub.ops.report import data
from hub.ops.report.data import (
    Availability,
    DeviceFigures,
    RecorderFigures,
    ReportDevice,
    compute,
    local_midnights,
    month_period,
)
from hub.storage import CAUSES, History

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def walk(history: History, devs: list[ReportDevice], s: float, e: float,
                  bounds: list[float]) -> tuple[list[DeviceFigures], dict[int, float]]:
    # each offline row lasts until the next row (or the end)
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
                    data._split(at, until, bounds, daily)
            was_up = bool(up)
            at, up, cause = nxt
        figures.append(DeviceFigures(dev, Availability(observed_s=e - begin, down_s=down), outages, begin, e))
    return figures, daily


def walk_recorders(history: History, devs: list[ReportDevice], s: float, e: float) -> list[RecorderFigures]:
    out = []
    for dev in data._of_kind(devs, "recorder"):
        target: float | None = None
        rows = data._state_rows(history, dev.id, ("retention_days", "retention_target_days"), s, e)
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
        faults: dict[str, int] = {}  # counted by one query (the month's test checks them)
        out.append(RecorderFigures(dev, target, min(values) if values else None,
                                   weighted / span if span > 0 else (values[-1] if values else None), faults))
    return out


def random_history(path: Path, seed: int) -> tuple[History, list[ReportDevice]]:
    """Ten devices over October to December 2026, transitions a few minutes to two days apart."""
    rng = random.Random(seed)
    h = History(path)
    devs = [ReportDevice(f"d{i}", ("camera", "recorder", "ups", "light")[i % 4], f"s{i % 3}") for i in range(10)]
    start = datetime(2026, 10, 1, tzinfo=TZ).timestamp()
    for dev in devs[:-1]:  # the last one never reports
        ts = start + rng.uniform(0, 60 * 86400)  # some begin inside November
        up = rng.random() < 0.7
        while ts < start + 92 * 86400:
            cause = rng.choice((*CAUSES, None))
            when = datetime.fromtimestamp(round(ts, 6), TZ)
            late = rng.random() < 0.05  # a late clock: stamped before what is already stored
            if late and ts - start > 86400:
                when -= timedelta(seconds=rng.uniform(1, 86400))
            h.add_availability(when, dev.id, up, cause)
            if not up and rng.random() < 0.2:
                h.set_cause(dev.id, when, rng.choice(CAUSES))  # named later, maybe after another flush
            if rng.random() < 0.3:
                h.flush()
            # mostly alternating, sometimes offline twice in a row (a restart during an outage)
            up = not up if rng.random() < 0.85 else up
            ts += rng.choice((rng.uniform(60, 3600), rng.uniform(3600, 2 * 86400)))
    h.flush()
    return h, devs


def same(got: tuple[list[DeviceFigures], dict[int, float]], want: tuple[list[DeviceFigures], dict[int, float]]) -> None:
    for g, w in zip(got[0], want[0], strict=True):
        assert (g.device, g.outages, g.observed_from, g.observed_to) == (w.device, w.outages, w.observed_from,
                                                                         w.observed_to)
        assert g.availability.observed_s == w.availability.observed_s
        # the same intervals summed in another order: equal to the last microsecond
        assert g.availability.down_s == pytest.approx(w.availability.down_s, rel=1e-12, abs=1e-6)
    days = set(got[1]) | set(want[1])
    assert {i: got[1].get(i, 0.0) for i in days} == pytest.approx({i: want[1].get(i, 0.0) for i in days},
                                                                 rel=1e-12, abs=1e-6)


def both(h: History, devs: list[ReportDevice], now: datetime | None = None) -> None:
    start, end = month_period("2026-11", TZ)
    s, e = start.timestamp(), min(end, now or end).timestamp()
    bounds = [m.timestamp() for m in local_midnights(start, end)]
    same(data._availability(h, devs, s, e, bounds), walk(h, devs, s, e, bounds))


@pytest.mark.parametrize("seed", range(6))
def test_sql_sums_equal_the_walk(tmp_path: Path, seed: int) -> None:
    h, devs = random_history(tmp_path / "h.db", seed)
    both(h, devs)
    both(h, [d for d in devs if d.site == "s1"], now=datetime(2026, 11, 17, 13, 5, tzinfo=TZ))
    h.purge(datetime(2026, 11, 1, tzinfo=TZ))  # pruning keeps what the month needs
    both(h, devs)
    h.close()


def test_history_without_the_columns_is_migrated(tmp_path: Path) -> None:
    """A history written by the previous schema (no ``down_from``/``down_cause``) opens, gains them
    filled from its transitions, and reports as the walk does."""
    h, devs = random_history(tmp_path / "new.db", 99)
    rows = h.query("SELECT device, ts, available, cause FROM availability ORDER BY rowid")
    h.close()
    old = tmp_path / "old.db"
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE availability (device TEXT NOT NULL, ts REAL NOT NULL, available INTEGER NOT NULL, "
               "cause TEXT)")
    db.execute("CREATE INDEX availability_device_ts ON availability (device, ts, available, cause)")
    db.executemany("INSERT INTO availability VALUES (?,?,?,?)", rows)
    db.commit()
    db.close()
    h = History(old)
    assert h.query("SELECT count(*) FROM availability WHERE down_from IS NOT NULL")[0][0] > 100
    assert [r[1] for r in h.query("PRAGMA index_list(availability)")] == ["availability_device_ts_down"]
    both(h, devs)
    assert compute(h, devs, *month_period("2026-11", TZ), commune="x").devices[0].availability != Availability()
    h.close()
    h = History(old)  # opened again: nothing left to migrate
    both(h, devs)
    h.close()


@pytest.mark.parametrize("seed", range(4))
def test_retention_sums_equal_the_walk(tmp_path: Path, seed: int) -> None:
    """A recorder's retention minimum and time-weighted average, and its target, summed by SQLite
    as the walk over its state rows did: values before the month, nulls (unknown from then), rows
    with only the target, a recorder without any."""
    rng = random.Random(seed)
    h = History(tmp_path / "h.db")
    devs = [ReportDevice(f"r{i}", "recorder", "s") for i in range(5)]
    start = datetime(2026, 10, 20, tzinfo=TZ).timestamp()
    for dev in devs[1:]:
        ts = start + rng.uniform(0, 20 * 86400)
        while ts < start + 45 * 86400:
            state: dict[str, object] = {}
            if rng.random() < 0.8:
                state["retention_days"] = rng.choice((None, rng.randrange(3, 30), round(rng.uniform(3, 30), 2)))
            if rng.random() < 0.2:
                state["retention_target_days"] = rng.choice((None, 14, 30))
            h.add_state(datetime.fromtimestamp(round(ts, 6), TZ), dev.id, state or {"motion": True})
            h.flush()
            ts += rng.uniform(600, 3 * 86400)
    start_m, end_m = month_period("2026-11", TZ)
    for now in (end_m, datetime(2026, 11, 9, 7, 30, tzinfo=TZ)):
        s, e = start_m.timestamp(), now.timestamp()
        got, want = data._recorders(h, devs, s, e), walk_recorders(h, devs, s, e)
        for g, w in zip(got, want, strict=True):
            assert (g.device, g.target_days, g.min_days) == (w.device, w.target_days, w.min_days)
            assert g.avg_days == (pytest.approx(w.avg_days, rel=1e-12) if w.avg_days is not None else None)
    h.close()
