"""The web page's action token: written once (0600) to the state directory, printed as a
link by `roost web-url`, and exchanged by the browser for an HttpOnly cookie.

The cookie and the CSRF value are derived from the token (HMAC), so deleting the token
file and restarting roost invalidates every session at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

FILE_NAME = "web-token"
_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


def token_path(state_dir: Path) -> Path:
    return state_dir / FILE_NAME


def read_token(state_dir: Path) -> str | None:
    """The token, or None when there is none (or one others could have read)."""
    try:
        fd = os.open(token_path(state_dir), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, OSError):
        return None
    with os.fdopen(fd, "r", encoding="ascii", errors="replace") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            return None  # not a secret any more: make a new one
        value = f.read(256).strip()
    return value if _SHAPE.fullmatch(value) else None


def ensure_token(state_dir: Path) -> str:
    """The existing token, or a new one written owner-only (never through a symlink)."""
    existing = read_token(state_dir)
    if existing is not None:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = token_path(state_dir)
    token = secrets.token_urlsafe(32)
    temporary = path.with_name(f".{FILE_NAME}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(temporary, path)  # replaces a symlink itself, never its target
    return token


def derive(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
