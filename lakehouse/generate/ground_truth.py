"""What the lake must end up holding: the source's final state and its true totals.

Written next to the change events for the reconciliation tests:

* ``<table>.parquet``: the final rows of each source table in the contract's lake types,
  sorted by primary key;
* ``versions.parquet``: per client and product, how many row versions (snapshot reads,
  inserts and updates) the stream carried, which is what SCD2 history must hold;
* ``totals.json``: row counts and money/quantity totals of order lines and sales;
* ``expected_demand.parquet``: the demand the orders were drawn from, the floor of any
  forecast (``lakehouse.generate.oracle``): ``product_id`` (int64), ``week_start_date``
  (date32, the ISO week's Monday), ``expected_units`` (float64, the expected units on
  lines of orders not cancelled, by order date), one row per product and week in which
  the product could be ordered; the first and last weeks hold only the simulated days.
* ``purchase_propensity.parquet``: what each client was expected to buy in the last eight
  complete weeks (``lakehouse.generate.oracle.purchase_propensities``), the ceiling of
  the propositions' backtest on that window: ``client_id``, ``product_id``,
  ``window_start``, ``window_end`` (the day after the window), ``expected_orders`` (the
  expected number of the client's orders that include the product).

The conversion (lakehouse.generate.wire) is plain Python, independent of the lander's
Arrow casts, so a conversion bug in the lander cannot hide in both.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.contracts import Contract
from lakehouse.generate.debezium import Row
from lakehouse.generate.wire import to_python


def final_state(contract: Contract, rows: list[Row]) -> pa.Table:
    """Rows of one table in lake types, sorted by primary key."""
    ordered = sorted(rows, key=lambda r: tuple(r[k] for k in contract.primary_key))
    columns = {
        c.name: pa.array([to_python(c.type, r[c.name]) for r in ordered], c.arrow_type)
        for c in contract.columns
    }
    return pa.table(columns, schema=contract.arrow_schema)


def totals(tables: dict[str, list[Row]]) -> dict[str, Any]:
    items, sales = tables["order_item"], tables["sale"]
    gross = sum(Decimal(r["unit_price"]) * r["quantity"] for r in items)
    discount = sum(Decimal(r["discount_amount"]) for r in items)
    status = Counter(r["status"] for r in tables["orders"])
    return {
        "rows": {t: len(rows) for t, rows in tables.items()},
        "orders_by_status": dict(sorted(status.items())),
        "order_item": {
            "quantity": sum(r["quantity"] for r in items),
            "gross_amount": str(gross),
            "discount_amount": str(discount),
            "net_amount": str(gross - discount),
        },
        "sale": {
            "gross_amount": str(sum(Decimal(r["gross_amount"]) for r in sales)),
            "discount_amount": str(sum(Decimal(r["discount_amount"]) for r in sales)),
            "net_amount": str(sum(Decimal(r["net_amount"]) for r in sales)),
        },
    }


def write(
    directory: Path,
    contracts: dict[str, Contract],
    tables: dict[str, list[Row]],
    versions: Counter[tuple[str, tuple[Any, ...]]],
    expected_demand: pa.Table,
    propensities: pa.Table | None = None,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        pq.write_table(final_state(contracts[name], rows), directory / f"{name}.parquet")
    kept = sorted((t, k, n) for (t, k), n in versions.items() if t in ("client", "product"))
    pq.write_table(
        pa.table(
            {
                "table": pa.array([t for t, _, _ in kept], pa.string()),
                "id": pa.array([k[0] for _, k, _ in kept], pa.int64()),
                "versions": pa.array([n for _, _, n in kept], pa.int64()),
            }
        ),
        directory / "versions.parquet",
    )
    pq.write_table(expected_demand, directory / "expected_demand.parquet")
    if propensities is not None:
        pq.write_table(propensities, directory / "purchase_propensity.parquet")
    (directory / "totals.json").write_text(json.dumps(totals(tables), indent=2) + "\n")
