"""Prefect flows: thin, they orchestrate; the ``lakehouse`` package does the work."""
