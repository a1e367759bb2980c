"""Change data capture: reading Debezium change events and landing them in the lake."""
