"""What the forecast endpoint serves from memory: every product's weeks ahead from one
version of ``demand_forecast``, and the feature contributions of those forecasts when
the model has its own, computed when the version (or a new publication) is loaded.

Why compute rather than read ``mart_demand_forecast``: the mart holds the champion's
forecast as of the last scoring run only, while the API also serves a canary's and a
shadow's version and a champion promoted since; so each loaded version forecasts the
same input the scoring job builds (the feature store's panel up to the last complete
week, and the future known at that origin). For the champion the answer equals the
mart's when the mart was scored on the same publication (the tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from lakehouse.api.registry import product_names
from lakehouse.exceptions import ForecastError
from lakehouse.settings import Settings
from ml import tracking
from ml.demand.backtest import FORECAST
from ml.demand.dataset import AnnouncedFuture, load_panel
from ml.demand.intervals import LOWER, UPPER
from ml.demand.panel import DS, ID, validate_panel
from ml.demand.served import model_input

BIAS = "bias"


@dataclass(frozen=True)
class Inputs:
    """The served model's input frame for every product, read once per publication."""

    frame: pd.DataFrame
    products: dict[int, tuple[str, str]]  # product_id -> current name, category


@dataclass(frozen=True)
class Week:
    week_start_date: date
    forecast: float
    lower_80: float
    upper_80: float


@dataclass(frozen=True)
class Contribution:
    feature: str
    value: float | None  # the feature's value in that forecast (None: the bias)
    contribution: float  # on the model's log scale: exp(bias + all) is the forecast


@dataclass(frozen=True)
class WeekExplanation:
    week_start_date: date
    bias: float
    contributions: tuple[Contribution, ...]  # every feature, largest |contribution| first


@dataclass(frozen=True)
class ProductForecast:
    product_name: str
    category: str
    weeks: tuple[Week, ...]
    explanation: tuple[WeekExplanation, ...] | None


@dataclass(frozen=True)
class Answers:
    model_name: str  # the algorithm the version serves (e.g. lightgbm, category_seasonal)
    by_product: dict[int, ProductForecast]
    no_contributions: str | None  # why ?explain cannot be answered by this version


def read(settings: Settings) -> Inputs:
    """The panel from the feature store (point in time) and the future announced at its
    last week: the scoring job's input."""
    dataset = load_panel(settings)
    panel = validate_panel(dataset.panel)
    origin = panel[DS].max()
    future = AnnouncedFuture(settings, dataset.categories)(origin, panel)
    return Inputs(frame=model_input(panel, future), products=product_names(settings))


def prepare(settings: Settings, loaded: tracking.Loaded, inputs: Inputs) -> Answers:
    predicted = loaded.predict(inputs.frame)
    model_name = tracking.run_params(settings, loaded.run_id).get("chosen_model", "unknown")
    weeks: dict[int, list[Week]] = {}
    predicted = predicted.sort_values([ID, DS])
    for pid, ds, point, lower, upper in zip(
        predicted[ID].astype("int64").tolist(),
        pd.to_datetime(predicted[DS]).dt.date.tolist(),
        predicted[FORECAST].astype(float).tolist(),
        predicted[LOWER].astype(float).tolist(),
        predicted[UPPER].astype(float).tolist(),
        strict=True,
    ):
        weeks.setdefault(pid, []).append(Week(ds, point, lower, upper))
    no_contributions = None
    try:
        contributions = _contributions(loaded, inputs.frame)
    except ForecastError as exc:  # the forecasts are served all the same
        contributions, no_contributions = None, f"{model_name} (version {loaded.version}): {exc}"
    if contributions is None and no_contributions is None:
        no_contributions = (
            f"{model_name} (version {loaded.version}) is a local statistical model: it "
            "has no feature contributions (they exist for the LightGBM model)"
        )
    by_product = {
        pid: ProductForecast(
            *inputs.products.get(pid, ("", "")),
            tuple(w),
            None if contributions is None else contributions[pid],
        )
        for pid, w in weeks.items()
    }
    return Answers(model_name, by_product, no_contributions)


def _contributions(
    loaded: tracking.Loaded, frame: pd.DataFrame
) -> dict[int, tuple[WeekExplanation, ...]] | None:
    contribute = getattr(loaded.wrapped, "contributions", None)
    found = None if contribute is None else contribute(frame)
    if found is None:
        return None
    found = found.assign(
        _size=found["contribution"].abs(), _bias=found["feature"] == BIAS
    ).sort_values([ID, DS, "_bias", "_size"], ascending=[True, True, True, False])
    out: dict[int, list[WeekExplanation]] = {}
    for (pid, ds), rows in found.groupby([ID, DS], sort=True):
        bias = float(rows.loc[rows["_bias"], "contribution"].sum())
        features = rows[~rows["_bias"]]
        values = features["value"].to_numpy(dtype=float)
        out.setdefault(int(pid), []).append(
            WeekExplanation(
                pd.Timestamp(ds).date(),
                bias,
                tuple(
                    Contribution(str(f), None if np.isnan(v) else float(v), float(c))
                    for f, v, c in zip(
                        features["feature"], values, features["contribution"], strict=True
                    )
                ),
            )
        )
    return {pid: tuple(weeks) for pid, weeks in out.items()}


def agreement(served: tuple[Week, ...], shadow: tuple[Week, ...]) -> float:
    """1 - the relative absolute difference of the weeks' totals (0 at worst)."""
    mine = sum(w.forecast for w in served)
    theirs = sum(w.forecast for w in shadow)
    if mine == theirs:
        return 1.0
    return max(0.0, 1.0 - abs(mine - theirs) / max(mine, theirs))
