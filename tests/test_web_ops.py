"""The console's tickets and reports pages over real HTTP: a real Mosquitto, the UPS, relay-board and
Hikvision simulators, the hub with its ticket service and its console (tests/support/web.py)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.web import XSS, client, commune, csrf_of, sign_in
from tests.support.web import wait_until as _wait

TICKETS = "tickets: {open_after: 1s, close_after: 600s}\n"


def _open_ticket(hub: Any, device: str) -> Any:
    return next((t for t in hub.tickets.open.values() if t.device == device), None)


async def test_contractor_acknowledges_and_resolves_from_the_page_others_refused(mosquitto: Any,
                                                                                 tmp_path: Path) -> None:
    async with commune(tmp_path, mosquitto.port, TICKETS) as c:
        hub = c.hub
        c.ups.set_state(1, replace_battery=True)  # ups-kp3
        c.ups.set_state(2, replace_battery=True)  # ups-cho
        await _wait(lambda: _open_ticket(hub, "ups-cho") and _open_ticket(hub, "ups-kp3"), 8, "two tickets")
        mine, other = _open_ticket(hub, "ups-cho"), _open_ticket(hub, "ups-kp3")
        async with client() as s:
            await sign_in(s, c.url, "thau1")  # contractor of the site cho
            async with s.get(c.url + "tickets") as r:
                assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
                page = await r.text()
            assert "Phiếu sửa chữa" in page and "ắc quy UPS cần thay" in page and "Chợ Mới" in page
            assert f'data-ticket="{mine.id}"' in page and f'data-ticket="{other.id}"' not in page
            assert f'action="/tickets/{mine.id}/ack"' in page and f'action="/tickets/{mine.id}/resolve"' in page
            csrf = csrf_of(page)
            # without the CSRF token: refused before the ticket service sees it
            async with s.post(c.url + f"tickets/{mine.id}/ack", data={}) as r:
                assert r.status == 403
            assert hub.tickets.db.get(mine.id).acknowledged is None
            # a forged POST on another site's ticket: refused by the service (and audited), hidden here
            async with s.post(c.url + f"tickets/{other.id}/ack", data={"csrf": csrf}) as r:
                assert r.status == 404
            assert hub.tickets.db.get(other.id).acknowledged is None
            async with s.post(c.url + f"tickets/{mine.id}/ack", data={"csrf": csrf}) as r:
                assert r.status == 200 and "result=ack" in str(r.url)
                page = await r.text()
            assert hub.tickets.db.get(mine.id).ack_by == "thau1"
            # resolving needs a note: the service's answer comes back on the page
            async with s.post(c.url + f"tickets/{mine.id}/resolve", data={"csrf": csrf}) as r:
                assert r.status == 409
                assert 'id="ticket-error"' in await r.text()
            assert hub.tickets.db.get(mine.id).is_open
            async with s.post(c.url + f"tickets/{mine.id}/resolve",
                              data={"csrf": csrf, "note": "Đã thay pin <mới>"}) as r:
                assert r.status == 200
            done = hub.tickets.db.get(mine.id)
            assert not done.is_open and done.resolution == "resolved" and done.resolved_by == "thau1"
            async with s.get(c.url + "tickets?show=closed") as r:
                closed = await r.text()
            assert f'data-ticket="{mine.id}"' in closed and "Đã thay pin &lt;mới&gt;" in closed
        # an officer looks, no buttons; a forged POST is refused (and audited)
        async with client() as s:
            await sign_in(s, c.url, "an")
            async with s.get(c.url + "tickets") as r:
                page = await r.text()
            assert f'data-ticket="{other.id}"' in page and "/ack" not in page
            async with s.post(c.url + f"tickets/{other.id}/ack", data={"csrf": csrf_of(page)}) as r:
                assert r.status == 403
            assert hub.tickets.db.get(other.id).acknowledged is None
        await asyncio.to_thread(hub.history.flush)
        audit = [a for a in hub.history.audit() if "ticket" in a["command"]]
        assert [(a["user"], a["device"], a["command"]["ticket"]["action"], a["result"]) for a in audit] == [
            ("thau1", "ups-kp3", "ack", "rejected"), ("thau1", "ups-cho", "ack", "ok"),
            ("thau1", "ups-cho", "resolve", "rejected"), ("thau1", "ups-cho", "resolve", "ok"),
            ("an", "ups-kp3", "ack", "rejected")]
        events = {e["type"]: e for e in hub.history.events() if e["type"].startswith("ticket_")
                  and e["device"] == "ups-cho"}
        assert events["ticket_acknowledged"]["by"] == "thau1"
        assert events["ticket_resolved"]["by"] == "thau1" and events["ticket_resolved"]["resolution"] == "resolved"


async def test_tickets_page_follows_ticket_events_live(mosquitto: Any, tmp_path: Path) -> None:
    import json

    async with commune(tmp_path, mosquitto.port, TICKETS) as c:
        async with client() as s:
            await sign_in(s, c.url, "thau1")
            # another site's tickets are not theirs to follow
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await s.ws_connect(c.url + "ws?view=tickets&site=kp3")
            assert refused.value.status == 403
            async with s.ws_connect(c.url + "ws?view=tickets") as ws:
                c.ups.set_state(1, replace_battery=True)  # kp3: not shown to this contractor
                c.ups.set_state(2, replace_battery=True)  # cho
                await _wait(lambda: _open_ticket(c.hub, "ups-kp3") and _open_ticket(c.hub, "ups-cho"),
                            timeout=8, what="two tickets")
                msg = await ws.receive_str(timeout=5)
                events = json.loads(msg)["events"]
                assert {e["type"] for e in events} == {"ticket_opened"}
                assert {e["device"] for e in events} == {"ups-cho"}


@pytest.mark.skipif(shutil.which("pdftotext") is None,
                    reason="pdftotext (poppler-utils) missing: scripts/test.sh installs it")
async def test_reports_download_as_pdf_and_html_only_for_ones_sites(mosquitto: Any, tmp_path: Path) -> None:
    async with commune(tmp_path, mosquitto.port) as c:
        await asyncio.to_thread(c.hub.history.flush)
        month = c.hub.clock.now().astimezone(c.hub.tz).strftime("%Y-%m")
        async with client() as s:
            await sign_in(s, c.url, "an")
            async with s.get(c.url + "reports") as r:
                page = await r.text()
            assert "Báo cáo" in page and f'value="{month}"' in page
            query = {"period": "month", "month": month, "site": "", "lang": "vi", "format": "pdf"}
            async with s.get(c.url + "reports/download", params=query) as r:
                assert r.status == 200, await r.text()
                assert r.headers["Content-Type"] == "application/pdf"
                assert r.headers["Content-Disposition"] == f'attachment; filename="bao-cao-{month}.pdf"'
                assert r.headers["Cache-Control"] == "no-store"
                pdf = await r.read()
            assert pdf.startswith(b"%PDF")
            (tmp_path / "r.pdf").write_bytes(pdf)
            text = (await asyncio.to_thread(subprocess.run, ["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"],
                                            capture_output=True, text=True, check=True)).stdout
            for heading in ("Báo cáo tình hình hoạt động hệ thống camera an ninh", "Chợ Mới",
                            "Tỷ lệ hoạt động theo điểm", "Mất điện tại các nhà đặt thiết bị", "Đèn điểm đen",
                            "Phiếu sửa chữa"):
                assert heading in text, heading
            async with s.get(c.url + "reports/download", params={**query, "format": "html", "lang": "en"}) as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
                html = await r.text()
            assert XSS not in html and "&lt;script&gt;" in html and "Chợ Mới" in html
            async with s.get(c.url + "reports/download", params={**query, "month": "2026-13"}) as r:
                assert r.status == 400
        # a contractor limited to cho: that site's report, never kp3's nor the whole commune's
        async with client() as s:
            await sign_in(s, c.url, "thau1")
            async with s.get(c.url + "reports") as r:
                page = await r.text()
            assert 'value="cho"' in page and 'value="kp3"' not in page
            for site, status in (("kp3", 404), ("", 403), ("nowhere", 404)):
                async with s.get(c.url + "reports/download", params={**query, "site": site}) as r:
                    assert r.status == status, site
            async with s.get(c.url + "reports/download", params={**query, "site": "cho", "format": "html"}) as r:
                assert r.status == 200
                html = await r.text()
            assert "Chợ Mới" in html and "UPS chợ" in html
            assert "UPS KP3" not in html and "Camera KP3" not in html and "&lt;script&gt;" not in html
            assert re.search(r'filename="bao-cao-\d{4}-\d\d-cho\.html"', r.headers["Content-Disposition"])
