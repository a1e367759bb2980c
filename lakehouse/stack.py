"""The stack: every cluster service as a local process, started in dependency order.

``lakehouse stack up`` starts what does not already answer its health check (a second
``up`` starts nothing), ``stack down`` stops everything in reverse order, ``stack status``
shows each service's process, health, address and log. State, generated configuration
and logs live under ``<data_dir>/stack/<service>/``.

The service modules load lazily: ``lakehouse --help`` stays fast, and a service's
libraries (Kafka's client, Redis's, ...) load only when it is used.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from lakehouse.exceptions import ServiceError

if TYPE_CHECKING:
    from lakehouse.settings import Settings

# start order: the object store and Kafka first (Trino's catalog and the lander need
# them), the Prefect server before its worker
SERVICES: tuple[str, ...] = (
    "minio",
    "kafka",
    "trino",
    "redis",
    "prefect-server",
    "prefect-worker",
    "mlflow",
    "api",
)
# the API reads the registry (MLflow) and the online features (Redis) from its start
_REQUIRES: dict[str, tuple[str, ...]] = {
    "prefect-worker": ("prefect-server",),
    "api": ("redis", "mlflow"),
}
KAFKA_START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class ScrapeTarget:
    """A process that serves Prometheus metrics: its job name and where to scrape it."""

    job: str
    address: str  # host:port
    path: str = "/metrics"

    @property
    def url(self) -> str:
        return f"http://{self.address}{self.path}"


def scrape_targets(settings: Settings) -> list[ScrapeTarget]:
    """Each process of the stack that serves metrics: the API (its HTTP and model metrics)
    and, when their ports are set (the stack profile's default), the capture and the
    lander (with the lake's: freshness and files per table, the gate, the SLO)."""
    targets = [ScrapeTarget("lakehouse-api", f"127.0.0.1:{settings.api_port}")]
    for job, port in (
        ("lakehouse-capture", settings.capture_metrics_port),
        ("lakehouse-lander", settings.lander_metrics_port),
    ):
        if port:
            targets.append(ScrapeTarget(job, f"127.0.0.1:{port}"))
    return targets


def prometheus_config(targets: Iterable[ScrapeTarget], interval_s: int = 15) -> dict[str, object]:
    """A Prometheus configuration that scrapes ``targets``, one job each."""
    return {
        "global": {"scrape_interval": f"{interval_s}s", "evaluation_interval": f"{interval_s}s"},
        "scrape_configs": [
            {
                "job_name": t.job,
                "metrics_path": t.path,
                "static_configs": [{"targets": [t.address]}],
            }
            for t in targets
        ],
    }


def write_prometheus_config(settings: Settings) -> Path:
    """``<stack_dir>/prometheus/prometheus.yml``, scraping the stack's processes."""
    import yaml

    path = settings.stack_dir / "prometheus" / "prometheus.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(prometheus_config(scrape_targets(settings)), sort_keys=False)
    path.write_text(f"# written by `lakehouse stack targets`: the stack's processes\n{text}")
    return path


class Service(Protocol):
    """What the stack needs of a service."""

    name: str

    @property
    def url(self) -> str: ...

    @property
    def log_path(self) -> Path: ...

    def start(self) -> bool: ...

    def stop(self) -> bool: ...

    def running(self) -> bool: ...

    def healthy(self) -> bool: ...

    def pid(self) -> int | None: ...


@dataclass(frozen=True)
class Started:
    """One service after ``up``: started now (and how long it took), or already up."""

    service: str
    started: bool
    seconds: float
    url: str


@dataclass(frozen=True)
class ServiceStatus:
    """One row of ``stack status``."""

    service: str
    pid: int | None
    healthy: bool
    url: str
    log_path: Path


class KafkaService:
    """The Kafka broker of the change path (:class:`KafkaBroker`) as a stack service, home
    ``<stack_dir>/kafka``, on the settings' ports."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        from lakehouse.supervisors.kafka import KafkaBroker

        self.broker = KafkaBroker(
            settings.stack_dir / "kafka", settings.kafka_port, settings.kafka_controller_port
        )

    @property
    def url(self) -> str:
        return self.broker.bootstrap_servers

    @property
    def log_path(self) -> Path:
        return self.broker.log_path

    def pid(self) -> int | None:
        if not self.broker.running:
            return None
        try:
            return int(self.broker.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        return self.broker.running

    def healthy(self) -> bool:
        """The broker answers a metadata request."""
        if not self.broker.running:
            return False
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.url, "log_level": 0})
        try:
            return bool(admin.list_topics(timeout=3).brokers)
        except Exception:
            return False

    def start(self) -> bool:
        if self.healthy():
            return False
        was_running = self.broker.running
        self.broker.start()  # returns at once when the process runs (still starting?)
        deadline = time.monotonic() + KAFKA_START_TIMEOUT_S
        while not self.healthy():
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"Kafka runs but does not answer on {self.url} (see {self.broker.log_path})"
                )
            time.sleep(0.5)
        return not was_running

    def stop(self) -> bool:
        was_running = self.broker.running
        self.broker.stop()
        return was_running


def _make(name: str, settings: Settings) -> Service:
    """The service called ``name``; its module is imported only now."""
    if name == "minio":
        from lakehouse.supervisors.minio import MinioServer

        return MinioServer(settings)
    if name == "kafka":
        return KafkaService(settings)
    if name == "trino":
        from lakehouse.supervisors.trino import TrinoServer

        return TrinoServer(settings)
    if name == "redis":
        from lakehouse.supervisors.redis import RedisServer

        return RedisServer(settings)
    if name == "prefect-server":
        from lakehouse.supervisors.prefect import PrefectServer

        return PrefectServer(settings)
    if name == "prefect-worker":
        from lakehouse.supervisors.prefect import PrefectWorker

        return PrefectWorker(settings)
    if name == "mlflow":
        from lakehouse.supervisors.mlflow import MlflowServer

        return MlflowServer(settings)
    if name == "api":
        from lakehouse.supervisors.api import ApiServer

        return ApiServer(settings)
    raise ServiceError(f"unknown service {name!r}: choose from {', '.join(SERVICES)}")


class Stack:
    """The services of the stack profile, as local processes under ``stack_dir``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._services: dict[str, Service] = {}

    def service(self, name: str) -> Service:
        if name not in self._services:
            self._services[name] = _make(name, self.settings)
        return self._services[name]

    def select(self, only: Iterable[str] | None = None) -> list[str]:
        """The services to start, in start order: ``only`` (names, or comma-separated
        lists of names) plus what they need; all of them when ``only`` is empty."""
        names = [n.strip() for item in only or () for n in item.split(",") if n.strip()]
        if not names:
            return list(SERVICES)
        unknown = [n for n in names if n not in SERVICES]
        if unknown:
            raise ServiceError(f"unknown service {unknown[0]!r}: choose from {', '.join(SERVICES)}")
        wanted = set(names)
        for name in names:
            wanted.update(_REQUIRES.get(name, ()))
        return [n for n in SERVICES if n in wanted]

    def up(
        self,
        only: Iterable[str] | None = None,
        *,
        on_start: Callable[[str], None] | None = None,
        on_done: Callable[[Started], None] | None = None,
    ) -> list[Started]:
        """Start the selected services that are not healthy yet, one after the other.

        ``on_start(name)`` is called before a service is checked or started and
        ``on_done(result)`` after. A service that fails to start is stopped and the
        error names it; the ones started before keep running (``down`` stops them).
        """
        results: list[Started] = []
        for name in self.select(only):
            if on_start is not None:
                on_start(name)
            service = self.service(name)
            began = time.monotonic()
            try:
                started = False if service.healthy() else service.start()
            except ServiceError as exc:
                raise ServiceError(f"{name}: {exc}") from None
            result = Started(name, started, time.monotonic() - began, service.url)
            results.append(result)
            if on_done is not None:
                on_done(result)
        return results

    def down(self, *, on_stop: Callable[[str, bool], None] | None = None) -> list[str]:
        """Stop every service, in reverse start order; returns the ones that ran.

        Every service is stopped even when one fails; the first failure is raised after.
        """
        stopped: list[str] = []
        failures: list[str] = []
        for name in reversed(SERVICES):
            try:
                ran = self.service(name).stop()
            except ServiceError as exc:
                failures.append(f"{name}: {exc}")
                continue
            if ran:
                stopped.append(name)
            if on_stop is not None:
                on_stop(name, ran)
        if failures:
            raise ServiceError(f"could not stop every service: {failures[0]}")
        return stopped

    def status(self) -> list[ServiceStatus]:
        """Every service: its pid (None when not running), health, address and log."""
        rows: list[ServiceStatus] = []
        for name in SERVICES:
            service = self.service(name)
            pid = service.pid()
            healthy = False
            if pid is not None:
                with contextlib.suppress(Exception):
                    healthy = service.healthy()
            rows.append(ServiceStatus(name, pid, healthy, service.url, service.log_path))
        return rows
