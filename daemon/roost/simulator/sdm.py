"""The Google Smart Device Management (SDM) front: OAuth, the SDM REST API and Cloud Pub/Sub
events over a `SimHome`, on loopback (PROTOCOLS.md §3).

One server plays three Google hosts under path prefixes:

- `/oauth2/v4/token`: the OAuth refresh grant; access tokens expire after `token_lifetime_s`.
- `/smartdevicemanagement/v1/enterprises/<project>/…`: list/get structures, rooms and devices,
  and `devices/<id>:executeCommand`, with Google's error envelope, the trait commands'
  preconditions and the sandbox quotas (per-device trait-command QPM, executeCommand QPM,
  list/get QPM; a window starts with its first request and lasts a minute).
- `/pubsub/v1/projects/<p>/subscriptions/<s>:pull|:acknowledge|:modifyAckDeadline`: the
  subscription the SDM events go to (see `pubsub`).

Events start after the first `devices.list`, as SDM's do. Every change of the home becomes a
message: `resourceUpdate.traits` with the traits that changed, camera/doorbell events in
threads (STARTED, UPDATED when the event grows, ENDED `thread_end_s` later carrying the same
events again), and `relationUpdate` when a device is added, removed or moved. SimHome's smoke
and CO alarms are not shown: SDM does not support Nest Protect. Messages and rules tagged [M]
in PROTOCOLS.md are the simulator's best guess.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

import anyio
import structlog

from roost.simulator import control, front, http, pubsub
from roost.simulator.front import Front
from roost.simulator.home import (
    SimCamera,
    SimCameraEvent,
    SimHome,
    SimStructure,
    SimThermostat,
)
from roost.simulator.oauth import CodeGrants
from roost.simulator.pubsub import Subscription, google_error, rfc3339

log = structlog.get_logger(__name__)

TOKEN_PATH = "/oauth2/v4/token"
# The consent page (Google's is https://nestservices.google.com/partnerconnections/{project}/auth).
AUTHORIZE_PREFIX = "/partnerconnections/"
SDM_PREFIX = "/smartdevicemanagement/v1"
PUBSUB_PREFIX = "/pubsub/v1"
SCOPES = "https://www.googleapis.com/auth/sdm.service https://www.googleapis.com/auth/pubsub"
USER_ID = "AVPHwEuBfnPOnTqzVFT4IONX2Qqhu9EJ4ubO-bNnQ-yi"

TRAIT = "sdm.devices.traits."
COMMAND = "sdm.devices.commands."
EVENT = "sdm.devices.events."
MIN_SETPOINT_C, MAX_SETPOINT_C = 9.0, 32.0  # [M] the Nest thermostats' range
MIN_RANGE_GAP_C = 1.5  # [M]
MAX_FAN_DURATION_S = 43200  # [M]
_DURATION = re.compile(r"^(\d+)(?:\.\d+)?s$")

_MODE_TO_SDM = {"heat": "HEAT", "cool": "COOL", "heat-cool": "HEATCOOL", "off": "OFF"}
_MODE_FROM_SDM = {sdm: mode for mode, sdm in _MODE_TO_SDM.items()}
_HVAC_TO_SDM = {"heating": "HEATING", "cooling": "COOLING", "off": "OFF"}


class SdmError(Exception):
    """A refusal, answered with Google's error envelope."""

    def __init__(self, status: int, rpc_status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.rpc_status, self.message = status, rpc_status, message

    def response(self) -> http.Response:
        return google_error(self.status, self.rpc_status, self.message)


def _invalid(message: str) -> SdmError:
    return SdmError(400, "INVALID_ARGUMENT", message)


def _precondition(message: str) -> SdmError:
    return SdmError(400, "FAILED_PRECONDITION", message)


def _not_found(what: str) -> SdmError:
    return SdmError(404, "NOT_FOUND", f"{what} not found.")


# -- the resources ----------------------------------------------------------------------------


def room_id(room: str) -> str:
    return "room-" + "-".join(room.lower().split())


@dataclass(frozen=True)
class Names:
    """Resource names of one enterprise (project)."""

    project_id: str

    @property
    def enterprise(self) -> str:
        return f"enterprises/{self.project_id}"

    def structure(self, structure_id: str) -> str:
        return f"{self.enterprise}/structures/{structure_id}"

    def room(self, structure_id: str, room: str) -> str:
        return f"{self.structure(structure_id)}/rooms/{room_id(room)}"

    def device(self, device_id: str) -> str:
        return f"{self.enterprise}/devices/{device_id}"


def structure_resource(names: Names, s: SimStructure) -> dict[str, Any]:
    return {
        "name": names.structure(s.id),
        "traits": {"sdm.structures.traits.Info": {"customName": s.name}},
    }


def room_resources(names: Names, home: SimHome, structure_id: str) -> list[dict[str, Any]]:
    rooms = sorted({d.room for d in _devices(home) if d.structure_id == structure_id})
    return [
        {
            "name": names.room(structure_id, room),
            "traits": {"sdm.structures.traits.RoomInfo": {"customName": room}},
        }
        for room in rooms
    ]


def device_resource(names: Names, device: SimThermostat | SimCamera) -> dict[str, Any]:
    if isinstance(device, SimThermostat):
        kind, traits = "THERMOSTAT", thermostat_traits(device)
    else:
        kind, traits = ("DOORBELL" if device.is_doorbell else "CAMERA"), camera_traits(device)
    parent = names.room(device.structure_id, device.room)
    return {
        "name": names.device(device.id),
        "type": f"sdm.devices.types.{kind}",
        "assignee": parent,
        "traits": traits,
        "parentRelations": [{"parent": parent, "displayName": device.room}],
    }


def underlying_mode(t: SimThermostat) -> str:
    """ThermostatMode.mode: in eco SDM keeps showing the mode eco will return to."""
    mode = (t.previous_mode or "heat") if t.mode == "eco" else t.mode
    return _MODE_TO_SDM.get(mode, "HEAT")


def available_modes(t: SimThermostat) -> list[str]:
    modes = ["HEAT"] if t.can_heat else []
    modes += ["COOL"] if t.can_cool else []
    modes += ["HEATCOOL"] if t.can_heat and t.can_cool else []
    return [*modes, "OFF"]


def thermostat_traits(t: SimThermostat) -> dict[str, Any]:
    eco = t.mode == "eco"
    mode = underlying_mode(t)
    setpoint: dict[str, float] = {}
    if not eco and mode in ("HEAT", "HEATCOOL"):
        setpoint["heatCelsius"] = t.target_low_c if mode == "HEATCOOL" else t.target_c
    if not eco and mode in ("COOL", "HEATCOOL"):
        setpoint["coolCelsius"] = t.target_high_c if mode == "HEATCOOL" else t.target_c
    traits: dict[str, Any] = {
        TRAIT + "Info": {"customName": t.name},
        TRAIT + "Connectivity": {"status": "ONLINE" if t.online else "OFFLINE"},
        TRAIT + "Humidity": {"ambientHumidityPercent": t.humidity},
        # The sim reports tenths of a degree, so physics does not publish every tick [M].
        TRAIT + "Temperature": {"ambientTemperatureCelsius": round(t.ambient_c, 1)},
        TRAIT + "Settings": {"temperatureScale": "CELSIUS"},
        TRAIT + "ThermostatMode": {"mode": mode, "availableModes": available_modes(t)},
        TRAIT + "ThermostatEco": {
            "availableModes": ["OFF", "MANUAL_ECO"],
            "mode": "MANUAL_ECO" if eco else "OFF",
            "heatCelsius": t.eco_low_c,
            "coolCelsius": t.eco_high_c,
        },
        TRAIT + "ThermostatHvac": {"status": _HVAC_TO_SDM[t.hvac_state]},
        TRAIT + "ThermostatTemperatureSetpoint": setpoint,
    }
    if t.has_fan:
        fan: dict[str, Any] = {"timerMode": "ON" if t.fan_timer_active else "OFF"}
        if t.fan_timer_active and t.fan_timer_timeout is not None:
            fan["timerTimeout"] = rfc3339(t.fan_timer_timeout)
        traits[TRAIT + "Fan"] = fan
    return traits


def camera_traits(c: SimCamera) -> dict[str, Any]:
    traits: dict[str, Any] = {
        TRAIT + "Info": {"customName": c.name},
        TRAIT + "CameraLiveStream": {
            "maxVideoResolution": {"width": 640, "height": 480},
            "videoCodecs": ["H264"],
            "audioCodecs": ["AAC"],
        },
        TRAIT + "CameraImage": {"maxImageResolution": {"width": 1920, "height": 1200}},
        TRAIT + "CameraPerson": {},
        TRAIT + "CameraSound": {},
        TRAIT + "CameraMotion": {},
    }
    if c.is_doorbell:  # like a battery Nest Doorbell: clip previews instead of event images
        traits[TRAIT + "DoorbellChime"] = {}
        traits[TRAIT + "CameraClipPreview"] = {}
    else:
        traits[TRAIT + "CameraEventImage"] = {}
    return traits


def _devices(home: SimHome) -> Iterator[SimThermostat | SimCamera]:
    yield from home.thermostats.values()
    yield from home.cameras.values()


# -- commands ----------------------------------------------------------------------------------


def execute(home: SimHome, device: SimThermostat | SimCamera, body: Any) -> dict[str, Any]:
    """Apply one `:executeCommand` body to the home, or raise SdmError; the response body."""
    if not isinstance(body, dict) or not isinstance(body.get("command"), str):
        raise _invalid("Invalid command: the request needs a command name.")
    command, params = body["command"], body.get("params", {})
    if not isinstance(params, dict):
        raise _invalid("Invalid value at 'params' (type.googleapis.com/google.protobuf.Struct).")
    traits = device_resource(Names("-"), device)["traits"]
    trait = TRAIT + command.removeprefix(COMMAND).rpartition(".")[0]
    if not command.startswith(COMMAND) or trait not in traits:
        raise _invalid(f"Command {command} is not supported by this device.")
    if isinstance(device, SimCamera):
        return _camera_command(device, command, home.clock())
    if not device.online:
        raise _precondition("Device is offline.")
    _THERMOSTAT_COMMANDS[command.removeprefix(COMMAND)](home, device, command, params)
    return {}


def _camera_command(camera: SimCamera, command: str, now: datetime) -> dict[str, Any]:
    if command != COMMAND + "CameraLiveStream.GenerateRtspStream":
        raise _invalid(f"Command {command} is not supported by the simulator.")
    token = uuid.uuid4().hex
    expires = now + timedelta(minutes=5)
    return {
        "results": {
            "streamUrls": {"rtspUrl": f"rtsps://sim.invalid/{camera.id}?auth={token}"},
            "streamExtensionToken": uuid.uuid4().hex,
            "streamToken": token,
            "expiresAt": rfc3339(expires),
        }
    }


def _set_mode(home: SimHome, t: SimThermostat, command: str, params: dict[str, Any]) -> None:
    mode = params.get("mode")
    if mode not in available_modes(t):
        raise _invalid(f"Invalid mode value {mode!r} for {command}.")
    home.set_mode(t.id, _MODE_FROM_SDM[str(mode)])  # [M] leaving eco, as the app does


def _set_eco(home: SimHome, t: SimThermostat, command: str, params: dict[str, Any]) -> None:
    mode = params.get("mode")
    if mode not in ("MANUAL_ECO", "OFF"):
        raise _invalid(f"Invalid mode value {mode!r} for {command}.")
    if mode == "MANUAL_ECO" and t.mode == "off":
        raise _precondition("Command not allowed in current thermostat mode.")
    if mode == "MANUAL_ECO" and t.mode != "eco":
        home.set_mode(t.id, "eco")
    elif mode == "OFF" and t.mode == "eco":
        home.set_mode(t.id, t.previous_mode or "heat")


def _celsius(command: str, params: dict[str, Any], name: str) -> float:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"Invalid value at 'params.{name}' for {command}.")
    if not MIN_SETPOINT_C <= value <= MAX_SETPOINT_C:
        raise _invalid(f"{name} {value} is out of range for {command}.")
    return float(value)


