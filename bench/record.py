"""The one way a benchmark writes its result: ``bench/results/<name>.json``, kept in git,
from which ``python -m bench.readme`` renders ``bench/README.md``.

Every record holds the same envelope, so a figure can always be traced to where, when
and with what it was measured:

- ``benchmark``: the module's name (``ingest``, ``cdc``, ...);
- ``date``: when the run ended, ISO 8601 in UTC;
- ``machine``: cores, memory, CPU model, platform and kernel, the 1-minute load average
  when the run ended (the machine is shared: a figure without its load misleads);
- ``versions``: Python, the project's commit (and whether the work tree had changes),
  and the version of every library the peers run on;
- ``parameters``: the run's options and data sizes;
- ``peers``: each contender's figures, measured on the same data in the same run;
- ``ratios``: the comparisons the benchmark exists for (ours / a peer);
- ``figures``: anything else the benchmark reports.

A record converted from figures written down before records existed says so in
``recorded_from`` and holds ``null`` where the machine or the versions were not noted.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PROJECT = BENCH.parent
ENVELOPE = ("benchmark", "date", "machine", "versions", "parameters", "peers", "ratios")
# what every benchmark's own figures may not shadow: the writer measures these itself
_OWN = {"benchmark", "date", "machine", "versions"}
_RENDERED = ("bench/results/", "bench/README.md")


def machine() -> dict[str, Any]:
    """The machine the run measured on."""
    memory = _meminfo_kb("MemTotal")
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(memory / 1024**2, 1) if memory else None,
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def _meminfo_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=PROJECT, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.rstrip("\n")  # not strip(): a status line starts with a space


def versions(libraries: Iterable[str] = (), **others: str | None) -> dict[str, Any]:
    """Python, the project's commit and each named distribution's installed version
    (``None`` for one not installed); ``others`` adds versions known otherwise (a
    server's, a tool's)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    found: dict[str, Any] = {
        "python": platform.python_version(),
        "commit": _git("rev-parse", "HEAD"),
        # changes beside the records and the README rendered from them: the code measured
        # was not the commit's
        "work_tree_clean": None
        if status is None
        else not [line for line in status.splitlines() if not line[3:].startswith(_RENDERED)],
    }
    for name in libraries:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found.update(others)
    return found


def write(
    benchmark: str,
    figures: Mapping[str, Any] | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    peers: Mapping[str, Any] | None = None,
    ratios: Mapping[str, Any] | None = None,
    libraries: Sequence[str] = (),
    other_versions: Mapping[str, str | None] | None = None,
    name: str | None = None,
    directory: Path = RESULTS,
) -> Path:
    """Write the run's record as ``bench/results/<name or benchmark>.json`` (under
    ``directory``); its path.

    ``figures`` is what the benchmark measured beyond its peers and ratios; keys of the
    envelope in it (a benchmark that wrote its own ``machine`` or ``date``) give way to
    the writer's own, so a benchmark adopts the writer by handing it what it wrote."""
    rest = {k: v for k, v in (figures or {}).items() if k not in _OWN}
    record = {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(libraries, **(other_versions or {})),
        "parameters": {**rest.pop("parameters", {}), **(parameters or {})},
        "peers": {**rest.pop("peers", {}), **(peers or {})},
        "ratios": {**rest.pop("ratios", {}), **(ratios or {})},
        "figures": rest,
    }
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{name or benchmark}.json"
    out.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return out


def load(path: Path) -> dict[str, Any]:
    """A record, checked to hold the envelope."""
    record: dict[str, Any] = json.loads(path.read_text())
    missing = [key for key in ENVELOPE if key not in record]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: write it with bench.record.write")
    return record


def records(directory: Path = RESULTS) -> list[dict[str, Any]]:
    """Every record under ``directory``, by file name."""
    return [load(p) for p in sorted(directory.glob("*.json"))]
