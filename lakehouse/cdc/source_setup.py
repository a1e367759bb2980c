"""What a capture keeps in the source database: its publication, its slot's WAL and
Debezium's signal table.

Debezium creates the replication slot and a missing publication itself; what it cannot
do is done here, before the connector starts: turning the publication into the kind the
settings ask for (``FOR ALL TABLES`` or the tables of ``capture_tables``), moving an
idle slot up to what the connector has durably processed, so that PostgreSQL can recycle
the WAL before it, and creating the signal table (``capture_signal_table``) through
which capture asks the connector for an incremental snapshot of a table.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.contracts.infer import source_tables
from lakehouse.exceptions import SourceError
from lakehouse.oltp.client import connect
from lakehouse.supervisors.postgres import PostgresServer

if TYPE_CHECKING:
    import psycopg

    from lakehouse.settings import Settings

log = logging.getLogger(__name__)


def signal_table(settings: Settings) -> tuple[str, str] | None:
    """``(schema, table)`` of Debezium's signal table, or None without signalling."""
    if not settings.capture_signal_table:
        return None
    schema, _, table = settings.capture_signal_table.partition(".")
    return schema, table


def is_signal_table(settings: Settings, schema: str, table: str) -> bool:
    return signal_table(settings) == (schema, table)


def captured(settings: Settings, schema: str, table: str) -> bool:
    """Whether Debezium captures the table as a source table: ``capture_tables`` holds
    regexes that must match all of ``schema.table``, ignoring case, as Debezium applies
    them. The signal table is Debezium's own, never a source table."""
    if is_signal_table(settings, schema, table):
        return False
    if not settings.capture_tables:
        return True
    name = f"{schema}.{table}"
    return any(re.fullmatch(p, name, re.IGNORECASE) for p in settings.capture_tables)


def prepare_publication(settings: Settings, name: str, offsets: Path) -> None:
    """Make the publication the kind the settings ask for, before the connector starts.

    Debezium creates a missing one, but cannot turn one kind into the other (a list of
    tables, or ``FOR ALL TABLES``), and only a superuser may create or drop an
    all-tables one. The publication is replaced in one transaction, so every position
    of the slot still finds a publication of that name. On the project's own cluster
    that is done as its superuser; on a real database a superuser has to do it. A table
    the switch brings in is captured from then on: its earlier rows need a new snapshot.
    """
    from psycopg import sql

    every_table = not settings.capture_tables
    with connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "select puballtables from pg_publication where pubname = %s", [name]
        ).fetchone()
        if (row is None and not every_table) or (row is not None and row[0] == every_table):
            return  # right as it is, or Debezium creates it from the table list
        superuser = conn.execute(
            "select rolsuper from pg_roles where rolname = current_user"
        ).fetchone()
        publication = sql.Identifier(name)
        statements = [sql.SQL("drop publication {}").format(publication)] if row else []
        if every_table:
            statements.append(sql.SQL("create publication {} for all tables").format(publication))
        else:
            tables = [
                sql.Identifier(*t)
                for t in source_tables(conn)
                if captured(settings, *t) or is_signal_table(settings, *t)  # its watermarks
            ]
            statements.append(
                sql.SQL("create publication {} for table {}").format(
                    publication, sql.SQL(", ").join(tables)
                )
                if tables
                else sql.SQL("create publication {}").format(publication)
            )
            # Debezium alters it when capture_tables changes: the capture user must own it
            statements.append(
                sql.SQL("alter publication {} owner to {}").format(
                    publication, sql.Identifier(settings.oltp_user)
                )
            )
        script = "; ".join(st.as_string(conn) for st in statements)
        if superuser and superuser[0]:
            _run_in_transaction(conn, statements)
            _switched(name, every_table, offsets, replaced=row is not None)
            return
    if not settings.oltp_managed:
        raise SourceError(
            f"capture needs publication {name} to be {_kind(every_table)}, and only a "
            f"superuser can make it so: have one run `begin; {script}; commit;` in database "
            f"{settings.oltp_database}"
            + (", or list the tables to capture in capture_tables" if every_table else "")
        )
    # the project's own cluster's superuser, on its unix socket, in the source database
    with PostgresServer(settings).admin(settings.oltp_database) as admin:
        _run_in_transaction(admin, statements)
    _switched(name, every_table, offsets, replaced=row is not None)