def _check_setpoint_mode(t: SimThermostat, command: str, wanted: str) -> None:
    if t.mode == "eco":
        raise _precondition(f"{command} command not allowed when thermostat in MANUAL_ECO mode.")
    if _MODE_TO_SDM.get(t.mode) != wanted:
        raise _precondition(f"{command} command not allowed in current thermostat mode.")


def _set_heat(home: SimHome, t: SimThermostat, command: str, params: dict[str, Any]) -> None:
    _check_setpoint_mode(t, command, "HEAT")
    home.set_target(t.id, _celsius(command, params, "heatCelsius"))


def _set_cool(home: SimHome, t: SimThermostat, command: str, params: dict[str, Any]) -> None:
    _check_setpoint_mode(t, command, "COOL")
    home.set_target(t.id, _celsius(command, params, "coolCelsius"))


def _set_range(home: SimHome, t: SimThermostat, command: str, params: dict[str, Any]) -> None:
    _check_setpoint_mode(t, command, "HEATCOOL")
    heat = _celsius(command, params, "heatCelsius")
    cool = _celsius(command, params, "coolCelsius")
    if cool - heat < MIN_RANGE_GAP_C:
        raise _invalid(f"coolCelsius must be at least {MIN_RANGE_GAP_C} above heatCelsius.")
    home.set_range(t.id, heat, cool)


