"""What a rule is: the Python face, triggers, conditions, schedules, TOML's schema."""
