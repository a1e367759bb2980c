"""The `lakehouse` command line. Heavy libraries load inside the commands that use them,
and so do the project's modules (they bring deltalake, duckdb, dbt or Prefect): `lakehouse
--help` stays fast."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape

from lakehouse.cli.console import console, err_console, progress_bar
from lakehouse.exceptions import LakehouseError

if TYPE_CHECKING:
    from lakehouse.settings import Settings

app = typer.Typer(
    help="Lakehouse ELT platform: change data capture to Delta Lake, dbt marts, and more.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="where all state lives (default ./.lakehouse)"),
]


def _settings(data_dir: Path | None, *, existing: bool = False) -> Settings:
    """The settings; ``existing``: the command reads what the pipeline wrote, so a data
    directory that does not exist is a typo, not an empty lake to report as healthy
    (generate, demo, ingest from Kafka, oltp up and stack up create it)."""
    from lakehouse.exceptions import ConfigError
    from lakehouse.settings import load_settings  # pydantic: loaded only when a command runs

    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = load_settings(**overrides)
    if existing and not settings.root.is_dir():
        raise ConfigError(
            f"data directory {settings.root} does not exist: check --data-dir (or "
            "LAKEHOUSE_DATA_DIR); `lakehouse demo` or `lakehouse generate` creates one"
        )
    return settings


@app.command()
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

    settings = _settings(data_dir)
    params = GenerateParams(
        seed=seed, clients=clients, products=products, days=days, orders_per_day=orders_per_day
    )
    with progress_bar() as progress:
        summary = run(settings, params, force=force, progress=progress)
    _print_generate(summary, settings)


def _print_generate(summary: Any, settings: Settings) -> None:
    from rich.table import Table

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


@app.command()
def ingest(
    data_dir: DataDir = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="keep landing new events until Ctrl-C")
    ] = False,
    interval: Annotated[float, typer.Option(help="seconds between rounds with --follow")] = 1.0,
    engine: Annotated[
        Literal["delta-rs", "spark"],
        typer.Option(help="who applies bronze to silver: delta-rs in process, or Spark"),
    ] = "delta-rs",
) -> None:
    """Land new change events in bronze, dead-letter the bad ones, and apply to silver."""
    from lakehouse.cdc.lander import ingest as run

    settings = _settings(data_dir)
    if not follow:
        with progress_bar() as progress:
            report = run(settings, progress=progress, engine=engine)
        print_ingest(report)
        return
    import time

    console.print(f"landing from {settings.changes_path} every {interval:g} s; Ctrl-C stops")
    try:
        while True:
            started = time.monotonic()
            report = run(settings, engine=engine)
            if report.events:
                console.print(
                    f"{time.strftime('%H:%M:%S')}  {report.events:,} events "
                    f"({report.rejected:,} dead letters) in {report.seconds:.2f} s"
                )
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        console.print("stopped")


@app.command()
def capture(
    data_dir: DataDir = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: until Ctrl-C)")
    ] = None,
) -> None:
    """Capture the operational database with Debezium into the change-event log."""
    from lakehouse.cdc.debezium import capture as run

    settings = _settings(data_dir)
    servers = settings.kafka_bootstrap_servers
    into = f"Kafka at {servers}" if servers else settings.changes_path
    console.print(
        f"capturing {settings.oltp_user}@{settings.oltp_host}:{settings.oltp_port}/"
        f"{settings.oltp_database} into {into}; Ctrl-C stops"
    )
    with console.status("starting Debezium") as status:
        seen = [0]

        def on_batch(n: int) -> None:
            seen[0] += n
            status.update(f"{seen[0]:,} change events captured")

        report = run(settings, duration=duration, on_batch=on_batch)
    from rich.table import Table

    table = Table(title=f"captured in {report.seconds:.0f} s")
    table.add_column("topic")
    table.add_column("records", justify="right")
    for topic, n in sorted(report.by_topic.items()):
        table.add_row(escape(topic), f"{n:,}")
    console.print(table)


def print_ingest(report: Any) -> None:
    from rich.table import Table

    table = Table(title="ingest")
    for col in ("table", "events read", "landed", "duplicates", "tombstones", "dead letters"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for t in report.topics:
        table.add_row(
            escape(t.table),
            f"{t.events:,}",
            f"{t.landed:,}",
            f"{t.duplicates:,}",
            f"{t.tombstones:,}",
            f"[red]{t.rejected:,}" if t.rejected else "0",
        )
    console.print(table)
    applied = Table(title="silver")
    for col in ("table", "changes applied", "upserted", "deleted", "rows"):
        applied.add_column(col, justify="left" if col == "table" else "right")
    for a in report.applied:
        applied.add_row(
            escape(a.table), f"{a.changes:,}", f"{a.upserted:,}", f"{a.deleted:,}", f"{a.rows:,}"
        )
    console.print(applied)
    rate = report.events / report.seconds if report.seconds else 0
    console.print(f"{report.events:,} events in {report.seconds:.1f} s ({rate:,.0f} events/s)")
    for topic in report.unknown_topics:
        err_console.print(f"[yellow]skipped topic {escape(topic)}: no data contract for it")


@app.command()
def build(data_dir: DataDir = None) -> None:
    """Build the marts, audit them (dbt tests and contracts, source freshness,
    reconciliation with the source, Great Expectations) and publish them only when no
    error-level check failed (write-audit-publish). `lakehouse dbt build` builds without
    the gate."""
    from lakehouse.contracts import load_source_contracts
    from lakehouse.lake.delta import check_tables
    from lakehouse.quality.gate import PublicationBlocked, build_audit_publish
    from lakehouse.warehouse import connect

    settings = _settings(data_dir, existing=True)
    check_tables(  # a damaged table fails now, not after the dbt build
        [
            settings.table_uri(layer, contract.lake_name)
            for contract in load_source_contracts(settings).values()
            for layer in ("bronze", "silver")
        ],
        settings.lake_storage_options,
    )
    with console.status("building") as spinner:
        try:
            report = build_audit_publish(settings, progress=spinner.update)
        except PublicationBlocked as exc:
            spinner.stop()
            print_checks(exc.report)
            raise
    print_checks(report)
    colour = "yellow" if report.warnings else "green"
    console.print(f"[{colour}]{escape(report.summary())}[/]")
    with connect(settings) as published:
        console.print(f"published marts: {escape(published.location)}")


def print_checks(report: Any) -> None:
    """The failed checks of a gate run, errors first."""
    from rich.table import Table

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


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def dbt(ctx: typer.Context, data_dir: DataDir = None) -> None:
    """Run any dbt command with the settings' profile, e.g. `lakehouse dbt docs generate`."""
    from lakehouse.lease import hold
    from lakehouse.transform.dbt import run_dbt

    if not ctx.args:
        raise LakehouseError("name a dbt command, e.g. `lakehouse dbt docs generate`")
    settings = _settings(data_dir, existing=True)
    with hold(settings, "build"):  # it writes the build area a `lakehouse build` writes
        run_dbt(settings, list(ctx.args))


