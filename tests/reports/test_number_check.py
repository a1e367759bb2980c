"""The narrative's number check on its own: a number the facts hold passes in the ways
people write it (thousands separators, rounding, thousands and millions, percent, no
sign), and a number they do not hold is caught and named."""

from __future__ import annotations

from typing import Any

import pytest

from lakehouse.reports.narrative import unsupported_numbers

FACTS: dict[str, Any] = {
    "week": "2025-04-28",
    "iso_week": 18,
    "totals": {"revenue": 63822.68, "units": 1434, "basket": 178.28, "revenue_change_pct": -6.3},
    "big": 2_345_678.9,
    "top_movers": [{"product_name": "Nexcore pro router 3000", "units": 15}],
}


@pytest.mark.parametrize(
    "text",
    [
        "Revenue was 63,822.68 this week.",
        "Revenue was 63822.68, about 63,823 or 63.8k or 64k or 0.06 million.",
        "Units reached 1,434 and the basket 178.28 (about 178).",
        "Revenue fell 6.3% (about 6%).",
        "In the week of 2025-04-28 (ISO week 18), sales moved.",
        "Turnover of 2.3 million, or 2,345,678.9, or 2.35m.",
        "The Nexcore pro router 3000 sold 15 units; 1 product leads.",
        "No figure at all, only Q3 and the 2nd warehouse.",
    ],
)
def test_the_facts_numbers_pass_however_they_are_written(text: str) -> None:
    assert unsupported_numbers(text, FACTS) == []


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        ("Revenue was 63,900.00 this week.", "63,900.00"),
        ("Revenue was 63,822.70 this week.", "63,822.70"),  # a cent off: not a rounding
        ("Revenue fell 7.3%.", "7.3%"),
        ("Revenue was 65k.", "65k"),
        ("Units reached 1,500.", "1,500"),
        ("The basket grew to 181.", "181"),
        ("Turnover of 3.1 million.", "3.1 million"),
    ],
)
def test_a_number_not_among_the_facts_is_named(text: str, wrong: str) -> None:
    assert unsupported_numbers(text, FACTS) == [wrong]
