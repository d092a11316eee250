"""What rules remember across runs and restarts: `home.memory`, and thermostat snapshots.

    await home.memory.set("last_alert", "co")        # any JSON value
    await home.memory.get("last_alert")              # "co" (None if never set)
    await home.snapshot("before away", structure=event.structure)
    await home.restore("before away")                # modes and setpoints, back as they were

Values live in the store's memory table under the namespace "rules" (shared by every
rule, so one rule can put back what another remembered), so they survive a restart.
Restoring sends ordinary commands: they pass the guards like any other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from roost.core.commands import Action, SetCool, SetEco, SetHeat, SetMode, SetRange
from roost.core.model import Thermostat, ThermostatMode

NAMESPACE = "rules"
SNAPSHOT_PREFIX = "snapshot:"


class KeyValues(Protocol):
    """The store's memory table (`store.StoreMemory`), or a dict for tests."""

    async def get(self, account: str, key: str) -> str | None: ...

    async def put(self, account: str, key: str, value: str) -> None: ...


class InProcessKeyValues:
    """Memory that lasts as long as the process (the sandbox's default)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], str] = {}

    async def get(self, account: str, key: str) -> str | None:
        return self._values.get((account, key))

    async def put(self, account: str, key: str, value: str) -> None:
        self._values[(account, key)] = value


class Memory:
    """`home.memory`: JSON values by key, kept in the store."""

    def __init__(self, backend: KeyValues) -> None:
        self._backend = backend

    async def get(self, key: str, default: Any = None) -> Any:
        raw = await self._backend.get(NAMESPACE, key)
        if raw is None:
            return default
        value = json.loads(raw)
        return default if value is None else value

    async def set(self, key: str, value: Any) -> None:
        """Remember `value` (anything JSON can hold); `None` forgets the key."""
        await self._backend.put(NAMESPACE, key, json.dumps(value))


@dataclass(frozen=True)
class ThermostatSetting:
    """What a snapshot keeps of one thermostat: enough to put it back."""

    id: str
    name: str
    mode: ThermostatMode
    heat_c: float | None
    cool_c: float | None

    @classmethod
    def of(cls, t: Thermostat) -> ThermostatSetting | None:
        """None while the thermostat's mode is unknown: there is nothing sure to put back."""
        if t.mode is None:
            return None
        return cls(t.id, t.name, t.mode, t.heat_setpoint_c, t.cool_setpoint_c)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "mode": str(self.mode),
            "heat_c": self.heat_c,
            "cool_c": self.cool_c,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ThermostatSetting:
        return cls(
            str(data["id"]),
            str(data.get("name", data["id"])),
            ThermostatMode(data["mode"]),
            _number(data.get("heat_c")),
            _number(data.get("cool_c")),
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def save_snapshot(memory: Memory, name: str, thermostats: list[Thermostat]) -> int:
    settings = [s for s in map(ThermostatSetting.of, thermostats) if s is not None]
    await memory.set(SNAPSHOT_PREFIX + name, [s.to_json() for s in settings])
    return len(settings)


async def load_snapshot(memory: Memory, name: str) -> list[ThermostatSetting] | None:
    data = await memory.get(SNAPSHOT_PREFIX + name)
    if not isinstance(data, list):
        return None
    return [ThermostatSetting.from_json(item) for item in data if isinstance(item, dict)]


def restoring(saved: ThermostatSetting, now: Thermostat) -> list[Action]:
    """The commands that bring `now` back to `saved`: the mode, then its setpoints."""
    if saved.mode is ThermostatMode.ECO:
        return [] if now.mode is ThermostatMode.ECO else [SetEco(True)]
    actions: list[Action] = []
    changed = now.mode is not saved.mode
    if changed:
        actions.append(SetMode(saved.mode))
    heat = saved.heat_c if changed or saved.heat_c != now.heat_setpoint_c else None
    cool = saved.cool_c if changed or saved.cool_c != now.cool_setpoint_c else None
    if saved.mode is ThermostatMode.HEAT and heat is not None:
        actions.append(SetHeat(heat))
    elif saved.mode is ThermostatMode.COOL and cool is not None:
        actions.append(SetCool(cool))
    elif saved.mode is ThermostatMode.HEAT_COOL and (heat is not None or cool is not None):
        actions.extend(_range(saved))
    return actions


def _range(saved: ThermostatSetting) -> list[Action]:
    if saved.heat_c is None or saved.cool_c is None:
        return []
    return [SetRange(saved.heat_c, saved.cool_c)]
