"""Works with Nest documents → the normalized home, plus the two stream helpers.

`normalize` turns a whole WWN document (`devices`, `structures`, `metadata`) into a `Home`;
a `Normalizer` does the same for a stream of documents, redoing only what changed.
`apply_put` applies one stream `put` to the held document. `camera_events` finds the camera
events (`last_event`) that are new between two documents, so each is reported once.
All functions are pure: they never change their arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from roost.core.errors import PayloadError
from roost.core.events import Context, DeviceEvent, Motion, Person, Sound
from roost.core.fastinit import replacer
from roost.core.ids import new_id
from roost.core.model import (
    AlarmState,
    BatteryHealth,
    Camera,
    Change,
    Device,
    Doorbell,
    Home,
    HvacActivity,
    Presence,
    SmokeCoAlarm,
    Structure,
    Thermostat,
    ThermostatMode,
)
from roost.providers.bounds import check_devices, check_path
from roost.providers.json_delta import Edits, Path
from roost.providers.readers import (
    Fields,
    Problem,
    Problems,
    active_setpoints,
    pair,
    parse_time,
)

Document = dict[str, Any]
# By device id: (the device's last raw object, the keys whose text changed, or None if
# unknown).
DeviceEdits = Mapping[str, tuple[Any, set[str] | None]]
# By section: (the section's last raw mapping, the one the put's was copied from, so that
# every device not named is the very same object in both; its devices' edits), as
# `put_edits` finds them.
SectionEdits = Mapping[str, tuple[Any, DeviceEdits]]
Builder = Callable[[str, Fields, dict[str, str]], Device]
# An attribute read from one field alone: (attribute, reader)
Reading = tuple[str, Callable[[Fields], Any]]

ALLOWED_RANGE_C = (9.0, 32.0)  # WWN's documented target-temperature bounds

# Where the (heat, cool, heat-cool low, heat-cool high) setpoints are.
SETPOINT_KEYS = (
    "target_temperature_c",
    "target_temperature_c",
    "target_temperature_low_c",
    "target_temperature_high_c",
)
_HVAC_STATE = {
    "heating": HvacActivity.HEATING,
    "cooling": HvacActivity.COOLING,
    "off": HvacActivity.IDLE,
}
_AWAY = {"home": Presence.HOME, "away": Presence.AWAY, "auto-away": Presence.AWAY}
_MODES = {m.value: m for m in ThermostatMode}
_ALARM = {a.value: a for a in AlarmState}
_BATTERY = {b.value: b for b in BatteryHealth}


def normalize(document: Mapping[str, Any], account: str, problems: Problems | None = None) -> Home:
    """The normalized picture of a whole WWN document. Unreadable fields are unknown
    (None) and noted in `problems`; a device without a readable structure is left out."""
    return Normalizer(account)(document, problems)


class Normalizer:
    """`normalize`, incrementally: one per stream. WWN puts the whole document again on
    every change, so each device's (and structure's) raw dict is kept with its normalized
    object, and only the entries whose raw dict changed are normalized again; the others
    keep their object (an unchanged device is the very same object, cheap to diff).

    A changed device is not always built again: each build notes the keys it read. When
    none of those changed (a field roost does not read), the device stays the same object;
    when the only fields it read that changed are its kind's `_READINGS` (a reading such as
    the humidity; WWN changes `ambient_temperature_f` and `time_to_target` with it), the
    held device is copied with those attributes read again.

    The result equals `normalize(document, account)` for every document, and so do the
    problems noted for each device read again. A device whose raw object or structure
    cannot be read keeps its last normalized form.

    `edits` (the stream parser's, see json_delta and `put_edits`) may name, by section, the
    devices whose text changed: (its last raw object, the keys whose text changed). Keys are
    taken only where that raw object is the very one held, else they are compared. Where
    the section's last raw mapping is the very one held, only the named devices are looked
    at: every other device is the very same object as before (a put that changed one
    reading costs that device, not a pass over the home).

    After each call `readings` holds what it changed as attribute changes, when all it did
    was read readings of held devices again (the common put: one reading changed); None when
    it did more. A stream can hand those to the state as a patch rather than the picture.

    A structure's own smoke/CO states stand in as one alarm device of it (`_structure_alarm`)
    while none of its alarms is visible as a device, so a token without the Protect devices
    still gets the alarm and its guards; beside visible ones, where they say more than those
    do (`_beside`). That stand-in remembers what it last said (an alarm it reported holds
    until the structure clears), the one thing a full `normalize` cannot know; after a
    restart, `recall` takes it from the home roost restored.
    """

    def __init__(self, account: str) -> None:
        self.account = account
        self._structures: dict[str, tuple[Any, Structure]] = {}
        self._devices: dict[str, _Section] = {}  # by section (thermostats, cameras…)
        self._wheres: dict[str, str] = {}
        self._structures_raw: Any = None  # as last read: the very same object, same result
        self._home_structures: dict[str, Structure] = {}
        self._structure_alarms: dict[str, SmokeCoAlarm] = {}  # by structure id, as read
        self._stand_ins: dict[str, Device] = {}  # those in the home, by device id
        self._alarms_seen: _Section | None = None  # the alarm devices they were chosen for
        self.readings: list[Change] | None = None

    def take_readings(self) -> list[Change] | None:
        """`readings` of the last call, not kept after (a stream's next put may be minutes
        away)."""
        readings, self.readings = self.readings, None
        return readings

    def recall(self, home: Home) -> None:
        """Before the first document: the stand-ins' last word from `home` (as restored
        from the store), so that an alarm a stand-in reported before a restart still holds
        beside a visible Protect catching up, and its clearing is reported, not dropped."""
        if self._alarms_seen is None:
            self._stand_ins = {
                device.id: device
                for device in home.devices.values()
                if isinstance(device, SmokeCoAlarm)
                and device.id == _stand_in_id(device.structure_id)
            }

    def __call__(
        self,
        document: Mapping[str, Any],
        problems: Problems | None = None,
        edits: SectionEdits | None = None,
    ) -> Home:
        found = problems if problems is not None else Problems()
        self.readings = None
        doc = _mapping(document, "document")
        structures_raw = _section(doc, "structures")
        devices_raw = _section(doc, "devices")
        check_devices(sum(len(v) for v in devices_raw.values() if isinstance(v, Mapping)))
        same_structures = structures_raw is self._structures_raw
        wheres = self._wheres if same_structures else _wheres(structures_raw)
        seen = _Seen()
        if wheres is not self._wheres and wheres != self._wheres:  # room names: redo them all
            self._devices = {}
            self._wheres = wheres
        devices: dict[str, Device] = {}
        sections: dict[str, _Section] = {}
        for section, build in _BUILDERS.items():
            raws = devices_raw.get(section)
            held = self._devices.get(section)
            if held is None or raws is not held.raws or (raws is None and held.entries):
                held = self._section(section, raws, build, held, wheres, found, edits, seen)
            sections[section] = held
            devices.update(held.devices)
        self._devices = sections
        if not same_structures:
            self._home_structures = self._read_structures(structures_raw, found)
            self._structures_raw = structures_raw
            seen.more = True
        alarms = sections["smoke_co_alarms"]
        if not same_structures or alarms is not self._alarms_seen:
            stand_ins = _stand_ins(self._structure_alarms, alarms.devices, self._stand_ins)
            if stand_ins != self._stand_ins:
                seen.more = True
            self._stand_ins, self._alarms_seen = stand_ins, alarms
        for device_id, alarm in self._stand_ins.items():
            devices.setdefault(device_id, alarm)
        self.readings = None if seen.more else seen.readings
        # shared from home to home: `_read_structures` makes a new mapping, never edits one
        return Home(self.account, self._home_structures, devices)

    def _section(
        self,
        section: str,
        raws: Any,
        build: Builder,
        held: _Section | None,
        wheres: dict[str, str],
        found: Problems,
        edits: SectionEdits | None,
        seen: _Seen,
    ) -> _Section:
        """One section of devices, each device rebuilt only if its raw dict changed."""
        base, named = edits.get(section, (None, {})) if edits is not None else (None, {})
        known = held is not None and held.raws is not None and held.raws is base
        if known and isinstance(raws, Mapping) and named.keys() <= raws.keys():
            assert held is not None
            return _edited_section(held, raws, build, section, named, wheres, found, seen)
        held_entries = held.entries if held is not None else {}
        usable = raws
        if raws is not None and not isinstance(raws, Mapping):
            found.note("devices", section, "wrong type", raws)
            raws, usable = {k: v.raw for k, v in held_entries.items()}, None
            seen.more = True
        fresh = _Section(usable)
        readings = _READINGS.get(section, {})
        for device_id, raw in (raws or {}).items():
            entry = _fresh(build, readings, device_id, raw, wheres, found, held, named, seen)
            if entry is not None:
                fresh.entries[device_id] = entry
                fresh.devices[device_id] = entry.device
        if len(fresh.entries) != len(held_entries):  # a device came or went
            seen.more = True
        return fresh

    def _read_structures(
        self, structures_raw: Mapping[str, Any], found: Problems
    ) -> dict[str, Structure]:
        held_structures, structures = self._structures, {}
        held_alarms, alarms = self._structure_alarms, {}
        kept: dict[str, tuple[Any, Structure]] = {}
        for sid, raw in structures_raw.items():
            known = held_structures.get(sid)
            alarm = held_alarms.get(sid)
            if known is None or not _same(known[0], raw):
                fields = found.fields(raw, sid)
                if not isinstance(raw, Mapping):
                    if known is None:
                        continue
                else:
                    known = (raw, _structure(sid, fields))
                    read = _structure_alarm(known[1], fields)
                    alarm = alarm if read == alarm else read  # unchanged: the same object
            kept[sid] = known
            structures[sid] = known[1]
            if alarm is not None:
                alarms[sid] = alarm
        self._structures = kept
        self._structure_alarms = alarms
        return structures


class _Built:
    """A device as last normalized: its raw object, the device, the keys its build read
    (None: it depends on the whole object) and the problems noted for it."""

    __slots__ = ("device", "problems", "raw", "reads")

    def __init__(
        self, raw: Any, device: Device, reads: frozenset[str] | None, problems: tuple[Problem, ...]
    ) -> None:
        self.raw = raw
        self.device = device
        self.reads = reads
        self.problems = problems


class _Seen:
    """What one call changed: the readings read again, and whether it did `more`."""

    __slots__ = ("more", "readings")

    def __init__(self) -> None:
        self.readings: list[Change] = []
        self.more = False


class _Section:
    """One section's devices as last read: its raw mapping (None if unusable), each
    device as built, and the devices by id."""

    def __init__(self, raws: Any) -> None:
        self.raws = raws
        self.entries: dict[str, _Built] = {}
        self.devices: dict[str, Device] = {}


def _rebuilt(
    build: Builder,
    readings: Mapping[str, Reading],
    device_id: str,
    raw: Any,
    wheres: dict[str, str],
    found: Problems,
    held: _Built | None,
    changed: set[str] | None = None,
    seen: _Seen | None = None,
) -> _Built | None:
    """The device after its raw object changed: the held one if the build read none of the
    changed keys, a copy with the changed readings read again if those are all the changed
    keys it read, or a new build. `changed`:
    the keys that changed since `held`, if known."""
    if held is not None and held.reads is not None and isinstance(raw, Mapping):
        if changed is None:
            changed = _changed_keys(held.raw, raw)
        read = held.reads.intersection(changed)  # a key the build never read changes nothing
        if not read:
            found.repeat(device_id, held.problems)
            return _Built(raw, held.device, held.reads, held.problems)
        if read <= readings.keys():
            return _reread(readings, read, device_id, raw, found, held, seen)
    if seen is not None:
        seen.more = True
    return _device(build, device_id, raw, wheres, found, held)


def _edited_section(
    held: _Section,
    raws: Mapping[str, Any],
    build: Builder,
    section: str,
    named: DeviceEdits,
    wheres: dict[str, str],
    found: Problems,
    seen: _Seen,
) -> _Section:
    """`held` after a put whose parser names every device that changed (`named`): the
    others are the very objects held, so they are not looked at. A device skipped as
    unreadable stays skipped, as a pass over the section would find it again."""
    fresh = _Section(raws)
    fresh.entries, fresh.devices = dict(held.entries), dict(held.devices)
    readings = _READINGS.get(section, {})
    for device_id in named:
        raw = raws[device_id]
        entry = _fresh(build, readings, device_id, raw, wheres, found, held, named, seen)
        if entry is None:
            if fresh.entries.pop(device_id, None) is not None:
                seen.more = True  # a device went
                del fresh.devices[device_id]
            continue
        if device_id not in fresh.entries:
            seen.more = True  # a device came
        fresh.entries[device_id] = entry
        fresh.devices[device_id] = entry.device
    return fresh


def _fresh(
    build: Builder,
    readings: Mapping[str, Reading],
    device_id: str,
    raw: Any,
    wheres: dict[str, str],
    found: Problems,
    held: _Section | None,
    named: DeviceEdits,
    seen: _Seen,
) -> _Built | None:
    """The device as `raw` now says: the held entry if its raw object is the very same,
    else rebuilt (see `_rebuilt`), with the parser's changed keys if they are for it."""
    entry = held.entries.get(device_id) if held is not None else None
    if entry is not None and entry.raw is raw:
        return entry
    edit = named.get(device_id)
    changed = edit[1] if edit is not None and entry is not None and edit[0] is entry.raw else None
    return _rebuilt(build, readings, device_id, raw, wheres, found, entry, changed, seen)


