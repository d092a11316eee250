"""Settings: a TOML file, `ROOST_` environment overrides and systemd credentials.

Precedence, highest first: keyword arguments, `ROOST_*` environment variables (nested with `__`,
e.g. `ROOST_DAEMON__DRY_RUN=true`), the TOML file, then the defaults below. Secrets can live in
the TOML file, but belong in systemd credentials (`LoadCredential=`): an account's
`token_credential` and `notify.urls_credential` name files in `$CREDENTIALS_DIRECTORY`, which are
read while the settings are validated. Relative paths are relative to the working directory.

`load_settings()` is the one entry point for the daemon: it reports every problem as a
`ConfigError` naming the file, the line (best effort) and the setting.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "ROOST_"
ENV_DELIMITER = "__"


SAFE_NOTIFY_SCHEMES = (
    "json",
    "jsons",
    "ntfy",
    "ntfys",
    "gotify",
    "gotifys",
    "pover",
    "tgram",
    "mailto",
    "mailtos",
    "discord",
    "slack",
    "matrix",
    "matrixs",
    "signal",
    "signals",
)

_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9_@-][A-Za-z0-9_.@-]*$")
# The TOML file of the Settings() being built. load_settings() sets it, because a constructor
# argument can't reach settings_customise_sources; no file is read at import time.
_toml_file: ContextVar[Path | None] = ContextVar("roost_toml_file", default=None)


class ConfigError(Exception):
    """The configuration can't be used; the message is meant for the person who wrote it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def read_credential(name: str, owner: str) -> str:
    """The content of credential `name` (stripped), or ValueError naming `owner`."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ValueError(
            f"{owner}: credential {name!r} needs $CREDENTIALS_DIRECTORY "
            "(set by systemd for LoadCredential=)"
        )
    path = Path(directory) / name
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ValueError(f"{owner}: credential file {path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{owner}: credential file {path} can't be read: {exc}") from None
    if not value:
        raise ValueError(f"{owner}: credential file {path} is empty")
    return value


def _check_credential_name(name: str | None) -> str | None:
    if name is not None and not _CREDENTIAL_NAME.fullmatch(name):
        raise ValueError("must be a plain file name in $CREDENTIALS_DIRECTORY")
    return name


def _system_zone() -> ZoneInfo:
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def _require_loopback(listen: str | None, allow_remote: bool, what: str) -> None:
    if listen is not None and not allow_remote and not is_loopback(listen.rpartition(":")[0]):
        raise ValueError(
            f"{what} = {listen!r} is reachable from other machines; use a loopback address "
            "(127.0.0.1, ::1) or set allow_remote = true to mean it"
        )


def _default_state_dir() -> Path:
    # systemd joins several StateDirectory= entries with ':'; ours is the first.
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state) if state else Path("state")


class DaemonSettings(_Section):
    rules_dir: Path = Path("rules")
    state_dir: Path = Field(default_factory=_default_state_dir)
    time_zone: str | None = None
    dry_run: bool = False
    rule_timeout_s: float = Field(default=30, gt=0)
    # A stretch of rule code between two awaits longer than this is stopped (RuleBlocked).
    rule_block_budget_s: float = Field(default=0.5, gt=0, le=10)
    rule_max_commands: int = Field(default=50, ge=1)  # commands per run before it is stopped
    control_socket: Path | None = None
    traces_per_rule: int = Field(default=100, ge=1)
    loop_max_depth: int = Field(default=8, ge=1)
    loop_echo_runs: int = Field(default=10, ge=1)
    loop_echo_window_s: float = Field(default=60, gt=0)
    notify_per_tag: str = "6/10m"
    timer_grace_s: float = Field(default=300, ge=0)
    record_events: Path | None = None
    # On SIGTERM, how long in-flight commands get to finish (keep it below TimeoutStopSec).
    drain_timeout_s: float = Field(default=10, ge=0)
    # Retention: the event journal by age and by size, delivered notifications by age.
    journal_keep_days: float = Field(default=30, gt=0)
    journal_keep_rows: int = Field(default=1_000_000, ge=1000)
    outbox_keep_days: float = Field(default=7, gt=0)

    @field_validator("notify_per_tag")
    @classmethod
    def _rate(cls, value: str) -> str:
        from roost.durations import parse_rate

        parse_rate(value)
        return value

    def socket_path(self) -> Path:
        """The control socket: as configured, else `control.sock` in systemd's runtime
        directory (`RuntimeDirectory=`), else in the state directory."""
        if self.control_socket is not None:
            return self.control_socket
        runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
        return Path(runtime or self.state_dir) / "control.sock"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. 'Europe/Berlin')") from None
        return value

    def zone(self) -> ZoneInfo:
        """The configured zone, else the system's (a real zone, so DST is followed)."""
        return ZoneInfo(self.time_zone) if self.time_zone else _system_zone()


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


