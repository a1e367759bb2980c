"""The `lakehouse superset` commands: the dashboards on the published marts. Like every
command group, it imports the package inside its commands (see `lakehouse.cli.main`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from lakehouse.cli.console import console
from lakehouse.cli.options import DataDir, settings_for
from lakehouse.exceptions import LakehouseError

app = typer.Typer(
    help="Superset with the dashboards of superset/assets, on the published marts "
    "(local: DuckDB; stack: Trino).",
    no_args_is_help=True,
)


def _superset(data_dir: Path | None, notify: Any = None) -> Any:
    from lakehouse.supervisors.superset import SupersetServer

    return SupersetServer(settings_for(data_dir), notify=notify or (lambda message: None))


@app.command("up")
def superset_up(data_dir: DataDir = None) -> str:
    """Install Superset (once), import the dashboards and the region roles, and serve."""
    with console.status("starting Superset") as spinner:
        server = _superset(data_dir, notify=spinner.update)
        started = server.start()
    s = server.settings
    if not started:
        console.print(f"Superset was already up: {server.url}; the assets are imported again")
        return str(server.url)
    secrets = s.root / "secrets"
    console.print(f"[green]Superset is up[/]: {server.url}  (reads the {s.profile} marts)")
    console.print(
        f"  {s.superset_admin_user}: the password is the setting "
        f"superset_admin_password, else in {secrets / 'superset-admin.password'}"
    )
    for region in s.superset_region_roles:
        console.print(
            f"  {region}_analyst (sees region {region} only): the password is in "
            f"{secrets / f'superset-{region}_analyst.password'}"
        )
    return str(server.url)


@app.command("down")
def superset_down(data_dir: DataDir = None) -> None:
    """Stop Superset (its metadata stays under <data_dir>/superset)."""
    stopped = _superset(data_dir).stop()
    console.print("stopped Superset" if stopped else "Superset was not running")


@app.command("status")
def superset_status(data_dir: DataDir = None) -> None:
    """Whether Superset runs and answers, and where."""
    server = _superset(data_dir)
    pid = server.pid()
    if pid is None:
        console.print("Superset is not running")
        raise typer.Exit(1)
    health = "[green]healthy[/]" if server.healthy() else "[red]not answering[/]"
    console.print(f"Superset (pid {pid}) {health}: {server.url}  log: {server.log_path}")


@app.command("export")
def superset_export(data_dir: DataDir = None) -> None:
    """Write every chart, dataset and dashboard of the running Superset into
    superset/assets, to commit (the way to change the dashboards)."""
    from lakehouse.supervisors.superset import ASSETS_DIR
    from lakehouse.supervisors.superset_api import export_assets

    server = _superset(data_dir)
    if not server.healthy():
        raise LakehouseError(
            f"Superset does not answer at {server.url}: run `lakehouse superset up` first"
        )
    written = export_assets(server)
    console.print(f"exported {written} files into {ASSETS_DIR}: review with `git diff`")
