"""`roost auth nest-web`: copy a Google account's browser login into credential files.

A Nest account that moved to Google has no password roost could use. The web app signs in
with two values from a browser signed in to home.nest.com: the `issue_token` URL and the
Google cookies sent with it. This command says where to find them, checks them (when the
web app's API key is given) by logging in once, and writes them as systemd credential
files that the account's `issue_token_credential` / `cookies_credential` name.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
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
    from roost.host.credentials import write_credential

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


def add_arguments(auth: Any) -> None:
    """`roost auth nest-web`'s options, on the `roost auth` parser."""
    web = auth.add_argument_group("Nest web API (a Google account's browser login)")
    web.add_argument(
        "--credential-dir",
        type=Path,
        default=Path("/etc/roost/credentials"),
        help="where to write nest_web_issue_token and nest_web_cookies (0600)",
    )
    web.add_argument("--google-api-key", help="the web app's key: check the login at once")
    web.add_argument("--api-url", default="https://home.nest.com", help=argparse.SUPPRESS)
    web.add_argument("--auth-proxy-url", help=argparse.SUPPRESS)


def command(args: argparse.Namespace) -> int:
    """Explain, collect, check (with --google-api-key) and store a browser login."""
    print(INSTRUCTIONS)
    try:
        issue_token, cookies = collect(input)
        if args.google_api_key:
            proxy = args.auth_proxy_url or AUTH_PROXY_URL
            login = GoogleLogin(issue_token, cookies, args.google_api_key, proxy)
            user = anyio.run(check, login, args.api_url)
            print(f"logged in: Nest user {user}")
        paths = store(args.credential_dir, issue_token, cookies)
    except (BrowserLoginError, EOFError) as exc:
        print(f"roost auth nest-web: {exc or 'no input'}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"roost auth nest-web: cannot write credentials: {exc}", file=sys.stderr)
        return 1
    print(f"written: {paths[0]} and {paths[1]} (0600). Add to the settings:\n")
    print(settings_snippet(args.account or "home", args.google_api_key))
    print("and hand both files to the service with LoadCredential= (README, Nest web API).")
    return 0


__all__ = [
    "AUTH_PROXY_URL",
    "INSTRUCTIONS",
    "BrowserLoginError",
    "GoogleLogin",
    "add_arguments",
    "check",
    "collect",
    "command",
    "settings_snippet",
    "store",
]
