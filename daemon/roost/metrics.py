"""An optional Prometheus endpoint: `GET /metrics` in the text exposition format (0.0.4).

Off unless `[metrics] listen = "127.0.0.1:9466"` is set; loopback only (the settings
refuse anything else). The format is a few lines of text, so no client library: each
scrape reads the counters the `Observer` keeps, the engine's rule statistics and the
outbox. A tiny HTTP/1.0-style responder: one request per connection, then close.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
import structlog
from anyio.abc import SocketStream

from roost import listeners
from roost.events import ConnectionState
from roost.observe import Observer

if TYPE_CHECKING:
    from roost.runtime import Runtime

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_S = 5.0
LIMITS = listeners.Limits(
    max_connections=16,
    read_timeout_s=REQUEST_TIMEOUT_S,
    write_timeout_s=REQUEST_TIMEOUT_S,
    max_request=8192,
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        if labels:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            self.lines.append(f"{name}{{{inner}}} {value:g}")
        else:
            self.lines.append(f"{name} {value:g}")


async def render(runtime: Runtime, observer: Observer) -> str:
    now = datetime.now(UTC)
    t = _Text()
    t.family("roost_uptime_seconds", "gauge", "Seconds since the daemon started.")
    t.sample("roost_uptime_seconds", round((now - observer.started).total_seconds(), 3))

    t.family("roost_events_total", "counter", "Events seen on the bus, by event name.")
    for name, count in sorted(observer.events.items()):
        t.sample("roost_events_total", count, event=name)

    t.family("roost_rule_runs_total", "counter", "Rule runs started, by rule.")
    t.family("roost_rule_errors_total", "counter", "Rule runs that raised, by rule.")
    t.family("roost_rule_timeouts_total", "counter", "Rule runs that timed out, by rule.")
    for rule, stats in sorted(runtime.engine.stats.items()):
        t.sample("roost_rule_runs_total", stats.fired, rule=rule)
        t.sample("roost_rule_errors_total", stats.errors, rule=rule)
        t.sample("roost_rule_timeouts_total", stats.timeouts, rule=rule)
    t.family("roost_rules_loaded", "gauge", "Rules loaded.")
    t.sample("roost_rules_loaded", len(runtime.engine.rules))

    t.family("roost_commands_total", "counter", "Command outcomes, by outcome.")
    for outcome, count in sorted(observer.commands.items()):
        t.sample("roost_commands_total", count, outcome=outcome)
    t.family("roost_commands_in_flight", "gauge", "Commands queued or awaiting their echo.")
    t.sample("roost_commands_in_flight", len(observer.open))

    t.family("roost_notifications_total", "counter", "Notification outcomes, by delivery.")
    for delivery, count in sorted(observer.notifications.items()):
        t.sample("roost_notifications_total", count, delivery=delivery)
    boxes = {"pending": 0, "dead": 0}
    for entry in await runtime.store.outbox_list():
        boxes[entry.state] = boxes.get(entry.state, 0) + 1
    t.family("roost_outbox_entries", "gauge", "Outbox entries, by state.")
    for state, count in sorted(boxes.items()):
        t.sample("roost_outbox_entries", count, state=state)

    t.family("roost_account_connected", "gauge", "1 if the account's subscription is up.")
    t.family("roost_reconnects_total", "counter", "Times an account connected again.")
    t.family("roost_stream_lag_seconds", "gauge", "Receipt minus event time, latest live event.")
    t.family("roost_account_degraded", "gauge", "1 if connected with unreadable fields now.")
    t.family(
        "roost_payload_problems_total", "counter", "Unreadable fields that appeared (unknown)."
    )
    t.family("roost_payloads_skipped_total", "counter", "Payloads skipped whole (caps, not JSON).")
    for provider in runtime.providers:
        account = provider.account
        connected = runtime.state.account(account).connection.up
        news = observer.accounts.get(account)
        t.sample("roost_account_connected", int(connected), account=account)
        state, _ = runtime.state.shown_state(account)
        health = runtime.state.payload_health(account)
        t.sample("roost_account_degraded", int(state is ConnectionState.DEGRADED), account=account)
        t.sample("roost_payload_problems_total", health.problems_total, account=account)
        t.sample("roost_payloads_skipped_total", health.rejected_total, account=account)
        t.sample(
            "roost_reconnects_total", max(0, news.connects - 1) if news else 0, account=account
        )
        if news is not None and news.lag_s is not None:
            t.sample("roost_stream_lag_seconds", round(news.lag_s, 3), account=account)

    t.family("roost_bus_dropped_total", "counter", "Events dropped for lagging subscribers.")
    for name, sub in sorted(runtime.bus.stats().items()):
        if not name.startswith("viewer-"):
            t.sample("roost_bus_dropped_total", sub.dropped, subscriber=name)
    return "\n".join(t.lines) + "\n"


async def serve_metrics(runtime: Runtime, observer: Observer, address: tuple[str, int]) -> None:
    host, port = address
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    log.info("metrics endpoint ready", url=f"http://{host}:{port}/metrics")
    async with listener:
        await listeners.serve(
            listener, lambda stream: _answer(stream, runtime, observer), "metrics", LIMITS
        )


async def _answer(stream: SocketStream, runtime: Runtime, observer: Observer) -> None:
    """One request per connection (the bounded listener ends it on any client error)."""
    try:
        head = await listeners.read_until(stream, (b"\r\n\r\n", b"\n\n"), LIMITS)
    except listeners.RequestTooLarge:
        await listeners.send(stream, _response(431, "text/plain", "request too large\n"), LIMITS)
        return
    parts = head.split(b"\n", 1)[0].split()
    method, path = [*parts, b"", b""][:2]
    if method != b"GET":
        answer = _response(405, "text/plain", "use GET\n")
    elif path.split(b"?")[0] not in (b"/metrics", b"/"):
        answer = _response(404, "text/plain", "see /metrics\n")
    else:
        answer = _response(200, CONTENT_TYPE, await render(runtime, observer))
    await listeners.send(stream, answer, LIMITS)


def _response(status: int, content_type: str, body: str) -> bytes:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "Too Large")
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + data
