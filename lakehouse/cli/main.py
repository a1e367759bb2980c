"""The `lakehouse` command line: where every command and command group is registered.
Heavy libraries load inside the commands that use them, and so do the project's modules
(they bring deltalake, duckdb, dbt or Prefect): `lakehouse --help` stays fast.

A command group is a module of this package with its own ``typer.Typer()`` named ``app``
(`oltp`, `dlq`, `contracts`, `stack`, `superset`, `features`, `ml`, `search-index`,
`api`, `report`), added
below with ``app.add_typer``; the top-level commands live in the module of their stage and are
registered here, in the order `lakehouse --help` lists them."""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from lakehouse.cli import (
    api,
    capture,
    contracts,
    dlq,
    features,
    lineage,
    maintain,
    metrics,
    ml,
    oltp,
    pipeline,
    report,
    search,
    sources,
    stack,
    superset,
)
from lakehouse.cli.console import err_console
from lakehouse.exceptions import LakehouseError

app = typer.Typer(
    help="Lakehouse ELT platform: change data capture to Delta Lake, dbt marts, and more.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command()(pipeline.generate)
app.command()(capture.ingest)
app.command()(capture.capture)
app.command()(pipeline.build)
app.command()(maintain.maintain)
app.command(context_settings=pipeline.DBT_CONTEXT)(pipeline.dbt)
app.command()(pipeline.demo)
app.command()(pipeline.status)
app.command()(lineage.lineage)
app.command()(oltp.simulate)
app.command()(search.search)

app.add_typer(oltp.app, name="oltp")
app.add_typer(dlq.app, name="dlq")
app.add_typer(sources.app, name="sources")
app.add_typer(contracts.app, name="contracts")
app.add_typer(stack.app, name="stack")
app.add_typer(superset.app, name="superset")
app.add_typer(features.app, name="features")
app.add_typer(ml.app, name="ml")
app.add_typer(search.app, name="search-index")
app.add_typer(api.app, name="api")
app.add_typer(report.app, name="report")
app.add_typer(metrics.app, name="metrics")


def run() -> None:
    """Entry point: user errors become one line on stderr and exit code 1."""
    # everything the platform writes (the data directory, its files, the services it
    # starts) is for its own user only: 0700 directories, 0600 files
    os.umask(0o077)
    code = 0
    try:
        app()
    except LakehouseError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message holds
        err_console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
        code = 1
    except SystemExit as exc:  # how click ends every command, successful or not
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    _exit(code)


def _exit(code: int) -> None:
    """Leave without tearing the interpreter down. delta-rs keeps a Tokio runtime whose
    threads can still be running while Python finalises, and a short-lived process then
    dies with SIGABRT now and then (delta-io/delta-rs#2184). The exit handlers (Prefect's
    temporary server, dbt's connections) run first, while everything is still alive."""
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
