"""The report's narrative: written by an OpenAI-compatible endpoint (vLLM, TGI, llama.cpp's
server) when ``llm_base_url`` is set, from the computed facts only, else by a template
that always works. The endpoint's text is kept only when every number it states is one of
the facts' (as given, or rounded, or in thousands or millions); otherwise, or when the
endpoint fails or takes longer than ``llm_timeout_seconds``, the template's text is used
and ``reason`` says why. This module is the only one that imports the ``openai`` client.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lakehouse.reports.facts import INTERVAL_PCT
from lakehouse.settings import Settings

Source = Literal["llm", "template"]

SYSTEM_PROMPT = (
    "You write the narrative of a weekly business report for managers: what changed this "
    "week and why, in three to five short paragraphs of plain text (no markdown, no lists). "
    "Use only the facts given as JSON: revenue, units and basket (revenue per order) against "
    "the previous week and the same week last year, the top movers, the anomalies (products "
    "that sold outside their forecast's interval), the products at stock-out risk and the "
    "data-health status. Every number you write must appear in the facts, exactly as given "
    "or rounded; do not compute new numbers, do not invent causes the facts do not support."
)

# a number as people write it: 1,234.5 or 1234.5, maybe followed by %, k, m, thousand,
# million; digits glued to letters (Q3, 2nd, SKU12) are names, not amounts
_NUMBER = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?"
    r"(?:\s?(%|percent\b|per cent\b|k\b|thousand\b|m\b|million\b|bn\b|billion\b))?"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}


@dataclass(frozen=True)
class Narrative:
    source: Source
    text: str
    reason: str | None = None  # why the template was used
    model: str | None = None  # the endpoint's model, when its text was used

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def narrative(settings: Settings, facts: dict[str, Any]) -> Narrative:
    """The endpoint's narrative when it gives one whose numbers are all facts, else the
    template's with the reason."""
    if not settings.llm_base_url:
        return Narrative("template", template_text(facts), "no llm_base_url is set")
    try:
        text = ask_llm(settings, facts)
    except Exception as exc:  # any failure of the endpoint falls back to the template
        return Narrative("template", template_text(facts), _failure(exc, settings))
    if not text.strip():
        return Narrative("template", template_text(facts), "the endpoint answered no text")
    wrong = unsupported_numbers(text, facts)
    if wrong:
        return Narrative(
            "template",
            template_text(facts),
            f"the endpoint's text states {', '.join(repr(w) for w in wrong[:5])}, "
            "not among the facts",
        )
    return Narrative("llm", text.strip(), model=settings.llm_model)


def ask_llm(settings: Settings, facts: dict[str, Any]) -> str:
    """One chat completion from the facts (no retry: the template is the fallback)."""
    from openai import OpenAI  # the one import of the client, loaded only when used

    client = OpenAI(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else "none",
        timeout=settings.llm_timeout_seconds,
        max_retries=0,
    )
    with client:
        answer = client.chat.completions.create(
            model=settings.llm_model,
            temperature=0.2,
            max_tokens=700,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": "Facts:\n" + json.dumps(facts_for_llm(facts))},
            ],
        )
    return answer.choices[0].message.content or ""


def facts_for_llm(facts: dict[str, Any]) -> dict[str, Any]:
    """What the endpoint is given: the facts (aggregates of the marts, no client's row)
    without the chart series, which add nothing to say."""
    return {k: v for k, v in facts.items() if k != "trend"}


def _failure(exc: Exception, settings: Settings) -> str:
    name = type(exc).__name__
    if "Timeout" in name:
        return f"the endpoint did not answer within {settings.llm_timeout_seconds:g} s"
    return f"the endpoint failed: {name}: {' '.join(str(exc).split())[:200]}"


# ---------------------------------------------------------------- the number check


def unsupported_numbers(text: str, facts: dict[str, Any]) -> list[str]:
    """The numbers ``text`` states that are none of the facts' numbers: a fact may be
    written as given, rounded to fewer decimals, with thousands separators, as a share in
    percent as the facts give it, in thousands or millions (12.3k, 1.2 million), or
    without its sign (a change of -4.2% "fell 4.2%"). Numbers inside the facts' texts
    (dates, product names) and the lengths of their lists count as facts too."""
    values = sorted(set(_fact_values(facts)))
    wrong = []
    for match in _NUMBER.finditer(text):
        whole, fraction, suffix = match.groups()
        shown = float(whole.replace(",", "") + (fraction or ""))
        decimals = len(fraction) - 1 if fraction else 0
        scale = _SCALE.get((suffix or "").lower(), 1.0)
        if not any(_rounds_to(v / scale, shown, decimals) for v in values):
            wrong.append(match.group(0).strip())
    return wrong


def _rounds_to(value: float, shown: float, decimals: int) -> bool:
    """Whether ``value`` written with ``decimals`` decimals reads ``shown``."""
    return abs(value - shown) <= 0.5 * 10**-decimals + 1e-9


