"""Which settings file a `roost` command reads, the same way for every subcommand:
`--config FILE`, else `$ROOST_CONFIG`, else /etc/roost/roost.toml if it exists, else none
(the defaults). A file named explicitly (option or variable) that is not there is an error,
not a silent fall back to the defaults."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "ROOST_CONFIG"
SERVICE_CONFIG = Path("/etc/roost/roost.toml")


class ConfigPathError(ValueError):
    pass


def resolve_config(explicit: Path | None) -> Path | None:
    if explicit is not None:
        path, named_by = explicit, "--config"
    elif os.environ.get(ENV):
        path, named_by = Path(os.environ[ENV]), f"${ENV}"
    else:
        return SERVICE_CONFIG if SERVICE_CONFIG.is_file() else None
    if not path.is_file():
        raise ConfigPathError(f"{named_by}: no settings file at {path}")
    return path
