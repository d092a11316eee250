"""The Netatmo Connect front: api.netatmo.com over a `SimHome`, on loopback.

It speaks the protocol in PROTOCOLS.md §4: OAuth2 refresh with rotation (the spent refresh
token dies at once) and scopes; `homesdata`, `homestatus`, `getevents`, `setthermmode`,
`setroomthermpoint`, `setstate`, `createnewhomeschedule`, `switchhomeschedule`,
`getscenarios`, `setpersonsaway`/`setpersonshome`, `addwebhook`/`dropwebhook`; the
`{"status":"ok","body":…}` envelope and the `{"error":{"code","message"}}` errors; the
per-user limits (50 requests / 10 s, 500 / hour → 403 code 26); and webhooks POSTed to
the registered URL, signed with `X-Netatmo-secret` (HMAC-SHA256 of the body with the app's
client secret). Behaviour tagged [M] in PROTOCOLS.md is the simulator's best guess.

How the neutral home looks on Netatmo:
- a `SimStructure` is a home; with a camera it has two persons (Security), who are out
  of sight while the structure is away;
- each `SimThermostat` is a room of its own (room id = thermostat id) with a valve module
  (the first an NATherm1 behind an NAPlug relay, the others NRV); eco renders as the
  home's away (or frost-guard) mode, a manual setpoint as `manual` until its end time;
- a `SimSmokeCoAlarm` is two modules, an NSD (`<id>-smoke`) and an NCO (`<id>-co`): Netatmo
  sells them apart. Their alarms are events (`smoke`, `co_detected` with sub_type);
- a `SimCamera` is an NACamera, or an NDB when it is a doorbell.

Test and demo controls are methods of `NetatmoSimulator` and JSON endpoints under `/_sim/`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
import structlog

from roost.simulator import control, front, http
from roost.simulator.faults import Faults, Injected
from roost.simulator.front import Front
from roost.simulator.home import SimCamera, SimHome, SimSmokeCoAlarm, SimStructure, SimThermostat
from roost.simulator.oauth import CodeGrants

log = structlog.get_logger(__name__)

CLIENT_ID = "sim-client-id"
CLIENT_SECRET = "sim-client-secret"
USER_ID = "5c810d6e2d3e04d5008b45f4"
ACCESS_LIFETIME_S = 10800
DEFAULT_SCOPES = (
    "read_thermostat",
    "write_thermostat",
    "read_camera",
    "write_camera",
    "access_camera",
    "read_doorbell",
    "read_smokedetector",
    "read_carbonmonoxidedetector",
)
RATE_LIMITS = ((10.0, 50), (3600.0, 500))  # per user (PROTOCOLS.md §4.4)
MIN_SETPOINT_C, MAX_SETPOINT_C = 7.0, 30.0  # [M]
HG_TEMP_C = 7.0
MANUAL_DEFAULT_MIN = 180
EVENTS_KEPT = 200
SMOKE_SUB_TYPE = {"ok": 0, "warning": 1, "emergency": 1}
CO_SUB_TYPE = {"ok": 0, "warning": 1, "emergency": 2}

READ_SCOPES = frozenset(s for s in DEFAULT_SCOPES if s.startswith(("read_", "access_")))
SECURITY_READ = frozenset(
    {"read_camera", "read_doorbell", "read_smokedetector", "read_carbonmonoxidedetector"}
)
# endpoint → (handler name, scopes of which one is needed)
ENDPOINTS: dict[str, tuple[str, frozenset[str]]] = {
    "homesdata": ("_homesdata", READ_SCOPES),
    "homestatus": ("_homestatus", READ_SCOPES),
    "getevents": ("_getevents", SECURITY_READ),
    "setthermmode": ("_setthermmode", frozenset({"write_thermostat"})),
    "setroomthermpoint": ("_setroomthermpoint", frozenset({"write_thermostat"})),
    "setstate": ("_setstate", frozenset({"write_thermostat", "write_camera"})),
    "createnewhomeschedule": ("_createnewhomeschedule", frozenset({"write_thermostat"})),
    "switchhomeschedule": ("_switchhomeschedule", frozenset({"write_thermostat"})),
    "getscenarios": ("_getscenarios", READ_SCOPES),
    "setpersonsaway": ("_setpersonsaway", frozenset({"write_camera"})),
    "setpersonshome": ("_setpersonshome", frozenset({"write_camera"})),
    "addwebhook": ("_addwebhook", READ_SCOPES),
    "dropwebhook": ("_dropwebhook", READ_SCOPES),
}
WRITES = frozenset(ENDPOINTS) - {"homesdata", "homestatus", "getevents", "getscenarios"}


class NetatmoError(Exception):
    """A refusal, answered with Netatmo's error envelope."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> http.Response:
        return http.Response(self.status, {"error": {"code": self.code, "message": self.message}})


def _envelope(status: int, message: str) -> object:
    return NetatmoError(status, 0, message).response().body


