"""`lakehouse metrics`: the lake's Prometheus metrics for the local profile, where no
lander follows (freshness and files per table, the gate's last run, the freshness SLO).
Like every command group, it imports the package inside its commands."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from lakehouse.cli.console import console
from lakehouse.cli.options import DataDir, settings_for

app = typer.Typer(help="Prometheus metrics of the lake.", no_args_is_help=True)


@app.command("serve")
def metrics_serve(
    data_dir: DataDir = None,
    port: Annotated[
        int | None, typer.Option(help="the port (default: the setting metrics_port)")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="the address to listen on (default: metrics_host)")
    ] = None,
) -> None:
    """Serve the lake's metrics until Ctrl-C (read from the Delta logs at each scrape)."""
    from lakehouse.metrics import MetricsServer

    settings = settings_for(data_dir, existing=True)
    server = MetricsServer(
        port or settings.metrics_port,
        host=host or settings.metrics_host,
        process="metrics",
        lake=settings,
    )
    console.print(f"metrics: {server.url}; Ctrl-C stops")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        server.stop()
