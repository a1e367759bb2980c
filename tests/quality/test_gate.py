"""Write-audit-publish on the local profile: each injected fault blocks publication,
names the failing check, and leaves the last good marts served and readable; a warn-level
failure publishes and reports."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from lakehouse.generate import supplier_prices
from lakehouse.quality.gate import GateReport, PublicationBlocked, build_audit_publish
from lakehouse.settings import Settings
from tests.quality.gate_support import (
    FAULTS,
    copy_lake,
    data_marts,
    negative_quantities,
    published,
    small_lake,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gate")]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, GateReport]:
    """A small lake built, audited and published once, cleanly."""
    settings = small_lake(tmp_path_factory.mktemp("gate") / "good")
    report = build_audit_publish(settings)
    return settings, report


def test_a_clean_run_publishes_every_mart(good: tuple[Settings, GateReport]) -> None:
    settings, report = good
    assert report.outcome == "published", [c.check for c in report.checks if not c.passed]
    kinds = {c.kind for c in report.checks}
    assert {"dbt_test", "dbt_model", "reconciliation", "expectation"} <= kinds
    view = published(settings)
    assert view["run_id"] == view["data_run_id"] == report.run_id
    assert view["listed"] == view["counted"]
    assert len(data_marts(view)) >= 11 and all(data_marts(view).values())
    assert view["counted"]["mart_pipeline_health"] == 1
    assert view["counted"]["mart_data_quality"] == len(report.checks)


def test_the_margin_mart_costs_each_product_at_its_cheapest_suppliers_price_list(
    good: tuple[Settings, GateReport],
) -> None:
    """The demo's file source (the suppliers' CSV price lists) reaches a published mart:
    compared with the files themselves and the order lines, not with the lake."""
    settings, _ = good
    cheapest: dict[int, Decimal] = {}
    for path in supplier_prices.drop_folder(settings.root).glob("*.csv"):
        with path.open() as handle:
            for row in csv.DictReader(handle):
                pid, cost = int(row["product_id"]), Decimal(row["unit_cost"])
                cheapest[pid] = min(cost, cheapest.get(pid, cost))
    with duckdb.connect(str(settings.published_warehouse), read_only=True) as con:
        rows = con.execute(
            "select product_id, has_cost, unit_cost, units_sold, revenue, gross_margin "
            "from marts.mart_product_margin"
        ).fetchall()
        sold = dict(
            con.execute(
                "select product_id, sum(quantity) from marts.fct_order_item group by 1"
            ).fetchall()
        )
    assert rows and len(cheapest) >= len(rows)
    for pid, has_cost, unit_cost, units, revenue, margin in rows:
        assert has_cost and unit_cost == cheapest[pid], pid
        assert units == (sold.get(pid) or 0)
        assert margin == revenue - units * unit_cost


def _blocked(
    settings: Settings, good_report: GateReport, must_name: Callable[[str], bool]
) -> PublicationBlocked:
    before = published(settings)
    with pytest.raises(PublicationBlocked) as caught:
        build_audit_publish(settings)
    blocked = caught.value
    named = [c.check for c in blocked.report.blocking]
    assert any(must_name(name) for name in named), named
    assert any(name in str(blocked) for name in named if must_name(name)), str(blocked)
    after = published(settings)
    # the last good data marts stay served, whole and readable
    assert after["data_run_id"] == good_report.run_id
    assert data_marts(after) == data_marts(before)
    assert after["listed"] == after["counted"]
    # the quality marts are published, and say the run was blocked
    assert after["run_id"] == blocked.report.run_id
    assert after["counted"]["mart_pipeline_health"] == before["counted"]["mart_pipeline_health"] + 1
    return blocked


CHECK_NAMED = {
    "negative quantity": lambda name: "quantity" in name,
    "orphan foreign key": lambda name: (
        "client_id" in name and ("relationships" in name or "orphan" in name)
    ),
    "duplicate primary key": lambda name: "unique" in name and "order" in name,
    "null in a not-null column": lambda name: "ordered_at" in name or "dbt:model:" in name,
    "row-count mismatch with the source": lambda name: name == "reconcile:transporter:row_count",
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_blocks_publication_and_keeps_the_last_good_marts(
    fault: str, good: tuple[Settings, GateReport], tmp_path: Path
) -> None:
    settings = copy_lake(good[0], tmp_path / "lake")
    FAULTS[fault](settings)
    _blocked(settings, good[1], CHECK_NAMED[fault])
    if fault == "negative quantity":
        assert negative_quantities(settings) == 0  # the bad row never reached readers


def test_a_source_staler_than_its_sla_blocks_publication(
    good: tuple[Settings, GateReport], tmp_path: Path
) -> None:
    # the generated sources are years old: an error SLA of an hour fails every one
    settings = copy_lake(good[0], tmp_path / "lake", freshness_error_after_minutes=60)
    blocked = _blocked(settings, good[1], lambda name: name.startswith("freshness:silver."))
    stale = [c for c in blocked.report.blocking if c.kind == "freshness"]
    assert stale and all("days" in c.detail for c in stale)


def test_a_warn_level_failure_publishes_and_reports(
    good: tuple[Settings, GateReport], tmp_path: Path, webhook: tuple[str, list[dict]]
) -> None:
    url, received = webhook
    settings = copy_lake(
        good[0], tmp_path / "lake", freshness_warn_after_minutes=60, alert_webhook_url=url
    )
    report = build_audit_publish(settings)
    assert report.outcome == "published_with_warnings"
    assert report.warnings and all(c.kind == "freshness" for c in report.warnings)
    view = published(settings)
    assert view["data_run_id"] == report.run_id != good[1].run_id
    # reported: the webhook got the run's warnings
    alerts = [a for a in received if a.get("event") == "checks_warned"]
    assert len(alerts) == 1 and alerts[0]["run_id"] == report.run_id
    assert {c["check"] for c in alerts[0]["failed"]} == {c.check for c in report.warnings}


def test_the_command_names_the_failing_check_in_one_error_line(
    good: tuple[Settings, GateReport], tmp_path: Path
) -> None:
    settings = copy_lake(good[0], tmp_path / "lake")
    FAULTS["row-count mismatch with the source"](settings)
    (tmp_path / "lakehouse.yaml").write_text(
        "freshness_warn_after_minutes: null\nfreshness_error_after_minutes: null\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli.main", "build", "--data-dir", str(settings.root)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")},
        check=False,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr + run.stdout
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "reconcile:transporter:row_count" in errors[0], run.stderr
    assert "publication blocked" in errors[0]


READER = """
import json, os, sys, time
import duckdb

