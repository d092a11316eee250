"""The old Nest web service (home.nest.com and its "czfe" transport) over a `SimHome`.

It speaks the protocol in PROTOCOLS.md §2 and the 2012 capture (seed 002, fixtures in
tests/fixtures/nest_web/): a session login that returns the access token, the user id and
the transport URL; the home as versioned buckets (see `buckets`); `app_launch` for the full
set; the subscribe long poll, which returns as soon as a bucket the client holds has a
version other than the one it sent (or after `hold_s` with nothing); and puts. One bucket
store serves both forms of the protocol:

- `v5` (current clients): `POST {transport}/v5/subscribe` with `{"objects": [{object_key,
  object_revision, object_timestamp}]}`, answered with every changed bucket and its value;
  `POST {transport}/v5/put` with `{"objects": [{object_key, op: "MERGE", value}]}`.
- `v1` (the 2012 web app): `POST {transport}/v1/subscribe` with `{"keys": [{key, version,
  timestamp}]}`, answered with *one* changed bucket: its key, version and timestamp in
  `X-nl-skv-*` headers and its whole value as the body (204 when nothing changed);
  `POST {transport}/v1/put` with `{"<type>": {"<id>": {fields}}}` and
  `POST {transport}/v1/put/<key>` with the fields. (The web app tunnelled these through
  JSONP; that envelope is not served.)

The transport lives under `TRANSPORT_PREFIX` on the same server, so a client must use the
URL the session gives it. Writes are checked against the device (capabilities, ranges,
online) and applied to the `SimHome`; the buckets are then re-rendered, so a write's echo
arrives like any other change. Details that no source shows are the simulator's best guess
and marked [M].

Today's Google accounts log in the way the web app does (PROTOCOLS.md §2.1): `GET
/o/oauth2/iframerpc?action=issueToken…` (the `issue_token` URL a user copies from the
browser) with the browser's Google cookies answers a Google access token, or
`{"error": "USER_LOGGED_OUT"}` once the cookies have expired; `POST /v1/issue_jwt` (the auth
proxy) turns that token into a Nest JWT, valid for `expire_after`, used as the session token.
`GET /session` expects the token in a `cztoken` cookie as well, as the web app sends it [M].

Test and demo controls are methods of `NestWebSimulator` and JSON endpoints under `/_sim/`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from typing import Any

import anyio
import structlog

from roost.simulator import control, front, http
from roost.simulator.buckets import Bucket, BucketStore
from roost.simulator.faults import Faults, Injected
from roost.simulator.front import Front
from roost.simulator.home import (
    Mode,
    SimHome,
    SimSmokeCoAlarm,
    SimStructure,
    SimThermostat,
)

log = structlog.get_logger(__name__)

TRANSPORT_PREFIX = "/transport"
USER_ID = "1000001"
MIN_TARGET_C, MAX_TARGET_C = 9.0, 32.0  # what a Nest thermostat accepts
MIN_RANGE_GAP_C = 1.5  # [M]
GOOGLE_COOKIES = "SID=sim-sid; HSID=sim-hsid; SSID=sim-ssid; APISID=sim-apisid"
GOOGLE_API_KEY = "sim-nest-web-api-key"
GOOGLE_REFERER = "https://accounts.google.com/o/oauth2/iframe"
ISSUE_TOKEN_PATH = "/o/oauth2/iframerpc"
ISSUE_JWT_PATH = "/v1/issue_jwt"
GOOGLE_TOKEN_LIFETIME = timedelta(hours=1)
SESSION_LIFETIME = timedelta(days=30)  # [M] homebridge renews Nest sessions every 20 days

# target_temperature_type (shared.) ↔ the neutral mode; eco lives in device.eco.mode.
TARGET_TYPES: dict[str, Mode] = {"heat": "heat", "cool": "cool", "range": "heat-cool", "off": "off"}
TARGET_TYPE_OF: dict[str, str] = {mode: kind for kind, mode in TARGET_TYPES.items()}
ECO_ON, ECO_OFF = "manual-eco", "schedule"
ALARM_STATUS = {"ok": 0, "warning": 1, "emergency": 3}  # badnest: 1-2 warning, 3 emergency
SETPOINT_FIELDS = {
    "target_temperature": "target",
    "target_temperature_low": "low",
    "target_temperature_high": "high",
}
# Fields a client may write, per bucket type. Fields outside these are refused [M].
WRITABLE: dict[str, frozenset[str]] = {
    "shared": frozenset({*SETPOINT_FIELDS, "target_temperature_type", "target_change_pending"}),
    "device": frozenset({"eco", "fan_timer_timeout"}),
    "structure": frozenset({"away", "away_timestamp", "away_setter"}),
    "schedule": frozenset({"days", "name", "schedule_mode", "ver"}),
}
# Written, kept and shown back, but not part of the simulated physics.
KEPT_AS_WRITTEN = frozenset({"away_timestamp", "away_setter"})
APP_LAUNCH_TYPES = ("structure", "shared", "device", "topaz", "where", "track", "user", "schedule")
DAY_SECONDS = 24 * 3600


class NestWebError(Exception):
    """A refusal: an HTTP status and a short JSON body [M: no source shows the body]."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message

    def response(self) -> http.Response:
        return http.Response(self.status, {"error": self.error, "message": self.message})


