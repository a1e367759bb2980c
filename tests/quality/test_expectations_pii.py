"""Great Expectations never copies sample values of a table holding personal data into
its results, Data Docs, alerts or the quality marts: a raw e-mail planted in silver's
client fails its check by count only. The positive control plants the same kind of
value in a table without personal data, where the sample values do show."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from great_expectations import ExpectationSuite

from lakehouse.cdc.lander import ingest
from lakehouse.contracts import load_contract
from lakehouse.generate import GenerateParams, generate
from lakehouse.quality.expectations import run_expectations
from lakehouse.quality.suites import contract_suite
from lakehouse.settings import DEFAULT_CONTRACTS_DIR, load_settings
from tests.support.pii_scan import scan

pytestmark = pytest.mark.integration
LEAKED = "leaked.person@example.com"  # a raw value where tokens belong
STATUS = "shipped.to@example.org"  # the same kind of value where nothing is personal
EMAIL_CHECK = "gx:silver.client:expect_column_values_to_match_regex(email)"
STATUS_CHECK = "gx:silver.orders:expect_column_values_to_be_in_set(status)"


def test_failed_checks_on_personal_data_show_counts_not_values(
    tmp_path: Path, webhook: tuple[str, list[dict]]
) -> None:
    url, received = webhook
    settings = load_settings(data_dir=tmp_path / "data", alert_webhook_url=url)
    generate(settings, GenerateParams(clients=40, products=15, days=30, snapshot_day=5))
    ingest(settings)
    clients = DeltaTable(settings.table_uri("silver", "client"))
    first = pc.min(clients.to_pyarrow_table(columns=["client_id"]).column(0)).as_py()
    clients.update(updates={"email": f"'{LEAKED}'"}, predicate=f"client_id = {first}")
    orders = DeltaTable(settings.table_uri("silver", "orders"))
    order = pc.min(orders.to_pyarrow_table(columns=["order_id"]).column(0)).as_py()
    orders.update(updates={"status": f"'{STATUS}'"}, predicate=f"order_id = {order}")

    checks = run_expectations(settings, layers=("silver",), run_id="leak")
    failed = {c.check: c for c in checks if not c.passed}
    assert set(failed) == {EMAIL_CHECK, STATUS_CHECK}
    email = failed[EMAIL_CHECK]
    assert email.observed == "1" and email.detail.startswith("PII (email) lands masked: 1 of")
    assert LEAKED not in json.dumps([c.detail for c in checks] + [c.observed for c in checks])
    assert STATUS in failed[STATUS_CHECK].detail  # positive control: samples where allowed

    # the alerts and the Data Docs site, as files, searched for the raw values
    (tmp_path / "data" / "alerts.json").write_text(json.dumps(received))
    assert {a["checkpoint"] for a in received} == {"silver.client", "silver.orders"}
    docs = scan(settings.docs_dir, {LEAKED, STATUS})
    assert docs.files > 10
    found = {value for values in docs.found.values() for value in values}
    assert found == {STATUS}, docs.found  # the control value shows; the e-mail never
    alerts = scan(tmp_path / "data", {LEAKED}, skip=("lake", "changes", "ground_truth"))
    assert alerts.found == {}, alerts.found


def test_an_unreviewed_contract_expects_tokens_in_every_text_column(tmp_path: Path) -> None:
    text = (DEFAULT_CONTRACTS_DIR / "orders.yml").read_text()
    reviewed = load_contract(DEFAULT_CONTRACTS_DIR / "orders.yml")
    (tmp_path / "orders.yml").write_text(text.replace("columns:", "reviewed: false\ncolumns:"))
    draft = load_contract(tmp_path / "orders.yml")
    assert not draft.reviewed

    def kinds(suite: ExpectationSuite) -> set[tuple[str, str]]:
        return {
            (e.expectation_type, e.configuration.kwargs.get("column")) for e in suite.expectations
        }

    regex = ("expect_column_values_to_match_regex", "status")
    in_set = ("expect_column_values_to_be_in_set", "status")
    assert regex in kinds(contract_suite("silver", draft))
    assert in_set not in kinds(contract_suite("silver", draft))  # tokens are in no list
    assert in_set in kinds(contract_suite("silver", reviewed)) and regex not in kinds(
        contract_suite("silver", reviewed)
    )
