"""Settings: the schema, where values come from, and errors that point at lines."""
