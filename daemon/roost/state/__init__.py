"""From vendor payloads to events: the current picture of each home."""
