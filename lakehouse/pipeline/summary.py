"""Where to look once the pipeline has run: the last lines of ``lakehouse demo``.

Each place is what a user opens next (the published marts and how to query them, the
lake, the dbt docs, the Great Expectations Data Docs, the dashboards, the forecast's
MLflow runs, the weekly reports), with its path, address or command; a place the run did
not make is left out.
"""

from __future__ import annotations

from lakehouse.settings import Settings
from lakehouse.transform.docs import docs_sites
from lakehouse.warehouse import connect


def where_to_look(settings: Settings, *, dashboards: str | None = None) -> list[tuple[str, str]]:
    """(what, where) for each place the run made, in the order a newcomer opens them;
    ``dashboards`` is Superset's address when it is served."""
    places: list[tuple[str, str]] = []
    with connect(settings) as published:
        if published.marts():
            places.append(("published marts", published.location))
    if dashboards:
        places.append(("dashboards (Superset)", dashboards))
    sites = docs_sites(settings)
    labels = {"dbt": "models, lineage and tests (dbt docs)", "gx": "data quality (GX Data Docs)"}
    for name, label in labels.items():
        if sites[name].exists():
            places.append((label, sites[name].as_uri()))
    if settings.profile == "local" and settings.mlflow_dir.exists():
        places.append(
            (
                "forecast and propositions models and runs (MLflow)",
                f"mlflow ui --backend-store-uri {settings.mlflow_uri}",
            )
        )
    reports = sorted(settings.reports_dir.glob("all/*/report.html"))
    if reports:  # the newest whole-business report; each region's is beside it
        places.append(("weekly insight reports (HTML, PDF)", reports[-1].as_uri()))
    places.append(("the lake (Delta tables)", settings.lake_root))
    places.append(("tables, freshness, dead letters", "lakehouse status"))
    return places
