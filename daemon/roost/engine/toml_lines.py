"""Where a key is written in a TOML rule file: the line an error points at.

Best effort over the text itself (tomllib keeps no positions): a key path such as
("do", 1, "tags") is found in inline tables, lists and `[[rule.do]]` tables alike.
"""

from __future__ import annotations

import re


def line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def locate(text: str, start: int, end: int, loc: tuple[int | str, ...]) -> int:
    """Best effort: the offset in text[start:end] (one [[rule]]) where the key at `loc` is
    written, e.g. ("do", 1, "tags"), for inline tables, lists and [[rule.do]] alike."""
    position = start
    for index, part in enumerate(loc):
        if isinstance(part, int):
            parent = loc[index - 1] if index else ""
            position, end = _element(text, position, end, str(parent), part)
            continue
        match = _key_pattern(part).search(text, position, end)
        if match is None:
            break
        position = match.start() + (len(match.group(0)) - len(match.group(0).lstrip("\n\t {,")))
    return position


def _key_pattern(key: str) -> re.Pattern[str]:
    name = re.escape(key)
    assignment = rf"(?:^|[\s{{,])\"?{name}\"?[ \t]*="
    header = rf"^[ \t]*\[\[?[ \t]*rule\.{name}[ \t]*\]"
    return re.compile(rf"(?m){assignment}|{header}")


def _element(text: str, position: int, end: int, parent: str, index: int) -> tuple[int, int]:
    """The span of the index-th element of the list at `position` (`key = [ ... ]`), or of
    the index-th `[[rule.key]]` table."""
    headers = list(
        re.finditer(rf"(?m)^[ \t]*\[\[[ \t]*rule\.{re.escape(parent)}[ \t]*\]\]", text[:end])
    )
    headers = [h for h in headers if h.start() >= position]
    if headers:
        if index >= len(headers):
            return position, end
        stop = headers[index + 1].start() if index + 1 < len(headers) else end
        return headers[index].start(), stop
    opening = text.find("[", position, end)
    equals = text.find("=", position, end)
    if opening < 0 or (equals >= 0 and text[equals + 1 : opening].strip()):
        return position, end  # not a list: one table stands for a list of one
    starts = _list_elements(text, opening + 1, end)
    if index >= len(starts):
        return position, end
    stop = starts[index + 1] if index + 1 < len(starts) else end
    return starts[index], stop


def _list_elements(text: str, i: int, end: int) -> list[int]:
    """Where each element of a TOML array starts (`i` is just after its `[`)."""
    starts: list[int] = []
    depth, quote, expect = 0, "", True
    while i < end:
        char = text[i]
        if quote:
            if char == quote and text[i - 1] != "\\":
                quote = ""
        elif char == "#":
            i = text.find("\n", i, end) if "\n" in text[i:end] else end
            continue
        elif depth == 0 and char == "]":
            break
        elif depth == 0 and char == ",":
            expect = True
        elif not char.isspace():
            if depth == 0 and expect:
                starts.append(i)
                expect = False
            if char in "\"'":
                quote = char
            elif char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
        i += 1
    return starts


def key_line(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith((key, f"[{key}")):
            return number
    return 0
