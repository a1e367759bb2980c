"""Great Expectations checks: the suites generated from the data contracts, the
hand-written business rules, and their checkpoints (Data Docs, alert) on a small lake
that dbt built. A sound lake passes; a negative quantity, an orphan foreign key or a
negative stock fails the check that names it, and only that check."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pytest
import yaml
from deltalake import DeltaTable
from great_expectations import ExpectationSuite

from lakehouse.cdc.lander import ingest
from lakehouse.contracts import load_contracts
from lakehouse.generate import GenerateParams, generate
from lakehouse.quality import CheckResult
from lakehouse.quality.expectations import run_expectations
from lakehouse.quality.suites import contract_suite, rule_suites
from lakehouse.settings import DEFAULT_CONTRACTS_DIR, PROJECT_DIR, Settings, load_settings
from lakehouse.transform.dbt import run_dbt
from tests.support.ports import free_port

SMALL = GenerateParams(clients=100, products=40, days=60)
TABLES = ["client", "order_item", "orders", "product", "promotion", "sale", "stock", "transporter"]
MARTS = [
    "agg_sales_monthly",
    "agg_sales_weekly",
    "fct_inventory_snapshot",
    "fct_order_item",
    "mart_stock_coverage",
    # the model marts' rules (filled by a model job; empty tables here)
    "mart_demand_forecast",
    "mart_forecast_backtest",
    "mart_model_monitoring",
    "mart_replenishment",
    "mart_client_recommendations",
    "mart_recommendation_backtest",
    "mart_recommendation_metrics",
]
NEGATIVE_QUANTITY = "gx:silver.order_item:expect_column_values_to_be_between(quantity)"
ORPHAN_CLIENT = "gx:silver.orders:expect_column_values_to_be_null(client_id__orphan)"
NEGATIVE_STOCK = (
    "gx:marts.fct_inventory_snapshot:expect_column_values_to_be_between(quantity_on_hand)"
)
SHIPPED_BEFORE_ORDERED = (
    "gx:marts.fct_order_item:"
    "expect_column_pair_values_a_to_be_greater_than_b(shipped_at,ordered_at)"
)


def _kinds(suite: ExpectationSuite) -> set[tuple[str, str]]:
    """(expectation type, column(s)) of each expectation of a suite."""
    out = set()
    for e in suite.expectations:
        kwargs = e.configuration.kwargs
        columns = kwargs.get("column") or ",".join(
            kwargs.get("column_list") or [kwargs.get("column_A", ""), kwargs.get("column_B", "")]
        )
        out.add((e.expectation_type, columns))
    return out


def _failed(checks: list[CheckResult]) -> dict[str, CheckResult]:
    return {c.check: c for c in checks if not c.passed}


def _first(table: DeltaTable, column: str) -> int:
    return int(pc.min(table.to_pyarrow_table(columns=[column]).column(column)).as_py())


# -- the suites, without a lake -----------------------------------------------------------------


def test_generated_suites_follow_the_contracts() -> None:
    contracts = load_contracts(DEFAULT_CONTRACTS_DIR)
    order_item = contract_suite("silver", contracts["order_item"])
    kinds = _kinds(order_item)
    assert ("expect_column_values_to_be_unique", "order_item_id") in kinds
    assert ("expect_column_values_to_not_be_null", "order_item_id") in kinds
    for fk in ("order_id", "product_id", "promotion_id"):  # the shop's foreign keys
        assert ("expect_column_values_to_be_null", f"{fk}__orphan") in kinds
    between = next(
        e
        for e in order_item.expectations
        if e.expectation_type == "expect_column_values_to_be_between"
        and e.configuration.kwargs["column"] == "quantity"
    )
    assert between.configuration.kwargs["min_value"] == 1  # the contract's `min: 1`
    assert order_item.name == "silver.order_item"

    stock = _kinds(contract_suite("silver", contracts["stock"]))
    assert ("expect_compound_columns_to_be_unique", "product_id,warehouse_id") in stock

    orders = contract_suite("silver", contracts["orders"])
    in_set = next(
        e for e in orders.expectations if e.expectation_type == "expect_column_values_to_be_in_set"
    )
    assert in_set.configuration.kwargs["column"] == "status"
    assert in_set.configuration.kwargs["value_set"] == [
        "placed",
        "paid",
        "shipped",
        "delivered",
        "cancelled",
    ]

    client = contract_suite("bronze", contracts["client"])
    kinds = _kinds(client)
    assert ("expect_column_values_to_match_regex", "email") in kinds  # pii: email
    assert ("expect_column_values_to_be_in_set", "_op") in kinds
    not_null = {
        e.configuration.kwargs["column"]: e.configuration.kwargs.get("row_condition")
        for e in client.expectations
        if e.expectation_type == "expect_column_values_to_not_be_null"
    }
    assert not_null["client_id"] is None  # a delete carries its key
    assert not_null["segment"] == {  # and may carry nothing else
        "type": "comparison",
        "column": {"name": "_op"},
        "operator": "!=",
        "parameter": "d",
    }
    assert "first_name" not in not_null  # nullable in the contract
    assert not any(e.expectation_type.endswith("_unique") for e in client.expectations)


def test_hand_written_suites_load_with_a_severity_each() -> None:
    suites = {s.name: s for s in rule_suites()}
    assert {f"marts.{m}" for m in MARTS} <= set(suites)
    assert "silver.orders.rules" in suites
    severities = [e.meta["severity"] for s in suites.values() for e in s.expectations]
    assert set(severities) <= {"error", "warn"}
    warns = [e for s in suites.values() for e in s.expectations if e.meta["severity"] == "warn"]
    assert all(e.meta.get("reason") for e in warns)
    assert all(e.severity.value == "warning" for e in warns)  # GX's own severity agrees


def test_hand_written_rules_stay_on_their_own_table() -> None:
    """A rule that needs another table is a dbt test: no suite names a column that its
    table lacks (once, such columns were joined in with pandas)."""
    marts = _mart_columns()
    for suite in rule_suites():
        if suite.meta["layer"] != "marts":
            continue
        table = suite.meta["table"]
        named = {
            column
            for e in suite.expectations
            for key in ("column", "column_A", "column_B")
            if (column := e.configuration.kwargs.get(key))
        }
        assert named <= marts[table], (table, named - marts[table])


def _mart_columns() -> dict[str, set[str]]:
    """Each mart's columns, as its dbt model declares them."""
    out: dict[str, set[str]] = {}
    for path in (PROJECT_DIR / "dbt_project" / "models" / "marts").glob("*/_*__models.yml"):
        for model in yaml.safe_load(path.read_text())["models"]:
            out[model["name"]] = {c["name"] for c in model.get("columns", [])}
    return out


