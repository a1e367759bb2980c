"""What every flow needs before it runs: the settings, and Prefect's state kept under
the data directory."""

from __future__ import annotations

import os
from pathlib import Path

from lakehouse.settings import Settings, load_settings


def settings_for(data_dir: str | None) -> Settings:
    # a flow a Prefect worker runs writes the data directory for its user only, as the
    # CLI does (0700 directories, 0600 files)
    os.umask(0o077)
    settings = load_settings(**({"data_dir": data_dir} if data_dir else {}))
    use_prefect_home(settings)
    return settings


def use_prefect_home(settings: Settings) -> None:
    """Keep Prefect's database and logs under the data directory, unless the user points
    PREFECT_HOME elsewhere. Call it before Prefect reads its settings."""
    for key, value in settings.prefect_env().items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
