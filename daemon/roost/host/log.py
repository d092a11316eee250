"""Logging: structlog for roost, stdlib logging (httpx, apprise) through the same chain.

Output goes to stderr: pretty on a terminal, JSON otherwise, and JSON with a `<N>` syslog
priority prefix when stderr is the journal (journald turns it into PRIORITY=). Every line,
ours or a library's, passes `redact_secrets` first, and tracebacks never include locals.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor, WrappedLogger

from roost.core.redact import REDACTED, redact_text

__all__ = ["REDACTED", "configure_logging", "get_logger", "redact_secrets", "redact_text"]

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
LEVELS |= {"error": logging.ERROR, "critical": logging.CRITICAL}
_threshold = logging.DEBUG  # what `configure_logging` last set (structlog's default: all)
_SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}

_SECRET_KEY = re.compile(
    r"pass|secret|token|authorization|api_?key|cookie|credential|refresh|bearer", re.IGNORECASE
)
# ProcessorFormatter's bookkeeping, removed before rendering.
_META_KEYS = frozenset({"_record", "_from_structlog"})


def _redact_value(value: object, depth: int = 0) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > 8:
        return REDACTED
    if isinstance(value, dict):
        return {k: _redact_item(k, v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v, depth + 1) for v in value]
    # Objects (exceptions, URLs, models) are logged by their text, so redact that text.
    return redact_text(str(value))


def _redact_item(key: object, value: object, depth: int) -> object:
    if isinstance(key, str) and _SECRET_KEY.search(key):
        if value is None or isinstance(value, bool):
            return value
        return REDACTED
    return _redact_value(value, depth)


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: hide secret-named keys and secret-looking values."""
    return {
        key: value if key in _META_KEYS else _redact_item(key, value, 0)
        for key, value in event_dict.items()
    }


class _JournalPrefix:
    """Wraps a renderer so each line starts with `<N>`, the syslog priority journald reads."""

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        priority = _SYSLOG_PRIORITY.get(str(event_dict.get("level")), 6)
        return f"<{priority}>{self._renderer(logger, method_name, event_dict)!s}"


def _is_journal(stream: TextIO) -> bool:
    """True when `stream` is the journal (systemd.exec(5): compare $JOURNAL_STREAM dev:ino)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, OSError, ValueError):
        return False


def _colors(stream: TextIO) -> bool:
    """On a terminal, unless NO_COLOR is set to anything (no-color.org)."""
    return _is_tty(stream) and not os.environ.get("NO_COLOR")


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that remembers the name it was asked for (`get_logger(__name__)`)."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self._file, str(args[0]) if args else None)


def _add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """`logger` on roost's lines as on the stdlib's (where add_logger_name sets it)."""
    name = getattr(logger, "name", None)
    if name and "logger" not in event_dict:
        event_dict["logger"] = name
    return event_dict


def _renderer(fmt: str, stream: TextIO) -> tuple[list[Processor], Processor]:
    """The exception step and the renderer for `fmt` on `stream`."""
    console = fmt == "console" or (fmt == "auto" and _is_tty(stream) and not _is_journal(stream))
    if console:
        # Traceback as text before redaction; plain_traceback never shows locals (rich would).
        renderer = structlog.dev.ConsoleRenderer(
            colors=_colors(stream), exception_formatter=structlog.dev.plain_traceback
        )
        return [structlog.processors.format_exc_info], renderer
    exceptions = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
    json_renderer: Processor = structlog.processors.JSONRenderer()
    if _is_journal(stream):
        json_renderer = _JournalPrefix(json_renderer)
    return [exceptions], json_renderer


def _shared_chain(exception_step: list[Processor]) -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        *exception_step,
        redact_secrets,
    ]


class _RoostHandler(logging.StreamHandler[TextIO]):
    """Marks the handler we install, so configuring again replaces it."""


def _configure_stdlib(
    level: int, pre_chain: list[Processor], renderer: Processor, stream: TextIO
) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *pre_chain],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = _RoostHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RoostHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)


def configure_logging(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Set up structlog and stdlib logging.

    level: debug|info|warning|error; fmt: auto|json|console; stream: default sys.stderr.
    Loggers are cached on first use, so call this once at start-up before logging.
    """
    out = sys.stderr if stream is None else stream
    threshold = LEVELS.get(level.lower())
    if threshold is None or fmt.lower() not in ("auto", "json", "console"):
        raise ValueError(f"unknown log level {level!r} or format {fmt!r}")
    exception_step, renderer = _renderer(fmt.lower(), out)
    global _threshold
    _threshold = threshold
    chain = _shared_chain(exception_step)
    structlog.configure(
        processors=[_add_logger_name, *chain, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=_NamedWriteLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    _configure_stdlib(threshold, chain, renderer, out)


def enabled(level: int) -> bool:
    """Whether a line at `level` is written: a hot path asks before it builds the line's
    fields (a filtered call still costs the logger proxy and the arguments)."""
    return level >= _threshold


def get_logger(name: str | None = None, **initial: Any) -> structlog.typing.FilteringBoundLogger:
    """A roost logger; `name` lands in the `logger` key."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(**initial)
    return logger.bind(logger=name) if name else logger
