"""The report rendered: one translated view of the figures (:func:`build_view`), written as HTML (a
Jinja2 template, escaped) or PDF (reportlab), so both carry the same content; charts drawn with
matplotlib and embedded in both.

Fonts: the PDF and the charts use DejaVu Sans from matplotlib's own files (``mpl-data/fonts/ttf``),
which has every Vietnamese letter; never a font that happens to be on the machine.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hub.i18n import (
    N_,
    _,
    format_date,
    format_datetime,
    format_duration,
    format_number,
    format_percent,
    tr,
    use_language,
)

from .data import IMAGE_FAULTS, KINDS, Availability, ReportData

KIND_NAMES = {"camera": N_("Camera"), "recorder": N_("Recorder"), "ups": N_("UPS"), "light": N_("Black-spot light")}
CAUSE_NAMES = {"site_power": N_("Power cut"), "network": N_("Network"), "device": N_("Device fault"),
               "unknown": N_("Unknown")}
FAULT_NAMES = {"stream_down": N_("No picture"), "image_covered": N_("Covered"), "image_dark": N_("Dark by day"),
               "image_blurry": N_("Blurred"), "image_frozen": N_("Frozen"), "scene_moved": N_("Moved"),
               "disk_error": N_("Disk error"), "disk_full": N_("Disk full"), "disk_missing": N_("Disk missing")}


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    numeric_from: int = 1
    """columns from this one on are right-aligned"""


@dataclass
class Chart:
    title: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)


@dataclass
class View:
    lang: str
    title: str
    commune: str
    period: str
    generated: str
    sections: list[Section]


def font_path(bold: bool = False) -> Path:
    """DejaVu Sans as matplotlib ships it."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")


def _pct(ratio: float | None) -> str:
    return format_percent(ratio, 3) if ratio is not None else "—"


def _dur(seconds: float) -> str:
    return format_duration(seconds) if seconds else "0"


def _site(data: ReportData, site: str | None) -> str:
    if not site or site == "-":
        return "—"
    name = data.site_names.get(site)
    return f"{name} ({site})" if name and name != site else site


def _device(dev: Any) -> str:
    return f"{dev.name} ({dev.id})" if dev.name else dev.id


def _availability_row(label: list[str], a: Availability) -> list[str]:
    return [*label, _pct(a.ratio), _dur(a.downtime_s), *(_dur(a.down_s[c]) for c in CAUSE_NAMES)]


