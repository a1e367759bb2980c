"""Superset in the tests: a real headless Chromium on its dashboards, and chart numbers
next to the same question asked of the marts in SQL."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from lakehouse.supervisors.apt import apt_install
from lakehouse.supervisors.superset import ASSETS_DIR, SupersetServer
from lakehouse.supervisors.superset_api import SupersetClient

CHROMIUM = Path("/usr/bin/chromium")
# without the background-networking flags Chromium keeps calling Google's hosts, which a
# closed network refuses (see ENVIRONMENT.md); as root it needs --no-sandbox
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "superset"
CHART_SQL: dict[str, str] = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "superset" / "chart_sql.yaml").read_text()
)
# the dashboards the committed assets hold, by title
DASHBOARDS = {
    "Sales overview",
    "Inventory",
    "Clients",
    "Data health",
    "Demand forecast",
    "Propositions",
}
RENDER_TIMEOUT_S = 120.0
NAVIGATION_TIMEOUT_MS = 120_000


def chromium() -> Path:
    """The system's Chromium, installed from apt when missing (Playwright's own browser
    download needs a host this machine cannot reach)."""
    if not CHROMIUM.exists():
        failure = apt_install("chromium")
        if failure is not None:
            raise RuntimeError(f"cannot install chromium with apt-get: {failure}")
    return CHROMIUM


def dashboards() -> list[dict[str, Any]]:
    """The dashboards of the committed assets: slug, title and chart names."""
    charts = {
        doc["uuid"]: doc["slice_name"]
        for doc in map(yaml.safe_load, map(Path.read_text, (ASSETS_DIR / "charts").glob("*.yaml")))
    }
    out = []
    for path in sorted((ASSETS_DIR / "dashboards").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        names = [
            charts[item["meta"]["uuid"]]
            for item in doc["position"].values()
            if isinstance(item, dict) and item.get("type") == "CHART"
        ]
        out.append({"slug": doc["slug"], "title": doc["dashboard_title"], "charts": names})
    return out


def client(server: SupersetServer, user: str | None = None) -> SupersetClient:
    s = server.settings
    if user is None:
        return SupersetClient(server.url, s.superset_admin_user, s.superset_admin_secret())
    region = user.removesuffix("_analyst")
    return SupersetClient(server.url, user, server.region_password(region))


@contextmanager
def browser_page(server: SupersetServer, user: str, password: str) -> Iterator[Any]:
    """A page of a fresh headless Chromium, logged in through Superset's login form."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium()), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            # on a loaded machine Superset's pages take longer than Playwright's 30 s
            page.set_default_timeout(NAVIGATION_TIMEOUT_MS)
            page.goto(f"{server.url}/login/")
            page.fill("#username", user)
            page.fill("#password", password)
            page.click("button[type=submit]")
            _wait_logged_in(page)
            yield page
        finally:
            browser.close()


def _wait_logged_in(page: Any) -> None:
    """Wait until the login form has redirected to the welcome page (the redirect, not
    the welcome page's own charts and requests); a refused login fails with what the
    form said, not with a timeout."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_url("**/superset/welcome/**", wait_until="commit")
    except PlaywrightTimeout:
        alerts = page.locator("[role=alert], .alert").all_inner_texts()
        raise AssertionError(
            f"login did not reach the welcome page: at {page.url}, {alerts}"
        ) from None


def open_dashboard(page: Any, server: SupersetServer, slug: str, expected: int) -> dict[str, Any]:
    """Open a dashboard and wait until each of its ``expected`` charts has rendered or
    failed; what each chart holder shows, and a full-page screenshot's path."""
    page.goto(f"{server.url}/superset/dashboard/{slug}/")
    holders = page.locator("[data-test='dashboard-component-chart-holder']")
    deadline = time.monotonic() + RENDER_TIMEOUT_S
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = page.evaluate(_CHART_STATE_JS)
        if len(state["charts"]) >= expected and not any(c["loading"] for c in state["charts"]):
            break
        time.sleep(0.5)
    page.wait_for_timeout(500)  # the last animation frame, for the screenshot
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{server.settings.profile}-{slug}.png"
    page.screenshot(path=str(shot), full_page=True)
    state["screenshot"] = shot
    state["holders"] = holders.count()
    return state


