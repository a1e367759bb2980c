"""The commit-to-mart freshness SLO: ``mart_freshness_slo`` computed by dbt from
constructed samples agrees with the SLO's definition worked out here by hand (good minutes,
the window's error budget, burn rate, status), through a budget burning too fast and one
spent; the gate's SLO follower alerts the webhook once per crossing, not at every run."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse.lake import freshness, quality_tables
from lakehouse.quality.slo import SLO_MART, follow_slo
from lakehouse.settings import Settings
from lakehouse.transform.dbt import run_dbt
from lakehouse.warehouse import connect, expose_lake, publish
from tests.quality.gate_support import lake_settings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("freshness-slo")]

SLO = {
    "slo_freshness_minutes": 10,
    "slo_target": 0.9,
    "slo_window_days": 2,
    "slo_burn_rate_alert": 2.0,
}
GOOD, BAD = 60.0, 700.0  # seconds: within 10 minutes, and not
# day -> (minutes sampled, bad minutes among them)
DAYS = {
    date(2026, 3, 1): (20, 1),
    date(2026, 3, 2): (80, 0),
    date(2026, 3, 3): (20, 4),  # burns the budget twice as fast as allowed
    date(2026, 3, 4): (20, 10),  # spends it
}


def _samples(days: dict[date, tuple[int, int]]) -> list[dict[str, Any]]:
    rows = []
    for day, (minutes, bad) in days.items():
        start = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
        for m in range(minutes):
            at = start + timedelta(minutes=m)
            value = BAD if m < bad else GOOD
            rows.append({"sampled_at": at, "sampled_by": "lander", "freshness_seconds": value})
            # a second, good sample in the same minute: a minute is as fresh as its worst
            rows.append(
                {
                    "sampled_at": at + timedelta(seconds=30),
                    "sampled_by": "gate",
                    "freshness_seconds": GOOD,
                }
            )
    for row in rows:
        row["served_source_commit"] = row["sampled_at"] - timedelta(
            seconds=row["freshness_seconds"]
        )
    return rows


def _expected(days: dict[date, tuple[int, int]]) -> dict[date, dict[str, Any]]:
    """The SLO's definition, by hand: over the window's sampled minutes, at most
    (1 - target) may be bad."""
    target, window = SLO["slo_target"], SLO["slo_window_days"]
    out = {}
    for day, (minutes, bad) in days.items():
        inside = [v for d, v in days.items() if day - timedelta(days=window) < d <= day]
        sampled, bad_in = sum(v[0] for v in inside), sum(v[1] for v in inside)
        budget = (1 - target) * sampled
        burn = bad / minutes / (1 - target)
        status = (
            "exhausted"
            if bad_in >= budget
            else "burning"
            if burn >= SLO["slo_burn_rate_alert"]
            else "ok"
        )
        out[day] = {
            "minutes_sampled": minutes,
            "minutes_good": minutes - bad,
            "window_minutes_sampled": sampled,
            "budget_remaining": 1 - bad_in / budget,
            "burn_rate": burn,
            "slo_status": status,
        }
    return out


def _write(settings: Settings, days: dict[date, tuple[int, int]]) -> None:
    write_deltalake(
        settings.table_uri("quality", freshness.SAMPLES),
        pa.Table.from_pylist(_samples(days), schema=freshness.SAMPLES_SCHEMA),
        mode="overwrite",
    )


def _build_and_publish(settings: Settings, run_id: str) -> None:
    expose_lake(settings)
    run_dbt(
        settings,
        ["build", "--select", "stg_quality__freshness_samples", SLO_MART, "--threads", "1"],
    )
    publish(settings, run_id, refresh=[SLO_MART], required=[SLO_MART], data_run_id=run_id)


@pytest.fixture(scope="module")
def slo_lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = lake_settings(tmp_path_factory.mktemp("slo") / "data", **SLO)
    quality_tables.ensure_tables(settings)
    freshness.ensure_tables(settings)
    return settings


def test_the_mart_follows_the_slo_definition_to_an_exhausted_budget(slo_lake: Settings) -> None:
    _write(slo_lake, DAYS)
    _build_and_publish(slo_lake, "r1")
    with connect(slo_lake) as marts:
        rows = marts.read_mart(SLO_MART).to_pylist()
    got = {r["slo_date"]: r for r in rows}
    expected = _expected(DAYS)
    assert sorted(got) == sorted(expected)
    for day, want in expected.items():
        for column, value in want.items():
            assert got[day][column] == pytest.approx(value), (day, column)
    statuses = [expected[d]["slo_status"] for d in sorted(DAYS)]
    assert statuses == ["ok", "ok", "burning", "exhausted"]  # the cases the data was made for
    assert [got[d]["is_latest_day"] for d in sorted(DAYS)] == [False, False, False, True]


def test_the_webhook_hears_each_crossing_once(
    slo_lake: Settings,
    tmp_path: Path,
    webhook: tuple[str, list[dict]],
) -> None:
    url, received = webhook
    settings = lake_settings(tmp_path / "data", alert_webhook_url=url, **SLO)
    quality_tables.ensure_tables(settings)
    freshness.ensure_tables(settings)
    events = []
    for run, last in enumerate((date(2026, 3, 3), None, date(2026, 3, 4))):
        if last is not None:  # else: the same marts again
            _write(settings, {d: v for d, v in DAYS.items() if d <= last})
            _build_and_publish(settings, f"r{run}")
        state = follow_slo(settings, f"r{run}")
        assert state is not None
        events.append(state["status"])
    assert events == ["burning", "burning", "exhausted"]
    # posted once when it started burning (not again on the next run), once when spent
    assert [a["event"] for a in received] == ["slo_burning", "slo_exhausted"]
    assert received[1]["budget_remaining"] == pytest.approx(
        _expected(DAYS)[date(2026, 3, 4)]["budget_remaining"]
    )
    assert freshness.last_slo_state(settings)["status"] == "exhausted"
    # the way back: one more alert, that it recovered
    _write(settings, {date(2026, 3, 2): DAYS[date(2026, 3, 2)]})
    _build_and_publish(settings, "r9")
    follow_slo(settings, "r9")
    assert [a["event"] for a in received][-1] == "slo_recovered" and len(received) == 3
