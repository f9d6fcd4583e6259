"""Spreads the checks of many cameras over their interval, so they never all run at once.

With ``n`` cameras, camera ``i`` (in id order) first comes due ``interval * i / n`` seconds after
start, then every ``interval`` seconds. 500 cameras checked every 600 s start one check every
1.2 s instead of 500 checks at the top of each ten minutes. A camera whose check is still running
when it comes due again is not started twice; a camera that falls far behind (the hub was busy or
suspended) is rescheduled from now rather than run repeatedly to catch up.
"""

from __future__ import annotations

from collections.abc import Iterable


class Schedule:
    """Due times (monotonic seconds) per id."""

    def __init__(self, intervals: dict[str, float], now: float, start_delay: float = 0.0) -> None:
        self.intervals = {k: v for k, v in intervals.items() if v > 0}
        ids = sorted(self.intervals)
        n = len(ids) or 1
        self.due_at = {d: now + start_delay + self.intervals[d] * i / n for i, d in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.due_at)

    def due(self, now: float, busy: Iterable[str] = ()) -> list[str]:
        """Ids due at ``now`` (not in ``busy``), each moved on by its interval."""
        skip = set(busy)
        out = []
        for d, t in self.due_at.items():
            if t > now:
                continue
            interval = self.intervals[d]
            nxt = t + interval
            self.due_at[d] = nxt if nxt > now else now + interval
            if d not in skip:
                out.append(d)
        return out

    def postpone(self, device_id: str, at: float) -> None:
        """Make ``device_id`` due at ``at`` (e.g. soon again, when it was offline)."""
        if device_id in self.due_at:
            self.due_at[device_id] = at

    def next_time(self) -> float | None:
        return min(self.due_at.values()) if self.due_at else None
