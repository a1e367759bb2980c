"""The report viewer: the page Superset's link opens. It holds no data; in a browser it
fetches the report with the key of its ``#key=`` fragment (a link cannot send a header)
and shows it; without a key, or with a wrong one, it shows nothing but a key field."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from lakehouse.reports import build_reports
from lakehouse.settings import Settings
from tests.support.api_server import running_api
from tests.support.superset import CHROMIUM_ARGS, chromium

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api")]


def test_the_viewer_page_holds_no_data(api: TestClient) -> None:
    page = api.get("/reports/all/latest/view")
    assert page.status_code == 200
    assert "script-src 'sha256-" in page.headers["content-security-policy"]
    assert "revenue" not in page.text.lower()
    assert api.get("/reports/..%2F..%2Fsecrets/latest/view").status_code in (404, 422)


@pytest.mark.timeout(300)
def test_a_browser_opens_the_report_with_the_fragment_s_key(served: Settings) -> None:
    from playwright.sync_api import sync_playwright

    built = build_reports(served, scope="all")
    title = (built[0].folder / "report.html").read_text().split("<title>")[1].split("<")[0]
    with running_api(served) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium()), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/reports/all/latest/view#key={served.api_secret()}")
            frame = page.frame_locator("#report")
            frame.locator("title").wait_for(state="attached", timeout=30_000)
            assert frame.locator("title").inner_text() == title
            assert frame.locator("img").count() >= 1  # the charts
            page.locator("#pdf").wait_for(state="visible", timeout=30_000)  # fetched second
            assert "#key" not in page.url  # the key left the address bar
            assert not errors, errors
            # another tab, a wrong key: nothing shown, the key field asked for
            other = browser.new_page()
            other.goto(f"{url}/reports/all/latest/view#key={'0' * 64}")
            other.locator("#ask").wait_for(state="visible", timeout=30_000)
            assert other.locator("#status").inner_text().startswith("401")
        finally:
            browser.close()
