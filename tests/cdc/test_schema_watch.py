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
    "item_id": Column("bigint", False),
    "shop": Column("text", False),
    "qty": Column("integer", False),
    "price": Column("numeric(10,2)", False),
}
KNOWN = {name: column.type for name, column in ITEM.items()}


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

    assert needs_snapshot(KNOWN, ITEM) is None
    reason = needs_snapshot(KNOWN, now(tier=Column("integer", True)))
    assert reason == "column tier added with a default"
    assert needs_snapshot(KNOWN, now(note=Column("text", False))) is None  # null everywhere
    assert needs_snapshot(KNOWN, now(qty=None)) is None  # dropped: silver keeps its values
    renamed = needs_snapshot(KNOWN, now(qty=None, quantity=Column("integer", False)))
    assert renamed == "column qty gone and quantity new (a rename?)"
    assert needs_snapshot(KNOWN, now(qty=Column("bigint", False))) is None  # widened
    converted = needs_snapshot(KNOWN, now(price=Column("numeric(10,1)", False)))
    assert converted == "type changed: price numeric(10,2) -> numeric(10,1)"
    # known from a contract: names only, no type to compare
    assert needs_snapshot(dict.fromkeys(KNOWN, ""), now(price=Column("integer", False))) is None


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    contracts = write_item_contract(tmp_path / "contracts")
    return Settings(data_dir=tmp_path, contracts_dir=contracts, **overrides)  # type: ignore[arg-type]


def test_a_fresh_capture_starts_from_the_catalog_and_keeps_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    state = tmp_path / "capture" / "columns.json"
    catalog = {("public", "item"): {**ITEM, "tier": Column("integer", True)}}
    watch = SchemaWatch(settings, state, fresh=True)
    assert watch.check(catalog) == []  # the initial snapshot reads the column anyway
    saved = json.loads(state.read_text())
    assert saved == {"oltp.public.item": {**KNOWN, "tier": "integer"}}
    assert SchemaWatch(settings, state, fresh=False).check(catalog) == []  # kept


def test_without_a_state_the_contract_is_the_starting_point(tmp_path: Path) -> None:
    # the item contract has columns the catalog lacks (name, sold_on...): dropped, fine;
    # "tier" is new with a default: a re-read is due; with no signal table it cannot be
    # requested, so it is not marked seen and the next check asks again
    settings = _settings(tmp_path, capture_signal_table="")
    state = tmp_path / "columns.json"
    catalog = {
        ("public", "item"): {**ITEM, "tier": Column("integer", True)},
        ("public", "no_contract"): {"id": Column("integer", False)},
    }
    watch = SchemaWatch(settings, state, fresh=False)
    assert watch.check(catalog) == []
    assert not state.exists()
    assert watch.check(catalog) == [] and watch.requested == []
    del catalog[("public", "item")]["tier"]
    watch.check(catalog)
    assert json.loads(state.read_text()) == {"oltp.public.item": KNOWN}


def test_the_signal_table_and_tables_not_captured_are_not_watched(tmp_path: Path) -> None:
    settings = _settings(tmp_path, capture_tables=[r"public\.other"])
    state = tmp_path / "columns.json"
    catalog = {
        ("public", "lakehouse_signal"): {"id": Column("character varying(64)", False)},
        ("public", "item"): ITEM,
    }
    SchemaWatch(settings, state, fresh=True).check(catalog)
    assert not state.exists()
