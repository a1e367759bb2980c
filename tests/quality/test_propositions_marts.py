"""The propositions marts go through write-audit-publish like every mart: propositions that
the recommendation job appended to the lake's ``ml`` tables are published (the latest
scoring run only, the backtest and metrics of the version that scored last), the
backtest's hits are derived from the order lines, a region's file holds only its clients'
rows, and each broken rule blocks the publication naming its check.

The propositions here are planted, not modelled: these tests are about the marts and their
checks, whatever model wrote the rows (tests/ml covers the models)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import yaml

from lakehouse.lake import ml_tables
from lakehouse.quality.gate import PublicationBlocked, build_audit_publish
from lakehouse.settings import PROJECT_DIR, Settings, load_settings
from tests.quality.gate_support import copy_lake, small_lake
from tests.support.forecasts import active_products, silver
from tests.support.propositions import (
    BASELINES,
    HORIZON_DAYS,
    Rows,
    live_clients,
    plant,
    top_n,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gate")]
MODELS = PROJECT_DIR / "dbt_project" / "models" / "marts" / "propositions"


def _read(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def propositions_lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A small lake with two scoring runs planted (version 1, then version 2): no build."""
    settings = small_lake(tmp_path_factory.mktemp("propositions") / "lake")
    earlier = datetime.now(UTC) - timedelta(hours=1)
    plant(settings, "run-1", "1", now=earlier)
    plant(settings, "run-2", "2")
    return settings


def _bought(settings: Settings, first: Any, days: int) -> set[tuple[int, int]]:
    """(client, product) of the order lines of orders not cancelled placed in [first,
    first + days), read from silver: the truth the mart's hits are checked against."""
    orders = {
        o["order_id"]: o
        for o in silver(settings, "orders").to_pylist()
        if not o.get("_deleted") and o["status"] != "cancelled"
    }
    last = first + timedelta(days=days)
    found = set()
    for line in silver(settings, "order_item").to_pylist():
        order = orders.get(line["order_id"])
        if line.get("_deleted") or order is None:
            continue
        if first <= order["ordered_at"].astimezone(UTC).date() < last:
            found.add((order["client_id"], line["product_id"]))
    return found


def test_the_latest_scoring_run_is_published_with_its_backtest_and_metrics(
    propositions_lake: Settings, tmp_path: Path
) -> None:
    settings = copy_lake(propositions_lake, tmp_path / "lake")
    report = build_audit_publish(settings)
    assert report.outcome == "published", [c.check for c in report.blocking]
    served = settings.published_warehouse
    clients, n = live_clients(settings), top_n(settings)
    assert n == 10 or n == len(active_products(settings)) - 1
    rows = _read(
        served,
        "select model_version, count(*), count(distinct client_id), min(rank), max(rank) "
        "from marts.mart_client_recommendations group by 1",
    )
    assert rows == [("2", len(clients) * n, len(clients), 1, n)]
    # the client's region and segment, the product's name: as the source holds them now
    got = _read(
        served, "select distinct client_id, region, segment from marts.mart_client_recommendations"
    )
    assert {r[0]: {"region": r[1], "segment": r[2]} for r in got} == clients
    names = {p["product_id"]: p["name"] for p in silver(settings, "product").to_pylist()}
    got = _read(
        served, "select distinct product_id, product_name from marts.mart_client_recommendations"
    )
    assert dict(got) == {pid: names[pid] for pid in active_products(settings)}

    # the backtest of version 2, its hits derived from the order lines after the cutoff
    backtest = _read(
        served,
        "select client_id, product_id, cutoff_date, bought_after_cutoff, model_version "
        "from marts.mart_recommendation_backtest",
    )
    assert len(backtest) == len(clients) * n
    assert {(r[2], r[4]) for r in backtest} == {(backtest[0][2], "2")}
    bought = _bought(settings, backtest[0][2], HORIZON_DAYS)
    hits = {(r[0], r[1]) for r in backtest if r[3]}
    assert hits == {(r[0], r[1]) for r in backtest} & bought
    assert 0 < len(hits) < len(backtest)  # both outcomes occur: the flag could be wrong

    metrics = _read(
        served,
        "select recommender, count(*), min(model_version), max(model_version) "
        "from marts.mart_recommendation_metrics group by 1",
    )
    segments = 1 + len({c["segment"] for c in clients.values()})
    assert sorted(metrics) == sorted((r, segments, "2", "2") for r in ("propositions", *BASELINES))

    # a region's file holds its clients' propositions and backtest, and nothing else
    (region,) = settings.superset_region_roles  # the regions given a file: north
    theirs = {cid for cid, c in clients.items() if c["region"] == region}
    for mart in ("mart_client_recommendations", "mart_recommendation_backtest"):
        own = _read(settings.published_region(region), f"select client_id from marts.{mart}")
        assert sorted(r[0] for r in own) == sorted(
            cid for (cid,) in _read(served, f"select client_id from marts.{mart}") if cid in theirs
        ), mart
        assert own and {r[0] for r in own} <= theirs


def test_the_accepted_reasons_are_the_lake_s() -> None:
    """The mart's accepted reasons are those the lake's schema module names (one list)."""
    doc = yaml.safe_load((MODELS / "_propositions__models.yml").read_text())
    mart = next(m for m in doc["models"] if m["name"] == "mart_client_recommendations")
    reason = next(c for c in mart["columns"] if c["name"] == "reason")
    accepted = next(t["accepted_values"] for t in reason["data_tests"] if "accepted_values" in t)
    assert tuple(accepted["arguments"]["values"]) == ml_tables.REASONS


