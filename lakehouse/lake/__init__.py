"""Delta Lake storage: the bronze change log, the silver current state, the dead letters."""
