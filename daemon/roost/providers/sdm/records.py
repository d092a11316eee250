"""The SDM devices as roost holds them: raw traits, and when each value was last set.

Pub/Sub does not keep order, so every trait field remembers the event timestamp it came
from, and an update applies only to the fields it is not older than: a late message can
never roll a value back. (Per field, not per trait, so two partial updates of one trait
that cross each other both count.) A full read (`devices.list` / `devices.get`) replaces the
record, stamped with the server's time of the read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from roost.providers.sdm.messages import PayloadError


@dataclass
class DeviceRecord:
    name: str  # enterprises/<project>/devices/<id>
    type: str  # sdm.devices.types.THERMOSTAT | CAMERA | DOORBELL | DISPLAY
    traits: dict[str, dict[str, Any]]
    parents: tuple[tuple[str, str], ...] = ()  # (parent resource name, displayName)
    stamps: dict[tuple[str, str], datetime] = field(default_factory=dict)

    @classmethod
    def from_resource(cls, resource: Any, at: datetime) -> DeviceRecord:
        """A device as `devices.list` / `devices.get` return it."""
        if not isinstance(resource, Mapping) or not isinstance(resource.get("name"), str):
            raise PayloadError("a device without a name")
        name = resource["name"]
        traits = resource.get("traits", {})
        if not isinstance(traits, Mapping) or not all(
            isinstance(v, Mapping) for v in traits.values()
        ):
            raise PayloadError(f"device {name}: traits is not an object of objects")
        record = cls(
            name=name,
            type=str(resource.get("type", "")),
            traits={trait: dict(values) for trait, values in traits.items()},
            parents=_parents(resource.get("parentRelations")),
        )
        record.stamps = {
            (trait, key): at for trait, values in record.traits.items() for key in values
        }
        return record

    def merge(self, traits: Mapping[str, Mapping[str, Any]], at: datetime) -> int:
        """Apply an update's trait values stamped `at`; how many values were not stale."""
        applied = 0
        for trait, values in traits.items():
            held = self.traits.setdefault(trait, {})
            for key, value in values.items():
                stamp = self.stamps.get((trait, key))
                if stamp is not None and at < stamp:
                    continue
                held[key] = value
                self.stamps[(trait, key)] = at
                applied += 1
        return applied


def _parents(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        (str(p["parent"]), str(p.get("displayName", "")))
        for p in value
        if isinstance(p, Mapping) and isinstance(p.get("parent"), str)
    )
