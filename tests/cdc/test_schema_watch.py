"""Which schema changes make capture have a table read again (``needs_snapshot``), and
how the watch keeps what it has seen. The snapshot requests themselves, against a real
PostgreSQL and Debezium: tests/cdc/test_added_default.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakehouse.cdc.schema_watch import Column, SchemaWatch, needs_snapshot, widened
from lakehouse.settings import Settings
from tests.support.debezium import write_item_contract

ITEM = {
    "item_id": Column("bigint", number=1),
    "shop": Column("text", number=2),
    "qty": Column("integer", number=4),  # 3 was dropped once
    "price": Column("numeric(10,2)", number=5),
}
SAVED = {name: [column.type, column.number] for name, column in ITEM.items()}


@pytest.mark.parametrize(
    ("old", "new", "kept"),
    [
        ("integer", "bigint", True),
        ("smallint", "integer", True),
        ("bigint", "integer", False),
        ("character varying(20)", "character varying(40)", True),
        ("character varying(20)", "text", True),
        ("character varying(20)", "character varying", True),
        ("character varying(40)", "character varying(20)", False),
        ("character varying", "character varying(20)", False),
        ("numeric(10,2)", "numeric(14,2)", True),
        ("numeric(10,2)", "numeric", True),
        ("numeric(10,2)", "numeric(10,1)", False),
        ("numeric(10,2)", "numeric(12,3)", False),
        ("numeric", "numeric(10,2)", False),
        ("real", "double precision", False),
        ("text", "integer", False),
    ],
)
def test_a_type_change_keeps_values_only_when_it_widens(old: str, new: str, kept: bool) -> None:
    assert widened(old, new) is kept


def test_what_calls_for_a_re_read() -> None:
    def now(**changes: Column | None) -> dict[str, Column]:
        columns = {**ITEM, **changes}
        return {n: c for n, c in columns.items() if c is not None}

    assert needs_snapshot(ITEM, ITEM) is None
    reason = needs_snapshot(ITEM, now(tier=Column("integer", True, 6)))
    assert reason == "column tier added with a default"
    assert needs_snapshot(ITEM, now(note=Column("text", False, 6))) is None  # null everywhere
    assert needs_snapshot(ITEM, now(qty=None)) is None  # dropped: silver keeps its values
    # dropped, and another added without a default: nothing either (a new number)
    assert needs_snapshot(ITEM, now(qty=None, note=Column("text", False, 6))) is None
    renamed = needs_snapshot(ITEM, now(qty=None, quantity=Column("integer", False, 4)))
    assert renamed == "column renamed: qty to quantity"
    again = needs_snapshot(ITEM, now(qty=Column("integer", False, 6)))
    assert again == "column qty dropped and added again"
    assert needs_snapshot(ITEM, now(qty=Column("bigint", False, 4))) is None  # widened
    converted = needs_snapshot(ITEM, now(price=Column("numeric(10,1)", False, 5)))
    assert converted == "type changed: price numeric(10,2) -> numeric(10,1)"
    # known from a contract: names only, no type or number to compare
    names = {name: Column("") for name in ITEM}
    assert needs_snapshot(names, ITEM) is None
    assert needs_snapshot(names, now(price=Column("integer", False, 5))) is None
    maybe = needs_snapshot(names, now(qty=None, quantity=Column("integer", False, 4)))
    assert maybe == "column qty gone and quantity new (a rename?)"


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    contracts = write_item_contract(tmp_path / "contracts")
    return Settings(data_dir=tmp_path, contracts_dir=contracts, **overrides)  # type: ignore[arg-type]


def test_a_fresh_capture_starts_from_the_catalog_and_keeps_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    state = tmp_path / "capture" / "columns.json"
    catalog = {("public", "item"): {**ITEM, "tier": Column("integer", True, 6)}}
    watch = SchemaWatch(settings, state, fresh=True)
    assert watch.check(catalog) == []  # the initial snapshot reads the column anyway
    saved = json.loads(state.read_text())
    assert saved == {"oltp.public.item": {**SAVED, "tier": ["integer", 6]}}
    assert SchemaWatch(settings, state, fresh=False).check(catalog) == []  # kept


def test_without_a_state_the_contract_is_the_starting_point(tmp_path: Path) -> None:
    # the item contract has columns the catalog lacks (name, sold_on...) and the catalog
    # one it lacks ("tier"): from names alone, maybe a rename, so a re-read is due; with
    # no signal table it cannot be requested, so it is not marked seen and the next check
    # asks again; once the columns match, the catalog's are kept
    settings = _settings(tmp_path, capture_signal_table="")
    state = tmp_path / "columns.json"
    catalog = {
        ("public", "item"): {**ITEM, "tier": Column("integer", True, 6)},
        ("public", "no_contract"): {"id": Column("integer", False, 1)},
    }
    watch = SchemaWatch(settings, state, fresh=False)
    assert watch.check(catalog) == []
    assert not state.exists()
    assert watch.check(catalog) == [] and watch.requested == []
    del catalog[("public", "item")]["tier"]
    watch.check(catalog)
    assert json.loads(state.read_text()) == {"oltp.public.item": SAVED}


def test_the_signal_table_and_tables_not_captured_are_not_watched(tmp_path: Path) -> None:
    settings = _settings(tmp_path, capture_tables=[r"public\.other"])
    state = tmp_path / "columns.json"
    catalog = {
        ("public", "lakehouse_signal"): {"id": Column("character varying(64)", False, 1)},
        ("public", "item"): ITEM,
    }
    SchemaWatch(settings, state, fresh=True).check(catalog)
    assert not state.exists()
