"""What runs several stages together: the live demo (the shop simulated in PostgreSQL
while Debezium captures it) and the choice of the demo's source of changes.

It sits above the sources (``oltp``, ``cdc``, ``generate``) and the lake, and below the
flows and the CLI, which call it.
"""
