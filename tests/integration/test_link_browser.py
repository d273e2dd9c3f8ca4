"""The one-tap link in a real browser: Debian's chromium, headless, at a phone's viewport, driven
by Playwright. A critical incident pages the duty officer with a signed link; the officer opens
it, reads the page, taps the button; the acknowledgement is recorded and the escalation stops.
Screenshots go to test-output/link-browser/."""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import async_playwright
from psycopg.rows import dict_row

from localdev.runtime import LocalPostgres
from notifier.core import Links
from streams.settings import Settings
from tests.integration.test_api import LINK_KEY, api_settings
from tests.integration.test_paging import notifier, paging_yaml, reading, rules
from tests.support.api_server import api_server
from tests.support.harness import pipeline_harness
from tests.support.paging import MailServer, WebhookServer

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path("test-output/link-browser")
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def superuser(settings: Settings, pg_conninfo: str) -> str:
    return LocalPostgres(settings).superuser_conninfo()


def chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("chromium is missing: run `bash deploy/local/install-test-tools.sh` "
                    "(apt-get install chromium)")  # fmt: skip
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return CHROMIUM


async def test_an_officer_acknowledges_from_the_page_on_a_phone(
    settings: Settings, superuser: str
) -> None:
    browser_path = chromium()
    steps = """      - notify: duty_officer
      - wait: 20s
      - notify: shift_lead"""
    async with pipeline_harness(settings, superuser, rules=rules("critical")) as h:
        local = api_settings(h)
        with api_server(local, rules("critical")) as base, MailServer() as mail, \
                WebhookServer() as hook:  # fmt: skip
            links = Links(base, LINK_KEY, timedelta(minutes=30))
            # the browser is up before the incident exists: its cold start (up to a minute on a
            # fresh machine) must not eat into the 20 s before the shift lead's step
            async with async_playwright() as pw, \
                    notifier(h, mail, hook, paging_yaml(steps=steps), links=links):  # fmt: skip
                browser = await pw.chromium.launch(
                    executable_path=browser_path,
                    args=["--no-sandbox", "--disable-background-networking",
                          "--disable-component-update", "--no-first-run"],
                )  # fmt: skip
                context = await browser.new_context(viewport=PHONE, device_scale_factor=2,
                                                    is_mobile=True, has_touch=True)  # fmt: skip
                tab = await context.new_page()
                await tab.goto("about:blank")
                requests: list[str] = []
                tab.on("request", lambda r: requests.append(r.url))

                await h.handle("environment", [
                    reading(h, "a", 75, entity="st-a", t=datetime.now(UTC) - timedelta(seconds=5))
                ])  # fmt: skip
                (page_mail,) = (await mail.wait_for(lambda m: bool(mail.to("an@ioc.test"))))[:1]
                officer_mail = mail.to("an@ioc.test")[0]
                found = re.search(
                    r"acknowledge: (http://127\.0\.0\.1:\d+/l/\S+)", officer_mail.body
                )
                assert found, officer_mail.body
                url = found.group(1)
                (incident,) = h.incidents()

                response = await tab.goto(url)
                assert response is not None and response.status == 200
                assert "PM2.5 above the limit" in await tab.inner_text("h1")
                text = await tab.inner_text("main")
                assert "VI" in text and "EN" in text and "an" in text
                button = tab.locator("#ack")
                box = await button.bounding_box()
                assert box is not None and box["width"] >= PHONE["width"] * 0.7  # thumb-sized
                assert box["height"] >= 44
                width = await tab.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"]  # no sideways scrolling on a phone
                await tab.screenshot(path=str(OUTPUT / "1-confirm.png"), full_page=True)
                assert h.incidents()[0]["state"] == "open"  # opening it changed nothing

                await button.tap()
                await tab.wait_for_selector("#result")
                assert "Acknowledged by an" in await tab.inner_text("main")
                await tab.screenshot(path=str(OUTPUT / "2-done.png"), full_page=True)
                assert all(r.startswith(base) for r in requests)  # nothing from elsewhere
                await browser.close()

                with h.owner() as conn, conn.cursor(row_factory=dict_row) as cur:
                    acked = cur.execute(
                        "SELECT actor, channel FROM incident_events WHERE incident_id = %s "
                        "AND kind = 'acknowledged'", (incident["id"],),
                    ).fetchall()  # fmt: skip
                    assert acked == [{"actor": "an", "channel": "link"}]
                    first = cur.execute("SELECT first_paged_at FROM page_groups").fetchone()
                    assert first is not None
                    # past the shift lead's step (20 s after the first page)
                    left = (first["first_paged_at"] + timedelta(seconds=21)) - datetime.now(UTC)
                    await asyncio.sleep(max(0.0, left.total_seconds()))
                    group = cur.execute("SELECT escalation_state, escalation_note "
                                        "FROM page_groups").fetchone()  # fmt: skip
                assert group == {"escalation_state": "stopped", "escalation_note": "acknowledged"}
                assert mail.to("binh@ioc.test") == []
                assert (OUTPUT / "1-confirm.png").stat().st_size > 10_000
                del page_mail
