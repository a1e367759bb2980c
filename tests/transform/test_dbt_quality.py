"""The dbt project's quality gates: enforced contracts on the marts, the business rules
tested as errors and a few advisory checks as warnings, and the silver source's freshness
SLAs from the settings.

On a tiny generated lake, edited in place to break one rule at a time: a warn-level check
fails alone and the build still succeeds; each business rule's test fails on a violation
of it; a null where a mart's contract forbids one stops the mart from building, and the
last good table stays in place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.generate import GenerateParams, generate
from lakehouse.quality.suites import rule_suites
from lakehouse.settings import Settings, load_settings
from lakehouse.transform.dbt import DbtResult, run_dbt
from tests.transform.test_dbt_project import MARTS

pytestmark = pytest.mark.integration
TINY = GenerateParams(clients=40, products=12, days=30, snapshot_day=5)
MART_FOLDERS = (
    "marts/core/",
    "marts/inventory/",
    "marts/sales/",
    "marts/forecast/",
    "marts/propositions/",
    "marts/reports/",
)  # not marts/quality
# the marts and their ancestors only: the quality models read tables this lake lacks
BUILD_ARGS = [
    "--select",
    *(f"+path:models/{folder}" for folder in MART_FOLDERS),
    "--indirect-selection",
    "cautious",
]
WARN_AFTER, ERROR_AFTER = 30, 600  # minutes; the tiny lake's data is from 2024
TRANSACTIONAL = {"orders", "order_item", "sale", "stock"}  # the tables freshness watches

RANGE_TESTS = {"greater_than", "less_than", "accepted_range"}  # dbt tests that bound a column
# (model, generic test, column), or (None, singular test, None)
Key = tuple[str | None, str, str | None]
PRICE_IN_RANGE = (None, "assert_order_item_unit_price_within_catalogue_range", None)
SALE_IS_ITS_LINES = (None, "assert_sale_revenue_equals_order_lines_less_discounts", None)
LINE_NET = (None, "assert_order_item_net_is_gross_minus_discount", None)
AGGREGATES_RECONCILE = (None, "assert_sales_aggregates_reconcile_with_order_lines", None)
# the business rules on the marts: each an error, whose failure blocks publication
BUSINESS_RULES: set[Key] = {
    PRICE_IN_RANGE,
    SALE_IS_ITS_LINES,
    LINE_NET,
    AGGREGATES_RECONCILE,
}
PAYMENT_METHODS = {
    ("stg_oltp__sales", "accepted_values", "payment_method"),
    ("fct_sale", "accepted_values", "payment_method"),
}
PRICE_AT_ORDER_TIME = (None, "assert_order_item_unit_price_is_the_price_at_order_time", None)
# every warn-level test, each deliberately: any other failing test blocks publication
ADVISORY: set[Key] = {
    *PAYMENT_METHODS,
    ("stg_oltp__transporters", "accepted_values", "service_level"),
    ("dim_transporter", "accepted_values", "service_level"),
    ("fct_order_item", "not_unknown_member", "client_key"),
    ("fct_order_item", "not_unknown_member", "product_key"),
    ("fct_order_item", "not_unknown_member", "transporter_key"),
    ("fct_sale", "not_unknown_member", "client_key"),
    PRICE_AT_ORDER_TIME,
}


@dataclass(frozen=True)
class Build:
    """One dbt command's outcome and its private target directory."""

    settings: Settings
    result: DbtResult
    target: Path

    def manifest(self) -> dict:
        return json.loads((self.target / "manifest.json").read_text())

    def results(self, file: str = "run_results.json") -> dict[str, dict]:
        """unique_id -> dbt's result, for every node the command ran."""
        results = json.loads((self.target / file).read_text())["results"]
        return {r["unique_id"]: r for r in results}

    def test_results(self) -> dict[Key, dict]:
        nodes = self.manifest()["nodes"]
        return {
            _test_key(nodes[uid]): result
            for uid, result in self.results().items()
            if uid.startswith("test.")
        }


def _dbt(settings: Settings, target: Path, args: list[str]) -> Build:
    """dbt with a private target and log directory (parallel tests must not share them)."""
    private = ["--target-path", str(target), "--log-path", str(target / "logs")]
    return Build(settings, run_dbt(settings, [*args, *private], raise_on_failure=False), target)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """The tiny lake, with one sale paid by a method the tests do not know, built."""
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("quality"),
        freshness_warn_after_minutes=WARN_AFTER,
        freshness_error_after_minutes=ERROR_AFTER,
    )
    generate(settings, TINY)
    ingest(settings)
    sales = DeltaTable(settings.table_uri("silver", "sale"))
    first = pc.min(sales.to_pyarrow_table(columns=["sale_id"])["sale_id"]).as_py()
    sales.update(predicate=f"sale_id = {first}", updates={"payment_method": "'voucher'"})
    return _dbt(settings, settings.root / "target-build", ["build", *BUILD_ARGS])


