"""Secrets as systemd credentials: a setting `<what>_credential` names a file in
`$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`), read while the settings are
validated. A secret is given inline or as a credential, exactly one of the two.
`roost auth` writes credential files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from roost.core.secret import Secret

_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9_@-][A-Za-z0-9_.@-]*$")


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


def check_credential_name(name: str | None) -> str | None:
    if name is not None and not _CREDENTIAL_NAME.fullmatch(name):
        raise ValueError("must be a plain file name in $CREDENTIALS_DIRECTORY")
    return name


def optional_secret(
    value: Secret | None, credential: str | None, owner: str, what: str, stored: bool
) -> Secret | None:
    """Like `secret`; with `stored` (`use_stored_tokens = true`) neither is fine too: the
    provider then uses the tokens that `roost auth` stored in the state directory."""
    if stored and value is None and credential is None:
        return None
    try:
        return secret(value, credential, owner, what)
    except ValueError as exc:
        raise ValueError(f"{exc} (or run `roost auth` and set use_stored_tokens = true)") from None


def secret(value: Secret | None, credential: str | None, owner: str, what: str) -> Secret:
    """A secret given either inline or as a systemd credential file: exactly one of the two."""
    if (value is None) == (credential is None):
        raise ValueError(f"{owner}: set exactly one of {what} or {what}_credential")
    if credential is not None:
        return Secret(read_credential(credential, owner))
    assert value is not None
    return value


def write_credential(path: Path, value: str) -> None:
    """The token as a systemd credential file (0600, written atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
