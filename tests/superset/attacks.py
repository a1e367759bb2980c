# ruff: noqa: E501  (a corpus of statements reads best one per line)
"""What a restricted Superset user might send to read past row-level security, and the
judge of what came back.

Each statement is sent as the region's user through SQL Lab (to every database that user
sees) and, for the chart-data API, as ad hoc SQL in a chart query. A statement passes when
it is refused, or when every value it returns is free of other regions and of the
secrets and files of the host. Statements that write, attach, load or change settings
must be refused. The same judge applied to an unprotected connection finds the leaks (the
positive control), so a statement list that attacks nothing would fail the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

READ = "read"  # refused, or only the region's rows and no secret
REFUSE = "refuse"  # must be refused: writes, attaches, loads, changes settings


@dataclass(frozen=True)
class Attack:
    label: str
    sql: str
    kind: str = READ


@dataclass
class Judge:
    """What must not come back: another region's name, a secret, a file's content."""

    region: str
    other_regions: set[str]
    secrets: set[str]
    checked: int = 0
    leaks: list[str] = field(default_factory=list)

    def rows(self, label: str, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            for value in row:
                self.checked += 1
                text = str(value)
                if text in self.other_regions:
                    self.leaks.append(f"{label}: a row of region {text!r}")
                    return
                for secret in self.secrets:
                    if secret and secret in text:
                        self.leaks.append(f"{label}: a secret or file content {secret[:12]!r}…")
                        return


def duckdb_attacks(*, secret: str, lake_file: str, other_file: str) -> list[Attack]:
    """Statements for a DuckDB connection: ``secret`` a file of the host that must stay
    unread (its folder is globbed), ``lake_file`` a Parquet file of the lake,
    ``other_file`` the file with every region's marts."""
    folder = secret.rsplit("/", 1)[0]
    t = "marts.mart_sales_lines"
    return [
        Attack("plain select", f"select distinct region from {t}"),
        Attack("upper case", f"SELECT DISTINCT REGION FROM {t.upper()}"),
        Attack("quoted names", 'select distinct "region" from "marts"."mart_sales_lines"'),
        Attack("mixed quoting", 'select distinct Region from MARTS."mart_sales_lines"'),
        Attack("dim_client", "select distinct region from marts.dim_client"),
        Attack("rfm", "select distinct region from marts.mart_client_rfm"),
        Attack("cohorts", "select distinct region from marts.mart_client_cohorts"),
        Attack("query as a string", f"select distinct region from query('select * from {t}')"),
        Attack("query_table", f"select distinct region from query_table('{t}')"),
        Attack(
            "query in a CTE",
            f"with q as (select * from query('from {t}')) select distinct region from q",
        ),
        Attack("CTE", f"with x as (select * from {t}) select distinct region from x"),
        Attack("subquery", f"select distinct region from (select * from {t}) s"),
        Attack("from-first", "from marts.dim_client select distinct region"),
        Attack("union", f"select region from {t} union select region from marts.dim_client"),
        Attack(
            "union all",
            "select region from marts.mart_client_rfm union all select region from marts.mart_client_cohorts",
        ),
        Attack("propositions", "select distinct region from marts.mart_client_recommendations"),
        Attack(
            "propositions backtest",
            "select region, count(*) from marts.mart_recommendation_backtest group by region",
        ),
        Attack("except", "select region from marts.dim_client except select 'x'"),
        Attack("or true", f"select distinct region from {t} where 1 = 1 or region <> 'north'"),
        Attack("other region asked", f"select distinct region from {t} where region = 'south'"),
        Attack(
            "in subquery",
            f"select distinct region from {t} where region in (select region from query('from marts.dim_client'))",
        ),
        Attack(
            "comment trick",
            f"select distinct region from {t} /* */ -- union select region from marts.dim_client",
        ),
        Attack("summarize", "summarize marts.dim_client"),
        Attack("pivot", "pivot marts.dim_client on region using count(*)"),
        Attack("two statements", f"select 1; select distinct region from query('from {t}')"),
        Attack("read_text", f"select * from read_text('{secret}')"),
        Attack("read_blob", f"select * from read_blob('{secret}')"),
        Attack(
            "read_csv",
            f"select * from read_csv('{secret}', header = false, columns = {{'a': 'varchar'}})",
        ),
        Attack("replacement scan", f"select * from '{secret}'"),
        Attack("sniff_csv", f"select * from sniff_csv('{secret}')"),
        Attack("read_parquet", f"select * from read_parquet('{lake_file}')"),
        Attack("glob", f"select * from glob('{folder}/*')"),
        Attack(
            "file in a string query",
            f"select * from query('select * from read_text(''{secret}'')')",
        ),
        Attack("attach", f"attach '{other_file}' as other (read_only)", REFUSE),
        Attack(
            "attach then read",
            f"attach '{other_file}' as other (read_only); select distinct region from other.marts.mart_sales_lines",
            REFUSE,
        ),
        Attack("copy to", f"copy (select * from {t}) to '/tmp/lakehouse-leak.csv'", REFUSE),
        Attack("copy from", f"copy {t} from '{secret}'", REFUSE),
        Attack("export database", "export database '/tmp/lakehouse-leak'", REFUSE),
        Attack("set", "set enable_external_access = true", REFUSE),
        Attack(
            "set then read",
            f"set enable_external_access = true; select * from read_text('{secret}')",
            REFUSE,
        ),
        Attack("reset", "reset lock_configuration", REFUSE),
        Attack("pragma", "pragma enable_profiling", REFUSE),
        Attack("install", "install httpfs", REFUSE),
        Attack("load", "load httpfs", REFUSE),
        Attack("create table", f"create table marts.leak as select * from {t}", REFUSE),
        Attack("create temp view", "create temp view v as select * from marts.dim_client", REFUSE),
        Attack("checkpoint", "checkpoint", REFUSE),
        Attack("settings", "select * from duckdb_settings()"),
        Attack("current_setting", "select current_setting('home_directory')"),
        Attack("getenv", "select getenv('HOME')"),
        Attack("database list", "select * from duckdb_databases()"),
    ]