def _reread(
    readings: Mapping[str, Reading],
    changed: frozenset[str],
    device_id: str,
    raw: Mapping[str, Any],
    found: Problems,
    held: _Built,
    seen: _Seen | None = None,
) -> _Built:
    """`held` with the readings of the `changed` keys read again from `raw`."""
    mine = Problems()
    fields = mine.fields(raw, device_id)
    values = {}
    for key in changed:
        attribute, read = readings[key]
        values[attribute] = read(fields)
    device = _copy(held.device, values)
    if seen is not None:
        seen.readings.extend(Change(device_id, name, value) for name, value in values.items())
    problems = (*(p for p in held.problems if p.field not in changed), *mine.found)
    found.repeat(device_id, problems)
    return _Built(raw, device, held.reads, problems)


def _copy(device: Device, values: dict[str, Any]) -> Device:
    """`device` with `values` (attributes of its class), by its class's generated replacer."""
    cls = type(device)
    replace = _REPLACERS.get(cls)
    if replace is None:
        replace = _REPLACERS[cls] = replacer(cls)
    return replace(device, values)


_REPLACERS: dict[type[Device], Callable[[Device, dict[str, Any]], Device]] = {}


def _device(
    build: Builder,
    device_id: str,
    raw: Any,
    wheres: dict[str, str],
    found: Problems,
    held: _Built | None,
) -> _Built | None:
    """The device built from `raw`; one whose object or structure is unreadable keeps its
    `held` form (a bad field must not look like a removed device), or is left out."""
    mine = Problems()
    reading = _Reads(raw) if isinstance(raw, Mapping) else raw
    device = _build(build, device_id, reading, wheres, mine, held)
    found.extend(mine)
    if device is None:
        return None
    reads = reading.keys_read() if isinstance(reading, _Reads) else None
    return _Built(raw, device, reads, tuple(mine.found))


