"""`roost demo`: a simulated home, the example rules, a scripted scenario, narrated.

Everything is real except the home: the daemon streams from a simulated vendor cloud over
loopback HTTP/SSE, its commands are HTTP writes to that cloud, and notifications are
delivered by apprise to a local HTTP sink that prints what it receives.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio

from roost.core.bus import Overflow
from roost.core.events import (
    AccountStatus,
    Changed,
    CoAlarm,
    CommandOutcome,
    ConnectivityChanged,
    DeviceAdded,
    DeviceEvent,
    DeviceRemoved,
    Event,
    NotificationOutcome,
    Outcome,
    PresenceChanged,
    SmokeAlarm,
    ThermostatModeChanged,
)
from roost.simulator.scenarios import DEFAULT_VENDOR, SCENARIOS, VENDOR_NAMES, Scenario
from roost.testing.stack import Stack, running_stack


@dataclass
class Narrator:
    out: TextIO
    speed: float
    started: float = field(default_factory=time.monotonic)
    names: dict[str, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def say(self, kind: str, text: str) -> None:
        elapsed = (time.monotonic() - self.started) * self.speed
        print(f"{elapsed:6.1f}s  {kind:<8} {text}", file=self.out, flush=True)

    def name(self, ref: str | None) -> str:
        return self.names.get(ref or "", ref or "?")

    def event(self, event: Event) -> None:
        line = self._describe(event)
        if line is not None:
            self.say(*line)

    def _describe(self, e: Event) -> tuple[str, str] | None:
        if isinstance(e, CommandOutcome):
            return self._outcome(e)
        if isinstance(e, NotificationOutcome):
            self.counts[f"notification {e.delivery}"] += 1
            return "push", f'"{e.title}" {e.delivery} ({e.targets} target(s)) — rule {e.rule}'
        if isinstance(e, AccountStatus):
            return "account", f"{e.account}: {e.state} {e.detail}".rstrip()
        if isinstance(
            e, PresenceChanged | ThermostatModeChanged | CoAlarm | SmokeAlarm | ConnectivityChanged
        ):
            return self._change(e)
        if isinstance(e, DeviceEvent | DeviceAdded | DeviceRemoved):
            self.counts["events"] += 1
            return "event", f"{e.name} [{self.name(e.device)}]"
        return None

    def _change(self, e: Changed) -> tuple[str, str]:
        self.counts["events"] += 1
        where = self.name(e.device or e.structure)
        cause = f"  (echo of a command from rule {e.context.rule})" if e.context.causation else ""
        old, new = (_online(e.old), _online(e.new)) if e.name == "connectivity" else (e.old, e.new)
        return "event", f"{e.name} {old} → {new} [{where}]{cause}"

    def _outcome(self, e: CommandOutcome) -> tuple[str, str]:
        self.counts[f"command {e.outcome}"] += 1
        text = f"{e.action} → {self.name(e.device)}: {e.outcome}"
        if e.outcome is Outcome.CONFIRMED and e.latency_s is not None:
            text += f" by the device's echo in {e.latency_s * 1000:.0f} ms"
        if e.reason and e.outcome is not Outcome.CONFIRMED:
            text += f" ({e.reason})"
        return "command", f"{text} — rule {e.rule}"

    def received(self, payload: dict[str, Any]) -> None:
        self.counts["received at sink"] += 1
        self.say(
            "sink",
            f"received [{payload.get('type')}] {payload.get('title')}: {payload.get('message')}",
        )


async def run_demo(
    rules_dir: Path,
    out: TextIO,
    speed: float = 1.0,
    vendor: str = DEFAULT_VENDOR,
    stock: bool = True,
) -> int:
    """Play the scenario. `stock`: the rules are the example set, so the scenario's checks
    (which describe what those rules do) are judged; a custom set is only narrated."""
    from roost.engine.loader import load_directory

    errors = load_directory(rules_dir).errors
    for error in errors:
        print(error, file=out)
    if errors:
        print("demo not started: fix the rule files first (roost check)", file=out)
        return 1
    scenario = SCENARIOS[vendor]
    narrator = Narrator(out, speed)
    print("roost demo: a simulated home, the rules in", rules_dir, file=out)
    print("           and a local push-notification sink (apprise json://)\n", file=out)
    with tempfile.TemporaryDirectory(prefix="roost-demo-") as state_dir:
        async with running_stack(
            rules_dir, state_dir=Path(state_dir), vendor=vendor, physics_interval_s=1.0 / speed
        ) as stack:
            stack.sink.on_receive = narrator.received
            inbox = stack.runtime.bus.subscribe("demo", overflow=Overflow.DROP)
            await stack.connected()
            narrator.started = time.monotonic()
            _introduce(stack, narrator)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_narrate, inbox, narrator)
                await _play(stack, narrator, scenario, speed)
                tg.cancel_scope.cancel()
            return _summary(stack, narrator, scenario if stock else None)


def _online(value: Any) -> str:
    return "online" if value else "offline"


def _introduce(stack: Stack, narrator: Narrator) -> None:
    state = stack.runtime.state
    narrator.names.update({s.id: s.name for s in state.structures()})
    narrator.names.update({d.id: d.name for d in state.devices()})
    devices = ", ".join(f"{d.name} ({d.kind})" for d in state.devices())
    vendor = VENDOR_NAMES.get(stack.runtime.settings.accounts[0].provider, "vendor")
    narrator.say("account", f"connected to the simulated {vendor} cloud at {stack.cloud.url}")
    narrator.say("home", devices)
    for r in stack.runtime.engine.rules.values():
        narrator.say(
            "rule",
            f"{r.name}  [{Path(r.source).name}]  on {', '.join(t.describe() for t in r.triggers)}",
        )


async def _narrate(inbox: Any, narrator: Narrator) -> None:
    async for batch in inbox:
        for event in batch:
            narrator.event(event)


async def _play(stack: Stack, narrator: Narrator, scenario: Scenario, speed: float) -> None:
    start = time.monotonic()
    for at_s, what, act in scenario.steps:
        await _sleep_until(start, at_s / speed)
        narrator.say("▶", what)
        act(stack)
    await _sleep_until(start, scenario.end_s / speed)


async def _sleep_until(start: float, offset_s: float) -> None:
    await anyio.sleep(max(0.0, start + offset_s - time.monotonic()))


def _summary(stack: Stack, narrator: Narrator, scenario: Scenario | None) -> int:
    print("\nsummary", file=narrator.out)
    for key, count in sorted(narrator.counts.items()):
        print(f"  {key:<30} {count}", file=narrator.out)
    if scenario is None:
        print(
            "demo done (custom rules: the stock scenario's checks do not apply)", file=narrator.out
        )
        return 0
    ok = True
    for check in scenario.checks:
        passed, detail = check.passed(stack)
        ok = ok and passed
        print(f"  {check.label:<30} {'yes' if passed else 'NO'} ({detail})", file=narrator.out)
    print("demo", "passed" if ok else "FAILED", file=narrator.out)
    return 0 if ok else 1


def main(
    rules_dir: Path, out: TextIO, speed: float, vendor: str = DEFAULT_VENDOR, stock: bool = True
) -> int:
    async def runner() -> int:
        return await run_demo(rules_dir, out, speed, vendor, stock)

    return anyio.run(runner)
