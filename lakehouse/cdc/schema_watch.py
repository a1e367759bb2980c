"""Schema changes no change event shows: capture has the connector read the table again.

PostgreSQL's logical decoding carries no DDL. After ``ALTER TABLE t ADD COLUMN c integer
DEFAULT 7`` every existing row holds 7, yet no event says so: the rows that are not
changed again would keep null in silver. The same holds for a renamed column (its values
under the new name) and for a type change that converts values.

While capture runs, ``SchemaWatch`` reads the captured tables' columns from the catalog
every ``CHECK_S`` seconds and compares them with what it saw before (kept in
``<data_dir>/capture/columns.json``; at first, the table's contract). When a table
needs it (``needs_snapshot``), it inserts an ``execute-snapshot`` signal for the table
into the signal table; the connector reads the signal from the WAL and re-reads the
table in chunks between watermarks (Debezium's incremental snapshot), as ``r`` events
placed at the window's close: newer than every change committed before, older than every
change committed after, and a row changed inside the window is left to its own change.
The lander applies them as any change (docs/change-events.md, "Schema changes").
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.cdc.source_setup import captured, request_snapshot
from lakehouse.contracts import load_source_contracts
from lakehouse.exceptions import LakehouseError
from lakehouse.oltp.client import connect

if TYPE_CHECKING:
    from lakehouse.settings import Settings

log = logging.getLogger(__name__)

CHECK_S = 2.0  # seconds between two reads of the catalog (one query, every table)

# Every column of every ordinary table: its type, its number, and whether rows no change
# touched may hold a value no event carried (a default, stored as a "missing value" on
# ADD COLUMN or written by the table rewrite of a volatile one; a generated or identity
# column).
_CATALOG = """
select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       a.atthasdef or a.atthasmissing or a.attgenerated <> '' or a.attidentity <> '',
       a.attnum
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped
  and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp\\_%'
