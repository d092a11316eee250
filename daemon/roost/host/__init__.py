"""The process on its machine: files, the lock, logs, listening sockets, kill points."""
