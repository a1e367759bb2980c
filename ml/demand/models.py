"""The forecasters: baselines and statistical candidates (statsforecast) fitted in one
call, and a global gradient-boosted model (mlforecast + LightGBM) on the exogenous
columns.

Each is fitted on a history and then forecasts from a history (the same, or a newer one
at scoring) and the future exogenous frame known at the origin. A forecaster's
``predict`` returns ``unique_id, ds`` and one column per model it holds, never below 0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from lakehouse.exceptions import ForecastError
from ml.demand.panel import DS, FREQ, ID, Y, exogenous_columns

SEASONAL_NAIVE = "seasonal_naive"
MEAN_LAST_4 = "mean_last_4"
BASELINES = (SEASONAL_NAIVE, MEAN_LAST_4)
SEASON = 52  # weeks: the same ISO week a year before (53-week years shift it by one)


class Forecaster(Protocol):
    """Fitted on a history, forecasts the weeks of ``future`` from a history."""

    names: tuple[str, ...]

    def fit(self, history: pd.DataFrame) -> Forecaster: ...

    def predict(self, history: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame: ...


@dataclass
class StatisticalFamily:
    """The two baselines (seasonal naive at lag 52, the mean of the last 4 weeks) and the
    cheap local models, in one StatsForecast call per history, as Nixtla fits them.

    Local models are re-estimated on each series' history when they forecast: ``fit``
    keeps nothing. Seasonal naive has no value for a series younger than a year; there
    it takes the mean of the last 4 weeks (the only baseline a new product has)."""

    candidates: tuple[str, ...] = ("AutoETS", "DynamicOptimizedTheta", "CrostonOptimized", "ADIDA")
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.names = (*BASELINES, *self.candidates)

    def fit(self, history: pd.DataFrame) -> StatisticalFamily:
        return self

    def predict(self, history: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame:
        from statsforecast import StatsForecast  # a second to import: train/score only
        from statsforecast.models import (
            ADIDA,
            AutoETS,
            AutoTheta,
            CrostonOptimized,
            DynamicOptimizedTheta,
            Naive,
            SeasonalNaive,
            WindowAverage,
        )

        available: dict[str, Any] = {
            "AutoETS": AutoETS(season_length=1),  # ETS refuses a 52-week season
            "AutoTheta": AutoTheta(season_length=SEASON),
            # the best of AutoTheta's four variants here, at a third of its cost (all four)
            "DynamicOptimizedTheta": DynamicOptimizedTheta(season_length=SEASON),
            "CrostonOptimized": CrostonOptimized(),
            "ADIDA": ADIDA(),
        }
        models = [
            SeasonalNaive(season_length=SEASON, alias=SEASONAL_NAIVE),
            WindowAverage(window_size=4, alias=MEAN_LAST_4),
            *(available[name] for name in self.candidates),
        ]
        horizon = int(future.groupby(ID).size().max())
        sf = StatsForecast(models=models, freq=FREQ, fallback_model=Naive(), n_jobs=1)
        with warnings.catch_warnings():  # seasonal naive on a young series: handled below
            warnings.simplefilter("ignore", UserWarning)
            out = sf.forecast(df=history[[ID, DS, Y]], h=horizon)
        out[SEASONAL_NAIVE] = out[SEASONAL_NAIVE].fillna(out[MEAN_LAST_4])
        out = future[[ID, DS]].merge(out, on=[ID, DS], how="left")
        out[list(self.names)] = out[list(self.names)].clip(lower=0)
        return out


@dataclass
class GlobalBoosted:
    """One LightGBM model over every series (mlforecast): lags up to a year, rolling
    means, the exogenous columns as known at the origin and the calendar; a Tweedie
    objective for counts with many zeros. Forecasts recursively over the horizon."""

    name: str = "lightgbm"
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 20
    tweedie_variance_power: float = 1.2
    lags: tuple[int, ...] = (1, 2, 3, 4, SEASON)
    windows: tuple[int, ...] = (4, 8, 13, 26, SEASON)
    seed: int = 0
    names: tuple[str, ...] = field(init=False)
    _model: Any = field(default=None, init=False, repr=False)
    _exog: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.names = (self.name,)

    def params(self) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "tweedie_variance_power": self.tweedie_variance_power,
            "lags": list(self.lags),
            "windows": list(self.windows),
        }

    def fit(self, history: pd.DataFrame) -> GlobalBoosted:
        import lightgbm as lgb  # seconds to import: train/score only
        from mlforecast import MLForecast
        from mlforecast.lag_transforms import ExpandingMean, RollingMean

        regressor = lgb.LGBMRegressor(
            objective="tweedie",
            tweedie_variance_power=self.tweedie_variance_power,
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            random_state=self.seed,
            n_jobs=1,
            verbosity=-1,
        )
        transforms: dict[int, list[Any]] = {
            1: [RollingMean(window_size=w) for w in self.windows] + [ExpandingMean()],
            SEASON - 2: [RollingMean(window_size=5)],  # the season a year before
        }
        self._model = MLForecast(
            models={self.name: regressor},
            freq=FREQ,
            lags=list(self.lags),
            lag_transforms=transforms,
            date_features=["month"],
            num_threads=1,
        )
        self._exog = exogenous_columns(history)
        # keep rows whose long lags are unknown yet: LightGBM splits on missing values
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Found null values", UserWarning)
            self._model.fit(history[[ID, DS, Y, *self._exog]], static_features=[], dropna=False)
        return self

    def predict(self, history: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame:
        out = self._recursive(history, future)
        out = future[[ID, DS]].merge(out, on=[ID, DS], how="left")
        out[self.name] = np.clip(out[self.name], 0, None)
        return out

    def _recursive(
        self, history: pd.DataFrame, future: pd.DataFrame, seen: Any = None
    ) -> pd.DataFrame:
        """mlforecast's recursive forecast; ``seen`` receives each step's feature frame."""
        horizon = int(future.groupby(ID).size().max())
        columns = [ID, DS, *self._exog]
        with warnings.catch_warnings():  # missing long lags of young series, as in fit
            warnings.filterwarnings("ignore", "Found null values", UserWarning)
            out: pd.DataFrame = self._model.predict(
                h=horizon,
                new_df=history[[ID, DS, Y, *self._exog]],
                X_df=future[columns],
                before_predict_callback=seen,
            )
        return out

    def contributions(self, history: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame:
        """LightGBM's own contributions (``pred_contrib``) to each forecast of
        :meth:`predict`: ``unique_id, ds, feature, value, contribution``, one row per
        feature plus ``bias``. Tweedie works on the log scale: bias plus the features'
        contributions is the log of the point forecast (checked here)."""
        steps: list[pd.DataFrame] = []

        def seen(features: pd.DataFrame) -> pd.DataFrame:
            steps.append(features.copy())
            return features

        out = self._recursive(history, future, seen).sort_values([ID, DS], kind="stable")
        step = out.groupby(ID).cumcount().to_numpy()
        regressor = self._model.models_[self.name]
        parts = []
        for k, features in enumerate(steps):
            rows = out[step == k]
            contrib = regressor.predict(features, pred_contrib=True)
            if not np.allclose(np.exp(contrib.sum(axis=1)), rows[self.name], rtol=1e-6):
                raise ForecastError("LightGBM's contributions do not add up to its forecast")
            names = [*features.columns, "bias"]
            values = np.column_stack([features.to_numpy(dtype=float), np.full(len(rows), np.nan)])
            parts.append(
                pd.DataFrame(
                    {
                        ID: np.repeat(rows[ID].to_numpy(), len(names)),
                        DS: np.repeat(rows[DS].to_numpy(), len(names)),
                        "feature": np.tile(names, len(rows)),
                        "value": values.ravel(),
                        "contribution": contrib.ravel(),
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)
