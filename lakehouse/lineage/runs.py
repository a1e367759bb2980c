"""The gate's lineage: the build run (its id is the gate's run id, the publication id), and
its publication: the marts served, each with the build run whose data it holds.

The dbt models' events (``lakehouse.transform.lineage``) name the build run as their
parent, so a served mart leads to the models that built it and the lake versions they read.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from openlineage.client.event_v2 import RunState
from openlineage.client.facet_v2 import BaseFacet
from openlineage.client.facet_v2 import output_statistics_output_dataset as statistics

from lakehouse.lineage.events import (
    BUILD_JOB,
    LakehouseRunFacet,
    PublicationRunFacet,
    RunRef,
    emit,
    run_id_for,
    warehouse_namespace,
)
from lakehouse.settings import Settings


def build_ref(settings: Settings, run_id: str) -> RunRef:
    """The OpenLineage run of the gate's run ``run_id``."""
    return RunRef(settings.lineage_namespace, BUILD_JOB, run_id_for(run_id))


def build_started(settings: Settings, run_id: str) -> None:
    emit(
        settings,
        RunState.START,
        build_ref(settings, run_id),
        run_facets={"lakehouse": LakehouseRunFacet(run_id)},
    )


def published(
    settings: Settings,
    run_id: str,
    *,
    outcome: str,
    data_run_id: str | None,
    rows: Mapping[str, int],
    refreshed: Collection[str] | None,
) -> None:
    """The build run's end: the marts the publication serves (``rows``), those this run
    built (all, or ``refreshed`` when the gate blocked) as its outputs. A blocked run is
    a FAIL: its data marts were not served, those of ``data_run_id`` stay."""
    built = {m for m in rows if refreshed is None or m in refreshed}
    marts: dict[str, dict[str, object]] = {
        mart: {"rows": n, "builtBy": run_id if mart in built else data_run_id}
        for mart, n in sorted(rows.items())
    }
    namespace = warehouse_namespace(settings, published=True)
    outputs: list[tuple[str, str, Mapping[str, BaseFacet]]] = [
        (
            namespace,
            mart,
            {
                "outputStatistics": statistics.OutputStatisticsOutputDatasetFacet(
                    rowCount=rows[mart]
                )
            },
        )
        for mart in sorted(built)
    ]
    facets = {
        "lakehouse": LakehouseRunFacet(run_id),
        "lakehouse_publication": PublicationRunFacet(run_id, data_run_id, outcome, marts),
    }
    state = RunState.FAIL if outcome == "blocked" else RunState.COMPLETE
    emit(settings, state, build_ref(settings, run_id), outputs=outputs, run_facets=facets)
