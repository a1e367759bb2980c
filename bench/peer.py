"""Running peers alike: each in a process of its own, started cold, its input read into
the page cache first, so that no peer is timed on a start-up, a JIT or a disk read that
another paid for (the rule at the top of ``bench/README.md``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def warm_page_cache(*paths: Path) -> int:
    """Read every file under ``paths`` once, so each peer after it finds its input in the
    OS page cache (none pays the disk for the others); the bytes read."""
    total = 0
    for root in paths:
        for path in [root] if root.is_file() else sorted(root.rglob("*")):
            if path.is_file():
                with path.open("rb") as f:
                    while chunk := f.read(1 << 20):
                        total += len(chunk)
    return total


def in_own_process(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m <module> <args>`` (a benchmark's child mode) and return the JSON
    object it printed last on its standard output."""
    out = subprocess.run(
        [sys.executable, "-m", module, *args], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result
