"""One redactor for everything that leaves the daemon: logs, status, events and the
journal, the outbox, pushes, traces and control-socket errors.

It knows two kinds of secret. The configured ones, by value: every `Secret` of the
settings (tokens, client secrets, refresh tokens, passwords, apprise URLs and their
parts), and every token the token store saves or loads. And common shapes, by pattern:
`Bearer …`, OAuth tokens shaped `ya29.` / `1//` / `c.`, JWTs, `access_token=…` and friends in
URLs and bodies, `password: …` in text, user:password in URLs, and every part of a
non-web URL (apprise URLs carry tokens in the host and the path).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from roost.core.secret import Secret

REDACTED = "[REDACTED]"
# Shorter values are too likely to be ordinary words to be replaced everywhere.
MIN_SECRET_LEN = 6

_WEB_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_PARAMS = (
    r"access_token|refresh_token|id_token|client_secret|code|auth|token|key|api_?key"
    r"|password|secret|sig|signature"
)
_KEY_WORDS = r"token|secret|pass(?:word|wd|phrase)?|api_?key|authorization|cookie|credential"
# (pattern, replacement) in order; each replacement keeps what helps to read the line.
_SHAPES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"(?i)\b(bearer)\s+[\w.~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(r"\b([a-z][a-z0-9+.-]*)://([^\s\"'<>]*)", re.IGNORECASE), lambda m: _url(m)),
    (re.compile(rf"(?i)(?<![\w-])({_PARAMS})=[^&#\s\"',;]*"), rf"\1={REDACTED}"),
    (
        re.compile(rf"(?i)\b(\w*(?:{_KEY_WORDS})\w*[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}}]+"),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"\bya29\.[\w.-]+"), REDACTED),
    (re.compile(r"(?<![\w/:])1//[\w-]{8,}"), REDACTED),
    (re.compile(r"\bc\.[\w-]{40,}"), REDACTED),
    (re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*"), REDACTED),
)
# Texts up to this long are remembered with their redacted form, this many at most.
_CACHED_LEN = 200
_CACHED_TEXTS = 4096
# A cheap pre-check, so most strings skip the patterns.
_MAYBE_SHAPE = re.compile(rf"(?i)bearer|://|=|ya29\.|1//|\bc\.|eyJ|{_KEY_WORDS}")


def _url(match: re.Match[str]) -> str:
    """A web URL keeps host and path without user:password; other schemes (apprise URLs
    carry tokens in every part) keep only the scheme."""
    scheme, rest = match.group(1), match.group(2)
    if scheme.lower() not in _WEB_SCHEMES:
        return f"{scheme}://{REDACTED}"
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = f"{REDACTED}@{authority.rpartition('@')[2]}"
    return f"{scheme}://{authority}{slash}{tail}"


class Redactor:
    """Known secret values plus the shapes above; thread-safe to extend.

    The values are matched by one alternation while they are few; past `MANY_VALUES` (a
    daemon with thousands of accounts) by their first characters (`_ByPrefix`): an
    alternation of 30,000 literals costs ~13 ms a line, the prefix scan ~40 µs whatever
    their number. Either is built once, on the first use after values were added, so
    remembering N values one call at a time costs one build, not N.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._known: re.Pattern[str] | _ByPrefix | None = None
        self._stale = False
        self._lock = threading.Lock()
        # text → its redacted form, for the texts that recur (an outcome's fixed reason,
        # "dry run: guards passed", runs every pattern: "passed" has "pass" in it). Emptied
        # whenever a secret is learnt, so a cached answer never misses a known secret.
        self._seen: dict[str, str] = {}

    def remember(self, *values: str | Secret | None) -> None:
        """Redact these values (and their URL-encoded forms) from now on."""
        fresh = set()
        for value in values:
            raw = value.get_secret_value() if isinstance(value, Secret) else value
            if raw and len(raw) >= MIN_SECRET_LEN:
                fresh |= {raw, raw.replace("/", "%2F"), _quoted(raw)}
        with self._lock:
            if fresh <= self._values:
                return
            self._values |= fresh
            self._stale = True
            self._seen = {}

    def remember_url(self, url: str) -> None:
        """An apprise URL: the whole of it and each part that could be a token."""
        self.remember(url, *url_parts(url))

    def text(self, text: str) -> str:
        """`text` with every known secret and token-shaped part replaced by [REDACTED]."""
        seen = self._seen
        done = seen.get(text)
        if done is not None:
            return done
        clean = self._redact(text)
        if len(text) <= _CACHED_LEN:
            if len(seen) >= _CACHED_TEXTS:
                seen.clear()
            seen[text] = clean
        return clean

    def _redact(self, text: str) -> str:
        known = self._matcher()
        if known is not None:
            text = known.sub(REDACTED, text)
        if not _MAYBE_SHAPE.search(text):
            return text
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        return text

    def _matcher(self) -> re.Pattern[str] | _ByPrefix | None:
        if self._stale:
            with self._lock:
                if self._stale:
                    ordered = sorted(self._values, key=len, reverse=True)  # longest first
                    self._known = (
                        _ByPrefix(ordered)
                        if len(ordered) > MANY_VALUES
                        else re.compile("|".join(re.escape(v) for v in ordered))
                    )
                    self._stale = False
        return self._known