def _optional_secret(
    value: SecretStr | None, credential: str | None, owner: str, what: str, stored: bool
) -> SecretStr | None:
    """Like `_secret`; with `stored` (`use_stored_tokens = true`) neither is fine too: the
    provider then uses the tokens that `roost auth` stored in the state directory."""
    if stored and value is None and credential is None:
        return None
    try:
        return _secret(value, credential, owner, what)
    except ValueError as exc:
        raise ValueError(f"{exc} (or run `roost auth` and set use_stored_tokens = true)") from None


def _secret(value: SecretStr | None, credential: str | None, owner: str, what: str) -> SecretStr:
    """A secret given either inline or as a systemd credential file: exactly one of the two."""
    if (value is None) == (credential is None):
        raise ValueError(f"{owner}: set exactly one of {what} or {what}_credential")
    if credential is not None:
        return SecretStr(read_credential(credential, owner))
    assert value is not None
    return value


class AccountBase(_Section):
    name: str = Field(min_length=1)
    api_url: str

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local simulator)")
        return value.rstrip("/")

    @property
    def owner(self) -> str:
        return f"account {self.name!r}"


class NestWwnAccount(AccountBase):
    """Works with Nest: a long-lived access token, REST streaming."""

    provider: Literal["nest_wwn"]
    api_url: str = "https://developer-api.nest.com"
    token: SecretStr | None = None
    token_credential: str | None = None
    # WWN sends a keep-alive every 30 s: a silent stream is detected well within two of them.
    keepalive_timeout_s: float = Field(default=45, gt=0)

    @field_validator("token_credential")
    @classmethod
    def _credential_name(cls, value: str | None) -> str | None:
        return _check_credential_name(value)

    @model_validator(mode="after")
    def _resolve_token(self) -> Self:
        self.token = _secret(self.token, self.token_credential, self.owner, "token")
        return self