def _set_fan(home: SimHome, t: SimThermostat, command: str, params: dict[str, Any]) -> None:
    timer_mode = params.get("timerMode")
    if timer_mode not in ("ON", "OFF"):
        raise _invalid(f"Invalid timerMode {timer_mode!r} for {command}.")
    if timer_mode == "OFF":
        home.set_fan_timer(t.id, active=False)
        return
    duration = params.get("duration", "900s")
    match = _DURATION.match(duration) if isinstance(duration, str) else None
    if match is None or not 1 <= int(match.group(1)) <= MAX_FAN_DURATION_S:
        raise _invalid(f"Invalid duration {duration!r} for {command}.")
    minutes = max(1, round(int(match.group(1)) / 60))
    home.set_fan_timer(t.id, active=True, duration_min=minutes)


_ThermostatCommand = Callable[[SimHome, SimThermostat, str, dict[str, Any]], None]
_THERMOSTAT_COMMANDS: dict[str, _ThermostatCommand] = {
    "ThermostatMode.SetMode": _set_mode,
    "ThermostatEco.SetMode": _set_eco,
    "ThermostatTemperatureSetpoint.SetHeat": _set_heat,
    "ThermostatTemperatureSetpoint.SetCool": _set_cool,
    "ThermostatTemperatureSetpoint.SetRange": _set_range,
    "Fan.SetTimer": _set_fan,
}


