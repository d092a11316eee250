"""Assembling the daemon from its settings, and running it.

The path of an event: provider → state (diff) → bus → engine → rule run → guards →
dispatcher → provider; notifications go rule → notifier → apprise. `Runtime` wires these
together once and runs them in one task group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import structlog

from roost.commands.dispatch import Dispatcher, Tuning
from roost.commands.guards import Limits
from roost.config.settings import Settings
from roost.core import redact
from roost.core.bus import Bus
from roost.core.clock import SystemClock
from roost.core.durations import parse_rate
from roost.core.events import ConnectionState
from roost.core.timers import TimerPersistence
from roost.engine.engine import Engine, LoopLimits
from roost.engine.isolation import LoopMonitor
from roost.engine.loader import (
    CheckedToml,
    LoadResult,
    RuleError,
    TomlCheck,
    check_here,
    keep_previous,
    kept_previous,
    listing,
    load_checked,
    toml_files,
)
from roost.engine.rule_home import Services
from roost.engine.windows import TagLimiter
from roost.notify import alerts
from roost.notify.helper_link import NotifyHelper
from roost.notify.notifier import Notifier, Target
from roost.providers.backoff import Backoff
from roost.providers.base import Provider
from roost.providers.registry import ProviderContext, build_provider
from roost.rules.author import Rule
from roost.rules.sun import Location
from roost.service.control import Handler, rule_commands, serve
from roost.service.persist import HomeKeeper, Persister
from roost.service.recorder import EventRecorder
from roost.service.stores import open_store
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState
from roost.store.sqlite import StoreMemory, StoreTokens

if TYPE_CHECKING:
    from roost.cluster.worker import ClusterWorker

log = structlog.get_logger(__name__)

PROVIDER_RESTART_S = (1.0, 60.0)  # back-off of a provider that crashed outside its session


def limits(settings: Settings) -> Limits:
    g = settings.guards
    return Limits(
        heat_min_c=g.heat_min_c,
        heat_max_c=g.heat_max_c,
        cool_min_c=g.cool_min_c,
        cool_max_c=g.cool_max_c,
        min_range_gap_c=g.min_range_gap_c,
        writes_per_device_per_hour=g.writes_per_device_per_hour,
    )


def tuning(settings: Settings) -> Tuning:
    d = settings.dispatch
    return Tuning(
        retry_initial_s=d.retry_initial_s,
        retry_max_s=d.retry_max_s,
        max_attempts=d.max_attempts,
        echo_wait_s=d.echo_wait_s,
    )


class Runtime:
    def __init__(
        self,
        settings: Settings,
        providers: Sequence[Provider] | None = None,
        *,
        check_rules: TomlCheck = check_here,
    ) -> None:
        """`check_rules`: where the TOML rule files are checked; `roost run` passes
        `loader.check_in_child`, so that the daemon never imports pydantic."""
        self.settings = settings
        self.check_rules = check_rules
        self._reloading = anyio.Lock()
        redact.remember_settings(settings)
        self.clock = SystemClock()
        self.store = open_store(settings)
        self.bus = Bus()
        self.echoes = EchoTracker(settings.dispatch.echo_timeout_s, self.clock)
        self.state = HomeState(self.bus, self.echoes, keeper=HomeKeeper(self.store, self.clock))
        self.dispatcher = Dispatcher(
            self.state,
            self.bus,
            self.echoes,
            limits(settings),
            dry_run=settings.daemon.dry_run,
            clock=self.clock,
            tuning=tuning(settings),
        )
        targets = [
            Target(t.url.get_secret_value(), frozenset(t.tags)) for t in settings.notify.targets
        ]
        self.notify_helper = NotifyHelper(targets, settings.notify.allowed_schemes)
        self.notifier = Notifier(
            targets,
            self.bus,
            self.store,
            clock=self.clock,
            retry_for_s=settings.notify.retry_for_s,
            send=self.notify_helper.send,
        )
        # A tap, not a subscriber: an engine flood publishes hundreds of outcome batches
        # between two turns of a reader, and a full inbox held every publisher, the
        # stream's included (6,000 times in 10 s at 500 changes/s).
        self.alerts = alerts.Alerts(self.bus, self.store)
        services = Services(
            self.state,
            self.dispatcher.submit,
            self.notifier.submit,
            _utcnow,
            clock=self.clock,
            zone=settings.daemon.zone(),
            notify_limit=TagLimiter(*(parse_rate(settings.daemon.notify_per_tag) or (6, 600))),
            memory=StoreMemory(self.store),
            locations=locations(settings),
        )
        self.timers = self.store.timer_persistence()
        self.engine = engine(settings, services, self.timers)
        d = settings.daemon
        self.persister = Persister(
            self.store,
            self.state,
            self.bus,
            self.clock,
            journal_max_age=timedelta(days=d.journal_keep_days),
            journal_max_rows=d.journal_keep_rows,
            outbox_keep=timedelta(days=d.outbox_keep_days),
            rule_state=self.engine.export_state,
        )
        self.recorder = (
            EventRecorder(settings.daemon.record_events, self.state, self.bus)
            if settings.daemon.record_events
            else None
        )
        self._inbox = self.bus.subscribe("engine", interest=self.engine.interest)
        tokens, memory = StoreTokens(self.store), StoreMemory(self.store)
        self._context = ProviderContext(self.clock, tokens, memory)
        if providers is None:
            providers = [build_provider(a, self._context) for a in settings.accounts]
        self.providers = list(providers)
        for provider in self.providers:
            self.dispatcher.add_provider(provider)
        self.cluster = cluster_worker(self) if settings.cluster.enabled else None
        for loosened in settings.guards.loosened():
            log.warning("guard loosened by configuration", setting=loosened)

    def load_rules(self) -> LoadResult:
        """Load the rule directory now (at start, before the event loop runs: the TOML
        check is then a fork, see `host.child`). Broken files are reported; the rest load."""
        files = listing(self.settings.daemon.rules_dir)
        return self._install(files, self.check_rules(toml_files(files)))

    async def reload_rules(self) -> LoadResult:
        """Reload from the event loop. The TOML check (for `roost run` a fresh interpreter,
        ~0.6 s) runs in a worker thread, so events and alarms keep flowing meanwhile; the
        Python files are imported here, as at start. One reload at a time."""
        async with self._reloading:
            files = listing(self.settings.daemon.rules_dir)
            checked = await anyio.to_thread.run_sync(self.check_rules, toml_files(files))
            return self._install(files, checked)

    def _install(self, files: list[Path], checked: Sequence[CheckedToml]) -> LoadResult:
        result = load_checked(self.settings.daemon.rules_dir, files, checked)
        previous = list(self.engine.rules.values())
        for error in result.errors:
            kept = [
                r.name for r in previous if kept_previous(result, r) and r.path == str(error.path)
            ]
            if kept:
                log.error("rule not loaded; its previous version keeps running", error=str(error))
            else:
                log.error("rule not loaded", error=str(error))
        result = keep_previous(result, previous)
        self.engine.load(result.rules)
        log.info("rules loaded", rules=len(result.rules), files=len(result.files))
        return result

    async def run(self, commands: Mapping[str, Handler] | None = None) -> None:
        """Run until cancelled. `commands`: more control-socket commands than the rules'
        (the service adds status, events, outbox, …)."""
        # A fleet worker restores each group's accounts, and the alarms roost pushed about
        # them, when it gains the group.
        restored = await self.persister.restore() if self.cluster is None else 0
        self.engine.import_state(await self.store.rule_states())
        # before any snapshot: it may show a clearing
        pushed = await self.alerts.restore() if self.cluster is None else 0
        log.info(
            "state restored",
            accounts=restored,
            timers=len(self.timers.load_all()),
            alarms_pushed_by_roost=pushed,
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.persister.run)
                tg.start_soon(self.alerts.run, self.notifier.submit, self.engine.reacts_to)
                tg.start_soon(self.engine.run, self._inbox)
                if self.engine.monitor is not None:
                    tg.start_soon(self.engine.monitor.run)
                rules = rule_commands(self.engine, self.reload_rules, self.store.journal)
                control = {**rules, **(commands or {})}
                tg.start_soon(serve, self.settings.daemon.socket_path(), control)
                if self.recorder is not None:
                    tg.start_soon(self.recorder.run, [p.account for p in self.providers])
                tg.start_soon(self.dispatcher.run)
                tg.start_soon(self.notifier.run)
                if self.settings.notify.targets:
                    tg.start_soon(self.notify_helper.run)
                if self.cluster is not None:
                    tg.start_soon(self.cluster.run, self._supervise)  # its groups' accounts
                else:
                    for provider in self.providers:
                        tg.start_soon(self._supervise, provider)
        finally:
            with anyio.CancelScope(shield=True):
                for provider in self.providers:
                    await provider.aclose()
                await self._context.aclose()  # the HTTP clients the providers shared
                await self.persister.flush()
                self.timers.close()
                await self.store.aclose()

    async def _supervise(self, provider: Provider) -> None:
        """A provider that crashes is restarted with back-off (it reports its status afresh
        when it runs again); the other accounts keep running. Crashes inside a session are
        the provider's own supervisor's (providers/supervisor.py); this catches the rest."""
        backoff = Backoff(*PROVIDER_RESTART_S)
        while True:
            try:
                await provider.run(self.state)
                return
            except Exception as exc:
                log.exception("provider crashed; restarting", account=provider.account)
                await self.state.status(
                    provider.account, ConnectionState.RECOVERING, f"crashed: {type(exc).__name__}"
                )
                await anyio.sleep(max(backoff.next(), PROVIDER_RESTART_S[0]))


def cluster_worker(runtime: Runtime) -> ClusterWorker:
    from roost.cluster.worker import attach  # psycopg: only a fleet worker needs it

    password = runtime.settings.store.password
    return attach(
        runtime.settings.cluster,
        runtime.store,
        runtime.state,
        runtime.providers,
        runtime.dispatcher.add_provider,
        password.get_secret_value() if password else None,
        runtime.dispatcher.submit,
        runtime.engine.timers,
        runtime.bus,
        runtime.alerts.adopt,
    )


def engine(
    settings: Settings, services: Services, timers: TimerPersistence | None = None
) -> Engine:
    d = settings.daemon
    return Engine(
        services,
        persistence=timers,
        timeout_s=d.rule_timeout_s,
        block_budget_s=d.rule_block_budget_s,
        max_commands=d.rule_max_commands,
        traces_per_rule=d.traces_per_rule,
        loop=LoopLimits(d.loop_max_depth, d.loop_echo_runs, d.loop_echo_window_s),
        grace_s=d.timer_grace_s,
        monitor=LoopMonitor(),
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _replaces(previous: Rule, error: RuleError) -> bool:
    """The error is about this running rule (its file; its name, when the error says it)."""
    return previous.path == str(error.path) and error.rule in (None, previous.name)


def locations(settings: Settings) -> dict[str, Location]:
    """`[location]` as the engine's map: "" is the home's default, then per structure."""
    where = settings.location
    out = {name: Location(p.latitude, p.longitude) for name, p in where.structures.items()}
    if where.latitude is not None and where.longitude is not None:
        out[""] = Location(where.latitude, where.longitude)
    return out
