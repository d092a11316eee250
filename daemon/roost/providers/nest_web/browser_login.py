"""`roost auth nest-web`: copy a Google account's browser login into credential files.

A Nest account that moved to Google has no password roost could use. The web app signs in
with two values from a browser signed in to home.nest.com: the `issue_token` URL and the
Google cookies sent with it. This command says where to find them, checks them (when the
web app's API key is given) by logging in once, and writes them as systemd credential
files that the account's `issue_token_credential` / `cookies_credential` name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from roost.providers.nest_web.session import (
    AUTH_PROXY_URL,
    GoogleLogin,
    LoginRefused,
    SessionUnavailable,
    google_login,
)

ISSUE_TOKEN_CREDENTIAL = "nest_web_issue_token"
COOKIES_CREDENTIAL = "nest_web_cookies"

INSTRUCTIONS = """\
Copy two values from a browser signed in to Nest with your Google account:

  1. Open a private window in Chrome or Firefox, press F12 (developer tools), open the
     Network tab, tick "Preserve log", then go to https://home.nest.com and sign in.
  2. Filter the requests for "issueToken". Click the request to
     accounts.google.com/o/oauth2/iframerpc?action=issueToken... and copy its whole
     Request URL: that is issue_token.
  3. Filter for "oauth2/iframe". Click that request and copy the whole value of its
     "cookie" request header: those are the cookies.
  4. Filter for "issue_jwt" and copy its "x-goog-api-key" request header: set it as
     google_api_key in the account's settings (it is the web app's key, not a secret).
  5. Close the private window without signing out (signing out ends these cookies).

The cookies last until you sign out or Google ends the session (months, usually); when
they stop working the account reports auth_failed: run this command again.
"""


class BrowserLoginError(Exception):
    """The values are missing or Google / Nest refused them."""


def collect(ask: Callable[[str], str]) -> tuple[str, str]:
    """The issue_token URL and the cookies, asked for one after the other."""
    issue_token = ask("issue_token URL: ").strip()
    secure = issue_token.startswith(("https://", "http://127.0.0.1:"))  # or a local simulator
    if "issueToken" not in issue_token or not secure:
        raise BrowserLoginError("that is not the issueToken request URL (see step 2)")
    cookies = ask("cookies: ").strip()
    if "=" not in cookies:
        raise BrowserLoginError("that is not a cookie header value (see step 3)")
    return issue_token, cookies


async def check(login: GoogleLogin, api_url: str = "https://home.nest.com") -> str:
    """Log in once with these values; the Nest user id, or `BrowserLoginError`."""
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            session = await google_login(client, api_url, login)
        except (LoginRefused, SessionUnavailable) as exc:
            raise BrowserLoginError(str(exc)) from None
    return session.user_id


def store(directory: Path, issue_token: str, cookies: str) -> tuple[Path, Path]:
    """Both values as credential files (0600) in `directory`."""
    from roost.auth import write_credential

    paths = directory / ISSUE_TOKEN_CREDENTIAL, directory / COOKIES_CREDENTIAL
    write_credential(paths[0], issue_token)
    write_credential(paths[1], cookies)
    return paths


def settings_snippet(account: str, api_key: str | None) -> str:
    key = api_key or "<x-goog-api-key of the issue_jwt request>"
    return (
        "[[accounts]]\n"
        f'name = "{account}"\n'
        'provider = "nest_web"\n'
        f'issue_token_credential = "{ISSUE_TOKEN_CREDENTIAL}"\n'
        f'cookies_credential = "{COOKIES_CREDENTIAL}"\n'
        f'google_api_key = "{key}"\n'
    )


__all__ = [
    "AUTH_PROXY_URL",
    "INSTRUCTIONS",
    "BrowserLoginError",
    "GoogleLogin",
    "check",
    "collect",
    "settings_snippet",
    "store",
]