def _missing(name: str) -> NetatmoError:
    return NetatmoError(400, 10, f"{name} is missing")


def _invalid(message: str = "Invalid id") -> NetatmoError:
    return NetatmoError(400, 21, message)


@dataclass
class Grant:
    scope: tuple[str, ...]
    expires_at: datetime


@dataclass
class Manual:
    """A room's manual (or max) setpoint until `end` (epoch s); `schedule_c` comes back after."""

    mode: str
    start: int
    end: int
    schedule_c: float


@dataclass(frozen=True)
class ApiRequest:
    at: float  # epoch seconds on the simulator's clock
    endpoint: str
    status: int
    code: int | None = None


@dataclass
class HomeMode:
    therm_mode: str = "schedule"  # schedule | away | hg
    schedules: list[dict[str, Any]] = field(default_factory=list)


class NetatmoSimulator(Front):
    """The Netatmo service over one `SimHome`. Created and started by `serve`."""

    def __init__(
        self,
        home: SimHome,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        refresh_token: str | None = None,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        access_lifetime_s: float = ACCESS_LIFETIME_S,
        rate_limits: tuple[tuple[float, int], ...] = RATE_LIMITS,
    ) -> None:
        self.home = home
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token or f"{USER_ID}|{secrets.token_hex(16)}"
        self.scopes = scopes
        # `roost auth netatmo`: Netatmo documents no PKCE; a challenge sent is checked.
        self.code_grants = CodeGrants(client_id)
        self.access_lifetime_s = access_lifetime_s
        self.rate_limits = rate_limits
        self.grants: dict[str, Grant] = {}
        self.refreshes = 0
        self.requests: list[ApiRequest] = []
        self.writes: list[tuple[str, dict[str, Any]]] = []
        self.events: dict[str, list[dict[str, Any]]] = {}  # home id → events, oldest first
        self.webhook_url: str | None = None
        self.webhooks_v1_registrations = 0  # through webhooks/v1 (not api/addwebhook)
        self.refuse_webhooks = False  # as when Netatmo cannot reach the URL (code 21)
        self.webhooks_sent: list[dict[str, Any]] = []
        self.modes: dict[str, HomeMode] = {s: _home_mode(home, s) for s in home.structures}
        self.manual: dict[str, Manual] = {}
        self.faults = Faults(["read", "write"])  # an API call that reads, or that writes
        self._seen_alarms = _alarm_states(home)
        self._seen_cameras = _camera_states(home)
        self._seen_away = {s.id: s.away for s in home.structures.values()}
        self._seen_version = home.version
        self._odd: dict[tuple[str, str], Any] = {}
        self.odd_modules: list[Any] = []  # served before the real ones, homesdata and homestatus
        # endpoint → a change to its encoded answer (bytes a real cloud may send, not JSON's)
        self.raw_answers: dict[str, Callable[[bytes], bytes]] = {}
        self._outbox_send, self._outbox = anyio.create_memory_object_stream[dict[str, Any]](256)

    def start(self, server: http.Server) -> None:
        server.start_soon(self.watch, name="netatmo sim events")
        server.start_soon(self.send_webhooks, name="netatmo sim webhooks")

    def now(self) -> datetime:
        return self.home.clock()

    def _ts(self) -> int:
        return int(self.now().timestamp())

    # -- faults and controls -------------------------------------------------------------

    def send_odd_value(self, room_id: str, field: str, value: Any) -> None:
        """From now on the room's `homestatus` entry holds `value` in `field`, whatever the
        home says: a value a real cloud may send and roost has never seen."""
        self._odd[(room_id, field)] = value

    def expire_access_tokens(self) -> None:
        """Every access token handed out so far expires now."""
        for grant in self.grants.values():
            grant.expires_at = self.now() - timedelta(seconds=1)

    def revoke(self) -> None:
        """The user withdrew the app's access: every token dies."""
        self.grants.clear()
        self.refresh_token = f"{USER_ID}|revoked-{secrets.token_hex(8)}"

    def refused(self, code: int = 26) -> list[ApiRequest]:
        return [r for r in self.requests if r.code == code]

    def most_in_window(self, seconds: float) -> int:
        """The most requests Netatmo served within any `seconds` (what its limit counts)."""
        stamps = sorted(r.at for r in self.requests if r.code != 26)
        most, start = 0, 0
        for end, stamp in enumerate(stamps):
            while stamps[start] <= stamp - seconds:
                start += 1
            most = max(most, end - start + 1)
        return most

    # -- requests ------------------------------------------------------------------------

    async def handle(self, request: http.Request) -> http.Answer:
        if request.path.startswith("/_sim/"):
            return control.handle(self, request, _READS, _CONTROLS, self.home.version)
        self._expire_manual()
        try:
            if request.path == "/oauth2/token":
                return self._token(request)
            if request.path == "/oauth2/authorize" and request.method == "GET":
                return self.code_grants.authorize(request)
            if request.path.startswith("/api/"):
                return self._api(request.path.removeprefix("/api/"), request)
            if request.path == "/webhooks/v1":
                return self._webhooks_v1(request)
            raise NetatmoError(404, 31, "Method not found")  # [M]
        except NetatmoError as error:
            return error.response()
        except Injected as injected:
            return injected.answer

    def _token(self, request: http.Request) -> http.Response:
        form = _params(request)
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return http.Response(400, {"error": "invalid_client"})
        if form.get("grant_type") == "authorization_code":
            if self.code_grants.redeem(form) is not None:
                return http.Response(400, {"error": "invalid_grant"})
        elif form.get("grant_type") != "refresh_token":
            return http.Response(400, {"error": "unsupported_grant_type"})
        elif form.get("refresh_token") != self.refresh_token:
            return http.Response(400, {"error": "invalid_grant"})
        access = f"{USER_ID}|{secrets.token_hex(16)}"
        self.refresh_token = f"{USER_ID}|{secrets.token_hex(16)}"  # the old one dies now
        lifetime = timedelta(seconds=self.access_lifetime_s)
        self.grants[access] = Grant(self.scopes, self.now() + lifetime)
        self.refreshes += 1
        body = {
            "access_token": access,
            "refresh_token": self.refresh_token,
            "scope": list(self.scopes),
            "expires_in": int(self.access_lifetime_s),
            "expire_in": int(self.access_lifetime_s),
        }
        return http.Response(200, body)

    def _api(self, endpoint: str, request: http.Request) -> http.Answer:
        grant = self._grant(request)
        if not self._within_limits():
            self.requests.append(ApiRequest(self.now().timestamp(), endpoint, 403, 26))
            raise NetatmoError(403, 26, "User usage reached")
        try:
            response = self._dispatch(endpoint, grant, request)
        except NetatmoError as error:
            at = self.now().timestamp()
            self.requests.append(ApiRequest(at, endpoint, error.status, error.code))
            raise
        self.requests.append(ApiRequest(self.now().timestamp(), endpoint, 200))
        return response

    def _grant(self, request: http.Request) -> Grant:
        bearer = request.headers.get("authorization", "")
        token = bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None
        token = token or _params(request).get("access_token")
        if not token:
            raise NetatmoError(403, 1, "Access token is missing")  # [M]
        grant = self.grants.get(token)
        if grant is None:
            raise NetatmoError(403, 2, "Invalid access_token")
        if self.now() >= grant.expires_at:
            raise NetatmoError(403, 3, "Access token expired")
        return grant

    def _within_limits(self) -> bool:
        now = self.now().timestamp()
        counted = [r.at for r in self.requests if r.code != 26]
        return all(
            sum(1 for at in counted if at > now - seconds) < limit
            for seconds, limit in self.rate_limits
        )

    def _dispatch(self, endpoint: str, grant: Grant, request: http.Request) -> http.Response:
        entry = ENDPOINTS.get(endpoint)
        if entry is None:
            raise NetatmoError(404, 31, "Method not found")
        handler_name, needed = entry
        if not needed.intersection(grant.scope):
            raise NetatmoError(403, 13, "Application does not have the good scope rights")
        self.faults.check("write" if endpoint in WRITES else "read", _envelope)
        params = _params(request)
        handler: Callable[[dict[str, Any]], dict[str, Any] | None] = getattr(self, handler_name)
        body = handler(params)
        if endpoint in WRITES:
            self.writes.append((endpoint, params))
            log.info("netatmo simulator applied a write", endpoint=endpoint)
        envelope: dict[str, Any] = {"status": "ok", "time_server": self._ts()}
        if body is not None:
            envelope["body"] = body
            envelope["time_exec"] = 0.01
        raw = self.raw_answers.get(endpoint)
        if raw is not None:
            encoded = raw(json.dumps(envelope).encode())
            return http.Response(200, encoded, {"content-type": "application/json"})
        return http.Response(200, envelope)

    # -- reads ---------------------------------------------------------------------------

    def _structure(self, params: Mapping[str, Any]) -> SimStructure:
        home_id = params.get("home_id")
        if not home_id:
            raise _missing("home_id")
        if home_id not in self.home.structures:
            raise _invalid()
        return self.home.structures[str(home_id)]

    def _homesdata(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("home_id")
        structures = [s for s in self.home.structures.values() if not wanted or s.id == wanted]
        if wanted and not structures:
            raise _invalid()
        return {
            "homes": [self.home_data(s) for s in structures],
            "user": {
                "email": "sim@example.com",
                "language": "en-GB",
                "locale": "en-GB",
                "feel_like_algorithm": 0,
                "unit_pressure": 0,
                "unit_system": 0,
                "unit_wind": 0,
                "id": USER_ID,
            },
        }

    def home_data(self, s: SimStructure) -> dict[str, Any]:
        """The `homesdata` entry of one home."""
        devices = self.home.devices_in(s.id)
        thermostats = [d for d in devices if isinstance(d, SimThermostat)]
        rooms: dict[str, dict[str, Any]] = {}
        for t in thermostats:
            rooms[t.id] = {"id": t.id, "name": t.room, "type": "custom", "module_ids": []}
        modules: list[dict[str, Any]] = []
        for module in self._modules(s.id):
            entry: dict[str, Any] = {k: module[k] for k in ("id", "type", "name") if k in module}
            entry["setup_date"] = 1_600_000_000
            if "bridge" in module:
                entry["bridge"] = module["bridge"]
            room_id = self._room_of(module["_device"], rooms)
            if room_id is not None:
                entry["room_id"] = room_id
                rooms[room_id]["module_ids"].append(module["id"])
            modules.append(entry)
        mode = self.modes[s.id]
        data: dict[str, Any] = {
            "id": s.id,
            "name": s.name,
            "altitude": 35,
            "coordinates": [51.5072, -0.1276],
            "country": "GB",
            "timezone": s.time_zone,
            "rooms": list(rooms.values()),
            "modules": self.odd_modules + modules,
            "temperature_control_mode": "heating",
            "therm_mode": mode.therm_mode,
            "therm_setpoint_default_duration": MANUAL_DEFAULT_MIN,
            "schedules": mode.schedules,
        }
        if _has_camera(self.home, s.id):
            data["persons"] = [{"id": p, "pseudo": name} for p, name in _persons(s.id)]
        return data

    def _room_of(self, device: Any, rooms: dict[str, dict[str, Any]]) -> str | None:
        if isinstance(device, SimThermostat):
            return device.id
        if device is None:
            return None
        for room in rooms.values():
            if room["name"] == device.room:
                return str(room["id"])
        room_id = "room-" + "-".join(device.room.lower().split())
        rooms[room_id] = {"id": room_id, "name": device.room, "type": "custom", "module_ids": []}
        return room_id

    def _modules(self, structure_id: str) -> list[dict[str, Any]]:
        """Every Netatmo module of a home, with its homestatus fields and `_device`."""
        modules: list[dict[str, Any]] = []
        devices = self.home.devices_in(structure_id)
        thermostats = [d for d in devices if isinstance(d, SimThermostat)]
        relay = f"relay-{structure_id}"
        if thermostats:
            modules.append(
                {"id": relay, "type": "NAPlug", "name": "Relay", "_device": None}
                | {"firmware_revision": 174, "rf_strength": 107, "wifi_strength": 42}
            )
        for index, t in enumerate(thermostats):
            heating = t.hvac_state == "heating"
            module: dict[str, Any] = {
                "id": f"{t.id}-valve",
                "type": "NATherm1" if index == 0 else "NRV",
                "name": t.name,
                "_device": t,
                "reachable": t.online,
                "bridge": relay,
                "firmware_revision": 65,
                "rf_strength": 58,
                "battery_level": 3793,
                "battery_state": "high",
                "anticipating": False,
            }
            if index == 0:
                module |= {"boiler_status": heating, "boiler_valve_comfort_boost": False}
            modules.append(module)
        for a in (d for d in devices if isinstance(d, SimSmokeCoAlarm)):
            for suffix, kind, label in (("smoke", "NSD", "smoke alarm"), ("co", "NCO", "CO alarm")):
                modules.append(
                    {
                        "id": f"{a.id}-{suffix}",
                        "type": kind,
                        "name": f"{a.name} {label}",
                        "_device": a,
                        "reachable": a.online,
                        "battery_state": "low" if a.battery != "ok" else "full",
                        "firmware_revision": 28,
                        "last_seen": self._ts(),
                    }
                )
        for c in (d for d in devices if isinstance(d, SimCamera)):
            camera: dict[str, Any] = {
                "id": c.id,
                "type": "NDB" if c.is_doorbell else "NACamera",
                "name": c.name,
                "_device": c,
                "sd_status": 4,
                "alim_status": 2,
                "vpn_url": f"{self.url}/_sim/vpn/{c.id}",
                "is_local": True,
            }
            if not c.is_doorbell:
                camera |= {"monitoring": "on" if c.streaming else "off", "locked": False}
            modules.append(camera)
        return modules

    def _homestatus(self, params: dict[str, Any]) -> dict[str, Any]:
        s = self._structure(params)
        modules: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for module in self._modules(s.id):
            device = module.pop("_device")
            if isinstance(device, SimCamera) and not device.online:
                errors.append({"code": 6, "id": module["id"]})
                continue
            modules.append({k: v for k, v in module.items() if k != "name"})
        rooms = [self._room_status(s, t) for t in self.home.thermostats.values()]
        for room in rooms:
            for (room_id, name), odd in self._odd.items():
                if room is not None and room["id"] == room_id:
                    room[name] = odd
        home: dict[str, Any] = {
            "id": s.id,
            "rooms": [r for r in rooms if r is not None],
            "modules": self.odd_modules + modules,
        }
        if _has_camera(self.home, s.id):
            seen = self._ts() - (3600 if s.away else 60)
            home["persons"] = [
                {"id": p, "last_seen": seen, "out_of_sight": s.away} for p, _ in _persons(s.id)
            ]
        body: dict[str, Any] = {"home": home}
        if errors:
            body["errors"] = errors
        return body

    def _room_status(self, s: SimStructure, t: SimThermostat) -> dict[str, Any] | None:
        if t.structure_id != s.id:
            return None
        mode, setpoint, start, end = self._room_mode(t)
        room: dict[str, Any] = {
            "id": t.id,
            "reachable": t.online,
            "therm_measured_temperature": round(t.ambient_c, 1),
            "therm_setpoint_mode": mode,
            "therm_setpoint_start_time": start,
            "therm_setpoint_end_time": end,
            "heating_power_request": 100 if t.hvac_state == "heating" else 0,
            "anticipating": False,
            "open_window": False,
        }
        if setpoint is not None:
            room["therm_setpoint_temperature"] = setpoint
        return room

    def _room_mode(self, t: SimThermostat) -> tuple[str, float | None, int, int]:
        """(therm_setpoint_mode, setpoint, start, end) of a thermostat's room."""
        if t.mode == "off":
            return "off", None, 0, 0
        if t.mode == "eco":
            home_mode = self.modes[t.structure_id].therm_mode
            if home_mode == "hg":
                return "hg", HG_TEMP_C, 0, 0
            return "away", t.eco_low_c, 0, 0
        manual = self.manual.get(t.id)
        if manual is not None:
            return manual.mode, t.target_c, manual.start, manual.end
        return "schedule", t.target_c, 0, 0

    def _getevents(self, params: dict[str, Any]) -> dict[str, Any]:
        s = self._structure(params)
        size = int(params.get("size", 30))
        events = list(reversed(self.events.get(s.id, [])))  # newest first
        until = params.get("event_id")
        if until:
            ids = [e["id"] for e in events]
            events = events[: ids.index(until) + 1] if until in ids else events
        return {"home": {"id": s.id, "events": events[:size]}}

    def _getscenarios(self, params: dict[str, Any]) -> dict[str, Any]:
        s = self._structure(params)  # the built-in scenarios [M]
        scenarios = [
            {"type": kind, "id": kind, "category": "default", "customizable": True}
            for kind in ("home", "away", "wake_up", "bedtime")
        ]
        return {"home": {"id": s.id, "scenarios": scenarios}}

    # -- writes --------------------------------------------------------------------------

    def _setthermmode(self, params: dict[str, Any]) -> None:
        s = self._structure(params)
        mode = params.get("mode")
        if not mode:
            raise _missing("mode")
        if mode not in ("schedule", "away", "hg"):
            raise _invalid("mode not authorized")
        schedule_id = params.get("schedule_id")
        if schedule_id is not None:
            self._select(s.id, str(schedule_id))
        self.set_therm_mode(s.id, str(mode))

    def set_therm_mode(self, structure_id: str, mode: str) -> None:
        """The home's heating mode: away and hg put every room in eco, schedule takes them back."""
        self.modes[structure_id].therm_mode = mode
        for t in self.home.thermostats.values():
            if t.structure_id != structure_id:
                continue
            self.manual.pop(t.id, None)
            if mode in ("away", "hg"):
                self.home.set_mode(t.id, "eco")
            elif t.mode == "eco":
                previous = t.previous_mode if t.previous_mode not in (None, "eco") else "heat"
                self.home.set_mode(t.id, previous)
        self.home.changed()

    def _room(self, params: Mapping[str, Any]) -> SimThermostat:
        s = self._structure(params)
        room_id = params.get("room_id")
        if not room_id:
            raise _missing("room_id")
        t = self.home.thermostats.get(str(room_id))
        if t is None or t.structure_id != s.id:
            raise _invalid()
        return t

    def _setroomthermpoint(self, params: dict[str, Any]) -> None:
        t = self._room(params)
        mode = params.get("mode")
        if not mode:
            raise _missing("mode")
        temp = params.get("temp")
        self.set_room(
            t, str(mode), float(temp) if temp is not None else None, params.get("endtime")
        )

    def set_room(self, t: SimThermostat, mode: str, temp: float | None, end: Any) -> None:
        """Apply a room setpoint mode (manual, max, home, off), as Netatmo would."""
        if mode not in ("manual", "max", "home", "off", "hg"):
            raise _invalid("mode not authorized")
        if not t.online:
            raise NetatmoError(400, 41, "Device is unreachable")  # [M]
        now = self._ts()
        if mode == "off":
            self.manual.pop(t.id, None)
            self.home.set_mode(t.id, "off")
            return
        if mode == "home":
            self._end_manual(t)
            if t.mode == "off":
                self.home.set_mode(t.id, "heat")
            if self.modes[t.structure_id].therm_mode in ("away", "hg"):
                self.home.set_mode(t.id, "eco")
            return
        if mode == "manual" and temp is None:
            raise _missing("temp")
        # hg: this room alone at frost guard (what pyatmo's room frost guard sends)
        fixed = {"max": MAX_SETPOINT_C, "hg": HG_TEMP_C}
        celsius = fixed[mode] if mode in fixed else float(temp or 0)
        if not MIN_SETPOINT_C <= celsius <= MAX_SETPOINT_C:
            raise _invalid(f"temp {celsius:g} is out of range")  # [M]
        until = int(float(end)) if end not in (None, "") else now + MANUAL_DEFAULT_MIN * 60
        if until <= now:
            raise NetatmoError(400, 25, "Invalid date")  # [M]
        previous = self.manual.get(t.id)
        schedule_c = previous.schedule_c if previous is not None else t.target_c
        self.manual[t.id] = Manual(mode, now, until, schedule_c)
        if t.mode != "heat":
            self.home.set_mode(t.id, "heat")
        self.home.set_target(t.id, celsius)

    def _end_manual(self, t: SimThermostat) -> None:
        manual = self.manual.pop(t.id, None)
        if manual is not None:
            self.home.set_target(t.id, manual.schedule_c)

    def _expire_manual(self) -> None:
        now = self._ts()
        for room_id, manual in list(self.manual.items()):
            if manual.end <= now and room_id in self.home.thermostats:
                self._end_manual(self.home.thermostats[room_id])

    def _setstate(self, params: dict[str, Any]) -> dict[str, Any] | None:
        home = params.get("home")
        if not isinstance(home, dict):
            raise NetatmoError(400, 10, "home is missing")
        s = self._structure({"home_id": home.get("id")})
        errors: list[dict[str, Any]] = []
        for room in home.get("rooms", []):
            t = self._room({"home_id": s.id, "room_id": room.get("id")})
            mode = room.get("therm_setpoint_mode")
            if not mode:
                raise _missing("therm_setpoint_mode")
            temp = room.get("therm_setpoint_temperature")
            end = room.get("therm_setpoint_end_time")
            self.set_room(t, str(mode), float(temp) if temp is not None else None, end)
        for module in home.get("modules", []):
            error = self._set_module(s, module)
            if error is not None:
                errors.append(error)
        return {"home": {"id": s.id}, "errors": errors} if errors else None

    def _set_module(self, s: SimStructure, module: Mapping[str, Any]) -> dict[str, Any] | None:
        camera = self.home.cameras.get(str(module.get("id")))
        if camera is None or camera.structure_id != s.id:
            raise _invalid(f"Invalid device_id, {module.get('id')}")
        monitoring = module.get("monitoring")
        if monitoring not in ("on", "off"):
            raise _invalid(f"cannot set property for module {camera.id}")
        if not camera.online:
            return {"code": 6, "id": camera.id, "command": "command/changestatus"}
        if camera.streaming == (monitoring == "on"):
            message = f"Already {monitoring}"
            return {
                "code": 23,
                "message": message,
                "id": camera.id,
                "command": "command/changestatus",
            }
        self.home.set_streaming(camera.id, monitoring == "on")
        return None

    def _createnewhomeschedule(self, params: dict[str, Any]) -> dict[str, Any]:
        s = self._structure(params)
        for name in ("name", "hg_temp", "away_temp"):
            if params.get(name) in (None, ""):
                raise _missing(name)
        schedule_id = secrets.token_hex(12)
        self.modes[s.id].schedules.append(
            {
                "id": schedule_id,
                "name": params["name"],
                "type": "therm",
                "hg_temp": float(params["hg_temp"]),
                "away_temp": float(params["away_temp"]),
                "zones": params.get("zones") or [],
                "timetable": params.get("timetable") or [],
            }
        )
        return {"schedule_id": schedule_id}

    def _switchhomeschedule(self, params: dict[str, Any]) -> None:
        s = self._structure(params)
        schedule_id = params.get("schedule_id")
        if not schedule_id:
            raise _missing("schedule_id")
        self._select(s.id, str(schedule_id))
        self.home.changed()

    def _select(self, structure_id: str, schedule_id: str) -> None:
        schedules = self.modes[structure_id].schedules
        if not any(x["id"] == schedule_id and x.get("type") == "therm" for x in schedules):
            raise _invalid(f"schedule {schedule_id} is not therm schedule")
        for schedule in schedules:
            schedule["selected"] = schedule["id"] == schedule_id

    def _setpersonsaway(self, params: dict[str, Any]) -> None:
        s = self._structure(params)
        person = params.get("person_id")
        if person and person not in dict(_persons(s.id)):
            raise _invalid()
        if not person:  # the whole home is empty; one person alone is not modelled
            self.home.set_away(s.id, True)

    def _setpersonshome(self, params: dict[str, Any]) -> None:
        s = self._structure(params)
        people = params.get("person_ids[]", [])
        people = people if isinstance(people, list) else [people]
        if any(p not in dict(_persons(s.id)) for p in people):
            raise _invalid()
        self.home.set_away(s.id, False)

    def _webhooks_v1(self, request: http.Request) -> http.Response:
        """The current webhook registration (pyatmo 9.9): POST `{url}` (409 while another URL
        is registered), DELETE, and GET listing the registered URLs."""
        self._grant(request)
        match request.method:
            case "GET":
                listed = [{"url": self.webhook_url}] if self.webhook_url else []
                return http.Response(200, {"body": listed})
            case "DELETE":
                self.webhook_url = None
                return http.Response(204, b"")
            case "POST":
                url = _params(request).get("url")
                if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                    return http.Response(400, {"error": {"code": "WH001", "message": "Bad url"}})
                if self.refuse_webhooks:
                    raise NetatmoError(400, 21, "Invalid webhook url")
                if self.webhook_url not in (None, url):
                    conflict = {"code": "WH009", "message": "A webhook is already registered"}
                    return http.Response(409, {"error": conflict})
                self.webhooks_v1_registrations += 1
                self._addwebhook({"url": url})
                return http.Response(200, {"status": "ok"})
        return http.Response(405, {"error": {"code": 405, "message": "Method not allowed"}})

    def _addwebhook(self, params: dict[str, Any]) -> None:
        url = params.get("url")
        if not url:
            raise _missing("url")
        if self.refuse_webhooks:
            raise NetatmoError(400, 21, "Invalid webhook url")
        self.webhook_url = str(url)
        self._deliver({"push_type": "webhook_activation", "user_id": USER_ID})

    def _dropwebhook(self, params: dict[str, Any]) -> None:
        self.webhook_url = None

    # -- events and webhooks ---------------------------------------------------------------

    def record(self, structure_id: str, event: dict[str, Any], push_type: str) -> dict[str, Any]:
        """Add an event to a home's history and push it to the webhook, if one is set."""
        entry = {"id": secrets.token_hex(12), "time": self._ts(), **event}
        events = self.events.setdefault(structure_id, [])
        events.append(entry)
        del events[:-EVENTS_KEPT]
        self._deliver(
            {
                "user_id": USER_ID,
                "home_id": structure_id,
                "event_id": entry["id"],
                "event_type": entry["type"],
                "device_id": entry["module_id"],
                "push_type": push_type,
                "message": entry.get("message", ""),
                **({"sub_type": entry["sub_type"]} if "sub_type" in entry else {}),
            }
        )
        return entry

    def _deliver(self, payload: dict[str, Any]) -> None:
        if self.webhook_url is None:
            return
        try:
            self._outbox_send.send_nowait(payload)
        except anyio.WouldBlock:
            log.warning("netatmo simulator dropped a webhook (outbox full)")

    async def send_webhooks(self) -> None:
        """POST each queued webhook to the registered URL, signed (runs as a server task)."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            async for payload in self._outbox:
                url = self.webhook_url
                if url is None:
                    continue
                body = json.dumps(payload).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-Netatmo-secret": signature(self.client_secret, body),
                }
                try:
                    await client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    log.info("netatmo simulator webhook not delivered", error=type(exc).__name__)
                self.webhooks_sent.append(payload)

    async def watch(self) -> None:
        """Turn the home's alarm and camera changes into events (runs as a server task)."""
        while True:
            self._seen_version = await self.home.wait_changed(self._seen_version)
            self.observe()

    def observe(self) -> None:
        """Record an event for every alarm or camera change since the last look."""
        alarms = _alarm_states(self.home)
        for alarm_id, (smoke, co) in alarms.items():
            a = self.home.alarms[alarm_id]
            before = self._seen_alarms.get(alarm_id, ("ok", "ok"))
            if smoke != before[0] and SMOKE_SUB_TYPE[smoke] != SMOKE_SUB_TYPE[before[0]]:
                self._alarm_event(a, "smoke", "NSD", SMOKE_SUB_TYPE[smoke])
            if co != before[1]:
                self._alarm_event(a, "co_detected", "NCO", CO_SUB_TYPE[co])
        self._seen_alarms = alarms
        cameras = _camera_states(self.home)
        for camera_id, (last_event, last_chime) in cameras.items():
            c = self.home.cameras[camera_id]
            before_event, before_chime = self._seen_cameras.get(camera_id, (None, None))
            if last_event is not None and last_event != before_event:
                kind = "person" if last_event.person else "movement"
                module = "NDB" if c.is_doorbell else "NACamera"
                message = f"{'Person' if last_event.person else 'Movement'} seen by {c.name}"
                self.record(
                    c.structure_id,
                    {"type": kind, "module_id": c.id, "message": message},
                    f"{module}-{kind}",
                )
            if last_chime is not None and last_chime != before_chime:
                self.record(
                    c.structure_id,
                    {"type": "incoming_call", "module_id": c.id, "message": f"{c.name} rang"},
                    "NDB-incoming_call",
                )
        self._seen_cameras = cameras
        for structure in self.home.structures.values():
            if self._seen_away.get(structure.id, False) != structure.away:
                self._presence_events(structure)
            self._seen_away[structure.id] = structure.away

    def _presence_events(self, s: SimStructure) -> None:
        """Everyone left, or someone came home: what a Security camera reports."""
        camera = next((c for c in self.home.cameras.values() if c.structure_id == s.id), None)
        if camera is None:
            return
        kind = "person_away" if s.away else "person_home"
        names = " and ".join(name for _, name in _persons(s.id))
        message = f"{names} {'left' if s.away else 'are home'}"
        module = "NDB" if camera.is_doorbell else "NACamera"
        self.record(
            s.id, {"type": kind, "module_id": camera.id, "message": message}, f"{module}-{kind}"
        )

    def _alarm_event(self, a: SimSmokeCoAlarm, kind: str, module_type: str, sub_type: int) -> None:
        suffix = "smoke" if module_type == "NSD" else "co"
        what = {"smoke": "Smoke", "co_detected": "Carbon monoxide"}[kind]
        state = "cleared" if sub_type == 0 else "detected"
        self.record(
            a.structure_id,
            {
                "type": kind,
                "module_id": f"{a.id}-{suffix}",
                "sub_type": sub_type,
                "message": f"{what} {state} by {a.name}",
            },
            f"{module_type}-{kind}",
        )


def signature(secret: str, body: bytes) -> str:
    """`X-Netatmo-secret`: the hex HMAC-SHA256 of the raw body, keyed with the client secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _home_mode(home: SimHome, structure_id: str) -> HomeMode:
    thermostats = [t for t in home.thermostats.values() if t.structure_id == structure_id]
    away = thermostats[0].eco_low_c if thermostats else 12.0
    zone_rooms = [{"id": t.id, "therm_setpoint_temperature": t.target_c} for t in thermostats]
    schedule = {
        "id": f"schedule-{structure_id}",
        "name": "Standard",
        "type": "therm",
        "selected": True,
        "default": True,
        "hg_temp": HG_TEMP_C,
        "away_temp": away,
        "zones": [{"id": 0, "type": 0, "name": "Comfort", "rooms": zone_rooms}],
        "timetable": [{"zone_id": 0, "m_offset": 0}],
    }
    therm_mode = "away" if thermostats and all(t.mode == "eco" for t in thermostats) else "schedule"
    return HomeMode(therm_mode, [schedule])


def _persons(structure_id: str) -> list[tuple[str, str]]:
    return [(f"{structure_id}-person-1", "Alex"), (f"{structure_id}-person-2", "Sam")]


def _has_camera(home: SimHome, structure_id: str) -> bool:
    return any(c.structure_id == structure_id for c in home.cameras.values())


def _alarm_states(home: SimHome) -> dict[str, tuple[str, str]]:
    return {a.id: (a.smoke, a.co) for a in home.alarms.values()}


def _camera_states(home: SimHome) -> dict[str, tuple[Any, datetime | None]]:
    return {c.id: (c.last_event, c.last_chime) for c in home.cameras.values()}


def _params(request: http.Request) -> dict[str, Any]:
    """Query, form and JSON parameters in one dict; a repeated key (`x[]`) is a list."""
    params: dict[str, Any] = dict(request.query)
    content_type = request.headers.get("content-type", "")
    if request.body and "json" in content_type:
        try:
            body = request.json()
        except ValueError:
            raise NetatmoError(400, 40, "Invalid JSON encoding") from None  # [M]
        if isinstance(body, dict):
            params |= body
    elif request.body:
        for key, value in parse_qsl(request.body.decode("utf-8", "replace")):
            if key.endswith("[]"):
                params.setdefault(key, []).append(value)
            else:
                params[key] = value
    return params


@asynccontextmanager
async def serve(
    home: SimHome,
    *,
    physics_interval_s: float | None = None,
    port: int = 0,
    **options: Any,
) -> AsyncIterator[NetatmoSimulator]:
    """Serve the Netatmo API for `home` on 127.0.0.1:port (0 picks a free port)."""
    simulator = NetatmoSimulator(home, **options)
    async with front.serve(simulator, physics_interval_s=physics_interval_s, port=port):
        yield simulator


# -- the /_sim/ control surface ----------------------------------------------------------------


_READS: control.Reads[NetatmoSimulator] = {
    **front.HOME_READS,
    "writes": lambda s: [{"endpoint": e, "params": p} for e, p in s.writes],
    "requests": lambda s: [
        {"at": r.at, "endpoint": r.endpoint, "status": r.status} for r in s.requests
    ],
    "events": lambda s: s.events,
}

_CONTROLS: dict[str, front.Control] = {
    **front.HOME_CONTROLS,
    "expire_tokens": lambda s, a: s.expire_access_tokens(),
    "revoke": lambda s, a: s.revoke(),
}
