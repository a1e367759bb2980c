"""What every flow needs before it runs: the settings, and Prefect's state kept under
the data directory."""

from __future__ import annotations

import os

from lakehouse.settings import Settings, load_settings


def settings_for(data_dir: str | None) -> Settings:
    settings = load_settings(**({"data_dir": data_dir} if data_dir else {}))
    for key, value in settings.prefect_env().items():
        os.environ.setdefault(key, value)
    return settings
