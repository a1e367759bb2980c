"""Product search follows the catalogue through the live pipeline.

The shop runs in the project's own PostgreSQL and Debezium captures it, as `lakehouse
capture` does. A product's description is rewritten in the source, another product is
discontinued (``is_active`` false: the shop's own way) and a third, never sold, is deleted
outright. One pipeline run later (the change events landed, `lakehouse build`: built,
audited, published, and the index refreshed), the search finds the first by the words of
its new text, which it did not know before, and the other two are gone from the results;
the deleted one is gone from the index too. Before that run, a build that the gate blocks
(silver no longer equals the source) must leave the index as it was.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakehouse.cdc.lander import ingest
from lakehouse.oltp.client import connect
from lakehouse.oltp.simulate import SimulateParams, simulate
from lakehouse.search.index import indexed_payloads, open_store
from lakehouse.search.retrieve import Filters, Mode, searcher
from lakehouse.settings import Settings
from tests.cdc.test_live_capture import Capture
from tests.support.oltp import oltp_cluster

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))

NEW_DESCRIPTION = (
    "A brass periscope for submarine captains, with a tide chart and a barnacle scraper."
)
NEW_WORDS = "periscope with a barnacle scraper"
UNSOLD_NAME = "Meridian heritage sextant"
UNSOLD_DESCRIPTION = "A hand-held sextant for celestial navigation at sea."


@dataclass
class Shop:
    settings: Settings
    capture: Capture
    edited: int  # its description is rewritten
    discontinued: int  # is_active set false
    discontinued_name: str
    deleted: int  # never sold, deleted from the source


def _build(settings: Settings) -> subprocess.CompletedProcess[str]:
    """`lakehouse build` as a user runs it: write-audit-publish, then the index refresh."""
    return subprocess.run(
        [LAKEHOUSE, "build", "--data-dir", str(settings.root)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "LAKEHOUSE_OLTP_PORT": str(settings.oltp_port), "COLUMNS": "200"},
    )


def _search_ids(
    settings: Settings,
    query: str,
    top: int = 10,
    mode: Mode = "hybrid",
    filters: Filters | None = None,
) -> list[int]:
    with searcher(settings) as index:
        return [h.product_id for h in index.search(query, top, filters, mode)]


def _payloads(settings: Settings) -> dict[int, dict[str, object]]:
    with open_store(settings) as client:
        return indexed_payloads(client)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """A shop with some history, captured and built once: the index holds its catalogue.
    The capture keeps running, as `lakehouse capture` does beside the pipeline."""
    with oltp_cluster(tmp_path_factory.mktemp("search_cdc")) as settings:
        simulate(
            settings,
            SimulateParams(tps=0, duration=None, transactions=200, clients=60, products=20),
        )
        with connect(settings) as conn:  # a product launched that nobody has bought yet
            row = conn.execute(
                "insert into product (product_id, sku, name, description, category, brand, "
                "price, is_active, created_at, updated_at) "
                "select max(product_id) + 1, 'NAV-' || (max(product_id) + 1), %s, %s, "
                "'sports', 'Meridian', 89.49, true, now(), now() from product "
                "returning product_id",
                [UNSOLD_NAME, UNSOLD_DESCRIPTION],
            ).fetchone()
            assert row is not None
            deleted = int(row[0])
            products = conn.execute(
                "select product_id, name from product p where is_active and product_id <> %s "
                "and exists (select 1 from order_item i where i.product_id = p.product_id) "
                "order by product_id",
                [deleted],
            ).fetchall()
        capture = Capture(settings)
        try:
            capture.wait_quiet()  # the initial snapshot
            ingest(settings)
            built = _build(settings)
            assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
            assert re.search(r"search index: \d+ products \(\d+ added", built.stdout)
            yield Shop(
                settings=settings,
                capture=capture,
                edited=int(products[0][0]),
                discontinued=int(products[1][0]),
                discontinued_name=str(products[1][1]),
                deleted=deleted,
            )
        finally:
            capture.close()


def test_one_pipeline_run_brings_source_edits_and_deletes_to_the_search(shop: Shop) -> None:
    settings = shop.settings
    # before: nothing in the catalogue says those words; the other two are found by name
    assert _search_ids(settings, NEW_WORDS, mode="bm25") == []
    assert _search_ids(settings, NEW_WORDS, top=1) != [shop.edited]
    assert shop.discontinued in _search_ids(settings, shop.discontinued_name, top=3)
    assert _search_ids(settings, "sextant for navigation", top=1) == [shop.deleted]
    before = _payloads(settings)
    assert {shop.edited, shop.discontinued, shop.deleted} <= set(before)

    seen = len(shop.capture.batches)
    with connect(settings) as conn:
        conn.execute(
            "update product set description = %s, updated_at = now() where product_id = %s",
            [NEW_DESCRIPTION, shop.edited],
        )
        conn.execute(
            "update product set is_active = false, updated_at = now() where product_id = %s",
            [shop.discontinued],
        )
        conn.execute("delete from stock where product_id = %s", [shop.deleted])
        conn.execute("delete from product where product_id = %s", [shop.deleted])
    shop.capture.wait_quiet(seen)

    # the positive control: built before the changes landed, silver no longer equals the
    # source, the gate blocks, and the index must not move
    blocked = _build(settings)
    assert blocked.returncode != 0
    assert "publication blocked" in blocked.stdout + blocked.stderr
    assert "search index:" not in blocked.stdout
    assert _payloads(settings) == before

    # one pipeline run: land what was captured, build-audit-publish, refresh the index
    ingest(settings)
    run = _build(settings)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = re.search(
        r"search index: (\d+) products \((\d+) added, (\d+) updated, (\d+) removed, (\d+) "
        r"unchanged; (\d+) embedded\) in ([\d.]+) s",
        run.stdout,
    )
    assert figures, run.stdout[-2000:]
    indexed, added, updated, removed, unchanged, embedded = map(int, figures.groups()[:6])
    # only the edited text is embedded again; the discontinued product's payload is rewritten
    assert (added, updated, removed, embedded) == (0, 2, 1, 1)
    assert indexed == unchanged + 2 == len(before) - 1
    print(f"refresh after the pipeline run: {figures[7]} s")  # reported with -s

    # after: found by the words of its new text, first; the others are gone
    assert _search_ids(settings, NEW_WORDS, mode="bm25") == [shop.edited]
    assert _search_ids(settings, NEW_WORDS, top=1) == [shop.edited]
    assert shop.discontinued not in _search_ids(settings, shop.discontinued_name, top=50)
    assert shop.discontinued in _search_ids(
        settings, shop.discontinued_name, top=3, filters=Filters(include_inactive=True)
    )
    assert shop.deleted not in _search_ids(settings, "sextant for navigation", top=50)
    after = _payloads(settings)
    assert shop.deleted not in after
    assert after[shop.edited]["product_description"] == NEW_DESCRIPTION
    assert after[shop.discontinued]["is_active"] is False

    # and what a user sees: `lakehouse search --json`
    found = subprocess.run(
        [LAKEHOUSE, "search", NEW_WORDS, "--top", "3", "--json", "--data-dir", str(settings.root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(found.stdout)[0]["product_id"] == shop.edited
