"""The report's charts (matplotlib, headless): availability per site, a daily availability line and a
power-cut timeline, as PNG bytes. Labels are translated by the caller's language; the font is
matplotlib's own DejaVu Sans (Vietnamese letters included)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from hub.i18n import _, format_date

from .data import ReportData

DPI = 100


def _figure(height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, height), dpi=DPI)
    # fixed margins: the "constrained" layout engine cost a second per chart on a 50-site commune
    fig.subplots_adjust(left=0.2, right=0.97, top=1 - 0.2 / height, bottom=0.55 / height)
    ax = fig.add_subplot()
    for item in ("top", "right"):
        ax.spines[item].set_visible(False)
    return fig, ax


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _style() -> None:
    import matplotlib

    matplotlib.rcParams["font.family"] = "DejaVu Sans"  # shipped in matplotlib's mpl-data
    matplotlib.rcParams["font.size"] = 9


def site_bars(data: ReportData) -> bytes:
    _style()
    items = [(s, a.ratio) for s, a in data.by_site.items() if a.ratio is not None]
    fig, ax = _figure(max(2.0, 0.35 * len(items) + 1.0))
    labels = [data.site_names.get(s) or s for s, _r in items]
    values = [r * 100 for _s, r in items]
    ax.barh(labels, values, color="#2f6fb0")
    low = min(values, default=100.0)
    ax.set_xlim(max(0.0, min(low - 1.0, 99.0)), 100.0)
    ax.invert_yaxis()
    ax.set_xlabel(_("Availability (%)"))
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=7)
    return _png(fig)


def daily_line(data: ReportData) -> bytes:
    _style()
    fig, ax = _figure(2.6)
    points = [(d, r * 100) for d, r in data.daily if r is not None]
    ax.plot([d for d, _v in points], [v for _d, v in points], marker="o", markersize=2.5, color="#2f6fb0")
    ax.set_ylabel(_("Availability (%)"))
    ax.set_ylim(max(0.0, min((v for _d, v in points), default=100.0) - 0.5), 100.2)
    ax.grid(True, alpha=0.3)
    ticks = [d for d, _v in points][:: max(1, len(points) // 8)]
    ax.set_xticks(ticks, [format_date(d, "d/M") for d in ticks])
    return _png(fig)


def power_timeline(data: ReportData) -> bytes:
    _style()
    sites = [p for p in data.power]
    fig, ax = _figure(max(1.8, 0.3 * len(sites) + 1.2))
    s0 = data.start.timestamp()
    day = 86400.0
    length = (data.end.timestamp() - s0) / day
    for y, p in enumerate(sites):
        # at least 1/150 of the period wide, so that a cut of minutes stays visible
        spans = [((c.start - s0) / day, max((c.end - c.start) / day, length / 150)) for c in p.cuts]
        colors = ["#e39b2d" if c.suspected else "#c0392b" for c in p.cuts]
        ax.broken_barh(spans, (y - 0.35, 0.7), facecolors=colors)
    ax.set_yticks(range(len(sites)), [data.site_names.get(p.site) or p.site for p in sites])
    ax.invert_yaxis()
    ax.set_xlim(0, length)
    ticks = list(range(0, int(length) + 1, max(1, int(length) // 8)))
    ax.set_xticks(ticks, [format_date(datetime.fromtimestamp(s0 + t * day, data.start.tzinfo).date(), "d/M")
                          for t in ticks])
    ax.set_xlabel(_("Red: power cut confirmed by a UPS or meter; orange: suspected"))
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)
