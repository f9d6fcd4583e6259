"""Sun position at the hub's location (astral), for night rules and day/night thresholds."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import elevation


class Sun:
    """Sun elevation and dawn/dusk transitions at one place.

    ``on_below`` / ``off_above`` are the elevation thresholds (degrees) of the night rule's
    hysteresis: it is *night* once the sun is below ``on_below`` and *day* again once it is above
    ``off_above``; between the two the previous answer holds.
    """

    def __init__(self, latitude: float, longitude: float, timezone: str,
                 on_below: float = -3.0, off_above: float = -1.0) -> None:
        self.observer = Observer(latitude=latitude, longitude=longitude)
        self.tz = ZoneInfo(timezone)
        self.on_below = on_below
        self.off_above = off_above

    def elevation(self, when: datetime) -> float:
        return float(elevation(self.observer, when.astimezone(self.tz)))

    def is_night(self, when: datetime, previous: bool | None = None) -> bool:
        """Night with hysteresis: ``previous`` is the last answer (``None`` at start-up)."""
        e = self.elevation(when)
        if e < self.on_below:
            return True
        if e > self.off_above:
            return False
        if previous is None:  # in the dead band at start-up: decide by the midpoint
            return e < (self.on_below + self.off_above) / 2
        return previous

    def next_transition(self, when: datetime, step: timedelta = timedelta(minutes=5)) -> datetime:
        """The next time the night/day answer flips (to within a minute), searching up to 2 days."""
        start = self.is_night(when)
        t = when
        for _ in range(int(timedelta(days=2) / step)):
            nxt = t + step
            if self.is_night(nxt, start) != start:
                lo, hi = t, nxt
                while hi - lo > timedelta(minutes=1):
                    mid = lo + (hi - lo) / 2
                    if self.is_night(mid, start) != start:
                        hi = mid
                    else:
                        lo = mid
                return hi
            t = nxt
        return when + timedelta(days=1)
