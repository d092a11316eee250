"""`roost demo`: a simulated home, the example rules, a scripted scenario, narrated.

Everything is real except the home: the daemon streams from a simulated vendor cloud over
loopback HTTP/SSE, its commands are HTTP writes to that cloud, and notifications are
delivered by apprise to a local HTTP sink that prints what it receives.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio

from roost.bus import Overflow
from roost.events import (
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
from roost.simulator.home import SimCamera
from roost.simulator.stack import Stack, running_stack

HOME = "structure-home"
VILLA = "structure-villa"
ALARM = "alarm-hallway"

Step = tuple[float, str, Callable[[Stack], None]]

NEST_HOME_STEPS: Sequence[Step] = (
    (2.0, "everyone leaves home", lambda s: s.home.set_away(HOME, True)),
    (
        6.0,
        "carbon monoxide rises in the hallway (warning)",
        lambda s: s.home.set_co(ALARM, "warning"),
    ),
    (
        9.0,
        "someone comes home while the CO alarm is still on",
        lambda s: s.home.set_away(HOME, False),
    ),
    (12.0, "the CO level reaches emergency", lambda s: s.home.set_co(ALARM, "emergency")),
    (15.0, "the air clears: CO back to normal", lambda s: s.home.set_co(ALARM, "ok")),
    (
        18.0,
        "the bedroom thermostat drops off the network",
        lambda s: s.home.set_online("thermostat-bedroom", False),
    ),
)


def _redeliver_last_chime(stack: Stack) -> None:
    """Pub/Sub delivers at least once: the doorbell's message comes a second time."""
    chimes = [p for p in stack.cloud.published if "DoorbellChime" in str(p)]
    stack.cloud.publish_event(chimes[0])


def _person_in_the_garden(stack: Stack) -> None:
    stack.home.camera_event("camera-garden", motion=True, person=True)


# Google SDM shows thermostats, cameras and doorbells, but no presence and no smoke/CO alarm.
SDM_HOME_STEPS: Sequence[Step] = (
    (
        2.0,
        "the afternoon sun heats the lounge to 26.5 °C",
        lambda s: s.home.set_ambient("thermostat-lounge", 26.5),
    ),
    (6.0, "someone rings the front doorbell", lambda s: s.home.doorbell_chime("doorbell-front")),
    (9.0, "a person crosses the garden", _person_in_the_garden),
    (12.0, "Pub/Sub delivers the doorbell's message again", _redeliver_last_chime),
    (
        15.0,
        "a camera is installed in the garage",
        lambda s: s.home.add(
            SimCamera(id="camera-garage", name="Garage", room="Garage", structure_id=VILLA)
        ),
    ),
    (
        18.0,
        "the study thermostat drops off the network",
        lambda s: s.home.set_online("thermostat-study", False),
    ),
)


@dataclass(frozen=True)
class Check:
    """A thing the demo must have shown, verified at the simulator or the sink."""

    label: str
    passed: Callable[[Stack], tuple[bool, str]]


@dataclass(frozen=True)
class Scenario:
    steps: Sequence[Step]
    end_s: float
    checks: Sequence[Check]


def _eco_written(stack: Stack) -> tuple[bool, str]:
    eco = [body for _, body in stack.cloud.writes if body.get("hvac_mode") == "eco"]
    return bool(eco), f"{len(eco)} write(s)"


def _co_pushed(stack: Stack) -> tuple[bool, str]:
    pushes = [p for p in stack.sink.received if "CO" in str(p.get("title"))]
    return bool(pushes), f"{len(pushes)} received"


def _eco_put(stack: Stack) -> tuple[bool, str]:
    """Nest web: eco is `device.<serial>` `{"eco": {"mode": "manual-eco"}}`."""
    eco = [key for key, fields in stack.cloud.writes if fields.get("eco") == {"mode": "manual-eco"}]
    return bool(eco), f"{len(eco)} put(s)"


def _therm_mode_set(mode: str) -> Callable[[Stack], tuple[bool, str]]:
    """Netatmo: eco is the home's `setthermmode` away; leaving it is mode schedule."""

    def check(stack: Stack) -> tuple[bool, str]:
        found = [p for e, p in stack.cloud.writes if e == "setthermmode" and p.get("mode") == mode]
        return bool(found), f"{len(found)} write(s)"

    return check


def _cool_commanded(stack: Stack) -> tuple[bool, str]:
    """SDM: `ThermostatTemperatureSetpoint.SetCool` executed (HTTP 200) by the simulator."""
    done = [c for c in stack.cloud.commands if c.command.endswith("SetCool") and c.status == 200]
    return bool(done), f"{len(done)} executeCommand(s)"


def _one_doorbell_push(stack: Stack) -> tuple[bool, str]:
    pushes = [p for p in stack.sink.received if "door" in str(p.get("title")).lower()]
    return len(pushes) == 1, f"{len(pushes)} received"


# One scenario per vendor: each suits what that vendor's devices can do.
SCENARIOS: dict[str, Scenario] = {
    "nest_web": Scenario(
        NEST_HOME_STEPS,
        21.0,
        (
            Check("eco put in the simulator", _eco_put),
            Check("CO notification at the sink", _co_pushed),
        ),
    ),
    "nest_wwn": Scenario(
        NEST_HOME_STEPS,
        21.0,
        (
            Check("eco applied in the simulator", _eco_written),
            Check("CO notification at the sink", _co_pushed),
        ),
    ),
    "sdm": Scenario(
        SDM_HOME_STEPS,
        21.0,
        (
            Check("cooling setpoint executed", _cool_commanded),
            Check("one doorbell push at the sink", _one_doorbell_push),
        ),
    ),
    "netatmo": Scenario(
        NEST_HOME_STEPS,
        21.0,
        (
            Check("away mode set in the simulator", _therm_mode_set("away")),
            Check("CO notification at the sink", _co_pushed),
            Check("heating schedule resumed", _therm_mode_set("schedule")),
        ),
    ),
}


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
    rules_dir: Path, out: TextIO, speed: float = 1.0, vendor: str = "sdm", stock: bool = True
) -> int:
    """Play the scenario. `stock`: the rules are the example set, so the scenario's checks
    (which describe what those rules do) are judged; a custom set is only narrated."""
    from roost.loader import load_directory

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


VENDOR_NAMES = {
    "nest_wwn": "Works with Nest",
    "nest_web": "Nest web",
    "sdm": "Google SDM",
    "netatmo": "Netatmo",
}


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
    rules_dir: Path, out: TextIO, speed: float, vendor: str = "sdm", stock: bool = True
) -> int:
    async def runner() -> int:
        return await run_demo(rules_dir, out, speed, vendor, stock)

    return anyio.run(runner)