# per chart holder: its title, whether it still loads, an error alert, "No results", and
# whether something was drawn (an ECharts canvas or svg, a table's rows, a big number);
# a Markdown component sits in a holder too (inside its .dashboard-markdown): its text, apart
_CHART_STATE_JS = """
() => {
  const holders = [...document.querySelectorAll("[data-test='dashboard-component-chart-holder']")];
  const isMarkdown = (holder) => !!holder.closest(".dashboard-markdown");
  return {markdown: holders.filter(isMarkdown).map((holder) => holder.innerText || ""),
  charts: holders.filter((holder) => !isMarkdown(holder))
  .map((holder) => {
    const text = holder.innerText || "";
    return {
      title: (holder.querySelector("[data-test='editable-title']") || {}).innerText
        || (holder.querySelector(".header-title") || {}).innerText || "",
      loading: !!holder.querySelector(".loading, [aria-label='Loading'], [role='progressbar']"),
      error: !!holder.querySelector("[role='alert'], .ant-alert-error, .alert-danger")
        || /Unexpected error|DB engine Error|Error: |Data error/.test(text),
      noResults: /No results/i.test(text),
      drawn: !!holder.querySelector("canvas, svg, table tbody tr, .header-line"),
      text: text.slice(0, 300),
    };
  })};
}
"""


# --- chart numbers against SQL


def normalise(rows: Iterable[Iterable[Any]]) -> list[tuple[Any, ...]]:
    """Rows as comparable tuples: dates and times as epoch milliseconds (how the chart-data
    API sends them), numbers as floats to 6 significant digits; sorted."""
    return sorted((tuple(_value(v) for v in row) for row in rows), key=repr)


def _value(value: Any) -> Any:
    if isinstance(value, _Millis):
        return int(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return round(value.timestamp() * 1000)
    if isinstance(value, dt.date):
        midnight = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        return round(midnight.timestamp() * 1000)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, decimal.Decimal | float | int):
        number = float(value)
        if number == 0 or math.isnan(number):
            return 0.0
        return float(f"{number:.6g}")
    return value


def api_rows(result: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The chart-data API's rows of the first query, columns in the query's order."""
    data = result[0]
    names, types = data["colnames"], data["coltypes"]
    temporal = {name for name, kind in zip(names, types, strict=True) if kind == _TEMPORAL}
    return normalise(
        [
            [_ms(row[name]) if name in temporal else row[name] for name in names]
            for row in data["data"]
        ]
    )


_TEMPORAL = 2  # Superset's GenericDataType.TEMPORAL


class _Millis(int):
    """Epoch milliseconds: kept exact by :func:`normalise` (not rounded like a number)."""


def _ms(value: Any) -> Any:
    return None if value is None else _Millis(round(float(value)))


def compare_charts(
    admin: SupersetClient, run_sql: Callable[[str], list[tuple[Any, ...]]]
) -> dict[str, str]:
    """For every chart: its numbers from the chart-data API against its SQL on the marts;
    the charts that differ, with what differed."""
    differences: dict[str, str] = {}
    charts = admin.charts()
    missing = set(CHART_SQL) - {c["slice_name"] for c in charts}
    for name in sorted(missing):
        differences[name] = "not in Superset"
    for chart in charts:
        sql = CHART_SQL.get(chart["slice_name"])
        if sql is None:
            differences[chart["slice_name"]] = "no SQL in tests/superset/chart_sql.yaml"
            continue
        got = api_rows(admin.chart_data(chart["id"]))
        want = normalise(run_sql(sql))
        if not got:
            differences[chart["slice_name"]] = "no rows"
        elif got != want:
            differences[chart["slice_name"]] = f"API {got[:3]} ... vs SQL {want[:3]} ..."
    return differences
