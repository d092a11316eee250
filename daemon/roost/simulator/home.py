"""A vendor-neutral simulated home: devices, a little physics, and scenario controls.

Every vendor front serves the same `SimHome`, translating it to its own wire format. This
module knows no vendor field names and does not import the daemon's model, so a bug in the
daemon's normalizer cannot be cancelled out by the same bug here.

Each change bumps `version`; `wait_changed` lets a front push the change to its clients.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, get_args

import anyio

Mode = Literal["heat", "cool", "heat-cool", "eco", "off"]
HvacState = Literal["heating", "cooling", "off"]
AlarmState = Literal["ok", "warning", "emergency"]
BatteryState = Literal["ok", "replace"]

_T = TypeVar("_T")
_S = TypeVar("_S", bound=str)

MODES: tuple[Mode, ...] = get_args(Mode)
ALARM_STATES: tuple[AlarmState, ...] = get_args(AlarmState)
BATTERY_STATES: tuple[BatteryState, ...] = get_args(BatteryState)

HEAT_RATE_C_PER_S = 0.1 / 60  # a running furnace or air conditioner moves the room 0.1 °C a minute
DRIFT_PER_S = 1 / 36000  # an idle room closes 1/36000 of its gap to the outdoors a second
HYSTERESIS_C = 0.3  # heating restarts this far below the setpoint (cooling: above)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass
class SimStructure:
    id: str
    name: str
    away: bool = False
    time_zone: str = "Europe/London"
    arrival_begin: str | None = None  # an expected arrival (ETA) window's start, ISO 8601


@dataclasses.dataclass
class SimThermostat:
    id: str
    name: str
    structure_id: str
    room: str
    online: bool = True
    mode: Mode = "heat"
    previous_mode: Mode | None = None  # the mode to return to when leaving eco
    target_c: float = 20.0
    target_low_c: float = 19.0
    target_high_c: float = 24.0
    eco_low_c: float = 12.5
    eco_high_c: float = 28.0
    ambient_c: float = 20.0
    humidity: int = 45
    hvac_state: HvacState = "off"
    can_heat: bool = True
    can_cool: bool = False
    has_fan: bool = False
    fan_timer_active: bool = False
    fan_timer_timeout: datetime | None = None
    fan_timer_duration: int = 15  # minutes
    emergency_heat: bool = False
    locked: bool = False
    locked_min_c: float = 19.0
    locked_max_c: float = 22.0
    scale: str = "C"  # the display's temperature scale, "C" or "F"
    label: str = ""


@dataclasses.dataclass
class SimSmokeCoAlarm:
    id: str
    name: str
    structure_id: str
    room: str
    online: bool = True
    smoke: AlarmState = "ok"
    co: AlarmState = "ok"
    battery: BatteryState = "ok"


@dataclasses.dataclass(frozen=True)
class SimCameraEvent:
    motion: bool
    person: bool
    sound: bool
    start: datetime
    end: datetime


@dataclasses.dataclass
class SimCamera:
    id: str
    name: str
    structure_id: str
    room: str
    online: bool = True
    streaming: bool = True
    is_doorbell: bool = False
    last_event: SimCameraEvent | None = None
    last_chime: datetime | None = None


SimDevice = SimThermostat | SimSmokeCoAlarm | SimCamera


class SimHome:
    """The simulated home. Scenario methods raise KeyError for unknown ids and ValueError
    for values outside the neutral vocabulary; vendor rules belong to the fronts."""

    def __init__(self, *, outdoor_c: float = 8.0, clock: Callable[[], datetime] = utcnow):
        self.structures: dict[str, SimStructure] = {}
        self.thermostats: dict[str, SimThermostat] = {}
        self.alarms: dict[str, SimSmokeCoAlarm] = {}
        self.cameras: dict[str, SimCamera] = {}
        self.outdoor_c = outdoor_c
        self.clock = clock
        self.version = 0
        self._changed: anyio.Event | None = None

    # -- building and reading -----------------------------------------------------------

    def add(self, item: SimStructure | SimDevice) -> None:
        if isinstance(item, SimStructure):
            self.structures[item.id] = item
        elif isinstance(item, SimThermostat):
            self.thermostats[item.id] = item
        elif isinstance(item, SimSmokeCoAlarm):
            self.alarms[item.id] = item
        else:
            self.cameras[item.id] = item
        self.changed()

    def remove(self, device_id: str) -> SimDevice:
        """Take a device out of the home (it was removed from the account)."""
        device = self.device(device_id)
        self.thermostats.pop(device_id, None)
        self.alarms.pop(device_id, None)
        self.cameras.pop(device_id, None)
        self.changed()
        return device

    def move(self, device_id: str, *, room: str, structure_id: str | None = None) -> None:
        """Move a device to another room (and structure)."""
        device = self.device(device_id)
        if structure_id is not None:
            device.structure_id = self.structure(structure_id).id
        device.room = room
        self.changed()

    def structure(self, structure_id: str) -> SimStructure:
        return _lookup(self.structures, structure_id, "structure")

    def thermostat(self, device_id: str) -> SimThermostat:
        return _lookup(self.thermostats, device_id, "thermostat")

    def alarm(self, device_id: str) -> SimSmokeCoAlarm:
        return _lookup(self.alarms, device_id, "smoke/CO alarm")

    def camera(self, device_id: str) -> SimCamera:
        return _lookup(self.cameras, device_id, "camera")

    def device(self, device_id: str) -> SimDevice:
        for devices in (self.thermostats, self.alarms, self.cameras):
            if device_id in devices:
                return devices[device_id]
        raise KeyError(f"unknown device {device_id!r}")

    def devices_in(self, structure_id: str) -> list[SimDevice]:
        devices: list[SimDevice] = [
            *self.thermostats.values(),
            *self.alarms.values(),
            *self.cameras.values(),
        ]
        return [device for device in devices if device.structure_id == structure_id]

    def to_dict(self) -> dict[str, Any]:
        """The whole home as plain JSON-able data (datetimes as ISO strings)."""
        return {
            "version": self.version,
            "outdoor_c": self.outdoor_c,
            "structures": {k: _plain(v) for k, v in self.structures.items()},
            "thermostats": {k: _plain(v) for k, v in self.thermostats.items()},
            "alarms": {k: _plain(v) for k, v in self.alarms.items()},
            "cameras": {k: _plain(v) for k, v in self.cameras.items()},
        }

    # -- change notification -----------------------------------------------------------

    def changed(self) -> None:
        """Record a change: bump the version and wake every `wait_changed`."""
        self.version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_changed(self, after_version: int) -> int:
        """Wait until `version` is past `after_version`, and return it."""
        while self.version <= after_version:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        return self.version

    # -- scenario controls ---------------------------------------------------------------

    def set_away(self, structure_id: str, away: bool) -> None:
        self.structure(structure_id).away = away
        self.changed()

    def set_smoke(self, device_id: str, state: str) -> None:
        self.alarm(device_id).smoke = _choice(state, ALARM_STATES, "smoke state")
        self.changed()

    def set_co(self, device_id: str, state: str) -> None:
        self.alarm(device_id).co = _choice(state, ALARM_STATES, "CO state")
        self.changed()

    def set_battery(self, device_id: str, state: str) -> None:
        self.alarm(device_id).battery = _choice(state, BATTERY_STATES, "battery state")
        self.changed()

    def set_online(self, device_id: str, online: bool) -> None:
        self.device(device_id).online = online
        self.changed()

    def set_ambient(self, device_id: str, celsius: float) -> None:
        thermostat = self.thermostat(device_id)
        thermostat.ambient_c = celsius
        self._regulate(thermostat)

    def camera_event(
        self, device_id: str, *, motion: bool = True, person: bool = False, sound: bool = False
    ) -> SimCameraEvent:
        now = self.clock()
        event = SimCameraEvent(motion=motion, person=person, sound=sound, start=now, end=now)
        self.camera(device_id).last_event = event
        self.changed()
        return event

    def doorbell_chime(self, device_id: str) -> None:
        camera = self.camera(device_id)
        if not camera.is_doorbell:
            raise ValueError(f"camera {device_id!r} is not a doorbell")
        camera.last_chime = self.clock()
        self.changed()

    def extend_camera_event(
        self, device_id: str, *, motion: bool = False, person: bool = False, sound: bool = False
    ) -> SimCameraEvent:
        """The camera's current event goes on and now also shows what is set here."""
        camera = self.camera(device_id)
        event = camera.last_event
        if event is None:
            raise ValueError(f"camera {device_id!r} has no event to extend")
        camera.last_event = dataclasses.replace(
            event,
            motion=event.motion or motion,
            person=event.person or person,
            sound=event.sound or sound,
            end=self.clock(),
        )
        self.changed()
        return camera.last_event

    # -- device controls, as a front applies a client's write ---------------------------

    def set_mode(self, device_id: str, mode: str) -> None:
        thermostat = self.thermostat(device_id)
        new_mode = _choice(mode, MODES, "mode")
        if new_mode == "eco" and thermostat.mode != "eco":
            thermostat.previous_mode = thermostat.mode
        thermostat.mode = new_mode
        self._regulate(thermostat)

    def set_target(self, device_id: str, celsius: float) -> None:
        thermostat = self.thermostat(device_id)
        thermostat.target_c = celsius
        self._regulate(thermostat)

    def set_range(self, device_id: str, low_c: float | None, high_c: float | None) -> None:
        thermostat = self.thermostat(device_id)
        if low_c is not None:
            thermostat.target_low_c = low_c
        if high_c is not None:
            thermostat.target_high_c = high_c
        self._regulate(thermostat)

    def set_fan_timer(
        self, device_id: str, active: bool | None = None, duration_min: int | None = None
    ) -> None:
        """Start or stop the fan timer (None keeps the current state) and/or set its length.
        Starting it runs the fan for the timer's duration from now."""
        thermostat = self.thermostat(device_id)
        if duration_min is not None:
            thermostat.fan_timer_duration = duration_min
        if active is not None:
            thermostat.fan_timer_active = active
            duration = timedelta(minutes=thermostat.fan_timer_duration)
            thermostat.fan_timer_timeout = self.clock() + duration if active else None
        self.changed()

    def set_arrival(self, structure_id: str, begin: str | None) -> None:
        self.structures[structure_id].arrival_begin = begin
        self.changed()

    def set_display(self, device_id: str, *, scale: str | None, label: str | None) -> None:
        thermostat = self.thermostat(device_id)
        thermostat.scale = scale if scale is not None else thermostat.scale
        thermostat.label = label if label is not None else thermostat.label
        self.changed()

    def set_streaming(self, device_id: str, streaming: bool) -> None:
        self.camera(device_id).streaming = streaming
        self.changed()

    # -- physics -------------------------------------------------------------------------

    def tick(self, dt_s: float) -> None:
        """Advance the home by dt_s seconds: rooms warm or cool, HVAC follows the setpoints,
        fan timers expire. Bumps the version only if something changed."""
        now = self.clock()
        changed = False
        for thermostat in self.thermostats.values():
            before = dataclasses.astuple(thermostat)
            _expire_fan_timer(thermostat, now)
            if thermostat.online:
                _step(thermostat, dt_s, self.outdoor_c)
            changed |= dataclasses.astuple(thermostat) != before
        if changed:
            self.changed()

    async def run_physics(self, interval_s: float, speed: float = 1.0) -> None:
        """Tick every interval_s seconds of real time, `speed` times faster than real."""
        while True:
            await anyio.sleep(interval_s)
            self.tick(interval_s * speed)

    def _regulate(self, thermostat: SimThermostat) -> None:
        thermostat.hvac_state = _demand(thermostat)
        self.changed()

    # -- the demo home -------------------------------------------------------------------

    @classmethod
    def demo(cls, *, outdoor_c: float = 8.0, clock: Callable[[], datetime] = utcnow) -> SimHome:
        """A small home: two thermostats, a smoke/CO alarm and a doorbell camera."""
        home = cls(outdoor_c=outdoor_c, clock=clock)
        home_id = "structure-home"
        home.add(SimStructure(id=home_id, name="Home", time_zone="Europe/London"))
        home.add(
            SimThermostat(
                id="thermostat-living-room",
                name="Living Room",
                room="Living Room",
                mode="heat",
                target_c=20.0,
                ambient_c=19.5,
                can_heat=True,
                can_cool=True,
                has_fan=True,
                structure_id=home_id,
            )
        )
        home.add(
            SimThermostat(
                id="thermostat-bedroom",
                name="Bedroom",
                room="Bedroom",
                mode="heat",
                target_c=19.0,
                ambient_c=18.5,
                structure_id=home_id,
            )
        )
        home.add(
            SimSmokeCoAlarm(
                id="alarm-hallway", name="Hallway", room="Hallway", structure_id=home_id
            )
        )
        home.add(
            SimCamera(
                id="camera-front-door",
                name="Front Door",
                room="Front Door",
                is_doorbell=True,
                structure_id=home_id,
            )
        )
        home.tick(0)
        return home


