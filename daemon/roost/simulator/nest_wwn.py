"""The "Works with Nest" (WWN) front: developer-api.nest.com over a `SimHome`, on loopback.

It speaks the protocol in PROTOCOLS.md §1: Bearer auth, a 307 hop to a per-user "stream
host" (here a path prefix on the same server) that clients follow by hand, REST streaming
as Server-Sent Events (`put` with the whole document, `keep-alive`, `auth_revoked`), REST
reads of any data location, and PUT/PATCH writes of changed fields, answered with the WWN
JSON error body. Messages and rules tagged [M] there are the simulator's best guess.

Test and demo controls are methods of `NestWwnSimulator` and, for scenario scripts in
another process, JSON endpoints under `/_sim/` (no auth; the server listens on loopback).
"""

from __future__ import annotations

import copy
import json
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import anyio
import structlog

from roost.simulator import control, front, http
from roost.simulator.control import arg
from roost.simulator.faults import Faults
from roost.simulator.front import Front
from roost.simulator.home import (
    HEAT_RATE_C_PER_S,
    MODES,
    SimCamera,
    SimHome,
    SimSmokeCoAlarm,
    SimStructure,
    SimThermostat,
    setpoints,
)
from roost.simulator.oauth import CodeGrants

log = structlog.get_logger(__name__)

STREAM_HOST_PREFIX = "/stream-host"
# `roost auth nest`: the PIN page (home.nest.com/login/oauth2) and the token exchange
# (api.home.nest.com/oauth2/access_token), both on the simulator's one host.
OAUTH_CLIENT_ID = "sim-wwn-product"
OAUTH_CLIENT_SECRET = "sim-wwn-product-secret"
AUTHORIZE_PATH = "/login/oauth2"
ACCESS_TOKEN_PATH = "/oauth2/access_token"
ERROR_TYPE_BASE = "https://developers.nest.com/documentation/cloud/error-messages#"
EPOCH_ISO = "1970-01-01T00:00:00.000Z"
MIN_TARGET_C, MAX_TARGET_C = 9.0, 32.0
MIN_TARGET_F, MAX_TARGET_F = 50.0, 90.0
MIN_RANGE_GAP_C = 1.5  # heat-cool: low must stay this far below high [M]
FAN_TIMER_DURATIONS = frozenset({15, 30, 45, 60, 120, 240, 480, 720})

# target_temperature* field -> which setpoint it writes
TARGET_FIELDS = {
    f"target_temperature{part}_{unit}": setpoint
    for part, setpoint in (("", "target"), ("_low", "low"), ("_high", "high"))
    for unit in ("c", "f")
}
# From API v5 on, the display scale and the label are writable too (python-nest writes both).
THERMOSTAT_WRITABLE = frozenset(
    {"hvac_mode", "fan_timer_active", "fan_timer_duration", "temperature_scale", "label"}
) | set(TARGET_FIELDS)
MODE_SETPOINTS = {"heat": ("target",), "cool": ("target",), "heat-cool": ("low", "high")}
STRUCTURE_WRITABLE = frozenset({"away", "eta"})
ETA_FIELDS = ("trip_id", "estimated_arrival_window_begin", "estimated_arrival_window_end")
CAMERA_WRITABLE = frozenset({"is_streaming"})
ALARM_SEVERITY = {"ok": 0, "warning": 1, "emergency": 2}


# -- errors ----------------------------------------------------------------------------------


