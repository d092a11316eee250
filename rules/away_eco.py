"""When everyone has left, put every thermostat of the house into eco."""

from roost import rule, when


@rule(on=when("presence", to="away"), cooldown="1m")
async def eco_when_away(event, home):
    """Away → eco on every thermostat in the structure that is not in eco yet."""
    for thermostat in home.thermostats(structure=event.structure):
        if thermostat.mode != "eco":
            await thermostat.set_eco(True)
