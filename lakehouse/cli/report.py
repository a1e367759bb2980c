"""`lakehouse report build`: the weekly insight reports (``lakehouse.reports``), HTML and
PDF per scope, written under the data directory. The package loads inside the command
(matplotlib, reportlab and the marts' engine take a second)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from lakehouse.cli.console import console, progress_bar
from lakehouse.cli.options import AsJson, DataDir, settings_for

app = typer.Typer(
    help="Weekly insight reports: what changed and why, per scope, as HTML and PDF.",
    no_args_is_help=True,
)

Scope = Annotated[
    str | None,
    typer.Option(
        "--scope",
        help="`all`: only the whole business's report; a region: only its report (default: "
        "the whole business's and each region's)",
    ),
]
Week = Annotated[
    str | None,
    typer.Option("--week", help="the week's Monday, YYYY-MM-DD (default: the last complete week)"),
]


@app.command("build")
def report_build(
    scope: Scope = None,
    week: Week = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Build the reports of a week from the published marts: facts by SQL, charts, the
    narrative (the LLM endpoint of llm_base_url when set, else the template), HTML and PDF."""
    from lakehouse.reports import build_reports

    settings = settings_for(data_dir, existing=True)
    if as_json:  # stdout holds the JSON only: no bars
        built = build_reports(settings, scope=scope, week=week)
    else:
        with progress_bar() as progress:
            built = build_reports(settings, scope=scope, week=week, progress=progress)
    if as_json:
        rows = [
            {
                "scope": b.scope,
                "week": b.week.isoformat(),
                "folder": str(b.folder),
                "narrative": b.narrative_source,
                "reason": b.narrative_reason,
                "charts": b.charts,
                "seconds": round(b.seconds, 2),
            }
            for b in built
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("scope", "week", "narrative", "charts", "seconds")
    table.add_column("folder (report.html, report.pdf)", overflow="fold")
    table.title = f"{len(built)} report{'s' if len(built) != 1 else ''}"
    for b in built:
        table.add_row(
            b.scope,
            b.week.isoformat(),
            b.narrative_source,
            str(b.charts),
            f"{b.seconds:.1f}",
            str(b.folder),
        )
    console.print(table)
    for reason in dict.fromkeys(b.narrative_reason for b in built if b.narrative_reason):
        console.print(f"template narrative: {reason}")