MANY_VALUES = 300


class _ByPrefix:
    """Many literal values, found where their first MIN_SECRET_LEN characters appear;
    at each place the longest value that matches is replaced, as the alternation does."""

    def __init__(self, longest_first: list[str]) -> None:
        self._by_prefix: dict[str, list[str]] = {}
        for value in longest_first:
            self._by_prefix.setdefault(value[:MIN_SECRET_LEN], []).append(value)

    def sub(self, replacement: str, text: str) -> str:
        by_prefix, width = self._by_prefix, MIN_SECRET_LEN
        pieces: list[str] = []
        done = at = 0
        last = len(text) - width
        while at <= last:
            for value in by_prefix.get(text[at : at + width], ()):
                if text.startswith(value, at):
                    pieces += (text[done:at], replacement)
                    at = done = at + len(value)
                    break
            else:
                at += 1
        if not pieces:
            return text
        pieces.append(text[done:])
        return "".join(pieces)


def _quoted(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def url_parts(url: str) -> list[str]:
    """The user, password, host, path segments and query values of `url`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return []
    found = [parts.username or "", parts.password or "", host]
    netloc = parts.netloc.rpartition("@")[2]
    found.append(netloc)
    found += [unquote(p) for p in parts.path.split("/")]
    found += [unquote(v) for _, v in parse_qsl(parts.query)]
    found += [unquote(p) for p in parts.fragment.split("/")]
    return [p for p in found if _tokenish(p)]


def _tokenish(part: str) -> bool:
    """Long enough, or mixing letters and digits, to be a token rather than a word."""
    if len(part) >= 16:
        return True
    has_digit = any(c.isdigit() for c in part)
    has_alpha = any(c.isalpha() for c in part)
    return len(part) >= 8 and has_digit and has_alpha and not _is_address(part)


def _is_address(part: str) -> bool:
    return bool(re.fullmatch(r"[\d.:\[\]]+|localhost(:\d+)?", part))


REDACTOR = Redactor()


def redact_text(text: str) -> str:
    """`text` through the process's redactor."""
    return REDACTOR.text(text)


def remember(*values: str | Secret | None) -> None:
    REDACTOR.remember(*values)


def remember_settings(settings: object) -> None:
    """Every secret the settings (dataclasses) hold: Secret fields anywhere, apprise URLs by
    part."""
    for name, value in _walk(settings):
        if isinstance(value, Secret):
            raw = value.get_secret_value()
            if name == "url" or "://" in raw:
                REDACTOR.remember_url(raw)
            else:
                REDACTOR.remember(raw, *cookie_values(raw))
        elif (
            isinstance(value, str)
            and _SECRET_NAME.search(name)
            and not name.endswith("_credential")
        ):
            REDACTOR.remember(value)  # e.g. an API key kept as plain text


_SECRET_NAME = re.compile(r"(?i)key|token|secret|password|cookie")


def cookie_values(raw: str) -> list[str]:
    """The values of a `name=value; name=value` cookie string (each is a credential)."""
    if "=" not in raw:
        return []
    return [part.partition("=")[2].strip() for part in raw.split(";") if "=" in part]


def _walk(value: Any, name: str = "") -> Iterable[tuple[str, Any]]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _walk(getattr(value, field.name), field.name)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item, name)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, str(key))
    else:
        yield name, value
