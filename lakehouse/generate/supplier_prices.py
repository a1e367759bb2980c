"""The demo's supplier price lists: one CSV per supplier, dropped in the folder the
shipped ``supplier_prices`` source reads (``lakehouse/contracts/sources.yml``), so that the
demo lands a file source beside CDC and the product margin mart has costs."""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Mapping
from datetime import date
from pathlib import Path

SUPPLIERS = ("northwind", "contoso")
# Every product is bought from the first supplier; this share from the second too.
SECOND_SUPPLIER_SHARE = 0.3


def drop_folder(root: Path) -> Path:
    """``{data_dir}/drops/supplier_prices``: where ``sources.yml`` reads them."""
    return root / "drops" / "supplier_prices"


def write(folder: Path, launch_price: Mapping[int, int], effective_date: date, seed: int) -> int:
    """Write the price lists (unit costs 45-65 % of each product's launch price, in
    cents); returns the rows written. Each file appears whole (written, then renamed)."""
    rng = random.Random(seed)  # its own stream: the shop's draws stay as they were
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[list[str]]] = {s: [] for s in SUPPLIERS}
    for pid, price in sorted(launch_price.items()):
        for i, supplier in enumerate(SUPPLIERS):
            if i and rng.random() >= SECOND_SUPPLIER_SHARE:
                continue
            cost = round(price * rng.uniform(0.45, 0.65))
            rows[supplier].append(
                [str(pid), supplier, f"{cost // 100}.{cost % 100:02d}", effective_date.isoformat()]
            )
    for supplier, lines in rows.items():
        partial = folder / f"{supplier}.csv.partial"
        with partial.open("w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["product_id", "supplier", "unit_cost", "effective_date", "contact_email"])
            for line in lines:
                out.writerow([*line, f"orders@{supplier}.example"])
        os.replace(partial, folder / f"{supplier}.csv")
    return sum(len(lines) for lines in rows.values())
