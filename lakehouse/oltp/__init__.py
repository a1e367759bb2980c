"""The operational database: the shop's PostgreSQL, its schema, and a live simulator.

``cluster`` runs the project's own PostgreSQL cluster under ``<data_dir>/oltp`` (or checks
a real one when ``oltp_managed`` is off), ``migrate`` applies the schema, and
``simulate`` runs the demo business against it as real transactions.
"""