def build_view(data: ReportData, lang: str, *, generated: datetime | None = None,
               charts: bool = True) -> View:
    """Every text of the report, in ``lang``, and the charts."""
    with use_language(lang) as code:
        midnight = data.end.time() == datetime.min.time()
        last_day = data.end.date() - timedelta(days=1) if midnight else data.end.date()
        period = tr("{start} to {end}", start=format_date(data.start.date(), "long"), end=format_date(last_day, "long"))
        if data.site:
            period += " — " + tr("site {site}", site=_site(data, data.site))
        cause_headers = [_(CAUSE_NAMES[c]) for c in CAUSE_NAMES]
        av_headers = [_("Availability"), _("Downtime"), *cause_headers]
        sections: list[Section] = []

        tk = data.tickets
        cuts = sum(p.count for p in data.power)
        summary = Section(_("Summary"), tables=[Table([_("Figure"), _("Value")], [
            [_("Devices"), format_number(len(data.devices))],
            [_("Overall availability"), _pct(data.overall.ratio)],
            [_("Downtime (all devices)"), _dur(data.overall.downtime_s)],
            *([tr("Downtime: {cause}", cause=_(CAUSE_NAMES[c])), _dur(data.overall.down_s[c])] for c in CAUSE_NAMES),
            [_("Power cuts"), format_number(cuts)],
            [_("Tickets opened"), format_number(tk.opened)],
            [_("Tickets resolved"), format_number(tk.resolved)],
            [_("Tickets overdue"), format_number(tk.overdue)],
        ])])
        sections.append(summary)

        site_rows = [_availability_row([_site(data, s), format_number(n)], a)
                     for s, a, n in ((s, a, sum(1 for f in data.devices if (f.device.site or "-") == s))
                                     for s, a in data.by_site.items())]
        site_rows.append(_availability_row([_("Whole commune"), format_number(len(data.devices))], data.overall))
        by_site = Section(_("Availability by site"),
                          [_("Downtime is split by its cause: a power cut at the host house, the host house's "
                             "network, a fault of the device itself, or unknown.")],
                          [Table([_("Site"), _("Devices"), *av_headers], site_rows, numeric_from=1)])
        kind_rows = [_availability_row([_(KIND_NAMES[k])], data.by_kind[k]) for k in KINDS
                     if data.by_kind[k].observed_s > 0]
        by_site.tables.append(Table([_("Kind"), *av_headers], kind_rows))
        sections.append(by_site)

        device_rows = [[_device(f.device), _(KIND_NAMES[f.device.kind]), _site(data, f.device.site),
                        _pct(f.availability.ratio), format_number(f.outages), _dur(f.availability.downtime_s),
                        *(_dur(f.availability.down_s[c]) for c in CAUSE_NAMES)]
                       for f in sorted(data.devices, key=lambda f: (f.device.site or "", f.device.kind, f.device.id))]
        sections.append(Section(_("Availability of each device"), tables=[Table(
            [_("Device"), _("Kind"), _("Site"), _("Availability"), _("Outages"), _("Downtime"), *cause_headers],
            device_rows, numeric_from=3)]))

        power_rows = [[_site(data, p.site), format_number(p.count), _dur(p.total_s), _dur(p.longest_s)]
                      for p in data.power]
        power = Section(_("Power cuts at the host houses"),
                        [_("Cuts confirmed by a UPS or meter and cuts suspected when every device of a "
                           "site dropped together; a cut across the period's edge counts only its part "
                           "inside the period.")],
                        [Table([_("Site"), _("Cuts"), _("Total"), _("Longest")], power_rows)])
        sections.append(power)

        rec_rows = [[_device(r.device), _site(data, r.device.site),
                     _("below target") if r.below_target else _("met") if r.min_days is not None else "—",
                     ", ".join(f"{_(FAULT_NAMES[k])}: {n}" for k, n in r.disk_faults.items() if n) or "0",
                     format_number(r.target_days, 0) if r.target_days is not None else "—",
                     format_number(r.min_days, 1) if r.min_days is not None else "—",
                     format_number(r.avg_days, 1) if r.avg_days is not None else "—"]
                    for r in data.recorders]
        sections.append(Section(_("Recorders: footage kept"), tables=[Table(
            [_("Recorder"), _("Site"), _("Result"), _("Disk faults"), _("Target (days)"), _("Minimum (days)"),
             _("Average (days)")], rec_rows, numeric_from=4)]))

        faulty = [c for c in data.cameras if c.total]
        cam_rows = [[_device(c.device), _site(data, c.device.site), *(format_number(c.faults[k]) for k in IMAGE_FAULTS)]
                    for c in faulty]
        sections.append(Section(_("Image faults per camera"),
                                [tr("{n} of {total} cameras had no image fault.", n=len(data.cameras) - len(faulty),
                                    total=len(data.cameras))],
                                [Table([_("Camera"), _("Site"), *(_(FAULT_NAMES[k]) for k in IMAGE_FAULTS)], cam_rows,
                                       numeric_from=2)]))

        light_rows = [[_device(li.device), _site(data, li.device.site), format_number(li.hours_on, 1),
                       format_number(li.rule_switches), format_number(li.officer_switches), format_number(li.holds)]
                      for li in data.lights]
        sections.append(Section(_("Black-spot lights"), tables=[Table(
            [_("Light"), _("Site"), _("Hours on"), _("Switched by the night rule"), _("Switched by officers"),
             _("Manual holds")], light_rows, numeric_from=2)]))

        def tickets_row(name: str, c: Any) -> list[str]:
            return [name, format_number(c.opened), format_number(c.resolved), format_number(c.overdue),
                    _dur(c.mttr_s) if c.mttr_s is not None else "—", _pct(c.within_share)]

        ticket_rows = [tickets_row(c.contractor or _("(no contractor)"), c) for c in data.contractors]
        ticket_rows.append(tickets_row(_("All"), tk))
        sections.append(Section(_("Maintenance tickets"),
                                [_("Mean time to repair runs from a ticket's opening to its resolution; the share "
                                   "resolved within the contract's deadline counts the tickets resolved in the "
                                   "period.")],
                                [Table([_("Contractor"), _("Tickets opened"), _("Tickets resolved"),
                                        _("Tickets overdue"), _("Mean time to repair"),
                                        _("Resolved within deadline")], ticket_rows)]))

        if charts:
            from . import charts as ch

            by_site.charts.append(Chart(_("Availability per site"), ch.site_bars(data)))
            by_site.charts.append(Chart(_("Daily availability, all devices"), ch.daily_line(data)))
            power.charts.append(Chart(_("Power cuts over the period"), ch.power_timeline(data)))
        return View(lang=code, title=_("Report on the security camera system"), commune=data.commune,
                    period=period, generated=tr("Generated on {time} by AnNinh Hub", time=format_datetime(
                        generated or datetime.now(data.start.tzinfo), "short")),
                    sections=sections)


