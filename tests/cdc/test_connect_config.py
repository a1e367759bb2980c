"""The Kafka Connect connector configurations in docker/connect: made from the settings,
with the value modes the lander decodes, and SQL Server topics routed to the contracts."""

from __future__ import annotations

import json
import re

from lakehouse.cdc.connect import VALUE_MODES, connector_files
from lakehouse.cdc.debezium import engine_properties
from lakehouse.contracts import load_contracts
from lakehouse.settings import PROJECT_DIR, Settings

CONNECT_DIR = PROJECT_DIR / "docker" / "connect"


def test_the_committed_files_are_what_the_settings_make() -> None:
    files = connector_files(Settings.model_construct())
    assert sorted(files) == sorted(p.name for p in CONNECT_DIR.glob("*.json"))
    for name, text in files.items():
        assert (CONNECT_DIR / name).read_text() == text, (
            f"docker/connect/{name} is stale: run `python -m lakehouse.cdc.connect docker/connect`"
        )


def test_connectors_write_values_as_the_embedded_engine_does(tmp_path) -> None:  # type: ignore[no-untyped-def]
    embedded = engine_properties(Settings(data_dir=tmp_path))
    for name in ("oltp-postgres.json", "oltp-sqlserver.json"):
        config = json.loads((CONNECT_DIR / name).read_text())
        for key, value in VALUE_MODES.items():
            assert config[key] == value
            if key in embedded:
                assert embedded[key] == value, key


def test_sql_server_topics_are_routed_to_the_contracts_topics() -> None:
    settings = Settings.model_construct()
    config = json.loads((CONNECT_DIR / "oltp-sqlserver.json").read_text())
    pattern = re.compile(config["transforms.contracts.regex"])
    replacement = config["transforms.contracts.replacement"].replace("$1", r"\1")
    for table, contract in load_contracts(settings.contracts_dir).items():
        raw = f"{settings.topic_prefix}.{settings.oltp_database}.dbo.{table}"  # SQL Server's name
        assert pattern.fullmatch(raw)
        assert pattern.sub(replacement, raw) == settings.topic(table, contract.schema)
        assert f"dbo.{table}" in config["table.include.list"].split(",")
