"""The settings' schema: what a TOML file, `ROOST_` environment overrides and systemd
credentials configure, as plain dataclasses.

`roost.config.load` reads and validates them with pydantic-settings (in a child process for
`roost run`: the daemon never imports pydantic), reading the `Annotated` checks below and
running each section's `__post_init__`. Precedence, highest first: keyword arguments, `ROOST_*`
environment variables (nested with `__`, e.g. `ROOST_DAEMON__DRY_RUN=true`), the TOML file,
then the defaults below. Secrets can live in the TOML file, but belong in systemd credentials
(`LoadCredential=`): an account's `token_credential` and `notify.urls_credential` name files
in `$CREDENTIALS_DIRECTORY`, which are read while the settings are validated. Relative paths
are relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from annotated_types import Ge, Gt, Le

from roost.core.checks import After, Before, FieldError
from roost.core.secret import Secret
from roost.host.credentials import read_credential
from roost.providers.accounts import AccountBase, CredentialName, is_loopback, require_loopback

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


class ConfigError(Exception):
    """The configuration can't be used; the message is meant for the person who wrote it.
    (Here, apart from the loader, because it reaches the daemon from the loader's child.)"""


@dataclass(kw_only=True)
class _Section:
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}


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


def _check_rate(value: str) -> str:
    from roost.core.durations import parse_rate

    parse_rate(value)
    return value


def _known_zone(value: str | None) -> str | None:
    if not value:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (e.g. 'Europe/Berlin')") from None
    return value


Positive = Annotated[float, Gt(0)]
AtLeastOne = Annotated[int, Ge(1)]
NotNegative = Annotated[float, Ge(0)]


@dataclass(kw_only=True)
class DaemonSettings(_Section):
    rules_dir: Path = Path("rules")
    state_dir: Path = field(default_factory=_default_state_dir)
    time_zone: Annotated[str | None, After(_known_zone)] = None
    dry_run: bool = False
    rule_timeout_s: Positive = 30
    # A stretch of rule code between two awaits longer than this is stopped (RuleBlocked).
    rule_block_budget_s: Annotated[float, Gt(0), Le(10)] = 0.5
    rule_max_commands: AtLeastOne = 50  # commands per run before it is stopped
    control_socket: Path | None = None
    traces_per_rule: AtLeastOne = 100
    loop_max_depth: AtLeastOne = 8
    loop_echo_runs: AtLeastOne = 10
    loop_echo_window_s: Positive = 60
    notify_per_tag: Annotated[str, After(_check_rate)] = "6/10m"
    timer_grace_s: NotNegative = 300
    record_events: Path | None = None
    # On SIGTERM, how long in-flight commands get to finish (keep it below TimeoutStopSec).
    drain_timeout_s: NotNegative = 10
    # Retention: the event journal by age and by size, delivered notifications by age.
    journal_keep_days: Positive = 30
    journal_keep_rows: Annotated[int, Ge(1000)] = 1_000_000
    outbox_keep_days: Positive = 7

    def socket_path(self) -> Path:
        """The control socket: as configured, else `control.sock` in systemd's runtime
        directory (`RuntimeDirectory=`), else in the state directory."""
        if self.control_socket is not None:
            return self.control_socket
        runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
        return Path(runtime or self.state_dir) / "control.sock"

    def zone(self) -> ZoneInfo:
        """The configured zone, else the system's (a real zone, so DST is followed)."""
        return ZoneInfo(self.time_zone) if self.time_zone else _system_zone()


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


@dataclass(kw_only=True)
class LogSettings(_Section):
    level: Annotated[Literal["debug", "info", "warning", "error"], Before(_lower)] = "info"
    format: Annotated[Literal["auto", "json", "console"], Before(_lower)] = "auto"


# One model per vendor, from its package; `roost.config.load` validates an account as the
# union of them, the `provider` key picking the model.
AccountSettings = AccountBase


@dataclass(kw_only=True)
class NotifyTarget(_Section):
    url: Secret
    tags: list[str] = field(default_factory=list)

    @property
    def scheme(self) -> str:
        return self.url.get_secret_value().partition("://")[0].lower()


def _lower_all(value: list[str]) -> list[str]:
    return [scheme.lower() for scheme in value]