def _build(
    build: Builder,
    device_id: str,
    raw: Any,
    wheres: dict[str, str],
    problems: Problems,
    held: _Built | None,
) -> Device | None:
    fields = problems.fields(raw, device_id)
    if not isinstance(raw, Mapping):
        return held.device if held is not None else None
    structure_id = fields.text("structure_id")
    if structure_id is None:
        if "structure_id" not in raw:
            fields.bad("structure_id", "missing", None)
        if held is None:
            return None
        structure_id = held.device.structure_id
    return build(structure_id, fields, wheres)


class _Reads(Mapping[str, Any]):
    """A raw object that notes the keys read from it: what a build depends on. Going
    through all of it (iteration, its length) makes the build depend on everything."""

    __slots__ = ("_keys", "_raw", "_whole")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw
        self._keys: set[str] = set()
        self._whole = False

    def keys_read(self) -> frozenset[str] | None:
        if self._whole:
            return None
        # One set per way of reading (the builders read a fixed few keys, which ones
        # depending on a few values): not one per device of 10,000 accounts.
        keys = frozenset(self._keys)
        return _KEY_SETS.setdefault(keys, keys)

    def __getitem__(self, key: str) -> Any:
        self._keys.add(key)
        return self._raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        self._keys.add(key)
        return self._raw.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._keys.add(key)
        return key in self._raw

    def __iter__(self) -> Iterator[str]:
        self._whole = True
        return iter(self._raw)

    def __len__(self) -> int:
        self._whole = True
        return len(self._raw)