def _fact_values(node: Any) -> Iterator[float]:
    if isinstance(node, bool) or node is None:
        return
    if isinstance(node, int | float):
        if math.isfinite(node):
            yield abs(float(node))
    elif isinstance(node, str):
        for match in re.finditer(r"\d+(?:\.\d+)?", node):
            yield float(match.group(0))
    elif isinstance(node, dict):
        for value in node.values():
            yield from _fact_values(value)
    elif isinstance(node, list | tuple):
        yield float(len(node))
        for value in node:
            yield from _fact_values(value)


# ---------------------------------------------------------------- the template


def template_text(facts: dict[str, Any]) -> str:
    """The narrative from the facts alone, in fixed sentences: always available."""
    t = facts["totals"]
    scope = "the whole business" if facts["scope"] == "all" else f"the {facts['scope']} region"
    paragraphs = [
        f"In the week of {facts['week']} (ISO week {facts['iso_week']}), {scope} made "
        f"{_money(t['revenue'])} of revenue on {t['orders']:,} orders and {t['units']:,} units, "
        f"a basket of {_money(t['basket'])} per order. Against the week before, revenue "
        f"{_change(t['revenue_change_pct'])}, units {_change(t['units_change_pct'])} and the "
        f"basket {_change(t['basket_change_pct'])}. Against the same week last year, revenue "
        f"{_change(t['revenue_change_pct_last_year'])}, units "
        f"{_change(t['units_change_pct_last_year'])} and the basket "
        f"{_change(t['basket_change_pct_last_year'])}."
    ]
    groups = facts["by_region"] or facts["by_category"]
    label = "region" if facts["by_region"] else "category"
    if groups:
        best = groups[0]
        moves = [g for g in groups if g["revenue_change_pct"] is not None]
        line = (
            f"The largest {label} was {best[label]} with {_money(best['revenue'])} "
            f"({_change(best['revenue_change_pct'], short=True)} on the week before)."
        )
        if len(moves) > 1:
            up = max(moves, key=lambda g: g["revenue_change_pct"])
            down = min(moves, key=lambda g: g["revenue_change_pct"])
            line += (
                f" {up[label]} moved most upwards ({_pct(up['revenue_change_pct'])}), "
                f"{down[label]} most downwards ({_pct(down['revenue_change_pct'])})."
            )
        paragraphs.append(line)
    movers = facts["top_movers"]
    parts = []
    if movers["up"]:
        m = movers["up"][0]
        parts.append(
            f"{m['product_name']} gained most, {_money(m['revenue_change'])} of revenue "
            f"({m['previous_week_units']:,} to {m['units']:,} units)"
        )
    if movers["down"]:
        m = movers["down"][0]
        parts.append(
            f"{m['product_name']} lost most, {_money(abs(m['revenue_change']))} "
            f"({m['previous_week_units']:,} to {m['units']:,} units)"
        )
    if parts:
        paragraphs.append("Among the products, " + "; ".join(parts) + ".")
    anomalies = facts["anomalies"]
    if anomalies is not None:
        if anomalies["products_checked"]:
            paragraphs.append(
                f"Of the {anomalies['products_checked']:,} products with a forecast for the "
                f"week, {anomalies['outside_interval']:,} sold outside the forecast's "
                f"{INTERVAL_PCT}% interval ({anomalies['above']:,} above, "
                f"{anomalies['below']:,} below)."
            )
        else:
            paragraphs.append("No forecast of this week was at hand to compare sales with.")
    risk = facts["stock_risk"]
    where = "of the business" if facts["scope"] == "all" else f"in the warehouses serving {scope}"
    if risk["products_at_risk"]:
        first = risk["products"][0]
        paragraphs.append(
            f"{risk['products_at_risk']:,} product stocks (a product in a warehouse) "
            f"{where} are at risk of a stock-out as of {risk['as_of']}, the shortest "
            f"{first['product_name']} in {first['warehouse_id']} with "
            f"{first['quantity_on_hand']:,} units on hand."
        )
    else:
        paragraphs.append(f"No product stock {where} is at risk of a stock-out.")
    health = facts["data_health"]
    if health["status"] == "unknown":
        paragraphs.append("No run of the quality gate is recorded.")
    else:
        paragraphs.append(
            f"Data health: {health['status']}. The last gate run ran {health['checks_run']:,} "
            f"checks: {health['checks_failed']:,} failed, {health['checks_warned']:,} warned."
        )
    return "\n\n".join(paragraphs)


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def _change(value: float | None, *, short: bool = False) -> str:
    if value is None:
        return "cannot be compared" if not short else "no comparison"
    if short:
        return _pct(value)
    if value == 0:
        return "held steady"
    return f"{'rose' if value > 0 else 'fell'} {abs(value):.1f}%"
