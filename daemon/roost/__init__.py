"""roost: a rules daemon for smart homes that live in vendor clouds."""

__version__ = "0.1.0"
