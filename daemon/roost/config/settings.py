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

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Self, Union
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

from roost.config.tomllines import find_line
from roost.host.credentials import check_credential_name, read_credential
from roost.providers.accounts import AccountBase, is_loopback, require_loopback
from roost.providers.registry import account_models

__all__ = ["AccountBase", "AccountSettings", "ConfigError", "Settings", "read_credential"]

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

# The TOML file of the Settings() being built. load_settings() sets it, because a constructor
# argument can't reach settings_customise_sources; no file is read at import time.
_toml_file: ContextVar[Path | None] = ContextVar("roost_toml_file", default=None)


class ConfigError(Exception):
    """The configuration can't be used; the message is meant for the person who wrote it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
        from roost.core.durations import parse_rate

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


# One model per vendor, from its package; the `provider` key picks the model.
if TYPE_CHECKING:
    AccountSettings = AccountBase
else:
    AccountSettings = Annotated[Union[account_models()], Field(discriminator="provider")]  # noqa: UP007


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
        return check_credential_name(value)

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
    from roost.notify.urls import NotifyUrlsError, parse

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
        return check_credential_name(value)

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
    rules (one home's accounts at two vendors), every other account is a group of its own."""

    enabled: bool = False
    worker: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    groups: list[list[str]] = []
    check_s: float = Field(default=0.5, gt=0, le=10)
    lock_timeout_s: float = Field(default=2.0, gt=0, le=30)


class ListenerSettings(_Section):
    """A listener that is off unless `listen` is set, on loopback unless allow_remote."""

    listen: str | None = None  # "host:port", e.g. "127.0.0.1:9466"
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
        require_loopback(self.listen, self.allow_remote, "listen")
        return self

    def address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class MetricsSettings(ListenerSettings):
    """An optional Prometheus text endpoint (off unless `listen` is set)."""


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


class WebSettings(ListenerSettings):
    """The optional local web page (off unless `listen` is set)."""

    # listen e.g. "127.0.0.1:8470". A non-loopback address exposes the page to the
    # network: it must be asked for (allow_remote), and then every page (not only the
    # actions) needs the token.
    # Host names the page answers to besides its listen address and localhost (a name
    # for a remote listener); any other Host header is refused (DNS rebinding).
    allowed_hosts: list[str] = []
    max_connections: int = Field(default=32, ge=1, le=1024)
    max_live_viewers: int = Field(default=4, ge=1, le=64)

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
    """Drop the union tag pydantic inserts after a list index: accounts[0].<vendor>.token."""
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
