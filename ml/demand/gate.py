"""The promotion gate: when a newly trained model may become the champion."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(
    wape: float,
    coverage: float,
    best_baseline_wape: float,
    champion_wape: float | None,
    margin: float,
    band: tuple[float, float],
) -> Decision:
    """Promote only a model whose backtest WAPE is at least ``margin`` (a fraction) below
    both the best baseline's and the current champion's, and whose 80% intervals covered
    a share of the backtest's actuals inside ``band``. The reason names every rule
    broken, or what was beaten."""
    broken = []
    bar = (1 - margin) * best_baseline_wape
    if wape > bar:
        broken.append(
            f"WAPE {wape:.4f} does not beat the best baseline's {best_baseline_wape:.4f} by "
            f"{margin:.0%} (needs <= {bar:.4f})"
        )
    if champion_wape is not None and wape > (1 - margin) * champion_wape:
        broken.append(
            f"WAPE {wape:.4f} does not beat the champion's {champion_wape:.4f} by {margin:.0%} "
            f"(needs <= {(1 - margin) * champion_wape:.4f})"
        )
    low, high = band
    if not low <= coverage <= high:
        broken.append(f"80% interval coverage {coverage:.3f} is outside [{low}, {high}]")
    if broken:
        return Decision(False, "; ".join(broken))
    against = "no champion yet" if champion_wape is None else f"champion {champion_wape:.4f}"
    return Decision(
        True,
        f"WAPE {wape:.4f} beats best baseline {best_baseline_wape:.4f} and {against}; "
        f"coverage {coverage:.3f}",
    )