def trino_attacks(catalog: str) -> list[Attack]:
    """Statements for Trino's catalog ``catalog`` of the lake."""
    t = f"{catalog}.marts.mart_sales_lines"
    return [
        Attack("plain select", f"select distinct region from {t}"),
        Attack("upper case", f"SELECT DISTINCT REGION FROM {t.upper()}"),
        Attack(
            "quoted names", f'select distinct "region" from "{catalog}"."marts"."mart_sales_lines"'
        ),
        Attack("dim_client", f"select distinct region from {catalog}.marts.dim_client"),
        Attack("rfm", f"select distinct region from {catalog}.marts.mart_client_rfm"),
        Attack(
            "propositions",
            f"select distinct region from {catalog}.marts.mart_client_recommendations",
        ),
        Attack(
            "propositions backtest",
            f"select distinct region from {catalog}.marts.mart_recommendation_backtest",
        ),
        Attack("CTE", f"with x as (select * from {t}) select distinct region from x"),
        Attack("subquery", f"select distinct region from (select * from {t}) s"),
        Attack(
            "union",
            f"select region from {t} union select region from {catalog}.marts.mart_client_cohorts",
        ),
        Attack("or true", f"select distinct region from {t} where 1 = 1 or region <> 'north'"),
        Attack("time travel", f"select distinct region from {t} for version as of 0"),
        Attack("history table", f'select * from {catalog}.marts."mart_sales_lines$history"'),
        Attack("properties table", f'select * from {catalog}.marts."mart_sales_lines$properties"'),
        Attack(
            "table_changes",
            f"select distinct region from table({catalog}.system.table_changes('marts', 'mart_sales_lines', 0))",
        ),
        Attack("silver", f"select distinct region from {catalog}.silver.client"),
        Attack("bronze", f"select * from {catalog}.bronze.client"),
        Attack(
            "build area", f"select distinct region from {catalog}.analytics_marts.mart_sales_lines"
        ),
        Attack(
            "build area staging",
            f"select * from {catalog}.analytics_staging.stg_oltp__client_changes",
        ),
        Attack("aggregate mart", f"select * from {catalog}.marts.agg_sales_weekly"),
        Attack("system queries", "select query from system.runtime.queries"),
        Attack("system nodes", "select * from system.runtime.nodes"),
        Attack(
            "information schema",
            f"select table_schema, table_name from {catalog}.information_schema.tables",
        ),
        Attack("show create", f"show create table {t}"),
        Attack("values", "values ('north')"),
        Attack("set authorization", "set session authorization 'lakehouse'", REFUSE),
        Attack("set session", "set session query_max_run_time = '1h'", REFUSE),
        Attack(
            "set catalog session", f"set session {catalog}.parquet_use_column_index = false", REFUSE
        ),
        Attack("use schema", f"use {catalog}.silver", REFUSE),
        Attack("create table", f"create table {catalog}.marts.leak as select * from {t}", REFUSE),
        Attack("insert", f"insert into {t} select * from {t}", REFUSE),
        Attack("delete", f"delete from {t}", REFUSE),
        Attack("drop", f"drop table {t}", REFUSE),
        Attack(
            "create view",
            f"create view {catalog}.marts.v security definer as select * from {catalog}.marts.dim_client",
            REFUSE,
        ),
        Attack(
            "vacuum", f"call {catalog}.system.vacuum('marts', 'mart_sales_lines', '7d')", REFUSE
        ),
        Attack(
            "register",
            f"call {catalog}.system.register_table('marts', 'x', 's3://lakehouse/lake/silver/client')",
            REFUSE,
        ),
        Attack("flush cache", f"call {catalog}.system.flush_metadata_cache()", REFUSE),
        # preparing reads nothing; running it is the attack (refused by the table rules)
        Attack("prepare", f"prepare leak from select * from {catalog}.silver.client"),
        Attack("execute immediate", f"execute immediate 'select * from {catalog}.silver.client'"),
        Attack("grant", f"grant select on {catalog}.silver.client to user north_analyst", REFUSE),
        Attack("alter", f"alter table {t} set authorization north_analyst", REFUSE),
        Attack("kill", "call system.runtime.kill_query(query_id => 'x', message => 'y')", REFUSE),
        Attack("comment", f"comment on table {t} is 'x'", REFUSE),
    ]


