"""The docs sites under the data directory: dbt docs (one self-contained HTML file) and
the Great Expectations Data Docs that the checkpoints update."""

from __future__ import annotations

from pathlib import Path

from lakehouse.progress import Progress
from lakehouse.settings import Settings
from lakehouse.transform.dbt import run_dbt


def docs_sites(settings: Settings) -> dict[str, Path]:
    """The entry page of each site (it may not exist yet)."""
    return {
        "dbt": settings.docs_dir / "dbt" / "static_index.html",
        "gx": settings.docs_dir / "gx" / "index.html",
    }


def build_docs(settings: Settings, progress: Progress | None = None) -> dict[str, Path]:
    """``dbt docs generate --static`` into ``<docs_dir>/dbt``; the sites that exist."""
    target = settings.docs_dir / "dbt"
    target.mkdir(parents=True, exist_ok=True)
    args = ["docs", "generate", "--static", "--target-path", str(target)]
    run_dbt(settings, args, progress=progress)
    return {name: path for name, path in docs_sites(settings).items() if path.exists()}
