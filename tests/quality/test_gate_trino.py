"""The same gate on the stack profile: MinIO, Trino, dbt on Trino; the published marts are
the Delta tables of Trino's schema ``marts``."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pyarrow as pa
import pytest

from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.lander import ingest
from lakehouse.generate import generate
from lakehouse.lake.catalog import trino_connection
from lakehouse.quality.gate import PublicationBlocked, build_audit_publish
from lakehouse.quality.publish import QUALITY_MARTS
from lakehouse.settings import Settings
from lakehouse.warehouse import connect
from tests.quality.gate_support import SMALL, lake_settings, negative_quantity
from tests.support.stack import lake_ports, lake_services

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("trino")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = lake_settings(
        tmp_path_factory.mktemp("gate-trino") / "data",
        profile="stack",
        **lake_ports(),
    )
    with lake_services(settings):
        generate(settings, SMALL)
        ingest(settings, source=FileSource(settings.changes_path))  # not Kafka
        yield settings


def _query(settings: Settings, sql: str) -> list[tuple]:
    with trino_connection(settings) as connection:
        cursor = connection.cursor()
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]


def _served(settings: Settings) -> tuple[str, dict[str, int]]:
    rows = _query(settings, "select data_run_id, mart, row_count from marts._publication")
    return rows[0][0], {mart: n for _, mart, n in rows}


def _data(counts: dict[str, int]) -> dict[str, int]:
    return {mart: n for mart, n in counts.items() if mart not in QUALITY_MARTS}


class Reader(threading.Thread):
    """An analyst querying a mart in a loop through Trino."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings, self.stop = settings, threading.Event()
        self.reads, self.negative, self.errors = 0, 0, []  # type: ignore[var-annotated]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                rows = _query(
                    self.settings,
                    "select count(*), count_if(quantity < 0) from marts.fct_order_item",
                )
                self.reads += 1
                self.negative += int(rows[0][1])
            except Exception as exc:  # any error is a failure
                self.errors.append(repr(exc))
            self.stop.wait(0.2)


def test_the_gate_publishes_on_trino_and_blocks_a_fault(stack: Settings) -> None:
    good = build_audit_publish(stack)
    assert good.outcome == "published", [c.check for c in good.checks if not c.passed]
    assert {"dbt_test", "reconciliation", "expectation"} <= {c.kind for c in good.checks}
    run_id, served = _served(stack)
    assert run_id == good.run_id and len(served) >= 13
    for mart, rows in served.items():
        assert _query(stack, f'select count(*) from marts."{mart}"')[0][0] == rows, mart
    _the_port_reads_what_trino_serves(stack, good.run_id, served)

    reader = Reader(stack)
    reader.start()
    try:
        negative_quantity(stack)
        with pytest.raises(PublicationBlocked) as blocked:
            build_audit_publish(stack)
    finally:
        reader.stop.set()
        reader.join(60)
    assert any("quantity" in c.check for c in blocked.value.report.blocking)
    after_run, after = _served(stack)
    assert after_run == good.run_id  # the last good marts stay served
    assert _data(after) == _data(served)
    assert after["mart_pipeline_health"] == served["mart_pipeline_health"] + 1
    assert reader.errors == [] and reader.reads > 5 and reader.negative == 0


def _the_port_reads_what_trino_serves(stack: Settings, run_id: str, served: dict[str, int]) -> None:
    """The warehouse port on Trino: the publication, and a mart's values and types, as the
    DB-API client reads them."""
    with connect(stack) as published:
        publication = published.publication()
        assert publication is not None
        assert (publication.run_id, publication.rows) == (run_id, served)
        lines = published.read_mart("fct_order_item", ["order_item_id", "net_amount"])
    assert lines.schema.field("net_amount").type == pa.decimal128(14, 2)
    raw = dict(_query(stack, "select order_item_id, net_amount from marts.fct_order_item"))
    assert dict(zip(*lines.to_pydict().values(), strict=True)) == raw
