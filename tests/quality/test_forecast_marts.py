"""The forecast marts go through write-audit-publish like every mart: forecasts that a
model job appended to the lake's ``ml`` tables are published (the latest scoring run
only, the backtest of the version that scored), the replenishment list is derived from
them, and a negative forecast or an active product left out blocks the publication.

The forecasts here are planted, not modelled: these tests are about the marts and their
checks, whatever model wrote the rows (tests/ml covers the models)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lakehouse.lake import ml_tables
from lakehouse.quality.gate import PublicationBlocked, build_audit_publish
from lakehouse.settings import Settings
from tests.quality.gate_support import copy_lake, small_lake
from tests.support.forecasts import HORIZON, active_products, plant

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gate")]


def _read(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(settings.published_warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def forecast_lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A small lake with two scoring runs planted (version 1, then version 2): no build."""
    settings = small_lake(tmp_path_factory.mktemp("forecast") / "lake")
    plant(settings, "run-1", "1", scale=100.0)
    plant(settings, "run-2", "2", scale=1.0)
    return settings


def test_the_latest_scoring_run_is_published_with_its_backtest_and_replenishment(
    forecast_lake: Settings, tmp_path: Path
) -> None:
    settings = copy_lake(forecast_lake, tmp_path / "lake")
    report = build_audit_publish(settings)
    assert report.outcome == "published", [c.check for c in report.blocking]
    products = active_products(settings)
    served = _read(
        settings,
        "select model_version, count(*), count(distinct product_id), max(forecast_units) "
        "from marts.mart_demand_forecast group by 1",
    )
    assert served == [("2", len(products) * HORIZON, len(products), 1.0 * 5 + HORIZON - 1)]
    origins = _read(
        settings,
        "select count(distinct origin_week), count(*), min(model_version), "
        "max(model_version) from marts.mart_forecast_backtest",
    )
    assert origins == [(HORIZON, len(products) * HORIZON * HORIZON, "2", "2")]
    # replenishment: every product x warehouse with stock, its forecast split by share
    rows = _read(
        settings,
        "select product_id, sum(warehouse_share), sum(forecast_units_lead_time), "
        "min(suggested_order_units) from marts.mart_replenishment group by 1",
    )
    assert {r[0] for r in rows} == set(products)
    lead = {
        pid: sum(
            u
            for (u,) in _read(
                settings,
                "select forecast_units from marts.mart_demand_forecast "
                f"where product_id = {pid} order by week_start_date limit 2",
            )
        )
        for pid in products
    }
    for pid, share, lead_units, fewest in rows:
        assert share == pytest.approx(1.0)
        assert lead_units == pytest.approx(lead[pid])
        assert fewest >= 0
    stock = _read(settings, "select count(*) from marts.mart_stock_coverage")[0][0]
    assert _read(settings, "select count(*) from marts.mart_replenishment")[0][0] == stock


def test_an_active_product_without_a_forecast_blocks_publication(
    forecast_lake: Settings, tmp_path: Path
) -> None:
    settings = copy_lake(forecast_lake, tmp_path / "lake")
    plant(settings, "run-3", "3", scale=1.0, skip=active_products(settings)[0])
    with pytest.raises(PublicationBlocked) as blocked:
        build_audit_publish(settings)
    named = [c.check for c in blocked.value.report.blocking]
    assert any("assert_every_active_product_is_forecast" in n for n in named), named


# --- failing controls: one build with a defect per rule, each in rows of its own, so that
# each check fails on the rows planted for it (and its count says so) and no other check does

_FORECAST = "gx:marts.mart_demand_forecast:"
_BACKTEST = "gx:marts.mart_forecast_backtest:"
_NOT_NEGATIVE = "expect_column_values_to_be_between"
_NOT_BELOW = "expect_column_pair_values_a_to_be_greater_than_b"
_LEAD_TIME = f"gx:marts.mart_replenishment:{_NOT_NEGATIVE}(forecast_units_lead_time)"


def _defects(products: list[int]) -> Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """The defects to plant, for ``plant(amend=...)``. In the forecast (its first week)
    and the backtest (the newest origin's first target week): the first product's lower
    bound above the forecast, the second's upper bound below it, the third's lower bound
    negative, the fourth's forecast negative (its lower bound with it, so that the interval
    stays ordered; its lead-time demand in the replenishment goes negative); the fifth's
    actual units negative. The backtest's oldest origin is left out (seven origins). The drift
    of the first feature is negative, the second's status is not one of the three. Per
    warehouse, the fifth product's first warehouse takes a share above 1."""
    inverted, narrow, below_zero, negative, unsold = products[:5]

    def amend(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if table == ml_tables.MONITORING:
            rows[0]["psi"] = -0.05
            rows[1]["status"] = "drifting"
            return rows
        if table == ml_tables.WAREHOUSE_FORECASTS:  # split from the amended forecasts
            first_warehouse = min(r["warehouse_id"] for r in rows if r["product_id"] == unsold)
            for row in rows:
                if (row["product_id"], row["warehouse_id"]) == (unsold, first_warehouse):
                    row["warehouse_share"] = 1.5
            return rows
        if table == ml_tables.BACKTESTS:
            oldest = min(r["origin_week"] for r in rows)
            rows = [r for r in rows if r["origin_week"] != oldest]
        first: dict[int, dict[str, Any]] = {}
        for row in rows:  # product by product, first week (newest origin) first
            first.setdefault(row["product_id"], row)
        first[inverted]["lower_80"] = first[inverted]["forecast_units"] + 1
        first[narrow]["upper_80"] = first[narrow]["forecast_units"] - 1
        first[below_zero]["lower_80"] = -1.0
        first[negative].update(forecast_units=-100.0, lower_80=-100.0)
        if table == ml_tables.BACKTESTS:
            first[unsold]["actual_units"] = -1.0
        return rows

    return amend


def test_each_planted_defect_blocks_publication_naming_its_check(
    forecast_lake: Settings, tmp_path: Path
) -> None:
    settings = copy_lake(forecast_lake, tmp_path / "lake")
    plant(settings, "run-3", "3", scale=1.0, amend=_defects(active_products(settings)))
    with pytest.raises(PublicationBlocked) as blocked:
        build_audit_publish(settings)
    failed = {c.check: c.observed for c in blocked.value.report.blocking}
    # every warehouse of the product with a negative forecast that sold some of it
    lead_time = failed.pop(_LEAD_TIME, None)
    assert lead_time is not None and int(lead_time) >= 1, failed
    interval = {
        f"{_NOT_NEGATIVE}(forecast_units)": "1",
        f"{_NOT_NEGATIVE}(lower_80)": "2",  # the negative bound, and the negative forecast's
        f"{_NOT_BELOW}(forecast_units,lower_80)": "1",
        f"{_NOT_BELOW}(upper_80,forecast_units)": "1",
    }
    assert failed == {
        "dbt:assert_forecast_backtest_covers_eight_origins": "1",
        f"gx:marts.mart_replenishment:{_NOT_NEGATIVE}(warehouse_share)": "1",
        "dbt:accepted_values_mart_model_monitoring_status__ok__alert__retrain": "1",
        "gx:marts.mart_model_monitoring:expect_column_values_to_be_between(psi)": "1",
        **{_FORECAST + check: rows for check, rows in interval.items()},
        **{_BACKTEST + check: rows for check, rows in interval.items()},
        f"{_BACKTEST}{_NOT_NEGATIVE}(actual_units)": "1",
    }
