"""`lakehouse api serve` and `lakehouse api keys`: the read-only serving API
(``lakehouse.api``). FastAPI, uvicorn and the models load inside the commands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from lakehouse.cli.console import console
from lakehouse.cli.options import DataDir, settings_for

app = typer.Typer(
    help="The serving API: search, propositions, forecasts, reports, the live view.",
    no_args_is_help=True,
)


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[
        str | None, typer.Option("--host", help="default: the api_host setting")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="default: api_port")
    ] = None,
) -> None:
    """Serve the API in this process (one worker; run more behind a process manager)."""
    import uvicorn

    from lakehouse.api.app import create_app

    settings = settings_for(data_dir, existing=True)
    application = create_app(settings)
    console.print(
        f"API on http://{host or settings.api_host}:{port or settings.api_port} "
        "(OpenAPI at /docs; keys: `lakehouse api keys`)"
    )
    uvicorn.run(
        application,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
        access_log=False,
    )


@app.command()
def keys(data_dir: DataDir = None) -> None:
    """Where each scope's API key is (the whole business, each region): never printed."""
    settings = settings_for(data_dir, existing=True)
    table = Table("scope", "key")
    table.add_row(
        "all", "api_key setting" if settings.api_key else str(settings.secret_path("api.key"))
    )
    for region in sorted(set(settings.api_region_keys) | set(settings.superset_region_roles)):
        where = (
            "api_region_keys setting"
            if region in settings.api_region_keys
            else str(settings.secret_path(f"api-{region}.key"))
        )
        table.add_row(region, where)
    settings.api_secret()
    settings.api_region_secrets()
    console.print(table)