# -- quotas --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quotas:
    """Sandbox limits per minute (PROTOCOLS.md §3.4)."""

    execute_per_min: int = 10
    command_per_device_per_min: int = 5
    devices_get_per_min: int = 10
    list_per_min: int = 5
    window_s: float = 60.0


class _Windows:
    """Fixed windows: a key's window starts with its first request and lasts window_s."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._windows: dict[tuple[str, ...], tuple[float, int]] = {}

    def allows(self, key: tuple[str, ...], limit: int) -> bool:
        return self._current(key)[1] < limit

    def take(self, key: tuple[str, ...]) -> None:
        start, count = self._current(key)
        self._windows[key] = (start, count + 1)

    def _current(self, key: tuple[str, ...]) -> tuple[float, int]:
        now = anyio.current_time()
        start, count = self._windows.get(key, (now, 0))
        return (now, 0) if now - start >= self.window_s else (start, count)


# -- events --------------------------------------------------------------------------------------


@dataclass
class _Thread:
    """An event thread (one camera event, or one chime) and what it has reported."""

    thread_id: str
    device: str
    events: dict[str, dict[str, Any]]
    updates: int = 0


@dataclass
class _Published:
    """What the subscription has been told so far, to publish only differences."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    camera_events: dict[str, SimCameraEvent | None] = field(default_factory=dict)
    chimes: dict[str, datetime | None] = field(default_factory=dict)
    threads: dict[str, _Thread] = field(default_factory=dict)  # by device: the open one


# -- the simulator -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandRequest:
    """An `:executeCommand` the simulator received, as answered."""

    device: str
    command: str
    params: dict[str, Any]
    status: int
    rpc_status: str = ""


