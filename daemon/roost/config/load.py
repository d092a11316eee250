"""Reading the settings: the TOML file, `ROOST_` environment overrides and systemd
credentials, validated by pydantic-settings into the plain dataclasses of `settings.py`.

`load_settings()` is the one entry point: it reports every problem as a `ConfigError`
naming the file, the line (best effort) and the setting. `roost run` calls it in a child
process (`host.child.run_in_child`), so that the daemon never imports pydantic (~10 MiB of
idle RSS); the short-lived commands and the tests call it here.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self, TypeVar, Union, cast

from pydantic import Field, PrivateAttr, TypeAdapter, ValidationError, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from roost.config.settings import (
    ENV_DELIMITER,
    ENV_PREFIX,
    ClusterSettings,
    ConfigError,
    DaemonSettings,
    DispatchSettings,
    GuardSettings,
    LocationSettings,
    LogSettings,
    MetricsSettings,
    NotifySettings,
    Settings,
    StoreSettings,
    WebSettings,
)
from roost.config.tomllines import find_line
from roost.core.checks import FieldError
from roost.providers.accounts import AccountBase
from roost.providers.registry import account_models

T = TypeVar("T")

# The TOML file of the _Root() being built. load_settings() sets it, because a constructor
# argument can't reach settings_customise_sources; no file is read at import time.
_toml_file: ContextVar[Path | None] = ContextVar("roost_toml_file", default=None)

# An account is one of the vendors' models, the `provider` key picking which.
if TYPE_CHECKING:
    Account = AccountBase
else:
    Account = Annotated[Union[account_models()], Field(discriminator="provider")]  # noqa: UP007


class _Root(BaseSettings):
    """`Settings` as pydantic-settings reads it (the same fields; see test_config)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid"
    )

    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    accounts: list[Account] = []
    notify: NotifySettings = Field(default_factory=NotifySettings)
    guards: GuardSettings = Field(default_factory=GuardSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    location: LocationSettings = Field(default_factory=LocationSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    _plain: Settings | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _as_plain(self) -> Self:
        """The plain settings (their `__post_init__` checks the sections together)."""
        fields = {spec.name: getattr(self, spec.name) for spec in dataclasses.fields(Settings)}
        self._plain = Settings(**fields)
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
        root = _Root()
    except ValidationError as exc:
        # A default that depends on a failed field adds nothing to that field's own error.
        errors = [
            e for e in exc.errors(include_input=False) if e["type"] != "default_factory_not_called"
        ]
        lines = [line for e in errors for line in _describe(e, path, text, os.environ)]
        raise ConfigError("\n".join(lines)) from None
    finally:
        _toml_file.reset(token)
    assert root._plain is not None  # built by _as_plain
    return root._plain


def validated(section: type[T], **values: Any) -> T:
    """A section (or an account) from `values`, validated as the settings file's would be:
    for code and tests that build settings without a file. Raises ValidationError."""
    adapter = _ADAPTERS.get(section)
    if adapter is None:
        adapter = _ADAPTERS[section] = TypeAdapter(section)
    return cast(T, adapter.validate_python(values))


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


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


def _describe(
    error: ErrorDetails, path: Path | None, text: str, env: Mapping[str, str]
) -> list[str]:
    """`where: setting: message` for the error (one per field a FieldError names)."""
    loc = _without_tags(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):  # a section's check that is about some of its fields
        return [_line((*loc, field), why, path, text, env) for field, why in cause.problems]
    if error["type"] == "unexpected_keyword_argument":  # a dataclass's word for it
        message = "Extra inputs are not permitted"
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, "provider")
        known = error.get("ctx", {}).get("expected_tags", "")
        message = f"unknown or missing provider; known providers: {known}"
    return [_line(loc, message, path, text, env)]


def _line(
    loc: tuple[int | str, ...], message: str, path: Path | None, text: str, env: Mapping[str, str]
) -> str:
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
