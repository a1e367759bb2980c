"""`lakehouse stack up|status|down` through the CLI: each service answers its own
protocol, a second `up` starts nothing, and `down` leaves no process behind."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from lakehouse.exceptions import ServiceError
from lakehouse.settings import load_settings
from lakehouse.stack import SERVICES as SERVICE_ORDER
from lakehouse.stack import Stack
from tests.support.stack import RunningStack, running_stack, stack_env

ASKED = ["redis", "prefect-server", "prefect-worker", "mlflow", "kafka", "api"]


@pytest.mark.stack
def test_stack_up_status_and_down(tmp_path: Path) -> None:
    with running_stack(tmp_path, ASKED) as stack:
        print(f"stack up ({', '.join(ASKED)}) in {stack.up_seconds:.1f} s\n{stack.up_output}")
        for name in ASKED:
            assert f"started {name}" in " ".join(stack.up_output.split())

        began = time.monotonic()
        again = stack.cli("stack", "up", "--only", *ASKED)
        assert again.returncode == 0, again.stderr
        assert "already up: nothing to start" in again.stdout
        assert "started" not in again.stdout
        print(f"second up in {time.monotonic() - began:.1f} s")

        rows = stack.status()
        for name in ASKED:
            assert rows[name]["healthy"] is True, rows[name]
            assert isinstance(rows[name]["pid"], int)
            assert Path(str(rows[name]["log_path"])).is_file()
        for name in ("minio", "trino"):  # not asked for
            assert rows[name]["pid"] is None and rows[name]["healthy"] is False
        table = stack.cli("stack", "status")
        assert table.returncode == 0 and "prefect-worker" in table.stdout

        _redis_answers(stack.port("redis_port"))
        _prefect_answers(stack.port("prefect_port"))
        _mlflow_tracks(stack.port("mlflow_port"))
        _kafka_answers(stack.port("kafka_port"))
        _api_answers(stack.port("api_port"), stack.data_dir)
        data = stack.data_dir / "stack"
        for service in ("redis", "prefect", "prefect-worker", "mlflow", "kafka", "api"):
            assert (data / service).is_dir(), f"{service} keeps no state under {data}"

    # running_stack has run `stack down` and checked every recorded process is gone
    assert stack.pids, "no process was recorded"
    down_again = stack.cli("stack", "down")
    assert down_again.returncode == 0 and "nothing was running" in down_again.stdout


def test_services_start_in_order_with_what_they_need(tmp_path: Path) -> None:
    stack = Stack(load_settings(data_dir=tmp_path))
    assert stack.select(None) == list(SERVICE_ORDER)
    assert stack.select(["mlflow", "prefect-worker"]) == [
        "prefect-server",
        "prefect-worker",
        "mlflow",
    ]
    assert stack.select(["redis,kafka", "minio"]) == ["minio", "kafka", "redis"]
    assert stack.select(["api"]) == ["redis", "mlflow", "api"]
    with pytest.raises(ServiceError, match="unknown service 'spark'"):
        stack.select(["spark"])


def test_unknown_service_is_one_line_error(tmp_path: Path) -> None:
    stack = RunningStack(tmp_path / "data", stack_env(tmp_path), tmp_path)
    out = stack.cli("stack", "up", "--only", "postgres")
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown service 'postgres'" in lines[0], out.stderr


def _api_answers(port: int, data_dir: Path) -> None:
    """Up before anything is published: /health answers, a key is required, and a keyed
    request says what to run rather than failing."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "ok"
    assert httpx.get(f"{base}/freshness", timeout=10).status_code == 401
    key = (data_dir / "secrets" / "api.key").read_text().strip()
    nothing = httpx.get(f"{base}/freshness", headers={"X-API-Key": key}, timeout=10)
    assert nothing.status_code == 503, nothing.text
    assert "lakehouse build" in nothing.json()["detail"]


def _redis_answers(port: int) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        assert client.ping() is True
        client.set("lakehouse:test", "ok")
        assert client.get("lakehouse:test") == b"ok"
    finally:
        client.close()


def _prefect_answers(port: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as r:
        assert json.loads(r.read()) is True
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/work_pools/lakehouse/workers/filter",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        workers = json.loads(r.read())
    assert [w["name"] for w in workers] == ["lakehouse-worker"]
    pool = f"http://127.0.0.1:{port}/api/work_pools/lakehouse"
    with urllib.request.urlopen(pool, timeout=10) as r:
        assert json.loads(r.read())["type"] == "process"


def _mlflow_tracks(port: int) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
    experiment_id = client.create_experiment("stack-test")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "rmse", 0.25, step=1)
    client.log_text(run.info.run_id, "served by the tracking server", "note.txt")
    client.set_terminated(run.info.run_id)
    back = client.get_run(run.info.run_id)
    assert back.data.metrics == {"rmse": 0.25}
    assert back.info.status == "FINISHED"
    assert back.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied, not a path
    assert [f.path for f in client.list_artifacts(run.info.run_id)] == ["note.txt"]


def _kafka_answers(port: int) -> None:
    from confluent_kafka import Consumer, Producer

    bootstrap = f"127.0.0.1:{port}"
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce("stack-test", key=b"k", value=b"v")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "t", "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe(["stack-test"])
        deadline = time.monotonic() + 30
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(1)
        assert message is not None and message.error() is None
        assert (message.key(), message.value()) == (b"k", b"v")
    finally:
        consumer.close()