class SdmSimulator(Front):
    """SDM, its OAuth server and its Pub/Sub subscription over one `SimHome`."""

    def __init__(
        self,
        home: SimHome,
        *,
        project_id: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        subscription: str,
        token_lifetime_s: float,
        ack_deadline_s: float,
        pull_wait_s: float,
        thread_end_s: float,
        quotas: Quotas,
    ) -> None:
        self.home = home
        self.names = Names(project_id)
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_token = refresh_token
        self.token_lifetime_s = token_lifetime_s
        self.thread_end_s = thread_end_s
        self.quotas = quotas
        self.subscription = Subscription(
            subscription, ack_deadline_s=ack_deadline_s, max_wait_s=pull_wait_s, clock=home.clock
        )
        self.faults = self.subscription.faults  # "read": a pull
        self.commands: list[CommandRequest] = []
        self.published: list[dict[str, Any]] = []  # every SDM event payload, in publish order
        self.token_requests = 0
        self.list_calls = 0
        # structure objects served after the home's own by structures.list, whatever their
        # shape: ones roost cannot read beside the ones it can
        self.odd_structures: list[Any] = []
        self._access_tokens: dict[str, float] = {}  # token → expiry (anyio.current_time())
        self._windows = _Windows(quotas.window_s)
        self._events_on = False
        self._sent = _Published()
        self._tokens = 0
        self.code_grants = CodeGrants(client_id, pkce_required=True)  # `roost auth sdm`

    def start(self, server: http.Server) -> None:
        server.start_soon(partial(self.run_publisher, self.home.version), name="sdm publisher")

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def authorize_url(self) -> str:
        return f"{self.url}{AUTHORIZE_PREFIX}{self.names.project_id}/auth"

    @property
    def api_url(self) -> str:
        return self.url + SDM_PREFIX

    @property
    def pubsub_url(self) -> str:
        return self.url + PUBSUB_PREFIX

    # -- controls --------------------------------------------------------------------------

    def revoke(self) -> None:
        """The user revoked the grant: the refresh token and every access token stop working."""
        self.refresh_token = "revoked-" + uuid.uuid4().hex
        self._access_tokens.clear()

    def expire_access_tokens(self) -> None:
        self._access_tokens.clear()

    def publish_event(self, payload: dict[str, Any]) -> None:
        """Publish an SDM event payload as is (a fixture, a crafted or a stale message)."""
        self.published.append(payload)
        self.subscription.publish(json.dumps(payload).encode())

    # -- requests --------------------------------------------------------------------------

    async def handle(self, request: http.Request) -> http.Answer:
        try:
            response = await self._route(request)
        except SdmError as error:
            response = error.response()
        if isinstance(response, http.Hangup):
            return response
        date = format_datetime(self.home.clock(), usegmt=True)
        return dataclasses.replace(response, headers={**response.headers, "Date": date})

    async def _route(self, request: http.Request) -> http.Answer:
        if request.path == TOKEN_PATH:
            return self._token(request)
        if request.path.startswith(AUTHORIZE_PREFIX) and request.method == "GET":
            return self.code_grants.authorize(request)
        if request.path.startswith("/_sim/"):
            return control.handle(self, request, _READS, _CONTROLS, self.home.version)
        self._authorize(request)
        if request.path.startswith(PUBSUB_PREFIX + "/"):
            path = request.path.removeprefix(PUBSUB_PREFIX)
            subscriptions = {self.subscription.name: self.subscription}
            return await pubsub.handle(subscriptions, dataclasses.replace(request, path=path))
        if request.path.startswith(SDM_PREFIX + "/"):
            return self._sdm(request, request.path.removeprefix(SDM_PREFIX + "/"))
        raise _not_found(f"Path {request.path}")

    def _authorize(self, request: http.Request) -> None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        expiry = self._access_tokens.get(token)
        if expiry is None or expiry <= anyio.current_time():
            raise SdmError(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )

    # -- OAuth -----------------------------------------------------------------------------

    def _token(self, request: http.Request) -> http.Response:
        self.token_requests += 1
        form = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        if request.method != "POST":
            return http.Response(405, {"error": "invalid_request"})
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return http.Response(
                401,
                {"error": "invalid_client", "error_description": "The OAuth client was not found."},
            )
        if form.get("grant_type") == "authorization_code":
            error = self.code_grants.redeem(form)
            if error is not None:
                return http.Response(400, {"error": error, "error_description": "Bad Request"})
            form["refresh_token"] = self.refresh_token  # the grant's refresh token, below
        elif form.get("grant_type") != "refresh_token":
            description = f"Invalid grant_type: {form.get('grant_type', '')}"
            return http.Response(
                400, {"error": "unsupported_grant_type", "error_description": description}
            )
        if form.get("refresh_token") != self.refresh_token:
            return http.Response(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                },
            )
        self._tokens += 1
        token = f"ya29.sim-{self._tokens}-{uuid.uuid4().hex[:12]}"
        self._access_tokens[token] = anyio.current_time() + self.token_lifetime_s
        body = {
            "access_token": token,
            "expires_in": int(self.token_lifetime_s),
            "scope": SCOPES,
            "token_type": "Bearer",
        }
        if form.get("grant_type") == "authorization_code":
            body["refresh_token"] = self.refresh_token
        return http.Response(200, body, {"Cache-Control": "no-store"})

    # -- SDM REST --------------------------------------------------------------------------

    def _sdm(self, request: http.Request, path: str) -> http.Response:
        enterprise = self.names.enterprise
        if path != enterprise and not path.startswith(enterprise + "/"):
            raise SdmError(403, "PERMISSION_DENIED", "The caller does not have permission")
        parts = path.removeprefix(enterprise).strip("/").split("/")
        if request.method == "POST" and len(parts) == 2 and parts[0] == "devices":
            device_id, _, verb = parts[1].partition(":")
            if verb != "executeCommand":
                raise _not_found(f"Method {verb!r}")
            return self._execute(device_id, request)
        if request.method != "GET":
            raise SdmError(405, "INVALID_ARGUMENT", f"Method {request.method} is not allowed.")
        return http.Response(200, self._read(parts))

    def _read(self, parts: list[str]) -> dict[str, Any]:
        match parts:
            case ["devices"]:
                self._quota(("devices.list",), self.quotas.list_per_min, "devices.list")
                self.list_calls += 1
                self._start_events()
                return {"devices": [device_resource(self.names, d) for d in _devices(self.home)]}
            case ["devices", device_id]:
                self._quota(("devices.get",), self.quotas.devices_get_per_min, "devices.get")
                return device_resource(self.names, self._device(device_id))
            case ["structures"]:
                self._quota(("structures.list",), self.quotas.list_per_min, "structures.list")
                structures = self.home.structures.values()
                listed = [structure_resource(self.names, s) for s in structures]
                return {"structures": listed + self.odd_structures}
            case ["structures", structure_id]:
                return structure_resource(self.names, self._structure(structure_id))
            case ["structures", structure_id, "rooms"]:
                self._structure(structure_id)
                return {"rooms": room_resources(self.names, self.home, structure_id)}
            case ["structures", structure_id, "rooms", room]:
                self._structure(structure_id)
                for resource in room_resources(self.names, self.home, structure_id):
                    if resource["name"].endswith("/" + room):
                        return resource
                raise _not_found(f"Room {self.names.structure(structure_id)}/rooms/{room}")
        raise _not_found(f"Resource {self.names.enterprise}/{'/'.join(parts)}")

    def _device(self, device_id: str) -> SimThermostat | SimCamera:
        device = self.home.thermostats.get(device_id) or self.home.cameras.get(device_id)
        if device is None:
            raise _not_found(f"Device {self.names.device(device_id)}")
        return device

    def _structure(self, structure_id: str) -> SimStructure:
        if structure_id not in self.home.structures:
            raise _not_found(f"Structure {self.names.structure(structure_id)}")
        return self.home.structures[structure_id]

    def _quota(self, key: tuple[str, ...], limit: int, what: str) -> None:
        if not self._windows.allows(key, limit):
            raise SdmError(429, "RESOURCE_EXHAUSTED", f"Rate limited for {what} for the user.")
        self._windows.take(key)

    def _execute(self, device_id: str, request: http.Request) -> http.Response:
        try:
            body = request.json()
        except ValueError:
            body = None
        command = body.get("command", "") if isinstance(body, dict) else ""
        params = body.get("params", {}) if isinstance(body, dict) else {}
        try:
            device = self._device(device_id)
            short = str(command).removeprefix(COMMAND)
            per_device = ("command", device_id, short)
            if not self._windows.allows(per_device, self.quotas.command_per_device_per_min):
                raise SdmError(
                    429, "RESOURCE_EXHAUSTED", f"Rate limited for the {short} command for the user."
                )
            self._quota(("executeCommand",), self.quotas.execute_per_min, "executeCommand")
            self._windows.take(per_device)
            result = execute(self.home, device, body)
        except SdmError as error:
            self.commands.append(
                CommandRequest(
                    device_id, str(command), _dict(params), error.status, error.rpc_status
                )
            )
            raise
        self.commands.append(CommandRequest(device_id, str(command), _dict(params), 200))
        log.info("sdm simulator executed a command", device=device_id, command=command)
        return http.Response(200, result)

    # -- publishing events -----------------------------------------------------------------

    def _start_events(self) -> None:
        """SDM starts publishing once the client has listed the devices."""
        if not self._events_on:
            self._events_on = True
            self._sent = self._observe()

    def _observe(self) -> _Published:
        seen = _Published(threads=self._sent.threads)
        for device in _devices(self.home):
            name = self.names.device(device.id)
            seen.resources[name] = device_resource(self.names, device)
            if isinstance(device, SimCamera):
                seen.camera_events[name] = device.last_event
                seen.chimes[name] = device.last_chime
        return seen

    async def run_publisher(self, version: int) -> None:
        """Turn every change of the home after `version` into Pub/Sub messages."""
        while True:
            version = await self.home.wait_changed(version)
            if self._events_on:
                self._publish_changes()

    def _publish_changes(self) -> None:
        before, now = self._sent, self._observe()
        for name, resource in now.resources.items():
            old = before.resources.get(name)
            if old is None:
                self._relation("CREATED", _structure_of(resource), name)
                continue
            if old["parentRelations"] != resource["parentRelations"]:
                self._relation("UPDATED", resource["parentRelations"][0]["parent"], name)
            changed = {
                trait: value
                for trait, value in resource["traits"].items()
                if old["traits"].get(trait) != value
            }
            if changed:
                self._resource_update(name, {"traits": changed})
            if name in now.camera_events:
                self._camera_changes(name, before, now)
        for name, resource in before.resources.items():
            if name not in now.resources:
                self._relation("DELETED", _structure_of(resource), name)
                now.threads.pop(name, None)
        self._sent = now

    def _camera_changes(self, name: str, before: _Published, now: _Published) -> None:
        event, old = now.camera_events[name], before.camera_events.get(name)
        if event is not None and event != old:
            thread = now.threads.get(name)
            same = old is not None and thread is not None and old.start == event.start
            if not same:
                thread = self._open_thread(name, now)
            assert thread is not None
            kinds = [k for k, on in _EVENT_KINDS if getattr(event, on)]
            self._add_events(thread, kinds, clip=TRAIT + "CameraClipPreview" in self._traits(name))
            self._thread_message(thread, "UPDATED" if same else "STARTED")
        chime = now.chimes.get(name)
        if chime is not None and chime != before.chimes.get(name):
            thread = _Thread(f"chime-{uuid.uuid4().hex[:16]}", name, {})
            clip = TRAIT + "CameraClipPreview" in self._traits(name)
            self._add_events(thread, ["DoorbellChime.Chime"], clip=clip)
            self._thread_message(thread, "STARTED")

    def _traits(self, name: str) -> dict[str, Any]:
        resource = self._sent.resources.get(name) or {}
        traits: dict[str, Any] = resource.get("traits", {})
        return traits

    def _open_thread(self, name: str, now: _Published) -> _Thread:
        thread = _Thread(f"thread-{uuid.uuid4().hex[:16]}", name, {})
        now.threads[name] = thread
        return thread

    def _add_events(self, thread: _Thread, kinds: list[str], *, clip: bool) -> None:
        for kind in kinds:
            key = EVENT + kind
            if key not in thread.events:
                number = len(thread.events) + 1
                thread.events[key] = {
                    "eventSessionId": thread.thread_id,
                    "eventId": f"{thread.thread_id}:{number}",
                }
        if clip and EVENT + "CameraClipPreview.ClipPreview" not in thread.events:
            thread.events[EVENT + "CameraClipPreview.ClipPreview"] = {
                "eventSessionId": thread.thread_id,
                "previewUrl": f"{self.url}/_sim/clips/{thread.thread_id}.mp4",
            }

    def _thread_message(self, thread: _Thread, state: str) -> None:
        thread.updates += 1
        self._resource_update(
            thread.device,
            {"events": dict(thread.events)},
            eventThreadId=thread.thread_id,
            eventThreadState=state,
        )
        if state != "ENDED":
            self.server.start_soon(
                partial(self._end_thread_later, thread, thread.updates), name="sdm thread"
            )

    async def _end_thread_later(self, thread: _Thread, updates: int) -> None:
        """ENDED, with the thread's events again, once it has been quiet for thread_end_s."""
        await anyio.sleep(self.thread_end_s)
        if thread.updates != updates or updates == 0:
            return
        if self._sent.threads.get(thread.device) is thread:
            del self._sent.threads[thread.device]
        self._thread_message(thread, "ENDED")

    def _resource_update(self, name: str, update: dict[str, Any], **extra: str) -> None:
        self.publish_event(
            {
                "eventId": str(uuid.uuid4()),
                "timestamp": rfc3339(self.home.clock()),
                "resourceUpdate": {"name": name, **update},
                "userId": USER_ID,
                "resourceGroup": [name],
                **extra,
            }
        )

    def _relation(self, kind: str, subject: str, name: str) -> None:
        self.publish_event(
            {
                "eventId": str(uuid.uuid4()),
                "timestamp": rfc3339(self.home.clock()),
                "relationUpdate": {"type": kind, "subject": subject, "object": name},
                "userId": USER_ID,
            }
        )


