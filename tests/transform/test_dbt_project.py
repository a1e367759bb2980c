"""The dbt project loads: every expected model parses, lands in its layer's schema, and is
documented with its grain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakehouse.settings import load_settings
from lakehouse.transform.dbt import run_dbt

STAGING = [
    f"stg_oltp__{entity}"
    for entity in (
        "transporters",
        "promotions",
        "orders",
        "order_items",
        "sales",
        "client_changes",
        "product_changes",
        "stock_changes",
    )
] + [
    "stg_ml__demand_forecasts",
    "stg_ml__forecast_backtests",
    "stg_ml__model_monitoring",
    "stg_ml__warehouse_forecasts",
    "stg_ml__client_recommendations",
    "stg_ml__recommendation_backtests",
    "stg_ml__recommendation_metrics",
    "stg_sources__supplier_prices",
]
INTERMEDIATE = ["int_clients_historized", "int_products_historized"]
MARTS = [
    "dim_date",
    "dim_client",
    "dim_product",
    "dim_transporter",
    "fct_order_item",
    "fct_sale",
    "fct_inventory_snapshot",
    "agg_sales_weekly",
    "agg_sales_monthly",
    "mart_stock_coverage",
    "mart_client_rfm",
    "mart_sales_lines",
    "mart_product_margin",
    "mart_client_cohorts",
    "mart_demand_forecast",
    "mart_forecast_backtest",
    "mart_replenishment",
    "mart_model_monitoring",
    "mart_client_recommendations",
    "mart_recommendation_backtest",
    "mart_recommendation_metrics",
    "mart_report_region_weekly",
    "mart_report_category_weekly",
    "mart_report_product_weekly",
    "mart_report_forecast_check",
    "mart_report_stock_risk",
]
FEATURES = [
    "feat_product_weekly",
    "feat_product_warehouse_weekly",
    "feat_promotion_calendar",
    "feat_client",
]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``dbt parse`` into a private target directory (parallel test runs must not share
    ``dbt_project/target``), with the environment restored afterwards."""
    tmp = tmp_path_factory.mktemp("dbt")
    settings = load_settings(data_dir=tmp / "data")
    with pytest.MonkeyPatch.context() as env:
        for name, value in settings.dbt_env().items():
            env.setenv(name, value)  # run_dbt exports these; undone when the block ends
        result = run_dbt(
            settings,
            [
                "parse",
                "--target-path",
                str(tmp / "target"),
                "--log-path",
                str(tmp / "logs"),
                "--no-partial-parse",
            ],
        )
    assert result.succeeded
    return json.loads(Path(tmp / "target" / "manifest.json").read_text())


def _models(manifest: dict) -> dict[str, dict]:
    return {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["package_name"] == "lakehouse"
    }


@pytest.mark.integration
def test_every_expected_model_parses(manifest: dict) -> None:
    models = _models(manifest)
    missing = [name for name in STAGING + INTERMEDIATE + MARTS + FEATURES if name not in models]
    assert missing == []


@pytest.mark.integration
def test_models_land_in_their_layer_schema(manifest: dict) -> None:
    models = _models(manifest)
    expected = {
        "stg_": "main_staging",
        "int_": "main_intermediate",
        "feat_": "main_features",
    }
    for name, node in models.items():
        schema = next((s for prefix, s in expected.items() if name.startswith(prefix)), None)
        assert node["schema"] == (schema or "main_marts"), name
    for name in MARTS + FEATURES:
        assert models[name]["config"]["materialized"] == "table", name
    for name in STAGING:
        assert models[name]["config"]["materialized"] == "view", name


@pytest.mark.integration
def test_every_model_states_its_grain_and_documents_its_columns(manifest: dict) -> None:
    for name, node in _models(manifest).items():
        assert "grain" in node["description"].lower(), name
        assert node["columns"], name
        undocumented = [c for c, col in node["columns"].items() if not col["description"]]
        assert undocumented == [], name


@pytest.mark.integration
def test_sources_read_the_lake_from_the_settings(manifest: dict) -> None:
    sources = [s for s in manifest["sources"].values() if s["package_name"] == "lakehouse"]
    tables = {(s["source_name"], s["name"]) for s in sources}
    for table in ("client", "product", "transporter", "promotion", "orders", "order_item"):
        assert ("silver", table) in tables
    assert ("sources", "supplier_price") in tables  # a source beside CDC
    for source in sources:
        path = source["meta"]["delta_table_path"]
        # the sources beside CDC are silver tables too
        layer = "silver" if source["source_name"] == "sources" else source["source_name"]
        assert path.endswith(f"/lake/{layer}/{source['name']}"), path
        assert "{{" not in path


@pytest.mark.integration
def test_every_staging_model_is_used(manifest: dict) -> None:
    """A staging model feeds a model, or a test of another model (a relationship): one
    that nothing reads is a copy of its source to keep up for nothing."""
    nodes = manifest["nodes"]
    unused = []
    for uid, children in manifest["child_map"].items():
        if not uid.startswith("model.lakehouse.stg_"):
            continue
        used = [
            child
            for child in children
            if child.startswith("model.")
            or (child.startswith("test.") and nodes[child].get("attached_node") != uid)
        ]
        if not used:
            unused.append(uid.rsplit(".", 1)[-1])
    assert unused == []
