"""The weekly reports on the served shop: the facts equal the order lines' own sums
(counted here from mart_sales_lines, not from the report marts), a region's report holds
only its region, and the HTML and the PDF carry every chart with data in it: the PDF's
pages are rendered to images and each chart's area must show plotted colour, which an
empty chart (the failing control) does not."""

from __future__ import annotations

import io
import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest

from lakehouse.exceptions import ReportError
from lakehouse.reports import WHOLE_BUSINESS, BuiltReport, build_reports, list_reports, render
from lakehouse.reports import charts as charting
from lakehouse.reports.facts import compute_facts, regions, report_week
from lakehouse.reports.narrative import Narrative
from lakehouse.settings import Settings
from lakehouse.warehouse import connect
from tests.support.pdf_charts import MIN_COLOURED, chart_colour_shares

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api")]


@pytest.fixture(scope="module")
def built(served: Settings) -> list[BuiltReport]:
    return build_reports(served)


def _lines(settings: Settings, week: date, region: str | None) -> dict[str, Any]:
    """Revenue, units, orders of a week straight from the order lines."""
    with connect(settings) as marts:
        row = marts.query(
            "select cast(coalesce(sum(net_amount), 0) as double) as revenue, "
            "cast(coalesce(sum(quantity), 0) as bigint) as units, "
            "count(distinct order_id) as orders "
            f"from {marts.qualified('mart_sales_lines')} "
            "where order_date between ? and ?" + (" and region = ?" if region else ""),
            [week, week + timedelta(days=6), *([region] if region else [])],
        ).to_pylist()[0]
    return row


def test_the_report_week_is_the_last_complete_week(served: Settings) -> None:
    with connect(served) as marts:
        last = marts.query(
            f"select max(order_date) from {marts.qualified('mart_sales_lines')}"
        ).to_pylist()[0]
        week = report_week(marts)
    last_day: date = next(iter(last.values()))
    sunday = last_day - timedelta(days=(last_day.isoweekday() % 7))
    assert week == sunday - timedelta(days=6)
    assert week.isoweekday() == 1


@pytest.mark.parametrize("scope", [WHOLE_BUSINESS, "north"])
def test_the_facts_are_the_order_lines_sums(served: Settings, scope: str) -> None:
    with connect(served) as marts:
        week = report_week(marts)
        facts = compute_facts(marts, scope, week)
    region = None if scope == WHOLE_BUSINESS else scope
    t = facts["totals"]
    for prefix, when in (
        ("", week),
        ("previous_week_", week - timedelta(days=7)),
        ("last_year_", week - timedelta(days=364)),
    ):
        truth = _lines(served, when, region)
        assert t[f"{prefix}revenue"] == pytest.approx(truth["revenue"], abs=0.006), prefix
        assert t[f"{prefix}units"] == truth["units"], prefix
        assert t[f"{prefix}orders"] == truth["orders"], prefix
        assert t[f"{prefix}basket"] == pytest.approx(truth["revenue"] / truth["orders"], abs=0.006)
    truth = _lines(served, week, region)
    previous = _lines(served, week - timedelta(days=7), region)
    assert t["revenue_change_pct"] == pytest.approx(
        100 * (truth["revenue"] - previous["revenue"]) / previous["revenue"], abs=0.051
    )
    assert sum(c["revenue"] for c in facts["by_category"]) == pytest.approx(t["revenue"], abs=0.05)
    if region is None:
        assert {r["region"] for r in facts["by_region"]} == set(_regions_sold(served, week))
        assert sum(r["orders"] for r in facts["by_region"]) == t["orders"]


def _regions_sold(settings: Settings, week: date) -> list[str]:
    with connect(settings) as marts:
        rows = marts.query(
            f"select distinct region from {marts.qualified('mart_sales_lines')} "
            "where order_date between ? and ?",
            [week, week + timedelta(days=6)],
        )
    return [str(r) for r in rows.column(0).to_pylist()]


