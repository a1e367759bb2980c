"""The report as HTML (a jinja2 template, the charts embedded as PNG data) and as PDF
(reportlab, the same charts as images): both from the same facts, narrative and charts."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from lakehouse.reports.charts import SIZE, Chart
from lakehouse.reports.narrative import Narrative

TEMPLATES = Path(__file__).parent / "templates"
MEASURES = (("revenue", "revenue"), ("units", "units"), ("orders", "orders"), ("basket", "basket"))


def title(facts: dict[str, Any]) -> str:
    scope = "Whole business" if facts["scope"] == "all" else f"Region {facts['scope']}"
    return f"{scope}: weekly report, week of {facts['week']}"


def html(
    facts: dict[str, Any],
    narrative: Narrative,
    charts: Sequence[Chart],
    chart_notes: Sequence[str],
    built_at: str,
) -> str:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
        undefined=StrictUndefined,  # a fact the template names and the facts lack: an error
    )
    env.globals.update(fmt=fmt, pct=pct)
    return env.get_template("report.html.j2").render(
        title=title(facts),
        facts=facts,
        narrative=narrative,
        paragraphs=paragraphs(narrative.text),
        charts=[
            {"title": c.title, "data": base64.b64encode(c.png).decode("ascii")} for c in charts
        ],
        chart_notes=chart_notes,
        measures=MEASURES,
        groups=_groups(facts),
        movers=_movers(facts),
        built_at=built_at,
    )


def pdf(
    facts: dict[str, Any],
    narrative: Narrative,
    charts: Sequence[Chart],
    chart_notes: Sequence[str],
    built_at: str,
) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import (
        Image,
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["Italic"]

    def table(header: list[str], rows: list[list[Any]]) -> Table:
        t = Table([header, *rows], repeatRows=1, hAlign="LEFT")
        t.setStyle(
            TableStyle(
                [
                    ("FONTSIZE", (0, 0), (-1, -1), 8),
                    ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                    ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                    ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ]
            )
        )
        return t

    story: list[Any] = [
        Paragraph(escape(title(facts)), styles["Title"]),
        Paragraph(
            escape(
                f"Week {facts['week']} to {facts['week_end']} (ISO week {facts['iso_week']}), "
                f"against {facts['previous_week']} and {facts['last_year_week']}. Narrative: "
                f"{narrative.source}"
                + (f" ({narrative.reason})" if narrative.reason else "")
                + f". Built {built_at}."
            ),
            small,
        ),
        Spacer(1, 0.3 * cm),
    ]
    story += [Paragraph(escape(p), body) for p in paragraphs(narrative.text)]
    story.append(Paragraph("Headline figures", styles["Heading2"]))
    t = facts["totals"]
    story.append(
        table(
            ["measure", "this week", "week before", "change", "a year before", "change"],
            [
                [
                    label,
                    fmt(t[key]),
                    fmt(t[f"previous_week_{key}"]),
                    pct(t[f"{key}_change_pct"]),
                    fmt(t[f"last_year_{key}"]),
                    pct(t[f"{key}_change_pct_last_year"]),
                ]
                for label, key in MEASURES
            ],
        )
    )
    width = 17 * cm
    for chart in charts:
        image = Image(io.BytesIO(chart.png), width=width, height=width * SIZE[1] / SIZE[0])
        story.append(KeepTogether([Paragraph(escape(chart.title), styles["Heading3"]), image]))
    story += [Paragraph(escape(f"Not drawn: {note}"), small) for note in chart_notes]
    for heading, label, rows in _groups(facts):
        story.append(Paragraph(escape(heading), styles["Heading2"]))
        story.append(
            table(
                [label, "revenue", "vs week before", "vs a year before", "units", "orders"],
                [
                    [
                        r[label],
                        fmt(r["revenue"]),
                        pct(r["revenue_change_pct"]),
                        pct(r["revenue_change_pct_last_year"]),
                        fmt(r["units"]),
                        fmt(r["orders"]),
                    ]
                    for r in rows
                ],
            )
        )
    story.append(Paragraph("Top movers", styles["Heading2"]))
    story.append(
        table(
            ["product", "units", "week before", "revenue", "change"],
            [
                [
                    m["product_name"][:40],
                    fmt(m["units"]),
                    fmt(m["previous_week_units"]),
                    fmt(m["revenue"]),
                    fmt(m["revenue_change"]),
                ]
                for m in _movers(facts)
            ],
        )
    )
    anomalies = facts["anomalies"]
    if anomalies is not None:
        story.append(Paragraph("Anomalies", styles["Heading2"]))
        story.append(
            Paragraph(
                escape(
                    f"{anomalies['outside_interval']} of {anomalies['products_checked']} products "
                    f"sold outside the forecast's {anomalies['interval_pct']}% interval."
                ),
                body,
            )
        )
        if anomalies["products"]:
            story.append(
                table(
                    ["product", "sold", "forecast", "interval"],
                    [
                        [
                            a["product_name"][:40],
                            fmt(a["actual_units"]),
                            fmt(a["forecast_units"]),
                            f"{fmt(a['lower_80'])} to {fmt(a['upper_80'])}",
                        ]
                        for a in anomalies["products"]
                    ],
                )
            )
    risk = facts["stock_risk"]
    story.append(Paragraph("Stock-out risk", styles["Heading2"]))
    story.append(
        Paragraph(escape(f"{risk['products_at_risk']} product x warehouse pairs at risk."), body)
    )
    if risk["products"]:
        story.append(
            table(
                ["product", "warehouse", "on hand", "coverage (days)", "days to stock-out"],
                [
                    [
                        r["product_name"][:40],
                        r["warehouse_id"],
                        fmt(r["quantity_on_hand"]),
                        fmt(r["coverage_days"]),
                        fmt(r["days_until_stockout"]),
                    ]
                    for r in risk["products"]
                ],
            )
        )
    health = facts["data_health"]
    story.append(Paragraph("Data health", styles["Heading2"]))
    line = f"Status: {health['status']}."
    if health.get("run_id"):
        line += (
            f" The last gate run ({health['outcome']}) ran {health['checks_run']} checks: "
            f"{health['checks_failed']} failed, {health['checks_warned']} warned."
        )
    story.append(Paragraph(escape(line), body))
    out = io.BytesIO()
    SimpleDocTemplate(
        out,
        pagesize=A4,
        title=title(facts),
        leftMargin=2 * cm,
        rightMargin=2 * cm,
        topMargin=1.5 * cm,
        bottomMargin=1.5 * cm,
    ).build(story)
    return out.getvalue()


def paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def fmt(value: Any) -> str:
    """A figure as the report prints it: thousands separated, cents on non-integers."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    if isinstance(value, int | float):
        return f"{value:,.0f}"
    return str(value)


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def _groups(facts: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    out = []
    if facts["by_region"]:
        out.append(("By region", "region", facts["by_region"]))
    out.append(("By category", "category", facts["by_category"]))
    return out


def _movers(facts: dict[str, Any]) -> list[dict[str, Any]]:
    return [*facts["top_movers"]["up"], *facts["top_movers"]["down"]]
