"""SQL transformations: dbt owns them; this package only runs dbt with the settings."""
