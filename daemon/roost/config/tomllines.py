"""Where a setting is written in a TOML file, so that an error can point at its line.

Best effort, without a TOML parser that keeps positions: the file's lines (comments and
blank lines dropped) are searched for each key of the setting's path in turn, `[table]`
and `[[array]]` headers (the N-th one for a list index) as well as `key =` lines, dotted
keys and inline tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator


def toml_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        if stripped:
            yield number, stripped


def find_line(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best effort: the line of the TOML text where the setting at `loc` is written."""
    lines = list(toml_lines(text))
    position, found = 0, None
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(part, int):
            continue
        index = parts[i + 1] if i + 1 < len(parts) and isinstance(parts[i + 1], int) else 0
        hit = _find_key(lines, position, part, int(index))
        if hit is not None:  # else keep looking for the deeper keys (dotted keys, inline tables)
            position, found = hit, lines[hit][0]
    return found


def _find_key(lines: list[tuple[int, str]], start: int, key: str, index: int) -> int | None:
    """Position of the `index`-th `[[key]]`/`[key]` header or `key =` line from `start`."""
    quoted = re.escape(key)
    pattern = re.compile(
        rf"^\[\[?\s*(?:[\w.\"-]+\.)?\"?{quoted}\"?\s*\]\]?$|(?:^|[\s.{{,])\"?{quoted}\"?\s*="
    )
    seen = 0
    for position in range(start, len(lines)):
        if pattern.search(lines[position][1]):
            if seen == index:
                return position
            seen += 1
    return None
