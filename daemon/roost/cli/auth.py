"""`roost auth VENDOR`: authorize roost once, with the vendor's OAuth authorization-code
flow, and keep the tokens in roost's store.

roost prints the URL to open (in any browser: on a headless box, forward the port with
`ssh -L PORT:127.0.0.1:PORT box`), listens on 127.0.0.1 for the vendor's redirect,
checks its `state`, exchanges the code and stores the tokens for the account, where the
provider finds them (`use_stored_tokens = true` in that account's settings).

Each vendor's package says how (`oauth(account)` → `OAuthApp`: its consent page, token
endpoint, scopes, PKCE or not). A vendor whose app is not in the account's settings takes
it from `--client-id` and `--client-secret-file`; one that shows the code as a PIN has it
pasted here (or redirects to the loopback with `--loopback`); a vendor whose provider
reads its long-lived token from the settings gets it written by `--credential-file`.

Tokens are never printed. Run it as the daemon's user, or as root (then the store files
it creates are given to the state directory's owner, the service's dynamic user).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

import anyio
import httpx

from roost.core import redact
from roost.host import httpserver, listeners
from roost.host.credentials import write_credential
from roost.host.safefs import give_to
from roost.providers.base import OAuthApp, RequestDeadlines, TokenSet
from roost.providers.deadlines import TotalTimeout, bounded, deadline
from roost.providers.registry import VENDORS, OwnLogin, vendor
from roost.store.sqlite import FILE_NAME, StoreError

if TYPE_CHECKING:
    from roost.config.settings import Settings

CALLBACK = "/callback"
# The whole code exchange, headers and body: as long as the daemon gives a token refresh.
EXCHANGE_DEADLINE_S = RequestDeadlines().refresh_s
CALLBACK_LIMITS = listeners.Limits(max_connections=16, max_request=16384)
# `roost auth NAME` → vendor: the vendors with an OAuth app, by their command name ...
PROVIDERS = {
    getattr(vendor(name), "AUTH_COMMAND", name): name
    for name in VENDORS
    if vendor(name).oauth is not None
}
# ... and those with a login of their own (copied by hand from a browser, say).
LOGINS: dict[str, OwnLogin] = {
    getattr(vendor(name), "AUTH_COMMAND", name): cast(OwnLogin, vendor(name))
    for name in VENDORS
    if getattr(vendor(name), "login_command", None) is not None
}


class AuthError(Exception):
    """Why authorizing did not work, for the person at the terminal."""


@dataclass(frozen=True)
class Flow:
    vendor: str
    account: str
    authorize_url: str
    token_url: str
    client_id: str
    client_secret: str
    scope: str = ""
    pkce: bool = False
    pin: bool = False  # the code is shown to the person, not redirected
    scope_in_exchange: bool = False
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One authorization attempt: where to send the person, and what to expect back."""

    url: str
    state: str
    redirect_uri: str
    verifier: str


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def build_request(flow: Flow, redirect_uri: str) -> Request:
    state = secrets.token_urlsafe(16)
    params = {"client_id": flow.client_id, "state": state}
    verifier = ""
    if not flow.pin:
        params |= {"redirect_uri": redirect_uri, "response_type": "code"}
    if flow.scope:
        params["scope"] = flow.scope
    if flow.pkce:
        verifier, challenge = pkce_pair()
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    params |= flow.extra
    separator = "&" if "?" in flow.authorize_url else "?"
    return Request(
        flow.authorize_url + separator + urlencode(params), state, redirect_uri, verifier
    )


async def exchange(flow: Flow, request: Request, code: str) -> TokenSet:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": flow.client_id,
        "client_secret": flow.client_secret,
    }
    if not flow.pin:
        form["redirect_uri"] = request.redirect_uri
    if flow.pkce:
        form["code_verifier"] = request.verifier
    if flow.scope and flow.scope_in_exchange:
        form["scope"] = flow.scope
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            with deadline(EXCHANGE_DEADLINE_S):
                response = await bounded(client.post(flow.token_url, data=form))
        except TotalTimeout as exc:
            raise AuthError(f"the token endpoint gave {exc}") from None
        except httpx.HTTPError as exc:
            raise AuthError(f"the token endpoint cannot be reached: {type(exc).__name__}") from None
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not response.is_success or not isinstance(body, dict):
        error = body.get("error", "") if isinstance(body, dict) else ""
        raise AuthError(f"the code was refused: HTTP {response.status_code} {error}".rstrip())
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise AuthError("the token endpoint answered without an access token")
    refresh = body.get("refresh_token")
    expires_in = body.get("expires_in")
    scope = body.get("scope", "")
    return TokenSet(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=(
            datetime.now(UTC) + timedelta(seconds=float(expires_in))
            if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
            else None
        ),
        scope=" ".join(scope) if isinstance(scope, list) else str(scope),
    )