@dataclass(kw_only=True)
class NotifySettings(_Section):
    targets: list[NotifyTarget] = field(default_factory=list)
    urls_credential: CredentialName = None
    allowed_schemes: Annotated[list[str], After(_lower_all)] = field(
        default_factory=lambda: list(SAFE_NOTIFY_SCHEMES)
    )
    retry_for_s: Positive = 6 * 3600

    def __post_init__(self) -> None:
        if self.urls_credential is not None:
            text = read_credential(self.urls_credential, "notify.urls_credential")
            self.targets = [*self.targets, *_targets_from_lines(text)]
        for index, target in enumerate(self.targets):
            # Never echo the URL itself: it carries the secret.
            if target.scheme not in self.allowed_schemes:
                raise ValueError(
                    f"notify target {index}: scheme {target.scheme!r} isn't in allowed_schemes"
                )


def _targets_from_lines(text: str) -> list[NotifyTarget]:
    """apprise's text (`TAGS=URL` lines) or YAML configuration, from the credential file."""
    from roost.notify.urls import NotifyUrlsError, parse

    try:
        entries = parse(text)
    except NotifyUrlsError as exc:
        raise ValueError(f"notify.urls_credential: {exc}") from None
    return [NotifyTarget(url=Secret(url), tags=tags) for url, tags in entries]


# Guard name -> (default, direction that loosens it: -1 lower is looser, +1 higher is looser).
_GUARD_LIMITS: dict[str, tuple[float, int]] = {
    "heat_min_c": (7, -1),
    "heat_max_c": (30, +1),
    "cool_min_c": (18, -1),
    "cool_max_c": (35, +1),
    "min_range_gap_c": (1.5, -1),
    "writes_per_device_per_hour": (20, +1),
}


@dataclass(kw_only=True)
class GuardSettings(_Section):
    allow_loosening: bool = False
    heat_min_c: Annotated[float, Ge(0), Le(40)] = 7
    heat_max_c: Annotated[float, Ge(0), Le(40)] = 30
    cool_min_c: Annotated[float, Ge(0), Le(45)] = 18
    cool_max_c: Annotated[float, Ge(0), Le(45)] = 35
    min_range_gap_c: Annotated[float, Ge(0), Le(10)] = 1.5
    writes_per_device_per_hour: AtLeastOne = 20

    def __post_init__(self) -> None:
        if not self.allow_loosening:
            problems = [
                (
                    name,
                    f"{getattr(self, name):g} is looser than the safe default {default:g}; "
                    "set guards.allow_loosening = true if that is really meant",
                )
                for name, default in self._looser()
            ]
            if problems:
                raise FieldError(*problems[0], *problems[1:])
        if self.heat_min_c >= self.heat_max_c:
            raise ValueError("heat_min_c must be below heat_max_c")
        if self.cool_min_c >= self.cool_max_c:
            raise ValueError("cool_min_c must be below cool_max_c")

    def loosened(self) -> list[str]:
        """Guards set looser than their defaults, e.g. `heat_min_c = 5 (default 7)`."""
        return [f"{name} = {getattr(self, name):g} (default {d:g})" for name, d in self._looser()]

    def _looser(self) -> list[tuple[str, float]]:
        """(name, default) of each guard set looser than its default."""
        return [
            (name, default)
            for name, (default, looser) in _GUARD_LIMITS.items()
            if (getattr(self, name) - default) * looser > 0
        ]


@dataclass(kw_only=True)
class DispatchSettings(_Section):
    """How commands are retried and confirmed (the vendors' rate limits are their own)."""

    retry_initial_s: Positive = 1.0
    retry_max_s: Positive = 60.0
    max_attempts: Annotated[int, Ge(1), Le(20)] = 6
    echo_wait_s: NotNegative = 10.0
    echo_timeout_s: Positive = 120.0