path, stop, out = sys.argv[1:4]
seen, errors, reads = {}, [], 0
while not os.path.exists(stop):
    try:
        with duckdb.connect(path, read_only=True) as con:
            listed = con.execute(
                "select run_id, mart, row_count from marts._publication"
            ).fetchall()
            for _, mart, rows in listed:
                counted = con.execute(f'select count(*) from marts."{mart}"').fetchone()[0]
                if counted != rows:
                    errors.append(f"{mart}: {counted} rows, its publication says {rows}")
            if listed[0][0] not in seen:
                with open(out + ".ids", "a") as ids:  # the test waits for the last one
                    ids.write(listed[0][0] + "\\n")
            seen[listed[0][0]] = seen.get(listed[0][0], 0) + 1
            reads += 1
    except Exception as exc:  # any error at all is a failure of the test
        errors.append(repr(exc))
    time.sleep(0.02)
with open(out, "w") as f:
    json.dump({"seen": seen, "errors": errors, "reads": reads}, f)
"""


def _wait_until_read(out: Path, run_id: str, timeout: float = 30.0) -> None:
    """Give the reader the time to open the last publication before it is told to stop."""
    ids = Path(f"{out}.ids")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ids.exists() and run_id in ids.read_text().split():
            return
        time.sleep(0.1)


def test_a_reader_sees_only_whole_publications_during_a_build_and_a_failed_one(
    good: tuple[Settings, GateReport], tmp_path: Path
) -> None:
    import json

    settings = copy_lake(good[0], tmp_path / "lake")
    stop, out = tmp_path / "stop", tmp_path / "seen.json"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(settings.published_warehouse), str(stop), str(out)]
    )
    try:
        passed = build_audit_publish(settings)  # a full build, published
        FAULTS["negative quantity"](settings)
        with pytest.raises(PublicationBlocked) as blocked:  # a failed one
            build_audit_publish(settings)
        _wait_until_read(out, blocked.value.report.run_id)
    finally:
        stop.touch()
        reader.wait(60)
    result = json.loads(out.read_text())
    assert result["errors"] == []
    assert result["reads"] > 50
    # it read the old publication, the new one, and the blocked run's (quality marts only)
    assert {good[1].run_id, passed.run_id, blocked.value.report.run_id} <= set(result["seen"])
