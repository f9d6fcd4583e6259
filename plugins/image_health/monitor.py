"""Per-camera debounce and hysteresis: measurements in, state fields and events out.

One bad picture is not an event: a problem is *raised* after ``raise_after`` consecutive samples
show it and *cleared* after ``clear_after`` consecutive samples without it. Where a measure could
sit on its threshold (brightness, sharpness, shift) there are two thresholds, so it cannot flap.

Problems (the camera state's ``image`` list) and their events:

=============  ===================  ====================================================================
problem        event / clearing     raised when (defaults in :class:`HealthOptions`)
=============  ===================  ====================================================================
``no_signal``  ``stream_down``      no picture (snapshot failed, stream silent or closed) while online
``covered``    ``image_covered``    contrast < ``cover_max_contrast`` and edges < ``cover_max_edges``,
                                    brightness >= ``cover_min_brightness`` (a dark street also has
                                    little structure)
``dark``       ``image_dark``       ``dark`` is true in daytime (darkness at night is expected)
``blurry``     ``image_blurry``     sharpness < ``blur_below`` (cleared above ``blur_clear``); only on
                                    pictures that are neither dark nor covered, day and night alike
``frozen``     ``image_frozen``     < ``frozen_max_changed`` of the pixels changed since the previous
                                    sample, while the camera reports itself live
``moved``      ``scene_moved``      shifted by >= ``move_fraction`` of the picture against the reference
                                    (cleared under half of it), or by day, no match at all
=============  ===================  ====================================================================

A clearing event is the problem's event with ``_cleared`` appended (``image_dark_cleared``,
``stream_down_cleared``, ...).

The ``dark`` field is what the night-light rule reads: true after ``raise_after`` samples with
brightness < ``dark_below``, false again after ``clear_after`` samples with brightness >
``dark_above``, day or night; false while the lens is covered (a light would not help).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from hub.api import StrictModel

if TYPE_CHECKING:  # the checks import OpenCV and numpy: only where pictures are measured
    from .checks import FrameStats

PROBLEMS = ("no_signal", "covered", "dark", "blurry", "frozen", "moved")
EVENTS = {"no_signal": "stream_down", "covered": "image_covered", "dark": "image_dark",
          "blurry": "image_blurry", "frozen": "image_frozen", "moved": "scene_moved"}


class HealthOptions(StrictModel):
    """``rules: image_health:`` options. Every threshold is explained in docs/image_health.md."""

    workers: int | None = Field(None, ge=1, le=64, description="worker threads/processes (default: CPU cores, max 4)")
    pool: Literal["thread", "process"] = Field("thread", description="worker kind")
    raise_after: int = Field(2, ge=1, le=100, description="consecutive bad samples before a problem is raised")
    clear_after: int = Field(2, ge=1, le=100, description="consecutive good samples before it clears")
    frozen_after: int = Field(2, ge=1, le=100,
                              description="consecutive unchanged sample pairs before 'frozen' (3 pictures)")
    dark_below: float = Field(40, ge=0, le=255, description="brightness under which a picture is dark")
    dark_above: float = Field(60, ge=0, le=255, description="brightness over which it is light again")
    blur_below: float = Field(1.65, ge=1, le=3, description="sharpness under which a picture is blurry")
    blur_clear: float = Field(1.72, ge=1, le=3, description="sharpness over which it is sharp again")
    cover_max_contrast: float = Field(8, ge=0, le=128, description="luma std-dev under which it may be covered")
    cover_max_edges: float = Field(0.01, ge=0, le=1, description="edge fraction under which it may be covered")
    cover_min_brightness: float = Field(20, ge=0, le=255,
                                        description="darker pictures are never called covered (a dark street)")
    frozen_max_changed: float = Field(0.0002, ge=0, le=1, description="changed-pixel fraction meaning 'identical'")
    move_fraction: float = Field(0.05, gt=0, le=0.5, description="shift (fraction of the picture) meaning 'moved'")
    match_min: float = Field(0.1, ge=0, le=1, description="match strength under which the scene is not found")
    blackspot_interval: float = Field(120, ge=0, le=86400,
                                      description="at black-spot sites, check at least this often (s; 0 = off)")
    connect_timeout: float = Field(5, gt=0, le=60, description="stream connect timeout (s)")
    read_timeout: float = Field(3, gt=0, le=60, description="stream read timeout (s)")
    frame_timeout: float = Field(8, gt=0, le=120, description="no picture within this time = no signal (s)")
    keep_latest: bool = Field(True, description="keep each camera's latest picture for `anninh reference show`")

    @model_validator(mode="after")
    def _ordered(self) -> HealthOptions:
        if self.dark_above < self.dark_below:
            raise ValueError("dark_above must be at least dark_below")
        if self.blur_clear < self.blur_below:
            raise ValueError("blur_clear must be at least blur_below")
        return self


@dataclass
class Outcome:
    """What one sample changed: state fields to merge and events to emit (type, data)."""

    fields: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    raw: set[str] = field(default_factory=set)
    """Problems this one picture shows (before debounce)."""

    @property
    def healthy(self) -> bool:
        return not self.raw


@dataclass
class _Debounce:
    active: bool = False
    count: int = 0

    def feed(self, bad: bool | None, raise_after: int, clear_after: int) -> bool | None:
        """Feed one sample (``None`` = cannot tell, keeps the count). Returns the new state if it
        flipped, else ``None``."""
        if bad is None:
            return None
        if bad != self.active:
            self.count += 1
            if self.count >= (raise_after if bad else clear_after):
                self.active, self.count = bad, 0
                return bad
        else:
            self.count = 0
        return None


class CameraMonitor:
    """The image state of one camera. Not thread-safe: call it from the event loop only."""

    def __init__(self, device_id: str, options: HealthOptions) -> None:
        self.device_id = device_id
        self.options = options
        self.flags = {p: _Debounce() for p in PROBLEMS}
        self.dark = _Debounce()
        self.previous: Any = None  # last sample's compare picture (numpy array)

    @property
    def problems(self) -> list[str]:
        return [p for p in PROBLEMS if self.flags[p].active]

    def reset(self) -> None:
        """Forget everything (the camera went offline: its next pictures start afresh)."""
        self.flags = {p: _Debounce() for p in PROBLEMS}
        self.dark = _Debounce()
        self.previous = None

    def _flip(self, out: Outcome, problem: str, flipped: bool | None, data: dict[str, Any]) -> None:
        if flipped is None:
            return
        name = EVENTS[problem] if flipped else EVENTS[problem] + "_cleared"
        out.events.append((name, {"device": self.device_id, "problem": problem, **data}))

    def on_frame(self, stats: FrameStats, night: bool, live: bool = True) -> Outcome:
        """One measured picture. ``night``: the sun is down; ``live``: the camera reports video
        (online, no ``video_loss``), so an unchanged picture means frozen."""
        o = self.options
        out = Outcome()
        ra, ca = o.raise_after, o.clear_after
        b = stats.brightness
        is_dark_now = b < o.dark_below if not self.dark.active else not (b > o.dark_above)
        covered = (stats.contrast < o.cover_max_contrast and stats.edges < o.cover_max_edges
                   and b >= o.cover_min_brightness)
        looks_dark = b < o.dark_below
        data = {"brightness": round(b), "sharpness": round(stats.sharpness, 2)}

        self._flip(out, "no_signal", self.flags["no_signal"].feed(False, ra, 1), {})

        self._flip(out, "covered", self.flags["covered"].feed(covered, ra, ca), data)
        if covered:
            out.raw.add("covered")

        self.dark.feed(is_dark_now, ra, ca)
        dark = self.dark.active and not self.flags["covered"].active
        if looks_dark:
            out.raw.add("dark")
        # the problem follows the (already debounced) dark field, by day only
        self._flip(out, "dark", self.flags["dark"].feed(dark and not night, 1, 1), data)

        blurry: bool | None = None
        if not looks_dark and not covered:
            s = stats.sharpness
            blurry = s < o.blur_below if not self.flags["blurry"].active else not (s > o.blur_clear)
            if s < o.blur_below:
                out.raw.add("blurry")
        self._flip(out, "blurry", self.flags["blurry"].feed(blurry, ra, ca), data)

        frozen: bool | None = None
        if stats.changed is not None and live:
            frozen = stats.changed < o.frozen_max_changed
            if frozen:
                out.raw.add("frozen")
        self._flip(out, "frozen", self.flags["frozen"].feed(frozen, o.frozen_after, ca),
                   {"changed": round(stats.changed or 0.0, 5)})

        moved: bool | None = None
        shift = stats.shift
        if shift is not None and not looks_dark and not covered:
            found = shift.response >= o.match_min
            limit = o.move_fraction if not self.flags["moved"].active else o.move_fraction / 2
            if found:
                moved = shift.amount >= limit
            elif not night:
                moved = True  # by day, a scene that matches nothing has moved (or changed) a lot
            if moved:
                out.raw.add("moved")
        shift_data = {} if shift is None else {"shift_x": round(shift.dx, 3), "shift_y": round(shift.dy, 3),
                                               "match": round(shift.response, 3)}
        self._flip(out, "moved", self.flags["moved"].feed(moved, ra, ca), shift_data)

        self.previous = stats.compare
        out.fields = {"brightness": round(b), "sharpness": round(stats.sharpness, 2),
                      "dark": dark, "image": self.problems}
        return out

    def on_failure(self, error: str) -> Outcome:
        """No picture this time (timeout, refused, stream ended)."""
        out = Outcome(raw={"no_signal"})
        flipped = self.flags["no_signal"].feed(True, self.options.raise_after, 1)
        self._flip(out, "no_signal", flipped, {"error": error})
        if self.flags["no_signal"].active:
            self.previous = None
            out.fields = {"brightness": None, "sharpness": None, "dark": None, "image": self.problems}
        return out