def _envelope(status: int, message: str) -> object:
    return NestWebError(status, "injected", message).response().body


def _bad(message: str) -> NestWebError:
    return NestWebError(400, "invalid_request", message)


# -- rendering: the home as buckets --------------------------------------------------------------


def render(
    home: SimHome,
    *,
    user_id: str,
    email: str,
    schedules: Mapping[str, Mapping[str, Any]],
    kept: Mapping[str, Mapping[str, Any]],
    since_ms: int,
) -> dict[str, dict[str, Any]]:
    """Every bucket of the home, by key. `schedules` holds the schedule buckets (the home
    has no schedules), `kept` the written fields the home does not model."""
    buckets: dict[str, dict[str, Any]] = {
        f"user.{user_id}": {
            "name": email.partition("@")[0],
            "email": email,
            "structures": [f"structure.{s}" for s in home.structures],
        }
    }
    for s in home.structures.values():
        buckets[f"structure.{s.id}"] = _structure(s, home, user_id)
        rooms = sorted({d.room for d in home.devices_in(s.id)})
        buckets[f"where.{s.id}"] = {"wheres": [{"where_id": where_id(r), "name": r} for r in rooms]}
    for t in home.thermostats.values():
        buckets[f"device.{t.id}"] = _device(t)
        buckets[f"shared.{t.id}"] = _shared(t)
        buckets[f"track.{t.id}"] = _track(t.online, since_ms)
        if t.id in schedules:
            buckets[f"schedule.{t.id}"] = dict(schedules[t.id])
    for a in home.alarms.values():
        buckets[f"topaz.{a.id}"] = _topaz(a)
        buckets[f"track.{a.id}"] = _track(a.online, since_ms)
    for key, fields in kept.items():
        if key in buckets:
            buckets[key] |= fields
    return buckets


def _structure(s: SimStructure, home: SimHome, user_id: str) -> dict[str, Any]:
    swarm = [
        f"device.{d.id}" if isinstance(d, SimThermostat) else f"topaz.{d.id}"
        for d in home.devices_in(s.id)
        if isinstance(d, SimThermostat | SimSmokeCoAlarm)
    ]
    return {
        "name": s.name,
        "away": s.away,
        "away_timestamp": 0,
        "away_setter": 0,
        "swarm": swarm,
        "time_zone": s.time_zone,
        "country_code": "GB",  # [M]
        "postal_code": "SW1A 1AA",  # [M]
        "user": f"user.{user_id}",
    }


def _shared(t: SimThermostat) -> dict[str, Any]:
    """The `shared.` bucket: exactly the fields of the captured ones (seed 002)."""
    base_mode = _base_mode(t)
    return {
        "name": t.name,
        "current_temperature": round(t.ambient_c, 2),
        "target_temperature": t.target_c,
        "target_temperature_low": t.target_low_c,
        "target_temperature_high": t.target_high_c,
        "target_temperature_type": TARGET_TYPE_OF[base_mode],
        "target_change_pending": False,
        "can_heat": t.can_heat,
        "can_cool": t.can_cool,
        "hvac_heater_state": t.hvac_state == "heating",
        "hvac_ac_state": t.hvac_state == "cooling",
        "hvac_fan_state": t.hvac_state != "off" or t.fan_timer_active,
        "hvac_heat_x2_state": False,
        "hvac_aux_heater_state": False,
        "auto_away": 0,
        "compressor_lockout_enabled": False,
        "compressor_lockout_timeout": 0,
    }


