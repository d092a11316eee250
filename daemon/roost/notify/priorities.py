"""A notification's priority in each push service's own terms.

apprise reads a service's priority from its URL's query (`ntfys://…/topic?priority=max`),
not from the notification, so roost adds the service's parameter to the URL it hands
apprise for each notification. A URL that already sets the parameter keeps its value: the
person who wrote it chose. Services not listed here have no priority: they get the URL as
written (apprise's notification type still sets their icon or colour).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote

# scheme(s) -> (query parameter, value for low, normal, high, urgent)
_WORDS = ("moderate", "normal", "high", "emergency")
SERVICE_PRIORITIES: dict[tuple[str, ...], tuple[str, tuple[str, str, str, str]]] = {
    ("ntfy", "ntfys"): ("priority", ("low", "default", "high", "max")),
    # Pushover: moderate is a quiet push; emergency repeats until acknowledged.
    ("pover",): ("priority", _WORDS),
    ("gotify", "gotifys"): ("priority", ("low", "normal", "high", "emergency")),
    # Telegram has no priority, only a silent message (no sound).
    ("tgram",): ("silent", ("yes", "no", "no", "no")),
    ("join",): ("priority", _WORDS),
    ("prowl",): ("priority", _WORDS),
    # apprise sends P{n}, and Opsgenie's P1 is the most critical: its words run backwards
    # (apprise's "emergency" is P5, informational), so the numbers are given.
    ("opsgenie",): ("priority", ("5", "3", "2", "1")),
    ("psafer", "psafers"): ("priority", ("medium", "normal", "high", "emergency")),
    # Bark (iOS): critical sounds even in silent mode / focus.
    ("bark", "barks"): ("level", ("passive", "active", "timeSensitive", "critical")),
    ("lametric", "lametrics"): ("priority", ("info", "info", "warning", "critical")),
}
_BY_SCHEME = {scheme: rule for schemes, rule in SERVICE_PRIORITIES.items() for scheme in schemes}
LEVELS = ("low", "normal", "high", "urgent")


def with_priority(url: str, priority: str) -> str:
    """`url` with the service's priority parameter for `priority` (one of LEVELS)."""
    rule = _BY_SCHEME.get(url.partition("://")[0].lower())
    if rule is None:
        return url
    parameter, values = rule
    query = url.partition("?")[2].partition("#")[0]
    if any(key.lower() == parameter.lower() for key, _ in parse_qsl(query, True)):
        return url
    value = quote(values[LEVELS.index(priority)], safe="")
    return f"{url}{'&' if '?' in url else '?'}{parameter}={value}"
