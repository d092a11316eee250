from __future__ import annotations

import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from roost.host.log import configure_logging, redact_text

NEST_TOKEN = "c.Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8xMjM0NTY3ODk"
SECRETS = (NEST_TOKEN, "hunter2", "ya29.a0AfH6SMB", "1//0gTkz9Qx7Lm", "s3cr3t-value")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    logging.captureWarnings(False)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def json_log(level: str = "info") -> tuple[io.StringIO, Any]:
    stream = io.StringIO()
    configure_logging(level, "json", stream)
    return stream, structlog.get_logger()


def test_secret_named_keys_are_redacted() -> None:
    stream, log = json_log()
    log.info("token refreshed", token=NEST_TOKEN, client_secret="s3cr3t-value", has_token=True)
    (line,) = json_lines(stream.getvalue())
    assert line["token"] == "[REDACTED]"
    assert line["client_secret"] == "[REDACTED]"
    assert line["has_token"] is True
    assert line["event"] == "token refreshed"
    assert_no_secret(stream.getvalue())


def test_secrets_inside_values_are_redacted() -> None:
    stream, log = json_log()
    log.info("request", headers={"Authorization": f"Bearer {NEST_TOKEN}"})
    log.info("sent", detail=f"header was Bearer {NEST_TOKEN}")
    log.info("get", url=f"https://developer-api.nest.com/?auth={NEST_TOKEN}&x=1")
    log.info("cb", url="https://example.com/cb?code=s3cr3t-value&state=ok")
    log.info("proxy", url="http://bob:hunter2@proxy.local:3128/")
    log.info("google", body="access_token=ya29.a0AfH6SMB&refresh_token=1//0gTkz9Qx7Lm")
    log.info("notify", target="ntfys://bob:hunter2@ntfy.sh/topic", other="tgram://s3cr3t-value/1")
    text = stream.getvalue()
    assert_no_secret(text)
    lines = json_lines(text)
    assert lines[1]["detail"] == "header was Bearer [REDACTED]"
    assert lines[2]["url"] == "https://developer-api.nest.com/?auth=[REDACTED]&x=1"
    assert lines[3]["url"] == "https://example.com/cb?code=[REDACTED]&state=ok"
    assert lines[4]["url"] == "http://[REDACTED]@proxy.local:3128/"
    assert lines[6]["target"] == "ntfys://[REDACTED]"


def test_objects_are_redacted_by_their_text() -> None:
    stream, log = json_log()
    log.warning("refresh failed", error=RuntimeError(f"401 for refresh_token={NEST_TOKEN}"))
    assert_no_secret(stream.getvalue())
    assert "refresh_token=[REDACTED]" in stream.getvalue()


def leaky(token: str) -> None:
    secret_local = "hunter2"  # must never be rendered: tracebacks carry no locals
    raise PermissionError(f"Authorization: Bearer {token} refused ({len(secret_local)})")


def test_exception_message_and_locals_are_not_rendered() -> None:
    stream, log = json_log()
    try:
        leaky(NEST_TOKEN)
    except PermissionError:
        log.exception("call failed")
    text = stream.getvalue()
    assert_no_secret(text)
    (line,) = json_lines(text)
    (exc,) = line["exception"]
    assert exc["exc_type"] == "PermissionError"
    assert "[REDACTED]" in exc["exc_value"]
    assert [frame["name"] for frame in exc["frames"]][-1] == "leaky"
    assert all(not frame.get("locals") for frame in exc["frames"])  # structlog <24.3: None


def test_stdlib_records_are_redacted() -> None:
    stream, _ = json_log()
    logging.getLogger("apprise").warning("posting to %s", "json://bob:hunter2@hooks.local/x")
    logging.getLogger("httpx").error("GET https://h.local/?access_token=%s", NEST_TOKEN)
    try:
        leaky("s3cr3t-value")
    except PermissionError:
        logging.getLogger("roost.test").exception("stdlib %s", "ya29.a0AfH6SMB")
    text = stream.getvalue()
    assert_no_secret(text)
    apprise, httpx, failure = json_lines(text)
    assert apprise == apprise | {"logger": "apprise", "level": "warning"}
    assert apprise["event"] == "posting to json://[REDACTED]"
    assert httpx["event"] == "GET https://h.local/?access_token=[REDACTED]"
    assert failure["exception"][0]["exc_type"] == "PermissionError"
    assert all(not frame.get("locals") for frame in failure["exception"][0]["frames"])