_EVENT_KINDS = (
    ("CameraMotion.Motion", "motion"),
    ("CameraPerson.Person", "person"),
    ("CameraSound.Sound", "sound"),
)


def _structure_of(resource: dict[str, Any]) -> str:
    parent: str = resource["parentRelations"][0]["parent"]
    return parent.split("/rooms/")[0]


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


@asynccontextmanager
async def serve(
    home: SimHome,
    *,
    project_id: str = "sim-project",
    client_id: str = "sim-client.apps.googleusercontent.com",
    client_secret: str = "sim-client-secret",
    refresh_token: str = "1//sim-refresh-token",
    subscription: str = "projects/sim-gcp/subscriptions/roost",
    token_lifetime_s: float = 3599.0,
    ack_deadline_s: float = 10.0,
    pull_wait_s: float = 30.0,
    thread_end_s: float = 2.0,
    quotas: Quotas | None = None,
    physics_interval_s: float | None = None,
    port: int = 0,
) -> AsyncIterator[SdmSimulator]:
    """Serve OAuth, SDM and Pub/Sub for `home` on 127.0.0.1:port (0 picks a free port)."""
    simulator = SdmSimulator(
        home,
        project_id=project_id,
        client_id=client_id,
        client_secret=client_secret,
        refresh_token=refresh_token,
        subscription=subscription,
        token_lifetime_s=token_lifetime_s,
        ack_deadline_s=ack_deadline_s,
        pull_wait_s=pull_wait_s,
        thread_end_s=thread_end_s,
        quotas=quotas or Quotas(),
    )
    async with front.serve(simulator, physics_interval_s=physics_interval_s, port=port):
        yield simulator


