"""The command line: fast help, and one-line errors for a user's mistakes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LAKEHOUSE = [sys.executable, "-m", "lakehouse.cli.main"]


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [*LAKEHOUSE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_help_lists_the_commands() -> None:
    out = _run("--help")
    assert out.returncode == 0
    for command in ("generate", "ingest", "build", "maintain", "demo", "status"):
        assert command in out.stdout


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; import lakehouse.cli.main; "
        "heavy = [m for m in ('prefect', 'dbt', 'deltalake', 'duckdb', 'pydantic_settings') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["ingest"], {}, "run `lakehouse generate` first"),
        (["status"], {"LAKEHOUSE_PROFILE": "cloud"}, "invalid setting 'profile'"),
        (["status"], {"LAKEHOUSE_CONTRACTS_DIR": "/nonexistent"}, "contracts directory"),
        (
            ["stack", "status"],
            {"LAKEHOUSE_MINIO_PORT": "59100", "LAKEHOUSE_MINIO_CONSOLE_PORT": "59100"},
            "ports must differ: minio_port and minio_console_port share a port",
        ),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    (tmp_path / "empty").mkdir()  # status reads an existing data directory
    out = _run(*args, "--data-dir", str(tmp_path / "empty"), env=env, cwd=tmp_path)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr + out.stdout
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error:") and expected in " ".join(out.stderr.split())


def test_bad_config_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "lakehouse.yaml").write_text("profile: [unclosed\n")
    out = _run("status", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "lakehouse.yaml" in out.stderr
