"""Report benchmark: a quarter's report of a large commune, time and peak memory, against a floor
measured in the same run.

    python bench/bench_report.py [--devices 500] [--days 92] [--every 30] [--state-every 10] [--db PATH]

A synthetic history (``hub.storage.History``'s own schema, written through its own ``add_*`` and
``flush``) of ``--devices`` devices (60 % cameras, 12 % recorders, 14 % UPS, 14 % lights over
``--devices / 10`` sites) for ``--days`` days before 1 January 2027 (Q4 2026 with the default 92
days): each device changes availability every 2 to ``2 * every - 2`` minutes (mean ``--every``;
500 devices changing every 30 min on average make a change every 3.6 s in the commune), with causes;
state rows as the hub records changes: cameras' motion and UPS charge every ``--state-every``
minutes, recorders' retention hourly, lights at their switches; sites lose power every few days;
image faults, officer commands and tickets sprinkled in. ``--every 6`` is the stress case (each
device flapping all quarter). Then,
each in a fresh process so that its peak RSS is its own:

1. **Floor**: a bare SQLite scan of the rows the report reads (the period's availability rows
   summed per device, the lights' and recorders' state rows counted), nothing computed in Python;
2. **Report**: ``anninh report``'s work: :func:`hub.ops.report.data.compute` for the quarter and
   the PDF with its charts (``--html``: HTML).

Target: report under 10 s and 300 MB peak RSS; printed with the ratio to the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
END = datetime(2027, 1, 1, tzinfo=TZ)


def devices(n: int) -> list[tuple[str, str, str]]:
    """(id, kind, site) of ``n`` devices."""
    sites = max(1, n // 10)
    shares = (("camera", 0.60), ("recorder", 0.12), ("ups", 0.14), ("light", 0.14))
    out = []
    for kind, share in shares:
        for i in range(round(n * share)):
            out.append((f"{kind}-{i:04d}", kind, f"site-{i % sites:03d}"))
    return out[:n]


def generate(path: Path, n: int, days: int, every: float, state_every: float, seed: int = 7) -> int:
    """Write the synthetic history: the schema is ``History``'s own (it creates the file), the rows
    go in with plain ``executemany`` (millions of them; the hub writes the same rows one flush a second)."""
    import sqlite3

    from hub.storage import History

    History(path).close()
    db = sqlite3.connect(path)
    rng = random.Random(seed)
    t0, t1 = (END - timedelta(days=days)).timestamp(), END.timestamp()
    causes = ("network", "device", "unknown", "site_power")
    rows = 0
    events: list[tuple[float, str, str | None, str | None, str]] = []
    for dev, kind, site in devices(n):
        avail: list[tuple[str, float, int, str | None]] = [(dev, t0 - 86400.0, 1, None)]
        ts, available = t0 - 86400.0, True
        hi = max(2 * every - 2.0, 2.5)
        while True:
            ts += 60.0 * rng.uniform(2.0, hi)
            if ts >= t1:
                break
            available = not available
            avail.append((dev, ts, int(available), None if available else causes[rng.randrange(4)]))
        db.executemany("INSERT INTO availability VALUES (?,?,?,?)", avail)
        db.execute("INSERT INTO device_kinds VALUES (?,?,?)", (dev, kind, site))
        rows += len(avail)
        # the hub records changes: cameras' motion and UPS charge every few minutes, a recorder's
        # retention every hour, a light at its switches (night rule: 18:00 and 06:00)
        states: list[tuple[float, str, str]] = []
        step = {"light": 43200, "recorder": 3600}.get(kind, int(state_every * 60))
        first = t0 - 6 * 3600 if kind == "light" else t0  # lights switch at 18:00/06:00 local (UTC+7)
        for k, ts in enumerate(range(int(first), int(t1), step)):
            if kind == "light":
                state: dict[str, object] = {"state": "ON" if k % 2 == 0 else "OFF", "mode": "auto"}
            elif kind == "recorder":
                state = {"retention_days": 10 + (k % 50) / 10, "retention_target_days": 14}
            elif kind == "ups":
                state = {"battery_charge": 90 + k % 10}
            else:
                state = {"motion": k % 2 == 0}
            states.append((float(ts), dev, json.dumps(state, separators=(",", ":"))))
        db.executemany("INSERT INTO states VALUES (?,?,?)", states)
        rows += len(states)
        if kind == "camera" and rng.random() < 0.3:
            for _ in range(rng.randrange(1, 6)):
                events.append((rng.uniform(t0, t1), rng.choice(("image_blurry", "image_covered", "scene_moved")),
                               dev, site, '{"problem":"x"}'))
        if kind == "light":
            db.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?)",
                           [(rng.uniform(t0, t1), "officer", dev, '{"state":"ON"}', "ok", None)
                            for _ in range(rng.randrange(0, 10))])
    for s in range(max(1, n // 10)):
        ts = t0
        while True:
            ts += rng.uniform(2, 6) * 86400
            if ts >= t1:
                break
            events.append((ts, "power_lost", None, f"site-{s:03d}", '{"cause":"ups"}'))
            events.append((ts + rng.uniform(600, 4 * 3600), "power_restored", None, f"site-{s:03d}", '{"cause":"ups"}'))
    for i in range(n // 5):
        opened = rng.uniform(t0, t1 - 5 * 86400)
        repair = rng.uniform(1, 96) * 3600
        data = {"ticket": i, "fault": "offline", "kind": "camera",
                "opened": datetime.fromtimestamp(opened, TZ).isoformat(),
                "due": datetime.fromtimestamp(opened + 48 * 3600, TZ).isoformat(), "contractor": f"contractor-{i % 4}"}
        events.append((opened, "ticket_opened", f"camera-{i:04d}", "site-000", json.dumps(data)))
        events.append((opened + repair, "ticket_resolved", f"camera-{i:04d}", "site-000",
                       json.dumps({**data, "resolution": "resolved", "within_deadline": repair <= 48 * 3600})))
    db.executemany("INSERT INTO events VALUES (?,?,?,?,?)", sorted(events))
    db.commit()
    db.close()
    return rows + len(events)


def cpu_seconds() -> float:
    """This process's CPU time: on a machine shared with other work, wall time says more about the load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_floor(path: str, days: int) -> None:
    import sqlite3

    t0 = time.perf_counter()
    db = sqlite3.connect(path)
    s, e = (END - timedelta(days=days)).timestamp(), END.timestamp()
    n = db.execute("SELECT count(*) FROM (SELECT device, SUM(ts * available) FROM availability "
                   "WHERE ts >= ? AND ts < ? GROUP BY device)", (s, e)).fetchone()[0]
    m = db.execute("SELECT count(*) FROM states WHERE ts >= ? AND ts < ? AND device IN "
                   "(SELECT device FROM device_kinds WHERE kind IN ('light', 'recorder'))", (s, e)).fetchone()[0]
    db.close()
    print(json.dumps({"seconds": time.perf_counter() - t0, "devices": n, "states": m, "cpu": cpu_seconds(),
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def child_report(path: str, n: int, days: int, out: str) -> None:
    t0 = time.perf_counter()
    from hub.ops.report.data import ReportDevice, compute
    from hub.ops.report.render import build_view, write
    from hub.storage import History

    imported = time.perf_counter()
    h = History(Path(path))
    devs = [ReportDevice(d, k, s) for d, k, s in devices(n)]
    data = compute(h, devs, END - timedelta(days=days), END, commune="Xã Bench")
    h.close()
    computed = time.perf_counter()
    write(build_view(data, "vi"), Path(out))
    done = time.perf_counter()
    print(json.dumps({"seconds": done - t0, "import": imported - t0, "compute": computed - imported,
                      "render": done - computed, "availability": data.overall.ratio, "cpu": cpu_seconds(),
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> int:
    if sys.argv[1:2] == ["--child-floor"]:
        child_floor(sys.argv[2], int(sys.argv[3]))
        return 0
    if sys.argv[1:2] == ["--child-report"]:
        child_report(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--devices", type=int, default=500)
    p.add_argument("--days", type=int, default=92)
    p.add_argument("--every", type=float, default=30.0, help="mean minutes between a device's availability changes")
    p.add_argument("--state-every", type=float, default=10.0, help="minutes between a device's state rows")
    p.add_argument("--db", type=Path, help="reuse (or create) the synthetic history here")
    p.add_argument("--html", action="store_true", help="render HTML instead of PDF")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
    db = args.db or tmp / "history.db"
    if not db.exists():
        t0 = time.perf_counter()
        rows = generate(db, args.devices, args.days, args.every, args.state_every)
        print(f"history: {rows:,} rows generated in {time.perf_counter() - t0:.1f} s, "
              f"{db.stat().st_size / 1e6:.0f} MB")
    out = tmp / ("report.html" if args.html else "report.pdf")
    floor = run_child("--child-floor", str(db), str(args.days))
    report = run_child("--child-report", str(db), str(args.devices), str(args.days), str(out))
    print(f"floor (bare SQLite scan): {floor['seconds']:.2f} s (CPU {floor['cpu']:.2f} s), peak RSS "
          f"{floor['rss_mb']:.0f} MB, "
          f"{floor['states']:,} state rows")
    print(f"report: {report['seconds']:.2f} s (imports {report['import']:.2f}, compute {report['compute']:.2f}, "
          f"render {report['render']:.2f}), CPU {report['cpu']:.2f} s, peak RSS {report['rss_mb']:.0f} MB, "
          f"{out.stat().st_size / 1e3:.0f} kB")
    with open("/proc/loadavg") as f:
        print(f"load average during the run: {f.read().split()[0]} on {os.cpu_count()} CPU(s)")
    ratio = report["cpu"] / floor["cpu"] if floor["cpu"] else float("inf")
    ok = report["seconds"] < 10 and report["rss_mb"] < 300
    print(f"ratio report/floor (CPU): {ratio:.1f}; target < 10 s and < 300 MB: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
