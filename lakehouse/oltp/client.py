"""The connection to the operational database that every stage uses.

As ``oltp_user`` over TCP, from the ``oltp_*`` settings, whether the database is the
project's own cluster or a real, external one; a failure is one :class:`OltpError` line
that says what to check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.exceptions import OltpError
from lakehouse.supervisors.process import last_line

if TYPE_CHECKING:
    import psycopg

    from lakehouse.settings import Settings


def connect(settings: Settings, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to the operational database as ``oltp_user``, over TCP."""
    import psycopg

    try:
        return psycopg.connect(
            host=settings.oltp_host,
            port=settings.oltp_port,
            dbname=settings.oltp_database,
            user=settings.oltp_user,
            password=settings.oltp_secret(),
            connect_timeout=5,
            application_name="lakehouse",
            autocommit=autocommit,
        )
    except psycopg.OperationalError as exc:
        hint = (
            "run `lakehouse oltp up`"
            if settings.oltp_managed
            else "check oltp_host, oltp_port, oltp_database, oltp_user and oltp_password"
        )
        raise OltpError(
            f"cannot connect to PostgreSQL at {settings.oltp_host}:{settings.oltp_port} "
            f"(database {settings.oltp_database!r}, user {settings.oltp_user!r}): "
            f"{last_line(str(exc))}; {hint}"
        ) from None


def check_connection(settings: Settings) -> None:
    """That the database answers ``oltp_user`` (an :class:`OltpError` when it does not)."""
    with connect(settings, autocommit=True) as conn:
        conn.execute("select 1")
