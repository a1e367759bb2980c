"""What every command group shares: the options most commands take and the settings they
load. Settings (pydantic) load inside a command, never when the CLI starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lakehouse.exceptions import ConfigError

if TYPE_CHECKING:
    from lakehouse.settings import Settings

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="where all state lives (default ./.lakehouse)"),
]

AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def settings_for(data_dir: Path | None, *, existing: bool = False) -> Settings:
    """The settings; ``existing``: the command reads what the pipeline wrote, so a data
    directory that does not exist is a typo, not an empty lake to report as healthy
    (generate, demo, ingest from Kafka, oltp up and stack up create it)."""
    from lakehouse.settings import load_settings  # pydantic: loaded only when a command runs

    overrides: dict[str, Any] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = load_settings(**overrides)
    if existing and not settings.root.is_dir():
        raise ConfigError(
            f"data directory {settings.root} does not exist: check --data-dir (or "
            "LAKEHOUSE_DATA_DIR); `lakehouse demo` or `lakehouse generate` creates one"
        )
    return settings
