"""The operational database, whoever runs it: ``up``, ``down``, ``status``.

With ``oltp_managed`` on it is the project's own PostgreSQL cluster under
``<data_dir>/oltp``, run by :class:`lakehouse.supervisors.postgres.PostgresServer`, and
``up`` also applies the shop's migrations. With it off the database is a real, external
one: ``up`` and ``down`` only check that it answers, and nothing is created in it. The
connection the stages use is :func:`lakehouse.oltp.client.connect`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.exceptions import OltpError
from lakehouse.oltp.client import check_connection, connect
from lakehouse.oltp.migrate import applied, migrate
from lakehouse.supervisors.postgres import PostgresServer
from lakehouse.supervisors.postgres_setup import Notify, quiet

if TYPE_CHECKING:
    import psycopg

    from lakehouse.settings import Settings


@dataclass
class ClusterStatus:
    managed: bool
    running: bool
    host: str
    port: int
    database: str
    user: str
    pid: int | None = None
    data_dir: str | None = None
    log_file: str | None = None
    server_version: str | None = None
    migrations: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)  # row count per table
    error: str | None = None  # why the database could not be read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Cluster:
    """The operational database of the settings: ``up``, ``down`` and ``status``."""

    def __init__(self, settings: Settings, *, notify: Notify = quiet) -> None:
        self.settings = settings
        self.server = PostgresServer(settings, notify=notify)

    @property
    def managed(self) -> bool:
        return self.settings.oltp_managed

    @property
    def pgdata(self) -> Path:
        return self.server.pgdata

    @property
    def initialised(self) -> bool:
        return self.server.initialised

    def pid(self) -> int | None:
        """The managed cluster's postmaster when it runs, else None."""
        return self.server.pid() if self.managed else None

    def up(self) -> list[str]:
        """Make the database ready; return what had to be done (nothing when it was up).

        Idempotent: the managed server is made and started when needed, then the
        migrations not applied yet are applied.
        """
        if not self.managed:
            check_connection(self.settings)
            return []
        done = self.server.up()
        with connect(self.settings) as conn:
            done += [f"applied migration {v}" for v in migrate(conn)]
        return done

    def down(self) -> bool:
        """Stop the managed cluster; return whether it was running."""
        if not self.managed:
            check_connection(self.settings)
            return False
        return self.server.down()

    @contextmanager
    def running(self, *, create: bool = True) -> Iterator[list[str]]:
        """The database up for the block; yields what ``up`` had to do. A managed cluster
        started here is stopped after the block.

        With ``create`` off, only a managed cluster that exists and is stopped is started:
        an external database, or a cluster never made, is left alone, and reading it
        fails on its own (the gate reconciles with the source a capture read, never with
        a new, empty one).
        """
        was_running = not self.managed or self.pid() is not None
        if not create and (was_running or not self.initialised):
            yield []
            return
        done = self.up()
        try:
            yield done
        finally:
            if not was_running:
                self.down()

    def status(self) -> ClusterStatus:
        """Whether it runs, where, and what the database holds (migrations, row counts)."""
        s = self.settings
        status = ClusterStatus(
            managed=self.managed,
            running=False,
            host=s.oltp_host,
            port=s.oltp_port,
            database=s.oltp_database,
            user=s.oltp_user,
        )
        if self.managed:
            status.data_dir = str(self.server.pgdata)
            status.log_file = str(self.server.log_path)
            status.pid = self.pid()
            if status.pid is None:
                status.error = "not running (`lakehouse oltp up` starts it)"
                return status
            status.port = self.server.running_port() or s.oltp_port
        try:
            with connect(s, autocommit=True) as conn:
                status.running = True
                _read_contents(conn, status)
        except OltpError as exc:
            status.error = str(exc)
        return status


def _read_contents(conn: psycopg.Connection, status: ClusterStatus) -> None:
    from psycopg import sql

    row = conn.execute("show server_version").fetchone()
    status.server_version = row[0] if row else None
    status.migrations = applied(conn)
    tables = conn.execute(
        "select table_name from information_schema.tables where table_schema = 'public' "
        "and table_type = 'BASE TABLE' and table_name <> 'schema_migrations' order by 1"
    ).fetchall()
    for (name,) in tables:
        count = conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(name)))
        status.tables[name] = int(count.fetchone()[0])  # type: ignore[index]
