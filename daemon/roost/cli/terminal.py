"""Text from the cloud, made safe for a terminal.

A device name is whatever the vendor's app let someone type: escape sequences, a carriage
return that rewrites the line, bidi overrides that reorder it, a lone surrogate that
cannot even be encoded. Everything a command prints for a person passes `clean` (values
from the daemon) or `line` (a finished message); `--json` output is left exact, since
JSON's own escaping already keeps it safe.
"""

from __future__ import annotations

import re
from typing import Any

# C0 and C1 controls, DEL, bidi marks/embeddings/overrides/isolates, lone surrogates.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
_UNSAFE_BUT_LINES = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def text(value: str) -> str:
    """One value on one line: every control character (newlines too) escaped."""
    return _UNSAFE.sub(_escape, value)


def line(message: str) -> str:
    """A finished message of one or more lines: all but its newlines escaped."""
    return _UNSAFE_BUT_LINES.sub(_escape, message)


def clean(value: Any) -> Any:
    """`value` (an answer of the daemon) with every string in it, keys too, made safe."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
