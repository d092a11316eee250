"""The notification URLs in a credential file, in apprise's own configuration formats.

- Text: one URL per line, optionally tagged as `TAG[,TAG…]=URL` (tags may also be separated
  by spaces); blank lines and lines starting with `#` or `;` are ignored.
- YAML (a file with a top-level `urls:` or `version:` key): a list under `urls:`, each a
  URL, or a URL mapping to its options (`tag: urgent`, other keys become URL parameters),
  or to a list of such options (the URL once for each). A top-level `tag:` applies to every
  URL of the file.

`include` and apprise's schema-keyed YAML entries are refused: every URL must be visible
here so that `notify.allowed_schemes` applies to it. Errors name the line or entry, never
the URL itself (it carries the secret).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

_URL = r"[a-z][a-z0-9+.-]{0,31}://\S.*"
_TEXT_LINE = re.compile(rf"^(?:(?P<tags>[\w\s,.-]+?)\s*=\s*)?(?P<url>{_URL})$", re.IGNORECASE)
_YAML_HINT = re.compile(r"^(urls|version)\s*:", re.MULTILINE)


class NotifyUrlsError(ValueError):
    pass


def parse(text: str) -> list[tuple[str, list[str]]]:
    """[(url, tags)] from a credential file in either format."""
    return _parse_yaml(text) if _YAML_HINT.search(text) else _parse_text(text)


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else re.split(r"[\s,]+", str(value))
    return [str(tag).strip() for tag in items if str(tag).strip()]


def _parse_text(text: str) -> list[tuple[str, list[str]]]:
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.lower().startswith("include"):
            raise NotifyUrlsError(f"line {number}: include is not supported; list the URLs")
        match = _TEXT_LINE.match(line)
        if match is None:
            raise NotifyUrlsError(f"line {number}: neither a URL nor TAGS=URL")
        found.append((match["url"], _tags(match["tags"])))
    return found


def _parse_yaml(text: str) -> list[tuple[str, list[str]]]:
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "YAML"
        raise NotifyUrlsError(f"{where}: not valid YAML") from None
    if not isinstance(document, dict) or not isinstance(document.get("urls"), list):
        raise NotifyUrlsError("YAML: expected a list under `urls:`")
    if "include" in document:
        raise NotifyUrlsError("YAML: include is not supported; list the URLs")
    common = _tags(document.get("tag"))
    found = []
    for number, entry in enumerate(document["urls"], start=1):
        for url, options in _yaml_entry(number, entry):
            tags = [*common, *_tags(options.pop("tag", None))]
            found.append((_with_options(url, options), tags))
    return found


def _yaml_entry(number: int, entry: Any) -> list[tuple[str, dict[str, Any]]]:
    options_list: list[Any]
    if isinstance(entry, str):
        url, options_list = entry, [None]
    elif isinstance(entry, dict) and len(entry) == 1:
        url, value = next(iter(entry.items()))
        options_list = value if isinstance(value, list) else [value]
    else:
        raise NotifyUrlsError(f"urls entry {number}: expected a URL or `URL: options`")
    if not re.fullmatch(_URL, str(url), re.IGNORECASE):
        raise NotifyUrlsError(f"urls entry {number}: not a URL (write the whole apprise URL)")
    result: list[tuple[str, dict[str, Any]]] = []
    for options in options_list:
        if options is not None and not isinstance(options, dict):
            raise NotifyUrlsError(f"urls entry {number}: options must be `key: value` pairs")
        result.append((str(url), dict(options or {})))
    return result


def _with_options(url: str, options: dict[str, Any]) -> str:
    if not options:
        return url
    query = "&".join(
        f"{quote(str(k), safe='')}={quote(str(v), safe='')}" for k, v in options.items()
    )
    return f"{url}{'&' if '?' in url else '?'}{query}"
