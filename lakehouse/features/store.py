"""Feast, entered here only: the feature repository ``feature_repo/`` applied,
materialized and read with the settings.

The repository is a plain Feast one (``cd feature_repo && feast apply`` works); what it
needs from the settings reaches it as environment variables that ``feature_store*.yaml``
(``${VAR}``, which Feast expands) and the definitions read: the data directory, absolute,
and on ``stack`` Redis's address (``LAKEHOUSE_REDIS_CONNECTION``). Feast loads in about
9 s: it is imported in the functions.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import FeatureStoreError
from lakehouse.features.export import export
from lakehouse.progress import Progress
from lakehouse.settings import PROJECT_DIR, Settings

if TYPE_CHECKING:
    import pandas as pd

FEATURE_REPO_DIR = PROJECT_DIR / "feature_repo"
CONFIG_FILES = {"local": "feature_store.yaml", "stack": "feature_store.stack.yaml"}
# importing Feast (feast.metrics, for its own gunicorn feature server) sets these for the
# whole process; left set, every prometheus_client exporter in it (the API's /metrics)
# reads an empty multiprocess directory instead of the process's metrics
_PROMETHEUS_ENV = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def _import_feast() -> None:
    """Import Feast, taking back the Prometheus variables its import set."""
    before = {name: os.environ.get(name) for name in _PROMETHEUS_ENV}
    import feast  # noqa: F401

    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)


def feast_env(settings: Settings) -> dict[str, str]:
    """The variables the feature repository reads (its yaml and its definitions)."""
    return {
        "LAKEHOUSE_DATA_DIR": str(settings.root),
        "LAKEHOUSE_REDIS_CONNECTION": redis_connection(settings),
    }


def redis_connection(settings: Settings) -> str:
    """Feast's Redis connection string: ``host:port``, and ``,password=...`` if any."""
    connection = f"{settings.redis_host}:{settings.redis_port}"
    if settings.redis_password is not None:
        connection += f",password={settings.redis_password.get_secret_value()}"
    return connection


def config_file(settings: Settings) -> Path:
    """The profile's ``feature_store.yaml``: SQLite online on ``local``, Redis on ``stack``."""
    return FEATURE_REPO_DIR / CONFIG_FILES[settings.profile]


@contextlib.contextmanager
def _environment(settings: Settings) -> Iterator[None]:
    """The repository's variables set for the block, and the working directory kept
    (Feast's apply changes into the repository)."""
    saved = {name: os.environ.get(name) for name in feast_env(settings)}
    cwd = Path.cwd()
    os.environ.update(feast_env(settings))
    try:
        yield
    finally:
        os.chdir(cwd)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def feature_store(settings: Settings) -> Iterator[Any]:
    """Feast's ``FeatureStore`` on the repository, configured by the settings."""
    _import_feast()
    from feast import FeatureStore

    with _environment(settings):
        yield FeatureStore(repo_path=str(FEATURE_REPO_DIR), fs_yaml_file=config_file(settings))


def _forget_definitions() -> None:
    """Drop the repository's modules from ``sys.modules``: Feast imports them to apply,
    and an import is cached per process, with the data directory of the first apply in
    the paths of its sources. Applied again with other settings, they are read again."""
    repo = str(FEATURE_REPO_DIR.resolve())
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path and str(Path(path).resolve()).startswith(repo + os.sep):
            del sys.modules[name]


def apply(settings: Settings, progress: Progress | None = None) -> dict[str, int]:
    """Export the published feature tables, then ``feast apply`` the repository (Feast's
    own apply: registry, and the online store's tables). Returns the exported rows."""
    exported = export(settings, progress)
    _import_feast()
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total, cli_check_repo

    task = progress.add_task("feast apply", total=1) if progress else 0
    with _environment(settings):
        _forget_definitions()
        config = load_repo_config(FEATURE_REPO_DIR, config_file(settings))
        try:  # what `feast apply` runs
            cli_check_repo(FEATURE_REPO_DIR, config_file(settings))
            apply_total(config, FEATURE_REPO_DIR, skip_source_validation=False)
        except SystemExit as exc:  # Feast's CLI functions exit on a bad repository
            raise FeatureStoreError(
                f"feast apply failed on {FEATURE_REPO_DIR} (exit {exc.code}): see its output"
            ) from None
    if progress is not None:
        progress.advance(task)
    return exported


def materialize(
    settings: Settings,
    end: datetime | None = None,
    progress: Progress | None = None,
    *,
    start: datetime | None = None,
    export_first: bool = True,
) -> dict[str, int]:
    """Export the published feature tables again (unless ``export_first`` is False: an
    apply just did), then load the online store with each
    entity's latest values up to ``end`` (default now): Feast's materialize-incremental,
    or its materialize from ``start`` when given. The first incremental run starts at
    ``end`` minus each view's TTL: rows older than that (a demo's history) need
    ``start``."""
    exported = export(settings, progress) if export_first else {}
    task = progress.add_task("feast materialize", total=1) if progress else 0
    until = end or datetime.now(UTC)
    with feature_store(settings) as store:
        if not store.list_feature_views():
            raise FeatureStoreError("no feature views registered: run `lakehouse features apply`")
        if start is None:
            store.materialize_incremental(end_date=until)
        else:
            store.materialize(start_date=start, end_date=until)
    if progress is not None:
        progress.advance(task)
    return exported


def historical_features(
    settings: Settings, entity_df: pd.DataFrame, service_name: str
) -> pd.DataFrame:
    """A training set: the features of the feature service ``service_name`` for each row
    of ``entity_df`` (its entity keys and an ``event_timestamp``), as known at that time.

    Feast's point-in-time join: a feature row counts for an entity row only when its own
    ``event_timestamp`` is at or before the entity row's and within the view's TTL. This
    is the only way training sets are built: a join on current values leaks the future."""
    with feature_store(settings) as store:
        try:
            service = store.get_feature_service(service_name)
        except Exception as exc:  # Feast raises its own not-found errors
            known = ", ".join(sorted(s.name for s in store.list_feature_services()))
            raise FeatureStoreError(
                f"no feature service {service_name!r} (known: {known or 'none'}): "
                "run `lakehouse features apply`"
            ) from exc
        job = store.get_historical_features(entity_df=entity_df, features=service)
        frame: pd.DataFrame = job.to_df()
        return frame


def online_features(
    settings: Settings, entity_rows: list[dict[str, Any]], service_name: str
) -> dict[str, list[Any]]:
    """The latest materialized features of ``service_name`` for ``entity_rows``."""
    with feature_store(settings) as store:
        service = store.get_feature_service(service_name)
        found: dict[str, list[Any]] = store.get_online_features(
            features=service, entity_rows=entity_rows
        ).to_dict()
        return found
