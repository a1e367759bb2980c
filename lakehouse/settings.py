"""One settings object for every component.

Read from environment variables prefixed ``LAKEHOUSE_`` and from one YAML config file
(``lakehouse.yaml`` in the working directory, or the file named by ``LAKEHOUSE_CONFIG``).
Environment variables win over the file. Everything else (dbt, Prefect, the CLI) gets its
configuration from here, never from raw environment variables.

Longer than 400 lines on purpose: one class holds every setting, each field with its
default, bounds and description (the README's settings table), and the paths and secrets
derived from them; split, a setting would have two homes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from lakehouse.exceptions import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
DEFAULT_CONTRACTS_DIR = PACKAGE_DIR / "contracts" / "oltp"
# the sources beside CDC (files, REST APIs): the demo's supplier price list
DEFAULT_SOURCES_FILE = PACKAGE_DIR / "contracts" / "sources.yml"
DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"
# a region name: it becomes a role, a user, a file name and a SQL literal
REGION_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

Profile = Literal["local", "stack"]
TrinoAuthentication = Literal["none", "password"]
# where the capture and the lander serve their metrics on the stack profile by default
STACK_CAPTURE_METRICS_PORT, STACK_LANDER_METRICS_PORT = 59190, 59191
# A secret shorter than this (a typo, an empty file) is refused rather than used.
MIN_SECRET_LENGTH = 32


def _config_file() -> Path:
    return Path(os.environ.get("LAKEHOUSE_CONFIG", "lakehouse.yaml"))


class Settings(BaseSettings):
    """Typed settings shared by the lander, dbt, Prefect flows and the CLI."""

    model_config = SettingsConfigDict(env_prefix="LAKEHOUSE_", extra="forbid")

    profile: Profile = "local"
    data_dir: Path = Field(default=Path(".lakehouse"), description="all state lives here")
    source_name: str = Field(default="oltp", description="logical name of the OLTP source")
    topic_prefix: str = Field(default="oltp", description="Debezium topic.prefix")
    contracts_dir: Path = Field(
        default=DEFAULT_CONTRACTS_DIR,
        description="the shipped (reviewed) contracts; they win over the captured drafts",
    )
    sources_file: Path = Field(
        default=DEFAULT_SOURCES_FILE,
        description="the file and REST sources landed beside CDC (docs/sources.md); the "
        "default declares the demo's supplier price list",
    )
    capture_tables: list[str] = Field(
        default_factory=list,
        description=(
            "tables to capture, as Debezium `schema.table` regexes (e.g. `public\\.orders`, "
            "`sales\\..*`); empty: every table of the database, tables created later "
            "included, no restart needed. Empty needs a `FOR ALL TABLES` publication, which "
            "only a superuser can create: the project's own cluster creates it; for a real "
            "database a superuser runs `CREATE PUBLICATION lakehouse_<source_name> FOR ALL "
            "TABLES` once. Every table is then published: PostgreSQL refuses UPDATE and "
            "DELETE on a table with neither a primary key nor a REPLICA IDENTITY. With a "
            "list, a new table is captured once it matches the list and capture restarts"
        ),
    )
    capture_release_wal_seconds: float = Field(
        default=300.0,
        ge=0,
        description="every so often capture restarts its engine (a few seconds) to move "
        "the replication slot up to what it durably captured, so PostgreSQL can recycle "
        "the WAL before; 0: only when capture starts",
    )
    capture_snapshot_on_schema_change: bool = Field(
        default=True,
        description="when a captured table gains a column that may hold values in rows "
        "no change will touch (ADD COLUMN ... DEFAULT, a renamed column) or a column's type "
        "changes, capture has Debezium re-read the table (an incremental snapshot through "
        "capture_signal_table), so silver gets those values as the source holds them",
    )
    capture_signal_table: str = Field(
        default="public.lakehouse_signal",
        pattern=r"^([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)?$",
        description="Debezium's signal table (`schema.table`), created by capture when "
        "missing; it carries the incremental snapshots' requests and watermarks and is "
        "never landed; empty: no signalling (and no snapshot on a schema change)",
    )
    changes_dir: Path | None = Field(
        default=None, description="recorded change events; default <data_dir>/changes"
    )
    changes_retention_hours: float = Field(
        default=24.0,
        ge=0,
        description="segments of the change-event log that have landed are deleted by the "
        "lander and `lakehouse maintain` once they are this old (0: as soon as they have "
        "landed), and so are Kafka's landed records (maintain); the lake is the record, and "
        "the log holds the source's raw personal data",
    )
    changes_segment_mb: float = Field(
        default=64.0,
        gt=0,
        description="capture starts a new segment of the change-event log once the open one "
        "holds this many MB, so that landed segments can be deleted while capture runs",
    )
    changes_segment_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="capture starts a new segment of the change-event log once the open one "
        "is this old (seconds), however small it is",
    )
    lake_uri: str | None = Field(
        default=None, description="root of the Delta lake; default <data_dir>/lake"
    )
    storage_options: dict[str, str] = Field(default_factory=dict)
    warehouse_path: Path | None = Field(
        default=None, description="DuckDB file dbt builds; default <data_dir>/warehouse.duckdb"
    )
    dbt_threads: int = 2
    ingest_batch_events: int = Field(default=250_000, ge=1)
    # merge-on-read silver (docs/silver-layout.md): `ingest --follow` folds a table's tail
    # into its base when it holds this many rows and this share of the base's, and
    # compacts it at this many files
    silver_fold_rows: int = Field(default=100_000, ge=1)
    silver_fold_ratio: float = Field(default=0.05, ge=0)
    silver_fold_files: int = Field(default=300, ge=1)
    lease_wait_seconds: float = Field(
        default=600,
        ge=0,
        description="how long a lander or a build waits for the one running on the lake",
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        description="change topics live in this Kafka cluster, not in files: capture "
        "produces to it and the lander reads from it",
    )
    kafka_group_id: str = Field(
        default="lakehouse-lander", description="consumer group of the lander's offsets"
    )
    kafka_retention_hours: float = Field(
        default=168.0,
        gt=0,
        description="retention.ms of the change topics capture creates: Kafka deletes "
        "older events (the lander must have landed them by then)",
    )
    # table maintenance (`lakehouse maintain`, the maintain flow): see docs/maintenance.md
    maintenance_retention_hours: int = Field(
        default=24,
        ge=0,
        description="vacuum deletes the files a table stopped using more than this many hours "
        "ago: time travel and readers within this window keep working",
    )
    maintenance_min_retention_hours: int = Field(
        default=1,
        ge=0,
        description="a retention below this is refused: the guard of the readers running "
        "while maintain does",
    )
    maintenance_target_file_mb: int = Field(
        default=128, ge=1, description="compaction writes files of about this size"
    )
    maintenance_small_file_mb: float = Field(
        default=16.0, gt=0, description="a data file smaller than this counts as small"
    )
    maintenance_min_small_files: int = Field(
        default=8,
        ge=2,
        description="a table is compacted once it holds this many small files",
    )
    maintenance_checkpoint_versions: int = Field(
        default=20,
        ge=1,
        description="a table gets a checkpoint (and its expired log entries cleaned) once "
        "this many versions were committed since its last one",
    )
    # the operational database (PostgreSQL): the project's own cluster, or a real one
    oltp_host: str = "127.0.0.1"
    oltp_port: int = Field(default=55432, ge=1, le=65535)
    oltp_database: str = "shop"
    oltp_user: str = "lakehouse"
    oltp_password: SecretStr | None = Field(
        default=None,
        description="oltp_user's password; default, for the project's own cluster only: one "
        "generated in <data_dir>/secrets/oltp.password (an external database needs it set)",
    )
    pii_key: SecretStr | None = Field(
        default=None,
        description="key of the PII hash; default: one generated in <data_dir>/secrets",
    )
    oltp_managed: bool = Field(
        default=True, description="the project runs the cluster under <data_dir>/oltp"
    )
    # the stack profile: `lakehouse stack up` runs these services as local processes under
    # <data_dir>/stack, on these ports; point the endpoints at a real cluster instead
    s3_endpoint: str | None = Field(
        default=None, description="S3 API of the object store; default the stack's MinIO"
    )
    s3_bucket: str = "lakehouse"
    s3_region: str = "us-east-1"
    s3_access_key: str = "lakehouse"
    s3_secret_key: SecretStr | None = Field(
        default=None,
        description="default: one generated in <data_dir>/secrets/s3.key, which the "
        "stack's MinIO is started with",
    )
    minio_port: int = Field(default=59000, ge=1, le=65535)
    minio_console_port: int = Field(default=59001, ge=1, le=65535)
    trino_host: str = "127.0.0.1"
    trino_bind_host: str = Field(
        default="127.0.0.1",
        description="where the stack's Trino listens (0.0.0.0: every interface; set "
        "trino_authentication to password first)",
    )
    trino_port: int = Field(default=58080, ge=1, le=65535)
    trino_catalog: str = Field(default="lake", description="Trino's Delta Lake catalog")
    trino_user: str = "lakehouse"
    trino_authentication: TrinoAuthentication = Field(
        default="none",
        description="none: Trino believes the user name a client sends; password: the "
        "stack's Trino serves HTTPS only, with a self-signed certificate, and asks the "
        "pipeline's and each region's user for a password (file authenticator)",
    )
    trino_password: SecretStr | None = Field(
        default=None,
        description="trino_user's password when trino_authentication is password; default: "
        "one generated in <data_dir>/secrets/trino-<trino_user>.password",
    )
    kafka_port: int = Field(default=59092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=59093, ge=1, le=65535)
    redis_port: int = Field(default=56379, ge=1, le=65535)
    # Feast's online store on `stack`: the stack's Redis (no password, on this machine), or
    # a deployment's (docker/compose.yaml: host `redis`, its password)
    redis_host: str = "127.0.0.1"
    redis_password: SecretStr | None = None
    prefect_port: int = Field(default=54200, ge=1, le=65535)
    mlflow_port: int = Field(default=55000, ge=1, le=65535)
    # Superset (`lakehouse superset up`): its own virtual environment, metadata in SQLite
    # under <data_dir>/superset; on `local` it reads the published DuckDB marts, on
    # `stack` Trino's catalog
    superset_port: int = Field(default=58088, ge=1, le=65535)
    superset_admin_user: str = "admin"
    superset_admin_password: SecretStr | None = Field(
        default=None,
        description="default: one generated in <data_dir>/secrets/superset-admin.password",
    )
    superset_secret_key: SecretStr | None = Field(
        default=None,
        description="signs Superset's sessions; default: one generated in "
        "<data_dir>/secrets/superset.key",
    )
    superset_region_roles: list[Annotated[str, StringConstraints(pattern=REGION_NAME_PATTERN)]] = (
        Field(
            default_factory=lambda: ["north"],
            description="a role `region_<r>` and a user `<r>_analyst` per region here, who see "
            "only that region's rows (row-level security), in charts, SQL Lab and CSV exports",
        )
    )
    spark_master: str = Field(
        default="local[2]", description="where `ingest --engine spark` runs its applies"
    )
    # quality gates (write-audit-publish)
    freshness_warn_after_minutes: int | None = Field(
        default=60,
        ge=1,
        description="a source whose newest commit is older than this warns (None: never)",
    )
    freshness_error_after_minutes: int | None = Field(
        default=None,
        ge=1,
        description="a source whose newest commit is older than this blocks publication "
        "(None: never; recorded change files are as old as their recording)",
    )
    reconcile_live_wait_seconds: float = Field(
        default=60.0,
        ge=0,
        description="on a live source, how long the gate's reconciliation waits for silver "
        "to catch up with the source's snapshot (keys changed since the snapshot are left out)",
    )
    # demand forecasting (ml/): MLflow tracking and the registry's promotion gate
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking and registry store; default on local a SQLite file "
        "<data_dir>/mlflow/mlflow.db (no server, artefacts under <data_dir>/mlflow/artifacts), "
        "on stack the stack's MLflow server",
    )
    forecast_promotion_margin: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        description="a new forecast model becomes champion only if its backtest WAPE is at "
        "least this fraction lower than the champion's and the best baseline's",
    )
    forecast_coverage_min: float = Field(
        default=0.75, gt=0, lt=1, description="lowest backtest coverage of 80% intervals"
    )
    forecast_coverage_max: float = Field(
        default=0.85, gt=0, le=1, description="highest backtest coverage of 80% intervals"
    )
    drift_alert_psi: float = Field(
        default=0.2,
        gt=0,
        description="a feature's PSI (training window against the latest weeks) above which "
        "scoring alerts",
    )
    drift_retrain_psi: float = Field(
        default=0.3, gt=0, description="a PSI above which scoring triggers a training run"
    )
    # propositions (ml/propositions): each client's top-N products
    propositions_top_n: int = Field(
        default=10, ge=1, le=100, description="products proposed to each client"
    )
    propositions_per_category: int = Field(
        default=4,
        ge=1,
        description="at most this many of a client's propositions from one category",
    )
    propositions_promotion_margin: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        description="a new propositions model becomes champion only if its backtest MAP@10 is "
        "at least this fraction higher than the champion's and every baseline's",
    )
    # product search (lakehouse.search): the index of the catalogue's current versions
    search_qdrant_url: str | None = Field(
        default=None,
        description="the search index lives on this Qdrant server (e.g. "
        "`http://127.0.0.1:6333`, the compose file's); default: Qdrant's embedded local mode "
        "in <data_dir>/search/qdrant, which one process at a time may open",
    )
    search_qdrant_api_key: SecretStr | None = Field(
        default=None, description="the API key of search_qdrant_url's server, if it asks one"
    )
    # the serving API (`lakehouse api serve`): read-only, keys per scope, models by alias
    api_host: str = Field(
        default="127.0.0.1",
        description="where `lakehouse api serve` listens (0.0.0.0: every interface)",
    )
    api_port: int = Field(default=58000, ge=1, le=65535)
    api_key: SecretStr | None = Field(
        default=None,
        description="the key (or bearer token) that sees the whole business; default: one "
        "generated in <data_dir>/secrets/api.key",
    )
    api_region_keys: dict[
        Annotated[str, StringConstraints(pattern=REGION_NAME_PATTERN)], SecretStr
    ] = Field(
        default_factory=dict,
        description="a key per region that sees only that region's clients; a region of "
        "superset_region_roles with no key here gets one generated in "
        "<data_dir>/secrets/api-<region>.key",
    )
    api_refresh_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how often the API looks for a new publication and moved model aliases "
        "(served without a restart)",
    )
    api_shadow_alias: str | None = Field(
        default=None,
        description="a registry alias (e.g. `challenger`) whose model scores every request "
        "alongside the champion: logged and measured, never returned",
    )
    api_canary_alias: str = Field(
        default="challenger", description="the alias api_canary_share routes requests to"
    )
    api_canary_share: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="the fraction of model requests answered by api_canary_alias's version "
        "(0: none)",
    )
    # insight reports: a narrative from an OpenAI-compatible endpoint, else the template
    llm_base_url: str | None = Field(
        default=None,
        description="an OpenAI-compatible endpoint (vLLM, TGI, llama.cpp's server), e.g. "
        "`http://127.0.0.1:8000/v1`, that writes the reports' narrative from their facts; "
        "unset: the template narrative",
    )
    llm_api_key: SecretStr | None = Field(
        default=None, description="the endpoint's API key, if it asks one"
    )
    llm_model: str = Field(default="default", description="the model name sent to the endpoint")
    llm_timeout_seconds: float = Field(
        default=30.0, gt=0, description="the narrative falls back to the template after this"
    )
    alert_webhook_url: str | None = Field(
        default=None,
        description="POSTed a JSON report when a check fails or publication is blocked, "
        "and when the freshness SLO starts burning its budget, spends it or recovers",
    )
    # Prometheus metrics (lakehouse.metrics, docs/metrics.md): each long-running process
    # serves its own; None: the profile's default (local: off, stack: the port given)
    capture_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="`lakehouse capture` serves its Prometheus metrics here (0: off; "
        "default off on local, 59190 on stack)",
    )
    lander_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="`lakehouse ingest --follow` serves its Prometheus metrics and the "
        "lake's (freshness and files per table, the gate's last run, the SLO) here (0: off; "
        "default off on local, 59191 on stack)",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="where the metrics endpoints listen (0.0.0.0: every interface, for a "
        "Prometheus on another host or container)",
    )
    metrics_port: int = Field(
        default=59192,
        ge=1,
        le=65535,
        description="`lakehouse metrics serve` serves the lake's metrics here",
    )
    # the commit-to-mart freshness SLO (mart_freshness_slo): a minute is good when the
    # served marts' newest source commit is at most slo_freshness_minutes old
    slo_freshness_minutes: int = Field(
        default=60, ge=1, description="the freshness a good minute has at most"
    )
    slo_target: float = Field(
        default=0.99,
        gt=0,
        lt=1,
        description="the share of sampled minutes over slo_window_days that must be good; "
        "1 - slo_target is the error budget",
    )
    slo_window_days: int = Field(
        default=28, ge=1, le=366, description="the SLO's rolling window, in days"
    )
    slo_burn_rate_alert: float = Field(
        default=2.0,
        gt=0,
        description="alert when the latest day spends the error budget this many times "
        "faster than it allows (and once more when the budget is spent)",
    )
    lineage_url: str | None = Field(
        default=None,
        description="an OpenLineage HTTP endpoint (e.g. Marquez, `http://marquez:5000`) that "
        "receives the run events too; they are always written to <data_dir>/lineage/",
    )
    lineage_namespace: str = Field(
        default="lakehouse",
        min_length=1,
        description="the OpenLineage namespace of the pipeline's jobs",
    )

    @field_validator("pii_key")
    @classmethod
    def _long_enough_pii_key(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty or short key would make the PII tokens guessable by brute force."""
        if value is not None and len(value.get_secret_value().strip()) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the PII key must be at least {MIN_SECRET_LENGTH} characters (e.g. `openssl "
                "rand -hex 32`); unset it to have one generated in <data_dir>/secrets/pii.key"
            )
        return value

    @field_validator("api_key")
    @classmethod
    def _long_enough_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"an API key must be at least {MIN_SECRET_LENGTH} characters (e.g. `openssl "
                "rand -hex 32`); unset it to have one generated in <data_dir>/secrets/api.key"
            )
        return value

    @field_validator("api_region_keys")
    @classmethod
    def _long_enough_region_keys(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        short = sorted(r for r, k in value.items() if len(k.get_secret_value().strip()) < 32)
        if short:
            raise ValueError(
                f"the API key of region {', '.join(short)} is shorter than "
                f"{MIN_SECRET_LENGTH} characters (e.g. `openssl rand -hex 32`)"
            )
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        """Two services on one port: the second would fail to start, or (MinIO's API and
        console) refuse to."""
        names = [name for name in type(self).model_fields if name.endswith("_port")]
        by_port: dict[int, list[str]] = {}
        for name in names:
            if getattr(self, name):  # 0 or None: nothing listens
                by_port.setdefault(getattr(self, name), []).append(name)
        clashes = [" and ".join(group) for group in by_port.values() if len(group) > 1]
        if clashes:
            raise ValueError(f"ports must differ: {'; '.join(clashes)} share a port")
        return self

    @model_validator(mode="after")
    def _coverage_band(self) -> Settings:
        if self.forecast_coverage_min >= self.forecast_coverage_max:
            raise ValueError(
                "forecast_coverage_min must be below forecast_coverage_max (the band a "
                "promoted model's interval coverage must fall in)"
            )
        return self

    @model_validator(mode="after")
    def _stack_defaults(self) -> Settings:
        """On the stack profile the lake lives in the object store and change events
        travel through Kafka, unless set otherwise."""
        if self.profile == "stack":
            if self.lake_uri is None:
                self.lake_uri = f"s3://{self.s3_bucket}/lake"
            if self.kafka_bootstrap_servers is None:
                self.kafka_bootstrap_servers = f"127.0.0.1:{self.kafka_port}"
            if self.capture_metrics_port is None:
                self.capture_metrics_port = STACK_CAPTURE_METRICS_PORT
            if self.lander_metrics_port is None:
                self.lander_metrics_port = STACK_LANDER_METRICS_PORT
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path.exists():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    @property
    def root(self) -> Path:
        return self.data_dir.resolve()

    @property
    def changes_path(self) -> Path:
        return (self.changes_dir or self.root / "changes").resolve()

    @property
    def captured_contracts_dir(self) -> Path:
        """Contracts the capture drafts from the live catalog, for tables with no shipped
        contract (``lakehouse.contracts.load_source_contracts`` reads both)."""
        return self.root / "contracts"

    @property
    def ground_truth_path(self) -> Path:
        return self.root / "ground_truth"

    @property
    def lake_root(self) -> str:
        return self.lake_uri or str(self.root / "lake")

    @property
    def lineage_log(self) -> Path:
        """The OpenLineage run events, one JSON line each (``lakehouse lineage`` reads it)."""
        return self.root / "lineage" / "events.jsonl"

    @property
    def stack_dir(self) -> Path:
        """Homes of the stack's services: state, generated configuration and logs."""
        return self.root / "stack"

    @property
    def s3_endpoint_url(self) -> str:
        return self.s3_endpoint or f"http://127.0.0.1:{self.minio_port}"

    def s3_secret(self) -> str:
        if self.s3_secret_key is not None:
            return self.s3_secret_key.get_secret_value()
        return self.generated_secret("s3.key")

    @property
    def lake_storage_options(self) -> dict[str, str]:
        """delta-rs storage options of the lake: on S3 the endpoint, the credentials and
        conditional put (safe concurrent commits, no locking service); the
        ``storage_options`` setting wins over each."""
        options: dict[str, str] = {}
        if self.lake_root.startswith(("s3://", "s3a://")):
            endpoint = self.s3_endpoint_url
            options = {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_REGION": self.s3_region,
                "AWS_ACCESS_KEY_ID": self.s3_access_key,
                "AWS_SECRET_ACCESS_KEY": self.s3_secret(),
                "aws_conditional_put": "etag",
            }
            if endpoint.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        return {**options, **self.storage_options}

    def secret_path(self, name: str) -> Path:
        """Where a generated secret lives: ``<data_dir>/secrets/<name>``."""
        return self.root / "secrets" / name

    def generated_secret(self, name: str) -> str:
        """A random secret created once in ``<data_dir>/secrets/<name>`` (mode 0600), for
        a setting left unset: never a default value shared by every installation."""
        path = self.secret_path(name)
        if not path.exists():
            write_secret_once(path, secrets.token_hex(32))
        value = path.read_text().strip()
        if len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"{path} holds {'no' if not value else 'too short a'} secret (at least "
                f"{MIN_SECRET_LENGTH} characters): restore it from a backup, or delete it "
                "to have a new one generated"
            )
        return value

    def trino_secret(self, user: str | None = None) -> str:
        """The password of ``user`` (default ``trino_user``) on Trino with password
        authentication: the setting for the pipeline's user, else one generated once."""
        user = user or self.trino_user
        if user == self.trino_user and self.trino_password is not None:
            return self.trino_password.get_secret_value()
        return self.generated_secret(f"trino-{user}.password")

    @property
    def trino_certificate(self) -> Path:
        """The certificate (PEM) the stack's Trino serves HTTPS with, which its clients
        verify it against (trino_authentication password); written by the server."""
        return self.secret_path("trino-tls.crt")

    @property
    def trino_http_scheme(self) -> str:
        return "https" if self.trino_authentication == "password" else "http"

    def region_user(self, region: str) -> str:
        """The user who sees only ``region`` (in Superset, and in Trino through it)."""
        return f"{region}_analyst"

    def oltp_secret(self) -> str:
        """``oltp_user``'s password: the setting, else (the project's own cluster) one
        generated once, never a password shared by every installation."""
        if self.oltp_password is not None:
            return self.oltp_password.get_secret_value()
        if not self.oltp_managed:
            raise ConfigError(
                "oltp_password is not set: an external database (oltp_managed false) needs "
                f"the password of oltp_user {self.oltp_user!r} in LAKEHOUSE_OLTP_PASSWORD "
                f"(or oltp_password in {_config_file()})"
            )
        return self.generated_secret("oltp.password")

    def superset_admin_secret(self) -> str:
        if self.superset_admin_password is not None:
            return self.superset_admin_password.get_secret_value()
        return self.generated_secret("superset-admin.password")

    def superset_key(self) -> str:
        if self.superset_secret_key is not None:
            return self.superset_secret_key.get_secret_value()
        return self.generated_secret("superset.key")

    def api_secret(self) -> str:
        """The whole business's API key: the setting, else one generated once."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return self.generated_secret("api.key")

    def api_region_secrets(self) -> dict[str, str]:
        """Each region's API key: api_region_keys, else one generated once per region of
        superset_region_roles."""
        keys = {r: k.get_secret_value() for r, k in self.api_region_keys.items()}
        for region in self.superset_region_roles:
            if region not in keys:
                keys[region] = self.generated_secret(f"api-{region}.key")
        return keys

    @property
    def reports_dir(self) -> Path:
        """Insight reports: ``<scope>/<week>/report.html`` and ``report.pdf``."""
        return self.root / "reports"

    def table_uri(self, layer: str, table: str) -> str:
        """URI of a Delta table in the lake, e.g. ``table_uri("silver", "client")``."""
        return f"{self.lake_root.rstrip('/')}/{layer}/{table}"

    @property
    def warehouse(self) -> Path:
        return (self.warehouse_path or self.root / "warehouse.duckdb").resolve()

    @property
    def published_warehouse(self) -> Path:
        """The published marts on the local profile: a DuckDB file that is replaced whole
        (rename) on each publication and that no writer ever holds open."""
        return self.root / "published" / "lakehouse.duckdb"

    def published_region(self, region: str) -> Path:
        """A region's published marts on the local profile: only its rows of the marts
        with a region column, replaced whole like :attr:`published_warehouse`."""
        return self.published_regions_dir / f"{region}.duckdb"

    @property
    def published_regions_dir(self) -> Path:
        return self.root / "published" / "regions"

    @property
    def mlflow_dir(self) -> Path:
        """The local MLflow store: ``mlflow.db`` and ``artifacts/``."""
        return self.root / "mlflow"

    @property
    def mlflow_uri(self) -> str:
        """Where MLflow tracks runs and keeps the registry: the setting, else a SQLite file
        under the data directory (local) or the stack's server."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        if self.profile == "stack":
            return f"http://127.0.0.1:{self.mlflow_port}"
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifacts_uri(self) -> str:
        """Artefact root of the experiments this project creates on a SQLite store (without
        it MLflow writes ``./mlruns`` of whatever the working directory is)."""
        return (self.mlflow_dir / "artifacts").as_uri()

    @property
    def features_dir(self) -> Path:
        """Feast's files: the feature tables exported as Parquet (its offline store reads
        them), its registry and its SQLite online store."""
        return self.root / "features"

    @property
    def search_dir(self) -> Path:
        """The search index's local files: Qdrant's local-mode storage (``qdrant/``)."""
        return self.root / "search"

    @property
    def docs_dir(self) -> Path:
        """Static sites: ``gx/`` (Great Expectations Data Docs) and ``dbt/`` (dbt docs)."""
        return self.root / "docs"

    def dbt_vars(self) -> dict[str, object]:
        """``--vars`` for dbt: the freshness SLAs of the sources (dbt has no "never" for a
        threshold, so an unset one is a century) and the freshness SLO."""
        never = 100 * 365 * 24 * 60
        return {
            "freshness_warn_after_minutes": self.freshness_warn_after_minutes or never,
            "freshness_error_after_minutes": self.freshness_error_after_minutes or never,
            "slo_freshness_minutes": self.slo_freshness_minutes,
            "slo_target": self.slo_target,
            "slo_window_days": self.slo_window_days,
            "slo_burn_rate_alert": self.slo_burn_rate_alert,
        }

    @property
    def dbt_target(self) -> str:
        if self.profile == "local":
            return "local"
        return "trino_password" if self.trino_authentication == "password" else "trino"

    @cached_property
    def topic_schema(self) -> str:
        return "public"

    def topic(self, table: str, schema: str = "public") -> str:
        """Debezium topic name of a source table: ``<prefix>.<schema>.<table>``."""
        return f"{self.topic_prefix}.{schema}.{table}"

    def dbt_env(self) -> dict[str, str]:
        """Environment variables read by ``dbt_project/profiles.yml`` through ``env_var()``."""
        return {
            "LAKEHOUSE_LAKE_URI": self.lake_root,
            "LAKEHOUSE_WAREHOUSE_PATH": str(self.warehouse),
            "LAKEHOUSE_DBT_THREADS": str(self.dbt_threads),
            "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
            "LAKEHOUSE_TRINO_HOST": self.trino_host,
            "LAKEHOUSE_TRINO_PORT": str(self.trino_port),
            "LAKEHOUSE_TRINO_CATALOG": self.trino_catalog,
            "LAKEHOUSE_TRINO_USER": self.trino_user,
            **(
                {
                    "LAKEHOUSE_TRINO_PASSWORD": self.trino_secret(),
                    "LAKEHOUSE_TRINO_CERTIFICATE": str(self.trino_certificate),
                    # requests lets this variable win over the profile's `cert`
                    "REQUESTS_CA_BUNDLE": str(self.trino_certificate),
                }
                if self.trino_authentication == "password"
                else {}
            ),
        }

    def prefect_env(self) -> dict[str, str]:
        """Prefect keeps its own state (SQLite, logs) under the data directory."""
        return {
            "PREFECT_HOME": str(self.root / "prefect"),
            # the in-process server would try to send usage telemetry: no network here
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # the in-process server starts in seconds, but much later on a busy machine
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        }


def write_secret_once(path: Path, text: str) -> None:
    """``text`` as the file ``path`` (mode 0600, its directory 0700), unless it exists.

    Written whole to a temporary file, then linked into place: a crash never leaves an
    empty or half-written secret, and of two processes creating it at once the second
    keeps the first one's instead of replacing it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first:
            os.link(partial, path)  # keep theirs
    finally:
        os.unlink(partial)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one readable line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if not where:  # a rule across settings
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"invalid settings: {message} (check {_config_file()})") from None
        raise ConfigError(
            f"invalid setting {where!r}: {first['msg']} "
            f"(check LAKEHOUSE_{where.upper()} or {_config_file()})"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{_config_file()} is not valid YAML: {exc}") from None
