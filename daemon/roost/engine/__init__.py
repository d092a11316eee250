"""Running rules: matching, admission, runs, timers, traces, and loading rule files."""
