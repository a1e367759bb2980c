"""The pipeline's commands: generate, build, dbt, the demo and the status. `lakehouse.cli.main`
registers them at the top level; like every command module, this one imports the package
inside its commands."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from lakehouse.cli.console import console, progress_bar
from lakehouse.cli.options import AsJson, DataDir, settings_for
from lakehouse.cli.superset import superset_up
from lakehouse.exceptions import LakehouseError

if TYPE_CHECKING:
    from lakehouse.settings import Settings


def generate(
    data_dir: DataDir = None,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same business")] = 42,
    clients: Annotated[int, typer.Option(help="clients at the start")] = 1000,
    products: Annotated[int, typer.Option(help="products at the start")] = 300,
    days: Annotated[int, typer.Option(help="days of daily activity")] = 730,
    orders_per_day: Annotated[
        float | None, typer.Option(help="base order rate (default: the generator's)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="regenerate over existing data")] = False,
) -> None:
    """Generate the demo business's history as Debezium change events."""
    from lakehouse.generate import GenerateParams
    from lakehouse.generate import generate as run

    settings = settings_for(data_dir)
    params = GenerateParams(
        seed=seed, clients=clients, products=products, days=days, orders_per_day=orders_per_day
    )
    with progress_bar() as progress:
        summary = run(settings, params, force=force, progress=progress)
    _print_generate(summary, settings)


def _print_generate(summary: Any, settings: Settings) -> None:

    if summary.skipped:
        console.print(f"[green]already generated[/] at {settings.changes_path} (same parameters)")
        return
    table = Table(title=f"change events written to {settings.changes_path}")
    table.add_column("topic")
    table.add_column("events", justify="right")
    for topic, n in sorted(summary.events_by_topic.items()):
        table.add_row(escape(topic), f"{n:,}")
    table.add_row("[bold]total", f"[bold]{summary.total_events:,}")
    console.print(table)
    console.print(f"generated in {summary.seconds:.1f} s")


def build(data_dir: DataDir = None) -> None:
    """Build the marts, audit them (dbt tests and contracts, source freshness,
    reconciliation with the source, Great Expectations) and publish them only when no
    error-level check failed (write-audit-publish); then the product search index follows
    the published catalogue. `lakehouse dbt build` builds without the gate."""
    from lakehouse.contracts import load_source_contracts
    from lakehouse.lake.delta import check_tables
    from lakehouse.lease import hold
    from lakehouse.quality.gate import PublicationBlocked, build_audit_publish
    from lakehouse.search.index import refresh_published
    from lakehouse.warehouse import connect

    settings = settings_for(data_dir, existing=True)
    check_tables(  # a damaged table fails now, not after the dbt build
        [
            settings.table_uri(layer, contract.lake_name)
            for contract in load_source_contracts(settings).values()
            for layer in ("bronze", "silver")
        ],
        settings.lake_storage_options,
    )
    # one lease over the publication and the refresh (build_audit_publish takes it again:
    # it is reentrant), as in the transform flow: the index follows this publication
    with hold(settings, "build"):
        with console.status("building") as spinner:
            try:
                report = build_audit_publish(settings, progress=spinner.update)
            except PublicationBlocked as exc:  # nothing published: the index stays as it is
                spinner.stop()
                print_checks(exc.report)
                raise
        print_checks(report)
        colour = "yellow" if report.warnings else "green"
        console.print(f"[{colour}]{escape(report.summary())}[/]")
        with connect(settings) as published:
            console.print(f"published marts: {escape(published.location)}")
        with progress_bar() as progress:
            indexed = refresh_published(settings, progress)
    console.print(escape(indexed.summary()))


def print_checks(report: Any) -> None:
    """The failed checks of a gate run, errors first."""

    failed = sorted(
        (c for c in report.checks if not c.passed), key=lambda c: (c.severity != "error", c.check)
    )
    if not failed:
        return
    table = Table(title=f"failed checks of run {report.run_id}")
    for column in ("severity", "check", "observed", "detail"):
        table.add_column(column, overflow="fold")
    for check in failed:
        colour = "red" if check.severity == "error" else "yellow"
        table.add_row(
            f"[{colour}]{check.severity}",
            escape(check.check),
            escape(check.observed or ""),
            escape(check.detail),
        )
    console.print(table)


DBT_CONTEXT: dict[str, Any] = {"allow_extra_args": True, "ignore_unknown_options": True}
"""`lakehouse dbt`'s context settings: every argument and option after it is dbt's."""


