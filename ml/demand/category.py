"""A hierarchical candidate: each product's level measured against its category, carried
to the target week by the category's season of last year, lifted by promotions announced
for it.

Retail demand of a product is roughly its share of the category times the category's
level: the category carries the season and the promotions (a promotion discounts a whole
category), the product its popularity and its price. A product sells a few units a week,
too few to see its own season; the category's few hundred units show it. So:

    forecast(i, s) = level_i * C_c(s - 52) * lift_c(s)

* ``C_c``: the category's weekly units, promotion weeks left out and smoothed over
  ``2 * smooth + 1`` weeks (a year ago, so always in the history for a horizon < 52).
* ``level_i``: the product's recent units over the same curve a year before them (a
  ratio estimator over the last ``level_weeks`` weeks without promotion, recent weeks
  weighing more, ``halflife``), each week's units brought to today's price with the
  category's price elasticity.
* the elasticity of each category: the value on a grid that maximises the Poisson
  likelihood of the product-weeks of the last year given that curve (each product's
  level profiled out), from the history only.
* ``lift_c(s)``: ``1 + beta * discount * promo days / 7``, beta fitted on the history's
  promotion weeks against the smoothed curve; only promotions announced by the origin
  reach the future frame.

Everything is computed from the history handed to ``predict`` (up to the origin) and
the future frame of what was known then: nothing after the origin can reach it. A
series without a value (a category younger than a year, a product without a clean
week) takes the mean of its last 4 weeks. Like the statistical family, ``fit`` keeps
nothing: it is re-estimated on the history it forecasts from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.demand.panel import DS, ID, WEEK, Y

SEASON = 52
ELASTICITIES = np.round(np.arange(0.0, 3.01, 0.1), 2)


@dataclass
class CategorySeasonal:
    name: str = "category_seasonal"
    level_weeks: int = 26
    halflife: float = 8.0
    smooth: int = 2
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.names = (self.name,)

    def params(self) -> dict[str, float]:
        return {
            "level_weeks": self.level_weeks,
            "halflife": self.halflife,
            "smooth": self.smooth,
        }

    def fit(self, history: pd.DataFrame) -> CategorySeasonal:
        return self

    def predict(self, history: pd.DataFrame, future: pd.DataFrame) -> pd.DataFrame:
        w = _Wide.of(history)
        curve, beta = w.season_curve(self.smooth, SEASON + self.level_weeks + self.smooth)
        elasticity = w.elasticities(curve)
        level = w.levels(curve, elasticity, self.level_weeks, self.halflife)
        out = future[[ID, DS]].copy()
        category = out[ID].map(w.category)
        year_before = curve.stack().rename("curve").reset_index()
        year_before.columns = pd.Index([DS, "category", "curve"])
        year_before[DS] = year_before[DS] + SEASON * WEEK
        out["category"] = category.to_numpy()
        out = out.merge(year_before, on=[DS, "category"], how="left")
        lift = 1.0 + beta * _promotion(future).to_numpy()
        point = out[ID].map(level).to_numpy() * out["curve"].to_numpy() * lift
        fallback = out[ID].map(w.units.iloc[-4:].mean()).fillna(0.0).to_numpy()
        forecast = np.where(np.isfinite(point), point, fallback)
        return pd.DataFrame({ID: out[ID], DS: out[DS], self.name: np.clip(forecast, 0, None)})


def _promotion(frame: pd.DataFrame) -> pd.Series:
    """The promotion pressure of a week: discount (a fraction) times the share of the
    week under promotion; 0 where the panel carries no promotion columns."""
    if {"promo_discount_pct", "promo_days"} - set(frame.columns):
        return pd.Series(0.0, index=frame.index)
    pct = frame["promo_discount_pct"].fillna(0.0) / 100
    return pct * frame["promo_days"].fillna(0.0) / 7


@dataclass(frozen=True)
class _Wide:
    """The history as week x product matrices (NaN before a product's first week)."""

    units: pd.DataFrame
    promo: pd.DataFrame  # promotion pressure
    price: pd.DataFrame  # last known price, carried forward
    category: pd.Series  # unique_id -> category

    @classmethod
    def of(cls, history: pd.DataFrame) -> _Wide:
        frame = history.assign(_promo=_promotion(history))
        if "category" not in frame:
            frame["category"] = "all"
        if "avg_unit_price" not in frame:
            frame["avg_unit_price"] = 1.0
        units = frame.pivot(index=DS, columns=ID, values=Y)
        promo = frame.pivot(index=DS, columns=ID, values="_promo").reindex_like(units)
        price = frame.pivot(index=DS, columns=ID, values="avg_unit_price").reindex_like(units)
        category = frame.drop_duplicates(ID).set_index(ID)["category"].reindex(units.columns)
        return cls(units, promo.fillna(0.0), price.ffill().bfill(), category)

    def by_category(self, frame: pd.DataFrame, how: str) -> pd.DataFrame:
        return frame.T.groupby(self.category).agg(how).T

    def per_product(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A week x category frame spread to week x product."""
        out = frame[self.category.to_numpy()]
        out.columns = self.units.columns
        return out

    def season_curve(self, smooth: int, since: int) -> tuple[pd.DataFrame, float]:
        """The category's weekly units without its promotion weeks, smoothed, and the
        promotion lift per unit of pressure measured against that curve. Only products
        sold since ``since`` weeks before the origin count (when the category has any):
        a launch or a discontinuation last year is not its season."""
        every = self.by_category(self.units.fillna(0.0), "sum")
        units = self.units
        if len(units) > since:
            units = units.loc[:, units.iloc[-since].notna().to_numpy()]
        total = units.fillna(0.0).T.groupby(self.category[units.columns]).sum().T
        total = total.reindex(columns=every.columns).fillna(every)
        pressure = self.by_category(self.promo, "max")
        window = {"window": 2 * smooth + 1, "center": True, "min_periods": 1}
        # promotion weeks: interpolated between their neighbours, then smoothed
        clean = total.where(pressure == 0).interpolate(limit_direction="both")
        curve = clean.rolling(**window).mean().fillna(total.rolling(**window).mean())
        lifted = pressure > 0
        ratio, x = (total / curve)[lifted].stack(), pressure[lifted].stack()
        beta = float(((ratio - 1) * x).sum() / (x * x).sum()) if len(x) else 0.0
        return curve, max(beta, 0.0)

    def _year_before(self, curve: pd.DataFrame, weeks: pd.Index) -> pd.DataFrame:
        shifted = curve.reindex(weeks - SEASON * WEEK)
        shifted.index = weeks
        return self.per_product(shifted)

    def elasticities(self, curve: pd.DataFrame) -> pd.Series:
        """Per category, the grid value that best explains the last year's clean
        product-weeks as level x curve a year before x (price / today's price)^-e."""
        weeks = self.units.index[-SEASON:]
        y, base = self.units.loc[weeks], self._year_before(curve, weeks)
        relative = self.price.loc[weeks] / self.price.iloc[-1]
        clean = self.promo.loc[weeks] == 0
        ok = y.notna() & (base > 0) & clean & (relative > 0)
        y, base, log_rel = y.where(ok, 0.0), base.where(ok, 1.0), np.log(relative.where(ok, 1.0))
        best: dict[str, float] = {}
        for category, ids in self.category.groupby(self.category).groups.items():
            yc, bc, lc = y[ids].to_numpy(), np.log(base[ids].to_numpy()), log_rel[ids].to_numpy()
            totals = yc.sum(axis=0)
            scores = []
            for e in ELASTICITIES:
                log_x = bc - e * lc
                with np.errstate(divide="ignore", invalid="ignore"):
                    level = totals / np.where(ok[ids], np.exp(log_x), 0.0).sum(axis=0)
                    fitted = np.where(totals > 0, totals * np.log(level), 0.0)
                scores.append(float((yc * log_x).sum() + np.nansum(fitted)))
            best[str(category)] = float(ELASTICITIES[int(np.argmax(scores))])
        return self.category.map(best)

    def levels(
        self, curve: pd.DataFrame, elasticity: pd.Series, weeks_back: int, halflife: float
    ) -> pd.Series:
        """Each product's units per unit of its category's curve a year before, over its
        last clean weeks, brought to today's price."""
        weeks = self.units.index[-weeks_back:]
        relative = self.price.loc[weeks] / self.price.iloc[-1]
        y = self.units.loc[weeks] * relative.pow(elasticity, axis=1)
        base = self._year_before(curve, weeks)
        ok = y.notna() & base.notna() & (self.promo.loc[weeks] == 0)
        age = np.arange(len(weeks) - 1, -1, -1)
        weight = pd.Series(0.5 ** (age / halflife), index=weeks)
        num = y.where(ok).mul(weight, axis=0).sum()
        den = base.where(ok).mul(weight, axis=0).sum()
        return num / den.where(den > 0)
