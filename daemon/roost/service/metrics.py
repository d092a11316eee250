"""An optional Prometheus endpoint: `GET /metrics` in the text exposition format (0.0.4).

Off unless `[metrics] listen = "127.0.0.1:9466"` is set; loopback only (the settings
refuse anything else). Each scrape reads the counters the `Observer` keeps, the engine's
rule statistics and the outbox into a prometheus_client collector (which groups every
family's samples and escapes labels the way Prometheus parses them), with the process
metrics (`process_*`) beside. Served by `httpserver`: one request per
connection, then close.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
import structlog
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from roost import __version__
from roost.core.events import ConnectionState
from roost.host import listeners
from roost.host.httpserver import Request, Response, Server
from roost.service.observe import Observer

if TYPE_CHECKING:
    from roost.service.runtime import Runtime

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_S = 5.0
LIMITS = listeners.Limits(
    max_connections=16,
    read_timeout_s=REQUEST_TIMEOUT_S,
    write_timeout_s=REQUEST_TIMEOUT_S,
    max_request=8192,
)


@dataclass(frozen=True)
class _Account:
    name: str
    connected: bool
    reconnects: int
    lag_s: float | None
    last_event_at: datetime | None
    degraded: bool = False
    problems: int = 0
    skipped: int = 0


class RoostCollector(Collector):
    """roost's counters at one moment, as metric families."""

    def __init__(self, runtime: Runtime, observer: Observer, outbox: dict[str, int]) -> None:
        self._runtime = runtime
        self._observer = observer
        self._outbox = outbox
        self._accounts = [_account(runtime, observer, p.account) for p in runtime.providers]

    def collect(self) -> Iterator[Metric]:
        yield from self._daemon()
        yield from self._rules()
        yield from self._commands_and_notifications()
        yield from self._accounts_families()
        cluster = self._runtime.cluster
        if cluster is not None:  # a fleet worker: ownership and failover counters
            from roost.cluster.metrics import families

            own = cluster.ownership
            yield from families(
                cluster.worker, len(own.owned), own.counters, cluster.commands_fenced
            )

    def _daemon(self) -> Iterator[Metric]:
        observer, now = self._observer, datetime.now(UTC)
        build = InfoMetricFamily("roost_build", "The running roost.")
        build.add_metric([], {"version": __version__, "python": platform.python_version()})
        yield build
        yield GaugeMetricFamily(
            "roost_uptime_seconds",
            "Seconds since the daemon started.",
            value=round((now - observer.started).total_seconds(), 3),
        )
        events = CounterMetricFamily(
            "roost_events", "Events seen on the bus, by event name.", labels=["event"]
        )
        for name, count in sorted(observer.events.items()):
            events.add_metric([name], count)
        yield events
        dropped = CounterMetricFamily(
            "roost_bus_dropped",
            "Events dropped for lagging subscribers.",
            labels=["subscriber"],
        )
        for name, sub in sorted(self._runtime.bus.stats().items()):
            if not name.startswith("viewer-"):
                dropped.add_metric([name], sub.dropped)
        yield dropped
        yield CounterMetricFamily(
            "roost_alarm_memory_errors",
            "Store reads and writes of the alarms roost pushed itself that failed (the pushes "
            "went out; a clearing after a restart may not be pushed by roost).",
            value=self._runtime.alerts.keep_errors,
        )

    def _rules(self) -> Iterator[Metric]:
        stats = sorted(self._runtime.engine.stats.items())
        for name, help_text, attribute in (
            ("roost_rule_runs", "Rule runs started, by rule.", "fired"),
            ("roost_rule_errors", "Rule runs that raised, by rule.", "errors"),
            ("roost_rule_timeouts", "Rule runs that timed out, by rule.", "timeouts"),
        ):
            family = CounterMetricFamily(name, help_text, labels=["rule"])
            for rule, stat in stats:
                family.add_metric([rule], getattr(stat, attribute))
            yield family
        yield GaugeMetricFamily(
            "roost_rules_loaded", "Rules loaded.", value=len(self._runtime.engine.rules)
        )

    def _commands_and_notifications(self) -> Iterator[Metric]:
        observer = self._observer
        commands = CounterMetricFamily(
            "roost_commands", "Command outcomes, by outcome.", labels=["outcome"]
        )
        for outcome, count in sorted(observer.commands.items()):
            commands.add_metric([outcome], count)
        yield commands
        yield GaugeMetricFamily(
            "roost_commands_in_flight",
            "Commands queued or awaiting their echo.",
            value=len(observer.open),
        )
        notes = CounterMetricFamily(
            "roost_notifications", "Notification outcomes, by delivery.", labels=["delivery"]
        )
        for delivery, count in sorted(observer.notifications.items()):
            notes.add_metric([delivery], count)
        yield notes
        outbox = GaugeMetricFamily(
            "roost_outbox_entries", "Outbox entries, by state.", labels=["state"]
        )
        for state, count in sorted(self._outbox.items()):
            outbox.add_metric([state], count)
        yield outbox

    def _accounts_families(self) -> Iterator[Metric]:
        labels = ["account"]
        connected = GaugeMetricFamily(
            "roost_account_connected", "1 if the account's subscription is up.", labels=labels
        )
        reconnects = CounterMetricFamily(
            "roost_reconnects", "Times an account connected again.", labels=labels
        )
        lag = GaugeMetricFamily(
            "roost_stream_lag_seconds",
            "Receipt minus event time, latest live event.",
            labels=labels,
        )
        last = GaugeMetricFamily(
            "roost_account_last_event_timestamp_seconds",
            "Unix time of the account's latest event (alert on a silent stream).",
            labels=labels,
        )
        degraded = GaugeMetricFamily(
            "roost_account_degraded", "1 if connected with unreadable fields now.", labels=labels
        )
        problems = CounterMetricFamily(
            "roost_payload_problems",
            "Unreadable fields that appeared (unknown).",
            labels=labels,
        )
        skipped = CounterMetricFamily(
            "roost_payloads_skipped", "Payloads skipped whole (caps, not JSON).", labels=labels
        )
        for account in self._accounts:
            connected.add_metric([account.name], int(account.connected))
            degraded.add_metric([account.name], int(account.degraded))
            problems.add_metric([account.name], account.problems)
            skipped.add_metric([account.name], account.skipped)
            reconnects.add_metric([account.name], account.reconnects)
            if account.lag_s is not None:
                lag.add_metric([account.name], round(account.lag_s, 3))
            if account.last_event_at is not None:
                last.add_metric([account.name], account.last_event_at.timestamp())
        yield from (connected, reconnects, lag, last, degraded, problems, skipped)


