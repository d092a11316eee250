"""roost: a rules daemon for smart homes that live in vendor clouds."""

__version__ = "0.1.0"

from roost.rules import rule, when

__all__ = ["rule", "when"]