@pytest.fixture(scope="module")
def broken(built: Build) -> Build:
    """Then one violation of each business rule, on the last four sales' orders, and the
    project built again."""
    settings = built.settings
    sales = DeltaTable(settings.table_uri("silver", "sale"))
    zero_sale, dear_sale, odd_sale, early_sale = (
        sales.to_pyarrow_table(columns=["sale_id", "order_id"])
        .sort_by([("sale_id", "descending")])[:4]
        .to_pylist()
    )
    lines = DeltaTable(settings.table_uri("silver", "order_item"))
    zero = _first_line(lines, zero_sale["order_id"])
    lines.update(predicate=f"order_item_id = {zero}", updates={"quantity": "0"})
    dear = _first_line(lines, dear_sale["order_id"])
    lines.update(predicate=f"order_item_id = {dear}", updates={"unit_price": "99999"})
    sales.update(
        predicate=f"sale_id = {odd_sale['sale_id']}", updates={"net_amount": "net_amount + 0.01"}
    )
    sales.update(  # made before its order was placed
        predicate=f"sale_id = {early_sale['sale_id']}",
        updates={"sold_at": "sold_at - interval '100 days'"},
    )
    return _dbt(settings, settings.root / "target-broken", ["build", *BUILD_ARGS])


@pytest.fixture(scope="module")
def null_quantity(broken: Build) -> tuple[int, Build]:
    """Then the first order line's quantity set to null, and the fact run again."""
    settings = broken.settings
    lines = DeltaTable(settings.table_uri("silver", "order_item"))
    line = pc.min(lines.to_pyarrow_table(columns=["order_item_id"])["order_item_id"]).as_py()
    lines.update(predicate=f"order_item_id = {line}", updates={"quantity": "null"})
    models = ["stg_oltp__order_items", "fct_order_item"]
    return line, _dbt(settings, settings.root / "target-null", ["run", "--select", *models])


def _first_line(lines: DeltaTable, order_id: int) -> int:
    ids = lines.to_pyarrow_table(columns=["order_item_id"], filters=[("order_id", "=", order_id)])
    return pc.min(ids["order_item_id"]).as_py()


def _marts(manifest: dict) -> dict[str, dict]:
    return {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["package_name"] == "lakehouse"
        and node["path"].startswith(MART_FOLDERS)
    }


def _test_key(node: dict) -> Key:
    metadata = node.get("test_metadata")
    if metadata is None:
        return None, node["name"], None
    return node["attached_node"].rsplit(".", 1)[-1], metadata["name"], node.get("column_name")


def _tests(manifest: dict) -> dict[Key, dict]:
    """The data tests, but those of the quality models (checks on the checks)."""
    return {
        _test_key(node): node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
        and node["package_name"] == "lakehouse"
        and "/quality/" not in node["original_file_path"]
    }


def _severities(manifest: dict) -> dict[Key, str]:
    return {key: node["config"]["severity"].lower() for key, node in _tests(manifest).items()}


def test_every_mart_has_an_enforced_contract_with_typed_columns(built: Build) -> None:
    marts = _marts(built.manifest())
    assert sorted(marts) == sorted(MARTS)
    for name, node in marts.items():
        assert node["config"]["contract"]["enforced"] is True, name
        untyped = [c for c, column in node["columns"].items() if not column.get("data_type")]
        assert untyped == [], name


def test_columns_tested_not_null_are_not_null_in_the_contract(built: Build) -> None:
    """The contract enforces at build time what the not_null tests check afterwards."""
    manifest = built.manifest()
    marts = _marts(manifest)
    for model, test, column in _tests(manifest):
        if model in marts and test == "not_null":
            constraints = marts[model]["columns"][column]["constraints"]
            assert any(c["type"] == "not_null" for c in constraints), (model, column)


def test_business_rules_are_errors_and_only_the_advisory_checks_warn(built: Build) -> None:
    severities = _severities(built.manifest())
    assert {key: severities.get(key) for key in BUSINESS_RULES} == dict.fromkeys(
        BUSINESS_RULES, "error"
    )
    assert {key for key, severity in severities.items() if severity == "warn"} == ADVISORY


def test_silver_freshness_comes_from_the_settings(built: Build) -> None:
    sources = built.manifest()["sources"].values()
    watched = {
        (source["source_name"], source["name"]): source["freshness"]
        for source in sources
        if source["freshness"] and source["freshness"]["warn_after"]["count"]
    }
    assert set(watched) == {("silver", table) for table in TRANSACTIONAL}
    for freshness in watched.values():
        assert freshness["warn_after"] == {"count": WARN_AFTER, "period": "minute"}
        assert freshness["error_after"] == {"count": ERROR_AFTER, "period": "minute"}


