"""When a CO alarm clears, say so, and resume heating if someone is home."""

from roost import rule, when


@rule(on=when("co", from_=["warning", "emergency"], to="ok"))
async def co_cleared(event, home):
    alarm = home.device()
    await home.notify(
        f"CO cleared in the {alarm.room}", f"{alarm.name} reads normal again.", tags=["urgent"]
    )
    structure = home.structure()
    if structure is not None and structure.presence == "home":
        for thermostat in home.thermostats(structure=event.structure):
            if thermostat.mode == "eco":
                await thermostat.set_eco(False)
