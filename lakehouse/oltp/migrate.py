"""Schema migrations for the operational database: SQL files applied once, in name order.

``schema_migrations(version, applied_at)`` records what is applied. Each migration runs in
a transaction of its own, together with its row in that table, so a failed migration
leaves nothing behind and the next run tries it again. The table is locked while a
migration runs, so two processes migrating at once apply each file once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.exceptions import OltpError

if TYPE_CHECKING:
    import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_CREATE_TABLE = """
create table if not exists schema_migrations (
    version text primary key,
    applied_at timestamptz not null default now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: str  # the file name without ``.sql``, e.g. ``0001_shop_schema``
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()


def migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files of a directory, in file-name order."""
    return [Migration(p.stem, p) for p in sorted(directory.glob("*.sql"))]


def applied(conn: psycopg.Connection) -> list[str]:
    """Versions already applied, oldest first; empty when the table does not exist yet."""
    with conn.transaction():
        exists = conn.execute("select to_regclass('schema_migrations') is not null").fetchone()
        if not exists or not exists[0]:
            return []
        rows = conn.execute("select version from schema_migrations order by version").fetchall()
    return [r[0] for r in rows]


def migrate(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the migrations not applied yet; return the versions applied now."""
    import psycopg

    with conn.transaction():
        conn.execute(_CREATE_TABLE)
    done = set(applied(conn))
    now: list[str] = []
    for migration in migrations(directory):
        if migration.version in done:
            continue
        try:
            with conn.transaction():
                conn.execute("lock table schema_migrations in exclusive mode")
                again = conn.execute(
                    "select 1 from schema_migrations where version = %s", (migration.version,)
                ).fetchone()
                if again:  # another process applied it meanwhile
                    continue
                conn.execute(migration.sql.encode())
                conn.execute(
                    "insert into schema_migrations (version) values (%s)", (migration.version,)
                )
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OltpError(
                f"migration {migration.path.name} failed and was rolled back: {first}"
            ) from None
        now.append(migration.version)
    return now
