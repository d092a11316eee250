"""The demo's scripted scenarios, one per simulated vendor: each suits what that vendor's
devices can do, and names the checks (at the simulator or the sink) it must pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from roost.providers.registry import DEMO_VENDOR
from roost.simulator.home import SimCamera, SimHome
from roost.simulator.sink import NotificationSink

DEFAULT_VENDOR = DEMO_VENDOR

HOME = "structure-home"
VILLA = "structure-villa"
ALARM = "alarm-hallway"


class Stack(Protocol):
    """What a scenario drives and checks: a simulated installation (testing's stack)."""

    home: SimHome
    cloud: Any  # the vendor simulator: its controls and write log
    sink: NotificationSink


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


VENDOR_NAMES = {
    "nest_wwn": "Works with Nest",
    "nest_web": "Nest web",
    "sdm": "Google SDM",
    "netatmo": "Netatmo",
}