def setpoints(thermostat: SimThermostat) -> tuple[float | None, float | None]:
    """The (heat below, cool above) temperatures the thermostat holds in its current mode."""
    match thermostat.mode:
        case "heat":
            return thermostat.target_c, None
        case "cool":
            return None, thermostat.target_c
        case "heat-cool":
            return thermostat.target_low_c, thermostat.target_high_c
        case "eco":
            return thermostat.eco_low_c, thermostat.eco_high_c
        case _:
            return None, None


def _demand(thermostat: SimThermostat) -> HvacState:
    heat_below, cool_above = setpoints(thermostat)
    ambient, running = thermostat.ambient_c, thermostat.hvac_state
    if heat_below is not None and thermostat.can_heat:
        start = heat_below - (0 if running == "heating" else HYSTERESIS_C)
        if ambient < start:
            return "heating"
    if cool_above is not None and thermostat.can_cool:
        start = cool_above + (0 if running == "cooling" else HYSTERESIS_C)
        if ambient > start:
            return "cooling"
    return "off"


def _step(thermostat: SimThermostat, dt_s: float, outdoor_c: float) -> None:
    thermostat.hvac_state = _demand(thermostat)
    heat_below, cool_above = setpoints(thermostat)
    ambient = thermostat.ambient_c
    if thermostat.hvac_state == "heating" and heat_below is not None:
        ambient = min(heat_below, ambient + HEAT_RATE_C_PER_S * dt_s)
    elif thermostat.hvac_state == "cooling" and cool_above is not None:
        ambient = max(cool_above, ambient - HEAT_RATE_C_PER_S * dt_s)
    else:
        ambient += (outdoor_c - ambient) * min(1.0, DRIFT_PER_S * dt_s)
    thermostat.ambient_c = ambient
    thermostat.hvac_state = _demand(thermostat)


def _expire_fan_timer(thermostat: SimThermostat, now: datetime) -> None:
    timeout = thermostat.fan_timer_timeout
    if thermostat.fan_timer_active and timeout is not None and now >= timeout:
        thermostat.fan_timer_active = False
        thermostat.fan_timer_timeout = None


def _lookup(items: dict[str, _T], key: str, kind: str) -> _T:
    try:
        return items[key]
    except KeyError:
        raise KeyError(f"unknown {kind} {key!r}") from None


def _choice(value: str, allowed: tuple[_S, ...], what: str) -> _S:
    for option in allowed:
        if value == option:
            return option
    raise ValueError(f"invalid {what} {value!r}; expected one of {', '.join(allowed)}")


def _plain(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    return value