_KEY_SETS: dict[frozenset[str], frozenset[str]] = {}
_GONE = object()
_NESTED = frozenset((dict, list))


def _changed_keys(old: Any, new: Mapping[str, Any]) -> set[str]:
    """The keys whose values differ, strictly: a value of another type (`true` for `1`,
    which `==` calls equal), a nested object or list that is not the very same object,
    a key added or removed. Everything, if `old` was not an object."""
    if not isinstance(old, Mapping):
        return set(new) | {""}
    try:
        changed = {key for key, _ in old.items() ^ new.items()}  # compared in C
    except TypeError:  # an unhashable value: a nested object or list
        pass
    else:
        # `==` took `true` for `1`: the same keys in the same order must hold the same types
        if list(old) == list(new) and list(map(type, old.values())) == list(
            map(type, new.values())
        ):
            return changed
    changed = set(old.keys() ^ new.keys())
    for key, value in new.items():
        was = old.get(key, _GONE)
        if was is not value and (
            type(was) is not type(value) or type(value) in _NESTED or was != value
        ):
            changed.add(key)
    return changed


def _same(held: Any, raw: Any) -> bool:
    if isinstance(held, Mapping) and isinstance(raw, Mapping):
        return held is raw or not _changed_keys(held, raw)
    return held is raw or (type(held) is type(raw) and held == raw)


