"""Change data capture: `lakehouse capture` (Debezium into the change-event log) and
`lakehouse ingest` (the log into the lake). `lakehouse.cli.main` registers them at the
top level; like every command module, this one imports the package inside its commands."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from lakehouse.cli.console import console, err_console, progress_bar
from lakehouse.cli.options import DataDir, settings_for
from lakehouse.cli.sources import print_sources

MetricsPort = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        help="serve Prometheus metrics on this port (0: none; default: the setting)",
    ),
]
# the follow loop samples the served marts' freshness (the SLO's measure) this often
SLO_SAMPLE_SECONDS = 60.0


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
    sources: Annotated[
        bool,
        typer.Option(help="land the file and REST sources too (`lakehouse sources run`)"),
    ] = True,
    metrics_port: MetricsPort = None,
) -> None:
    """Land new change events in bronze, dead-letter the bad ones, and apply to silver;
    then the file and REST sources (not with --follow: `lakehouse sources run`). With
    --follow, the lander's and the lake's metrics are served on --metrics-port."""
    from lakehouse.cdc.lander import ingest as run

    settings = settings_for(data_dir)
    if not follow:
        with progress_bar() as progress:
            report = run(settings, progress=progress, engine=engine)
        print_ingest(report)
        if sources:
            from lakehouse.cdc.sources import run_sources

            with progress_bar() as progress:
                print_sources(run_sources(settings, progress=progress))
        return
    from lakehouse.lake import freshness
    from lakehouse.metrics import serve
    from lakehouse.quality.reconcile import source_kind

    port = settings.lander_metrics_port if metrics_port is None else metrics_port
    server = serve(port, process="lander", lake=settings, host=settings.metrics_host)
    console.print(f"landing from {settings.changes_path} every {interval:g} s; Ctrl-C stops")
    if server is not None:
        console.print(f"metrics: {server.url}")
    sampled = 0.0
    try:
        while True:
            started = time.monotonic()
            report = run(settings, engine=engine, fold="background")  # folds when due
            if report.events:
                console.print(
                    f"{time.strftime('%H:%M:%S')}  {report.events:,} events "
                    f"({report.rejected:,} dead letters) in {report.seconds:.2f} s"
                )
            # a recording is as old as it was recorded: its freshness is no SLO's
            if started - sampled >= SLO_SAMPLE_SECONDS and source_kind(settings) != "files":
                freshness.sample(settings, "lander")
                sampled = started
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        console.print("stopped")
    finally:
        if server is not None:
            server.stop()


def capture(
    data_dir: DataDir = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: until Ctrl-C)")
    ] = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Capture the operational database with Debezium into the change-event log; its
    metrics are served on --metrics-port."""
    from lakehouse.cdc.debezium import capture as run
    from lakehouse.metrics import serve

    settings = settings_for(data_dir)
    port = settings.capture_metrics_port if metrics_port is None else metrics_port
    server = serve(port, process="capture", host=settings.metrics_host)
    if server is not None:
        console.print(f"metrics: {server.url}")
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

        try:
            report = run(settings, duration=duration, on_batch=on_batch)
        finally:
            if server is not None:
                server.stop()
    from rich.table import Table

    table = Table(title=f"captured in {report.seconds:.0f} s")
    table.add_column("topic")
    table.add_column("records", justify="right")
    for topic, n in sorted(report.by_topic.items()):
        table.add_row(escape(topic), f"{n:,}")
    console.print(table)
    for request in report.snapshots:
        console.print(f"re-read (incremental snapshot) {escape(request)}")


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
