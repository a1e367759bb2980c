"""The operational database: the `lakehouse oltp` commands (its PostgreSQL cluster) and
`lakehouse simulate` (the shop live in it). Like every command group, it imports the
package inside its commands (see `lakehouse.cli.main`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from lakehouse.cli.console import console, err_console
from lakehouse.cli.options import AsJson, DataDir, settings_for

app = typer.Typer(
    help="The operational database: the project's own PostgreSQL cluster (or yours).",
    no_args_is_help=True,
)


def _warn(message: str) -> None:
    err_console.print(f"[yellow]{escape(message)}")


def _cluster(data_dir: Path | None) -> Any:
    from lakehouse.oltp.cluster import Cluster

    return Cluster(settings_for(data_dir), notify=_warn)


@app.command("up")
def oltp_up(data_dir: DataDir = None) -> None:
    """Create, start and migrate the PostgreSQL cluster under <data_dir>/oltp (idempotent)."""
    cluster = _cluster(data_dir)
    done = cluster.up()
    for step in done:
        console.print(f"[green]✓[/] {step}")
    s = cluster.settings
    where = f"{s.oltp_host}:{s.oltp_port}/{s.oltp_database} as {s.oltp_user}"
    if not cluster.managed:
        console.print(f"[green]reachable[/] {where} (not managed: nothing was changed)")
    else:
        console.print(f"[green]up[/] {where}" + ("" if done else " (already up)"))
        if s.oltp_password is None:
            secret = s.root / "secrets" / "oltp.password"
            console.print(f"its password is in {secret} (or set LAKEHOUSE_OLTP_PASSWORD)")


@app.command("down")
def oltp_down(data_dir: DataDir = None) -> None:
    """Stop the cluster (fast shutdown); its data stays for the next `up`."""
    cluster = _cluster(data_dir)
    if not cluster.managed:
        cluster.down()
        console.print("[yellow]not managed[/]: the database is yours to stop; it is reachable")
    elif cluster.down():
        console.print(f"[green]stopped[/] the cluster in {cluster.pgdata}")
    else:
        console.print("not running")


@app.command("status")
def oltp_status(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Running or not, where, the migrations applied, and the rows of every table."""
    from rich.table import Table

    report = _cluster(data_dir).status()
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
        return
    state = "[green]running[/]" if report.running else "[red]not running[/]"
    kind = "managed cluster" if report.managed else "external database"
    console.print(
        f"{kind} {state}  ·  {report.host}:{report.port}/{report.database}  ·  user {report.user}"
        + (f"  ·  pid {report.pid}" if report.pid else "")
        + (f"  ·  PostgreSQL {report.server_version}" if report.server_version else "")
    )
    if report.data_dir:
        console.print(f"data {report.data_dir}  ·  log {report.log_file}")
    if report.error:
        err_console.print(f"[yellow]{escape(report.error)}", soft_wrap=True, highlight=False)
    if report.running:
        console.print("migrations: " + (", ".join(report.migrations) or "none"))
        table = Table(title="tables")
        table.add_column("table")
        table.add_column("rows", justify="right")
        for name, n in report.tables.items():
            table.add_row(escape(name), f"{n:,}")
        console.print(table)


@app.command("migrate")
def oltp_migrate(data_dir: DataDir = None) -> None:
    """Apply the shop's schema migrations to the configured database (yours, if unmanaged)."""
    from lakehouse.oltp.client import connect
    from lakehouse.oltp.migrate import migrate

    with connect(settings_for(data_dir)) as conn:
        done = migrate(conn)
    for version in done:
        console.print(f"[green]✓[/] applied migration {version}")
    if not done:
        console.print("schema up to date")


def simulate(
    data_dir: DataDir = None,
    tps: Annotated[
        float, typer.Option(help="transactions per second (0: as fast as it goes)")
    ] = 10,
    duration: Annotated[
        float | None, typer.Option(help="seconds to run (default 60 unless --transactions)")
    ] = None,
    transactions: Annotated[int | None, typer.Option(help="stop after this many")] = None,
    seed: Annotated[int, typer.Option(help="random seed of the business")] = 42,
    clients: Annotated[int, typer.Option(help="clients of a fresh shop")] = 1000,
    products: Annotated[int, typer.Option(help="products of a fresh shop")] = 300,
    orders_per_day: Annotated[
        float | None, typer.Option(help="base order rate per simulated day")
    ] = None,
) -> None:
    """Run the demo shop live in the operational database, as real transactions."""
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from lakehouse.oltp.cluster import Cluster
    from lakehouse.oltp.simulate import SimulateParams, SimulateSummary
    from lakehouse.oltp.simulate import simulate as run_simulation

    settings = settings_for(data_dir)
    params = SimulateParams(
        tps=tps,
        duration=duration if duration is not None or transactions is not None else 60.0,
        transactions=transactions,
        seed=seed,
        clients=clients,
        products=products,
        orders_per_day=orders_per_day,
    )
    Cluster(settings, notify=_warn).up()
    with Progress(
        TextColumn("[bold blue]simulating[/] {task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)

        def show(s: SimulateSummary) -> None:
            changes = sum(s.changes.values())
            day = _sim_day(s.last_commit_us)
            progress.update(
                task,
                description=f"{s.transactions:,} transactions · {changes:,} changes · "
                f"{s.tps:,.1f} tx/s · business day {day}",
            )

        summary = run_simulation(settings, params, on_progress=show)
    _print_simulate(summary)


def _sim_day(us: int | None) -> str:
    from datetime import UTC, datetime, timedelta

    if us is None:
        return "-"
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).date().isoformat()


def _print_simulate(summary: Any) -> None:
    from rich.table import Table

    if summary.loaded:
        rows = sum(summary.loaded.values())
        console.print(f"loaded the initial shop: {rows:,} rows in {len(summary.loaded)} tables")
    elif summary.resumed:
        console.print("carried on from the shop already in the database")
    ops = ("c", "u", "d")
    table = Table(title="changes committed")
    table.add_column("table")
    for title in ("inserts", "updates", "deletes"):
        table.add_column(title, justify="right")
    tables = sorted({t for t, _ in summary.changes})
    for name in tables:
        table.add_row(escape(name), *(f"{summary.changes[(name, op)]:,}" for op in ops))
    console.print(table)
    if summary.interrupted:
        console.print("[yellow]interrupted[/]: every transaction shown was committed")
    console.print(
        f"{summary.transactions:,} transactions in {summary.seconds:.1f} s "
        f"({summary.tps:,.1f} tx/s); business time {_sim_day(summary.first_commit_us)} "
        f"to {_sim_day(summary.last_commit_us)}"
    )
