"""No raw personal data in any file of the lake: bronze, silver and the dead letters."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.lander import ingest
from lakehouse.generate import GenerateParams, generate
from lakehouse.settings import load_settings
from tests.support.truth import assert_silver_equals_truth, expected_token, pii_key

pytestmark = pytest.mark.integration
PII_COLUMNS = ("first_name", "last_name", "email", "phone")


def _strings_in_parquet(path: Path) -> set[str]:
    table = pq.read_table(path)
    out: set[str] = set()
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            out.update(v for v in column.to_pylist() if v is not None)
    return out


def test_pii_is_masked_everywhere_in_the_lake(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    generate(settings, GenerateParams(clients=80, products=20, days=40, snapshot_day=5))
    segment = sorted((settings.changes_path / "oltp.public.client").glob("*.jsonl"))[-1]
    record = json.loads(segment.read_bytes().splitlines()[-1])
    secret_email = "leaked.person@example.com"
    bad_type = json.loads(json.dumps(record))
    bad_type["value"]["after"]["email"] = secret_email
    bad_type["value"]["after"]["client_id"] = "not a number"
    with segment.open("ab") as f:
        f.write(json.dumps(bad_type).encode() + b"\n")
        f.write(b'{"key": {"client_id": 1}, "value": {"email": "torn.person@example.com"\n')

    report = ingest(settings)
    assert report.rejected == 2

    clients = pq.read_table(settings.ground_truth_path / "client.parquet").to_pylist()
    raw_values = {c[col] for c in clients for col in PII_COLUMNS if c[col]}
    raw_values |= {secret_email, "torn.person@example.com"}
    lake = settings.root / "lake"
    files = [p for p in lake.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    for path in files:
        data = path.read_bytes()
        found = [v for v in raw_values if v.encode() in data]
        assert not found, f"{path} holds raw PII: {found[:3]}"
        if path.suffix == ".parquet":  # compressed pages: look at the decoded values too
            assert not raw_values & _strings_in_parquet(path), path

    # silver holds the keyed tokens: equal values stay equal, so joins still work
    key = pii_key(settings)
    silver = DeltaTable(settings.table_uri("silver", "client")).to_pyarrow_table().to_pylist()
    by_id = {c["client_id"]: c for c in clients}
    for row in silver:
        assert row["email"] == expected_token(key, by_id[row["client_id"]]["email"])
    assert_silver_equals_truth(settings)

    # the dead letters: the JSON one keeps its record with the email masked, the torn one
    # only its length and token (the change log has it at its offset while it is kept)
    dlq = DeltaTable(settings.table_uri("dead_letter", "events")).to_pyarrow_table().to_pylist()
    by_raw = {r["raw"].startswith("{"): r for r in dlq}
    masked = json.loads(by_raw[True]["raw"])
    assert masked["value"]["after"]["email"] == expected_token(key, secret_email)
    torn_offset = FileSource(settings.changes_path).end_offset("oltp.public.client") - 1
    assert by_raw[False]["offset"] == torn_offset
    assert by_raw[False]["raw"].startswith("<not a JSON record: ")
