"""`lakehouse report build` as a user runs it: the reports of one scope, where they are
(also as JSON), and a bad week or scope in one `error:` line with exit code 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lakehouse.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api")]

LAKEHOUSE = [sys.executable, "-m", "lakehouse.cli.main"]


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAKEHOUSE, "report", "build", "--data-dir", str(settings.root), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
        timeout=180,
    )


def test_the_command_builds_one_scope_and_says_where(served: Settings) -> None:
    out = _run(served, "--scope", "all", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    [built] = json.loads(out.stdout)
    assert built["scope"] == "all" and built["narrative"] == "template"
    folder = served.reports_dir / "all" / built["week"]
    assert built["folder"] == str(folder)
    assert (folder / "report.pdf").stat().st_size > 10_000
    table = _run(served, "--scope", "north", "--week", built["week"])
    assert table.returncode == 0, table.stderr[-2000:]
    assert str(served.reports_dir / "north" / built["week"]) in table.stdout
    assert "template narrative: no llm_base_url is set" in table.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--week", "2025-04-29"], "is not a Monday"),
        (["--week", "last week"], "not a week"),
        (["--week", "1999-01-04"], "no complete week 1999-01-04"),
        (["--scope", "Atlantis"], "not a report scope"),
        (["--scope", "atlantis"], "no region 'atlantis'"),
    ],
)
def test_a_bad_week_or_scope_is_one_error_line(
    served: Settings, args: list[str], expected: str
) -> None:
    out = _run(served, *args)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