def test_a_region_s_report_holds_only_its_region(served: Settings) -> None:
    with connect(served) as marts:
        week = report_week(marts)
        facts = compute_facts(marts, "north", week)
        sold = {
            r["product_name"]
            for r in marts.query(
                "select distinct product_name "
                f"from {marts.qualified('mart_sales_lines')} "
                "where region = 'north' and order_date between ? and ?",
                [week - timedelta(days=7), week + timedelta(days=6)],
            ).to_pylist()
        }
        served_by = {
            r["warehouse_id"]
            for r in marts.query(
                "select distinct warehouse_id from "
                f"{marts.qualified('mart_report_stock_risk')} where region = 'north'"
            ).to_pylist()
        }
    assert facts["by_region"] == [] and facts["anomalies"] is None
    movers = facts["top_movers"]["up"] + facts["top_movers"]["down"]
    assert movers and {m["product_name"] for m in movers} <= sold
    assert {p["warehouse_id"] for p in facts["stock_risk"]["products"]} <= served_by
    assert served_by == {"WH-NORTH"}  # the seed region_warehouses


def test_every_scope_is_built_as_html_and_pdf(served: Settings, built: list[BuiltReport]) -> None:
    with connect(served) as marts:
        scopes = [WHOLE_BUSINESS, *regions(marts)]
        week = report_week(marts)
    assert [b.scope for b in built] == scopes and len(scopes) >= 3
    listed = {(e.scope, e.week) for e in list_reports(served)}
    assert {(s, week) for s in scopes} <= listed
    for b in built:
        html = (b.folder / "report.html").read_text()
        assert html.count('src="data:image/png;base64,') == b.charts >= 3
        assert (b.folder / "report.pdf").read_bytes().startswith(b"%PDF-")
        narrative = json.loads((b.folder / "narrative.json").read_text())
        assert narrative["source"] == "template" and narrative["reason"]
        facts = json.loads((b.folder / "facts.json").read_text())
        assert facts["scope"] == b.scope and facts["week"] == week.isoformat()
        assert not re.search(r"client_id|email|first_name|last_name", json.dumps(facts))


def test_each_chart_in_the_pdf_has_data(built: list[BuiltReport]) -> None:
    whole = next(b for b in built if b.scope == WHOLE_BUSINESS)
    shares = chart_colour_shares((whole.folder / "report.pdf").read_bytes())
    assert len(shares) == whole.charts == 4  # trend, regions, movers, anomalies
    assert min(shares) >= MIN_COLOURED, shares
    for b in built:
        shares = chart_colour_shares((b.folder / "report.pdf").read_bytes())
        assert len(shares) == b.charts and min(shares) >= MIN_COLOURED, (b.scope, shares)


def test_an_empty_chart_is_caught(built: list[BuiltReport]) -> None:
    """The failing controls: a chart asked to draw an empty frame refuses, and an empty
    chart slipped into a PDF fails the pixel check that the real charts pass."""
    for draw in (
        lambda: charting.trend([]),
        lambda: charting.comparison([], "region"),
        lambda: charting.movers([], []),
        lambda: charting.anomalies([]),
    ):
        with pytest.raises(ReportError):
            draw()
    whole = next(b for b in built if b.scope == WHOLE_BUSINESS)
    facts = json.loads((whole.folder / "facts.json").read_text())
    made, _ = charting.charts(facts)
    planted = [*made[:1], charting.Chart("empty", "an empty chart", _empty_chart()), *made[1:]]
    pdf = render.pdf(facts, Narrative("template", "text"), planted, [], "now")
    shares = chart_colour_shares(pdf)
    assert len(shares) == len(planted)
    assert shares[1] < MIN_COLOURED <= min(shares[:1] + shares[2:]), shares
    print("coloured shares (the planted empty chart second):", [f"{s:.4f}" for s in shares])


def _empty_chart() -> bytes:
    fig, ax = plt.subplots(figsize=charting.SIZE, dpi=charting.DPI)
    ax.set_title("nothing plotted")
    ax.set_xlabel("week")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def test_a_week_that_is_not_there_is_refused(served: Settings) -> None:
    with pytest.raises(ReportError, match="not a Monday"):
        build_reports(served, week="2025-04-29")
    with pytest.raises(ReportError, match="no complete week"):
        build_reports(served, week="1999-01-04")
    with pytest.raises(ReportError, match="no region"):
        build_reports(served, scope="atlantis")
    assert not Path(served.reports_dir / "atlantis").exists()
