"""The durable state of the daemon."""