class NestWebAccount(AccountBase):
    """The Nest web API (home.nest.com): a session, a subscribe long poll, puts.

    A Google account (every Nest account today) logs in with the web app's `issue_token`
    URL and the browser's Google cookies (`roost auth nest-web` explains how to copy them),
    renewed every hour until the cookies expire. A legacy Nest account may log in with
    `email` and a password. Or give the `access_token` of a session opened elsewhere (the
    `cztoken` cookie of a browser session; it cannot be renewed).
    """

    provider: Literal["nest_web"]
    api_url: str = "https://home.nest.com"
    issue_token: SecretStr | None = None
    issue_token_credential: str | None = None
    cookies: SecretStr | None = None
    cookies_credential: str | None = None
    # The web app's own (public) API key for the Nest auth proxy; copy it from the
    # x-goog-api-key header of the browser's issue_jwt request.
    google_api_key: str | None = None
    auth_proxy_url: str = "https://nestauthproxyservice-pa.googleapis.com"
    email: str | None = None
    password: SecretStr | None = None
    password_credential: str | None = None
    access_token: SecretStr | None = None
    access_token_credential: str | None = None
    subscribe_timeout_s: float = Field(default=120, gt=0)

    @field_validator(
        "password_credential",
        "access_token_credential",
        "issue_token_credential",
        "cookies_credential",
    )
    @classmethod
    def _credential_name(cls, value: str | None) -> str | None:
        return _check_credential_name(value)

    @model_validator(mode="after")
    def _resolve_secrets(self) -> Self:
        google = self.issue_token is not None or self.issue_token_credential is not None
        token_given = self.access_token is not None or self.access_token_credential is not None
        chosen = [google, self.email is not None, token_given]
        if sum(chosen) > 1:
            raise ValueError(
                f"{self.owner}: choose one login: issue_token and cookies (a Google account), "
                "email and password (a legacy Nest account), or access_token"
            )
        if self.email is None and (self.password or self.password_credential):
            raise ValueError(f"{self.owner}: a password needs the account's email")
        if google:
            self._resolve_google()
        elif self.email is not None:
            self.password = _secret(self.password, self.password_credential, self.owner, "password")
        elif token_given:
            self.access_token = _secret(
                self.access_token, self.access_token_credential, self.owner, "access_token"
            )
        else:
            raise ValueError(
                f"{self.owner}: set issue_token_credential and cookies_credential (a Google "
                "account: see `roost auth nest-web`), email and password, or access_token"
            )
        return self

    def _resolve_google(self) -> None:
        if self.google_api_key is None:
            raise ValueError(f"{self.owner}: a Google login needs google_api_key")
        self.issue_token = _secret(
            self.issue_token, self.issue_token_credential, self.owner, "issue_token"
        )
        self.cookies = _secret(self.cookies, self.cookies_credential, self.owner, "cookies")