def test_a_proposition_without_a_score_cannot_land(tmp_path: Path) -> None:
    """A null score is refused by the lake's schema before dbt sees it (the mart's contract
    and not_null test are the second and third line)."""
    empty = load_settings(data_dir=tmp_path)
    now = datetime.now(UTC)
    row = {
        "scoring_run_id": "r",
        "client_id": 1,
        "rank": 1,
        "product_id": 1,
        "score": None,
        "reason": ml_tables.REASONS[0],
        "model_name": "propositions",
        "model_version": "1",
        "features_as_of": now,
        "scored_at": now,
    }
    with pytest.raises(ValueError, match="score"):
        ml_tables.append(empty, ml_tables.RECOMMENDATIONS, pa.Table.from_pylist([row]))


# --- failing controls: one build with a defect per rule, each in rows of its own, so that
# each check fails on the rows planted for it (and its count says so) and no other check does

UNKNOWN = 987_654_321  # no client, no product has this id


def _defects(settings: Settings) -> Any:
    """The defects to plant, for ``plant(amend=...)``, on the first clients (c1..c6). In the
    propositions and the backtest alike: c1's rank 5 left out (a gap), c2 given an 11th
    proposition (a rank past 10), c3 given a second rank 3 (another product), c4's rank 4
    the same product as its rank 3, c6's rank 1 a product that does not exist. In the
    propositions only: c5's reason not one of REASONS, and a list for a client that does
    not exist. In the metrics: a MAP@10, nDCG@10, recall@10 and coverage out of [0, 1],
    each on a row of its own, and a row recorded twice."""
    products = active_products(settings)
    c1, c2, c3, c4, c5, c6 = sorted(live_clients(settings))[:6]

    def spare(rows: Rows, client: int) -> int:
        """An active product not in the client's list."""
        return min(set(products) - {r["product_id"] for r in rows if r["client_id"] == client})

    def amend(table: str, rows: Rows) -> Rows:
        if table == ml_tables.RECOMMENDATION_METRICS:
            for row, column, value in zip(
                rows,
                _SHARES,
                (1.5, -0.1, 2.0, 1.2),
                strict=False,
            ):
                row[column] = value
            return [*rows, dict(rows[-1])]
        at = {(r["client_id"], r["rank"]): r for r in rows}
        extra = [
            {
                **at[c2, 1],
                "rank": max(r for c, r in at if c == c2) + 1,
                "product_id": spare(rows, c2),
            },
            {**at[c3, 3], "product_id": spare(rows, c3)},
        ]
        at[c4, 4]["product_id"] = at[c4, 3]["product_id"]
        at[c6, 1]["product_id"] = UNKNOWN
        if table == ml_tables.RECOMMENDATIONS:
            at[c5, 1]["reason"] = "because"
            extra.append({**at[c5, 2], "client_id": UNKNOWN, "rank": 1})
        return [r for r in rows if (r["client_id"], r["rank"]) != (c1, 5)] + extra

    return amend


def test_each_planted_defect_blocks_publication_naming_its_check(
    propositions_lake: Settings, tmp_path: Path
) -> None:
    settings = copy_lake(propositions_lake, tmp_path / "lake")
    plant(settings, "run-3", "3", amend=_defects(settings))
    with pytest.raises(PublicationBlocked) as blocked:
        build_audit_publish(settings)
    failed = {c.check: c.observed for c in blocked.value.report.blocking}
    rank = "expect_column_values_to_be_between(rank)"
    share = [f"expect_column_values_to_be_between({c})" for c in _SHARES]
    assert failed == {
        "dbt:assert_proposition_ranks_have_no_gaps": "2",  # c1, in each mart
        f"gx:marts.mart_client_recommendations:{rank}": "1",  # c2
        f"gx:marts.mart_recommendation_backtest:{rank}": "1",
        f"dbt:{_UNIQUE}mart_client_recommendations_client_id__rank": "1",  # c3
        f"dbt:{_UNIQUE}mart_recommendation_backtest_client_id__cutoff_date__rank": "1",
        f"dbt:{_UNIQUE}mart_client_recommendations_client_id__product_id": "1",  # c4
        f"dbt:{_UNIQUE}mart_recommendation_backtest_client_id__cutoff_date__product_id": "1",
        f"dbt:accepted_values_mart_client_recommendations_reason__{_REASONS}": "1",  # c5
        "dbt:assert_proposed_products_are_active": "1",  # c6
        f"dbt:{_IN}mart_recommendation_backtest_product_id__product_id__ref_dim_product_": "1",
        f"dbt:{_IN}mart_client_recommendations_client_id__client_id__ref_dim_client_": "1",
        **{f"gx:marts.mart_recommendation_metrics:{check}": "1" for check in share},
        f"dbt:{_UNIQUE}mart_recommendation_metrics_cutoff_date__recommender__segment": "1",
    }


_UNIQUE = "unique_combination_of_columns_"
_IN = "relationships_"
_REASONS = "__".join(r.replace(" ", "_") for r in ml_tables.REASONS)
_SHARES = ("map_at_10", "ndcg_at_10", "recall_at_10", "catalogue_coverage")
