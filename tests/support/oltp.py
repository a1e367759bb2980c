"""A PostgreSQL cluster of the project's own for one test module, on a free port.

Each module (and each pytest-xdist worker) gets its own data directory and port, so
parallel workers never share a cluster. Stopped when the ``with`` block ends.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lakehouse.oltp.cluster import Cluster
from lakehouse.settings import Settings, load_settings
from tests.support.ports import free_port


def reachable_by_postgres(path: Path) -> None:
    """As root, PostgreSQL runs as the ``postgres`` user, which must traverse every parent
    of its data directory; pytest's ``/tmp/pytest-of-root`` is closed (0700). Open the
    parents for traversal only (o+x: no listing)."""
    if os.geteuid() != 0:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def oltp_settings(base: Path, **overrides: Any) -> Settings:
    reachable_by_postgres(base)
    overrides.setdefault("oltp_port", free_port())
    return load_settings(data_dir=base, **overrides)


@contextmanager
def oltp_cluster(base: Path, **overrides: Any) -> Iterator[Settings]:
    """Settings pointing at a fresh, running, migrated cluster under ``base``."""
    settings = oltp_settings(base, **overrides)
    cluster = Cluster(settings)
    try:
        cluster.up()
        yield settings
    finally:
        # another pytest session of root's may have closed /tmp/pytest-of-root again
        # (pytest makes it 0700): pg_ctl, as `postgres`, must reach the data directory
        reachable_by_postgres(base)
        cluster.down()
