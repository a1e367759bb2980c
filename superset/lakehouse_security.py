"""Superset's security manager for the lakehouse (``CUSTOM_SECURITY_MANAGER``), loaded by
the ``superset_config.py`` that ``lakehouse superset up`` writes.

Superset lets a user who may read some datasets of a database run any SQL on it, as long
as its parser finds only those tables in the statement. A statement that reads a table in
a form the parser does not see as a table read (a query given as a string, a table
function, a file reader) passes that check. The parser is not a security boundary, so here
SQL that a user writes (SQL Lab, cost estimates, virtual datasets, a SQL Lab query used as
a chart's source) needs more than dataset access:

* the user holds access to the whole database: a region role's own database, which holds
  only that region's rows and cannot read files (``local``); or
* the database runs every statement as the user (``impersonate_user``): Trino, whose
  access control filters rows and refuses tables for that user (``stack``); Superset's
  table check and row-level security still apply on top.

Charts, explore, samples and CSV exports of datasets are unchanged: Superset builds their
SQL itself, with the row-level security filters of the user's roles.
"""

from __future__ import annotations

from typing import Any

from superset.errors import ErrorLevel, SupersetError, SupersetErrorType
from superset.exceptions import SupersetSecurityException
from superset.security import SupersetSecurityManager


class LakehouseSecurityManager(SupersetSecurityManager):
    """Superset's own checks, after refusing user-written SQL on a database the user
    may not query whole (see the module's docstring)."""

    def raise_for_access(self, *args: Any, **kwargs: Any) -> None:
        from superset.models.sql_lab import Query

        database = kwargs.get("database")
        query = kwargs.get("query")
        target = None
        if kwargs.get("sql") is not None and database is not None:
            target = database
        elif isinstance(query, Query) and query.database is not None:
            target = query.database
        if target is not None:
            if not (target.impersonate_user or self.can_access_database(target)):
                _refuse(
                    f"SQL on the database {target.database_name} is for roles with access "
                    "to all of it; use the database of your region"
                )
            sql = kwargs.get("sql") if kwargs.get("sql") is not None else query.sql
            if not self.can_access_all_databases() and not _only_queries(sql, target):
                _refuse("only queries (SELECT, VALUES, SHOW, DESCRIBE) may run here")
        super().raise_for_access(*args, **kwargs)


def _refuse(message: str) -> None:
    raise SupersetSecurityException(
        SupersetError(
            error_type=SupersetErrorType.DATABASE_SECURITY_ACCESS_ERROR,
            message=message,
            level=ErrorLevel.ERROR,
        )
    )


def _only_queries(sql: str, database: Any) -> bool:
    """Every statement is a query, by an allow-list of statement kinds: a second layer
    (the engines refuse writes, attaches and settings themselves), which errs towards
    refusing what it does not recognise. Superset's own ``is_mutating`` lets ``SET``,
    ``ATTACH`` and ``PRAGMA`` through."""
    import sqlglot.expressions as exp
    from superset.sql.parse import SQLScript

    allowed = (exp.Query, exp.Values, exp.Pivot, exp.Describe, exp.Show)
    try:
        statements = SQLScript(sql, database.db_engine_spec.engine).statements
    except Exception:  # what does not parse is not run
        return False
    return all(isinstance(statement._parsed, allowed) for statement in statements)
