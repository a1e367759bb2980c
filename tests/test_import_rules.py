"""Imports run one way: sources -> lake -> dbt -> published marts -> consumers.

The layers below, from the bottom up, say which package may import which: a package
imports only packages of lower layers (and its own modules). Every import counts, those
inside functions and under ``TYPE_CHECKING`` too. A new package must be given a layer.
The direction is drawn in ``docs/architecture.md``.
"""

from __future__ import annotations

from pathlib import Path

from lakehouse.settings import PROJECT_DIR
from tests.support.imports import Layer, check

PACKAGES = ("lakehouse", "flows", "ml")

LAYERS: tuple[Layer, ...] = (
    Layer("errors", ("lakehouse.exceptions",), "the one exception hierarchy: imports nothing"),
    Layer("settings", ("lakehouse.settings",), "one typed settings object, read by every stage"),
    Layer(
        "shared definitions",
        ("lakehouse.contracts", "lakehouse.progress"),
        "the data contracts (source tables, published marts) and the progress protocol: "
        "what every stage agrees on, whoever produces or reads it",
    ),
    Layer(
        "lake",
        ("lakehouse.lake",),
        "Delta storage (bronze, silver, dead letters, the quality tables): knows the "
        "contracts, never who writes or reads it",
    ),
    Layer(
        "lineage",
        ("lakehouse.lineage",),
        "OpenLineage events of every stage and the record they make: knows the lake's "
        "tables, never the stages that call it",
    ),
    Layer(
        "metrics",
        ("lakehouse.metrics",),
        "the Prometheus metrics every stage counts in, and the lake's read at scrape time: "
        "above the lake it reads, below the capture, the gate and the services that count",
    ),
    Layer(
        "infrastructure",
        ("lakehouse.supervisors", "lakehouse.lease"),
        "process supervisors and the lake's writer lease: usable from the sources up, "
        "they know no stage",
    ),
    Layer("the stack", ("lakehouse.stack",), "every service supervisor, started in order"),
    Layer(
        "generated business",
        ("lakehouse.generate",),
        "the demo shop and its ground truth: recorded change files, or fed to the database",
    ),
    Layer(
        "operational database",
        ("lakehouse.oltp",),
        "the source database: its cluster, migrations and the simulated shop in it",
    ),
    Layer(
        "capture and landing",
        ("lakehouse.cdc",),
        "Debezium capture of the database and the lander into the lake",
    ),
    Layer("transform", ("lakehouse.transform",), "dbt runs over the lake: reads no Python stage"),
    Layer(
        "warehouse port",
        ("lakehouse.warehouse",),
        "one port to the build and published marts (DuckDB or Trino by profile): the gate "
        "reads and publishes through it, consumers read through it",
    ),
    Layer(
        "gate",
        ("lakehouse.quality",),
        "write-audit-publish: checks what dbt built against the lake and the source",
    ),
    Layer(
        "consumers",
        ("lakehouse.features", "lakehouse.search"),
        "consumers of the published marts (the feature store, the product search index): "
        "read them through the warehouse port, never the gate, the CDC or the source",
    ),
    Layer(
        "pipeline",
        ("lakehouse.pipeline", "lakehouse.status"),
        "what spans several stages: the live demo, the choice of source, the status report",
    ),
    Layer(
        "ml jobs",
        ("ml",),
        "training, evaluation and batch scoring over the published marts and features: "
        "the stages below never import them; the flows and the CLI run them, the serving "
        "layer loads their registered models",
    ),
    Layer(
        "reports",
        ("lakehouse.reports",),
        "the insight reports: facts from the published marts through the port, written as "
        "files under the data directory, which the API lists and serves",
    ),
    Layer(
        "serving",
        ("lakehouse.api",),
        "the API: reads the published marts through the port, the search index, the ml "
        "jobs' models from the registry by alias (ml.tracking), and the reports' files",
    ),
    Layer("flows", ("flows",), "Prefect flows: thin, they call the package"),
    Layer("cli", ("lakehouse.cli",), "the `lakehouse` command: runs flows and renders results"),
)


def test_imports_run_downhill() -> None:
    violations = check(PROJECT_DIR, PACKAGES, LAYERS)
    assert not violations, "\n".join(map(str, violations))


def _violations(root: Path, files: dict[str, str]) -> list[str]:
    """What the checker reports on a tree of ``files`` (path -> text) under ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(str(v).removeprefix(f"{root}/") for v in check(root, PACKAGES, LAYERS))


def test_a_planted_upward_import_is_reported(tmp_path: Path) -> None:
    """The positive control: a small tree with the project's layers, where landing imports
    the gate inside a function, the lake imports the CLI at the top, and the CLI and the
    lander import downward as they should."""
    found = _violations(
        tmp_path,
        {
            "lakehouse/__init__.py": "",
            "lakehouse/settings.py": "from lakehouse.exceptions import ConfigError\n",
            "lakehouse/exceptions.py": "",
            "lakehouse/lake/__init__.py": "",
            "lakehouse/lake/delta.py": "from ..cli import console\n",
            "lakehouse/cdc/__init__.py": "",
            "lakehouse/cdc/lander.py": (
                "from lakehouse.lake import delta\n"
                "from . import decode\n"
                "def f():\n"
                "    from lakehouse.quality import history\n"
            ),
            "lakehouse/cdc/decode.py": "import lakehouse.settings\n",
            "lakehouse/quality/__init__.py": "",
            "lakehouse/quality/history.py": "",
            "lakehouse/cli/__init__.py": "",
            "lakehouse/cli/console.py": "from lakehouse import cdc, settings\n",
        },
    )
    assert found == [
        "lakehouse/cdc/lander.py:4: lakehouse.cdc.lander imports lakehouse.quality.history: "
        "lakehouse.quality (gate) is above lakehouse.cdc (capture and landing)",
        "lakehouse/lake/delta.py:1: lakehouse.lake.delta imports lakehouse.cli.console: "
        "lakehouse.cli (cli) is above lakehouse.lake (lake)",
    ]


def test_a_sideways_import_and_a_package_without_a_layer_are_reported(tmp_path: Path) -> None:
    found = _violations(
        tmp_path,
        {
            "lakehouse/__init__.py": "",
            "lakehouse/supervisors/__init__.py": "from lakehouse.lease import hold\n",
            "lakehouse/lease.py": "",
            "lakehouse/ml/__init__.py": "from lakehouse.lake import delta\n",
            "lakehouse/lake/__init__.py": "",
            "lakehouse/lake/delta.py": "",
        },
    )
    assert found == [
        "lakehouse/ml/__init__.py:1: lakehouse.ml imports lakehouse.lake.delta: "
        "lakehouse.ml is in no layer: give it one",
        "lakehouse/supervisors/__init__.py:1: lakehouse.supervisors imports lakehouse.lease: "
        "lakehouse.lease (infrastructure) is beside lakehouse.supervisors (infrastructure)",
    ]
