"""The warehouse port on the ``local`` profile: DuckDB files for the build and published
areas. The build area here is written by the test (as dbt would write it), so every
value read back through the port is compared with what the test put there."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from lakehouse.exceptions import MissingTableError, PipelineError
from lakehouse.settings import Settings, load_settings
from lakehouse.warehouse import PUBLICATION, connect, publish

SALES = [  # (order_item_id, region, net_amount, ordered_at)
    (1, "north", Decimal("28.99"), datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
    (2, "south", Decimal("10.05"), datetime(2026, 3, 2, 17, 0, tzinfo=UTC)),
    (3, "north", Decimal("0.10"), datetime(2026, 3, 3, 8, 15, tzinfo=UTC)),
]


def _settings(tmp_path: Path) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data", profile="local", superset_region_roles=["north"]
    )


def _build(settings: Settings, *, health: int = 1, sales: list[tuple] = SALES) -> None:
    """The build area as dbt leaves it: schema ``main_marts`` of the warehouse file."""
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("create schema if not exists main_marts")
        con.execute(
            "create or replace table main_marts.mart_sales (order_item_id bigint, region "
            "varchar, net_amount decimal(18, 2), ordered_at timestamp with time zone)"
        )
        con.executemany("insert into main_marts.mart_sales values (?, ?, ?, ?)", sales)
        con.execute(
            "create or replace table main_marts.mart_pipeline_health as "
            f"select * from range({health}) t(run)"
        )


def test_the_build_area_reads_as_arrow_with_the_marts_types(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _build(settings)
    with connect(settings, "build") as build:
        assert build.marts() == ["mart_pipeline_health", "mart_sales"]
        assert build.columns("mart_sales") == [
            "order_item_id", "region", "net_amount", "ordered_at"
        ]  # fmt: skip
        sales = build.read_mart("mart_sales")
        assert sales.schema.field("net_amount").type == pa.decimal128(18, 2)
        assert pa.types.is_timestamp(sales.schema.field("ordered_at").type)
        got = sales.sort_by("order_item_id").to_pylist()
        assert [
            (r["order_item_id"], r["region"], r["net_amount"], r["ordered_at"]) for r in got
        ] == SALES
        north = build.query(
            f"select order_item_id from {build.qualified('mart_sales')} where region = ? "
            "order by 1",
            ["north"],
        )
        assert north.column(0).to_pylist() == [1, 3]
        assert build.read_mart("mart_sales", ["region"]).column_names == ["region"]
        with pytest.raises(PipelineError, match="no column shipped_at"):
            build.read_mart("mart_sales", ["region", "shipped_at"])


def test_a_missing_mart_or_area_names_what_to_run(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with connect(settings, "build") as build:  # nothing built yet: no file at all
        assert build.marts() == [] and not build.exists("mart_sales")
        with pytest.raises(MissingTableError, match="run `lakehouse build`"):
            build.read_mart("mart_sales")
    with connect(settings) as published:
        assert published.publication() is None
        with pytest.raises(MissingTableError, match=r"no published marts at .*lakehouse build"):
            published.query("select 1")
    _build(settings)
    with connect(settings, "build") as build:
        assert build.exists("mart_sales") and not build.exists("mart_returns")
        with pytest.raises(
            MissingTableError,
            match=r'no mart "main_marts"."mart_returns" in .*warehouse.duckdb, schema '
            r"main_marts: run `lakehouse build`",
        ):
            build.read_mart("mart_returns")


def test_publication_serves_the_build_whole_and_per_region(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _build(settings)
    done = publish(settings, "run1", required=["mart_pipeline_health"], data_run_id="run1")
    assert done.rows == {"mart_pipeline_health": 1, "mart_sales": 3}
    with connect(settings) as published:
        assert published.marts() == [PUBLICATION, "mart_pipeline_health", "mart_sales"]
        assert published.publication() == done
        ids = published.read_mart("mart_sales", ["order_item_id"]).column(0).to_pylist()
        assert sorted(ids) == [1, 2, 3]
    # the region's file holds its rows only, of the marts with a region column only
    with connect(settings, region="north") as north:
        assert north.marts() == ["mart_sales"]
        regions = north.read_mart("mart_sales", ["region", "order_item_id"]).to_pylist()
        assert sorted((r["region"], r["order_item_id"]) for r in regions) == [
            ("north", 1),
            ("north", 3),
        ]
    # the build file is free again: dbt can write it
    with duckdb.connect(str(settings.warehouse)) as con:
        con.execute("select 1")


def test_a_partial_publication_keeps_the_other_served_marts(tmp_path: Path) -> None:
    """A blocked run refreshes the quality marts only: the data marts served stay those of
    the last good run, even though the build area now holds other data."""
    settings = _settings(tmp_path)
    _build(settings)
    publish(settings, "good", data_run_id="good")
    _build(settings, health=2, sales=SALES[:1])  # a later build, not to be served
    done = publish(
        settings,
        "blocked",
        refresh=["mart_pipeline_health"],
        required=["mart_pipeline_health"],
        data_run_id="good",
    )
    assert done.rows == {"mart_pipeline_health": 2, "mart_sales": 3}
    with connect(settings) as published:
        publication = published.publication()
        assert publication is not None
        assert (publication.run_id, publication.data_run_id) == ("blocked", "good")
        assert published.read_mart("mart_sales").num_rows == 3
    with pytest.raises(PipelineError, match="the build area has no mart_data_quality"):
        publish(settings, "bad", required=["mart_data_quality"])


def test_a_reader_keeps_its_version_while_a_publication_replaces_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _build(settings)
    publish(settings, "one")
    with connect(settings) as reader:
        assert reader.read_mart("mart_sales").num_rows == 3  # the connection is open now
        _build(settings, sales=SALES[:2])
        thread = threading.Thread(target=publish, args=(settings, "two"))
        thread.start()
        thread.join(60)
        assert reader.read_mart("mart_sales").num_rows == 3  # still the old file, whole
    with connect(settings) as later:
        assert later.read_mart("mart_sales").num_rows == 2