@app.command()
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
    settings = _settings(data_dir)
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
    status(data_dir=settings.root, as_json=False)
    if dashboards:
        superset_up(data_dir=settings.root)


@app.command()
def status(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Tables, row counts, source positions, dead letters, freshness, and the marts."""
    from lakehouse.status import collect

    report = collect(_settings(data_dir, existing=True))
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        return
    _print_status(report)


def _print_status(report: Any) -> None:
    from rich.table import Table

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
    for name, page in report.docs.items():
        label = "dbt docs" if name == "dbt" else "Data Docs (Great Expectations)"
        console.print(f"{label}: file://{escape(page)}")


oltp_app = typer.Typer(
    help="The operational database: the project's own PostgreSQL cluster (or yours).",
    no_args_is_help=True,
)
app.add_typer(oltp_app, name="oltp")


def _cluster(data_dir: Path | None) -> Any:
    from lakehouse.oltp.cluster import Cluster

    return Cluster(_settings(data_dir), notify=lambda m: err_console.print(f"[yellow]{escape(m)}"))


dlq_app = typer.Typer(
    help="The dead-letter table: events that could not be landed.", no_args_is_help=True
)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(
    data_dir: DataDir = None,
    topic: Annotated[str | None, typer.Option(help="only this topic")] = None,
    limit: Annotated[int, typer.Option(help="rows to show")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Dead letters with their topic, offset and reason."""
    from rich.table import Table

    from lakehouse.cdc.replay import dead_letters

    rows = dead_letters(_settings(data_dir, existing=True), topic).to_pylist()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    table = Table(title=f"{len(rows):,} dead letters")
    for col in ("topic", "offset", "reason", "failed at"):
        table.add_column(col, justify="right" if col == "offset" else "left")
    for row in rows[:limit]:
        table.add_row(
            escape(row["topic"]), str(row["offset"]), escape(row["reason"]), str(row["failed_at"])
        )
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(
    data_dir: DataDir = None,
    topic: Annotated[str | None, typer.Option(help="only this topic")] = None,
) -> None:
    """Land the dead letters again, after the contract or the data was fixed."""
    from lakehouse.cdc.replay import replay

    report = replay(_settings(data_dir, existing=True), topic)
    for name in sorted(report.replayed.keys() | report.still_failing.keys()):
        console.print(
            f"{escape(name)}: [green]{report.replayed[name]:,} landed[/], "
            f"{report.still_failing[name]:,} still failing"
        )
    if not report.replayed and not report.still_failing:
        console.print("no dead letters")


contracts_app = typer.Typer(
    help="Data contracts: one YAML file per source table.", no_args_is_help=True
)
app.add_typer(contracts_app, name="contracts")


@contracts_app.command("check")
def contracts_check(data_dir: DataDir = None) -> None:
    """Read every contract the lander would use (shipped and drafted) and say what is
    wrong with the first bad one, before a run meets it."""
    from lakehouse.contracts import load_source_contracts

    contracts = load_source_contracts(_settings(data_dir))
    for name, contract in sorted(contracts.items()):
        console.print(
            f"[green]ok[/] {escape(name)}  {escape(str(contract.path))}  "
            f"({len(contract.columns)} columns, key {escape(', '.join(contract.primary_key))})"
        )


@contracts_app.command("infer")
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
    from lakehouse.oltp.cluster import connect

    settings = _settings(data_dir)
    source = f"{settings.oltp_host}:{settings.oltp_port}/{settings.oltp_database}"
    with connect(settings) as conn:
        drafts = write_drafts(
            conn, out, source, schema=schema, tables=table or None, overwrite=overwrite
        )
    for draft in drafts:
        skipped = escape(", ".join(draft.skipped))
        note = f"  [yellow](not captured: {skipped})[/]" if draft.skipped else ""
        console.print(f"{escape(str(draft.path))}{note}")
    console.print(
        f"{len(drafts)} draft(s) written; review them, then set LAKEHOUSE_CONTRACTS_DIR={out}"
    )


@contracts_app.command("approve")
def contracts_approve(
    table: Annotated[str, typer.Argument(help="the table: its lake name or schema.table")],
    data_dir: DataDir = None,
) -> None:
    """Mark a contract capture drafted as reviewed: its PII classes then decide what is
    masked (until then every text column is)."""
    from lakehouse.contracts import approve

    contract = approve(_settings(data_dir), table)
    pii = ", ".join(f"{c.name} ({c.pii})" for c in contract.columns if c.pii) or "none"
    console.print(
        f"{contract.path}: reviewed; masked from the next landing on: {pii} "
        "(rows landed before keep their tokens)"
    )


@oltp_app.command("up")
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


@oltp_app.command("down")
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


@oltp_app.command("status")
def oltp_status(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
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


@oltp_app.command("migrate")
def oltp_migrate(data_dir: DataDir = None) -> None:
    """Apply the shop's schema migrations to the configured database (yours, if unmanaged)."""
    from lakehouse.oltp.cluster import connect
    from lakehouse.oltp.migrate import migrate

    with connect(_settings(data_dir)) as conn:
        done = migrate(conn)
    for version in done:
        console.print(f"[green]✓[/] applied migration {version}")
    if not done:
        console.print("schema up to date")


@app.command()
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

    settings = _settings(data_dir)
    params = SimulateParams(
        tps=tps,
        duration=duration if duration is not None or transactions is not None else 60.0,
        transactions=transactions,
        seed=seed,
        clients=clients,
        products=products,
        orders_per_day=orders_per_day,
    )
    Cluster(settings, notify=lambda m: err_console.print(f"[yellow]{escape(m)}")).up()
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


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


stack_app = typer.Typer(
    help="The cluster services (object store, Trino, Kafka, Redis, Prefect, MLflow) as "
    "local processes under <data_dir>/stack.",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")


def _stack(data_dir: Path | None) -> Any:
    from lakehouse.stack import Stack

    return Stack(_settings(data_dir))


@stack_app.command("up")
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


@stack_app.command("down")
def stack_down(data_dir: DataDir = None) -> None:
    """Stop every service of the stack, in reverse start order."""
    with console.status("stopping the stack"):
        stopped = _stack(data_dir).down()
    console.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@stack_app.command("status")
def stack_status(
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
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


superset_app = typer.Typer(
    help="Superset with the dashboards of superset/assets, on the published marts "
    "(local: DuckDB; stack: Trino).",
    no_args_is_help=True,
)
app.add_typer(superset_app, name="superset")


def _superset(data_dir: Path | None, notify: Any = None) -> Any:
    from lakehouse.services.superset import SupersetServer

    return SupersetServer(_settings(data_dir), notify=notify or (lambda message: None))


@superset_app.command("up")
def superset_up(data_dir: DataDir = None) -> None:
    """Install Superset (once), import the dashboards and the region roles, and serve."""
    with console.status("starting Superset") as spinner:
        server = _superset(data_dir, notify=spinner.update)
        started = server.start()
    s = server.settings
    if not started:
        console.print(f"Superset was already up: {server.url}; the assets are imported again")
        return
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


@superset_app.command("down")
def superset_down(data_dir: DataDir = None) -> None:
    """Stop Superset (its metadata stays under <data_dir>/superset)."""
    stopped = _superset(data_dir).stop()
    console.print("stopped Superset" if stopped else "Superset was not running")


@superset_app.command("status")
def superset_status(data_dir: DataDir = None) -> None:
    """Whether Superset runs and answers, and where."""
    server = _superset(data_dir)
    pid = server.pid()
    if pid is None:
        console.print("Superset is not running")
        raise typer.Exit(1)
    health = "[green]healthy[/]" if server.healthy() else "[red]not answering[/]"
    console.print(f"Superset (pid {pid}) {health}: {server.url}  log: {server.log_path}")


@superset_app.command("export")
def superset_export(data_dir: DataDir = None) -> None:
    """Write every chart, dataset and dashboard of the running Superset into
    superset/assets, to commit (the way to change the dashboards)."""
    from lakehouse.services.superset import ASSETS_DIR, export_assets

    server = _superset(data_dir)
    if not server.healthy():
        raise LakehouseError(
            f"Superset does not answer at {server.url}: run `lakehouse superset up` first"
        )
    written = export_assets(server)
    console.print(f"exported {written} files into {ASSETS_DIR}: review with `git diff`")


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