# ----------------------------------------------------------------------------------------------- HTML

def render_html(view: View) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    # every text is in the view, translated; the template only lays it out, escaping all of it
    env = Environment(loader=PackageLoader("hub.ops.report", "templates"), autoescape=select_autoescape(["html"]))
    return env.get_template("report.html").render(view=view)


# ------------------------------------------------------------------------------------------------ PDF

def render_pdf(view: View, path: Path) -> None:
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import cm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, TableStyle
    from reportlab.platypus import Table as PdfTable

    if "AnNinhSans" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("AnNinhSans", str(font_path())))
        pdfmetrics.registerFont(TTFont("AnNinhSans-Bold", str(font_path(bold=True))))
    body = ParagraphStyle("body", fontName="AnNinhSans", fontSize=9, leading=12)
    cell = ParagraphStyle("cell", fontName="AnNinhSans", fontSize=7.5, leading=9)
    head_cell = ParagraphStyle("head", parent=cell, fontName="AnNinhSans-Bold")
    h1 = ParagraphStyle("h1", fontName="AnNinhSans-Bold", fontSize=14, leading=18, spaceBefore=6, spaceAfter=6)
    big = ParagraphStyle("big", fontName="AnNinhSans-Bold", fontSize=24, leading=30, alignment=TA_CENTER)
    mid = ParagraphStyle("mid", fontName="AnNinhSans", fontSize=14, leading=20, alignment=TA_CENTER)
    page = landscape(A4)
    width = page[0] - 3 * cm

    def p(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(text), style)

    story: list[Any] = [Spacer(1, 4 * cm), p(view.commune, big), Spacer(1, 1 * cm), p(view.title, mid),
                        Spacer(1, 0.5 * cm), p(view.period, mid), Spacer(1, 2 * cm),
                        p(view.generated, mid), PageBreak()]
    for section in view.sections:
        story.append(p(section.title, h1))
        for para in section.paragraphs:
            story += [p(para), Spacer(1, 4)]
        for chart in section.charts:
            img = Image(io.BytesIO(chart.png))
            scale = min(width / img.imageWidth, 7 * cm / img.imageHeight)
            img.drawWidth, img.drawHeight = img.imageWidth * scale, img.imageHeight * scale
            story += [img, p(chart.title, cell), Spacer(1, 6)]
        for table in section.tables:
            # text columns wrap (Paragraph), figures are plain strings: ten times cheaper on a 500-device table
            rows = [[p(h, head_cell) for h in table.headers]] + [
                [p(c, cell) if i < table.numeric_from else c for i, c in enumerate(row)] for row in table.rows]
            if len(rows) == 1:
                rows.append([p("—", cell)] + [p("", cell)] * (len(table.headers) - 1))
            t = PdfTable(rows, repeatRows=1, colWidths=[width / len(table.headers)] * len(table.headers))
            t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                                   ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
                                   ("VALIGN", (0, 0), (-1, -1), "TOP"),
                                   ("FONT", (0, 1), (-1, -1), "AnNinhSans", 7.5),
                                   ("ALIGN", (table.numeric_from, 1), (-1, -1), "RIGHT")]))
            story += [t, Spacer(1, 10)]
    doc = SimpleDocTemplate(str(path), pagesize=page, leftMargin=1.5 * cm, rightMargin=1.5 * cm,
                            topMargin=1.5 * cm, bottomMargin=1.5 * cm, title=f"{view.title} — {view.commune}",
                            author="AnNinh Hub", lang=view.lang)

    def footer(canvas: Any, doc_: Any) -> None:
        canvas.setFont("AnNinhSans", 7)
        canvas.drawString(1.5 * cm, 0.8 * cm, f"{view.commune} — {view.period}")
        canvas.drawRightString(page[0] - 1.5 * cm, 0.8 * cm, str(doc_.page))

    doc.build(story, onLaterPages=footer)


def write(view: View, path: Path) -> None:
    """Write ``view`` as PDF or HTML, chosen by the file's suffix (ValueError for another)."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        render_pdf(view, path)
    elif suffix in (".html", ".htm"):
        path.write_text(render_html(view), encoding="utf-8")
    else:
        raise ValueError(tr("{path}: the report is written as .pdf or .html", path=str(path)))
