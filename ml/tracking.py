"""MLflow, the one module that imports it: runs, artefacts, the registry and its aliases.

On ``local`` the store is a SQLite file under the data directory and artefacts go to
``<data_dir>/mlflow/artifacts`` (the experiment's artefact location; without it MLflow
writes ``./mlruns`` of the working directory); on ``stack`` the MLflow server. One
writer at a time on SQLite (concurrent writers get "database is locked").

Models are pyfuncs wrapping a plain Python callable (frame in, frame out), so only this
module knows MLflow's model classes; they are loaded by alias, never by path.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

from lakehouse.exceptions import ForecastError
from lakehouse.settings import Settings

Predictor = Callable[[pd.DataFrame], pd.DataFrame]
CHAMPION = "champion"
# what a served model needs beyond the standard library (pinned as installed here)
_REQUIREMENTS = ("pandas", "numpy", "lightgbm", "mlforecast", "statsforecast")


class _Pyfunc(PythonModel):  # type: ignore[misc]
    """Serves a plain ``frame -> frame`` callable as an MLflow pyfunc."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.predictor(model_input)


def client(settings: Settings) -> MlflowClient:
    """A client on the settings' tracking and registry store (created if need be). MLflow
    speaks only of what goes wrong: its progress bars and notices (store migrations,
    CloudPickle, pip's version) would drown the pipeline's own progress."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    uri = settings.mlflow_uri
    if uri.startswith("sqlite:"):
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(settings: Settings, name: str) -> str:
    found = client(settings).get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    local = settings.mlflow_uri.startswith("sqlite:")
    location = f"{settings.mlflow_artifacts_uri}/{name}" if local else None
    return str(mlflow.create_experiment(name, artifact_location=location))


@dataclass
class Run:
    """The active MLflow run of a training job: what it logs goes to this run."""

    run_id: str

    def params(self, values: Mapping[str, Any]) -> None:
        mlflow.log_params({k: _short(v) for k, v in values.items()})

    def metrics(self, values: Mapping[str, float]) -> None:
        mlflow.log_metrics({k: float(v) for k, v in values.items()})

    def tags(self, values: Mapping[str, str]) -> None:
        mlflow.set_tags(dict(values))

    def json(self, name: str, value: Any) -> None:
        mlflow.log_dict(value, name)

    def figure(self, name: str, figure: Figure) -> None:
        mlflow.log_figure(figure, name)
        plt.close(figure)

    def table(self, name: str, frame: pd.DataFrame) -> None:
        """A frame as a Parquet artefact ``name``."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(name).name
            frame.to_parquet(path, index=False)
            parent = str(Path(name).parent)
            mlflow.log_artifact(str(path), None if parent == "." else parent)

    def model(self, name: str, predictor: Predictor, example: pd.DataFrame) -> str:
        """Log ``predictor`` as a pyfunc with a signature inferred from ``example`` and
        its output; returns the model's URI."""
        with warnings.catch_warnings():
            # MLflow's hint that integer columns cannot hold missing values: the series
            # key never is missing, and the float columns are floats already
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            signature = infer_signature(example, predictor(example))
            info = self._log_model(name, predictor, signature, example)
        return str(info.model_uri)

    @staticmethod
    def _log_model(name: str, predictor: Predictor, signature: Any, example: pd.DataFrame) -> Any:
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=_Pyfunc(predictor),
            signature=signature,
            input_example=example,
            pip_requirements=[f"{p}=={version(p)}" for p in _REQUIREMENTS],
        )


