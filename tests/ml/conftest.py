"""Panels for the demand tests: a small generated shop's ground truth, and a synthetic
panel whose signal is known (so which model is better is not in doubt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lakehouse.generate import GenerateParams, generate
from lakehouse.settings import Settings, load_settings
from ml.demand.panel import DS, HORIZON, ID, Y, future_weeks
from tests.support.demand import truth_panel

SMALL_SHOP = GenerateParams(clients=250, products=20, days=500)


@pytest.fixture(scope="session")
def shop_truth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = load_settings(data_dir=tmp_path_factory.mktemp("shop"))
    generate(settings, SMALL_SHOP)
    return settings.ground_truth_path


@pytest.fixture(scope="session")
def shop_panel(shop_truth: Path) -> pd.DataFrame:
    return truth_panel(shop_truth)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A data directory of its own: a fresh MLflow store and registry."""
    return load_settings(data_dir=tmp_path / "data")


def seasonal_panel(
    series: int = 12, weeks: int = 100, seed: int = 3
) -> tuple[pd.DataFrame, KnownPromotions]:
    """Poisson weekly units around a level per series, a strong yearly season and
    promotions lifting demand by half. The promotion calendar is planned ``HORIZON``
    weeks beyond the panel: the panel, and the future that knows the plan."""
    rng = np.random.default_rng(seed)
    weeks_index = pd.date_range("2024-01-01", periods=weeks + HORIZON, freq="W-MON")
    weeks += HORIZON
    frames = []
    for uid in range(1, series + 1):
        level = rng.uniform(20, 60)
        promo = (rng.random(weeks) < 0.12).astype(float)
        season = 1 + 0.6 * np.sin(2 * np.pi * (np.arange(weeks) + 4 * uid) / 52)
        mean = level * season * (1 + 0.5 * promo)
        frames.append(
            pd.DataFrame(
                {
                    ID: uid,
                    DS: weeks_index,
                    Y: rng.poisson(mean).astype(float),
                    "promo_days": 7 * promo,
                    "week_of_year": weeks_index.isocalendar().week.to_numpy(dtype=float),
                }
            )
        )
    planned = pd.concat(frames, ignore_index=True)
    panel = planned[planned[DS] < weeks_index[-HORIZON]].reset_index(drop=True)
    return panel, KnownPromotions(planned.drop(columns=Y))


class KnownPromotions:
    """The future of :func:`seasonal_panel`: its promotion calendar, planned ahead."""

    def __init__(self, plan: pd.DataFrame) -> None:
        self.plan = plan

    def __call__(self, origin: pd.Timestamp, history: pd.DataFrame) -> pd.DataFrame:
        keys = future_weeks(history, origin, HORIZON)
        return keys.merge(self.plan, on=[ID, DS], how="left")
