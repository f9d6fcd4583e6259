"""How many days of footage a recorder keeps, and when to say it is too few.

Recorders search their recordings in *device-local wall clock* (Hikvision appends a ``Z`` that
does not mean UTC on most firmware; Dahua sends no zone at all; docs/reference/protocols.md §0.6). So
both ends of the subtraction are taken as the device's wall clock: the oldest recording's start
and the device's own "now" (``/ISAPI/System/time`` ``localTime``, Dahua ``getCurrentTime``),
each with any zone dropped. Whole days are counted (floor), so 12 days and 3 hours is 12.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


def wallclock(dt: datetime) -> datetime:
    """The device's wall-clock reading, zone dropped."""
    return dt.replace(tzinfo=None)


def days_kept(oldest: datetime, device_now: datetime) -> int:
    """Whole days between the oldest recording and the device's now (never negative)."""
    seconds = (wallclock(device_now) - wallclock(oldest)).total_seconds()
    return max(0, math.floor(seconds / 86400 + 1e-6))


def recorder_days(per_channel: Mapping[str, int | None]) -> int | None:
    """The recorder's retention: the minimum over channels that have recordings."""
    values = [v for v in per_channel.values() if v is not None]
    return min(values) if values else None


@dataclass
class RetentionWatch:
    """Turns successive retention figures into ``retention_low`` / ``retention_ok`` events (edges only)."""

    target: int
    low: bool | None = None
    low_channels: set[str] = field(default_factory=set)

    def check(self, days: int | None, per_channel: Mapping[str, int | None]) -> list[tuple[str, dict[str, object]]]:
        if days is None:
            return []
        below = {ch for ch, v in per_channel.items() if v is not None and v < self.target}
        now_low = days < self.target
        events: list[tuple[str, dict[str, object]]] = []
        if now_low and (self.low is not True or below - self.low_channels):
            events.append(("retention_low", {"days": days, "target": self.target,
                                              "channels": sorted(below, key=_chan_key)}))
        elif not now_low and self.low is True:
            events.append(("retention_ok", {"days": days, "target": self.target}))
        self.low = now_low
        self.low_channels = below
        return events


def _chan_key(ch: str) -> tuple[int, str]:
    return (int(ch), ch) if ch.isdigit() else (1 << 30, ch)