def previous_mode(document: Mapping[str, Any] | None, device_id: str) -> ThermostatMode | None:
    """The thermostat's `previous_hvac_mode` (the mode eco returns to), if known and usable."""
    if document is None:
        return None
    device: Any = document
    for key in ("devices", "thermostats", device_id):
        device = device.get(key) if isinstance(device, Mapping) else None
    raw = device.get("previous_hvac_mode") if isinstance(device, Mapping) else None
    if not isinstance(raw, str):
        return None
    try:
        mode = ThermostatMode(raw)
    except ValueError:
        return None
    return None if mode is ThermostatMode.ECO else mode


def display_scale(document: Mapping[str, Any] | None, device_id: str) -> str:
    """The thermostat's `temperature_scale` ("C" or "F"): the scale its setpoints are written in."""
    device = (document or {}).get("devices", {}).get("thermostats", {}).get(device_id, {})
    scale = device.get("temperature_scale") if isinstance(device, Mapping) else None
    return "F" if scale == "F" else "C"


def apply_put(document: Mapping[str, Any] | None, path: str, data: Any) -> Document:
    """The document after a stream `put`: `data` replaces the subtree at `path`.

    A `null` data removes the subtree. The input is not changed; the dicts along `path`
    are copied, everything else is shared (a put of the whole document is that document:
    documents are never changed in place).
    """
    keys = check_path(path)
    if not keys:
        if data is None:
            return {}
        root = _mapping(data, "put data at /")
        return root if type(root) is dict else dict(root)
    return _replace(document or {}, keys, data)


