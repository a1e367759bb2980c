"""The benchmarks' records and bench/README.md: every benchmark writes its record through
the shared writer (bench/record.py), every committed record holds the envelope (date,
machine, versions, parameters, peers, ratios), and the README is exactly what the
committed records make (``make bench-readme``), so its figures cannot drift from them."""

from __future__ import annotations

import ast
import json
from datetime import datetime
from pathlib import Path

import jinja2
import pytest

from bench import readme, record

# the modules of bench/ that are not benchmarks
NOT_BENCHMARKS = {"__init__", "record", "readme", "peer", "dashboard_queries"}
BENCHMARKS = sorted(p for p in record.BENCH.glob("*.py") if p.stem not in NOT_BENCHMARKS)


def test_the_readme_is_what_the_committed_records_make() -> None:
    assert readme.README.read_text() == readme.render(), (
        "bench/README.md is not what bench/results/ makes: run `make bench-readme`"
    )


def test_every_committed_record_holds_the_envelope() -> None:
    found = list(record.RESULTS.glob("*.json"))
    assert found
    for path in found:
        r = record.load(path)
        assert (record.BENCH / f"{r['benchmark']}.py").exists(), path
        assert r["peers"], f"{path}: no peers"
        datetime.fromisoformat(r["date"])
        if r.get("recorded_from"):  # converted from an old README: claims no machine
            assert r["machine"] is None and r["versions"] is None, path
            continue
        assert {"cores", "memory_gb", "cpu", "kernel", "load_1min"} <= r["machine"].keys()
        assert r["versions"]["python"] and r["versions"]["commit"], path


@pytest.mark.parametrize("module", BENCHMARKS, ids=lambda p: p.stem)
def test_every_benchmark_records_through_the_shared_writer(module: Path) -> None:
    tree = ast.parse(module.read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    names = {ast.unparse(c.func) for c in calls}
    assert "record.write" in names or "seeded_main" in names, f"{module.name} records nothing"
    own_json = [
        ast.unparse(c)
        for c in calls
        if ast.unparse(c.func) == "json.dump"
        or (
            ast.unparse(c.func).endswith("write_text")
            and any("json.dumps" in ast.unparse(a) for a in c.args)
        )
    ]
    assert not own_json, f"{module.name} writes its own JSON: hand it to bench.record.write"
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert "results" not in strings, f"{module.name} names bench/results/ itself"


def test_a_record_holds_the_envelope_whatever_the_benchmark_wrote(tmp_path: Path) -> None:
    # a benchmark that wrote its own date and machine adopts the writer by handing it
    # what it wrote: the writer's own envelope wins, the rest becomes its figures
    own = {"date": "yesterday", "machine": "mine", "p95_s": 1.5, "peers": {"a": {"x": 1}}}
    path = record.write("made_up", own, libraries=("pyarrow", "no-such-lib"), directory=tmp_path)
    r = json.loads(path.read_text())
    assert r["benchmark"] == "made_up" and r["peers"] == {"a": {"x": 1}}
    assert r["figures"] == {"p95_s": 1.5}
    assert datetime.fromisoformat(r["date"]).tzinfo is not None
    assert r["machine"]["cores"] >= 1 and r["machine"]["memory_gb"] > 0
    assert r["versions"]["pyarrow"] and r["versions"]["no-such-lib"] is None
    assert len(r["versions"]["commit"]) == 40


def test_a_benchmark_without_a_template_gets_a_generic_section(tmp_path: Path) -> None:
    record.write(
        "made_up",
        {
            "freshness": {"p95_s": 4.25},
            "runs": [{"keys": "shop", "p95_s": 1.0}, {"keys": "uniform", "p95_s": 9.0}],
        },
        parameters={"rows": 10_000_000},
        peers={"ours": {"p50_s": 0.5}, "whole-file merge": {"p50_s": 12.0, "extra": 3}},
        ratios={"ours_vs_merge": 24.0},
        directory=tmp_path,
    )
    text = readme.render(tmp_path)
    assert "## `made_up` (`bench/made_up.py`)" in text
    assert "| peer | p50_s | extra |" in text
    assert "| whole-file merge | 12.000 | 3 |" in text
    assert "| freshness.p95_s | 4.250 |" in text
    assert "| rows | 10,000,000 |" in text
    assert "| # | keys | p95_s |" in text and "| 1 | uniform | 9.000 |" in text


def test_a_figure_a_template_needs_and_the_record_lacks_is_an_error(tmp_path: Path) -> None:
    ingest = json.loads((record.RESULTS / "ingest.json").read_text())
    del ingest["peers"]["naive"]
    (tmp_path / "ingest.json").write_text(json.dumps(ingest))
    with pytest.raises(jinja2.UndefinedError):
        readme.render(tmp_path)
