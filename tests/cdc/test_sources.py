"""Sources beside CDC: files (CSV, Excel, Parquet) and a REST API, extracted by dlt,
land through the contract: bad rows in the dead letters with their reason, PII masked,
the rest in silver; a second run lands only what is new; a re-run lands nothing twice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from openpyxl import Workbook

from lakehouse.cdc.sources import run_sources
from lakehouse.settings import Settings
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CONTRACT = """\
table: price
primary_key: [product_id, supplier]
columns:
  - {name: product_id, type: bigint, nullable: false}
  - {name: supplier, type: string, nullable: false}
  - {name: unit_cost, type: "decimal(10,2)", nullable: false}
  - {name: valid_from, type: date, nullable: false}
  - {name: contact_email, type: string, pii: email}
"""


def _settings(tmp_path: Path, sources: str) -> Settings:
    config = tmp_path / "config"
    config.mkdir()
    (config / "price.yml").write_text(CONTRACT)
    (config / "sources.yml").write_text(sources)
    return Settings(data_dir=tmp_path / "data", sources_file=config / "sources.yml")


def _silver(s: Settings) -> dict[tuple[int, str], dict[str, object]]:
    rows = DeltaTable(s.table_uri("silver", "price")).to_pyarrow_table().to_pylist()
    return {(r["product_id"], r["supplier"]): r for r in rows}


def _bronze_rows(s: Settings) -> int:
    return DeltaTable(s.table_uri("bronze", "price")).to_pyarrow_table().num_rows


def _dead_letters(s: Settings, topic: str) -> list[dict[str, object]]:
    rows = DeltaTable(s.table_uri("dead_letter", "events")).to_pyarrow_table().to_pylist()
    return sorted((r for r in rows if r["topic"] == topic), key=lambda r: r["offset"])


def _touch(path: Path, second: int) -> None:
    """Distinct modification times, in the order the files were dropped."""
    moment = datetime(2026, 1, 1, 0, 0, second).timestamp()
    os.utime(path, (moment, moment))


# --- files ----------------------------------------------------------------------------

FILES = """\
sources:
  prices:
    kind: files
    bucket_url: "{data_dir}/drops/prices"
    contract: price.yml