class WwnError(Exception):
    """A refusal, answered with the WWN error body."""

    def __init__(
        self,
        status: int,
        message: str,
        slug: str,
        details: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.slug = slug
        self.details = details
        self.headers = headers or {}

    def response(self) -> http.Response:
        body: dict[str, object] = {
            "error": self.message,
            "type": ERROR_TYPE_BASE + self.slug,
            "message": self.message,
            "instance": str(uuid.uuid4()),
        }
        if self.details:
            body["details"] = dict(self.details)
        return http.Response(self.status, body, self.headers)


def _bad(message: str, slug: str, field: str | None = None) -> WwnError:
    return WwnError(400, message, slug, {"field_name": field} if field else None)


def _not_found(path: str) -> WwnError:
    return WwnError(404, "Not found", "not-found", {"path": path})


def _invalid_content() -> WwnError:
    return WwnError(400, "Invalid content sent", "invalid-content")


def _envelope(status: int, message: str) -> object:
    if status == 429:
        return WwnError(429, "Blocked", "blocked").response().body
    phrase = HTTPStatus(status).phrase
    return WwnError(status, phrase, phrase.lower().replace(" ", "-")).response().body


async def _put_first(data: object, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A put whose data is `data` (a malformed one, for a test), then the stream as usual."""
    text = data.decode() if isinstance(data, bytes) else str(data)
    yield f"event: put\ndata: {text}\n\n".encode()
    async for chunk in events:
        yield chunk


# -- the document ----------------------------------------------------------------------------


def document(home: SimHome, *, token: str, base_url: str) -> dict[str, Any]:
    """The whole WWN data document for the home, with the real field names."""
    return {
        "devices": {
            "thermostats": {t.id: _thermostat(t) for t in home.thermostats.values()},
            "smoke_co_alarms": {a.id: _alarm(a) for a in home.alarms.values()},
            "cameras": {c.id: _camera(c, base_url) for c in home.cameras.values()},
        },
        "structures": {s.id: _structure(s, home) for s in home.structures.values()},
        "metadata": {"access_token": token, "client_version": 1, "user_id": "z.1.1.roost-sim"},
    }


def _thermostat(t: SimThermostat) -> dict[str, Any]:
    doc: dict[str, Any] = {
        **_placement(t.id, t.name, "Thermostat", t.structure_id, t.room),
        "software_version": "5.9.3-5",
        "label": t.label,
        "temperature_scale": t.scale,
        "humidity": t.humidity,
        "is_online": t.online,
        "hvac_mode": t.mode,
        "previous_hvac_mode": t.previous_mode or "",
        "hvac_state": t.hvac_state,
        "can_heat": t.can_heat,
        "can_cool": t.can_cool,
        "has_fan": t.has_fan,
        "has_leaf": t.mode == "eco" or (t.mode == "heat" and t.target_c <= 19.5),  # [M]
        "is_using_emergency_heat": t.emergency_heat,
        "fan_timer_active": t.fan_timer_active,
        "fan_timer_timeout": _iso(t.fan_timer_timeout),
        "fan_timer_duration": t.fan_timer_duration,
        "is_locked": t.locked,
        "sunlight_correction_enabled": True,
        "sunlight_correction_active": False,
        "time_to_target": _time_to_target(t),
        "time_to_target_training": "ready",
    }
    temperatures = {
        "target_temperature": t.target_c,
        "target_temperature_low": t.target_low_c,
        "target_temperature_high": t.target_high_c,
        "ambient_temperature": round(t.ambient_c * 2) / 2,  # Nest reports half degrees
        "eco_temperature_low": t.eco_low_c,
        "eco_temperature_high": t.eco_high_c,
        "away_temperature_low": t.eco_low_c,  # the pre-eco name of the same setting
        "away_temperature_high": t.eco_high_c,
        "locked_temp_min": t.locked_min_c,
        "locked_temp_max": t.locked_max_c,
    }
    for name, celsius in temperatures.items():
        doc[f"{name}_c"] = _number(celsius)
        doc[f"{name}_f"] = round(celsius * 9 / 5 + 32)
    return doc


def _alarm(a: SimSmokeCoAlarm) -> dict[str, Any]:
    if not a.online:
        color = "gray"
    elif "emergency" in (a.smoke, a.co):
        color = "red"
    elif "warning" in (a.smoke, a.co) or a.battery != "ok":
        color = "yellow"
    else:
        color = "green"
    return {
        **_placement(a.id, a.name, "Nest Protect", a.structure_id, a.room),
        "software_version": "3.1.4",
        "is_online": a.online,
        "battery_health": a.battery,
        "co_alarm_state": a.co,
        "smoke_alarm_state": a.smoke,
        "ui_color_state": color,
        "is_manual_test_active": False,
        "last_manual_test_time": EPOCH_ISO,
    }


def _camera(c: SimCamera, base_url: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        **_placement(c.id, c.name, "Camera", c.structure_id, c.room),
        "software_version": "205-600052",
        "is_online": c.online,
        "is_streaming": c.streaming,
        "is_audio_input_enabled": True,
        "last_is_online_change": EPOCH_ISO,
        "is_video_history_enabled": True,
        "is_public_share_enabled": False,
        "activity_zones": [],
        "snapshot_url": f"{base_url}/_sim/cameras/{c.id}/snapshot",
        "web_url": f"https://home.nest.com/cameras/{c.id}",
        "app_url": f"nestmobile://cameras/{c.id}",
    }
    if c.last_event is not None:
        event = c.last_event
        doc["last_event"] = {
            "has_sound": event.sound,
            "has_motion": event.motion,
            "has_person": event.person,
            "start_time": _iso(event.start),
            "end_time": _iso(event.end),
            "urls_expire_time": _iso(event.start + timedelta(hours=3)),
            "web_url": f"https://home.nest.com/cameras/{c.id}/events",
            "app_url": f"nestmobile://cameras/{c.id}/events",
            "image_url": f"{base_url}/_sim/cameras/{c.id}/event.jpg",
            "animated_image_url": f"{base_url}/_sim/cameras/{c.id}/event.gif",
            "activity_zone_ids": [],
        }
    return doc


def _structure(s: SimStructure, home: SimHome) -> dict[str, Any]:
    devices = home.devices_in(s.id)
    alarms = [d for d in devices if isinstance(d, SimSmokeCoAlarm)]
    return {
        "structure_id": s.id,
        "name": s.name,
        "country_code": "GB",
        "time_zone": s.time_zone,
        "away": "away" if s.away else "home",
        "thermostats": [d.id for d in devices if isinstance(d, SimThermostat)],
        "smoke_co_alarms": [a.id for a in alarms],
        "cameras": [d.id for d in devices if isinstance(d, SimCamera)],
        "co_alarm_state": _worst(a.co for a in alarms),
        "smoke_alarm_state": _worst(a.smoke for a in alarms),
        "wwn_security_state": "ok",
        **({"eta_begin": s.arrival_begin} if s.arrival_begin else {}),
        "wheres": {
            _where_id(d.room): {"where_id": _where_id(d.room), "name": d.room} for d in devices
        },
    }


def _placement(
    device_id: str, name: str, kind: str, structure_id: str, room: str
) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "name": name,
        "name_long": f"{name} {kind}",
        "locale": "en-GB",
        "structure_id": structure_id,
        "where_id": _where_id(room),
        "where_name": room,
    }


def _where_id(room: str) -> str:
    return "where-" + "-".join(room.lower().split())


def _worst(states: Iterable[str]) -> str:
    return max(states, key=ALARM_SEVERITY.__getitem__, default="ok")


def _time_to_target(t: SimThermostat) -> str:
    heat_below, cool_above = setpoints(t)
    goal = heat_below if t.hvac_state == "heating" else cool_above
    if t.hvac_state == "off" or goal is None:
        return "~0"
    minutes = math.ceil(abs(goal - t.ambient_c) / (HEAT_RATE_C_PER_S * 60))
    return f"~{minutes}" if minutes <= 120 else ">120"


def _number(value: float) -> float | int:
    return int(value) if value == int(value) else value


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return EPOCH_ISO
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _subtree(doc: Any, parts: list[str]) -> Any:
    """The value at a data location, or KeyError."""
    node = doc
    for part in parts:
        if isinstance(node, dict):
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(part)
    return node


# -- writes ----------------------------------------------------------------------------------


def _write(home: SimHome, parts: list[str], body: Any) -> None:
    """Validate one write against the WWN rules and apply it to the home, or raise WwnError."""
    if not isinstance(body, dict) or not body:
        raise _invalid_content()
    location = "/" + "/".join(parts)
    match parts:
        case ["devices", "thermostats", device_id] if device_id in home.thermostats:
            _write_thermostat(home, home.thermostats[device_id], body)
        case ["devices", "cameras", device_id] if device_id in home.cameras:
            _write_camera(home, home.cameras[device_id], body)
        case ["devices", "smoke_co_alarms", device_id] if device_id in home.alarms:
            _check_fields(body, frozenset())
        case ["structures", structure_id] if structure_id in home.structures:
            _write_structure(home, home.structures[structure_id], body)
        case _:
            raise _not_found(location)


def _check_fields(body: dict[str, Any], writable: frozenset[str]) -> None:
    refused = sorted(set(body) - writable)
    if refused:
        names = ", ".join(refused)
        raise _bad(f"No write permission(s) for field(s): {names}", "no-write-permission", names)


def _write_structure(home: SimHome, structure: SimStructure, body: dict[str, Any]) -> None:
    _check_fields(body, STRUCTURE_WRITABLE)
    if "eta" in body:
        _write_eta(home, structure, body["eta"])
    if "away" not in body:
        return
    away = body["away"]
    if away not in ("home", "away"):
        raise _bad(f"Invalid away state '{away}'", "invalid-away-state", "away")
    home.set_away(structure.id, away == "away")


def _write_eta(home: SimHome, structure: SimStructure, eta: object) -> None:
    """An expected arrival (python-nest `set_eta`); `begin` 0 cancels the trip."""
    if not isinstance(eta, dict) or set(eta) != set(ETA_FIELDS):
        raise _invalid_content()
    if not any(isinstance(d, SimThermostat) for d in home.devices_in(structure.id)):
        raise _bad("ETA needs a thermostat in the structure", "eta-no-thermostat", "eta")
    begin, end = eta["estimated_arrival_window_begin"], eta["estimated_arrival_window_end"]
    if begin == 0:
        home.set_arrival(structure.id, None)
        return
    if not isinstance(eta["trip_id"], str) or not _is_iso(begin) or not _is_iso(end):
        raise _bad("Invalid ETA", "invalid-eta", "eta")
    home.set_arrival(structure.id, begin)


def _is_iso(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _write_camera(home: SimHome, camera: SimCamera, body: dict[str, Any]) -> None:
    _check_fields(body, CAMERA_WRITABLE)
    if not camera.online:
        raise _bad("Camera is not online", "camera-offline")
    if not isinstance(body["is_streaming"], bool):
        raise _invalid_content()
    home.set_streaming(camera.id, body["is_streaming"])


def _write_thermostat(home: SimHome, t: SimThermostat, body: dict[str, Any]) -> None:
    _check_fields(body, THERMOSTAT_WRITABLE)
    if not t.online:
        raise _bad("Thermostat is not online", "thermostat-offline")
    mode = _checked_mode(t, body.get("hvac_mode", t.mode))
    targets = _checked_targets(t, mode, body)
    fan_active, fan_duration = _checked_fan(home, t, body)
    scale, label = body.get("temperature_scale"), body.get("label")
    if scale not in (None, "C", "F"):
        raise _bad(f"Invalid temperature_scale '{scale}'", "invalid-scale", "temperature_scale")
    if label is not None and not isinstance(label, str):
        raise _bad("Invalid label", "format-error", "label")
    if scale is not None or label is not None:
        home.set_display(t.id, scale=scale, label=label)
    if "hvac_mode" in body:
        home.set_mode(t.id, mode)
    if "target" in targets:
        home.set_target(t.id, targets["target"])
    if "low" in targets or "high" in targets:
        home.set_range(t.id, targets.get("low"), targets.get("high"))
    if fan_active is not None or fan_duration is not None:
        home.set_fan_timer(t.id, fan_active, fan_duration)


def _checked_mode(t: SimThermostat, mode: object) -> str:
    if not isinstance(mode, str) or mode not in MODES:
        raise _bad(f"Invalid hvac_mode '{mode}'", "invalid-hvac-mode", "hvac_mode")
    needs_heat = mode in ("heat", "heat-cool")
    needs_cool = mode in ("cool", "heat-cool")
    if (needs_heat and not t.can_heat) or (needs_cool and not t.can_cool):
        raise _bad(
            f"HVAC mode '{mode}' is not supported by this thermostat",
            "hvac-mode-unsupported",
            "hvac_mode",
        )
    return mode


def _checked_targets(t: SimThermostat, mode: str, body: dict[str, Any]) -> dict[str, float]:
    """The setpoints this write changes (target / low / high, in °C), checked."""
    written = {name: value for name, value in body.items() if name in TARGET_FIELDS}
    if written and mode == "eco":
        raise _bad("Cannot change target temperature while in eco mode", "eco-mode")
    targets: dict[str, float] = {}
    for name, value in written.items():
        setpoint = TARGET_FIELDS[name]
        if setpoint not in MODE_SETPOINTS.get(mode, ()):
            raise _bad(f"Cannot change {name} while in {mode} mode", "wrong-hvac-mode", name)
        celsius = _celsius(name, value)
        if t.locked and not t.locked_min_c <= celsius <= t.locked_max_c:
            raise _bad(f"Temperature '{value}' is outside the locked range", "locked", name)
        targets[setpoint] = celsius
    low = targets.get("low", t.target_low_c)
    high = targets.get("high", t.target_high_c)
    if ("low" in targets or "high" in targets) and high - low < MIN_RANGE_GAP_C:
        raise _bad(
            f"Target temperature low must be at least {MIN_RANGE_GAP_C} °C below high",
            "range-too-narrow",
        )
    return targets


def _celsius(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"Temperature '{value}' is in wrong format", "format-error", name)
    fahrenheit = name.endswith("_f")
    low, high = (MIN_TARGET_F, MAX_TARGET_F) if fahrenheit else (MIN_TARGET_C, MAX_TARGET_C)
    if not low <= value <= high:
        raise _bad(f"Temperature '{value}' is out of range", "out-of-range", name)
    if fahrenheit:
        return round((value - 32) * 5 / 9 * 2) / 2
    return float(value)


def _checked_fan(
    home: SimHome, t: SimThermostat, body: dict[str, Any]
) -> tuple[bool | None, int | None]:
    active = body.get("fan_timer_active")
    duration = body.get("fan_timer_duration")
    if active is None and duration is None:
        return None, None
    if not t.has_fan:
        raise _bad("Thermostat does not have a fan", "no-fan")
    if active is not None and not isinstance(active, bool):
        raise _bad(f"Fan timer active '{active}' is in wrong format", "format-error")
    if duration is not None and (isinstance(duration, bool) or duration not in FAN_TIMER_DURATIONS):
        raise _bad(f"Fan timer duration '{duration}' is not allowed", "fan-timer-duration")
    if active and _safety_shutoff(home, t.structure_id):
        raise _bad("Cannot activate fan during smoke/co safety shutoff", "safety-shutoff-on")
    return active, duration


def _safety_shutoff(home: SimHome, structure_id: str) -> bool:
    return any(
        state != "ok"
        for alarm in home.alarms.values()
        if alarm.structure_id == structure_id
        for state in (alarm.smoke, alarm.co)
    )


# -- the simulator ---------------------------------------------------------------------------


def _epoch(header: str | None) -> int | None:
    return int(header) if header is not None and header.isdigit() else None


@dataclass(frozen=True)
class WriteRequest:
    """A write the simulator received, as answered (including refusals and redirects)."""

    method: str
    path: str
    body: bytes
    status: int
    command_id: str | None = None  # roost's X-Roost-Command-Id header, when sent
    applied: bool = False  # the write changed the home (also when its answer then failed)
    at: float = 0.0  # when it arrived (time.monotonic)
    worker: str | None = None  # a fleet worker's X-Roost-Worker header, when sent
    epoch: int | None = None  # and its X-Roost-Epoch (its ownership of the account)


class NestWwnSimulator(Front):
    """The WWN service over one `SimHome`. Created and started by `serve`."""

    def __init__(self, home: SimHome, *, token: str, keepalive_s: float, redirect: bool):
        self.home = home
        self.token = token
        self.keepalive_s = keepalive_s
        self.redirect = redirect
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[WriteRequest] = []
        self._revoked = False
        self._silent = False
        # "read": a stream opening, "write": a PUT (both after auth and redirect)
        self.faults = Faults(["read", "write"], after_apply=["write"])
        self._stream_faults: deque[str] = deque()
        self._waits: set[anyio.CancelScope] = set()
        self._raw: dict[str, str] = {}  # document path → JSON text served there
        # Called with (home, path, body) for every write that arrives, before it is
        # applied: a test judges it against the house as it is (tests/faults/invariants).
        self.write_observers: list[Callable[[SimHome, str, dict[str, Any]], None]] = []
        self.code_grants = CodeGrants(OAUTH_CLIENT_ID)  # no PKCE on WWN
        self._odd: dict[tuple[str, ...], Any] = {}
        self.protects_visible = True  # False: a token without the Protect (smoke/CO) permission
        self.hidden_protects: set[str] = set()  # left out of `devices` alone (see hide_protect)

    @property
    def stream_host_url(self) -> str:
        """Where the 307 sends clients, like the per-user firebase host."""
        return self.server.url + STREAM_HOST_PREFIX

    def document(self) -> dict[str, Any]:
        doc = document(self.home, token=self.token, base_url=self.url)
        if not self.protects_visible:  # the structures still name them, with their states
            del doc["devices"]["smoke_co_alarms"]
        for device_id in self.hidden_protects:
            doc["devices"].get("smoke_co_alarms", {}).pop(device_id, None)
        for parts, value in self._odd.items():
            node = doc
            for key in parts[:-1]:
                node = node.setdefault(key, {})
            node[parts[-1]] = value
        return doc

    def hide_protects(self, hidden: bool = True) -> None:
        """Leave the smoke/CO alarms out of `devices` from the next put on (`hidden`), as for
        a token granted the structures but not the Protect devices."""
        self.protects_visible = not hidden
        self._wake_streams()

    def hide_protect(self, device_id: str) -> None:
        """Leave this one smoke/CO alarm out of `devices` from the next put on (its
        structure still names it and counts its states): a token that sees only some."""
        self.hidden_protects.add(device_id)
        self._wake_streams()

    def send_odd_value(self, path: str, value: Any) -> None:
        """From the next put on, the document holds `value` at `path` (e.g.
        "devices/thermostats/<id>/hvac_state"), whatever the home says: a value a real
        cloud may send and roost has never seen (an unknown enum, a wrong type, NaN…)."""
        self._odd[tuple(k for k in path.split("/") if k)] = value

    # -- faults and controls -------------------------------------------------------------

    def revoke_token(self) -> None:
        """Send `auth_revoked` on every open stream and close it; later requests get 401."""
        self._revoked = True
        self._wake_streams()

    def set_token(self, token: str) -> None:
        """Accept `token` from now on, instead of the current one (revoked or not)."""
        self.token = token
        self._revoked = False
        self._wake_streams()

    def drop_streams(self) -> None:
        """Close every open stream abruptly, mid-body, as a network fault would."""
        self.server.close_streams()

    def serve_raw(self, path: str, raw_json: str | None) -> None:
        """On the streams, serve `raw_json` (any JSON text: `1e309`, `"heating-stage2"`)
        at a document path (`devices/thermostats/<id>/hvac_state`) instead of the home's
        own value, as a cloud sending an odd value would; None ends it. The home itself
        (and so the judge of writes) keeps its real value."""
        if raw_json is None:
            self._raw.pop(path.strip("/"), None)
        else:
            self._raw[path.strip("/")] = raw_json
        self._wake_streams()

    def _put(self, path: str, data: Any) -> bytes:
        """A put event, with the raw values of `serve_raw` placed into `data`."""
        marks: dict[str, str] = {}
        if self._raw and isinstance(data, dict):
            data = copy.deepcopy(data)
            base = [p for p in path.strip("/").split("/") if p]
            for n, (where, raw) in enumerate(self._raw.items()):
                parts = where.split("/")
                if parts[: len(base)] != base or len(parts) == len(base):
                    continue
                try:
                    parent = _subtree(data, parts[len(base) : -1])
                except KeyError:
                    continue
                if isinstance(parent, dict):
                    marks[json.dumps(f"@raw{n}@")] = raw
                    parent[parts[-1]] = f"@raw{n}@"
        text = json.dumps({"path": path, "data": data})
        for mark, raw in marks.items():
            text = text.replace(mark, raw)
        return _sse("put", text)

    def silence_keepalives(self, silent: bool = True) -> None:
        self._silent = silent

    def corrupt_stream(self, fault: str) -> None:
        """Damage the next put on the open streams, once (see STREAM_FAULTS)."""
        if fault not in STREAM_FAULTS:
            raise ValueError(f"unknown stream fault {fault!r}; known: {', '.join(STREAM_FAULTS)}")
        self._stream_faults.append(fault)
        self._wake_streams()

    def _wake_streams(self) -> None:
        for scope in self._waits:
            scope.cancel()

    # -- requests ------------------------------------------------------------------------

    async def handle(self, request: http.Request) -> http.Answer:
        if request.path.startswith("/_sim/"):
            return control.handle(self, request, _READS, _CONTROLS, self.home.version)
        if request.path == AUTHORIZE_PATH and request.method == "GET":
            return self.code_grants.authorize(request)
        if request.path == ACCESS_TOKEN_PATH and request.method == "POST":
            return self._access_token(request)
        applied_before = len(self.writes)
        try:
            response = self._route(request)
        except WwnError as error:
            response = error.response()
        if request.method in ("PUT", "PATCH"):
            self.requests.append(
                WriteRequest(
                    request.method,
                    request.path,
                    request.body,
                    response.status,
                    command_id=request.headers.get("x-roost-command-id"),
                    applied=len(self.writes) > applied_before,
                    at=time.monotonic(),
                    worker=request.headers.get("x-roost-worker"),
                    epoch=_epoch(request.headers.get("x-roost-epoch")),
                )
            )
        return response

    def _access_token(self, request: http.Request) -> http.Response:
        """The PIN (code) exchange: WWN tokens are long-lived, with no refresh token."""
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        if (form.get("client_id"), form.get("client_secret")) != (
            OAUTH_CLIENT_ID,
            OAUTH_CLIENT_SECRET,
        ):
            return http.Response(400, {"error": "invalid_client"})
        if form.get("grant_type") != "authorization_code" or self.code_grants.redeem(form):
            return http.Response(400, {"error": "oauth2_error", "error_description": "bad code"})
        return http.Response(200, {"access_token": self.token, "expires_in": 315569260})

    def _route(self, request: http.Request) -> http.Answer:
        if not self._authorized(request):
            raise WwnError(401, "Unauthorized", "auth-error")
        path = request.path
        if path == STREAM_HOST_PREFIX or path.startswith(STREAM_HOST_PREFIX + "/"):
            path = path.removeprefix(STREAM_HOST_PREFIX) or "/"
        elif self.redirect:
            location = self.stream_host_url + request.target
            return http.Response(307, {"location": location}, {"Location": location})
        parts = [part for part in path.split("/") if part]
        if request.method == "GET" and "text/event-stream" in request.headers.get("accept", ""):
            return self._open_stream(parts)
        if request.method == "GET":
            return self._read(parts)
        if request.method in ("PUT", "PATCH"):
            return self._apply_write(parts, request)
        raise WwnError(405, "Method not allowed", "method-not-allowed")

    def _authorized(self, request: http.Request) -> bool:
        if self._revoked:
            return False
        bearer = request.headers.get("authorization", "")
        return bearer == f"Bearer {self.token}" or request.query.get("auth") == self.token

    def _read(self, parts: list[str]) -> http.Response:
        try:
            return http.Response(200, _subtree(self.document(), parts))
        except KeyError:
            raise _not_found("/" + "/".join(parts)) from None

    def _apply_write(self, parts: list[str], request: http.Request) -> http.Answer:
        fault = self.faults.take("write")
        if fault is not None and not fault.after_apply:
            return fault.answer(_envelope)
        try:
            body = request.json()
        except ValueError:
            raise _invalid_content() from None
        path = "/" + "/".join(parts)
        for observe in self.write_observers:
            observe(self.home, path, body)
        _write(self.home, parts, body)
        self.writes.append((path, body))
        log.info("nest_wwn simulator applied a write", path=path, fields=sorted(body))
        if fault is not None:
            return fault.answer(_envelope)
        return http.Response(200, body)

    # -- streaming -----------------------------------------------------------------------

    def _open_stream(self, parts: list[str]) -> http.Answer:
        headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        events = self._events(parts, self.token)
        fault = self.faults.take("read")
        if fault is not None and fault.status == 200 and fault.body is not None:
            return http.StreamingResponse(200, _put_first(fault.body, events), headers)
        if fault is not None:
            return fault.answer(_envelope)
        return http.StreamingResponse(200, events, headers)

    async def _events(self, parts: list[str], token: str) -> AsyncIterator[bytes]:
        """The SSE body: a put now and on every change, keep-alives when idle."""
        path = "/" + "/".join(parts)
        sent: object = None
        first = True
        quiet_since = anyio.current_time()
        while True:
            if self._revoked or self.token != token:
                yield _sse("auth_revoked", "null")
                return
            data = self._stream_data(parts)
            if self._stream_faults:
                damaged = _damaged(self._stream_faults.popleft(), path, data)
                async for piece in damaged:
                    yield piece
                if damaged.ends_stream:
                    return
                first = True  # the real put follows the damage
            raw = dict(self._raw)
            if first or (data, raw) != sent:
                first, sent = False, (data, raw)
                yield self._put(path, data)
                quiet_since = anyio.current_time()
            # Like the real cloud, keep-alives follow the stream's own silence: a change of the
            # home that leaves this stream's data as it was must not postpone them.
            await self._wait(self.home.version, quiet_since + self.keepalive_s)
            if anyio.current_time() >= quiet_since + self.keepalive_s:
                if not self._silent:
                    yield _sse("keep-alive", "null")
                quiet_since = anyio.current_time()

    def _stream_data(self, parts: list[str]) -> Any:
        try:
            return _subtree(self.document(), parts)
        except KeyError:
            return None

    async def _wait(self, version: int, until: float) -> bool:
        """Wait for a change of the home or a wake-up; False if `until` came first."""
        with anyio.move_on_after(until - anyio.current_time()) as timeout:
            with anyio.CancelScope() as wake:
                self._waits.add(wake)
                try:
                    await self.home.wait_changed(version)
                finally:
                    self._waits.discard(wake)
        return not timeout.cancelled_caught


STREAM_FAULTS = ("garbage", "invalid_json", "truncated", "slow_drip", "huge")


class _Damage:
    """What a stream fault puts on the wire instead of (or before) the next put."""

    def __init__(self, pieces: list[bytes], delay_s: float = 0.0, ends_stream: bool = False):
        self._pieces, self._delay_s, self.ends_stream = pieces, delay_s, ends_stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece
            if self._delay_s:
                await anyio.sleep(self._delay_s)


def _damaged(fault: str, path: str, data: Any) -> _Damage:
    put = _sse("put", json.dumps({"path": path, "data": data}))
    match fault:
        case "garbage":
            return _Damage([b"\x00\xff this is not SSE\n", b"data\n\n", b"event: put\n\n"])
        case "invalid_json":
            return _Damage([_sse("put", '{"path": "/", "data": {"devices": ')])
        case "truncated":
            return _Damage([put[: len(put) // 2]], ends_stream=True)
        case "slow_drip":
            return _Damage([put[i : i + 64] for i in range(0, len(put), 64)], delay_s=0.01)
        case _:  # huge: a 20 MB put
            blob = json.dumps({"path": path, "data": {"padding": "x" * 20_000_000}})
            return _Damage([_sse("put", blob)])


def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


@asynccontextmanager
async def serve(
    home: SimHome,
    *,
    token: str = "c.sim-token",
    keepalive_s: float = 30.0,
    redirect: bool = True,
    physics_interval_s: float | None = None,
    port: int = 0,
) -> AsyncIterator[NestWwnSimulator]:
    """Serve the WWN API for `home` on 127.0.0.1:port (0 picks a free port)."""
    simulator = NestWwnSimulator(home, token=token, keepalive_s=keepalive_s, redirect=redirect)
    async with front.serve(simulator, physics_interval_s=physics_interval_s, port=port):
        yield simulator


# -- the /_sim/ control surface ----------------------------------------------------------------


_READS: control.Reads[NestWwnSimulator] = {
    **front.HOME_READS,
    "writes": lambda s: [{"path": path, "body": body} for path, body in s.writes],
    "requests": lambda s: [
        {"method": r.method, "path": r.path, "status": r.status} for r in s.requests
    ],
    "document": lambda s: s.document(),
}

_CONTROLS: dict[str, front.Control] = {
    **front.HOME_CONTROLS,
    "drop_streams": lambda s, a: s.drop_streams(),
    "revoke": lambda s, a: s.revoke_token(),
    "token": lambda s, a: s.set_token(arg(a, "token", str)),
    "keepalives": lambda s, a: s.silence_keepalives(not arg(a, "on", bool)),
}