# ---- the loopback redirect ---------------------------------------------------------------

_PAGE = """<!doctype html><meta charset="utf-8"><title>roost</title>
<body style="font-family:sans-serif;margin:3em"><h1>{title}</h1><p>{text}</p></body>
"""


async def receive_code(
    listener: Any, state: str, timeout_s: float
) -> tuple[str | None, str | None]:
    """Serve the redirect until it arrives: (code, None) or (None, the vendor's error)."""
    found: dict[str, str] = {}
    done = anyio.Event()

    async def answer(request: httpserver.Request) -> httpserver.Response:
        query = request.query
        if request.path != CALLBACK or not ({"code", "error"} & query.keys()):
            return _page(404, "Not here", "roost is waiting on /callback.")
        if query.get("state") != state:
            return _page(400, "Wrong state", "Start again with `roost auth`.")
        if "error" in query:
            found["error"] = query["error"]
            title, text = "Not authorized", f"The vendor said: {html.escape(query['error'])}"
        else:
            found["code"] = query["code"]
            title, text = "roost is authorized", "You can close this tab."
        # the answer counts even when the browser left before the page
        return _page(200, title, text, sent=done.set)

    async with anyio.create_task_group() as tg:
        tg.start_soon(httpserver.Server(answer, "oauth callback", CALLBACK_LIMITS).serve, listener)
        with anyio.move_on_after(timeout_s):
            await done.wait()
        tg.cancel_scope.cancel()
    if not found:
        raise AuthError(f"no answer from the browser within {timeout_s:.0f} s")
    return found.get("code"), found.get("error")


def _page(
    status: int, title: str, text: str, sent: Callable[[], None] | None = None
) -> httpserver.Response:
    body = _PAGE.format(title=title, text=text).encode()
    return httpserver.Response(status, body, {"content-type": "text/html; charset=utf-8"}, sent)


# ---- storing ---------------------------------------------------------------------------


async def store_tokens(settings: Settings, account: str, tokens: TokenSet) -> None:
    """Into the store the settings name: the SQLite file (then given to the state
    directory's owner), or the fleet's PostgreSQL database."""
    from roost.service.stores import open_store

    try:
        store = open_store(settings)
    except StoreError as exc:
        raise AuthError(str(exc)) from None
    try:
        await store.save_token(account, tokens)
    finally:
        await store.aclose()
    if settings.store.url is None:
        give_to_state_owner(settings.daemon.state_dir)


def stored_where(settings: Settings) -> str:
    return "the PostgreSQL store" if settings.store.url else str(settings.daemon.state_dir)


def give_to_state_owner(state_dir: Path) -> None:
    """Run as root for a service with DynamicUser=: files root just created in the state
    directory would be unwritable for the service; hand them to the directory's owner."""
    if os.geteuid() != 0:
        return
    owner = state_dir.stat()
    if owner.st_uid == 0:
        return
    for path in state_dir.glob(FILE_NAME + "*"):
        if path.lstat().st_uid == 0 and not give_to(path, owner.st_uid, owner.st_gid):
            print(f"roost auth: {path} is not a regular file; not changing its owner")


# ---- the command -----------------------------------------------------------------------


def add_command(sub: Any) -> None:
    auth = sub.add_parser(
        "auth",
        help="authorize roost with a vendor (OAuth), storing the tokens",
        description="Runs the vendor's OAuth authorization-code flow: prints a URL to open, "
        "receives the answer on 127.0.0.1 and stores the tokens for the account.",
    )
    auth.add_argument("vendor", choices=sorted([*PROVIDERS, *LOGINS]), help="the vendor")
    auth.add_argument("--account", help="the account's name (default: the only one)")
    auth.add_argument("--config", type=Path, help="the TOML settings file")
    auth.add_argument("--port", type=int, default=0, help="loopback port (default: any free)")
    auth.add_argument("--timeout", type=float, default=600, help="seconds to wait (600)")
    auth.add_argument("--authorize-url", help="the vendor's consent page (default: the real)")
    auth.add_argument("--token-url", help="the token endpoint (default: from the settings)")
    app = auth.add_argument_group("a vendor whose account settings hold no OAuth client")
    app.add_argument("--client-id", help="the app's client id")
    app.add_argument("--client-secret-file", type=Path, help="a file with the app's secret")
    app.add_argument("--loopback", action="store_true", help="redirect instead of a PIN")
    app.add_argument("--credential-file", type=Path, help="also write the token here (0600)")
    for login in LOGINS.values():
        login.add_login_arguments(auth)
    auth.set_defaults(func=auth_command)


