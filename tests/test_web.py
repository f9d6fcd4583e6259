"""The web console over real HTTP: a real Mosquitto, the UPS, relay-board and Hikvision simulators,
the hub and its console (tests/support/web.py). The browser tests are in tests/test_web_browser.py."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.web.server import WebConsole, WebError
from tests.support.hubrun import hub_from_yaml
from tests.support.web import CAM_PASSWORD, XSS, client, commune, csrf_of, sign_in
from tests.support.web import wait_until as _wait


async def test_roles_lights_forged_posts_and_the_audit(mosquitto: Any, tmp_path: Path) -> None:
    async with commune(tmp_path, mosquitto.port) as c:
        hub = c.hub
        # officer: sees both sites, switches the light; the relay follows; the audit names her
        async with client() as s:
            status, html = await sign_in(s, c.url, "an")
            assert status == 200 and "Tổng quan" in html  # Vietnamese by default
            assert 'data-site="kp3"' in html and 'data-site="cho"' in html
            async with s.get(c.url + "site/kp3") as r:
                page = await r.text()
            assert 'value="on"' in page
            async with s.post(c.url + "site/kp3/light/light-kp3", data={"csrf": csrf_of(page), "action": "on"}) as r:
                assert r.status == 200 and "result=ok" in str(r.url)
            assert c.relays.relay(1, 0) is True
            await asyncio.to_thread(hub.history.flush)
            rows = [a for a in hub.history.audit() if a["device"] == "light-kp3"]
            assert rows[-1]["user"] == "an" and rows[-1]["result"] == "ok" and rows[-1]["command"] == {"state": "ON"}
            commands = [e for e in hub.history.events(type="command") if e["device"] == "light-kp3"]
            assert commands[-1]["user"] == "an" and commands[-1]["source"] == "web"
        # contractor: only their site, no light buttons, a forged POST refused and audited
        async with client() as s:
            status, html = await sign_in(s, c.url, "thau1")
            assert 'data-site="cho"' in html and 'data-site="kp3"' not in html
            assert "Camera KP3" not in html
            async with s.get(c.url + "site/kp3") as r:
                assert r.status == 404
            async with s.get(c.url + "site/cho") as r:
                page = await r.text()
            assert 'name="action"' not in page and "UPS chợ" in page
            csrf = csrf_of(page)
            async with s.post(c.url + "site/cho/light/light-cho", data={"csrf": csrf, "action": "on"}) as r:
                assert r.status == 403
            async with s.post(c.url + "site/kp3/light/light-kp3", data={"csrf": csrf, "action": "off"}) as r:
                assert r.status == 404
            async with s.get(c.url + "events") as r:  # the ACL gives contractors no event stream
                assert r.status == 403
            async with s.get(c.url + "snapshot/cam-kp3.jpg") as r:
                assert r.status == 404
            assert c.relays.relay(1, 1) is False and c.relays.relay(1, 0) is True
            await asyncio.to_thread(hub.history.flush)
            refused = [a for a in hub.history.audit() if a["user"] == "thau1"]
            assert refused and refused[-1]["result"] == "rejected" and refused[-1]["device"] == "light-cho"
        # viewer: looks, never switches
        async with client() as s:
            await sign_in(s, c.url, "xem")
            async with s.get(c.url + "site/kp3") as r:
                page = await r.text()
            assert 'name="action"' not in page
            async with s.post(c.url + "site/kp3/light/light-kp3", data={"csrf": csrf_of(page), "action": "off"}) as r:
                assert r.status == 403
            assert c.relays.relay(1, 0) is True


async def test_csrf_origin_sign_out_and_throttling(mosquitto: Any, tmp_path: Path) -> None:
    async with commune(tmp_path, mosquitto.port) as c:
        async with client() as s:
            await sign_in(s, c.url, "an")
            async with s.get(c.url + "site/kp3") as r:
                csrf = csrf_of(await r.text())
            # no token, a wrong one, another site's Origin: refused, nothing switched
            for data, headers in (({"action": "on"}, {}), ({"action": "on", "csrf": "x" * 43}, {}),
                                  ({"action": "on", "csrf": csrf}, {"Origin": "http://evil.example"})):
                async with s.post(c.url + "site/kp3/light/light-kp3", data=data, headers=headers) as r:
                    assert r.status == 403
            assert c.relays.relay(1, 0) is False
            cookie = next(m.value for m in s.cookie_jar if m.key == "anninh_session")
            ws = await s.ws_connect(c.url + "ws?view=overview")
            async with s.post(c.url + "logout", data={"csrf": csrf}) as r:
                assert str(r.url).endswith("/login")
            msg = await ws.receive(timeout=5)  # the signed-out session's open page is cut off too
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await ws.close()
        async with client() as s:  # the signed-out session's cookie, replayed, is dead
            async with s.get(c.url, headers={"Cookie": f"anninh_session={cookie}"}) as r:
                assert str(r.url).endswith("/login")
        # wrong passwords: refused; past five, throttled even with the right one
        async with client() as s:
            for _ in range(5):
                status, html = await sign_in(s, c.url, "an", "wrong")
                assert status == 401 and "Sai tên đăng nhập hoặc mật khẩu" in html
            status, html = await sign_in(s, c.url, "an")
            assert status == 429 and "thử lại sau" in html
        # per address too: another name from the same address is throttled
        async with client() as s:
            status, _ = await sign_in(s, c.url, "xem")
            assert status == 429


async def test_headers_escaping_and_no_secrets_in_pages(mosquitto: Any, tmp_path: Path) -> None:
    async with commune(tmp_path, mosquitto.port) as c:
        async with client() as s:
            await sign_in(s, c.url, "an")
            pages = {}
            for path in ("", "site/kp3", "events", "site/cho"):
                async with s.get(c.url + path) as r:
                    assert r.status == 200
                    csp = r.headers["Content-Security-Policy"]
                    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
                    assert r.headers["X-Frame-Options"] == "DENY"
                    assert r.headers["Cache-Control"] == "no-store"
                    pages[path] = await r.text()
            for path, html in pages.items():
                assert XSS not in html, path
                assert CAM_PASSWORD not in html and f":{c.cam.port}" not in html and f":{c.ups.port}" not in html
                bare = html.replace('<script src="', "").replace('<script type="application/json"', "")
                assert "<script>" not in bare  # no inline script
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[""]
            # the map's data block is JSON with <, > escaped: it cannot close its <script> element
            assert "\\u003cscript\\u003e" in pages[""]
            async with s.get(c.url + "snapshot/cam-kp3.jpg") as r:
                assert r.status == 200 and r.content_type == "image/jpeg"
                assert (await r.read())[:2] == b"\xff\xd8"
            async with s.get(c.url + "static/app.js") as r:
                assert r.status == 200 and "max-age" in r.headers["Cache-Control"]
        async with client() as s:  # not signed in: nothing but the sign-in page
            async with s.get(c.url + "site/kp3") as r:
                assert str(r.url).endswith("/login")
            async with s.get(c.url + "snapshot/cam-kp3.jpg") as r:
                assert str(r.url).endswith("/login")


async def test_live_update_within_a_second_and_languages(mosquitto: Any, tmp_path: Path) -> None:
    async with commune(tmp_path, mosquitto.port) as c:
        async with client() as s:
            await sign_in(s, c.url, "an")
            async with s.ws_connect(c.url + "ws?view=site&site=kp3") as ws:
                await asyncio.sleep(0.3)
                changed: list[float] = []
                loop = asyncio.get_running_loop()

                def on_state(change: Any) -> None:
                    if change.device_id == "ups-kp3" and change.changed.get("on_battery") is True:
                        changed.append(loop.time())

                from hub.core import Listener

                c.hub.add_listener(Listener(on_state=on_state))
                c.ups.set_state(1, mains=False)
                row = None
                while row is None:
                    msg = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
                    row = next((r for r in msg.get("rows", []) if r["id"] == "ups-kp3"
                                and "mất điện lưới" in r["f"]["state"]), None)
                arrived = loop.time()
                assert row["cls"] == "power"
                assert changed and arrived - changed[0] < 1.0
            # English for this session only; event lines in the reader's language
            async with s.get(c.url) as r:
                csrf = csrf_of(await r.text())
            async with s.post(c.url + "lang", data={"csrf": csrf, "lang": "en", "back": "/events"}) as r:
                html = await r.text()
            assert "Events" in html and "Overview" in html and "Sự kiện" not in html
            assert 'lang="en"' in html
        async with client() as s:
            await sign_in(s, c.url, "an")
            async with s.get(c.url + "events?site=kp3&type=on_battery&period=1h") as r:
                html = await r.text()
            assert 'lang="vi"' in html and "<li class=\"ev-on_battery\">" in html
            assert "ev-command" not in html  # the type filter


async def test_contractor_live_feed_is_limited_to_their_sites(mosquitto: Any, tmp_path: Path) -> None:
    async with commune(tmp_path, mosquitto.port) as c:
        async with client() as s:
            await sign_in(s, c.url, "thau1")
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # not their site
                async with s.ws_connect(c.url + "ws?view=site&site=kp3"):
                    pass
            assert refused.value.status == 403
            async with s.ws_connect(c.url + "ws?view=site&site=cho"):
                pass
        async with client() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError):  # not signed in
                async with s.ws_connect(c.url + "ws?view=overview"):
                    pass


async def test_without_users_only_loopback(mosquitto: Any, tmp_path: Path) -> None:
    yaml_text = f"""