def _switched(name: str, every_table: bool, offsets: Path, *, replaced: bool) -> None:
    log.info("publication %s is now %s", name, _kind(every_table))
    if replaced:
        log.warning(
            "tables that were not captured before are captured from now on: for their "
            "earlier rows, snapshot again (stop capture, remove %s, start it)",
            offsets,
        )


def _kind(every_table: bool) -> str:
    return "FOR ALL TABLES" if every_table else "for the tables of capture_tables"


def _run_in_transaction(conn: psycopg.Connection, statements: list[Any]) -> None:
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)


def release_wal(settings: Settings, slot: str, offsets: Path, wait: float = 0.0) -> None:
    """Move the idle replication slot up to the last commit the connector has durably
    processed (``lsn_commit`` in its persisted offsets), so PostgreSQL can recycle the
    WAL before it. Everything up to there is in the topic log already. ``wait``: seconds
    to wait for the slot to be released by a connector that just stopped."""
    if not offsets.exists():
        return
    commits = [int(v) for v in re.findall(rb'"lsn_commit":(\d+)', offsets.read_bytes())]
    if not commits:
        return
    lsn = max(commits)

    position = f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
    with connect(settings, autocommit=True) as conn:
        until = time.monotonic() + wait
        while True:
            row = conn.execute(
                "select active, confirmed_flush_lsn < %s::pg_lsn from pg_replication_slots "
                "where slot_name = %s",
                [position, slot],
            ).fetchone()
            if row is None or not row[0] or time.monotonic() >= until:
                break
            time.sleep(0.1)
        if row is not None and not row[0] and row[1]:
            conn.execute("select pg_replication_slot_advance(%s, %s::pg_lsn)", [slot, position])


SIGNAL_COLUMNS = "id varchar(64) primary key, type varchar(32) not null, data varchar(2048)"


def prepare_signal_table(settings: Settings) -> None:
    """Create the signal table when missing (Debezium's three columns), and empty it: the
    connector reads signals and watermarks from the WAL, never from the table, so rows
    of earlier runs serve nothing. The capture user inserts the signals and Debezium,
    as that user, its watermarks."""
    import psycopg
    from psycopg import sql

    names = signal_table(settings)
    if names is None:
        return
    table = sql.Identifier(*names)
    create = sql.SQL("create table if not exists {} ({})").format(table, sql.SQL(SIGNAL_COLUMNS))
    with connect(settings, autocommit=True) as conn:
        try:
            conn.execute(create)
            conn.execute(sql.SQL("delete from {}").format(table))
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceError(
                f"capture cannot prepare its signal table {settings.capture_signal_table} "
                f"({first}): have its owner run `{create.as_string(conn)}` and grant "
                f"{settings.oltp_user} insert and delete on it, or set capture_signal_table "
                "to '' (no snapshot on a schema change)"
            ) from None


def request_snapshot(settings: Settings, tables: list[tuple[str, str]]) -> str:
    """Ask the connector for an incremental snapshot of ``tables`` (``(schema, table)``):
    a signal row, which the connector reads from the WAL. Returns the signal's id."""
    import json
    import uuid

    from psycopg import sql

    names = signal_table(settings)
    if names is None:
        raise SourceError("no signal table: set capture_signal_table to request a snapshot")
    signal_id = f"lakehouse-{uuid.uuid4()}"
    data = {"data-collections": [f"{s}.{t}" for s, t in tables], "type": "incremental"}
    with connect(settings, autocommit=True) as conn:
        conn.execute(
            sql.SQL("insert into {} (id, type, data) values (%s, 'execute-snapshot', %s)").format(
                sql.Identifier(*names)
            ),
            [signal_id, json.dumps(data)],
        )
    return signal_id