# -- on a small lake ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Generated, landed and built with dbt (no gate); tests change a copy of it."""
    tmp = tmp_path_factory.mktemp("expectations")
    settings = load_settings(data_dir=tmp / "data")
    generate(settings, SMALL)
    ingest(settings)
    target = ["--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")]
    run_dbt(settings, ["seed", *target])  # the shop's calendar, read by the feature tables
    run_dbt(settings, ["run", *target])
    return settings


@pytest.fixture(scope="module")
def lake_copy(lake: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("broken") / "data"
    shutil.copytree(lake.root, root)
    return load_settings(data_dir=root)


@pytest.mark.integration
def test_a_sound_lake_passes_and_writes_data_docs(
    lake: Settings, webhook: tuple[str, list[dict]]
) -> None:
    url, received = webhook
    settings = load_settings(data_dir=lake.root, alert_webhook_url=url)
    checks = run_expectations(settings, run_id="sound")

    tables = {(c.layer, c.table) for c in checks}
    assert tables == {
        *((layer, t) for layer in ("bronze", "silver") for t in TABLES),
        *(("marts", m) for m in MARTS),
    }
    assert all(c.kind == "expectation" and c.check.startswith("gx:") for c in checks)
    assert len({c.check for c in checks}) == len(checks)  # names are unique
    assert _failed(checks) == {}
    assert received == []  # nothing failed, nothing alerted
    docs = settings.docs_dir / "gx"
    assert (docs / "index.html").is_file()
    assert "silver.orders" in (docs / "index.html").read_text()


@pytest.mark.integration
def test_a_negative_quantity_and_an_orphan_fail_their_checks_and_alert(
    lake_copy: Settings, webhook: tuple[str, list[dict]]
) -> None:
    order_items = DeltaTable(lake_copy.table_uri("silver", "order_item"))
    line = _first(order_items, "order_item_id")
    order_items.update(updates={"quantity": "-3"}, predicate=f"order_item_id = {line}")
    orders = DeltaTable(lake_copy.table_uri("silver", "orders"))
    order = _first(orders, "order_id")
    orders.update(updates={"client_id": "999999"}, predicate=f"order_id = {order}")
    url, received = webhook
    settings = load_settings(data_dir=lake_copy.root, alert_webhook_url=url)
    checks = run_expectations(settings, layers=("silver",), run_id="broken")

    failed = _failed(checks)
    assert set(failed) == {NEGATIVE_QUANTITY, ORPHAN_CLIENT}
    quantity = failed[NEGATIVE_QUANTITY]
    assert (quantity.severity, quantity.layer, quantity.table) == ("error", "silver", "order_item")
    assert quantity.blocks and quantity.observed == "1" and "-3" in quantity.detail
    assert "999999" in failed[ORPHAN_CLIENT].detail

    by_checkpoint = {alert["checkpoint"]: alert for alert in received}
    assert set(by_checkpoint) == {"silver.order_item", "silver.orders"}
    alert = by_checkpoint["silver.order_item"]
    assert alert["blocking"] and alert["run_id"] == "broken"
    assert [f["check"] for f in alert["failed"]] == [NEGATIVE_QUANTITY]


@pytest.mark.integration
def test_negative_stock_fails_even_when_the_webhook_is_down(
    lake_copy: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with duckdb.connect(str(lake_copy.warehouse)) as con:
        con.execute(
            "update main_marts.fct_inventory_snapshot set quantity_on_hand = -5 "
            "where inventory_snapshot_id = (select min(inventory_snapshot_id) "
            "from main_marts.fct_inventory_snapshot)"
        )
    down = f"http://127.0.0.1:{free_port()}/alerts"  # nothing listens there
    settings = load_settings(data_dir=lake_copy.root, alert_webhook_url=down)
    with caplog.at_level(logging.WARNING, logger="lakehouse.quality.expectations"):
        checks = run_expectations(settings, layers=("marts",), run_id="stock")

    assert set(_failed(checks)) == {NEGATIVE_STOCK}
    assert f"expectations failed on marts.fct_inventory_snapshot: {NEGATIVE_STOCK}" in caplog.text
    assert "did not take the alert" in caplog.text


@pytest.mark.integration
def test_a_line_shipped_before_it_was_ordered_fails_its_check(lake_copy: Settings) -> None:
    """The ship date against the order date is a rule on the line's own columns: Great
    Expectations holds it (dbt does not test it again)."""
    with duckdb.connect(str(lake_copy.warehouse)) as con:
        con.execute(
            "update main_marts.fct_order_item set shipped_at = ordered_at - interval 2 day "
            "where order_item_id = (select min(order_item_id) from main_marts.fct_order_item)"
        )
    checks = run_expectations(lake_copy, layers=("marts",), run_id="shipped")

    failed = {c.check: c for c in _failed(checks).values() if c.table == "fct_order_item"}
    assert set(failed) == {SHIPPED_BEFORE_ORDERED}  # (the copy is shared: stock may be broken)
    assert failed[SHIPPED_BEFORE_ORDERED].blocks and failed[SHIPPED_BEFORE_ORDERED].observed == "1"


def test_a_missing_table_is_a_failed_error_check(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)  # nothing landed, nothing built
    checks = run_expectations(settings, layers=("bronze", "marts"), run_id="empty")
    assert {c.check for c in checks} == {
        *(f"gx:bronze.{t}:expect_table_to_exist({t})" for t in TABLES),
        *(f"gx:marts.{m}:expect_table_to_exist({m})" for m in MARTS),
    }
    assert all(c.blocks for c in checks)


@pytest.mark.integration
def test_on_a_live_source_a_row_newer_than_its_parent_s_table_is_not_an_orphan_yet(
    lake: Settings, tmp_path: Path
) -> None:
    """The lander lands a live source's tables one after the other: an order committed
    after the newest client silver holds may reference a client still in flight. One
    committed before it may not: that is an orphan."""
    root = tmp_path / "data"
    shutil.copytree(lake.root, root)
    settings = load_settings(data_dir=root)
    (settings.changes_path / "manifest.json").unlink()  # no recorded files: a live capture
    (root / "capture").mkdir(exist_ok=True)
    (root / "capture" / "offsets.dat").write_bytes(b"")
    clients = DeltaTable(settings.table_uri("silver", "client"))
    newest = pc.max(clients.to_pyarrow_table(columns=["_source_ts"]).column(0)).as_py()
    orders = DeltaTable(settings.table_uri("silver", "orders"))
    first = _first(orders, "order_id")
    later = newest.strftime("%Y-%m-%d %H:%M:%S")
    orders.update(
        updates={"client_id": "999999", "_source_ts": f"TIMESTAMP '{later}' + INTERVAL 1 HOUR"},
        predicate=f"order_id = {first}",
    )
    orders = DeltaTable(settings.table_uri("silver", "orders"))
    assert _failed(run_expectations(settings, layers=("silver",), run_id="live")) == {}

    # the same orphan committed long before the newest client: it is one
    orders.update(
        updates={"_source_ts": f"TIMESTAMP '{later}' - INTERVAL 1 HOUR"},
        predicate=f"order_id = {first}",
    )
    failed = _failed(run_expectations(settings, layers=("silver",), run_id="live"))
    assert set(failed) == {ORPHAN_CLIENT}
    assert "999999" in failed[ORPHAN_CLIENT].detail