"""


def _drop_files(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "acme.csv").write_text(
        "product_id,supplier,unit_cost,valid_from,contact_email\n"
        "1,acme,2.50,2026-01-01,sales@acme.example\n"
        "2,acme,lots,2026-01-01,sales@acme.example\n"  # wrong type
        ",acme,3.00,2026-01-01,sales@acme.example\n"  # missing key
        "3,acme,4.00,2026-01-01,sales@acme.example\n"
    )
    _touch(folder / "acme.csv", 1)
    book = Workbook()
    sheet = book.active
    sheet.append(["product_id", "supplier", "unit_cost", "valid_from", "contact_email"])
    sheet.append([1, "bolt", 2.75, datetime(2026, 1, 2), "bolt@bolt.example"])
    sheet.append([4, "bolt", 5, datetime(2026, 1, 2), None])
    sheet.append([5, "bolt", 6.5, None, None])  # valid_from is not null in the contract
    book.save(folder / "bolt.xlsx")
    _touch(folder / "bolt.xlsx", 2)
    pq.write_table(
        pa.table(
            {
                "product_id": pa.array([1, 6], pa.int64()),
                "supplier": ["acme", "acme"],  # acme's newer price for product 1
                "unit_cost": pa.array([Decimal("2.40"), Decimal("7.00")], pa.decimal128(10, 2)),
                "valid_from": [date(2026, 1, 3), date(2026, 1, 3)],
                "contact_email": ["sales@acme.example", None],
            }
        ),
        folder / "acme-2.parquet",
    )
    _touch(folder / "acme-2.parquet", 3)
    (folder / "notes.txt").write_text("not a price list")
    _touch(folder / "notes.txt", 4)


def test_files_land_bad_rows_in_the_dead_letters_and_the_rest_in_silver(tmp_path: Path) -> None:
    s = _settings(tmp_path, FILES)
    folder = s.root / "drops" / "prices"
    _drop_files(folder)

    (report,) = run_sources(s)

    silver = _silver(s)
    assert sorted(silver) == [(1, "acme"), (1, "bolt"), (3, "acme"), (4, "bolt"), (6, "acme")]
    assert silver[(1, "acme")]["unit_cost"] == Decimal("2.40")  # the newer file wins
    assert silver[(4, "bolt")]["unit_cost"] == Decimal("5.00")
    assert silver[(1, "bolt")]["valid_from"] == date(2026, 1, 2)
    emails = {r["contact_email"] for r in silver.values()} - {None}
    assert emails and all(str(e).startswith("pii:") for e in emails)  # masked
    dead = _dead_letters(s, "source.prices")
    reasons = [str(r["reason"]) for r in dead]
    assert len(dead) == report.rejected == 4
    assert any("'unit_cost': value does not convert to decimal(10,2)" in r for r in reasons)
    assert any("missing key column 'product_id'" in r for r in reasons)
    assert any("'valid_from' is null but its contract says not null" in r for r in reasons)
    assert any("cannot read the file" in r and "notes.txt" in r for r in reasons)
    raw = " ".join(str(r["raw"]) for r in dead)
    assert "acme.example" not in raw and "pii:" in raw  # PII masked in the dead letters
    assert "acme.csv#2" in raw  # where the row was read
    landed = _bronze_rows(s)
    assert landed == report.landed == 6

    # a second run lands only the new file (dlt's cursor on the modification time)
    (folder / "bolt-2.csv").write_text(
        "product_id,supplier,unit_cost,valid_from\n4,bolt,4.50,2026-01-05\n7,bolt,1.00,2026-01-05\n"
    )
    _touch(folder / "bolt-2.csv", 5)
    (again,) = run_sources(s)
    assert again.rows == 2 and again.landed == 2 and again.rejected == 0
    assert _silver(s)[(4, "bolt")]["unit_cost"] == Decimal("4.50")
    assert (7, "bolt") in _silver(s)

    # dlt's state lost: every file is read again, and nothing lands twice
    shutil.rmtree(s.root / "dlt")
    (replay,) = run_sources(s)
    assert replay.rows == 12 and replay.landed == 0 and replay.duplicates == 8
    assert replay.rejected == 0 and len(_dead_letters(s, "source.prices")) == len(dead)
    assert _bronze_rows(s) == landed + 2
    assert len(_silver(s)) == 6


# --- REST -----------------------------------------------------------------------------

REST = """\
sources:
  partner:
    kind: rest
    base_url: "http://127.0.0.1:{port}/api"
    path: prices
    data_selector: items
    paginator: {{type: page_number, page_param: page, base_page: 1, total_path: pages}}
    cursor: {{field: updated_at, param: updated_since, initial_value: "2026-01-01T00:00:00+00:00"}}
    contract: price.yml
