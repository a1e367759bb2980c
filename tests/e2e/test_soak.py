"""A soak run: the live shop at a steady rate for a while, as it runs for months.

PostgreSQL, Debezium's capture writing to a real Kafka broker and the lander each run as
processes (`lakehouse capture`, `lakehouse ingest --follow`), as deployed. Meanwhile the
capture is stopped and started again, the lander is killed (SIGKILL) and started again,
the broker is restarted, builds (`lakehouse build`) run one after the other and the lake
is maintained (`lakehouse maintain`). Afterwards:

- the resident memory of the capture and the lander did not grow from the second quarter
  of the run to the last;
- the lake's data files on disk stay bounded per table;
- silver's freshness (now minus the source commit time of its newest row, sampled every
  second from the Delta log) held its objective at the 95th percentile;
- every silver table equals its source table, bronze holds every event of the topics
  once, and a build publishes.

The run lasts ``LAKEHOUSE_SOAK_SECONDS`` (120 on CI; ``make soak`` runs an hour): the
same code, shortened.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from lakehouse.cdc.kafka_source import KafkaSource
from lakehouse.oltp.simulate import SimulateParams, SimulateSummary, simulate
from lakehouse.settings import Settings
from lakehouse.supervisors.kafka import KafkaBroker
from tests.cdc.test_live_capture import _changes, _source_table
from tests.support.exactly_once import assert_bronze_exactly_once, streamed_changes
from tests.support.kafka import running_broker
from tests.support.killer import LAKEHOUSE
from tests.support.oltp import oltp_cluster
from tests.support.soak import Sampler, Service, lakehouse_env, newest_source_ts
from tests.support.truth import assert_silver_equals

SOAK_S = float(os.environ.get("LAKEHOUSE_SOAK_SECONDS", "120"))
RATE_TPS = 10.0  # the shop's transactions per second (each a few change events)
FRESHNESS_P95_S = 30.0  # silver's objective here: 2 cores shared with builds and restarts
RECOVERY_S = 30.0  # after a restart, for the freshness to come back
MAX_LAG_S = 120.0  # never further behind than this, restarts included
MEMORY_GROWTH = 1.3  # the last quarter's peak against the second quarter's, plus slack
MEMORY_SLACK_MB = 128.0
SETTLE_S = 240.0
MAX_LIVE_FILES = 50  # in one silver table's current version, at any sample

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("debezium"),
    pytest.mark.timeout(SOAK_S + 1500),
]
WORLD = SimulateParams(tps=0, duration=None, transactions=1, clients=300, products=60)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with running_broker(tmp_path_factory.mktemp("soak-kafka")) as broker:
        yield broker


@pytest.fixture(scope="module")
def shop(broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    base = tmp_path_factory.mktemp("soak")
    with oltp_cluster(base, kafka_bootstrap_servers=broker.bootstrap_servers) as settings:
        yield settings


@dataclass
class Run:
    command: str
    seconds: float
    code: int
    output: str


class Builds:
    """`lakehouse build` (and `lakehouse maintain` every ``maintain_every``-th time) one
    after the other in a thread, until stopped."""

    def __init__(self, settings: Settings, maintain_every: int = 1) -> None:
        self.env, self.maintain_every = lakehouse_env(settings), maintain_every
        self.runs: list[Run] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            self.runs.append(run_command(self.env, "build"))
            n += 1
            if not self.stop.is_set() and n % self.maintain_every == 0:
                self.runs.append(run_command(self.env, "maintain"))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(900)


def run_command(env: dict[str, str], command: str) -> Run:
    began = time.monotonic()
    done = subprocess.run(
        [LAKEHOUSE, command], env=env, capture_output=True, text=True, timeout=900
    )
    return Run(command, time.monotonic() - began, done.returncode, done.stdout + done.stderr)


def _wait(what: str, ready: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        time.sleep(1)
    raise AssertionError(f"{what} within {timeout_s:.0f} s")


def _silver_equals_source(settings: Settings) -> bool:
    try:
        assert_silver_equals(settings, lambda contract: _source_table(settings, contract))
    except AssertionError:
        return False
    return True


def _p95(values: list[float]) -> float:
    return values[int(0.95 * (len(values) - 1))] if values else float("inf")


def _peak(values: list[float]) -> float:
    return max(values, default=0.0)


def test_the_shop_runs_for_a_while_with_restarts_and_builds(
    broker: KafkaBroker, shop: Settings
) -> None:
    simulate(shop, WORLD)
    capture = Service(shop, "capture", ["capture"])
    lander = Service(shop, "lander", ["ingest", "--follow", "--interval", "0.5"])
    try:
        orders = shop.table_uri("silver", "orders")
        _wait("the snapshot landed in silver", lambda: newest_source_ts(orders) is not None, 300)
        sampler = Sampler(shop, [capture, lander], watched="orders")
        summaries: list[SimulateSummary] = []
        shop_run = threading.Thread(
            target=lambda: summaries.append(
                simulate(shop, replace(WORLD, tps=RATE_TPS, duration=SOAK_S, transactions=None))
            ),
            daemon=True,
        )
        shop_run.start()
        builds = Builds(shop)
        events = [
            (0.2, "capture stopped and started", lambda: capture.restart(signal.SIGTERM)),
            (0.4, "lander killed and started", lambda: lander.restart(signal.SIGKILL)),
            (0.6, "broker restarted", broker.restart),
        ]
        began = time.monotonic()
        disrupted: list[tuple[float, str]] = []  # (seconds into the sampling, what)
        for at, what, act in events:
            time.sleep(max(0.0, began + at * SOAK_S - time.monotonic()))
            assert capture.alive, f"the capture died before '{what}'; see {capture.log}"
            assert lander.alive, f"the lander died before '{what}'; see {lander.log}"
            disrupted.append((time.monotonic() - sampler.began, what))
            act()
        shop_run.join(SOAK_S + 300)
        assert not shop_run.is_alive(), "the shop did not stop"
        during = sampler.between(0.0, SOAK_S)
        builds.close()
        _wait("silver equal to the source", lambda: _silver_equals_source(shop), SETTLE_S)
        sampler.stop()
    finally:
        capture.stop()
        lander.stop()

    # freshness: the newest source commit in silver, sampled every second. A restart
    # costs a recovery (a new process, a consumer group joining, a broker electing its
    # leaders); the objective holds outside those, and each recovery ends
    lags = sorted(s.lag_s for s in during if s.lag_s is not None)
    assert len(lags) >= SOAK_S * 0.5, f"{len(lags)} freshness samples in {SOAK_S:.0f} s"
    steady = sorted(
        s.lag_s
        for s in during
        if s.lag_s is not None and not any(at <= s.at < at + RECOVERY_S for at, _ in disrupted)
    )
    p95, steady_p95 = _p95(lags), _p95(steady)
    print(
        f"soak {SOAK_S:.0f} s at {RATE_TPS:.0f} tps: silver freshness p50 "
        f"{statistics.median(lags):.1f} s, p95 {p95:.1f} s, max {lags[-1]:.1f} s; "
        f"outside the {RECOVERY_S:.0f} s after each restart p95 {steady_p95:.1f} s"
    )
    for at, what in disrupted:
        peak = max((s.lag_s or 0.0 for s in sampler.between(at, at + RECOVERY_S)), default=0.0)
        print(
            f"  {what} at {at:.0f} s: freshness up to {peak:.1f} s in the next {RECOVERY_S:.0f} s"
        )
    assert steady_p95 <= FRESHNESS_P95_S, f"silver freshness p95 {steady_p95:.1f} s"
    assert lags[-1] <= MAX_LAG_S, f"silver freshness reached {lags[-1]:.1f} s"

    # memory: the second quarter (after start-up) against the last
    for name in ("capture", "lander"):
        second = [s.rss_mb[name] for s in sampler.between(0.25 * SOAK_S, 0.5 * SOAK_S)]
        last = [s.rss_mb[name] for s in sampler.between(0.75 * SOAK_S, SOAK_S)]
        print(f"{name} peak RSS: {_peak(second):.0f} MB, then {_peak(last):.0f} MB")
        assert _peak(last) <= MEMORY_GROWTH * _peak(second) + MEMORY_SLACK_MB, name

    # builds ran beside it and never crashed; the lake was maintained
    ran = [r for r in builds.runs if r.command == "build"]
    assert ran, "no build ran"
    print(
        f"builds during the soak: {sum(r.code == 0 for r in ran)} published, "
        f"{sum(r.code != 0 for r in ran)} blocked, "
        f"{statistics.median(r.seconds for r in ran):.0f} s each (median)"
    )
    for r in builds.runs:  # published, or blocked with one line that says why
        last = r.output.strip().splitlines()[-1] if r.output.strip() else ""
        assert r.code == 0 or last.startswith("error:"), r.output[-3000:]
        assert "Traceback" not in r.output, r.output[-3000:]
    assert any(r.command == "maintain" and r.code == 0 for r in builds.runs), [
        (r.command, r.code, r.output[-500:]) for r in builds.runs
    ]

    # files: each silver table's current version stays a few files (compaction and the
    # tail's folds); files past the vacuum's retention (an hour at least) leave the disk
    live = [s.live_silver_files for s in sampler.samples if s.live_silver_files]
    tails = [s.live_tail_files for s in sampler.samples if s.live_tail_files]
    assert live and tails, "no sample of the live files"
    busiest = max(max(files.values()) for files in live)
    longest = max(max(files.values()) for files in tails)
    final = sampler.samples[-1]
    print(
        f"silver: at most {busiest} live files in a table and {longest} in a tail; "
        f"{final.silver_files} data files on disk at the end (vacuum retention "
        f"{shop.maintenance_retention_hours} h)"
    )
    assert busiest <= MAX_LIVE_FILES, live[-1]
    assert longest <= shop.silver_fold_files + MAX_LIVE_FILES, tails[-1]  # compacted there

    # the lake equals the source, bronze holds every event once, and a build publishes
    committed = _changes(*summaries)
    with KafkaSource(
        shop.kafka_bootstrap_servers, "exactly-once-check", shop.topic_prefix
    ) as topics:
        landed = assert_bronze_exactly_once(shop, topics)
    assert streamed_changes(landed) == committed
    final_build = run_command(lakehouse_env(shop), "build")
    assert final_build.code == 0, final_build.output[-3000:]