class NetatmoAccount(AccountBase):
    """Netatmo Connect: an OAuth2 app (client id and secret) and a refresh token that
    Netatmo rotates on every refresh (roost keeps the live one in its state directory).
    An adaptive poll, optionally woken by signed webhooks received on `webhook_listen`."""

    provider: Literal["netatmo"]
    api_url: str = "https://api.netatmo.com"
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    client_secret_credential: str | None = None
    refresh_token: SecretStr | None = None
    refresh_token_credential: str | None = None
    # true: no refresh token here; use the tokens `roost auth netatmo` stored.
    use_stored_tokens: bool = False
    home_id: str | None = None
    fast_poll_s: float = Field(default=5, ge=0.1)
    slow_poll_s: float = Field(default=30, ge=1)
    fast_window_s: float = Field(default=120, ge=0)
    eco_mode: Literal["away", "hg"] = "away"
    webhook_listen: str | None = None
    webhook_url: str | None = None
    # A webhook_listen address other than loopback must be meant: roost has no TLS.
    allow_remote: bool = False

    @field_validator("client_secret_credential", "refresh_token_credential")
    @classmethod
    def _credential_name(cls, value: str | None) -> str | None:
        return _check_credential_name(value)

    @field_validator("webhook_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("must be host:port, e.g. '127.0.0.1:8765'")
        return value

    @model_validator(mode="after")
    def _resolve_secrets(self) -> Self:
        self.client_secret = _secret(
            self.client_secret, self.client_secret_credential, self.owner, "client_secret"
        )
        self.refresh_token = _optional_secret(
            self.refresh_token,
            self.refresh_token_credential,
            self.owner,
            "refresh_token",
            self.use_stored_tokens,
        )
        return self

    @model_validator(mode="after")
    def _webhook_loopback(self) -> Self:
        _require_loopback(self.webhook_listen, self.allow_remote, "webhook_listen")
        return self

    def webhook_address(self) -> tuple[str, int] | None:
        if self.webhook_listen is None:
            return None
        host, _, port = self.webhook_listen.rpartition(":")
        return host.strip("[]"), int(port)


class SdmAccount(AccountBase):
    """Google Smart Device Management: a Device Access project, an OAuth client and a
    refresh token (scopes sdm.service and pubsub), and the Pub/Sub pull subscription on
    the project's event topic."""

    provider: Literal["sdm"]
    api_url: str = "https://smartdevicemanagement.googleapis.com/v1"
    project_id: str = Field(min_length=1)  # the Device Access project id
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    client_secret_credential: str | None = None
    refresh_token: SecretStr | None = None
    refresh_token_credential: str | None = None
    # true: no refresh token here; use the tokens `roost auth sdm` stored.
    use_stored_tokens: bool = False
    token_url: str = "https://www.googleapis.com/oauth2/v4/token"
    pubsub_url: str = "https://pubsub.googleapis.com/v1"
    subscription: str = Field(pattern=r"^projects/[^/]+/subscriptions/[^/]+$")
    max_messages: int = Field(default=100, ge=1, le=1000)
    pull_timeout_s: float = Field(default=90, gt=0)

    @field_validator("token_url", "pubsub_url")
    @classmethod
    def _http_urls(cls, value: str) -> str:
        return cls._http_url(value)

    @field_validator("client_secret_credential", "refresh_token_credential")
    @classmethod
    def _credential_name(cls, value: str | None) -> str | None:
        return _check_credential_name(value)

    @model_validator(mode="after")
    def _resolve_secrets(self) -> Self:
        self.client_secret = _secret(
            self.client_secret, self.client_secret_credential, self.owner, "client_secret"
        )
        self.refresh_token = _optional_secret(
            self.refresh_token,
            self.refresh_token_credential,
            self.owner,
            "refresh_token",
            self.use_stored_tokens,
        )
        return self


# One class per vendor; the `provider` key picks the class. A new vendor adds its class
# above and its name to this union (and a factory in providers/registry.py).
AccountSettings = Annotated[
    NestWwnAccount | NestWebAccount | NetatmoAccount | SdmAccount,
    Field(discriminator="provider"),
]


class NotifyTarget(_Section):
    url: SecretStr
    tags: list[str] = []

    @property
    def scheme(self) -> str:
        return self.url.get_secret_value().partition("://")[0].lower()


class NotifySettings(_Section):
    targets: list[NotifyTarget] = []
    urls_credential: str | None = None
    allowed_schemes: list[str] = list(SAFE_NOTIFY_SCHEMES)
    retry_for_s: float = Field(default=6 * 3600, gt=0)

    @field_validator("urls_credential")
    @classmethod
    def _credential_name(cls, value: str | None) -> str | None:
        return _check_credential_name(value)

    @field_validator("allowed_schemes")
    @classmethod
    def _lower_schemes(cls, value: list[str]) -> list[str]:
        return [scheme.lower() for scheme in value]

    @model_validator(mode="after")
    def _resolve_and_check(self) -> Self:
        if self.urls_credential is not None:
            text = read_credential(self.urls_credential, "notify.urls_credential")
            self.targets = [*self.targets, *_targets_from_lines(text)]
        for index, target in enumerate(self.targets):
            # Never echo the URL itself: it carries the secret.
            if target.scheme not in self.allowed_schemes:
                raise ValueError(
                    f"notify target {index}: scheme {target.scheme!r} isn't in allowed_schemes"
                )
        return self


def _targets_from_lines(text: str) -> list[NotifyTarget]:
    """apprise's text (`TAGS=URL` lines) or YAML configuration, from the credential file."""
    from roost.notifyurls import NotifyUrlsError, parse

    try:
        entries = parse(text)
    except NotifyUrlsError as exc:
        raise ValueError(f"notify.urls_credential: {exc}") from None
    return [NotifyTarget(url=SecretStr(url), tags=tags) for url, tags in entries]


# Guard name -> (default, direction that loosens it: -1 lower is looser, +1 higher is looser).
_GUARD_LIMITS: dict[str, tuple[float, int]] = {
    "heat_min_c": (7, -1),
    "heat_max_c": (30, +1),
    "cool_min_c": (18, -1),
    "cool_max_c": (35, +1),
    "min_range_gap_c": (1.5, -1),
    "writes_per_device_per_hour": (20, +1),
}


class GuardSettings(_Section):
    allow_loosening: bool = False  # first, so the checks below can see it
    heat_min_c: float = Field(default=7, ge=0, le=40)
    heat_max_c: float = Field(default=30, ge=0, le=40)
    cool_min_c: float = Field(default=18, ge=0, le=45)
    cool_max_c: float = Field(default=35, ge=0, le=45)
    min_range_gap_c: float = Field(default=1.5, ge=0, le=10)
    writes_per_device_per_hour: int = Field(default=20, ge=1)

    @field_validator(*_GUARD_LIMITS)
    @classmethod
    def _not_looser(cls, value: float, info: ValidationInfo) -> float:
        default, looser = _GUARD_LIMITS[str(info.field_name)]
        if (value - default) * looser > 0 and not info.data.get("allow_loosening", False):
            raise ValueError(
                f"{value:g} is looser than the safe default {default:g}; "
                "set guards.allow_loosening = true if that is really meant"
            )
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.heat_min_c >= self.heat_max_c:
            raise ValueError("heat_min_c must be below heat_max_c")
        if self.cool_min_c >= self.cool_max_c:
            raise ValueError("cool_min_c must be below cool_max_c")
        return self

    def loosened(self) -> list[str]:
        """Guards set looser than their defaults, e.g. `heat_min_c = 5 (default 7)`."""
        found = []
        for name, (default, looser) in _GUARD_LIMITS.items():
            value = getattr(self, name)
            if (value - default) * looser > 0:
                found.append(f"{name} = {value:g} (default {default:g})")
        return found


class DispatchSettings(_Section):
    """How commands are retried and confirmed (the vendors' rate limits are their own)."""

    retry_initial_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=20)
    echo_wait_s: float = Field(default=10.0, ge=0)
    echo_timeout_s: float = Field(default=120.0, gt=0)


