"""Debezium connector configurations for Kafka Connect (the deployment in ``docker/``).

In a deployment the connectors run in Kafka Connect and write Kafka topics, which the
lander consumes (``kafka_bootstrap_servers``). The configurations are made here from the
settings and the contracts, with the same value modes the embedded engine uses
(decimals as strings, adaptive time precision, tombstones, JSON without schemas), so the
lander reads both alike. ``python -m lakehouse.cdc.connect docker/connect`` writes them;
a test keeps the committed files equal to what this module makes.

Secrets are not in the files: Kafka Connect resolves ``${env:NAME}`` from the worker's
environment (``config.providers=env``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from lakehouse.contracts import load_contracts
from lakehouse.settings import Settings

# how both connectors write values; the lander's decoding depends on these
VALUE_MODES = {
    "decimal.handling.mode": "string",
    "time.precision.mode": "adaptive",
    "tombstones.on.delete": "true",
    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable": "false",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable": "false",
}


def postgres_connector(settings: Settings, *, host: str = "postgres") -> dict[str, str]:
    tables = sorted(
        f"{c.schema}.{c.table}" for c in load_contracts(settings.contracts_dir).values()
    )
    name = f"lakehouse_{settings.source_name}"
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "database.hostname": host,
        "database.port": "5432",
        "database.user": "${env:OLTP_USER}",
        "database.password": "${env:OLTP_PASSWORD}",
        "database.dbname": settings.oltp_database,
        "topic.prefix": settings.topic_prefix,
        "plugin.name": "pgoutput",
        "slot.name": name,
        "publication.name": name,
        "publication.autocreate.mode": "filtered",
        "table.include.list": ",".join(tables),
        "snapshot.mode": "initial",
        **VALUE_MODES,
    }


def sqlserver_connector(
    settings: Settings, *, host: str = "sqlserver", schema: str = "dbo"
) -> dict[str, str]:
    """The shop's tables in a SQL Server database of the same name (CDC enabled on the
    database and on each table). SQL Server topics name the database and the schema,
    ``<prefix>.<database>.dbo.<table>``; a RegexRouter gives them the names of the
    contracts, ``<prefix>.<contract schema>.<table>``, so the lander needs nothing else."""
    contracts = load_contracts(settings.contracts_dir).values()
    prefix, database = settings.topic_prefix, settings.oltp_database
    contract_schema = {c.schema for c in contracts}
    if len(contract_schema) != 1:
        raise ValueError("the SQL Server route expects every contract in one schema")
    return {
        "connector.class": "io.debezium.connector.sqlserver.SqlServerConnector",
        "tasks.max": "1",
        "database.hostname": host,
        "database.port": "1433",
        "database.user": "${env:SQLSERVER_USER}",
        "database.password": "${env:SQLSERVER_PASSWORD}",
        "database.names": database,
        "database.encrypt": "false",
        "topic.prefix": prefix,
        "table.include.list": ",".join(sorted(f"{schema}.{c.table}" for c in contracts)),
        "snapshot.mode": "initial",
        "schema.history.internal.kafka.bootstrap.servers": "kafka:9092",
        "schema.history.internal.kafka.topic": f"{prefix}.schema-history",
        "transforms": "contracts",
        "transforms.contracts.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.contracts.regex": re.escape(f"{prefix}.{database}.{schema}.") + "(.*)",
        "transforms.contracts.replacement": f"{prefix}.{contract_schema.pop()}.$1",
        **VALUE_MODES,
    }


def connector_files(settings: Settings) -> dict[str, str]:
    """File name -> JSON body to ``PUT /connectors/<name>/config`` on Kafka Connect."""
    configs = {
        f"{settings.source_name}-postgres.json": postgres_connector(settings),
        f"{settings.source_name}-sqlserver.json": sqlserver_connector(settings),
    }
    return {name: json.dumps(body, indent=2) + "\n" for name, body in configs.items()}


def main(argv: list[str]) -> None:
    out = Path(argv[0] if argv else "docker/connect")
    out.mkdir(parents=True, exist_ok=True)
    # the defaults, not this machine's environment: the files are the project's
    for name, text in connector_files(Settings.model_construct()).items():
        (out / name).write_text(text)
        print(out / name)


if __name__ == "__main__":
    main(sys.argv[1:])
