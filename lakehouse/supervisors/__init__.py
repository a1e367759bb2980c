"""Process supervisors: the infrastructure the project runs as local child processes
(PostgreSQL, Kafka, Trino, MinIO, ...).

Each installs its program from a package registry (into ``~/.cache/lakehouse/``) or
the system's packages once, keeps its state under a home directory it is given, and
starts, stops and restarts it as a process of its own. Their error is
:class:`lakehouse.exceptions.ServiceError` (PostgreSQL's is ``OltpError``: the source
database's errors name it, whoever runs it).
"""