order by n.nspname, c.relname, a.attnum
"""

_INTEGERS = ["smallint", "integer", "bigint"]
_VARCHAR = re.compile(r"^character varying(?:\((\d+)\))?$")
_NUMERIC = re.compile(r"^numeric(?:\((\d+),(\d+)\))?$")


@dataclass(frozen=True)
class Column:
    type: str  # format_type(), e.g. "integer", "numeric(10,2)"; "" unknown (a contract's)
    filled: bool = False  # existing rows may hold a value no change event carried
    # attnum: a renamed column keeps it, an added one gets a new one (never reused);
    # 0 unknown (a contract's)
    number: int = 0


def widened(old: str, new: str) -> bool:
    """Whether a type change keeps every value as it was (PostgreSQL converts nothing
    that Debezium would send differently): a wider integer, a longer or unbounded
    varchar (or text), a numeric with more digits before the point and the same scale,
    or an unconstrained one."""
    if old in _INTEGERS and new in _INTEGERS:
        return _INTEGERS.index(new) >= _INTEGERS.index(old)
    old_v = _VARCHAR.match(old)
    if old_v and (new == "text" or _VARCHAR.match(new)):
        new_v = _VARCHAR.match(new)
        if new == "text" or new_v is None or new_v.group(1) is None:
            return True
        return old_v.group(1) is not None and int(new_v.group(1)) >= int(old_v.group(1))
    old_n, new_n = _NUMERIC.match(old), _NUMERIC.match(new)
    if old_n and new_n:
        if new_n.group(1) is None:
            return True
        if old_n.group(1) is None:
            return False
        (p0, s0), (p1, s1) = map(int, old_n.groups()), map(int, new_n.groups())
        return s1 == s0 and p1 >= p0
    return False


def needs_snapshot(known: dict[str, Column], now: dict[str, Column]) -> str | None:
    """Why a table must be read again, or None. ``known``: the columns seen before (from
    a contract: names only); ``now``: the catalog's. A dropped column needs nothing
    (silver keeps its last values, see docs/change-events.md); nor does a column added
    without a default: it is null in every row, as silver has it."""
    added = [c for c in now if c not in known]
    gone = [c for c in known if c not in now]
    by_number = {column.number: name for name, column in known.items() if column.number}
    renamed = [f"{by_number[now[c].number]} to {c}" for c in added if now[c].number in by_number]
    if renamed:
        return f"column renamed: {', '.join(renamed)}"
    if added and any(not known[c].number for c in gone):  # names only: a rename, maybe
        return f"column {', '.join(gone)} gone and {', '.join(added)} new (a rename?)"
    filled = [c for c in added if now[c].filled]
    if filled:
        return f"column {', '.join(filled)} added with a default"
    again = [c for c in now if c in known and known[c].number not in (0, now[c].number)]
    if again:
        return f"column {', '.join(again)} dropped and added again"
    converted = [
        c
        for c, column in now.items()
        if c in known
        and known[c].type
        and known[c].type != column.type
        and not widened(known[c].type, column.type)
    ]
    if converted:
        changes = ", ".join(f"{c} {known[c].type} -> {now[c].type}" for c in converted)
        return f"type changed: {changes}"
    return None


class SchemaWatch:
    """Reads the captured tables' columns every ``CHECK_S`` seconds (``tick``) and asks
    the connector for an incremental snapshot of each table that needs one."""

    def __init__(self, settings: Settings, state: Path, *, fresh: bool) -> None:
        """``fresh``: the connector has no offsets yet, so its initial snapshot reads
        every table as it is now: what the catalog holds is the starting point."""
        self.settings = settings
        self.state = state
        self.fresh = fresh
        self.known: dict[str, dict[str, Column]] = self._load()
        self.contracts: dict[str, list[str]] = {}  # the contracts' columns, by topic
        self.contracts_read = False  # in this check
        self.next_check = 0.0
        self.requested: list[str] = []  # tables asked for, "schema.table: reason"

    def tick(self, now: Callable[[], float] = time.monotonic) -> None:
        """Check, when ``CHECK_S`` seconds have passed since the last check. A source that
        cannot be read now is tried again at the next one."""
        if now() < self.next_check:
            return
        self.next_check = now() + CHECK_S
        import psycopg

        try:
            self.check(self._catalog())
        except (LakehouseError, psycopg.Error) as exc:
            log.warning("cannot check the source's schema now: %s", exc)

    def check(self, catalog: dict[tuple[str, str], dict[str, Column]]) -> list[str]:
        """Compare ``catalog`` with what was seen, request the snapshots it calls for;
        return the requests ("schema.table: reason")."""
        import psycopg

        seen: dict[str, dict[str, Column]] = {}
        due: dict[tuple[str, str], str] = {}
        self.contracts_read = False
        for (schema, table), columns in catalog.items():
            if not captured(self.settings, schema, table):
                continue
            topic = self.settings.topic(table, schema)
            known = self.known.get(topic)
            if known is None and not self.fresh:
                names = self._contract_columns(topic)
                if names is None:
                    continue  # no contract (no key): the table does not land
                known = {name: Column("") for name in names}
            # what a later check compares with: the type and number of each column
            seen[topic] = {n: Column(c.type, number=c.number) for n, c in columns.items()}
            reason = None if known is None else needs_snapshot(known, columns)
            if reason:
                due[(schema, table)] = reason
        self.fresh = False
        requests = [f"{s}.{t}: {reason}" for (s, t), reason in due.items()]
        if due:
            try:
                signal = request_snapshot(self.settings, list(due))
            except (LakehouseError, psycopg.Error) as exc:
                log.warning("cannot request a snapshot now (%s): %s", exc, "; ".join(requests))
                for schema, table in due:  # seen again at the next check
                    seen.pop(self.settings.topic(table, schema))
                requests = []
            else:
                for request in requests:
                    log.info("incremental snapshot requested (signal %s) of %s", signal, request)
                self.requested += requests
        changed = {t: c for t, c in seen.items() if self.known.get(t) != c}
        if changed:
            self.known.update(changed)
            self._save()
        return requests

    def _catalog(self) -> dict[tuple[str, str], dict[str, Column]]:
        with connect(self.settings) as conn:
            rows = conn.execute(_CATALOG).fetchall()
        catalog: dict[tuple[str, str], dict[str, Column]] = {}
        for schema, table, name, type_, filled, number in rows:
            catalog.setdefault((schema, table), {})[name] = Column(type_, bool(filled), number)
        return catalog

    def _contract_columns(self, topic: str) -> list[str] | None:
        if topic not in self.contracts and not self.contracts_read:  # drafted meanwhile?
            self.contracts_read = True
            self.contracts = {
                self.settings.topic(c.table, c.schema): c.column_names
                for c in load_source_contracts(self.settings, allow_empty=True).values()
            }
        return self.contracts.get(topic)

    def _load(self) -> dict[str, dict[str, Column]]:
        """``{topic: {column: [type, number]}}``."""
        try:
            data = json.loads(self.state.read_text())
            return {
                str(topic): {str(c): Column(str(t), number=int(n)) for c, (t, n) in cols.items()}
                for topic, cols in data.items()
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, AttributeError) as exc:  # contracts, then
            log.warning("ignoring %s: %s", self.state, exc)
            return {}

    def _save(self) -> None:
        data = {
            topic: {name: [c.type, c.number] for name, c in columns.items()}
            for topic, columns in self.known.items()
        }
        self.state.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.state)
