"""The narrative against a FAKE OpenAI-compatible endpoint on 127.0.0.1 (tests/support/
fake_llm.py; no language model can run here): a text with a number the facts lack, an
endpoint that hangs past the time-out, and no endpoint at all each give the template's
narrative with the reason recorded; a text whose numbers are all facts is used. What the
endpoint receives holds the facts and no client's name, e-mail or phone."""

from __future__ import annotations

import json
import time
from datetime import date
from typing import Any

import pandas as pd
import pytest

from lakehouse.reports import build_reports
from lakehouse.reports.facts import compute_facts, regions, report_week
from lakehouse.reports.narrative import narrative, template_text, unsupported_numbers
from lakehouse.settings import Settings
from lakehouse.warehouse import connect
from tests.support.fake_llm import facts_of, fake_llm

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api")]


@pytest.fixture(scope="module")
def week(served: Settings) -> date:
    with connect(served) as marts:
        return report_week(marts)


@pytest.fixture(scope="module")
def facts(served: Settings, week: date) -> dict[str, Any]:
    with connect(served) as marts:
        return compute_facts(marts, "all", week)


def _with_llm(settings: Settings, url: str | None, timeout_s: float = 10.0) -> Settings:
    return settings.model_copy(update={"llm_base_url": url, "llm_timeout_seconds": timeout_s})


def _good(body: dict[str, Any]) -> str:
    """A narrative from the facts the request carries, every number as they give it."""
    f = facts_of(body)
    t = f["totals"]
    return (
        f"In ISO week {f['iso_week']} revenue reached {t['revenue']:,.2f}, "
        f"{abs(t['revenue_change_pct'])}% {'up' if t['revenue_change_pct'] > 0 else 'down'} "
        f"on the week before, on {t['orders']:,} orders (a basket of {t['basket']:.2f}). "
        f"{f['stock_risk']['products_at_risk']} products are at risk of a stock-out."
    )


def test_a_narrative_whose_numbers_are_facts_is_used(
    served: Settings, facts: dict[str, Any]
) -> None:
    with fake_llm(_good) as llm:
        told = narrative(_with_llm(served, llm.url), facts)
    assert (told.source, told.reason) == ("llm", None), told.reason
    assert told.text == _good(llm.requests[0])
    assert len(llm.requests) == 1 and llm.requests[0]["model"] == served.llm_model


def test_a_wrong_number_gives_the_template_and_the_reason(served: Settings, week: date) -> None:
    """The acceptance case, through a whole build: the report's narrative.json records
    that the template was used and which number was wrong."""
    wrong = 987654.32

    def lying(body: dict[str, Any]) -> str:
        return _good(body) + f" The best region made {wrong:,.2f}."

    with fake_llm(lying) as llm:
        [built] = build_reports(_with_llm(served, llm.url), scope="north", week=week)
    recorded = json.loads((built.folder / "narrative.json").read_text())
    assert recorded["source"] == "template"
    assert "987,654.32" in recorded["reason"] and "not among the facts" in recorded["reason"]
    with connect(served) as marts:
        north = compute_facts(marts, "north", week)
    assert recorded["text"] == template_text(north)
    html = (built.folder / "report.html").read_text()
    section = html.split('<section class="narrative">')[1].split("</section>")[0]
    assert "987" not in section and "987,654.32" in html  # named as the reason only
    # the control: the same text without the lie passes the check
    assert unsupported_numbers(_good(llm.requests[0]), facts_of(llm.requests[0])) == []


def test_an_endpoint_that_hangs_gives_the_template_within_the_time_out(
    served: Settings, facts: dict[str, Any]
) -> None:
    with fake_llm(_good, hang_s=30) as llm:
        began = time.monotonic()
        told = narrative(_with_llm(served, llm.url, timeout_s=1.0), facts)
        took = time.monotonic() - began
    assert told.source == "template" and told.text == template_text(facts)
    assert told.reason == "the endpoint did not answer within 1 s"
    assert took < 5, took
    assert len(llm.requests) == 1  # no retry


def test_no_endpoint_or_a_failing_one_gives_the_template(
    served: Settings, facts: dict[str, Any]
) -> None:
    told = narrative(_with_llm(served, None), facts)
    assert (told.source, told.reason) == ("template", "no llm_base_url is set")
    with fake_llm(_good) as llm:
        closed = llm.url.replace("/v1", "/nowhere")  # the fake answers 404 there
    told = narrative(_with_llm(served, closed), facts)
    assert told.source == "template"
    assert (told.reason or "").startswith("the endpoint failed: ")


def test_the_template_states_only_facts_in_every_scope(served: Settings, week: date) -> None:
    with connect(served) as marts:
        scopes = ["all", *regions(marts)]
        every = [compute_facts(marts, scope, week) for scope in scopes]
    for facts in every:
        text = template_text(facts)
        assert unsupported_numbers(text, facts) == [], facts["scope"]
        # the control: one digit changed in the text is caught
        revenue = f"{facts['totals']['revenue']:,.2f}"
        assert revenue in text
        assert unsupported_numbers(text.replace(revenue, "1" + revenue), facts) != []


def test_the_endpoint_gets_aggregates_and_no_personal_data(
    served: Settings, facts: dict[str, Any]
) -> None:
    with fake_llm(_good) as llm:
        narrative(_with_llm(served, llm.url), facts)
    body = llm.raw_bodies[0].decode()
    sent = facts_of(llm.requests[0])
    assert sent["totals"] == facts["totals"] and sent["scope"] == "all"
    clients = pd.read_parquet(served.ground_truth_path / "client.parquet")
    with connect(served) as marts:
        masked = marts.query(
            "select first_name, last_name, email from "
            f"{marts.qualified('dim_client')} where client_id > 0"
        ).to_pylist()
    personal = set(clients["email"]) | set(clients["phone"])
    personal |= {
        f"{f} {last}" for f, last in zip(clients["first_name"], clients["last_name"], strict=True)
    }
    personal |= {v for row in masked for v in row.values() if v}
    assert len(personal) > 3 * len(clients)
    leaked = [p for p in personal if p in body]
    assert leaked == []
    for key in ("client_id", "email", "first_name", "last_name", "phone"):
        assert f'"{key}"' not in body and f'\\"{key}\\"' not in body
    # the control: a client's e-mail in the facts would be caught by this very check
    planted = json.dumps({**sent, "note": clients["email"].iloc[0]})
    assert [p for p in personal if p in planted] == [clients["email"].iloc[0]]
