"""The commit-to-mart freshness SLO's alerts: after each publication the gate reads the
SLO's latest day from ``mart_freshness_slo`` (dbt computes it from the freshness samples)
and compares its status with the one recorded after the previous run. The state is
recorded (``lakehouse.lake.freshness``, one row per run), and a change is alerted through
the webhook when the budget starts burning too fast, is spent, or the SLO recovers: once
per crossing, never at every run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lakehouse.lake import freshness
from lakehouse.quality.alerts import send_alert
from lakehouse.settings import Settings
from lakehouse.warehouse import connect

SLO_MART = "mart_freshness_slo"
_COLUMNS = ["slo_date", "slo_status", "budget_remaining", "burn_rate", "window_good_ratio"]
# worse first: a move to a worse status alerts, and so does the way back to ok
_RANK = {"ok": 0, "burning": 1, "exhausted": 2}


def follow_slo(settings: Settings, run_id: str) -> dict[str, Any] | None:
    """Record the SLO's status after run ``run_id`` and alert when it crossed a threshold;
    the state recorded (None when the mart has no day yet)."""
    with connect(settings) as marts:
        days = marts.read_mart(SLO_MART, _COLUMNS)
    if days.num_rows == 0:
        return None
    latest = days.sort_by([("slo_date", "descending")]).slice(0, 1).to_pylist()[0]
    before = freshness.last_slo_state(settings)
    previous = str(before["status"]) if before else "ok"
    status = str(latest["slo_status"])
    alerted = status != previous
    state = {
        "decided_at": datetime.now(UTC),
        "run_id": run_id,
        "status": status,
        "budget_remaining": float(latest["budget_remaining"]),
        "burn_rate": float(latest["burn_rate"]),
        "alerted": alerted,
    }
    if alerted:
        send_alert(settings, _payload(settings, latest, previous, run_id))
    freshness.record_slo_state(settings, state)  # one row per run: the metrics read it
    return state


def _payload(
    settings: Settings, latest: dict[str, Any], previous: str, run_id: str
) -> dict[str, object]:
    status = str(latest["slo_status"])
    event = "slo_recovered" if _RANK[status] < _RANK[previous] else f"slo_{status}"
    target = settings.slo_target
    what = {
        "slo_burning": f"burning its error budget {latest['burn_rate']:.1f} times faster than "
        f"allowed (alert at {settings.slo_burn_rate_alert:g})",
        "slo_exhausted": "error budget spent",
        "slo_recovered": f"back to ok from {previous}",
    }[event]
    return {
        "source": "lakehouse",
        "event": event,
        "run_id": run_id,
        "profile": settings.profile,
        "summary": f"freshness SLO ({target:.2%} of minutes within "
        f"{settings.slo_freshness_minutes} min over {settings.slo_window_days} days): {what}",
        "slo_date": str(latest["slo_date"]),
        "status": status,
        "previous_status": previous,
        "budget_remaining": latest["budget_remaining"],
        "burn_rate": latest["burn_rate"],
        "window_good_ratio": latest["window_good_ratio"],
    }