def _device(t: SimThermostat) -> dict[str, Any]:
    """The `device.` bucket: a subset of the captured fields, plus the newer `eco`,
    `fan_timer_timeout` and `where_id` (PROTOCOLS.md §2.3)."""
    timeout = t.fan_timer_timeout if t.fan_timer_active else None
    return {
        "serial_number": t.id,
        "where_id": where_id(t.room),
        "current_version": "5.9.3-5",
        "model_version": "Display-3.4",
        "temperature_scale": "C",
        "has_fan": t.has_fan,
        "fan_mode": "auto",
        "fan_timer_timeout": int(timeout.timestamp()) if timeout is not None else 0,
        "current_humidity": t.humidity,
        "eco": {"mode": ECO_ON if t.mode == "eco" else ECO_OFF},
        "away_temperature_low": t.eco_low_c,
        "away_temperature_low_enabled": True,
        "away_temperature_high": t.eco_high_c,
        "away_temperature_high_enabled": t.can_cool,
        "temperature_lock": t.locked,
        "temperature_lock_low_temp": t.locked_min_c,  # [M] field name
        "temperature_lock_high_temp": t.locked_max_c,  # [M] field name
        "has_heat_pump": False,
        "has_aux_heat": False,
        "backplate_temperature": round(t.ambient_c, 2),
        "battery_level": 3.945,
        "learning_mode": True,
        "time_to_target": 0,
    }


def _topaz(a: SimSmokeCoAlarm) -> dict[str, Any]:
    return {
        "serial_number": a.id,
        "description": a.name,
        "where_id": where_id(a.room),
        "structure_id": a.structure_id,
        "co_status": ALARM_STATUS[a.co],
        "smoke_status": ALARM_STATUS[a.smoke],
        "battery_health_state": 0 if a.battery == "ok" else 1,
        "battery_level": 5400,
        "component_wifi_test_passed": True,
        "software_version": "3.1.4",
        "model": "Topaz-2.7",
    }


def _track(online: bool, since_ms: int) -> dict[str, Any]:
    return {"online": online, "last_connection": since_ms}


def _base_mode(t: SimThermostat) -> Mode:
    """The mode shown in `target_temperature_type`: in eco, the mode eco returns to."""
    if t.mode != "eco":
        return t.mode
    return t.previous_mode if t.previous_mode not in (None, "eco") else _fallback_mode(t)


def _fallback_mode(t: SimThermostat) -> Mode:
    return "heat" if t.can_heat else ("cool" if t.can_cool else "off")


def where_id(room: str) -> str:
    """A stable UUID for a room name, as Nest `where_id`s are UUIDs."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nest-web-sim:where:{room}")).upper()


def default_schedule(t: SimThermostat) -> dict[str, Any]:
    """A plain heating schedule: the capture's shape (days → entries, time in seconds)."""
    entries = [(0, "continuation", 16.0), (6 * 3600 + 1800, "setpoint", t.target_c)]
    entries.append((22 * 3600, "setpoint", 16.0))
    day = {
        str(i): {"type": "HEAT", "temp": temp, "time": time, "entry_type": kind}
        for i, (time, kind, temp) in enumerate(entries)
    }
    return {
        "name": f"{t.name} Schedule",
        "ver": 2,
        "schedule_mode": "HEAT",
        "days": dict.fromkeys(map(str, range(7)), day),
    }


# -- writes ------------------------------------------------------------------------------------

Apply = Callable[[], None]


def check_write(home: SimHome, key: str, fields: Any, *, now: datetime) -> Apply:
    """Validate one bucket write and return what applies it, or raise NestWebError."""
    kind, _, ident = key.partition(".")
    if not isinstance(fields, dict) or not fields:
        raise _bad(f"{key}: the value must be a non-empty object")
    writable = WRITABLE.get(kind)
    if writable is None:
        raise NestWebError(403, "forbidden", f"{kind} buckets are read-only")
    refused = sorted(set(fields) - writable)
    if refused:
        raise _bad(f"{key}: field(s) not writable: {', '.join(refused)}")
    if kind == "structure":
        if ident not in home.structures:
            raise _not_found(key)
        return _structure_write(home, ident, fields)
    if ident not in home.thermostats:
        raise _not_found(key)
    t = home.thermostats[ident]
    if not t.online:
        raise _bad(f"{key}: the thermostat is offline")  # [M]
    if kind == "shared":
        return _shared_write(home, t, fields)
    if kind == "device":
        return _device_write(home, t, fields, now)
    return lambda: None  # schedule: stored by the simulator (checked in `checked_schedule`)


def _not_found(key: str) -> NestWebError:
    return NestWebError(404, "not_found", f"no bucket {key}")


def _structure_write(home: SimHome, structure_id: str, fields: dict[str, Any]) -> Apply:
    away = fields.get("away")
    if "away" in fields and not isinstance(away, bool):
        raise _bad(f"away must be true or false, not {away!r}")
    if away is None:
        return lambda: None
    return partial(home.set_away, structure_id, away)


