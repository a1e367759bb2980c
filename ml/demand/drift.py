"""Drift of the demand model's inputs: the population stability index (PSI) of each
feature and of the target, between the weeks the champion was trained on and the latest
weeks, computed by Evidently (``ValueDrift`` with ``method="psi"``). Calendar columns are
left out: the latest weeks are a few weeks of the year by construction.

The rule of thumb the thresholds follow: below 0.1 nothing moved, above 0.2 the
distribution moved enough to look at (an alert), above 0.3 the model should be trained
again on the new weeks (``drift_alert_psi``, ``drift_retrain_psi``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import pandas as pd

from lakehouse.settings import Settings
from ml.demand.panel import DS, WEEK, Y, exogenous_columns

REFERENCE_WEEKS = 52  # the training window: the year up to the champion's last week
CURRENT_WEEKS = 8  # the latest weeks, as many as the horizon
# the calendar is not an input that drifts: 8 weeks never hold a year's weeks
CALENDAR = ("week_of_year", "holiday_days")


@dataclass(frozen=True)
class Drift:
    psi: pd.Series  # feature -> PSI (the target is the feature "units")
    reference: tuple[pd.Timestamp, pd.Timestamp]  # first and last week
    current: tuple[pd.Timestamp, pd.Timestamp]

    def status(self, settings: Settings) -> pd.Series:
        """ok, alert or retrain per feature."""
        return self.psi.map(
            lambda value: (
                "retrain"
                if value > settings.drift_retrain_psi
                else "alert"
                if value > settings.drift_alert_psi
                else "ok"
            )
        )

    @property
    def worst(self) -> tuple[str, float]:
        feature = str(self.psi.idxmax())
        return feature, float(self.psi[feature])


def measure(panel: pd.DataFrame, trained_through: pd.Timestamp) -> Drift:
    """PSI of every column of the panel (target and exogenous) between the
    ``REFERENCE_WEEKS`` up to ``trained_through`` and the last ``CURRENT_WEEKS``."""
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently's telemetry: never, here
    with warnings.catch_warnings():  # Evidently's own use of numpy.core and litestar
        warnings.simplefilter("ignore", DeprecationWarning)
        from evidently import Report
        from evidently.metrics import ValueDrift

    reference_start = trained_through - (REFERENCE_WEEKS - 1) * WEEK
    last = panel[DS].max()
    current_start = last - (CURRENT_WEEKS - 1) * WEEK
    columns = [Y, *(c for c in exogenous_columns(panel) if c not in CALENDAR)]
    reference = panel.loc[panel[DS].between(reference_start, trained_through), columns]
    current = panel.loc[panel[DS] >= current_start, columns]
    report = Report([ValueDrift(column=c, method="psi") for c in columns])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = report.run(current_data=current, reference_data=reference).dict()
    values = [float(metric["value"]) for metric in result["metrics"]]
    names = ["units" if c == Y else c for c in columns]
    return Drift(
        psi=pd.Series(values, index=names, name="psi"),
        reference=(reference_start, trained_through),
        current=(current_start, last),
    )