def _account(settings: Any, vendor: str, name: str | None) -> Any:
    wanted = PROVIDERS[vendor]
    accounts = [a for a in settings.accounts if a.provider == wanted]
    if name is not None:
        accounts = [a for a in accounts if a.name == name]
    if len(accounts) != 1:
        names = ", ".join(a.name for a in settings.accounts if a.provider == wanted) or "none"
        which = f"named {name!r} " if name else ""
        raise AuthError(
            f"need exactly one {wanted} account {which}in the settings (found: {names}); "
            "use --account NAME"
        )
    return accounts[0]


def make_flow(args: argparse.Namespace, account: Any) -> Flow:
    oauth = vendor(account.provider).oauth
    assert oauth is not None  # PROVIDERS holds only vendors with an app
    app: OAuthApp = oauth(account)
    client_id, secret = app.client_id, app.client_secret
    if client_id is not None and secret is not None:
        client = (client_id, secret.get_secret_value())
    else:
        client = _client_from_args(args)
    return Flow(
        args.vendor,
        account.name,
        args.authorize_url or app.authorize_url,
        args.token_url or app.token_url,
        *client,
        app.scope,
        pkce=app.pkce,
        pin=app.pin and not args.loopback,
        scope_in_exchange=app.scope_in_exchange,
        extra=dict(app.extra),
    )


def _client_from_args(args: argparse.Namespace) -> tuple[str, str]:
    if not args.client_id or args.client_secret_file is None:
        raise AuthError("this vendor needs --client-id and --client-secret-file (the app's)")
    try:
        return args.client_id, args.client_secret_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AuthError(f"cannot read {args.client_secret_file}: {exc.strerror}") from None


def auth_command(args: argparse.Namespace) -> int:
    from roost.config.load import load_settings
    from roost.config.settings import ConfigError

    if args.vendor in LOGINS:
        return LOGINS[args.vendor].login_command(args)
    try:
        settings = load_settings(args.config)
        account = _account(settings, args.vendor, args.account)
        flow = make_flow(args, account)
        redact.remember(flow.client_secret)
        tokens = anyio.run(_authorize, flow, args)
        anyio.run(store_tokens, settings, account.name, tokens)
        if args.credential_file is not None:
            write_credential(args.credential_file, tokens.access_token)
    except (ConfigError, AuthError) as exc:
        print(f"roost auth: {redact.redact_text(str(exc))}", file=sys.stderr)
        return 1
    expires = f", access token valid until {tokens.expires_at:%Y-%m-%d %H:%M} UTC"
    print(
        f"tokens stored for account {account.name!r} in {stored_where(settings)}"
        + (expires if tokens.expires_at else "")
        + ("; with a refresh token" if tokens.refresh_token else "")
    )
    if hasattr(account, "use_stored_tokens") and not account.use_stored_tokens:
        print(
            f"set use_stored_tokens = true in account {account.name!r} (and drop its "
            "refresh_token) so the daemon uses them; then `systemctl restart roost`"
        )
    if not hasattr(account, "use_stored_tokens") and args.credential_file is None:
        print("this account reads its token from the settings: rerun with --credential-file")
    return 0


async def _authorize(flow: Flow, args: argparse.Namespace) -> TokenSet:
    if flow.pin:
        request = build_request(flow, "")
        print(f"Open this URL, sign in and allow roost:\n\n  {request.url}\n", flush=True)
        code = (await anyio.to_thread.run_sync(input, "Then paste the PIN here: ")).strip()
        if not code:
            raise AuthError("no PIN given")
        return await exchange(flow, request, code)
    try:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=args.port)
    except OSError as exc:
        raise AuthError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    async with listener:
        port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
        request = build_request(flow, f"http://127.0.0.1:{port}{CALLBACK}")
        print(
            f"Open this URL, sign in and allow roost:\n\n  {request.url}\n\n"
            f"Waiting for the answer on 127.0.0.1:{port} (on another machine, first run "
            f"`ssh -L {port}:127.0.0.1:{port} THIS-HOST`) …",
            flush=True,
        )
        received, error = await receive_code(listener, request.state, args.timeout)
    if error is not None or received is None:
        raise AuthError(f"authorization refused: {error}")
    return await exchange(flow, request, received)
