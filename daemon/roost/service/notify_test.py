"""`roost notify-test [TAG]`: one test push through each configured apprise URL.

Each URL is reported by its scheme and a short hash of the whole URL (the same for the
same URL, and nothing of its secret parts), with whether the service took the message.
The running daemon sends it when it answers on its control socket (so the test goes
through the sandbox and network the daemon really has); otherwise this process does.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from roost.config.settings import Settings
from roost.notify.notifier import Target

TITLE = "roost: test notification"


@dataclass(frozen=True)
class TestResult:
    scheme: str
    hash: str
    tags: tuple[str, ...]
    ok: bool
    error: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "hash": self.hash,
            "tags": list(self.tags),
            "ok": self.ok,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def url_label(url: str) -> tuple[str, str]:
    """(scheme, 8 hex digits of its SHA-256): enough to tell URLs apart, nothing to leak."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "?"
    return scheme, hashlib.sha256(url.encode()).hexdigest()[:8]


def targets(settings: Settings) -> list[Target]:
    return [Target(t.url.get_secret_value(), frozenset(t.tags)) for t in settings.notify.targets]


def chosen(all_targets: Sequence[Target], tag: str | None) -> list[Target]:
    """Every target, or those a notification tagged `tag` would reach."""
    if tag is None:
        return list(all_targets)
    return [t for t in all_targets if not t.tags or tag in t.tags]


async def send_test(all_targets: Sequence[Target], tag: str | None) -> list[TestResult]:
    """Send the test push to each chosen target on its own; never raises for a target."""
    import apprise

    results = []
    for target in chosen(all_targets, tag):
        scheme, digest = url_label(target.url)
        started = time.monotonic()
        ok, error = False, ""
        try:
            sender = apprise.Apprise(asset=apprise.AppriseAsset(app_id="roost"))
            if not sender.add(target.url):
                error = "apprise refused the URL (invalid, or its scheme is not allowed)"
            else:
                body = f"A test from roost{f' for tag {tag!r}' if tag else ''}. It works."
                result: Any = await sender.async_notify(
                    body=body, title=TITLE, notify_type=apprise.NotifyType.INFO
                )
                ok = bool(result)
                error = "" if ok else "the service did not accept it (see the daemon's log)"
        except Exception as exc:  # a plugin bug must not hide the other targets' results
            error = f"{type(exc).__name__}"
        results.append(
            TestResult(
                scheme, digest, tuple(sorted(target.tags)), ok, error, time.monotonic() - started
            )
        )
    return results


def format_results(rows: Sequence[dict[str, Any]], tag: str | None) -> str:
    if not rows:
        where = f" for tag {tag!r}" if tag else ""
        return f"no notification target{where}: add [[notify.targets]] or notify.urls_credential"
    lines = []
    for row in rows:
        mark = "ok    " if row["ok"] else "FAILED"
        tags = f" tags={','.join(row['tags'])}" if row["tags"] else ""
        error = f"  {row['error']}" if row["error"] else ""
        lines.append(
            f"{mark} {row['scheme']}://…#{row['hash']}{tags} ({row['seconds']:.2f}s){error}"
        )
    failed = sum(not row["ok"] for row in rows)
    lines.append(f"{len(rows) - failed}/{len(rows)} target(s) took the test notification")
    return "\n".join(lines)