def chart_queries(region_column: str = "region") -> list[tuple[str, dict[str, Any]]]:
    """Chart-data queries with ad hoc SQL a user can put in a chart's payload."""

    def sql_column(label: str, expression: str) -> dict[str, Any]:
        return {"label": label, "sqlExpression": expression, "expressionType": "SQL"}

    plain = {"columns": [region_column], "metrics": ["count"], "row_limit": 1000}
    return [
        ("group by region", plain),
        ("ad hoc column", {**plain, "columns": [sql_column("r", region_column)]}),
        ("where or true", {**plain, "extras": {"where": "1 = 1 or region <> 'north'"}}),
        ("where parenthesis escape", {**plain, "extras": {"where": "1 = 1) or (1 = 1"}}),
        ("where comment", {**plain, "extras": {"where": "1 = 1 --"}}),
        ("having or true", {**plain, "extras": {"having": "1 = 1 or 1 = 1"}}),
        ("subquery column", {**plain, "columns": [sql_column("r", "(select max(region) from marts.dim_client)")]}),
        ("string query column", {**plain, "columns": [sql_column("r", "(select string_agg(region, ',') from query('from marts.dim_client'))")]}),
        ("file column", {**plain, "columns": [sql_column("r", "(select content from read_text('/etc/passwd'))")]}),
        ("setting column", {**plain, "columns": [sql_column("r", "current_setting('home_directory')")]}),
        ("subquery metric", {"columns": [], "metrics": [{"expressionType": "SQL", "label": "m", "sqlExpression": "max((select max(region) from marts.dim_client))"}], "row_limit": 10}),
        ("where subquery", {**plain, "extras": {"where": "region in (select region from marts.dim_client)"}}),
        ("filter value", {**plain, "filters": [{"col": "region", "op": "IN", "val": ["north", "south", "east", "west", "centre"]}]}),
        ("union in where", {**plain, "extras": {"where": "1 = 1 union select region, 1 from marts.dim_client"}}),
    ]  # fmt: skip


def send(
    run: Callable[[str], Iterable[Iterable[Any]] | None],
    attacks: list[Attack],
    judge: Judge,
    where: str,
) -> int:
    """Each attack run by ``run`` (its rows, or None when refused), judged; how many
    were refused."""
    refused = 0
    for attack in attacks:
        rows = run(attack.sql)
        if rows is None:
            refused += 1
            continue
        if attack.kind == REFUSE:
            judge.leaks.append(f"{attack.label} ({where}): ran")
        judge.rows(f"{attack.label} ({where})", rows)
    return refused


def send_sql_lab(
    analyst: Any, database: int, attacks: list[Attack], judge: Judge, where: str
) -> int:
    """Each attack through SQL Lab on ``database``, judged; how many were refused."""

    def run(sql: str) -> list[list[Any]] | None:
        response = analyst.execute_sql(database, sql)
        if response.status_code != 200:
            return None
        return [list(row.values()) for row in response.json().get("data") or []]

    return send(run, attacks, judge, where)


def send_chart_queries(analyst: Any, admin: Any, dataset: str, judge: Judge) -> int:
    """Each chart query of :func:`chart_queries` on the dataset named ``dataset`` through
    the chart-data API, judged; how many were refused."""
    found = admin.get(
        "/api/v1/dataset/", q=f"(filters:!((col:table_name,opr:eq,value:{dataset})))"
    ).json()["result"]
    refused = 0
    for label, query in chart_queries():
        payload = {
            "datasource": {"id": found[0]["id"], "type": "table"},
            "force": True,
            "queries": [query],
            "result_format": "json",
            "result_type": "full",
        }
        response = analyst.post("/api/v1/chart/data", payload)
        if response.status_code != 200:
            refused += 1
            continue
        for result in response.json()["result"]:
            judge.rows(f"chart: {label}", [row.values() for row in result["data"]])
    return refused
