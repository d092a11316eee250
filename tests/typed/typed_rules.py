"""A rule file written against the typed API."""

from roost import Alarm, CoAlarm, Home, PresenceChanged, Thermostat, rule, when


@rule(on=when(PresenceChanged, to="away"), cooldown="1m")
async def eco_when_away(event: PresenceChanged, home: Home) -> None:
    for thermostat in home.thermostats(structure=event.structure):
        if thermostat.mode != "eco" and event.new == "away":
            await thermostat.set_eco(True)


@rule(on=when(CoAlarm, to=["warning", "emergency"]))
async def co_alert(event: CoAlarm, home: Home) -> None:
    alarm = home.device()
    room: str | None = alarm.room
    alarms: list[Alarm] = home.alarms()
    await home.notify(f"CO {event.new} in {room}", tags=["urgent"], priority="urgent")
    for t in home.thermostats():
        setpoint: float | None = t.heat_setpoint_c
        if isinstance(t, Thermostat) and setpoint is not None and alarms:
            await t.set_mode("off")
