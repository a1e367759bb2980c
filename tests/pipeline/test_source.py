"""The demo's choice of source: what the data directory holds wins, then PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.exceptions import ConfigError, OltpError
from lakehouse.pipeline import source
from lakehouse.pipeline.source import choose_source
from lakehouse.settings import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data")


def _record(settings: Settings) -> None:
    settings.changes_path.mkdir(parents=True, exist_ok=True)
    (settings.changes_path / "manifest.json").write_text("{}")


def _capture(settings: Settings) -> None:
    (settings.root / "capture").mkdir(parents=True, exist_ok=True)
    (settings.root / "capture" / "offsets.dat").write_bytes(b"")


def test_what_the_data_directory_holds_decides(settings: Settings) -> None:
    _record(settings)
    assert choose_source(settings, "auto") == "files"
    with pytest.raises(ConfigError, match="holds recorded files"):
        choose_source(settings, "live")


def test_a_live_capture_is_carried_on(settings: Settings) -> None:
    _capture(settings)
    assert choose_source(settings, "auto") == "live"
    with pytest.raises(ConfigError, match="holds live captures"):
        choose_source(settings, "files")


def test_without_postgresql_the_recorded_files_with_a_warning(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> None:
        raise OltpError("PostgreSQL is not installed")

    monkeypatch.setattr(source, "find_bindir", missing)
    warnings: list[str] = []
    assert choose_source(settings, "auto", warn=warnings.append) == "files"
    assert warnings == ["PostgreSQL is not installed; the demo uses recorded change files"]
    monkeypatch.setattr(source, "find_bindir", lambda: Path("/usr/lib/postgresql/15/bin"))
    assert choose_source(settings, "auto") == "live"