def put_edits(path: str, edits: Edits | None, replaced: Mapping[Path, Any]) -> SectionEdits | None:
    """The devices' changed keys a `DeltaParser` found in a put (its `edits`), by section
    and device id, for `Normalizer`, each section with its last raw mapping (from the
    parser's `replaced`): known for a put of the whole document only."""
    if edits is None or path != "/":
        return None
    found: dict[str, tuple[Any, dict[str, tuple[Any, set[str] | None]]]] = {}
    for p, edit in edits.items():
        if len(p) == 4 and p[:2] == _DEVICES:
            section = found.get(p[2])
            if section is None:
                section = found[p[2]] = (replaced.get(p[:3]), {})
            section[1][p[3]] = edit
    return found


_DEVICES = ("data", "devices")


def camera_events(
    previous: Mapping[str, Any] | None,
    current: Mapping[str, Any],
    account: str,
    *,
    at: datetime,
    catch_up: bool = False,
) -> list[DeviceEvent]:
    """The camera events in `current` that `previous` did not have yet.

    A camera seen for the first time (or the very first document) is a baseline: its
    `last_event` may be hours old, so it is not reported.
    """
    if previous is None or _cameras_raw(previous) is _cameras_raw(current):
        return []  # the very same cameras as before (or none): nothing new
    before = _cameras(previous)
    context = Context(catch_up=catch_up)
    found: list[DeviceEvent] = []
    for device_id, camera in _cameras(current).items():
        if device_id not in before:
            continue
        new, old = _last_event(camera), _last_event(before[device_id])
        started = parse_time(new.get("start_time")) if new is not None else None
        if new is None or started is None:
            continue
        for cls in _new_kinds(new, old):
            found.append(
                cls(
                    id=new_id(),
                    at=at,
                    account=account,
                    structure=_optional_str(camera, "structure_id"),
                    device=device_id,
                    context=context,
                    started_at=started,
                    vendor_id=f"{device_id}@{new['start_time']}",
                )
            )
    return found


