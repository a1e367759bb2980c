"""Drift of the demand model's inputs: the PSI (Evidently) of a feature that did not move
stays low, one that moved passes the retrain threshold, and scoring turns that into an
alert and a retrain signal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lakehouse.settings import load_settings
from ml.demand import drift
from ml.demand.panel import DS, ID, Y


def _panel(shift_last_weeks: float) -> pd.DataFrame:
    """60 series x 80 weeks of Poisson units and a price; the last 8 weeks' units times
    ``shift_last_weeks``."""
    rng = np.random.default_rng(5)
    weeks = pd.date_range("2024-01-01", periods=80, freq="W-MON")
    frames = []
    for uid in range(60):
        level = rng.uniform(5, 40)
        scale = np.where(np.arange(80) >= 72, shift_last_weeks, 1.0)
        frames.append(
            pd.DataFrame(
                {
                    ID: uid,
                    DS: weeks,
                    Y: rng.poisson(level * scale).astype(float),
                    "avg_unit_price": rng.normal(20, 2, 80),
                    "week_of_year": weeks.isocalendar().week.to_numpy(dtype=float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_a_stable_panel_does_not_drift() -> None:
    panel = _panel(1.0)
    measured = drift.measure(panel, trained_through=panel[DS].max() - 8 * pd.Timedelta(weeks=1))
    # the calendar is not measured: 8 weeks of a year always differ from the year
    assert set(measured.psi.index) == {"units", "avg_unit_price"}
    assert (measured.psi < 0.1).all(), measured.psi
    assert (measured.status(load_settings()) == "ok").all()


def test_a_shifted_target_calls_for_training_again() -> None:
    panel = _panel(3.0)
    last_training_week = panel[DS].max() - 8 * pd.Timedelta(weeks=1)
    measured = drift.measure(panel, trained_through=last_training_week)
    settings = load_settings()
    assert measured.psi["units"] > settings.drift_retrain_psi, measured.psi
    assert measured.psi["avg_unit_price"] < 0.1  # only what moved is flagged
    assert measured.status(settings)["units"] == "retrain"
    assert measured.worst[0] == "units"
    # the windows: a year up to the last training week, and the last 8 weeks
    assert measured.reference == (
        last_training_week - 51 * pd.Timedelta(weeks=1),
        last_training_week,
    )
    assert measured.current[1] == panel[DS].max()