def demo_home(*, clock: Callable[[], datetime] | None = None) -> SimHome:
    """A warm-climate home SDM can show: a cooling thermostat, a heat-only one, a doorbell
    and a garden camera (SDM has no presence and no smoke/CO alarms)."""
    home = SimHome(outdoor_c=30.0, **({"clock": clock} if clock else {}))
    home_id = "structure-villa"
    home.add(SimStructure(id=home_id, name="Villa", time_zone="Europe/Madrid"))
    home.add(
        SimThermostat(
            id="thermostat-lounge",
            name="Lounge",
            room="Lounge",
            structure_id=home_id,
            mode="cool",
            target_c=27.0,
            ambient_c=25.0,
            can_heat=True,
            can_cool=True,
            has_fan=True,
        )
    )
    home.add(
        SimThermostat(
            id="thermostat-study",
            name="Study",
            room="Study",
            structure_id=home_id,
            mode="heat",
            target_c=18.0,
            ambient_c=22.0,
        )
    )
    home.add(
        SimCamera(
            id="doorbell-front",
            name="Front Door",
            room="Entrance",
            structure_id=home_id,
            is_doorbell=True,
        )
    )
    home.add(SimCamera(id="camera-garden", name="Garden", room="Garden", structure_id=home_id))
    home.tick(0)
    return home


# -- the /_sim/ control surface (for scenario scripts in another process) -------------------------


_READS: control.Reads[SdmSimulator] = {
    **front.HOME_READS,
    "commands": lambda s: [dataclasses.asdict(c) for c in s.commands],
}

_CONTROLS: dict[str, front.Control] = {
    **front.HOME_CONTROLS,
    "publish": lambda s, a: s.publish_event(dict(a)),
    "revoke": lambda s, a: s.revoke(),
    "expire_tokens": lambda s, a: s.expire_access_tokens(),
}