def _new_kinds(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[type[DeviceEvent]]:
    """The kinds `new` reports that `old` had not reported for the same event yet."""
    same_event = old is not None and old.get("start_time") == new.get("start_time")
    seen = {flag for flag, _ in _EVENT_KINDS if same_event and old is not None and old.get(flag)}
    return [cls for flag, cls in _EVENT_KINDS if new.get(flag) is True and flag not in seen]


_EVENT_KINDS: tuple[tuple[str, type[DeviceEvent]], ...] = (
    ("has_motion", Motion),
    ("has_person", Person),
    ("has_sound", Sound),
)


# --- devices -----------------------------------------------------------------------------


# A thermostat's attributes that each come from one field, read by that field's reader
# alone and always: when only these fields change, the held thermostat is copied with them
# read again (`Normalizer`). No other part of the build may read these keys.
_THERMOSTAT_READINGS: dict[str, Reading] = {
    "ambient_temperature_c": ("ambient_c", lambda f: f.celsius("ambient_temperature_c")),
    "humidity": ("humidity", lambda f: f.percent("humidity")),
    "hvac_state": ("hvac", lambda f: f.enum("hvac_state", _HVAC_STATE, default="off")),
    "can_heat": ("can_heat", lambda f: f.flag("can_heat", default=True)),
    "can_cool": ("can_cool", lambda f: f.flag("can_cool", default=False)),
    "has_fan": ("has_fan", lambda f: f.flag("has_fan", default=False)),
    "is_using_emergency_heat": (
        "emergency_heat",
        lambda f: f.flag("is_using_emergency_heat", default=False),
    ),
}


def _thermostat(structure_id: str, f: Fields, wheres: dict[str, str]) -> Thermostat:
    readings = {attribute: read(f) for attribute, read in _THERMOSTAT_READINGS.values()}
    return Thermostat(**_thermostat_rest(structure_id, f, wheres), **readings)


def _thermostat_rest(structure_id: str, f: Fields, wheres: dict[str, str]) -> dict[str, Any]:
    """Every attribute of a thermostat but its `_THERMOSTAT_READINGS`."""
    mode = f.enum("hvac_mode", _MODES, default="off")
    eco_range = pair(f.celsius("eco_temperature_low_c"), f.celsius("eco_temperature_high_c"))
    heat, cool = active_setpoints(f, mode, SETPOINT_KEYS, eco_range)
    locked = f.flag("is_locked", default=False)
    fan_active = f.flag("fan_timer_active", default=False)
    return {
        **_common(structure_id, f, wheres),
        "mode": mode,
        "heat_setpoint_c": heat,
        "cool_setpoint_c": cool,
        "fan_timer_active": fan_active,
        "fan_timer_until": _fan_timer_until(f) if fan_active else None,
        "allowed_range_c": ALLOWED_RANGE_C,
        "locked": locked,
        "locked_range_c": None
        if locked is False
        else pair(f.celsius("locked_temp_min_c"), f.celsius("locked_temp_max_c")),
        "eco_range_c": eco_range,
    }


def _fan_timer_until(f: Fields) -> datetime | None:
    until = parse_time(f.raw("fan_timer_timeout"))
    if until is None or until.year <= 1970:
        return None
    return until


def _smoke_co_alarm(structure_id: str, f: Fields, wheres: dict[str, str]) -> SmokeCoAlarm:
    return SmokeCoAlarm(
        **_common(structure_id, f, wheres),
        # Folded: an alarm spelt in another case is still the alarm (fail open).
        smoke=f.enum("smoke_alarm_state", _ALARM, default="ok", fold=True),
        co=f.enum("co_alarm_state", _ALARM, default="ok", fold=True),
        battery=f.enum("battery_health", _BATTERY, default="ok"),
    )


def _camera(structure_id: str, f: Fields, wheres: dict[str, str]) -> Camera:
    cls = Doorbell if f.raw("is_doorbell") is True else Camera
    return cls(**_common(structure_id, f, wheres), streaming=f.flag("is_streaming", default=True))


_BUILDERS: dict[str, Builder] = {
    "thermostats": _thermostat,
    "smoke_co_alarms": _smoke_co_alarm,
    "cameras": _camera,
}
_READINGS: dict[str, Mapping[str, Reading]] = {"thermostats": _THERMOSTAT_READINGS}


def _common(structure_id: str, f: Fields, wheres: dict[str, str]) -> dict[str, Any]:
    room = f.text("where_name")
    if room is None:
        room = wheres.get(f.text("where_id") or "")
    return {
        "id": f.target,
        "name": f.text("name") or f.text("name_long") or f.target,
        "structure_id": structure_id,
        "room": room,
        "online": f.flag("is_online", default=True),
    }


# --- structures ----------------------------------------------------------------------------


def _structure(structure_id: str, f: Fields) -> Structure:
    return Structure(
        id=structure_id,
        name=f.text("name") or structure_id,
        presence=f.enum("away", _AWAY, default="home"),
        time_zone=f.text("time_zone"),
    )


def _structure_alarm(structure: Structure, f: Fields) -> SmokeCoAlarm | None:
    """The structure's own (aggregate) smoke/CO states as one alarm device of it, read as
    an alarm device's are; None when it reports neither."""
    if all(f.raw(key, _GONE) is _GONE for key in ("smoke_alarm_state", "co_alarm_state")):
        return None  # a null state is reported, and unreadable: it fails open
    return SmokeCoAlarm(
        id=_stand_in_id(structure.id),
        name=f"{structure.name} alarms",
        structure_id=structure.id,
        room=structure.name,  # where it sounds, as far as known: a push names a place
        smoke=f.enum("smoke_alarm_state", _ALARM, default="ok", fold=True),
        co=f.enum("co_alarm_state", _ALARM, default="ok", fold=True),
        battery=None,  # a structure has no battery: unknown, not "ok"
    )


def _stand_in_id(structure_id: str) -> str:
    return f"{structure_id}:alarms"


def _stand_ins(
    structure_alarms: Mapping[str, SmokeCoAlarm],
    alarm_devices: Mapping[str, Device],
    held: Mapping[str, Device],
) -> dict[str, Device]:
    """The structures' own alarms that count, by device id: whole where none of the
    structure's alarm devices is visible, else as `_beside` them (`held`: the last ones)."""
    if not structure_alarms:
        return {}
    visible: dict[str, list[SmokeCoAlarm]] = {}
    for device in alarm_devices.values():
        if isinstance(device, SmokeCoAlarm):
            visible.setdefault(device.structure_id, []).append(device)
    found: dict[str, Device] = {}
    for sid, alarm in structure_alarms.items():
        before = held.get(alarm.id)
        stand_in = _beside(alarm, visible[sid], before) if sid in visible else alarm
        if stand_in is not None:
            found[alarm.id] = before if before == stand_in else stand_in  # same: same object
    return found


# How much a state says, to compare the structure's with its alarm devices': an unreadable
# state (None) counts as an alarm (fail open), below an emergency.
_SAYS = {AlarmState.OK: 0, None: 1, AlarmState.WARNING: 1, AlarmState.EMERGENCY: 2}
_KINDS = ("smoke", "co")


def _beside(
    alarm: SmokeCoAlarm, visible: list[SmokeCoAlarm], before: Device | None
) -> SmokeCoAlarm | None:
    """The structure's alarm beside its visible alarm devices, kind by kind: its state where
    it says more than all of them (an alarm device the token does not see sounds), and
    where it did so before and still sounds (a visible one catching up is no "cleared"); ok
    elsewhere (a visible one reports it: no second push). Once all is ok again, it is kept
    once more to report the clearing, then left out. None: left out."""
    was = before if isinstance(before, SmokeCoAlarm) else None
    smoke, co = (_counted(alarm, visible, was, kind) for kind in _KINDS)
    if smoke is co is AlarmState.OK and (was is None or was.smoke is was.co is AlarmState.OK):
        return None
    return dataclasses.replace(alarm, smoke=smoke, co=co)


def _counted(
    alarm: SmokeCoAlarm, visible: list[SmokeCoAlarm], was: SmokeCoAlarm | None, kind: str
) -> AlarmState | None:
    state: AlarmState | None = getattr(alarm, kind)
    most = max(_SAYS[getattr(device, kind)] for device in visible)
    held = getattr(was, kind) if was is not None else AlarmState.OK
    sounding = held is not AlarmState.OK and state is not AlarmState.OK
    return state if _SAYS[state] > most or sounding else AlarmState.OK


def _wheres(structures: Mapping[str, Any]) -> dict[str, str]:
    """where_id → room name, from every structure's `wheres` (a fallback for where_name)."""
    names: dict[str, str] = {}
    for raw in structures.values():
        wheres = raw.get("wheres") if isinstance(raw, Mapping) else None
        if not isinstance(wheres, Mapping):
            continue
        for where_id, where in wheres.items():
            if isinstance(where, Mapping) and isinstance(where.get("name"), str):
                names[where_id] = where["name"]
    return names


# --- stream helpers ------------------------------------------------------------------------


def _replace(node: Mapping[str, Any], keys: list[str], data: Any) -> Document:
    copy = dict(node)
    head, rest = keys[0], keys[1:]
    if rest:
        child = copy.get(head)
        copy[head] = _replace(child if isinstance(child, Mapping) else {}, rest, data)
    elif data is None:
        copy.pop(head, None)
    else:
        copy[head] = data
    return copy


def _cameras_raw(document: Mapping[str, Any]) -> Any:
    devices = document.get("devices")
    return devices.get("cameras") if isinstance(devices, Mapping) else None


def _cameras(document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    cameras = _cameras_raw(document)
    if not isinstance(cameras, Mapping):
        return {}
    return {k: v for k, v in cameras.items() if isinstance(v, Mapping)}


def _last_event(camera: Mapping[str, Any]) -> Mapping[str, Any] | None:
    event = camera.get("last_event")
    return event if isinstance(event, Mapping) else None


# --- field readers -------------------------------------------------------------------------


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _section(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return {} if value is None else _mapping(value, key)


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None
