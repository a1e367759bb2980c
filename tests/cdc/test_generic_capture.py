"""Generic capture with real PostgreSQL and Debezium: a table that is not in the demo
schema, created while the capture streams, reaches bronze and silver with its exact
values, under a contract the capture drafted from the catalog; a table without a primary
key gets no contract and stops nothing else."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.contracts import approve, load_source_contracts
from lakehouse.oltp.client import connect
from lakehouse.settings import Settings
from tests.cdc.test_live_capture import Capture
from tests.support.oltp import oltp_cluster
from tests.support.truth import expected_token, pii_key

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]

ENTRY = """
create table ledger.entry (
    id uuid primary key,
    doc jsonb,
    amount numeric(20, 6),
    ratio numeric,  -- unconstrained: its exact digits, as a string
    happened_at timestamptz,
    local_at timestamp,
    saved_at timestamp(3),  -- Debezium sends milliseconds for it
    day date,
    flag boolean,
    big bigint,
    email text,
    span interval,
    at_time time,  -- no contract type: carried as Debezium sends it (microseconds)
    tags text[]  -- no contract type, and an array: dropped, the rest of the row lands
)
"""
COLUMNS = (
    "id, doc, amount, ratio, happened_at, local_at, saved_at, day, flag, big, email, span, "
    "at_time, tags"
)
IST, PST = timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))
EMAILS = ["ada@example.com", "zoë.ünicode@exämple.org", "grace@example.net"]
DOC = {
    "nested": {"deeper": {"list": [1, 2.5, {"text": "ünïcødé ✓ 日本語"}], "empty": {}}},
    "big": 12345678901234567890,
    "small": 1.5e-7,
    "negative": -0.25,
    "flag": True,
    "nothing": None,
}


def _rows() -> list[tuple[Any, ...]]:
    ids = [uuid.uuid4() for _ in range(6)]
    return [
        (
            ids[0],
            json.dumps(DOC),
            Decimal("-12345678901234.123456"),
            Decimal("3.14159265358979323846264338327950288419716939937510582097494459"),
            datetime(2024, 3, 1, 10, 15, 30, 123456, tzinfo=IST),
            datetime(1999, 12, 31, 23, 59, 59, 999999),
            datetime(1999, 12, 31, 23, 59, 59, 999000),
            date(1900, 1, 1),
            True,
            9223372036854775807,
            EMAILS[0],
            timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=500000),
            time(23, 59, 59, 999999),
            ["a", "b"],
        ),
        (
            ids[1],
            json.dumps([{"a": 1}, "two", 3]),
            Decimal("99999999999999.999999"),
            Decimal("-1E-30"),
            datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=PST),
            datetime(2038, 1, 19, 3, 14, 8, 1),
            datetime(1969, 12, 31, 23, 59, 59, 1000),
            date(9999, 12, 31),
            False,
            -9223372036854775808,
            EMAILS[1],
            timedelta(microseconds=-1),
            time(0, 0, 0, 1),
            [],
        ),
        (ids[2], None, None, None, None, None, None, None, None, None, None, None, None, None),
        (
            ids[3],
            json.dumps("just a string"),
            Decimal("0.000001"),
            Decimal("100000000000000000000000000000000000000000"),
            datetime(2000, 2, 29, 0, 0, 0, 1, tzinfo=UTC),
            datetime(1970, 1, 1),
            datetime(2024, 2, 29, 12, 0, 0, 123000),
            date(1970, 1, 1),
            True,
            0,
            EMAILS[2],
            timedelta(0),
            time(12),
            ["x"],
        ),
        (
            ids[4],
            json.dumps({"k": "v"}),
            Decimal("-0.000001"),
            None,
            datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=IST),
            None,
            None,
            date(2024, 2, 29),
            None,
            42,
            None,
            None,
            None,
            None,
        ),
        (
            ids[5],
            json.dumps({}),
            Decimal("12345678901234.5"),
            Decimal("0"),
            datetime(2024, 6, 1, 12, 0, tzinfo=PST),
            datetime(2024, 6, 1, 12, 0),
            datetime(2024, 6, 1, 12, 0),
            date(2024, 6, 1),
            False,
            -1,
            EMAILS[0],
            timedelta(hours=-5),
            None,
            ["y"],
        ),
    ]


@pytest.fixture(scope="module")
def streaming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Capture]]:
    with oltp_cluster(tmp_path_factory.mktemp("generic")) as settings:
        with connect(settings) as conn:  # there before capture starts: drafted at start
            conn.execute("create table visit_log (seen_at timestamptz, page text)")
            conn.execute("insert into visit_log values (now(), '/'), (now(), '/about')")
            conn.execute("create table note (note_id bigint primary key, body text)")
            conn.execute("insert into note values (1, 'before capture')")
            conn.commit()
        running = Capture(settings)
        running.wait_quiet()  # the snapshot
        yield settings, running
        running.close()


def _source(settings: Settings) -> list[dict[str, Any]]:
    with connect(settings) as conn:
        cursor = conn.execute(
            f"select {COLUMNS}, ratio::text as ratio_text from ledger.entry order by id::text"
        )
        names = [c.name for c in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _silver(settings: Settings, table: str) -> list[dict[str, Any]]:
    rows = DeltaTable(settings.table_uri("silver", table)).to_pyarrow_table().to_pylist()
    return sorted(rows, key=lambda r: str(next(iter(r.values()))))


def _interval(text: str | None) -> timedelta | None:
    """An ISO 8601 duration as Debezium writes an interval (no years or months here)."""
    if text is None:
        return None
    m = re.fullmatch(r"P0Y0M(-?\d+)DT(-?\d+)H(-?\d+)M(-?[\d.]+)S", text)
    assert m, text
    days, hours, minutes = (int(g) for g in m.groups()[:3])
    micros = Decimal(m.group(4)) * 1_000_000
    assert micros == int(micros), text
    return timedelta(days=days, hours=hours, minutes=minutes, microseconds=int(micros))


def _micros(value: time) -> int:
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def _assert_silver_equals_source(settings: Settings) -> None:
    key = pii_key(settings)
    source = _source(settings)
    silver = _silver(settings, "ledger__entry")
    assert [r["id"] for r in silver] == [str(r["id"]) for r in source]
    for want, got in zip(source, silver, strict=True):
        where = want["id"]
        assert (None if got["doc"] is None else json.loads(got["doc"])) == want["doc"], where
        assert got["amount"] == want["amount"], where
        assert str(got["amount"]) == str(want["amount"]), where  # same digits, same scale
        assert got["ratio"] == want["ratio_text"], where  # the digits PostgreSQL has
        assert got["happened_at"] == want["happened_at"], where  # the same instant
        assert got["local_at"] == want["local_at"], where
        assert got["saved_at"] == want["saved_at"], where
        assert got["day"] == want["day"], where
        assert got["flag"] == want["flag"] and got["big"] == want["big"], where
        token = None if want["email"] is None else expected_token(key, want["email"])
        assert got["email"] == token, where
        assert _interval(got["span"]) == want["span"], where
        # a column of a type with no contract type is carried as Debezium sends it
        assert got["at_time"] == (None if want["at_time"] is None else _micros(want["at_time"]))
        assert "tags" not in got  # an array: dropped, and the row landed all the same


def test_a_table_created_while_streaming_lands_with_its_exact_values(
    streaming: tuple[Settings, Capture],
) -> None:
    settings, running = streaming
    rows = _rows()
    ids = [r[0] for r in rows]
    seen = len(running.batches)
    with connect(settings) as conn:
        conn.execute("create schema ledger")
        conn.execute(ENTRY)
        conn.commit()
        placeholders = ", ".join(["%s"] * len(rows[0]))
        conn.cursor().executemany(f"insert into ledger.entry values ({placeholders})", rows)
        conn.commit()
    running.wait_quiet(seen)
    # the draft is unreviewed: every text column would be masked; its PII classes are right
    approve(settings, "ledger.entry")
    report = ingest(settings)
    assert report.rejected == 0 and "oltp.ledger.entry" not in report.unknown_topics

    contract = load_source_contracts(settings)["ledger__entry"]
    assert contract.path is not None
    assert contract.path.parent == settings.captured_contracts_dir
    assert (contract.schema, contract.table, contract.primary_key) == ("ledger", "entry", ("id",))
    types = {c.name: (c.type, c.nullable, c.pii) for c in contract.columns}
    assert types == {
        "id": ("uuid", False, None),
        "doc": ("json", True, None),
        "amount": ("decimal(20,6)", True, None),
        "ratio": ("string", True, None),
        "happened_at": ("timestamptz", True, None),
        "local_at": ("timestamp", True, None),
        "saved_at": ("timestamp_ms", True, None),
        "day": ("date", True, None),
        "flag": ("boolean", True, None),
        "big": ("bigint", True, None),
        "email": ("string", True, "email"),
        "span": ("string", True, None),
    }
    _assert_silver_equals_source(settings)

    # the lander has the contract now: updates, deletes and a key change, then again
    seen = len(running.batches)
    new_id = uuid.uuid4()
    with connect(settings) as conn:
        conn.execute(
            "update ledger.entry set amount = %s, doc = %s where id = %s",
            [Decimal("-0.5"), json.dumps({"updated": ["é", 1e300]}), ids[0]],
        )
        conn.execute("update ledger.entry set email = %s where id = %s", [EMAILS[2], ids[2]])
        conn.execute(
            "update ledger.entry set happened_at = %s where id = %s",
            [datetime(2025, 1, 1, 0, 0, 0, 654321, tzinfo=PST), ids[1]],
        )
        conn.commit()
        conn.execute("delete from ledger.entry where id = %s", [ids[3]])
        conn.execute("update ledger.entry set id = %s where id = %s", [new_id, ids[4]])
        conn.execute("update ledger.entry set flag = true where id = %s", [ids[5]])
        conn.commit()
    running.wait_quiet(seen)
    report = ingest(settings)
    assert report.rejected == 0
    _assert_silver_equals_source(settings)

    # bronze: every change once (a key change is a delete of the old key and a create)
    expected = Counter({(str(i), "c"): 1 for i in ids})
    expected.update(
        [
            (str(ids[0]), "u"),
            (str(ids[2]), "u"),
            (str(ids[1]), "u"),
            (str(ids[3]), "d"),
            (str(ids[4]), "d"),
            (str(new_id), "c"),
            (str(ids[5]), "u"),
        ]
    )
    bronze = DeltaTable(settings.table_uri("bronze", "ledger__entry")).to_pyarrow_table(
        columns=["id", "_op", "_is_snapshot"]
    )
    assert not any(bronze.column("_is_snapshot").to_pylist())
    changes = zip(bronze.column("id").to_pylist(), bronze.column("_op").to_pylist(), strict=True)
    assert Counter(changes) == expected

    # the e-mail addresses are masked everywhere in the lake
    for path in Path(settings.lake_root).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for email in EMAILS:
                assert email.encode() not in data, f"{email} in {path}"


def test_a_table_without_primary_key_gets_no_contract_and_stops_nothing(
    streaming: tuple[Settings, Capture], caplog: pytest.LogCaptureFixture
) -> None:
    settings, running = streaming
    caplog.set_level(logging.WARNING, logger="lakehouse.cdc.debezium")
    for round_ in range(2):
        seen = len(running.batches)
        with connect(settings) as conn:
            if round_ == 0:
                conn.execute("create table click_log (clicked_at timestamptz, target text)")
            conn.execute("insert into click_log values (now(), %s)", [f"button {round_}"])
            conn.execute("insert into visit_log values (now(), %s)", [f"/page/{round_}"])
            conn.execute("insert into note values (%s, %s)", [10 + round_, f"round {round_}"])
            conn.execute("update note set body = %s where note_id = 1", [f"seen {round_}"])
            conn.commit()
        running.wait_quiet(seen)
        report = ingest(settings)
        assert {"oltp.public.click_log", "oltp.public.visit_log"} <= set(report.unknown_topics)
        assert "oltp.public.note" not in report.unknown_topics

    captured = settings.captured_contracts_dir
    assert (captured / "note.yml").exists()  # drafted when capture started
    assert not list(captured.glob("*log*"))
    warned = [r.getMessage() for r in caplog.records if "public.click_log" in r.getMessage()]
    assert len(warned) == 1 and "no primary key" in warned[0]  # once, not per batch
    with connect(settings) as conn:
        want = conn.execute("select note_id, body from note order by 1").fetchall()
    got = [(r["note_id"], r["body"]) for r in _silver(settings, "note")]
    # nobody reviewed the drafted contract of `note`: its text is masked
    key = pii_key(settings)
    assert sorted(got) == [(note_id, expected_token(key, body)) for note_id, body in want]
