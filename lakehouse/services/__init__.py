"""Infrastructure services the project runs as local child processes (Kafka, ...).

Each service installs itself from a package registry into ``~/.cache/lakehouse/`` once,
keeps its state under a home directory it is given, and starts, stops and restarts as
a process of its own.
"""

from __future__ import annotations

from lakehouse.exceptions import LakehouseError


class ServiceError(LakehouseError):
    """A service cannot be installed, started or stopped; the message names the step."""