class StoreSettings(_Section):
    """Where the durable state lives: SQLite in state_dir (the default), or a PostgreSQL
    database shared by a fleet of workers (`url = "postgresql://roost@db/roost"`, the
    password as the systemd credential `password_credential`; needs roost[postgres])."""

    url: str | None = None
    password_credential: str | None = None
    password: SecretStr | None = None
    pool_size: int = Field(default=4, ge=1, le=100)

    @field_validator("password_credential")
    @classmethod
    def _credential_name(cls, value: str | None) -> str | None:
        return _check_credential_name(value)

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, _, rest = value.partition("://")
        if scheme not in ("postgresql", "postgres") or not rest:
            raise ValueError("store.url: a postgresql://user@host/database URL (or unset)")
        if ":" in rest.partition("@")[0] and "@" in rest:
            raise ValueError("store.url: no password in the URL; use password_credential")
        return value

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        if self.password_credential is not None:
            self.password = SecretStr(
                read_credential(self.password_credential, "store.password_credential")
            )
        return self


class ClusterSettings(_Section):
    """A fleet of workers on one PostgreSQL store (README "Running a fleet"). Each worker
    serves a fair share of the account groups; `groups` lists the accounts that share
    rules (a home's Nest and Netatmo accounts), every other account is a group of its own."""

    enabled: bool = False
    worker: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    groups: list[list[str]] = []
    check_s: float = Field(default=0.5, gt=0, le=10)
    lock_timeout_s: float = Field(default=2.0, gt=0, le=30)