def _shared_write(home: SimHome, t: SimThermostat, fields: dict[str, Any]) -> Apply:
    steps: list[Apply] = []
    kind = fields.get("target_temperature_type")
    if kind is not None:
        mode = TARGET_TYPES.get(kind.lower()) if isinstance(kind, str) else None
        if mode is None:
            raise _bad(f"unknown target_temperature_type {kind!r}")
        needs_heat, needs_cool = mode in ("heat", "heat-cool"), mode in ("cool", "heat-cool")
        if (needs_heat and not t.can_heat) or (needs_cool and not t.can_cool):
            raise _bad(f"the thermostat cannot run in {kind!r}")
        # Choosing a mode leaves eco, as in the Nest app [M].
        steps.append(partial(home.set_mode, t.id, mode))
    targets = {
        SETPOINT_FIELDS[n]: _celsius(n, v) for n, v in fields.items() if n in SETPOINT_FIELDS
    }
    low, high = targets.get("low", t.target_low_c), targets.get("high", t.target_high_c)
    if ("low" in targets or "high" in targets) and high - low < MIN_RANGE_GAP_C:
        raise _bad(f"target_temperature_low must be {MIN_RANGE_GAP_C} °C below the high")
    if "target" in targets:
        steps.append(partial(home.set_target, t.id, targets["target"]))
    if "low" in targets or "high" in targets:
        steps.append(partial(home.set_range, t.id, targets.get("low"), targets.get("high")))
    return _all(steps)


