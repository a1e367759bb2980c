"""The `lakehouse contracts` commands: check, draft and approve the source tables' data
contracts. Like every command group, it imports the package inside its commands (see
`lakehouse.cli.main`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from lakehouse.cli.console import console
from lakehouse.cli.options import DataDir, settings_for

app = typer.Typer(help="Data contracts: one YAML file per source table.", no_args_is_help=True)


@app.command("check")
def contracts_check(data_dir: DataDir = None) -> None:
    """Read every contract the lander would use (shipped and drafted) and say what is
    wrong with the first bad one, before a run meets it."""
    from lakehouse.contracts import load_source_contracts

    contracts = load_source_contracts(settings_for(data_dir))
    for name, contract in sorted(contracts.items()):
        console.print(
            f"[green]ok[/] {escape(name)}  {escape(str(contract.path))}  "
            f"({len(contract.columns)} columns, key {escape(', '.join(contract.primary_key))})"
        )


@app.command("infer")
def contracts_infer(
    data_dir: DataDir = None,
    out: Annotated[Path, typer.Option(help="directory to write the drafts to")] = Path(
        "contracts-draft"
    ),
    schema: Annotated[str, typer.Option(help="database schema to read")] = "public",
    table: Annotated[
        list[str] | None, typer.Option("--table", help="only this table (repeatable)")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
) -> None:
    """Draft a contract per table from the live database (the oltp_* settings)."""
    from lakehouse.contracts.infer import write_drafts
    from lakehouse.oltp.client import connect

    settings = settings_for(data_dir)
    source = f"{settings.oltp_host}:{settings.oltp_port}/{settings.oltp_database}"
    # capture's signal table is Debezium's, not a source table
    signals = settings.capture_signal_table.partition(".")
    exclude = (signals[2],) if signals[0] == schema else ()
    with connect(settings) as conn:
        drafts = write_drafts(
            conn,
            out,
            source,
            schema=schema,
            tables=table or None,
            overwrite=overwrite,
            exclude=exclude,
        )
    for draft in drafts:
        skipped = escape(", ".join(draft.skipped))
        note = f"  [yellow](not captured: {skipped})[/]" if draft.skipped else ""
        console.print(f"{escape(str(draft.path))}{note}")
    console.print(
        f"{len(drafts)} draft(s) written; review them, then set LAKEHOUSE_CONTRACTS_DIR={out}"
    )


@app.command("approve")
def approve(
    table: Annotated[str, typer.Argument(help="the table: its lake name or schema.table")],
    data_dir: DataDir = None,
) -> None:
    """Mark a contract capture drafted as reviewed: its PII classes then decide what is
    masked (until then every text column is)."""
    from lakehouse.contracts import approve

    contract = approve(settings_for(data_dir), table)
    pii = ", ".join(f"{c.name} ({c.pii})" for c in contract.columns if c.pii) or "none"
    console.print(
        f"{contract.path}: reviewed; masked from the next landing on: {pii} "
        "(rows landed before keep their tokens)"
    )