"""
PAGE_SIZE = 2


class _Api:
    """A partner's API: rows changed since ``updated_since``, in pages of two."""

    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []
        self.requests: list[dict[str, list[str]]] = []

    def page(self, query: dict[str, list[str]]) -> dict[str, object]:
        self.requests.append(query)
        since = query.get("updated_since", [""])[0]
        rows = [r for r in self.rows if str(r.get("updated_at") or "9999") >= since]
        rows.sort(key=lambda r: str(r.get("updated_at") or ""))
        page = int(query.get("page", ["1"])[0])
        pages = max(1, -(-len(rows) // PAGE_SIZE))
        return {"items": rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], "pages": pages}


@pytest.fixture
def api() -> Iterator[tuple[_Api, int]]:
    state = _Api()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            body = json.dumps(state.page(parse_qs(url.query))).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, port
    finally:
        server.shutdown()
        server.server_close()


def _row(pid: object, cost: object, at: str | None, **extra: object) -> dict[str, object]:
    return {
        "product_id": pid,
        "supplier": "partner",
        "unit_cost": cost,
        "valid_from": "2026-01-01",
        "contact_email": "desk@partner.example",
        "updated_at": at,
        **extra,
    }


def test_a_rest_api_lands_page_by_page_from_its_cursor(
    tmp_path: Path, api: tuple[_Api, int]
) -> None:
    state, port = api
    s = _settings(tmp_path, REST.format(port=port))
    state.rows = [
        _row(1, "2.50", "2026-02-01T10:00:00+00:00"),
        _row(2, "n/a", "2026-02-01T10:00:01+00:00"),  # wrong type
        _row(None, "3.00", "2026-02-01T10:00:02+00:00"),  # missing key
        _row(3, 4, "2026-02-01T10:00:03+00:00"),
        _row(4, "5.25", "2026-02-01T10:00:04+00:00", note={"nested": True}),
    ]

    (report,) = run_sources(s)

    assert len(state.requests) == 3  # three pages of two
    silver = _silver(s)
    assert sorted(silver) == [(1, "partner"), (3, "partner"), (4, "partner")]
    assert silver[(3, "partner")]["unit_cost"] == Decimal("4.00")
    assert str(silver[(1, "partner")]["contact_email"]).startswith("pii:")
    dead = _dead_letters(s, "source.partner")
    assert report.rejected == len(dead) == 2
    assert "'unit_cost': value does not convert" in str(dead[0]["reason"])
    assert "missing key column 'product_id'" in str(dead[1]["reason"])
    assert "partner.example" not in " ".join(str(r["raw"]) for r in dead)

    # the next run asks for rows changed since the cursor and lands only those
    state.requests.clear()
    state.rows.append(_row(1, "2.45", "2026-02-02T09:00:00+00:00"))
    (again,) = run_sources(s)
    assert state.requests[0]["updated_since"] == ["2026-02-01T10:00:04+00:00"]
    assert again.landed == 1 and again.rejected == 0
    assert _silver(s)[(1, "partner")]["unit_cost"] == Decimal("2.45")

    # dlt's state lost: every page is read again, and nothing lands twice
    before = _bronze_rows(s)
    shutil.rmtree(s.root / "dlt")
    (replay,) = run_sources(s)
    assert replay.landed == 0 and _bronze_rows(s) == before
    assert replay.rejected == 0 and len(_dead_letters(s, "source.partner")) == len(dead)
    assert len(_silver(s)) == 3


# --- a user's mistakes: one line each --------------------------------------------------


def _cli(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lakehouse.cli.main", *args, "--data-dir", str(s.root)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250", "LAKEHOUSE_SOURCES_FILE": str(s.sources_file)},
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("declared", "says"),
    [
        ("sources:\n  prices:\n    kind: ftp\n", "needs 'kind: files' or 'kind: rest'"),
        (
            "sources:\n  prices: {kind: files, contract: price.yml, bucket: x}\n",
            "unknown key(s) ['bucket']",
        ),
        (
            "sources:\n  prices: {kind: rest, contract: price.yml, base_url: "
            "'http://127.0.0.1:{port}/api', path: prices, cursor: {field: updated_at}}\n",
            "source 'prices':",  # nothing listens there: what failed, in one line
        ),
    ],
)
def test_a_mistake_in_a_source_is_one_line(tmp_path: Path, declared: str, says: str) -> None:
    s = _settings(tmp_path, declared.replace("{port}", str(free_port())))
    run = _cli(s, "sources", "run")
    assert run.returncode == 1, run.stdout
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0], run.stderr


def test_the_contracts_pii_class_is_what_masks_a_column(tmp_path: Path) -> None:
    """Positive control for the masking asserted above: the same rows, checked against the
    contract without the PII class, keep the address in clear."""
    from dataclasses import replace

    from lakehouse.cdc import tabular
    from lakehouse.cdc.pii import Masker
    from lakehouse.contracts import load_contract

    (tmp_path / "price.yml").write_text(CONTRACT)
    contract = load_contract(tmp_path / "price.yml")
    batch = pa.table(
        {
            "product_id": ["1", "x"],
            "supplier": ["acme", "acme"],
            "unit_cost": ["2.50", "1.00"],
            "valid_from": ["2026-01-01", "2026-01-01"],
            "contact_email": ["sales@acme.example", "sales@acme.example"],
            tabular.COMMIT_POS: pa.array([1, 1], pa.int64()),
            tabular.EVENT_POS: ["1", "2"],
            tabular.AT: ["a.csv#1", "a.csv#2"],
        }
    )
    masker = Masker(b"k" * 32)
    masked = tabular.check(contract, batch, "source.t", 0, masker)
    plain_contract = replace(
        contract,
        columns=tuple(replace(c, pii=None) for c in contract.columns),
    )
    plain = tabular.check(plain_contract, batch, "source.t", 0, masker)
    assert masked.rows.column("contact_email").to_pylist()[0].startswith("pii:")
    assert plain.rows.column("contact_email").to_pylist() == ["sales@acme.example"]
    assert "acme.example" not in masked.rejects.column("raw")[0].as_py()
    assert "sales@acme.example" in plain.rejects.column("raw")[0].as_py()
    assert masked.rejects.column("offset").to_pylist() == [1]  # the row's own offset