class MetricsSettings(_Section):
    """An optional Prometheus text endpoint (off unless `listen` is set)."""

    listen: str | None = None  # e.g. "127.0.0.1:9466"; loopback unless allow_remote
    allow_remote: bool = False

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. '127.0.0.1:9466'")
        return value

    @model_validator(mode="after")
    def _loopback(self) -> Self:
        _require_loopback(self.listen, self.allow_remote, "listen")
        return self

    def address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class Place(_Section):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class LocationSettings(_Section):
    """Where the home is, for sunrise/sunset triggers and conditions. `structures` places
    a structure elsewhere (by name or id): { "Cabin" = { latitude = …, longitude = … } }."""

    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    structures: dict[str, Place] = {}

    @model_validator(mode="after")
    def _both_or_neither(self) -> Self:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("set both latitude and longitude, or neither")
        return self


class WebSettings(_Section):
    """The optional local web page (off unless `listen` is set)."""

    listen: str | None = None  # e.g. "127.0.0.1:8470"
    # A non-loopback address exposes the page to the network: it must be asked for, and
    # then every page (not only the actions) needs the token.
    allow_remote: bool = False
    # Host names the page answers to besides its listen address and localhost (a name
    # for a remote listener); any other Host header is refused (DNS rebinding).
    allowed_hosts: list[str] = []
    max_connections: int = Field(default=32, ge=1, le=1024)
    max_live_viewers: int = Field(default=4, ge=1, le=64)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("must be host:port, e.g. '127.0.0.1:8470'")
        return value

    @model_validator(mode="after")
    def _remote_asked_for(self) -> Self:
        _require_loopback(self.listen, self.allow_remote, "listen")
        return self

    def address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    def is_remote(self) -> bool:
        address = self.address()
        return address is not None and not is_loopback(address[0])


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid"
    )

    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    accounts: list[AccountSettings] = []
    notify: NotifySettings = Field(default_factory=NotifySettings)
    guards: GuardSettings = Field(default_factory=GuardSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    location: LocationSettings = Field(default_factory=LocationSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @field_validator("accounts")
    @classmethod
    def _unique_names(cls, accounts: list[AccountSettings]) -> list[AccountSettings]:
        seen: set[str] = set()
        for account in accounts:
            if account.name in seen:
                raise ValueError(f"account name {account.name!r} is used twice")
            seen.add(account.name)
        return accounts

    @model_validator(mode="after")
    def _cluster_needs_postgres(self) -> Self:
        if self.cluster.enabled and self.store.url is None:
            raise ValueError("cluster.enabled needs [store] url (a PostgreSQL database)")
        names = {a.name for a in self.accounts}
        for group in self.cluster.groups:
            unknown = [n for n in group if n not in names]
            if unknown:
                raise ValueError(f"cluster.groups names unknown accounts: {unknown}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Credentials are read explicitly (token_credential, urls_credential), not as a
        # secrets_dir, and there is no .env file: the TOML file is the one place to look.
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_toml_file.get())
        return (init_settings, env_settings, toml)


def load_settings(path: Path | None) -> Settings:
    """Settings from the TOML file at `path` (None: no file) and the environment.

    Raises ConfigError, one line per problem: `file:line: setting: message`.
    """
    text = _read_toml(path) if path is not None else ""
    token = _toml_file.set(path)
    try:
        return Settings()
    except ValidationError as exc:
        # A default that depends on a failed field adds nothing to that field's own error.
        errors = [
            e for e in exc.errors(include_input=False) if e["type"] != "default_factory_not_called"
        ]
        raise ConfigError("\n".join(_describe(e, path, text, os.environ) for e in errors)) from None
    finally:
        _toml_file.reset(token)


def unknown_env_overrides(environ: Mapping[str, str] | None = None) -> list[str]:
    """`ROOST_*` variables that name no setting (pydantic-settings silently ignores them)."""
    env = os.environ if environ is None else environ
    unknown = []
    for name in env:
        if name.upper().startswith(ENV_PREFIX):
            parts = name[len(ENV_PREFIX) :].lower().split(ENV_DELIMITER)
            if not _names_setting(Settings, parts):
                unknown.append(name)
    return sorted(unknown)


def _names_setting(model: type[BaseModel], parts: list[str]) -> bool:
    field = model.model_fields.get(parts[0])
    if field is None:
        return False
    if len(parts) == 1:
        return True
    inner = field.annotation
    return (
        isinstance(inner, type)
        and issubclass(inner, BaseModel)
        and _names_setting(inner, parts[1:])
    )


def _read_toml(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: can't read the configuration: {exc}") from None
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        where = f"{path}:{match.group(1)}" if match else str(path)
        raise ConfigError(f"{where}: TOML syntax error: {exc}") from None
    return text


def _describe(error: ErrorDetails, path: Path | None, text: str, env: Mapping[str, str]) -> str:
    loc = _without_tags(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, "provider")
        known = error.get("ctx", {}).get("expected_tags", "")
        message = f"unknown or missing provider; known providers: {known}"
    setting = format_loc(loc)
    variable = _env_name(loc, env)
    if variable is not None:
        where = f"${variable}"
    elif path is None:
        where = "settings"
    else:
        line = find_line(text, loc)
        where = f"{path}:{line}" if line else str(path)
    return f"{where}: {setting}: {message}" if setting else f"{where}: {message}"


def _without_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the union tag pydantic inserts after a list index: accounts[0].nest_wwn.token."""
    parts = list(loc)
    if len(parts) > 2 and parts[0] == "accounts" and isinstance(parts[1], int):
        del parts[2]
    return tuple(parts)


def format_loc(loc: tuple[int | str, ...]) -> str:
    """('accounts', 0, 'token') -> 'accounts[0].token'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _env_name(loc: tuple[int | str, ...], env: Mapping[str, str]) -> str | None:
    """The ROOST_* variable that set this setting (or a section holding it), if any."""
    names = {name.upper(): name for name in env}
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            break
        parts.append(part.upper())
        candidate = ENV_PREFIX + ENV_DELIMITER.join(parts)
        if candidate in names:
            return names[candidate]
    return None


def _toml_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        if stripped:
            yield number, stripped


def find_line(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best effort: the line of the TOML text where the setting at `loc` is written."""
    lines = list(_toml_lines(text))
    position, found = 0, None
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(part, int):
            continue
        index = parts[i + 1] if i + 1 < len(parts) and isinstance(parts[i + 1], int) else 0
        hit = _find_key(lines, position, part, int(index))
        if hit is not None:  # else keep looking for the deeper keys (dotted keys, inline tables)
            position, found = hit, lines[hit][0]
    return found


def _find_key(lines: list[tuple[int, str]], start: int, key: str, index: int) -> int | None:
    """Position of the `index`-th `[[key]]`/`[key]` header or `key =` line from `start`."""
    quoted = re.escape(key)
    pattern = re.compile(
        rf"^\[\[?\s*(?:[\w.\"-]+\.)?\"?{quoted}\"?\s*\]\]?$|(?:^|[\s.{{,])\"?{quoted}\"?\s*="
    )
    seen = 0
    for position in range(start, len(lines)):
        if pattern.search(lines[position][1]):
            if seen == index:
                return position
            seen += 1
    return None


def remote_listeners(settings: Settings) -> list[str]:
    """The listeners other machines can reach (allowed with allow_remote = true)."""
    found = []
    listen = settings.metrics.listen
    if listen is not None and not is_loopback(listen.rpartition(":")[0]):
        found.append(f"metrics.listen = {listen!r}")
    for account in settings.accounts:
        hook = getattr(account, "webhook_listen", None)
        if hook is not None and not is_loopback(hook.rpartition(":")[0]):
            found.append(f"account {account.name!r} webhook_listen = {hook!r}")
    if settings.web.is_remote():
        found.append(f"web.listen = {settings.web.listen!r}")
    return found