hub: {{data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}", discovery: false}}
web: {{bind: 0.0.0.0, port: 0}}
"""
    async with hub_from_yaml(yaml_text, tmp_path) as running:
        console = WebConsole(running.hub)
        with pytest.raises(WebError, match="no users"):
            await console.start()
        await console.stop()


def test_password_check_and_throttle_units() -> None:
    from hub.web.sessions import Throttle

    now = [0.0]
    t = Throttle(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert t.wait("user:a") == 0
        t.failed("user:a", "addr:x")
    assert t.wait("user:a") == pytest.approx(60)
    assert t.wait("addr:x") > 0 and t.wait("user:b") == 0
    now[0] = 61
    assert t.wait("user:a") == 0


async def test_export_page_requests_follows_and_downloads_a_package(mosquitto: Any, tmp_path: Path) -> None:
    """The export page module: an officer requests an export from the NVR simulator's footage,
    the page shows it done, the ZIP holds a package that verifies; a contractor gets no export."""
    import io
    import zipfile
    from datetime import datetime

    from hub.export.package import verify
    from plugins.hikvision.simulator import HikvisionSimulator

    sim = HikvisionSimulator("nvr", channels=2, password="Nvr:pw/9")
    sim.add_footage(1, datetime(2026, 11, 30, 19, 1), datetime(2026, 11, 30, 19, 2))
    await sim.start()
    yaml_text = f"""
hub: {{data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}", discovery: false}}
web: {{port: 0}}
sites: [{{id: kp3}}, {{id: cho}}]
devices:
  - {{id: nvr1, platform: hikvision, site: kp3, host: 127.0.0.1, port: {sim.port}, password: "Nvr:pw/9",
      kind: nvr, timeout: 3, event_stream: false}}
users:
  - {{name: an, role: officer, password: an-pass-1}}
  - {{name: thau1, role: contractor, password: thau-pass-2, sites: [kp3]}}
  - {{name: bac, role: officer, password: bac-pass-3, sites: [cho]}}
"""
    try:
        async with hub_from_yaml(yaml_text, tmp_path) as running:
            hub = running.hub
            console = WebConsole(hub)
            url = await console.start()
            try:
                await _wait(lambda: hub.runners["nvr1"].connected, 10, "the NVR")
                async with client() as s:
                    await sign_in(s, url, "an", "an-pass-1")
                    async with s.get(url + "export") as r:
                        page = await r.text()
                    assert 'value="nvr1"' in page and "Xuất" in page
                    form = {"csrf": csrf_of(page), "device": "nvr1", "channel": "1", "start": "2026-11-30T19:01:10",
                            "end": "2026-11-30T19:01:50", "case": "VV-2026-117", "reason": "<b>test</b>"}
                    async with s.post(url + "export", data=form) as r:
                        assert r.status == 200
                    package = ""
                    for _ in range(300):
                        async with s.get(url + "export") as r:
                            page = await r.text()
                        found = re.search(r'href="/export/([^"]+)\.zip"', page)
                        if found:
                            package = found.group(1)
                            break
                        assert "thất bại" not in page, page[-2000:]
                        await asyncio.sleep(0.1)
                    assert package.startswith("nvr1-ch01-")
                    async with s.get(url + f"export/{package}.zip") as r:
                        assert r.status == 200 and r.headers["Content-Type"] == "application/zip"
                        assert r.headers["Cache-Control"] == "no-store"
                        data = await r.read()
                    out = tmp_path / "unzipped"
                    with zipfile.ZipFile(io.BytesIO(data)) as zf:
                        zf.extractall(out)
                    assert verify(out / package)[0] == []
                    manifest = json.loads((out / package / "manifest.json").read_text())
                    assert manifest["requested_by"] == "an" and manifest["case"] == "VV-2026-117"
                    async with s.get(url + "export/..%2F..%2Fconfig.yaml.zip") as r:
                        assert r.status == 404
                    history = hub.history
                    assert history is not None
                    await asyncio.to_thread(history.flush)
                    audit = [(a["user"], a["result"]) for a in history.audit() if a["device"] == "nvr1"]
                    assert ("an", "done") in audit and audit[-1] == ("an", "downloaded")
                async with client() as s:  # a contractor: no export page, no request, no download
                    await sign_in(s, url, "thau1", "thau-pass-2")
                    async with s.get(url + "export") as r:
                        assert r.status == 403
                        csrf = csrf_of(await r.text())
                    async with s.post(url + "export", data={**form, "csrf": csrf}) as r:
                        assert r.status == 403
                    async with s.get(url + f"export/{package}.zip") as r:
                        assert r.status == 403
                async with client() as s:  # an officer of another site: not this site's package
                    await sign_in(s, url, "bac", "bac-pass-3")
                    async with s.get(url + f"export/{package}.zip") as r:
                        assert r.status == 404
            finally:
                await console.stop()
    finally:
        await sim.stop()


def _run_hub(tmp_path: Path, text: str) -> Any:
    import os
    import subprocess
    import sys

    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    cfg.chmod(0o600)
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root}
    return subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "-c", str(cfg)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def test_anninh_run_prints_the_address_and_warns_without_tls(mosquitto: Any, tmp_path: Path) -> None:
    import signal

    proc = _run_hub(tmp_path, f"""
hub: {{data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}", discovery: false}}
web: {{bind: 0.0.0.0, port: 0}}
users: [{{name: an, role: officer, password: an-pass-1}}]
""")
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        second = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 5)
        found = re.fullmatch(r"Trang điều khiển web: (http://127\.0\.0\.1:\d+/)\n", first)
        assert found, first
        assert second.startswith("Cảnh báo:") and "0.0.0.0" in second and "TLS" in second
        async with client() as s, s.get(found.group(1) + "login") as r:
            assert r.status == 200 and "Đăng nhập" in await r.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, None, 20)
    assert proc.returncode == 0
    assert "without TLS" in err  # the log line too, in English


async def test_console_over_tls(mosquitto: Any, tmp_path: Path) -> None:
    import ssl

    from tests.certs import make_ca

    ca = make_ca(tmp_path / "ca")
    crt, key = ca.issue("web", "localhost", server=True)
    yaml_text = f"""
hub: {{data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}", discovery: false}}
web: {{port: 0, cert_file: {crt}, key_file: {key}}}
users: [{{name: an, role: officer, password: an-pass-1}}]
"""
    async with hub_from_yaml(yaml_text, tmp_path) as running:
        console = WebConsole(running.hub)
        url = await console.start()
        try:
            assert url.startswith("https://127.0.0.1:") and "Cảnh báo" not in console.banner()
            context = ssl.create_default_context(cafile=str(ca.ca))
            async with client() as s:
                async with s.get(url + "login", ssl=context) as r:
                    assert r.status == 200
                    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
                    assert "Secure" in r.headers["Set-Cookie"]
        finally:
            await console.stop()


def test_a_client_that_stops_reading_is_told_to_reload_not_buffered() -> None:
    from aiohttp import web

    from hub.security import Access
    from hub.web.live import MAX_QUEUED, Client, LiveFeed, View

    feed = LiveFeed(hub=None)  # type: ignore[arg-type]  # queue() needs no hub
    access = Access("an", "officer", None, None, command=True, events=True, snapshot=True, export=True)
    stalled = Client(web.WebSocketResponse(), access, "vi", View("overview"))
    for i in range(MAX_QUEUED * 3):
        feed.queue(stalled, f'{{"n":{i}}}')
    assert len(stalled.queue) <= MAX_QUEUED
    assert '{"reload":true}' in stalled.queue
    assert stalled.wake.is_set()


async def test_the_shared_frame_reaches_a_real_client_and_a_slow_reader_is_queued() -> None:
    """The tick writes one group's frame to each reader's socket itself: aiohttp's own client parses it at
    every length encoding (7, 16, 64 bits); a reader whose socket is full, or who still has queued
    messages, gets the message through its queue, in order."""
    from aiohttp import ClientSession, web

    from hub.security import Access
    from hub.web.live import BUFFERED, Client, LiveFeed, View, text_frame

    texts = ["", "x" * 125, "ư" * 63, '{"a":"' + "é" * 40_000 + '"}', "z" * 70_000]

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        assert request.transport is not None
        for text in texts:
            request.transport.write(text_frame(text.encode()))
        await ws.send_str("end")  # aiohttp's own frame after ours: the stream stays in step
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with ClientSession() as s, s.ws_connect(f"http://127.0.0.1:{port}/") as ws:
            got = [(await asyncio.wait_for(ws.receive_str(), 5)) for _ in range(len(texts) + 1)]
        assert got == [*texts, "end"]
    finally:
        await runner.cleanup()

    # a reader that does not read: its socket's buffer fills, the tick queues for it instead
    loop = asyncio.get_running_loop()
    received = bytearray()
    read_all = asyncio.Event()

    async def reading(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while chunk := await r.read(65536):
            received.extend(chunk)
            read_all.set()
        w.close()

    async def stalled(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    servers = [await asyncio.start_server(h, "127.0.0.1", 0) for h in (reading, stalled)]
    try:
        ports = [srv.sockets[0].getsockname()[1] for srv in servers]
        fast_t, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", ports[0])
        slow_t, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", ports[1])
        while slow_t.get_write_buffer_size() <= BUFFERED:
            slow_t.write(b"\0" * (1 << 20))
        access = Access("an", "officer", None, None, command=True, events=True, snapshot=True, export=True)
        fast = Client(web.WebSocketResponse(), access, "vi", View("overview"), transport=fast_t)
        slow = Client(web.WebSocketResponse(), access, "vi", View("overview"), transport=slow_t)
        behind = Client(web.WebSocketResponse(), access, "vi", View("overview"), transport=fast_t)
        behind.queue.append('{"n":0}')
        feed = LiveFeed(hub=None)  # type: ignore[arg-type]  # send() needs no hub
        feed.send([fast, slow, behind], '{"n":1}')
        assert slow.queue == ['{"n":1}'] and slow.wake.is_set()
        assert behind.queue == ['{"n":0}', '{"n":1}']
        assert fast.queue == [] and feed.sent == 1
        await asyncio.wait_for(read_all.wait(), 5)
        assert bytes(received) == b"\x81\x07" + b'{"n":1}'
        fast_t.close()
        slow_t.abort()
    finally:
        for srv in servers:
            srv.close()
