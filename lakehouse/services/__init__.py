"""Infrastructure services the project runs as local child processes (Kafka, ...).

Each service installs itself from a package registry into ``~/.cache/lakehouse/`` once,
keeps its state under a home directory it is given, and starts, stops and restarts as
a process of its own. Their error is :class:`lakehouse.exceptions.ServiceError`.
"""
