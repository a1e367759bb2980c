"""Two `lakehouse build` started at once on one lake: the second waits for the build
lease, so both end cleanly, one after the other, and what is served is one whole
publication (the later run's), never an interleaving of the two."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakehouse.lake import quality_tables
from tests.quality.gate_support import data_marts, published, small_lake

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("gate")]
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))


@pytest.mark.timeout(2400)
def test_two_builds_at_once_publish_one_after_the_other(tmp_path: Path) -> None:
    settings = small_lake(tmp_path / "lake")
    (tmp_path / "lakehouse.yaml").write_text(
        "freshness_warn_after_minutes: null\nfreshness_error_after_minutes: null\n"
        # the second waits for the whole first build, which takes minutes on a busy machine
        "lease_wait_seconds: 1800\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    # output goes to files, not pipes: the build holding the lease writes progress while
    # the test waits on the other, and a full pipe would stall it (and the waiter with it)
    logs = [(tmp_path / f"build-{i}.out", tmp_path / f"build-{i}.err") for i in range(2)]
    builds = []
    for out_path, err_path in logs:
        with out_path.open("w") as out, err_path.open("w") as err:
            builds.append(
                subprocess.Popen(
                    [LAKEHOUSE, "build", "--data-dir", str(settings.root)],
                    cwd=tmp_path,
                    env=env,
                    stdout=out,
                    stderr=err,
                    text=True,
                )
            )
    for build in builds:
        build.wait(timeout=1800)
    outputs = [(o.read_text(), e.read_text()) for o, e in logs]
    for build, (out, err) in zip(builds, outputs, strict=True):
        assert build.returncode == 0 and "Traceback" not in out + err, err
    assert sum("waiting for a build" in err for _, err in outputs) == 1, outputs

    runs = (
        DeltaTable(settings.table_uri(quality_tables.LAYER, quality_tables.RUNS))
        .to_pyarrow_table()
        .sort_by("started_at")
        .to_pylist()
    )
    assert [r["outcome"] for r in runs] == ["published", "published"]
    assert runs[1]["started_at"] >= runs[0]["finished_at"]  # one after the other
    view = published(settings)
    assert view["run_id"] == view["data_run_id"] == runs[1]["run_id"]
    assert view["listed"] == view["counted"]
    assert len(data_marts(view)) >= 11 and all(data_marts(view).values())
