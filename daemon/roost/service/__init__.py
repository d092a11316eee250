"""The running daemon: wiring, systemd, the control socket, metrics, persistence."""
