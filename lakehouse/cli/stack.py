"""The `lakehouse stack` commands: the cluster services as local processes. Like every
command group, it imports the package inside its commands (see `lakehouse.cli.main`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lakehouse.cli.console import console
from lakehouse.cli.options import AsJson, DataDir, settings_for

app = typer.Typer(
    help="The cluster services (object store, Trino, Kafka, Redis, Prefect, MLflow) as "
    "local processes under <data_dir>/stack.",
    no_args_is_help=True,
)


def _stack(data_dir: Path | None) -> Any:
    from lakehouse.stack import Stack

    return Stack(settings_for(data_dir))


@app.command("up")
def stack_up(
    services: Annotated[
        list[str] | None, typer.Argument(help="services to start (default: all)")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="start only this service (repeatable, or a,b,c)"),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Start the services not up yet (and what they need); a second `up` is a no-op."""
    stack = _stack(data_dir)

    def done(result: Any) -> None:
        if result.started:
            console.print(
                f"[green]started[/] {result.service} in {result.seconds:.1f} s  {result.url}"
            )
        else:
            console.print(f"[dim]up[/]      {result.service}  {result.url}")

    with console.status("") as spinner:
        results = stack.up(
            [*(only or []), *(services or [])],
            on_start=lambda name: spinner.update(f"starting {name}"),
            on_done=done,
        )
    if not any(r.started for r in results):
        console.print("the stack is already up: nothing to start")
    console.print("metrics: `lakehouse stack targets` lists and writes the scrape targets")


@app.command("down")
def stack_down(data_dir: DataDir = None) -> None:
    """Stop every service of the stack, in reverse start order."""
    with console.status("stopping the stack"):
        stopped = _stack(data_dir).down()
    console.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@app.command("status")
def stack_status(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Each service's process, health, address and log."""
    from rich.table import Table

    stack = _stack(data_dir)
    rows = stack.status()
    if as_json:
        out = [{**vars(row), "log_path": str(row.log_path)} for row in rows]
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    home = stack.settings.stack_dir
    table = Table(title=f"the stack (logs under {home})")
    for column in ("service", "pid", "healthy", "url", "log"):
        table.add_column(column, justify="right" if column == "pid" else "left", overflow="fold")
    for row in rows:
        health = "[green]yes" if row.healthy else ("[red]no" if row.pid else "[dim]stopped")
        log = row.log_path.relative_to(home) if row.log_path.is_relative_to(home) else row.log_path
        table.add_row(row.service, str(row.pid or "-"), health, row.url, str(log))
    console.print(table)


@app.command("targets")
def stack_targets(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """The Prometheus scrape targets of the stack's processes (the API, the capture, the
    lander), written as a Prometheus configuration under <data_dir>/stack/prometheus."""
    from rich.table import Table

    from lakehouse.stack import scrape_targets, write_prometheus_config

    settings = settings_for(data_dir)
    targets = scrape_targets(settings)
    path = write_prometheus_config(settings)
    if as_json:
        out = {"config": str(path), "targets": [{"job": t.job, "url": t.url} for t in targets]}
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    table = Table(title="Prometheus scrape targets")
    table.add_column("job")
    table.add_column("url", overflow="fold")
    for target in targets:
        table.add_row(target.job, target.url)
    console.print(table)
    console.print(f"Prometheus configuration: {path}")