def _celsius(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(f"{name} must be a number of °C, not {value!r}")
    if not MIN_TARGET_C <= value <= MAX_TARGET_C:
        raise _bad(f"{name} {value:g} is outside {MIN_TARGET_C:g}–{MAX_TARGET_C:g} °C")
    return float(value)


def _device_write(home: SimHome, t: SimThermostat, fields: dict[str, Any], now: datetime) -> Apply:
    steps: list[Apply] = []
    if "eco" in fields:
        eco = fields["eco"]
        mode = eco.get("mode") if isinstance(eco, dict) else None
        if mode not in (ECO_ON, ECO_OFF):
            raise _bad(f"eco must be {{'mode': '{ECO_ON}' or '{ECO_OFF}'}}, not {eco!r}")
        if mode == ECO_ON and t.mode != "eco":
            steps.append(partial(home.set_mode, t.id, "eco"))
        elif mode == ECO_OFF and t.mode == "eco":
            steps.append(partial(home.set_mode, t.id, _base_mode(t)))
    if "fan_timer_timeout" in fields:
        steps.append(_fan_write(home, t, fields["fan_timer_timeout"], now))
    return _all(steps)


def _fan_write(home: SimHome, t: SimThermostat, timeout: object, now: datetime) -> Apply:
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        raise _bad(f"fan_timer_timeout must be unix seconds (0 stops), not {timeout!r}")
    if not t.has_fan:
        raise _bad("the thermostat has no fan")
    remaining_s = timeout - now.timestamp()
    if timeout == 0 or remaining_s <= 0:
        return partial(home.set_fan_timer, t.id, False)
    minutes = max(1, math.ceil(remaining_s / 60))
    return partial(home.set_fan_timer, t.id, True, minutes)


def checked_schedule(held: Mapping[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The schedule after a write of `fields`: `days` is replaced whole (the web app sends
    the entire schedule with every change), the other fields are merged."""
    days = fields.get("days", held.get("days", {}))
    if not isinstance(days, dict) or not set(days) <= {str(d) for d in range(7)}:
        raise _bad("days must map day numbers 0–6 to their entries")
    for day, entries in days.items():
        if not isinstance(entries, dict):
            raise _bad(f"day {day}: entries must map indexes to entries")
        for index, entry in entries.items():
            _check_entry(f"day {day} entry {index}", entry)
    return {**held, **fields}


def _check_entry(where: str, entry: object) -> None:
    if not isinstance(entry, dict):
        raise _bad(f"{where}: not an object")
    time = entry.get("time")
    if isinstance(time, bool) or not isinstance(time, int) or not 0 <= time < DAY_SECONDS:
        raise _bad(f"{where}: time must be seconds of the day, not {time!r}")
    if entry.get("type") not in ("HEAT", "COOL", "RANGE"):
        raise _bad(f"{where}: unknown type {entry.get('type')!r}")
    # A RANGE entry's two temperatures: the field names are a guess [M].
    for name in ("temp-min", "temp-max") if entry["type"] == "RANGE" else ("temp",):
        _celsius(f"{where}: {name}", entry.get(name))


def _all(steps: list[Apply]) -> Apply:
    def apply() -> None:
        for step in steps:
            step()

    return apply


# -- the simulator -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    """A request the simulator answered (controls under /_sim/ excluded)."""

    method: str
    path: str
    status: int


class NestWebSimulator(Front):
    """The Nest web service over one `SimHome`. Created and started by `serve`."""

    def __init__(
        self, home: SimHome, *, email: str, password: str, hold_s: float, seed: int | None
    ) -> None:
        self.home = home
        self.email = email
        self.password = password
        self.user_id = USER_ID
        self.hold_s = hold_s
        self.store = BucketStore(home.clock, seed=seed)
        self.sessions: set[str] = set()
        self.session_expiry: dict[str, datetime] = {}  # Nest JWTs end; password sessions don't
        self.google_cookies = GOOGLE_COOKIES  # what the browser holds while signed in
        self.google_tokens: dict[str, datetime] = {}  # Google access token → expiry
        self.jwts_issued = 0
        self.reply_field = "objects"  # where a v5 subscribe reply puts its changes
        self.jwt_lifetime_s: float | None = None  # cap what clients ask for (tests of renewal)
        self.writes: list[tuple[str, dict[str, Any]]] = []  # accepted (object_key, fields)
        self.requests: list[RequestRecord] = []
        self._schedules = {t.id: default_schedule(t) for t in home.thermostats.values()}
        self._kept: dict[str, dict[str, Any]] = {}
        self._since_ms = int(home.clock().timestamp() * 1000)
        self._stale_answers = 0
        # "login", "read" (a subscribe) and "write" (a put)
        self.faults = Faults(["login", "read", "write"])
        self._odd: dict[tuple[str, str], Any] = {}
        self._odd_objects: list[dict[str, Any]] = []
        self.sync()

    def start(self, server: http.Server) -> None:
        server.start_soon(self.follow_home, name="nest_web buckets")

    @property
    def transport_url(self) -> str:
        """Where subscribe and put go, as the session reply says."""
        return self.server.url + TRANSPORT_PREFIX

    def sync(self) -> None:
        """Render the home into the bucket store: changed buckets get new versions."""
        rendered = render(
            self.home,
            user_id=self.user_id,
            email=self.email,
            schedules=self._schedules,
            kept=self._kept,
            since_ms=self._since_ms,
        )
        for (key, field), odd in self._odd.items():
            if key in rendered:
                rendered[key] = {**rendered[key], field: odd}
        for key, value in rendered.items():
            self.store.put(key, value)
        for key in set(self.store.keys()) - set(rendered):
            self.store.remove(key)

    async def follow_home(self) -> None:
        """Keep the buckets in step with the home (scenario changes, physics)."""
        seen = self.home.version
        while True:
            seen = await self.home.wait_changed(seen)
            self.sync()

    # -- faults and controls -------------------------------------------------------------

    def send_odd_value(self, key: str, field: str, value: Any) -> None:
        """From the next change on, bucket `key` holds `value` in `field`, whatever the home
        says: a value a real cloud may send and roost has never seen."""
        self._odd[(key, field)] = value

    def send_odd_object(self, obj: dict[str, Any]) -> None:
        """From now on every app_launch and subscribe reply also carries `obj` as a bucket
        object, whatever its shape: one roost cannot read beside the ones it can."""
        self._odd_objects.append(obj)

    def login(self) -> str:
        """A new session token, as a successful `POST /session` would issue."""
        token = f"b.{self.user_id}.{secrets.token_urlsafe(24)}"
        self.sessions.add(token)
        return token

    def expire_sessions(self) -> None:
        """Every session token stops working: requests get 401 until the client logs in."""
        self.sessions.clear()

    def sign_out_google(self) -> None:
        """The browser's Google cookies stop working (signed out, or expired)."""
        self.google_cookies = "signed-out"
        self.google_tokens.clear()

    def issue_token_url(self) -> str:
        """The `issue_token` URL a user copies from the web app's requests."""
        query = "action=issueToken&response_type=token%20id_token&client_id=sim.apps"
        return f"{self.url}{ISSUE_TOKEN_PATH}?{query}&origin=https://home.nest.com"

    def drop_subscriptions(self) -> None:
        """Abort every `v5` subscribe in flight, mid-response, as a network fault would."""
        self.server.close_streams()

    def answer_stale(self, n: int) -> None:
        """Answer the next n `v5` subscribes at once with the revisions the client sent, as
        a server that lost track of versions might."""
        self._stale_answers += n

    def count(self, path_suffix: str) -> int:
        """How many answered requests had a path ending in `path_suffix`."""
        return sum(1 for r in self.requests if r.path.endswith(path_suffix))

    # -- requests --------------------------------------------------------------------------

    async def handle(self, request: http.Request) -> http.Answer:
        if request.path.startswith("/_sim/"):
            return control.handle(self, request, _READS, _CONTROLS, self.home.version)
        try:
            response = await self._route(request)
        except NestWebError as error:
            response = error.response()
        except Injected as injected:
            response = injected.answer
        self.requests.append(RequestRecord(request.method, request.path, response.status))
        return response

    async def _route(self, request: http.Request) -> http.Answer:
        path, method = request.path, request.method
        if path == "/session":
            return self._session(request)
        if path == ISSUE_TOKEN_PATH:
            return self._issue_token(request)
        if path == ISSUE_JWT_PATH:
            return self._issue_jwt(request)
        if method != "POST":
            raise NestWebError(405, "method_not_allowed", "use POST")
        self._authorize(request)
        if path == f"/api/0.1/user/{self.user_id}/app_launch":
            return self._app_launch(request)
        if not path.startswith(TRANSPORT_PREFIX + "/"):
            raise NestWebError(404, "not_found", f"no endpoint {path}")
        path = path.removeprefix(TRANSPORT_PREFIX)
        if path == "/v5/subscribe":
            return self._subscribe_v5(request)
        if path == "/v1/subscribe":
            return await self._subscribe_v1(request)
        if path == "/v5/put":
            return self._put_v5(request)
        if path == "/v1/put" or path.startswith("/v1/put/"):
            return self._put_v1(path.removeprefix("/v1/put").lstrip("/"), request)
        raise NestWebError(404, "not_found", f"no endpoint {path}")

    def _authorize(self, request: http.Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Basic" or token not in self.sessions:
            raise NestWebError(401, "unauthorized", "session expired or unknown")
        expiry = self.session_expiry.get(token)
        if expiry is not None and self.home.clock() >= expiry:
            self.sessions.discard(token)
            raise NestWebError(401, "unauthorized", "session expired")

    def _issue_token(self, request: http.Request) -> http.Response:
        """Google's token endpoint for a signed-in browser: the cookies and the iframe
        referer are what it checks."""
        if request.method != "GET" or request.query.get("action") != "issueToken":
            raise NestWebError(400, "invalid_request", "expected action=issueToken")
        if request.headers.get("referer") != GOOGLE_REFERER:
            return http.Response(200, {"error": "invalid_request", "detail": "bad referer"})
        if request.headers.get("cookie") != self.google_cookies:
            logged_out = {"error": "USER_LOGGED_OUT", "detail": "No active session found."}
            return http.Response(200, logged_out)
        token = f"ya29.sim-web-{secrets.token_urlsafe(16)}"
        self.google_tokens[token] = self.home.clock() + GOOGLE_TOKEN_LIFETIME
        lifetime = int(GOOGLE_TOKEN_LIFETIME.total_seconds())
        body = {"token_type": "Bearer", "access_token": token, "expires_in": lifetime}
        return http.Response(200, body)

    def _issue_jwt(self, request: http.Request) -> http.Response:
        """The Nest auth proxy: a Google access token in, a Nest JWT out."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expiry = self.google_tokens.get(token)
        if scheme != "Bearer" or expiry is None or self.home.clock() >= expiry:
            raise NestWebError(401, "UNAUTHENTICATED", "invalid Google access token")
        if request.headers.get("x-goog-api-key") != GOOGLE_API_KEY:
            raise NestWebError(403, "PERMISSION_DENIED", "API key not valid")
        body = _json_object(request)
        if body.get("google_oauth_access_token") != token:
            raise _bad("google_oauth_access_token must be the bearer token")
        if body.get("policy_id") != "authproxy-oauth-policy":
            raise _bad("unknown policy_id")
        lifetime = min(_seconds(body.get("expire_after", "3600s")), self.jwt_lifetime_s or 86400)
        jwt = f"g.0.{secrets.token_urlsafe(32)}"
        ends = self.home.clock() + timedelta(seconds=lifetime)
        self.sessions.add(jwt)
        self.session_expiry[jwt] = ends
        self.jwts_issued += 1
        claims = {
            "subject": {"nestId": {"id": self.user_id}},
            "expirationTime": ends.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        return http.Response(200, {"jwt": jwt, "claims": claims})

    def _session(self, request: http.Request) -> http.Response:
        """`POST /session` logs in with email and password; `GET /session` with a token
        describes that session."""
        if request.method == "GET":
            self._authorize(request)
            token = request.headers["authorization"].partition(" ")[2]
            if f"cztoken={token}" not in request.headers.get("cookie", ""):
                raise NestWebError(401, "unauthorized", "the cztoken cookie is missing")
            return http.Response(200, self._session_body(token))
        if request.method != "POST":
            raise NestWebError(405, "method_not_allowed", "use GET or POST")
        self.faults.check("login", _envelope)
        body = _json_object(request)
        if body.get("email") != self.email or body.get("password") != self.password:
            raise NestWebError(400, "access_denied", "incorrect email or password")
        return http.Response(200, self._session_body(self.login()))

    def _session_body(self, token: str) -> dict[str, Any]:
        expires = self.session_expiry.get(token, self.home.clock() + SESSION_LIFETIME)
        return {
            "access_token": token,
            "userid": self.user_id,
            "user": f"user.{self.user_id}",
            "email": self.email,
            "expires_in": format_datetime(expires.astimezone(UTC), usegmt=True),  # [M]
            "urls": self._urls(),
            "is_staff": False,
        }

    def _urls(self) -> dict[str, str]:
        return {
            "transport_url": self.transport_url,
            "direct_transport_url": self.transport_url,
            "rubyapi_url": self.url + "/",
            "czfe_url": self.transport_url,
        }

    def _app_launch(self, request: http.Request) -> http.Response:
        body = _json_object(request)
        types = body.get("known_bucket_types", APP_LAUNCH_TYPES)
        known = body.get("known_bucket_versions") or []
        if not isinstance(types, list) or not isinstance(known, list):
            raise _bad("known_bucket_types and known_bucket_versions must be lists")
        self.sync()
        held = _held_versions(known, "object_key", "object_revision")
        buckets = [b for b in self.store.buckets(types) if held.get(b.key) != b.version]
        if "buckets" in types:
            keys = {"buckets": self.store.keys()}
            buckets.insert(0, Bucket(f"buckets.{self.user_id}", 1, self._since_ms, keys))
        return http.Response(
            200,
            {
                "updated_buckets": [_v5_object(b, with_value=True) for b in buckets]
                + self._odd_objects,
                "service_urls": {"urls": self._urls()},
                "weather_for_structures": {},
            },
        )

    # -- subscribe ---------------------------------------------------------------------------

    def _subscribe_v5(self, request: http.Request) -> http.StreamingResponse:
        self.faults.check("read", _envelope)
        objects = _json_object(request).get("objects")
        if not isinstance(objects, list):
            raise _bad("objects must be a list")
        held = _held_versions(objects, "object_key", "object_revision")
        headers = {"Content-Type": "application/json; charset=UTF-8"}
        return http.StreamingResponse(200, self._v5_reply(held), headers)

    async def _v5_reply(self, held: dict[str, int]) -> AsyncIterator[bytes]:
        if self._stale_answers > 0:  # a confused server: the client's own revisions back
            self._stale_answers -= 1
            stale = [b for key in held if (b := self.store.get(key)) is not None]
            changed = [dataclasses.replace(b, version=held[b.key]) for b in stale]
        else:
            changed = await self._wait_for_changes(held)
        objects = [_v5_object(b, with_value=True) for b in changed] + self._odd_objects
        yield json.dumps({self.reply_field: objects}).encode()

    async def _subscribe_v1(self, request: http.Request) -> http.Response:
        self.faults.check("read", _envelope)
        keys = _json_object(request).get("keys")
        if not isinstance(keys, list):
            raise _bad("keys must be a list")
        changed = await self._wait_for_changes(_held_versions(keys, "key", "version"))
        if not changed:
            return http.Response(204)
        bucket = changed[0]  # the v1 reply carries one bucket
        headers = {
            "X-nl-skv-key": bucket.key,
            "X-nl-skv-version": str(bucket.version),
            "X-nl-skv-timestamp": str(bucket.timestamp_ms),
            "X-nl-service-timestamp": str(int(self.home.clock().timestamp() * 1000)),
        }
        return http.Response(200, dict(bucket.value), headers)

    async def _wait_for_changes(self, held: dict[str, int]) -> list[Bucket]:
        """The held buckets whose version differs, as soon as there are any, or [] after
        `hold_s`."""
        self.sync()
        with anyio.move_on_after(self.hold_s):
            while True:
                seen = self.store.changes
                changed = self.store.differing(held)
                if changed:
                    return changed
                await self.store.wait_changed(seen)
        return []

    # -- put ---------------------------------------------------------------------------------

    def _put_v5(self, request: http.Request) -> http.Response:
        objects = _json_object(request).get("objects")
        if not isinstance(objects, list) or not objects:
            raise _bad("objects must be a non-empty list")
        writes: list[tuple[str, Any]] = []
        for obj in objects:
            if not isinstance(obj, dict) or not isinstance(obj.get("object_key"), str):
                raise _bad("every object needs an object_key")
            if obj.get("op", "MERGE") != "MERGE":
                raise _bad(f"unsupported op {obj.get('op')!r}")
            self._check_revision(obj["object_key"], obj.get("if_object_revision"))
            writes.append((obj["object_key"], obj.get("value")))
        buckets = self._apply(writes)
        return http.Response(200, {"objects": [_v5_object(b, with_value=False) for b in buckets]})

    def _check_revision(self, key: str, expected: object) -> None:
        """A conditional put (`if_object_revision`, seen in device-side code [C]) is refused
        with 409 when the bucket has moved on [M]."""
        bucket = self.store.get(key)
        if expected is not None and bucket is not None and bucket.version != expected:
            raise NestWebError(409, "stale_revision", f"{key} is at another revision")

    def _put_v1(self, key: str, request: http.Request) -> http.Response:
        body = _json_object(request)
        if key:
            writes: list[tuple[str, Any]] = [(key, body)]
        else:  # {"<type>": {"<id>": {fields}}}, as the captured target-temperature put
            writes = []
            for kind, by_id in body.items():
                if not isinstance(by_id, dict):
                    raise _bad(f"{kind}: expected {{id: fields}}")
                writes.extend((f"{kind}.{ident}", fields) for ident, fields in by_id.items())
        self._apply(writes)
        return http.Response(200, {})

    def _apply(self, writes: list[tuple[str, Any]]) -> list[Bucket]:
        """Check every write, then apply them all and re-render: all or nothing."""
        self.faults.check("write", _envelope)
        if not writes:
            raise _bad("nothing to write")
        now = self.home.clock()
        steps = [check_write(self.home, key, fields, now=now) for key, fields in writes]
        schedules: dict[str, dict[str, Any]] = {}
        for key, fields in writes:
            kind, _, serial = key.partition(".")
            if kind == "schedule":
                held = schedules.get(serial) or self._schedules.get(serial, {})
                schedules[serial] = checked_schedule(held, fields)
        for step in steps:
            step()
        self._schedules.update(schedules)
        for key, fields in writes:
            kept = {k: v for k, v in fields.items() if k in KEPT_AS_WRITTEN}
            if kept:
                self._kept.setdefault(key, {}).update(kept)
            self.writes.append((key, dict(fields)))
            log.info("nest_web simulator applied a write", key=key, fields=sorted(fields))
        self.sync()
        return [bucket for key, _ in writes if (bucket := self.store.get(key)) is not None]


def _json_object(request: http.Request) -> dict[str, Any]:
    try:
        body = request.json() if request.body else {}
    except ValueError:
        raise _bad("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    return body


def _seconds(value: object) -> float:
    """A protobuf duration such as "3600s"."""
    if not isinstance(value, str) or not value.endswith("s"):
        raise _bad("expire_after must be a duration like '3600s'")
    try:
        seconds = float(value[:-1])
    except ValueError:
        raise _bad("expire_after must be a duration like '3600s'") from None
    if not 0 < seconds <= 86400:
        raise _bad("expire_after out of range")
    return seconds


def _held_versions(items: list[Any], key_field: str, version_field: str) -> dict[str, int]:
    held: dict[str, int] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get(key_field), str):
            raise _bad(f"every entry needs a {key_field}")
        version = item.get(version_field)
        held[item[key_field]] = version if isinstance(version, int) else 0
    return held


def _v5_object(bucket: Bucket, *, with_value: bool) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "object_key": bucket.key,
        "object_revision": bucket.version,
        "object_timestamp": bucket.timestamp_ms,
    }
    if with_value:
        obj["value"] = dict(bucket.value)
    return obj


@asynccontextmanager
async def serve(
    home: SimHome,
    *,
    email: str = "owner@example.com",
    password: str = "correct horse battery staple",
    hold_s: float = 60.0,
    physics_interval_s: float | None = None,
    seed: int | None = None,
    port: int = 0,
) -> AsyncIterator[NestWebSimulator]:
    """Serve the Nest web API for `home` on 127.0.0.1:port (0 picks a free port)."""
    simulator = NestWebSimulator(home, email=email, password=password, hold_s=hold_s, seed=seed)
    async with front.serve(simulator, physics_interval_s=physics_interval_s, port=port):
        yield simulator


# -- the /_sim/ control surface ------------------------------------------------------------------


_READS: control.Reads[NestWebSimulator] = {
    **front.HOME_READS,
    "writes": lambda s: [{"object_key": key, "value": value} for key, value in s.writes],
    "buckets": lambda s: [_v5_object(b, with_value=True) for b in s.store.buckets()],
}

_CONTROLS: dict[str, front.Control] = {
    **front.HOME_CONTROLS,
    "drop_subscriptions": lambda s, a: s.drop_subscriptions(),
    "expire_sessions": lambda s, a: s.expire_sessions(),
    "sign_out_google": lambda s, a: s.sign_out_google(),
}
