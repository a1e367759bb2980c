"""The Prometheus metrics: a `lakehouse ingest --follow` serves its lander's and the lake's
metrics, and they move the right way as events land (scraped over HTTP, as Prometheus
would); the capture counts a Debezium batch per topic with its lag and position; the gate's
history is read at scrape time; the stack's processes are scrape targets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lakehouse import metrics
from lakehouse.cdc.debezium import _count
from lakehouse.lake import freshness
from lakehouse.quality import CheckResult, history
from lakehouse.settings import PROJECT_DIR, Settings, load_settings
from lakehouse.stack import prometheus_config, scrape_targets
from tests.support.debezium import Source, item_row, write_item_contract
from tests.support.ports import free_port

pytestmark = pytest.mark.integration
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
TOPIC = "oltp.public.item"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _segment(changes: Path, base: int, records: list[bytes]) -> None:
    """One more log segment, written whole before it appears (as the capture's writer)."""
    directory = changes / TOPIC
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{base}.tmp"
    partial.write_bytes(b"".join(r + b"\n" for r in records))
    partial.rename(directory / f"{base:020d}.jsonl")


def _wait(url: str, done: object, timeout: float = 60.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        try:
            samples = scrape(url)
            if done(samples):  # type: ignore[operator]
                return samples
        except httpx.TransportError:
            pass  # not listening yet
        assert time.monotonic() < deadline, "the metrics never showed the round"
        time.sleep(0.3)


def _applied(scrape: Samples, silver_version: float) -> bool:
    """A follow round applied to silver: into its tail (a micro-batch,
    docs/silver-layout.md), or the table itself moved (a fold)."""
    tail = value(scrape, "lakehouse_table_version", layer="silver_tail", table="item")
    base = value(scrape, "lakehouse_table_version", layer="silver", table="item")
    return tail is not None or (base or 0) > silver_version


def test_a_follow_round_moves_the_lander_and_lake_metrics(tmp_path: Path) -> None:
    contracts = write_item_contract(tmp_path / "contracts")
    data = tmp_path / "data"
    src = Source()
    src.snapshot([item_row(i) for i in range(5)])
    first = len(src.records)
    _segment(data / "changes", 0, src.records)
    port = free_port()
    env = {**os.environ, "LAKEHOUSE_CONTRACTS_DIR": str(contracts)}
    url = f"http://127.0.0.1:{port}/metrics"
    follow = subprocess.Popen(
        [
            LAKEHOUSE,
            "ingest",
            "--follow",
            "--interval",
            "0.2",
            "--metrics-port",
            str(port),
            "--data-dir",
            str(data),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # landed, then applied: the round's silver commit is in the lake's metrics
        before = _wait(
            url,
            lambda s: (
                value(s, "lakehouse_lander_events_total", table="item") == first
                and (value(s, "lakehouse_table_files", layer="silver", table="item") or 0) >= 1
            ),
        )
        assert value(before, "lakehouse_lander_landed_total", table="item") == first
        assert value(before, "lakehouse_lander_dead_letters_total", table="item") in (None, 0.0)
        assert value(before, "lakehouse_lander_offset_lag", table="item") == 0
        assert value(before, "lakehouse_table_files", layer="silver", table="item") >= 1
        version = value(before, "lakehouse_table_version", layer="silver", table="item")
        # the recording's source commits are years old: the lag says so
        lag = value(before, "lakehouse_commit_lag_seconds", layer="silver", table="item")
        assert lag > (datetime.now(UTC) - datetime(2023, 11, 15, tzinfo=UTC)).total_seconds()

        src.transaction([("u", item_row(1, qty=7)), ("c", item_row(9))])
        bad = [b'{"key": {"item_id": 1', orjson.dumps({"key": {"shop": "a"}, "value": None})]
        more = src.records[first:] + bad
        _segment(data / "changes", first, more)
        after = _wait(
            url,
            lambda s: (
                value(s, "lakehouse_lander_events_total", table="item") == first + len(more)
                and _applied(s, version)
            ),
        )
        assert value(after, "lakehouse_lander_dead_letters_total", table="item") == len(bad)
        assert value(after, "lakehouse_lander_landed_total", table="item") == first + 2
        batches = value(after, "lakehouse_lander_batch_seconds_count", table="item")
        assert batches > value(before, "lakehouse_lander_batch_seconds_count", table="item")
        assert value(after, "lakehouse_silver_apply_seconds_count", table="item") > value(
            before, "lakehouse_silver_apply_seconds_count", table="item"
        )
        assert _applied(after, version)
        assert value(after, "lakehouse_lander_offset_lag", table="item") == 0
        assert (
            value(
                after,
                "lakehouse_build_info",
                version=metrics.version("lakehouse"),
                process="lander",
            )
            == 1
        )
    finally:
        follow.terminate()
        follow.wait(30)
    assert b"Traceback" not in (follow.stderr.read() if follow.stderr else b"")


def test_a_capture_batch_counts_its_events_lag_and_position(tmp_path: Path) -> None:
    src = Source()
    src.snapshot([item_row(i) for i in range(3)])
    src.transaction([("d", item_row(2))])  # the last record is its tombstone
    other = "oltp.public.other"
    events = metrics.CAPTURE_EVENTS.labels(TOPIC)._value.get()
    _count({TOPIC: src.records, other: [src.records[0]]})
    assert metrics.CAPTURE_EVENTS.labels(TOPIC)._value.get() == events + len(src.records)
    with metrics.MetricsServer(free_port(), host="127.0.0.1", process="capture") as server:
        samples = scrape(server.url)
    assert value(samples, "lakehouse_capture_events_total", topic=TOPIC) == events + len(
        src.records
    )
    # the delete's own event, before its tombstone: the newest position and commit time
    assert value(samples, "lakehouse_capture_position", topic=TOPIC) == src.lsn - 8
    assert value(samples, "lakehouse_capture_position", topic=other) < src.lsn - 8
    lag = value(samples, "lakehouse_capture_lag_seconds", topic=TOPIC)
    assert abs(lag - (time.time() - src.ts_ms / 1000)) < 60


def _run(
    settings: Settings, run_id: str, finished: datetime, published: bool, newest: datetime
) -> None:
    checks = [
        CheckResult("dbt:a", "dbt_test", "marts", "m", "error", passed=published),
        CheckResult("gx:b", "expectation", "marts", "m", "warn", passed=True),
    ]
    history.record(
        settings,
        history.RunRecord(
            run_id,
            "local",
            finished - timedelta(minutes=5),
            finished,
            "published" if published else "blocked",
            len(checks),
            0 if published else 1,
            0,
            run_id if published else None,
            newest,
            finished if published else None,
            None,
            0,
            1.0,
            1.0,
        ),
        checks,
        checked_at=finished,
    )


def test_the_gate_history_and_the_slo_are_read_at_scrape_time(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, contracts_dir=write_item_contract(tmp_path / "c"))
    now = datetime.now(UTC)
    served = now - timedelta(hours=2)
    _run(settings, "r1", now - timedelta(hours=1), True, served)
    _run(settings, "r2", now - timedelta(minutes=1), False, now - timedelta(minutes=3))
    assert freshness.sample(settings, "lander", now) == pytest.approx(7200)
    freshness.record_slo_state(
        settings,
        {
            "decided_at": now,
            "run_id": "r2",
            "status": "burning",
            "budget_remaining": 0.25,
            "burn_rate": 3.5,
            "alerted": True,
        },
    )
    before = metrics.GATE_CHECKS_FAILED.labels("dbt_test", "error")._value.get()
    metrics.gate_run(
        "blocked", [CheckResult("dbt:a", "dbt_test", "marts", "m", "error", False)], {"build": 2.0}
    )
    assert metrics.GATE_CHECKS_FAILED.labels("dbt_test", "error")._value.get() == before + 1
    with metrics.MetricsServer(
        free_port(), host="127.0.0.1", process="metrics", lake=settings
    ) as server:
        samples = scrape(server.url)
    assert value(samples, "lakehouse_gate_last_run_checks_failed") == 1  # r2, blocked
    assert value(samples, "lakehouse_gate_last_run_checks") == 2
    # the data marts are r1's: published an hour ago, holding commits two hours old
    assert value(samples, "lakehouse_publication_age_seconds") == pytest.approx(3600, abs=60)
    assert value(samples, "lakehouse_mart_freshness_seconds") == pytest.approx(7200, abs=60)
    assert value(samples, "lakehouse_slo_freshness_budget_remaining") == 0.25
    assert value(samples, "lakehouse_slo_freshness_burn_rate") == 3.5
    assert (
        value(samples, "lakehouse_gate_checks_failed_total", kind="dbt_test", severity="error") >= 1
    )
    assert value(samples, "lakehouse_gate_runs_total", outcome="blocked") >= 1


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    with metrics.MetricsServer(free_port(), host="127.0.0.1", process="capture") as server:
        run = subprocess.run(
            [
                LAKEHOUSE,
                "ingest",
                "--follow",
                "--metrics-port",
                str(server.port),
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "--metrics-port" in run.stderr.strip().splitlines()[-1]


def test_the_stack_scrapes_each_process_and_compose_each_service(tmp_path: Path) -> None:
    local = load_settings(data_dir=tmp_path)
    assert [t.job for t in scrape_targets(local)] == ["lakehouse-api"]  # off by default
    stack = load_settings(data_dir=tmp_path, profile="stack")
    targets = {t.job: t.url for t in scrape_targets(stack)}
    assert targets == {
        "lakehouse-api": f"http://127.0.0.1:{stack.api_port}/metrics",
        "lakehouse-capture": f"http://127.0.0.1:{stack.capture_metrics_port}/metrics",
        "lakehouse-lander": f"http://127.0.0.1:{stack.lander_metrics_port}/metrics",
    }
    config = prometheus_config(scrape_targets(stack))
    assert [j["job_name"] for j in config["scrape_configs"]] == list(targets)  # type: ignore[index]
    # compose: Prometheus scrapes the lander and the API on their container ports
    compose = yaml.safe_load((PROJECT_DIR / "docker" / "compose.yaml").read_text())
    scraped = yaml.safe_load((PROJECT_DIR / "docker" / "prometheus.yml").read_text())
    addresses = {
        j["job_name"]: j["static_configs"][0]["targets"][0] for j in scraped["scrape_configs"]
    }
    assert addresses == {
        "lakehouse-api": "api:8000",
        "lakehouse-lander": f"lander:{stack.lander_metrics_port}",
    }
    for address in addresses.values():
        assert address.split(":")[0] in compose["services"]
    assert (
        "./prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in compose["services"]["prometheus"]["volumes"]
    )
