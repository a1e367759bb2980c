"""The report's charts: static PNG images drawn by matplotlib (Agg, no display), from the
facts only. A chart with nothing to plot is refused (:class:`ReportError`), never drawn
empty: the caller leaves it out and says why."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from lakehouse.exceptions import ReportError
from lakehouse.reports.facts import INTERVAL_PCT

# data is drawn in colours, axes and text in greys: a test tells a chart with data from
# an empty one by its coloured pixels
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")
UP, DOWN = "#2ca02c", "#d62728"
SIZE = (7.0, 3.2)  # inches
DPI = 110


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    png: bytes


def charts(facts: dict[str, Any]) -> tuple[list[Chart], list[str]]:
    """The charts of a report, and a note for each one left out for want of data."""
    made: list[Chart] = []
    notes: list[str] = []
    grouped = "by_region" if facts["by_region"] else "by_category"
    label = "region" if grouped == "by_region" else "category"
    for key, title, draw in (
        ("trend", "Weekly revenue, last 12 weeks", lambda: trend(facts["trend"])),
        (
            f"revenue_{grouped}",
            f"Revenue by {label}: this week, the week before, a year before",
            lambda: comparison(facts[grouped], label),
        ),
        (
            "movers",
            "Top movers: revenue change against the week before",
            lambda: movers(facts["top_movers"]["up"], facts["top_movers"]["down"]),
        ),
        (
            "anomalies",
            f"Anomalies: units sold outside the forecast's {INTERVAL_PCT}% interval",
            lambda: anomalies((facts["anomalies"] or {}).get("products", [])),
        ),
    ):
        if key == "anomalies" and facts["anomalies"] is None:
            continue  # a region's report has no product forecasts
        try:
            made.append(Chart(key, title, draw()))
        except ReportError as exc:
            notes.append(f"{title}: {exc}")
    return made, notes


def trend(weeks: Sequence[dict[str, Any]]) -> bytes:
    points = [(w["week"], w["revenue"]) for w in weeks if w.get("revenue") is not None]
    if not points:
        raise ReportError("no weekly revenue to plot")
    fig, ax = _figure()
    labels = [p[0][5:] for p in points]
    values = [p[1] for p in points]
    ax.plot(labels, values, color=COLOURS[0], marker="o", linewidth=2.5)
    ax.fill_between(labels, values, color=COLOURS[0], alpha=0.5)
    ax.set_ylabel("revenue")
    ax.tick_params(axis="x", labelrotation=45)
    return _png(fig)


def comparison(rows: Sequence[dict[str, Any]], label: str) -> bytes:
    rows = [r for r in rows if r.get(label) is not None]
    if not rows:
        raise ReportError(f"no revenue by {label} to plot")
    fig, ax = _figure()
    names = [str(r[label]) for r in rows]
    width = 0.27
    for i, (column, legend) in enumerate(
        (
            ("revenue", "this week"),
            ("previous_week_revenue", "week before"),
            ("last_year_revenue", "a year before"),
        )
    ):
        values = [r.get(column) or 0.0 for r in rows]
        ax.bar(
            [x + (i - 1) * width for x in range(len(rows))],
            values,
            width,
            color=COLOURS[i],
            label=legend,
        )
    ax.set_xticks(range(len(rows)), names, rotation=20, ha="right")
    ax.set_ylabel("revenue")
    ax.legend(frameon=False, fontsize=8)
    return _png(fig)


def movers(up: Sequence[dict[str, Any]], down: Sequence[dict[str, Any]]) -> bytes:
    moves = [*up, *reversed(down)]
    if not moves:
        raise ReportError("no product sold this week or the week before")
    fig, ax = _figure()
    names = [_short(str(m["product_name"])) for m in moves]
    values = [m["revenue_change"] for m in moves]
    ax.barh(range(len(moves)), values, color=[UP if v >= 0 else DOWN for v in values])
    ax.set_yticks(range(len(moves)), names, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="#444444", linewidth=0.8)
    ax.set_xlabel("revenue change")
    return _png(fig)


def anomalies(products: Sequence[dict[str, Any]]) -> bytes:
    if not products:
        raise ReportError("no product sold outside its forecast interval this week")
    fig, ax = _figure()
    ys = range(len(products))
    lows = [p["lower_80"] for p in products]
    highs = [p["upper_80"] for p in products]
    ax.hlines(ys, lows, highs, color=COLOURS[0], linewidth=6, alpha=0.5, label="80% interval")
    ax.scatter([p["forecast_units"] for p in products], ys, color=COLOURS[0], marker="|", s=200)
    ax.scatter(
        [p["actual_units"] for p in products], ys, color=COLOURS[1], s=40, zorder=3, label="sold"
    )
    ax.set_yticks(list(ys), [_short(str(p["product_name"])) for p in products], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("units")
    ax.legend(frameon=False, fontsize=8)
    return _png(fig)


def _figure() -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    return fig, ax


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
