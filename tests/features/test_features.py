"""The feature store on a small lake of more than a year: the feature models build and
pass their dbt tests through the gate, which publishes them (never into a region's
file); their values agree with the generator's ground truth; Feast applies, materializes
and serves them; and a training set is point-in-time correct, where a join on the latest
values would leak a planted future row."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from lakehouse import features
from lakehouse.cdc.lander import ingest
from lakehouse.exceptions import FeatureStoreError
from lakehouse.generate import GenerateParams, generate
from lakehouse.quality.gate import GateReport, build_audit_publish
from lakehouse.settings import Settings
from lakehouse.warehouse import connect
from tests.quality.gate_support import lake_settings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("features")]
# more than a year, so that lag 52 has values; few clients and products, so it is quick
YEAR_AND_A_BIT = GenerateParams(clients=40, products=15, days=400, snapshot_day=5)
FEATURE_TABLES = {
    "feat_client",
    "feat_product_warehouse_weekly",
    "feat_product_weekly",
    "feat_promotion_calendar",
}
PLANTED_UNITS = 987_654


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, GateReport]:
    """The lake generated, landed, built, audited and published by the gate."""
    settings = lake_settings(tmp_path_factory.mktemp("features") / "data")
    generate(settings, YEAR_AND_A_BIT)
    ingest(settings)
    return settings, build_audit_publish(settings)


@pytest.fixture(scope="module")
def weekly(lake: tuple[Settings, GateReport]) -> pd.DataFrame:
    settings, _ = lake
    with connect(settings, section="features") as published:
        return published.read_mart("feat_product_weekly").to_pandas()


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _true_units(settings: Settings) -> Counter[tuple[int, date]]:
    """Units per product x ISO week from the ground truth: the order lines still in the
    source (a cancelled order's lines are deleted), by the order's date."""
    truth = settings.ground_truth_path
    orders = pq.read_table(truth / "orders.parquet", columns=["order_id", "ordered_at", "status"])
    placed = {
        row["order_id"]: row["ordered_at"].date()
        for row in orders.to_pylist()
        if row["status"] != "cancelled"
    }
    lines = pq.read_table(
        truth / "order_item.parquet", columns=["order_id", "product_id", "quantity"]
    )
    units: Counter[tuple[int, date]] = Counter()
    for line in lines.to_pylist():
        if line["order_id"] in placed:
            units[(line["product_id"], _monday(placed[line["order_id"]]))] += line["quantity"]
    return units


def test_the_gate_builds_tests_and_publishes_the_feature_tables(
    lake: tuple[Settings, GateReport],
) -> None:
    settings, report = lake
    assert report.outcome == "published", [c.check for c in report.checks if not c.passed]
    checked = {c.table for c in report.checks if c.table.startswith("feat_")}
    assert checked == FEATURE_TABLES  # each model built, and its tests ran
    tests = [c for c in report.checks if c.kind == "dbt_test" and c.table.startswith("feat_")]
    assert len(tests) > 40 and all(c.passed for c in tests)
    assert report.publication is not None
    assert set(report.publication.features) == FEATURE_TABLES
    assert all(rows > 0 for rows in report.publication.features.values())
    with connect(settings, section="features") as published:
        assert set(published.marts()) == FEATURE_TABLES
    for region in settings.superset_region_roles:  # a region's readers get no features
        with connect(settings, region=region) as theirs:
            assert theirs.marts() and not [m for m in theirs.marts() if m.startswith("feat_")]
        with pytest.raises(ValueError, match="per region"):
            connect(settings, region=region, section="features")


def test_weekly_units_match_the_ground_truth_with_zero_weeks(
    lake: tuple[Settings, GateReport], weekly: pd.DataFrame
) -> None:
    settings, _ = lake
    truth = _true_units(settings)
    got = {
        (int(r.product_id), r.week_start_date): int(r.units) for r in weekly.itertuples(index=False)
    }
    assert len(got) == len(weekly)  # one row per product x week
    last_week = max(week for _, week in got)
    expected = {key: n for key, n in truth.items() if key[1] <= last_week and key in got}
    assert expected and all(got[key] == n for key, n in expected.items())
    # every week of the truth's sales is in the spine (none before a product's first week)
    sold = {key for key, n in truth.items() if key[1] <= last_week and n}
    assert sold <= set(got)
    zeros = [key for key, n in got.items() if n == 0]
    assert zeros and all(truth.get(key, 0) == 0 for key in zeros)
    # the spine: every week from each product's first to the last complete week
    for product, rows in weekly.groupby("product_id"):
        weeks = sorted(rows["week_start_date"])
        assert weeks[-1] == last_week, product
        assert len(weeks) == (weeks[-1] - weeks[0]).days // 7 + 1, product
        assert all(w.weekday() == 0 for w in weeks)


def test_lag_52_is_the_same_week_last_year_or_null(weekly: pd.DataFrame) -> None:
    units = {(int(r.product_id), r.week_start_date): r.units for r in weekly.itertuples()}
    lagged = 0
    for r in weekly.itertuples():
        before = units.get((int(r.product_id), r.week_start_date - timedelta(weeks=52)))
        if before is None:
            assert pd.isna(r.units_lag_52), r
        else:
            assert r.units_lag_52 == before, r
            lagged += 1
    assert 0 < lagged < len(weekly)  # over a year of data: both kinds exist


def test_export_refuses_without_published_features(tmp_path: Path) -> None:
    with pytest.raises(FeatureStoreError, match="lakehouse build"):
        features.export(lake_settings(tmp_path / "empty"))


def test_feast_applies_materializes_and_serves_online(
    lake: tuple[Settings, GateReport],
) -> None:
    settings, _ = lake
    exported = features.apply(settings)
    assert set(exported) == FEATURE_TABLES
    for table in FEATURE_TABLES:
        path = features.parquet_path(settings, table)
        assert path.is_absolute() and pq.read_metadata(path).num_rows == exported[table]
    stock = pq.read_table(features.parquet_path(settings, "feat_product_warehouse_weekly"))
    frame = stock.to_pandas()
    latest = frame[frame["event_timestamp"] == frame["event_timestamp"].max()].iloc[0]
    end = latest["event_timestamp"].to_pydatetime() + timedelta(days=1)
    first = frame["event_timestamp"].min().to_pydatetime()
    features.materialize(settings, end=end, start=first)
    key = {"product_id": int(latest["product_id"]), "warehouse_id": latest["warehouse_id"]}
    online = features.online_features(settings, [key], "replenishment_v1")
    assert online["units"] == [int(latest["units"])]
    assert online["stock_on_hand"] == [int(latest["stock_on_hand"])]
    assert (settings.features_dir / "online.db").is_file()
    assert (settings.features_dir / "registry.db").is_file()


def test_a_training_set_never_sees_a_row_dated_after_its_label(
    lake: tuple[Settings, GateReport], weekly: pd.DataFrame
) -> None:
    """Plant, in Feast's offline data, a row for a product dated one day after a label's
    time (the product's latest week) with an absurd `units`: the point-in-time training
    set ignores it and gives the week that was known; a join on each product's latest row
    (the careless way) returns the planted value, so this test would fail on such a join."""
    settings, _ = lake
    features.apply(settings)  # also exports
    path = features.parquet_path(settings, "feat_product_weekly")
    row = weekly.sort_values(["week_start_date", "product_id"]).iloc[-1]  # a latest week
    label_time = pd.Timestamp(row["event_timestamp"])  # the week's values are known then
    planted = weekly[
        (weekly["product_id"] == row["product_id"])
        & (weekly["week_start_date"] == row["week_start_date"])
    ].copy()
    planted["units"] = PLANTED_UNITS
    planted["event_timestamp"] = label_time + pd.Timedelta(days=1)
    offline = pd.concat([pq.read_table(path).to_pandas(), planted], ignore_index=True)
    offline.to_parquet(path, index=False)
    try:
        entity = pd.DataFrame(
            {
                "product_id": [int(row["product_id"])],
                "category": [row["category"]],
                "week_key": [int(row["week_start_date"].strftime("%Y%m%d"))],
                "event_timestamp": [label_time.tz_localize("UTC")],
            }
        )
        training = features.historical_features(settings, entity, "demand_forecast_v1")
        assert training["units"].tolist() == [row["units"]]

        # the control: the latest value per product, joined without regard to time
        naive = offline.sort_values("event_timestamp").groupby("product_id").last()
        assert naive.loc[int(row["product_id"]), "units"] == PLANTED_UNITS
    finally:
        features.export(settings)  # the published table again


def test_the_promotion_calendar_is_known_only_once_announced(
    lake: tuple[Settings, GateReport],
) -> None:
    settings, _ = lake
    features.apply(settings)
    calendar = pq.read_table(features.parquet_path(settings, "feat_promotion_calendar"))
    announced = calendar.to_pandas().sort_values("event_timestamp").iloc[-1]
    at = pd.Timestamp(announced["event_timestamp"]).tz_localize("UTC")
    entity = pd.DataFrame(
        {
            "product_id": [0, 0],
            "category": [announced["category"]] * 2,
            "week_key": [int(announced["week_key"])] * 2,
            "event_timestamp": [at - pd.Timedelta(seconds=1), at + pd.Timedelta(seconds=1)],
        }
    )
    known = features.historical_features(settings, entity, "demand_forecast_v1")
    known = known.sort_values("event_timestamp")
    before, after = known["announced_promo_days"].tolist()
    assert after == announced["announced_promo_days"] and after > 0
    assert pd.isna(before) or before < after
    assert isinstance(announced["event_timestamp"], datetime)
