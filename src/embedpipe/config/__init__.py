"""The run's config as a whole: the cross-key checks that run before any job (the schema checks each value)."""
