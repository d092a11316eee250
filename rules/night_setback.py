"""At 22:30 on weeknights, if someone is home, turn the heating down for the night."""

from roost import cron, presence, rule


@rule(on=cron("30 22 * * sun-thu"), condition=presence("home", structure="Home"))
async def night_setback(event, home):
    """Weeknights at 22:30 (the home's time zone): heating thermostats to 17 °C."""
    for thermostat in home.thermostats():
        if thermostat.mode == "heat":
            await thermostat.set_heat(17)
