"""Dead letters replayed once the data or the contract is fixed: what lands goes to bronze
and silver in its true order, what still fails stays with its new reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.contracts import load_contracts
from lakehouse.generate import GenerateParams, generate
from lakehouse.settings import DEFAULT_CONTRACTS_DIR, load_settings
from tests.support.truth import masked_truth

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
PARAMS = GenerateParams(clients=50, products=20, days=60, snapshot_day=5)


def _cli(contracts: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LAKEHOUSE_CONTRACTS_DIR": str(contracts)}
    return subprocess.run([LAKEHOUSE, *args], capture_output=True, text=True, check=False, env=env)


def test_replay_after_the_data_and_the_contract_are_fixed(tmp_path: Path) -> None:
    contracts = tmp_path / "contracts"
    shutil.copytree(DEFAULT_CONTRACTS_DIR, contracts)
    settings = load_settings(data_dir=tmp_path / "data", contracts_dir=contracts)
    generate(settings, PARAMS)
    orders = settings.changes_path / "oltp.public.orders"
    segment = sorted(orders.glob("*.jsonl"))[0]
    original = segment.read_bytes()
    lines = original.splitlines(keepends=True)
    # early order updates are broken in transit: a later change of the same order exists
    broken = [i for i, line in enumerate(lines) if b'"op":"u"' in line][:5]
    for i in broken:
        record = json.loads(lines[i])
        record["value"]["after"]["transporter_id"] = "express"  # not a bigint
        lines[i] = json.dumps(record).encode() + b"\n"
    segment.write_bytes(b"".join(lines))
    # and one promotion carries a value its contract does not allow yet
    promo = sorted((settings.changes_path / "oltp.public.promotion").glob("*.jsonl"))[0]
    promo_lines = promo.read_bytes().splitlines(keepends=True)
    record = json.loads(promo_lines[0])
    record["value"]["after"]["name"] = None
    promo_lines[0] = json.dumps(record).encode() + b"\n"
    promo.write_bytes(b"".join(promo_lines))

    ingest(settings)
    where = ["--data-dir", str(settings.root)]
    listed = json.loads(_cli(contracts, "dlq", "list", "--json", *where).stdout)
    assert sorted((r["topic"], r["offset"]) for r in listed) == sorted(
        [("oltp.public.orders", i) for i in broken] + [("oltp.public.promotion", 0)]
    )

    # the producer's data is fixed (the records are restored); replay only that topic
    segment.write_bytes(original)
    replay = _cli(contracts, "dlq", "replay", "--topic", "oltp.public.orders", *where)
    assert replay.returncode == 0, replay.stderr
    assert "oltp.public.orders: 5 landed, 0 still failing" in replay.stdout
    dlq = DeltaTable(settings.table_uri("dead_letter", "events")).to_pyarrow_table().to_pylist()
    assert [(r["topic"], r["offset"]) for r in dlq] == [("oltp.public.promotion", 0)]

    # before its contract is fixed the promotion fails again, and says why
    again = _cli(contracts, "dlq", "replay", *where)
    assert "oltp.public.promotion: 0 landed, 1 still failing" in again.stdout
    dlq = DeltaTable(settings.table_uri("dead_letter", "events")).to_pyarrow_table().to_pylist()
    assert "'name' is null" in dlq[0]["reason"]
    # the contract is fixed: a promotion's name may be null
    promo_contract = contracts / "promotion.yml"
    promo_contract.write_text(
        promo_contract.read_text().replace(
            "{name: name, type: string, nullable: false}", "{name: name, type: string}"
        )
    )
    fixed = _cli(contracts, "dlq", "replay", *where)
    assert "oltp.public.promotion: 1 landed" in fixed.stdout, fixed.stdout + fixed.stderr
    assert DeltaTable(settings.table_uri("dead_letter", "events")).to_pyarrow_table().num_rows == 0

    # the replayed order updates are older than later changes of the same orders: silver
    # still equals the truth, and bronze now holds every change of the topic
    orders_contract = load_contracts(contracts)["orders"]
    silver_orders = (
        DeltaTable(settings.table_uri("silver", "orders"))
        .to_pyarrow_table()
        .select(orders_contract.column_names)
        .sort_by("order_id")
    )
    assert silver_orders.equals(masked_truth(settings, orders_contract).cast(silver_orders.schema))
    bronze_orders = DeltaTable(settings.table_uri("bronze", "orders")).to_pyarrow_table()
    assert bronze_orders.num_rows == len(original.splitlines())
    # the promotion landed as its record says
    promotions = DeltaTable(settings.table_uri("silver", "promotion")).to_pyarrow_table()
    first_id = record["key"]["promotion_id"]
    row = next(r for r in promotions.to_pylist() if r["promotion_id"] == first_id)
    assert row["name"] is None