def dbt(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """Run any dbt command with the settings' profile, e.g. `lakehouse dbt docs generate`."""
    from lakehouse.lease import hold
    from lakehouse.transform.dbt import run_dbt

    if not ctx.args:
        raise LakehouseError("name a dbt command, e.g. `lakehouse dbt docs generate`")
    settings = settings_for(data_dir, existing=True)
    with hold(settings, "build"):  # it writes the build area a `lakehouse build` writes
        run_dbt(settings, list(ctx.args))


def demo(
    data_dir: DataDir = None,
    seed: Annotated[int, typer.Option(help="random seed of the demo business")] = 42,
    clients: Annotated[int, typer.Option()] = 1000,
    products: Annotated[int, typer.Option()] = 300,
    days: Annotated[int, typer.Option(help="days of business activity")] = 730,
    source: Annotated[
        str,
        typer.Option(
            help="live: the shop runs in PostgreSQL, captured by Debezium; files: recorded "
            "Debezium events; auto: live when PostgreSQL is available"
        ),
    ] = "auto",
    dashboards: Annotated[
        bool,
        typer.Option(
            "--dashboards/--no-dashboards",
            help="then serve the dashboards on the published marts (`superset up`)",
        ),
    ] = True,
) -> None:
    """The whole pipeline as one Prefect flow: the shop's changes, ingest, dbt build; then
    the status, and the dashboards served by Superset."""
    from flows._runtime import use_prefect_home

    if source not in ("auto", "live", "files"):
        raise typer.BadParameter("--source is one of auto, live, files")
    settings = settings_for(data_dir)
    use_prefect_home(settings)
    from flows.demo import demo as demo_flow  # Prefect loads here, after PREFECT_HOME is set

    demo_flow(
        data_dir=str(settings.root),
        seed=seed,
        clients=clients,
        products=products,
        days=days,
        source=source,  # type: ignore[call-overload]
    )
    from lakehouse.pipeline.summary import where_to_look
    from lakehouse.status import collect

    _print_status(collect(settings), docs=False)  # what was built; the docs are below
    url = superset_up(data_dir=settings.root) if dashboards else None
    table = Table(title="where to look", show_header=False)
    table.add_column("what")
    table.add_column("where", overflow="fold")  # a path is copied whole, never cut
    for what, where in where_to_look(settings, dashboards=url):
        table.add_row(escape(what), escape(where))
    console.print(table)


def status(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Tables, row counts, source positions, dead letters, freshness, and the marts."""
    from lakehouse.status import collect

    report = collect(settings_for(data_dir, existing=True))
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        return
    _print_status(report)


def _print_status(report: Any, *, docs: bool = True) -> None:
    console.print(f"profile [bold]{escape(report.profile)}[/]  ·  lake {escape(report.lake)}")
    table = Table(title="lake")
    for col in (
        "table",
        "bronze rows",
        "silver rows",
        "offset",
        "applied",
        "last source commit",
        "freshness",
    ):
        table.add_column(col, justify="left" if col in ("table", "last source commit") else "right")
    for t in report.tables:
        fresh = "-" if t.freshness_seconds is None else _age(t.freshness_seconds)
        table.add_row(
            escape(t.table),
            f"{t.bronze_rows:,}",
            f"{t.silver_rows:,}",
            str(t.consumed_offset),
            str(t.applied_offset),
            escape(t.last_source_commit or "-"),
            fresh,
        )
    console.print(table)
    colour = "red" if report.dead_letters else "green"
    console.print(f"dead letters: [{colour}]{report.dead_letters:,}[/]")
    for row in report.dead_letters_by_reason[:10]:
        console.print(
            f"  {row['count']:>6,}  {escape(str(row['topic']))}  {escape(str(row['reason']))}"
        )
    run = report.last_run
    if run:
        colour = {"published": "green", "blocked": "red"}.get(str(run["outcome"]), "yellow")
        run_id, outcome = escape(str(run["run_id"])), escape(str(run["outcome"]))
        console.print(
            f"last build: run {run_id} [{colour}]{outcome}[/] at "
            f"{run['finished_at']} ({run['checks']} checks, {run['errors']} failed, "
            f"{run['warnings']} warnings)"
        )
    if report.marts:
        served = report.publication.get("data_run_id") or "none yet"
        marts = Table(title=escape(f"published marts in {report.warehouse} (data of run {served})"))
        marts.add_column("model")
        marts.add_column("rows", justify="right")
        for name, n in report.marts.items():
            marts.add_row(escape(name), f"{n:,}")
        console.print(marts)
    else:
        console.print("marts: none published yet (run `lakehouse build`)")
    for name, page in report.docs.items() if docs else ():
        label = "dbt docs" if name == "dbt" else "Data Docs (Great Expectations)"
        console.print(f"{label}: file://{escape(page)}")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