def _postgres_url(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, rest = value.partition("://")
    if scheme not in ("postgresql", "postgres") or not rest:
        raise ValueError("store.url: a postgresql://user@host/database URL (or unset)")
    if ":" in rest.partition("@")[0] and "@" in rest:
        raise ValueError("store.url: no password in the URL; use password_credential")
    return value


@dataclass(kw_only=True)
class StoreSettings(_Section):
    """Where the durable state lives: SQLite in state_dir (the default), or a PostgreSQL
    database shared by a fleet of workers (`url = "postgresql://roost@db/roost"`, the
    password as the systemd credential `password_credential`; needs roost[postgres])."""

    url: Annotated[str | None, After(_postgres_url)] = None
    password_credential: CredentialName = None
    password: Secret | None = None
    pool_size: Annotated[int, Ge(1), Le(100)] = 4

    def __post_init__(self) -> None:
        if self.password_credential is not None:
            self.password = Secret(
                read_credential(self.password_credential, "store.password_credential")
            )


def _worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(kw_only=True)
class ClusterSettings(_Section):
    """A fleet of workers on one PostgreSQL store (README "Running a fleet"). Each worker
    serves a fair share of the account groups; `groups` lists the accounts that share
    rules (one home's accounts at two vendors), every other account is a group of its own."""

    enabled: bool = False
    worker: str = field(default_factory=_worker_name)
    groups: list[list[str]] = field(default_factory=list)
    check_s: Annotated[float, Gt(0), Le(10)] = 0.5
    lock_timeout_s: Annotated[float, Gt(0), Le(30)] = 2.0


def _host_port(value: str | None) -> str | None:
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be host:port, e.g. '127.0.0.1:9466'")
    return value


@dataclass(kw_only=True)
class ListenerSettings(_Section):
    """A listener that is off unless `listen` is set, on loopback unless allow_remote."""

    listen: Annotated[str | None, After(_host_port)] = None  # "host:port", e.g. "127.0.0.1:9466"
    allow_remote: bool = False

    def __post_init__(self) -> None:
        require_loopback(self.listen, self.allow_remote, "listen")

    def address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(kw_only=True)
class MetricsSettings(ListenerSettings):
    """An optional Prometheus text endpoint (off unless `listen` is set)."""


Latitude = Annotated[float, Ge(-90), Le(90)]
Longitude = Annotated[float, Ge(-180), Le(180)]


@dataclass(kw_only=True)
class Place(_Section):
    latitude: Latitude
    longitude: Longitude


@dataclass(kw_only=True)
class LocationSettings(_Section):
    """Where the home is, for sunrise/sunset triggers and conditions. `structures` places
    a structure elsewhere (by name or id): { "Cabin" = { latitude = …, longitude = … } }."""

    latitude: Latitude | None = None
    longitude: Longitude | None = None
    structures: dict[str, Place] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("set both latitude and longitude, or neither")


@dataclass(kw_only=True)
class WebSettings(ListenerSettings):
    """The optional local web page (off unless `listen` is set)."""

    # listen e.g. "127.0.0.1:8470". A non-loopback address exposes the page to the
    # network: it must be asked for (allow_remote), and then every page (not only the
    # actions) needs the token.
    # Host names the page answers to besides its listen address and localhost (a name
    # for a remote listener); any other Host header is refused (DNS rebinding).
    allowed_hosts: list[str] = field(default_factory=list)
    max_connections: Annotated[int, Ge(1), Le(1024)] = 32
    max_live_viewers: Annotated[int, Ge(1), Le(64)] = 4

    def is_remote(self) -> bool:
        address = self.address()
        return address is not None and not is_loopback(address[0])


@dataclass(kw_only=True)
class Settings:
    """The whole configuration. `roost.config.load.load_settings` builds it from the file,
    the environment and the credentials; code (tests, a simulated installation) may build
    it directly, and then only the `__post_init__` checks run."""

    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    log: LogSettings = field(default_factory=LogSettings)
    accounts: list[AccountSettings] = field(default_factory=list)
    notify: NotifySettings = field(default_factory=NotifySettings)
    guards: GuardSettings = field(default_factory=GuardSettings)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    location: LocationSettings = field(default_factory=LocationSettings)
    web: WebSettings = field(default_factory=WebSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for account in self.accounts:
            if account.name in seen:
                raise FieldError("accounts", f"account name {account.name!r} is used twice")
            seen.add(account.name)
        if self.cluster.enabled and self.store.url is None:
            raise ValueError("cluster.enabled needs [store] url (a PostgreSQL database)")
        names = {a.name for a in self.accounts}
        for group in self.cluster.groups:
            unknown = [n for n in group if n not in names]
            if unknown:
                raise ValueError(f"cluster.groups names unknown accounts: {unknown}")


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


def _names_setting(section: type[Any], parts: list[str]) -> bool:
    names = {f.name for f in dataclasses.fields(section)}
    if parts[0] not in names:
        return False
    if len(parts) == 1:
        return True
    inner = get_type_hints(section)[parts[0]]
    return (
        isinstance(inner, type)
        and dataclasses.is_dataclass(inner)
        and _names_setting(inner, parts[1:])
    )


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