def _account(runtime: Runtime, observer: Observer, name: str) -> _Account:
    state = runtime.state.account(name)
    news = observer.accounts.get(name)
    shown, _ = runtime.state.shown_state(name)
    health = runtime.state.payload_health(name)
    return _Account(
        name=name,
        connected=state.connection.up,
        degraded=shown is ConnectionState.DEGRADED,
        problems=health.problems_total,
        skipped=health.rejected_total,
        reconnects=max(0, news.connects - 1) if news else 0,
        lag_s=news.lag_s if news else None,
        last_event_at=state.last_event_at,
    )


async def render(runtime: Runtime, observer: Observer) -> str:
    outbox = {"pending": 0, "dead": 0}
    for entry in await runtime.store.outbox_list():
        outbox[entry.state] = outbox.get(entry.state, 0) + 1
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RoostCollector(runtime, observer, outbox))
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, _resident_memory_bytes…
    return generate_latest(registry).decode()


async def serve_metrics(runtime: Runtime, observer: Observer, address: tuple[str, int]) -> None:
    host, port = address
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    log.info("metrics endpoint ready", url=f"http://{host}:{port}/metrics")

    async def answer(request: Request) -> Response:
        return await _answer(request, runtime, observer)

    async with listener:
        await Server(answer, "metrics", LIMITS).serve(listener)


async def _answer(request: Request, runtime: Runtime, observer: Observer) -> Response:
    """One request per connection (the server answers malformed or oversize ones itself)."""
    if request.method != "GET":
        return Response(405, b"use GET\n", {"content-type": "text/plain"})
    if request.path not in ("/metrics", "/"):
        return Response(404, b"see /metrics\n", {"content-type": "text/plain"})
    return Response(200, (await render(runtime, observer)).encode(), {"content-type": CONTENT_TYPE})