def _short(value: Any) -> str:
    """MLflow caps a parameter's value at 6000 characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


@contextmanager
def run(settings: Settings, experiment: str, name: str) -> Iterator[Run]:
    """An MLflow run in ``experiment`` (created on first use)."""
    experiment_id = _experiment_id(settings, experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=name) as active:
        yield Run(active.info.run_id)


def register(settings: Settings, model_uri: str, name: str, run_id: str) -> ModelVersion:
    """A new version of registered model ``name`` from a logged model."""
    mlflow_client = client(settings)
    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        mlflow_client.create_registered_model(name)
    return mlflow_client.create_model_version(name, model_uri, run_id=run_id)


def champion(settings: Settings, name: str) -> ModelVersion | None:
    """The version the ``champion`` alias points at, or None before the first."""
    return by_alias(settings, name, CHAMPION)


def by_alias(settings: Settings, name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` of registered model ``name`` points at, or None (no such
    model or alias)."""
    try:
        return client(settings).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def aliases(settings: Settings, name: str) -> dict[str, str]:
    """Every alias of registered model ``name`` and the version it points at, in one
    registry call (empty when there is no such model)."""
    try:
        found = client(settings).get_registered_model(name)
    except MlflowException:
        return {}
    return {str(alias): str(version) for alias, version in (found.aliases or {}).items()}


def set_alias(settings: Settings, name: str, alias: str, version: str) -> None:
    """Point ``alias`` at ``version`` (``promote`` for any alias: a challenger, a shadow)."""
    client(settings).set_registered_model_alias(name, alias, version)


def delete_alias(settings: Settings, name: str, alias: str) -> None:
    client(settings).delete_registered_model_alias(name, alias)


def copy_version(settings: Settings, name: str, version: str) -> ModelVersion:
    """A new version of ``name`` with the artefact and run of ``version``: the same model
    registered again (a rollback to it, or a redeployment, under a new number)."""
    mlflow_client = client(settings)
    source = mlflow_client.get_model_version(name, version)
    return mlflow_client.create_model_version(name, str(source.source), run_id=source.run_id)


def run_metrics(settings: Settings, run_id: str) -> dict[str, float]:
    return dict(client(settings).get_run(run_id).data.metrics)


def run_params(settings: Settings, run_id: str) -> dict[str, str]:
    return dict(client(settings).get_run(run_id).data.params)


def promote(settings: Settings, name: str, version: str) -> None:
    client(settings).set_registered_model_alias(name, CHAMPION, version)


def tag(settings: Settings, name: str, version: str, run_id: str, tags: Mapping[str, str]) -> None:
    """The same tags on a model version and on the run that made it."""
    mlflow_client = client(settings)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, version, key, value)
        mlflow_client.set_tag(run_id, key, value)


@dataclass(frozen=True)
class Loaded:
    """A registered model loaded by alias, with the version and run it came from.
    ``wrapped``: the plain callable the pyfunc serves (e.g. a ``DemandModel``), for what
    ``predict`` cannot give, such as a forecast's feature contributions."""

    predict: Predictor
    version: str
    run_id: str
    wrapped: Any = None


def load_champion(settings: Settings, name: str) -> Loaded:
    """``models:/<name>@champion``, resolved now: a moved alias is picked up at once."""
    current = champion(settings, name)
    if current is None:
        raise ForecastError(
            f"registered model {name!r} has no {CHAMPION!r} yet: train one that passes "
            "the promotion gate first"
        )
    return load_version(settings, name, str(current.version))


def load_version(settings: Settings, name: str, version: str) -> Loaded:
    """Version ``version`` of ``name``: the serving API resolves an alias first, then
    loads the version it found, so a moving alias cannot mix two versions."""
    client(settings)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    found = client(settings).get_model_version(name, version)
    wrapped = model.unwrap_python_model()
    predictor = wrapped.predictor if isinstance(wrapped, _Pyfunc) else None
    return Loaded(model.predict, str(found.version), str(found.run_id), predictor)


def artifact_table(settings: Settings, run_id: str, name: str) -> pd.DataFrame:
    """A Parquet artefact of a run, as a frame."""
    client(settings)
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, dst_path=tmp)
        return pd.read_parquet(path)


def artifact_json(settings: Settings, run_id: str, name: str) -> Any | None:
    """A JSON artefact of a run, or None when the run has none by that name."""
    client(settings)
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{name}")
    except (MlflowException, OSError):
        return None