def test_an_advisory_check_fails_alone_and_the_build_succeeds(built: Build) -> None:
    assert built.result.succeeded, built.result.failures
    results = built.results()
    assert {f"model.lakehouse.{mart}" for mart in MARTS} <= set(results)
    assert {r["status"] for r in results.values()} == {"success", "pass", "warn"}
    warned = {key for key, r in built.test_results().items() if r["status"] == "warn"}
    assert warned == PAYMENT_METHODS


def test_each_business_rule_fails_on_a_violation_of_it(broken: Build) -> None:
    tests = broken.test_results()
    failed = {key: r["failures"] for key, r in tests.items() if r["status"] == "fail"}
    assert failed == {
        PRICE_IN_RANGE: 1,
        SALE_IS_ITS_LINES: 4,  # the zero quantity's, the high price's, the odd amount's, the early
    }
    # an error-level failure skips what is built on the model: the aggregates' check here
    assert tests[AGGREGATES_RECONCILE]["status"] == "skipped"
    warned = {key for key, r in tests.items() if r["status"] == "warn"}
    assert warned == {*PAYMENT_METHODS, PRICE_AT_ORDER_TIME}
    assert not broken.result.succeeded


def test_freshness_errors_past_the_error_sla_on_transactional_tables(built: Build) -> None:
    settings = built.settings
    fresh = _dbt(settings, settings.root / "target-freshness", ["source", "freshness"])
    statuses = {uid: r["status"] for uid, r in fresh.results("sources.json").items()}
    assert statuses == {f"source.lakehouse.silver.{table}": "error" for table in TRANSACTIONAL}
    assert not fresh.result.succeeded


def test_a_null_where_the_contract_forbids_one_stops_the_mart(
    null_quantity: tuple[int, Build],
) -> None:
    line, run = null_quantity
    assert not run.result.succeeded
    fact = run.results()["model.lakehouse.fct_order_item"]
    assert fact["status"] == "error"
    assert "NOT NULL constraint failed" in fact["message"], fact["message"]
    assert ".quantity" in fact["message"], fact["message"]
    # the last good fact stays: DuckDB swaps the new table in only once it is filled
    with duckdb.connect(str(run.settings.warehouse), read_only=True) as con:
        kept = con.execute(
            "select quantity from main_marts.fct_order_item where order_item_id = ?", [line]
        ).fetchone()
    assert kept is not None and kept[0] > 0


class _Recorder:
    """A :class:`lakehouse.progress.Progress` that keeps what it was told."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, float | None]] = []
        self.done = 0.0

    def add_task(self, description: str, *, total: float | None = None) -> int:
        self.tasks.append((description, total))
        return 0

    def advance(self, task: int, steps: float = 1) -> None:
        self.done += steps

    def update(
        self, task: int, *, completed: float | None = None, total: float | None = None
    ) -> None:
        self.done = self.done if completed is None else completed


def test_a_run_shows_its_nodes_as_progress(
    built: Build, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a progress, dbt's line per node gives way to the nodes done of the run's
    total (here the date dimension and its tests, on the built lake)."""
    settings, private = built.settings, built.settings.root / "target-progress"
    target = ["--target-path", str(private), "--log-path", str(private / "logs")]
    shown = _Recorder()
    result = run_dbt(settings, ["build", "--select", "dim_date", *target], progress=shown)

    assert result.succeeded
    ran = sum(result.nodes.values())
    assert ran > 1  # the model and its tests
    assert shown.tasks == [("dbt build", ran)]
    assert shown.done == ran
    assert "START" not in capsys.readouterr().out  # dbt ran quiet


def test_a_column_rule_has_one_home(built: Build) -> None:
    """A bound on a mart column's own values is a Great Expectations rule; dbt keeps the
    rules across tables. No dbt range test sits on a column a hand-written suite bounds."""
    bounded = {
        (suite.meta["table"], expectation.configuration.kwargs["column"])
        for suite in rule_suites()
        if suite.meta["layer"] == "marts"
        for expectation in suite.expectations
        if expectation.expectation_type == "expect_column_values_to_be_between"
    }
    ranges = {
        (node["attached_node"].rsplit(".", 1)[-1], node["column_name"])
        for node in built.manifest()["nodes"].values()
        if node["resource_type"] == "test"
        and (node.get("test_metadata") or {}).get("name") in RANGE_TESTS
    }
    assert len(bounded) >= 5 and ranges  # both kinds exist: the check could fail
    assert not bounded & ranges, bounded & ranges
