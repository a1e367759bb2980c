"""After a pipeline run (a small generated shop: ingest, then build, audit and publish),
no file of the data directory holds a personal value of any version of any client:
not the lake, the change log, the dead letters, the warehouses, the docs sites, the
logs. The positive control lands the same shop with masking off (the contracts' PII
classes removed) and the same scan must find them."""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lakehouse.cdc.lander import ingest
from lakehouse.contracts import load_contracts
from lakehouse.generate import GenerateParams, generate
from lakehouse.quality.gate import PublicationBlocked, build_audit_publish
from lakehouse.settings import DEFAULT_CONTRACTS_DIR, load_settings
from tests.support.pii_scan import recording_personal_values, scan

pytestmark = pytest.mark.e2e  # a build: minutes
SHOP = GenerateParams(clients=50, products=20, days=90, snapshot_day=10)


def _unmasked_contracts(directory: Path) -> Path:
    """The shipped contracts with every PII class removed: masking off."""
    shutil.copytree(DEFAULT_CONTRACTS_DIR, directory)
    for path in directory.glob("*.yml"):
        path.write_text(re.sub(r",\s*pii:\s*\w+", "", path.read_text()))
    assert not any(c.pii for t in load_contracts(directory).values() for c in t.columns)
    return directory


def test_no_personal_value_of_any_version_is_at_rest_and_unmasked_it_would_be(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", changes_retention_hours=0)
    contracts = load_contracts(settings.contracts_dir)
    with recording_personal_values(contracts) as values:
        generate(settings, SHOP)
    ingest(settings)
    with contextlib.suppress(PublicationBlocked):  # what was written counts, published or not
        build_audit_publish(settings)

    # the values: every version of every client, erased ones and old e-mails included
    final = pq.read_table(settings.ground_truth_path / "client.parquet").to_pylist()
    final_emails = {c["email"] for c in final}
    emails = {v for v in values if "@" in v}
    assert final_emails < emails  # e-mails changed or erased since are looked for too
    assert len(emails) > len(final) and len(values) > 2 * len(final)

    report = scan(settings.root, values)
    assert report.found == {}, {k: sorted(v)[:3] for k, v in report.found.items()}
    assert report.values == len(values)
    assert report.parquet_files >= 16 and report.duckdb_files >= 2  # a file per table at least
    assert report.strings > 10_000 and report.files > 100
    scanned = {p.relative_to(settings.root).parts[0] for p in settings.root.rglob("*")}
    assert {"lake", "changes", "docs", "published", "secrets"} <= scanned

    # positive control: the same shop landed with masking off
    control = load_settings(
        data_dir=tmp_path / "control",
        contracts_dir=_unmasked_contracts(tmp_path / "unmasked"),
        changes_retention_hours=0,
    )
    generate(control, SHOP)
    ingest(control)
    leaked = scan(control.root, values)
    found = {v for hits in leaked.found.values() for v in hits}
    assert final_emails <= found  # every current e-mail, in silver at least
    assert any("/silver/client/" in path for path in leaked.found)
    assert any("/bronze/client/" in path for path in leaked.found)