def test_levels_filter_ours_and_quiet_httpx() -> None:
    stream, log = json_log("info")
    log.debug("invisible")
    logging.getLogger("httpx").info("HTTP Request: GET https://h.local")
    logging.getLogger("httpcore").debug("connect")
    log.info("visible")
    assert [line["event"] for line in json_lines(stream.getvalue())] == ["visible"]


def test_debug_level_shows_debug() -> None:
    stream, log = json_log("debug")
    log.debug("shown", n=1)
    assert json_lines(stream.getvalue())[0]["level"] == "debug"


def test_python_warnings_are_logged() -> None:
    stream, _ = json_log()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old api", DeprecationWarning, stacklevel=1)
    assert "old api" in stream.getvalue()


def test_console_format_redacts_too() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream)
    log = structlog.get_logger()
    log.info("hello", token=NEST_TOKEN, url="ntfys://bob:hunter2@ntfy.sh/t")
    try:
        leaky(NEST_TOKEN)
    except PermissionError:
        log.exception("failed")
    text = stream.getvalue()
    assert "hello" in text
    assert "Traceback" in text
    assert_no_secret(text)
    assert "\x1b[" not in text  # no colours when the stream isn't a terminal


def test_auto_is_json_off_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream)
    structlog.get_logger().info("hi")
    assert json_lines(stream.getvalue())[0]["event"] == "hi"


def test_journald_lines_carry_the_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(tmp_path / "journal", "w+", encoding="utf-8") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        configure_logging("info", "auto", stream)
        structlog.get_logger().info("started")
        structlog.get_logger().warning("slow")
        logging.getLogger("apprise").error("failed")
        stream.flush()
        lines = (tmp_path / "journal").read_text(encoding="utf-8").splitlines()
    assert [line[:3] for line in lines] == ["<6>", "<4>", "<3>"]
    assert json.loads(lines[0][3:])["event"] == "started"


def test_other_journal_stream_means_plain_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:1")
    with open(tmp_path / "out", "w+", encoding="utf-8") as stream:
        configure_logging("info", "auto", stream)
        structlog.get_logger().info("started")
    assert (tmp_path / "out").read_text(encoding="utf-8").startswith("{")


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    structlog.get_logger().info("to stderr", authorization=f"Bearer {NEST_TOKEN}")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert json_lines(captured.err)[0]["authorization"] == "[REDACTED]"


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("verbose", "json")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain words: nothing to hide", "plain words: nothing to hide"),
        ("see https://example.com/path?page=2", "see https://example.com/path?page=2"),
        (f"Bearer {NEST_TOKEN}", "Bearer [REDACTED]"),
        ("{'access_token': 'abc123', 'n': 1}", "{'access_token': '[REDACTED]', 'n': 1}"),
        ("refresh with 1//0gTkz9Qx7Lm now", "refresh with [REDACTED] now"),
        ("token ya29.a0AfH6SMB expired", "token [REDACTED] expired"),
        (f"stray {NEST_TOKEN}", "stray [REDACTED]"),
        ("jwt eyJhbGciOiJ.eyJzdWIiOiIx.c2ln", "jwt [REDACTED]"),
        ("password=hunter2;", "password=[REDACTED];"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_roost_lines_name_their_logger() -> None:
    stream, _ = json_log()
    structlog.get_logger("roost.notify").warning("notification not delivered")
    structlog.get_logger().info("anonymous")
    named, anonymous = json_lines(stream.getvalue())
    assert named["logger"] == "roost.notify"
    assert "logger" not in anonymous


class _FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("no_color", "coloured"), [(None, True), ("1", False), ("", True)])
def test_no_color_turns_colours_off(
    monkeypatch: pytest.MonkeyPatch, no_color: str | None, coloured: bool
) -> None:
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = _FakeTty()
    configure_logging("info", "auto", stream)
    structlog.get_logger("roost.test").warning("careful")
    assert ("\x1b[" in stream.getvalue()) is coloured
