"""The web console in a real headless browser: Debian's chromium driven by its chromium-driver through
selenium (no browser download at run time; scripts/test.sh installs both). The hub, a real
Mosquitto and the simulators run in this test's event loop; selenium's blocking calls run in a
worker thread (``asyncio.to_thread``) so the hub keeps serving meanwhile.

Screenshots are saved in ``test-artifacts/web/`` (gitignored) at the repository's root."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.web import PASSWORDS, XSS, commune

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (scripts/test.sh installs them)")


def browser(width: int, height: int) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--lang=vi", "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_window_size(width, height)
    return driver


def until(driver: Any, test: Callable[[Any], Any], timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(test)


def sign_in(driver: Any, url: str, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "signin").click()


def shot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


async def test_officer_and_contractor_in_a_browser_at_360px(mosquitto: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    async with commune(tmp_path, mosquitto.port) as c:
        hub = c.hub
        url = c.url
        driver = await asyncio.to_thread(browser, 360, 740)
        try:
            # --- officer: Vietnamese by default, the XSS site name as text, no alert
            def officer_overview() -> dict[str, Any]:
                sign_in(driver, url, "an", PASSWORDS["an"])
                try:
                    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".card"))
                except Exception:
                    raise AssertionError(driver.current_url + driver.page_source[-1500:]) from None
                try:
                    until(driver, lambda d: d.execute_script("return document.body.dataset.connected") == "1")
                except Exception:
                    raise AssertionError(driver.get_log("browser")) from None
                cards = {e.get_attribute("data-site"): e.find_element(By.TAG_NAME, "h2").text
                         for e in driver.find_elements(By.CSS_SELECTOR, ".card")}
                return {"h1": driver.find_element(By.TAG_NAME, "h1").text, "cards": cards,
                        "markers": len(driver.find_elements(By.CSS_SELECTOR, "path.mk")),
                        "width": driver.execute_script("return document.documentElement.scrollWidth"),
                        "shot": shot(driver, "overview-officer-360")}

            seen = await asyncio.to_thread(officer_overview)
            assert seen["h1"] == "Tổng quan"
            assert seen["cards"] == {"kp3": XSS, "cho": "Chợ Mới"}  # shown as text, not run
            assert seen["markers"] == 2  # the map's markers, without any tile server
            assert seen["width"] <= 360  # nothing wider than the phone

            # --- the site page: switch the light on through the button
            def switch_on() -> str:
                driver.get(url + "site/kp3")
                until(driver, lambda d: d.execute_script("return document.body.dataset.connected") == "1")
                row = driver.find_element(By.CSS_SELECTOR, '[data-dev="light-kp3"]')
                row.find_element(By.CSS_SELECTOR, "button.on").click()
                until(driver, lambda d: d.find_elements(By.ID, "result"))
                return str(driver.find_element(By.ID, "result").text)

            result = await asyncio.to_thread(switch_on)
            assert result.startswith("Xong")
            assert c.relays.relay(1, 0) is True
            await asyncio.to_thread(hub.history.flush)
            audit = [a for a in hub.history.audit() if a["device"] == "light-kp3"]
            assert audit[-1]["user"] == "an" and audit[-1]["result"] == "ok"

            # --- live: the UPS loses mains, the open page changes without a reload
            def marker() -> None:
                driver.execute_script("window.notReloaded = true;")

            await asyncio.to_thread(marker)
            c.ups.set_state(1, mains=False)

            def live_change() -> dict[str, Any]:
                cell = '[data-dev="ups-kp3"] [data-f="state"]'
                until(driver, lambda d: "mất điện lưới" in d.find_element(By.CSS_SELECTOR, cell).text, timeout=5)
                until(driver, lambda d: "cls-power" in d.find_element(By.CSS_SELECTOR, ".site-head").get_attribute(
                    "class"), timeout=5)
                return {"same_page": driver.execute_script("return window.notReloaded === true"),
                        "width": driver.execute_script("return document.documentElement.scrollWidth"),
                        "shot": shot(driver, "site-officer-360-power-lost")}

            live = await asyncio.to_thread(live_change)
            assert live["same_page"] and live["width"] <= 360

            def sign_out() -> str:
                driver.find_element(By.ID, "logout").click()
                until(driver, lambda d: d.current_url.endswith("/login"))
                return str(driver.current_url)

            await asyncio.to_thread(sign_out)

            # --- a wrong password: refused, then throttled
            def wrong_password() -> list[str]:
                texts = []
                for _ in range(6):
                    sign_in(driver, url, "thau1", "not-the-password")  # from a fresh sign-in page, without the error
                    texts.append(until(driver, lambda d: d.find_elements(By.ID, "login-error"))[0].text)
                shot(driver, "login-throttled-360")
                return texts

            texts = await asyncio.to_thread(wrong_password)
            assert texts[0] == "Sai tên đăng nhập hoặc mật khẩu."
            assert "thử lại sau" in texts[-1]
        finally:
            await asyncio.to_thread(driver.quit)

        # --- a contractor (another browser: the first one's address is throttled now)
        c.console.throttle._failures.clear()
        driver = await asyncio.to_thread(browser, 360, 740)
        try:
            def contractor() -> dict[str, Any]:
                sign_in(driver, url, "thau1", PASSWORDS["thau1"])
                until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".card"))
                sites = [e.get_attribute("data-site") for e in driver.find_elements(By.CSS_SELECTOR, ".card")]
                driver.get(url + "site/cho")
                until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-dev]"))
                buttons = driver.find_elements(By.CSS_SELECTOR, "form.buttons button")
                devices = [e.get_attribute("data-dev") for e in driver.find_elements(By.CSS_SELECTOR, "[data-dev]")]
                shot(driver, "site-contractor-360")
                # a forged POST from the contractor's own signed-in page (its real CSRF token)
                status = driver.execute_async_script("""
                    const done = arguments[0];
                    const token = document.querySelector('meta[name="csrf-token"]').content;
                    fetch('/site/cho/light/light-cho', {method: 'POST', headers: {'X-CSRF-Token': token,
                      'Content-Type': 'application/x-www-form-urlencoded'}, body: 'action=on'})
                      .then(r => done(r.status));
                """)
                # the tickets page (live on its own feed) and the reports page: only their site offered
                driver.get(url + "tickets")
                until(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-connected") == "1")
                tickets_title = driver.find_element(By.TAG_NAME, "h1").text
                driver.get(url + "reports")
                report_sites = [o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR,
                                                                                       "#report-site option")]
                shot(driver, "reports-contractor-360")
                return {"sites": sites, "buttons": len(buttons), "devices": devices, "forged": status,
                        "tickets_title": tickets_title, "report_sites": report_sites}

            seen = await asyncio.to_thread(contractor)
            assert seen["sites"] == ["cho"]
            assert seen["buttons"] == 0
            assert set(seen["devices"]) == {"light-cho", "ups-cho"}
            assert seen["forged"] == 403
            assert seen["tickets_title"] == "Phiếu sửa chữa" and seen["report_sites"] == ["cho"]
            assert c.relays.relay(1, 1) is False
        finally:
            await asyncio.to_thread(driver.quit)
