"""The periodic report: every figure of its data from a synthetic history with known answers, the
history's causes and pruning, the rendered PDF (text read back with pdftotext) and HTML, the CLI."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.api import AvailabilityChange, HubEvent
from hub.ops.report.data import ReportData, ReportDevice, compute, days_period, month_period, quarter_period
from hub.storage import History

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
H = 3600.0
DAY = 86400.0


def t(day: str, hm: str = "00:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hm}").replace(tzinfo=TZ)


DEVICES = [
    ReportDevice("cam1", "camera", "s1", "Camera <Chợ>"),
    ReportDevice("cam2", "camera", "s2", "Camera ngã ba"),
    ReportDevice("rec1", "recorder", "s1", "Đầu ghi"),
    ReportDevice("ups1", "ups", "s1"),
    ReportDevice("light1", "light", "s2", "Đèn điểm đen"),
]


def synthetic(path: Path) -> History:
    """The history of November 2026 with known answers (see the test's assertions)."""
    h = History(path)
    for dev in ("cam1", "rec1", "ups1", "light1"):
        h.add_availability(t("2026-10-20"), dev, True)
    # cam1: offline 3 h 12 min on 10 November (device fault)
    h.add_availability(t("2026-11-10", "08:00"), "cam1", False, "device")
    h.add_availability(t("2026-11-10", "11:12"), "cam1", True)
    # cam2: added on 16 November; offline 23:30 on the 20th to 00:30 on the 21st (network)
    h.add_availability(t("2026-11-16"), "cam2", True)
    h.add_availability(t("2026-11-20", "23:30"), "cam2", False, "network")
    h.add_availability(t("2026-11-21", "00:30"), "cam2", True)
    # rec1: offline with the power cut spanning midnight at the month's start
    h.add_availability(t("2026-10-31", "23:00"), "rec1", False, "site_power")
    h.add_availability(t("2026-11-01", "02:00"), "rec1", True)
    h.add_event(t("2026-10-31", "23:00"), "power_lost", None, "s1", {"cause": "ups", "sources": ["ups1"]})
    h.add_event(t("2026-11-01", "02:00"), "power_restored", None, "s1", {"cause": "ups"})
    h.add_event(t("2026-11-20", "10:00"), "power_suspected_lost", None, "s1", {"devices": ["cam1"], "cause": "x"})
    h.add_event(t("2026-11-20", "10:30"), "power_suspected_restored", "cam1", "s1", {"cause": "cam1"})
    # rec1 retention: 10 days (target 14) until the 11th, then 16
    h.add_state(t("2026-10-25"), "rec1", {"retention_days": 10, "retention_target_days": 14})
    h.flush()
    h.add_state(t("2026-11-11"), "rec1", {"retention_days": 16})
    h.flush()
    for when, kind in (("2026-11-03", "disk_error"), ("2026-11-04", "disk_error"), ("2026-11-05", "disk_full")):
        h.add_event(t(when), kind, "rec1", "s1", {})
    for when, kind in (("2026-11-02", "image_blurry"), ("2026-11-03", "image_blurry"),
                       ("2026-11-04", "image_blurry_cleared"), ("2026-11-06", "scene_moved")):
        h.add_event(t(when), kind, "cam1", "s1", {"problem": kind})
    h.add_event(t("2026-10-30"), "image_covered", "cam1", "s1", {"problem": "x"})  # before the month
    # light1: night rule ON 18:00 .. 06:00 (12 h), an officer ON 20:00 .. the rule OFF 22:00 (2 h 5 s)
    light_states: tuple[tuple[datetime, dict[str, str]], ...] = (
                       (t("2026-10-28"), {"state": "OFF", "mode": "auto"}),
                        (t("2026-11-01", "18:00"), {"state": "ON"}),
                        (t("2026-11-02", "06:00"), {"state": "OFF"}),
                        (t("2026-11-03", "20:00"), {"state": "ON", "mode": "manual"}),
                        (t("2026-11-03", "22:00"), {"mode": "auto"}),
                        (t("2026-11-03", "22:00:05"), {"state": "OFF"}))
    for at, state in light_states:
        h.add_state(at, "light1", state)
        h.flush()
    h.add_audit(t("2026-11-03", "20:00"), "officer1", "light1", {"state": "ON"}, "ok")
    h.add_audit(t("2026-11-03", "20:01"), "officer1", "light1", {"state": "ON"}, "rejected", "no")
    # tickets: contractor A resolves one in 24 h (in time) and one in 72 h (late, overdue); B opens one
    def ticket(when: datetime, type: str, **data: object) -> None:
        h.add_event(when, type, data.pop("device", "cam1"), "s1", data)  # type: ignore[arg-type]

    ticket(t("2026-11-05", "10:00"), "ticket_opened", ticket=1, fault="offline", kind="camera",
           opened=t("2026-11-05", "10:00").isoformat(), due=t("2026-11-07", "10:00").isoformat(), contractor="A")
    ticket(t("2026-11-06", "10:00"), "ticket_resolved", ticket=1, fault="offline", kind="camera",
           resolution="resolved", opened=t("2026-11-05", "10:00").isoformat(),
           due=t("2026-11-07", "10:00").isoformat(), within_deadline=True, contractor="A")
    ticket(t("2026-11-07"), "ticket_opened", ticket=2, fault="disk_error", kind="recorder", device="rec1",
           opened=t("2026-11-07").isoformat(), due=t("2026-11-08").isoformat(), contractor="A")
    ticket(t("2026-11-08"), "ticket_overdue", ticket=2, fault="disk_error", kind="recorder", device="rec1",
           due=t("2026-11-08").isoformat(), contractor="A")
    ticket(t("2026-11-10"), "ticket_resolved", ticket=2, fault="disk_error", kind="recorder", device="rec1",
           resolution="recovered", opened=t("2026-11-07").isoformat(), due=t("2026-11-08").isoformat(),
           within_deadline=False, contractor="A")
    ticket(t("2026-11-12"), "ticket_opened", ticket=3, fault="image_blurry", kind="camera",
           opened=t("2026-11-12").isoformat(), due=t("2026-11-14").isoformat(), contractor="B")
    h.flush()
    return h


def nov(h: History, **kw: Any) -> ReportData:
    start, end = month_period("2026-11", TZ)
    return compute(h, DEVICES, start, end, commune="Xã An Bình", **kw)


def test_report_figures_from_a_synthetic_month(tmp_path: Path) -> None:
    h = synthetic(tmp_path / "history.db")
    d = nov(h)
    month = 30 * DAY
    by_id = {f.device.id: f for f in d.devices}
    cam1 = by_id["cam1"].availability
    assert cam1.observed_s == month and cam1.down_s["device"] == 3 * H + 12 * 60
    assert cam1.ratio is not None and round(cam1.ratio * 100, 3) == 99.556
    cam2 = by_id["cam2"].availability  # added on the 16th: counted from then
    assert cam2.observed_s == 15 * DAY and cam2.down_s["network"] == H
    assert cam2.ratio == pytest.approx(1 - H / (15 * DAY))
    rec1 = by_id["rec1"].availability  # the cut began in October: only its 2 h inside November count
    assert rec1.down_s == {"site_power": 2 * H, "network": 0, "device": 0, "unknown": 0}
    assert by_id["rec1"].outages == 1 and by_id["cam1"].outages == 1
    assert by_id["ups1"].availability.ratio == 1.0 and by_id["light1"].availability.downtime_s == 0
    s1 = d.by_site["s1"]
    assert s1.observed_s == 3 * month and s1.downtime_s == 3 * H + 12 * 60 + 2 * H
    assert d.by_site["s2"].observed_s == month + 15 * DAY
    assert d.overall.observed_s == 4 * month + 15 * DAY
    assert d.overall.down_s == {"site_power": 2 * H, "network": H, "device": 3 * H + 12 * 60, "unknown": 0}
    assert d.by_kind["camera"].observed_s == month + 15 * DAY and d.by_kind["ups"].downtime_s == 0
    # daily line: 4 devices before the 16th, 5 after; cam2's hour split over the 20th and 21st
    daily = dict(d.daily)
    assert len(daily) == 30
    assert daily[t("2026-11-01").date()] == pytest.approx(1 - 2 * H / (4 * DAY))
    assert daily[t("2026-11-10").date()] == pytest.approx(1 - (3 * H + 12 * 60) / (4 * DAY))
    assert daily[t("2026-11-20").date()] == pytest.approx(1 - 1800 / (5 * DAY))
    assert daily[t("2026-11-21").date()] == pytest.approx(1 - 1800 / (5 * DAY))
    assert daily[t("2026-11-15").date()] == 1.0
    # power cuts of s1: 2 h of the cut across midnight, and a suspected one of 30 min
    (p1,) = [p for p in d.power if p.site == "s1"]
    assert (p1.count, p1.total_s, p1.longest_s) == (2, 2.5 * H, 2 * H)
    assert p1.cuts[0].start == t("2026-11-01").timestamp() and not p1.cuts[0].suspected
    assert p1.cuts[1].suspected
    assert [p.count for p in d.power if p.site == "s2"] == [0]
    (r,) = d.recorders
    assert (r.target_days, r.min_days, r.avg_days) == (14, 10, pytest.approx(14.0))
    assert r.below_target and r.disk_faults == {"disk_error": 2, "disk_full": 1, "disk_missing": 0}
    cams = {c.device.id: c.faults for c in d.cameras}
    assert cams["cam1"]["image_blurry"] == 2 and cams["cam1"]["scene_moved"] == 1
    assert cams["cam1"]["image_covered"] == 0 and sum(cams["cam2"].values()) == 0
    (light,) = d.lights
    assert light.hours_on == pytest.approx(14.0 + 5 / 3600)  # the rule switched off 5 s after the hold ended
    assert (light.rule_switches, light.officer_switches, light.holds) == (3, 1, 1)
    tk = d.tickets
    assert (tk.opened, tk.resolved, tk.overdue, tk.within_share) == (3, 2, 1, 0.5)
    assert tk.mttr_s == pytest.approx(48 * H)
    a, b = d.contractors
    assert (a.contractor, a.opened, a.resolved, a.overdue, a.mttr_s, a.within_share) == ("A", 2, 2, 1, 48 * H, 0.5)
    assert (b.contractor, b.opened, b.resolved, b.mttr_s, b.within_share) == ("B", 1, 0, None, None)
    h.close()


def test_site_filter_and_now_clip(tmp_path: Path) -> None:
    h = synthetic(tmp_path / "history.db")
    d = nov(h, site="s2", now=t("2026-11-21"))  # a report of the month so far, on the 21st
    assert {f.device.id for f in d.devices} == {"cam2", "light1"}
    assert d.overall.observed_s == 20 * DAY + 5 * DAY
    assert [p.site for p in d.power] == ["s2"] and d.tickets.opened == 0
    assert len(d.daily) == 30 and d.daily[-1][1] is None  # days after "now": no figure
    h.close()


def test_pruning_keeps_what_the_last_period_needs(tmp_path: Path) -> None:
    h = synthetic(tmp_path / "history.db")
    before = nov(h)
    h.purge(t("2026-11-01"))
    after = nov(h)
    assert after == before
    assert h.query("SELECT count(*) FROM availability WHERE ts < ?", (t("2026-11-01").timestamp(),))[0][0] == 4
    h.close()


def test_periods() -> None:
    from hub.i18n import use_language

    assert month_period("2026-12", TZ) == (t("2026-12-01"), t("2027-01-01"))
    assert quarter_period("2026-Q4", TZ) == (t("2026-10-01"), t("2027-01-01"))
    assert quarter_period("2026-q1", TZ) == (t("2026-01-01"), t("2026-04-01"))
    assert days_period("2026-11-01", "2026-11-15", TZ) == (t("2026-11-01"), t("2026-11-16"))
    with use_language("en"):
        for bad in ("2026-13", "2026", "nov"):
            with pytest.raises(ValueError, match="bad month"):
                month_period(bad, TZ)
        with pytest.raises(ValueError, match="bad quarter"):
            quarter_period("2026-Q5", TZ)
        with pytest.raises(ValueError, match="before"):
            days_period("2026-11-15", "2026-11-01", TZ)


def test_daylight_saving_days(tmp_path: Path) -> None:
    """A zone with a 23-hour day: the per-day split follows the real local midnights."""
    paris = ZoneInfo("Europe/Paris")
    h = History(tmp_path / "history.db")
    h.add_availability(datetime(2026, 3, 1, tzinfo=paris), "c", True)
    h.add_availability(datetime(2026, 3, 29, 23, 0, tzinfo=paris), "c", False, "device")
    h.add_availability(datetime(2026, 3, 30, 1, 0, tzinfo=paris), "c", True)
    h.flush()
    d = compute(h, [ReportDevice("c", "camera", "s")], *month_period("2026-03", paris), commune="x")
    daily = dict(d.daily)
    assert daily[datetime(2026, 3, 29).date()] == pytest.approx(1 - H / (23 * H))
    assert daily[datetime(2026, 3, 30).date()] == pytest.approx(1 - H / DAY)
    assert d.devices[0].availability.observed_s == 31 * DAY - H
    h.close()


def test_history_records_outage_causes(tmp_path: Path) -> None:
    """The hub's history listener: the cause known at the outage, then named by the default rules."""
    from typing import cast

    from hub.clock import SystemClock
    from hub.config import Config
    from hub.core.storage import Storage

    storage = Storage(cast(Config, None), SystemClock())  # the listener reads no config

    storage.history = History(tmp_path / "history.db")
    storage.kind_of = lambda device: "camera"
    at = t("2026-11-10", "08:00")

    def offline(dev: str, site: str, kind: str | None = None) -> None:
        storage.record_availability(AvailabilityChange(dev, site, False, "timeout", at, kind))

    def event(type: str, device: str | None, site: str, **data: object) -> None:
        storage.record_event(HubEvent(type=type, time=at, device=device, site=site, data=data))

    offline("a", "s1")
    offline("b", "s1")
    offline("c", "s2", "auth")
    offline("d", "s3")
    event("camera_offline", "a", "s1", cause="site_unreachable", detail="")  # a, and b still unknown: network
    event("power_lost", None, "s3", cause="ups", sources=["u"])  # d: site power
    offline("e", "s3")  # while s3 has no power
    event("power_restored", None, "s3", cause="ups")
    offline("f", "s3")
    event("camera_offline", "f", "s3", cause="camera_down", detail="")
    storage.history.flush()
    rows = dict(storage.history.query("SELECT device, cause FROM availability"))
    assert rows == {"a": "network", "b": "network", "c": "device", "d": "site_power", "e": "site_power",
                    "f": "device"}
    assert storage.history.device_kinds()["a"] == ("camera", "s1")
    storage.history.close()
    reopened = History(tmp_path / "history.db")
    assert reopened.device_kinds()["f"] == ("camera", "s3")
    reopened.close()


# ------------------------------------------------------------------------------------- rendering, CLI

CONFIG = """
    hub:
      name: "Xã An Bình <Công an>"
      data_dir: {data}
    mqtt:
      server: mqtt://127.0.0.1:1
    sites:
      - id: s1
        name: "Nhà ông Tư <b>&"
      - id: s2
        name: Ngã ba chợ
    devices:
      - id: cam1
        platform: hikvision
        site: s1
        name: "Camera <Chợ>"
        host: 127.0.0.1
        password: x
      - id: cam2
        platform: hikvision
        site: s2
        host: 127.0.0.1
        password: x
      - id: rec1
        platform: hikvision
        kind: nvr
        site: s1
        host: 127.0.0.1
        password: x
      - id: ups1
        platform: ups_modbus
        site: s1
        host: 127.0.0.1
        model: apc_smt
      - id: light1
        platform: lighting
        site: s2
        driver: modbus_coil
        host: 127.0.0.1
        channel: 0
"""


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    """A config whose data dir holds the synthetic history (kinds known from the config only)."""
    from tests.support.hubrun import write_config

    data = tmp_path / "data"
    data.mkdir()
    synthetic(data / "history.db").close()
    return write_config(tmp_path, CONFIG.format(data=data))


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``anninh report ARGS`` in this process: (exit code, stdout, stderr)."""
    from hub.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["report", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.mark.skipif(shutil.which("pdftotext") is None,
                    reason="pdftotext (poppler-utils) missing: scripts/test.sh installs it")
def test_pdf_keeps_vietnamese_text(configured: Path, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "bao-cao.pdf"
    code, stdout, stderr = run_cli("-c", str(configured), "--month", "2026-11", "-o", str(out))
    assert code == 0, stderr
    assert stdout.strip() == str(out)
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True,
                          check=True).stdout
    for heading in ("Báo cáo tình hình hoạt động hệ thống camera an ninh", "Tỷ lệ hoạt động theo điểm",
                    "Mất điện tại các nhà đặt thiết bị", "Đầu ghi: số ngày lưu hình", "Lỗi hình ảnh theo camera",
                    "Đèn điểm đen", "Phiếu sửa chữa", "Xã An Bình <Công an>", "Nhà ông Tư <b>&",
                    "tháng 11, 2026"):
        assert heading in text, heading
    assert "99,556 %" in text  # cam1, the Vietnamese way of writing numbers
    fonts = subprocess.run(["pdffonts", str(out)], capture_output=True, text=True).stdout
    assert "DejaVuSans" in fonts or "AnNinhSans" in fonts


def test_html_escapes_and_same_content_in_english(configured: Path, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "report.html"
    code, _out, stderr = run_cli("-c", str(configured), "--from", "2026-11-01", "--to", "2026-11-30",
                                 "--lang", "en", "-o", str(out))
    assert code == 0, stderr
    html = out.read_text(encoding="utf-8")
    assert "Camera &lt;Chợ&gt; (cam1)" in html and "<Chợ>" not in html
    assert "Nhà ông Tư &lt;b&gt;&amp;" in html and "Xã An Bình &lt;Công an&gt;" in html
    assert "Availability by site" in html and "99.556%" in html
    assert html.count("data:image/png;base64,") == 3  # the three charts
    assert "Recorder" in html and "Đầu ghi" not in html  # rec1: kind from the config (nvr)


def test_same_view_in_html_and_pdf(tmp_path: Path) -> None:
    from hub.ops.report.render import build_view, render_html

    h = synthetic(tmp_path / "history.db")
    view = build_view(nov(h), "vi", charts=False)
    h.close()
    html = render_html(view)
    import html as html_mod

    for section in view.sections:
        assert html_mod.escape(section.title, quote=False) in html
        for table in section.tables:
            for row in table.rows:
                for cell in row:
                    assert html_mod.escape(cell, quote=True) in html or html_mod.escape(cell, quote=False) in html


@pytest.mark.parametrize(("args", "message"), [
    (["--month", "2026-13"], "tháng không hợp lệ '2026-13'"),
    (["--quarter", "2026-Q7"], "quý không hợp lệ"),
    (["--from", "2026-11-05"], "--from và --to"),
    (["--month", "2026-11", "--quarter", "2026-Q4"], "chọn một kỳ"),
    (["--month", "2026-11", "--site", "nowhere"], "không có điểm 'nowhere'"),
])
def test_cli_errors_exit_1_with_one_line(configured: Path, tmp_path: Path, args: list[str], message: str,
                                        run_cli) -> None:
    code, stdout, stderr = run_cli("-c", str(configured), *args, "-o", str(tmp_path / "r.pdf"))
    assert code == 1 and stdout == ""
    assert stderr.count("\n") == 1 and message in stderr, stderr
    assert not (tmp_path / "r.pdf").exists()


def test_cli_errors_in_english_and_bad_output(configured: Path, tmp_path: Path, run_cli) -> None:
    code, _o, stderr = run_cli("-c", str(configured), "--month", "nov", "--lang", "en", "-o", str(tmp_path / "r.pdf"))
    assert (code, stderr) == (1, "error: bad month 'nov': expected YYYY-MM, e.g. 2026-11\n")
    code, _o, stderr = run_cli("-c", str(configured), "--month", "2026-11", "--lang", "en", "-o",
                               str(tmp_path / "r.docx"))
    assert code == 1 and "written as .pdf or .html" in stderr
