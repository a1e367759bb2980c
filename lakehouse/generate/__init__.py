"""The demo business: a retail shop's history as Debezium change events, plus the truth.

``generate(settings, params)`` simulates the shop (``business``), records every committed
transaction as the PostgreSQL connector would (``debezium``), and writes the final state
and totals the lake must reconcile with, and the demand the orders were drawn from
(``ground_truth``, ``oracle``). Same parameters, same bytes.
A second call with the same parameters does nothing.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.contracts import load_contracts
from lakehouse.exceptions import LakehouseError
from lakehouse.generate import ground_truth, supplier_prices
from lakehouse.generate.business import PRIMARY_KEYS, Business, DemandHook
from lakehouse.generate.debezium import Recorder
from lakehouse.generate.oracle import DemandOracle

if TYPE_CHECKING:
    from lakehouse.progress import Progress
    from lakehouse.settings import Settings

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GenerateParams:
    seed: int = 42
    clients: int = 1000
    products: int = 300
    days: int = 730
    start_date: date = date(2024, 1, 1)
    snapshot_day: int = 30  # the connector starts (initial snapshot) on this day
    orders_per_day: float | None = None  # default: 0.13 per client
    duplicate_rate: float = 0.01  # share of events redelivered after connector restarts
    segment_events: int = 200_000  # lines per log segment file

    def __post_init__(self) -> None:
        if self.clients < 1 or self.products < 10:
            raise LakehouseError("generate needs at least 1 client and 10 products")
        if self.days < 2:
            raise LakehouseError("generate needs at least 2 days (--days)")
        if not 0 <= self.duplicate_rate < 1:
            raise LakehouseError("duplicate_rate must be in [0, 1)")
        if self.segment_events < 1:
            raise LakehouseError("segment_events must be positive")

    @property
    def order_rate(self) -> float:
        return self.orders_per_day if self.orders_per_day is not None else 0.13 * self.clients

    @property
    def first_streamed_day(self) -> int:
        return min(self.snapshot_day, self.days - 1)

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["start_date"] = self.start_date.isoformat()
        values["format"] = FORMAT_VERSION
        return values


@dataclass
class GenerateSummary:
    params: GenerateParams
    events_by_topic: dict[str, int] = field(default_factory=dict)
    total_events: int = 0
    duplicates: int = 0
    skipped: bool = False
    seconds: float = 0.0


def read_manifest(settings: Settings) -> dict[str, Any] | None:
    path = settings.changes_path / MANIFEST
    if not path.is_file():
        return None
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def generate(
    settings: Settings,
    params: GenerateParams,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> GenerateSummary:
    """Write the change events and the ground truth under the data directory."""
    changes, truth = settings.changes_path, settings.ground_truth_path
    manifest = read_manifest(settings)
    if manifest is not None and not force:
        if manifest["params"] == params.to_json():
            return GenerateSummary(
                params,
                events_by_topic=manifest["events_by_topic"],
                total_events=manifest["total_events"],
                duplicates=manifest["duplicates"],
                skipped=True,
            )
        raise LakehouseError(
            f"{changes} holds a demo generated with other parameters "
            f"({_differences(manifest['params'], params.to_json())}); "
            "pass --force to replace it and the lake built from it, or use another --data-dir"
        )
    if force:
        # the lake, and dlt's cursors over what landed in it (lakehouse.cdc.sources)
        for path in (settings.root / "lake", settings.root / "dlt", settings.warehouse):
            _remove(path)
    started = time.perf_counter()
    contracts = load_contracts(settings.contracts_dir)
    staging = changes.with_name(changes.name + ".partial")
    for path in (staging, changes, truth):
        _remove(path)
    task = progress.add_task("simulating the shop", total=params.days) if progress else None

    def on_day(day: int) -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=day + 1)

    oracle = DemandOracle()
    business, recorder = simulate(
        params, staging, settings.topic_prefix, random.Random(params.seed), oracle.observe, on_day
    )
    final = {t: list(rows.values()) for t, rows in business.tables.items()}
    ground_truth.write(
        truth, contracts, final, recorder.versions, oracle.table(), oracle.propensities()
    )
    prices = supplier_prices.drop_folder(settings.root)
    _remove(prices)
    supplier_prices.write(prices, business.launch_price, params.start_date, params.seed + 1)
    offsets = recorder.offsets
    summary = GenerateSummary(
        params,
        events_by_topic=dict(sorted(offsets.items())),
        total_events=sum(offsets.values()),
        duplicates=sum(recorder.redelivered.values()),
        seconds=time.perf_counter() - started,
    )
    (staging / MANIFEST).write_text(
        json.dumps(
            {
                "params": params.to_json(),
                "events_by_topic": summary.events_by_topic,
                "total_events": summary.total_events,
                "duplicates": summary.duplicates,
            },
            indent=2,
        )
        + "\n"
    )
    staging.rename(changes)
    return summary


def simulate(
    params: GenerateParams,
    directory: Path,
    topic_prefix: str,
    rng: random.Random,
    on_demand: DemandHook | None = None,
    on_day: Callable[[int], None] | None = None,
) -> tuple[Business, Recorder]:
    """Run the shop with ``rng`` (the one stream every draw comes from), its change events
    recorded under ``directory``; ``on_demand`` is told each day's demand."""
    recorder = Recorder(
        directory,
        topic_prefix,
        PRIMARY_KEYS,
        rng,
        segment_events=params.segment_events,
        duplicate_rate=params.duplicate_rate,
    )
    business = Business(
        rng=rng,
        recorder=recorder,
        clients=params.clients,
        products=params.products,
        days=params.days,
        start=params.start_date,
        snapshot_day=params.first_streamed_day,
        orders_per_day=params.order_rate,
        on_demand=on_demand,
    )
    business.run(on_day)
    return business, recorder


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in keys)


def _remove(path: Any) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
