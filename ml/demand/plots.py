"""The training run's figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from ml.demand.backtest import FORECAST, ORIGIN, STEP
from ml.demand.intervals import LOWER, UPPER, covered
from ml.demand.panel import DS, ID, Y


def forecast_vs_actual(panel: pd.DataFrame, chosen: pd.DataFrame, series: int = 4) -> Figure:
    """The last origin's forecast with its interval against the actuals, for the
    ``series`` biggest series."""
    last = chosen[chosen[ORIGIN] == chosen[ORIGIN].max()]
    top = panel.groupby(ID)[Y].sum().nlargest(series).index
    figure, axes = plt.subplots(len(top), 1, figsize=(9, 2.4 * len(top)), squeeze=False)
    for ax, uid in zip(axes[:, 0], top, strict=True):
        actual = panel[
            (panel[ID] == uid) & (panel[DS] > last[ORIGIN].max() - pd.Timedelta(weeks=26))
        ]
        f = last[last[ID] == uid]
        ax.plot(actual[DS], actual[Y], color="black", lw=1, label="actual")
        ax.plot(f[DS], f[FORECAST], color="tab:blue", label="forecast")
        ax.fill_between(f[DS], f[LOWER], f[UPPER], color="tab:blue", alpha=0.25, label="80%")
        ax.set_title(f"unique_id {uid}", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    figure.tight_layout()
    return figure


def residuals(chosen: pd.DataFrame) -> Figure:
    """Residuals (actual - forecast) by horizon step."""
    figure, ax = plt.subplots(figsize=(8, 4))
    steps = sorted(chosen[STEP].unique())
    data = [(chosen[Y] - chosen[FORECAST])[chosen[STEP] == h] for h in steps]
    ax.boxplot(data, tick_labels=[str(h) for h in steps], showfliers=False)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("weeks ahead")
    ax.set_ylabel("actual - forecast (units)")
    figure.tight_layout()
    return figure


def coverage_by_origin(chosen: pd.DataFrame, band: tuple[float, float]) -> Figure:
    """Share of actuals inside the 80% interval per origin, against the accepted band."""
    per_origin = covered(chosen).groupby(chosen[ORIGIN]).mean()
    figure, ax = plt.subplots(figsize=(8, 4))
    ax.bar([f"{o:%Y-%m-%d}" for o in per_origin.index], per_origin.to_numpy(), color="tab:blue")
    ax.axhspan(*band, color="tab:green", alpha=0.15, label="accepted band")
    ax.axhline(0.8, color="black", lw=0.8, ls="--", label="nominal 0.80")
    ax.set_ylim(0, 1)
    ax.set_ylabel("coverage")
    ax.tick_params(axis="x", rotation=45)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
