"""The OAuth authorization-code grant, as the simulated clouds serve it to `roost auth`.

A person's consent is skipped: the authorize endpoint answers at once with a redirect to
the client's `redirect_uri` carrying a one-time code and the client's `state`, or, with
no `redirect_uri` (the Works with Nest PIN flow), with a page showing the code as a PIN.
The token endpoint then redeems the code once, checking the redirect URI and, when the
client sent a `code_challenge` (PKCE, RFC 7636), the `code_verifier`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from roost.simulator import http


@dataclass(frozen=True)
class _Pending:
    redirect_uri: str
    challenge: str
    method: str
    scope: str


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class CodeGrants:
    def __init__(self, client_id: str, *, pkce_required: bool = False) -> None:
        self.client_id = client_id
        self.pkce_required = pkce_required
        self._codes: dict[str, _Pending] = {}
        self.authorizations = 0
        self.redeemed = 0

    def authorize(self, request: http.Request) -> http.Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return http.Response(400, {"error": "invalid_client"})
        redirect_uri, state = q.get("redirect_uri", ""), q.get("state", "")
        challenge, method = q.get("code_challenge", ""), q.get("code_challenge_method", "plain")
        if redirect_uri and q.get("response_type", "code") != "code":
            return _redirect(redirect_uri, error="unsupported_response_type", state=state)
        if (challenge and method != "S256") or (self.pkce_required and not challenge):
            return _redirect(redirect_uri, error="invalid_request", state=state)
        code = secrets.token_urlsafe(16)
        self._codes[code] = _Pending(redirect_uri, challenge, method, q.get("scope", ""))
        self.authorizations += 1
        if not redirect_uri:
            return http.Response(200, f"Your PIN: {code}\n".encode())
        return _redirect(redirect_uri, code=code, state=state)

    def redeem(self, form: dict[str, Any]) -> str | None:
        """None when the code is good (it is then used up), else the OAuth error."""
        pending = self._codes.pop(str(form.get("code", "")), None)
        if pending is None:
            return "invalid_grant"
        if pending.redirect_uri and form.get("redirect_uri") != pending.redirect_uri:
            return "invalid_grant"
        if pending.challenge and s256(str(form.get("code_verifier", ""))) != pending.challenge:
            return "invalid_grant"
        self.redeemed += 1
        return None


def _redirect(redirect_uri: str, **params: str) -> http.Response:
    if not redirect_uri:
        return http.Response(400, {"error": params.get("error", "invalid_request")})
    separator = "&" if "?" in redirect_uri else "?"
    location = redirect_uri + separator + urlencode({k: v for k, v in params.items() if v})
    return http.Response(302, b"", {"Location": location})
