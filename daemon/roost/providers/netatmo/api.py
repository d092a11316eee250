"""One Netatmo API call: a budget slot, a valid token, the request, the envelope.

Reads are `GET` with query parameters, writes `POST` with a form or a JSON body. An answer
is `{"status": "ok", "body": {...}}`; anything else becomes an `ApiError`. A token Netatmo
refuses (codes 2 and 3) is refreshed once and the call repeated (it takes another slot).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from roost.providers.bounds import PayloadTooLarge, parse_json
from roost.providers.netatmo.budget import RequestBudget
from roost.providers.netatmo.errors import ApiError, from_response, from_transport
from roost.providers.oauth import RefreshTokenKeeper

Body = dict[str, Any]


class NetatmoApi:
    def __init__(
        self,
        api_url: str,
        keeper: RefreshTokenKeeper,
        budget: RequestBudget,
        client: httpx.AsyncClient,
    ) -> None:
        self._base = api_url.rstrip("/")
        self._keeper = keeper
        self._client = client
        self.budget = budget
        self.requests = 0

    async def read(self, endpoint: str, params: Mapping[str, str], *, poll: bool = True) -> Body:
        """`GET api/<endpoint>`: the answer's `body` (polls by default)."""
        return await self._call("GET", endpoint, poll=poll, params=dict(params))

    async def write(
        self,
        endpoint: str,
        *,
        form: Mapping[str, str | list[str]] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> Body:
        """`POST api/<endpoint>` with a form or a JSON body: the answer's `body` ({} if none)."""
        options: dict[str, Any] = {}
        if form is not None:
            options["data"] = dict(form)
        if json_body is not None:
            options["json"] = dict(json_body)
        try:
            return await self._call("POST", endpoint, poll=False, **options)
        except PayloadTooLarge as exc:  # a write answers with a typed failure, not a crash
            raise ApiError(200, None, str(exc)) from None

    async def webhooks_v1(self, method: str, url: str | None = None) -> None:
        """The webhook registration pyatmo 9.9 uses: `POST webhooks/v1` with `{url}` (409
        while another URL is registered), or `DELETE webhooks/v1`."""
        options = {"json": {"url": url}} if url is not None else {}
        await self._call(method, "webhooks/v1", poll=False, enveloped=False, **options)

    async def _call(
        self, method: str, endpoint: str, *, poll: bool, enveloped: bool = True, **options: Any
    ) -> Body:
        url = f"{self._base}/api/{endpoint}" if enveloped else f"{self._base}/{endpoint}"

        async def slot() -> None:  # a repeated call takes another slot
            await self.budget.acquire(poll=poll)
            self.requests += 1

        try:
            response = await self._keeper.request(
                self._client, method, url, rejected=_token_rejected, before=slot, **options
            )
        except httpx.RequestError as exc:
            raise from_transport(exc) from None
        if not response.is_success:
            raise from_response(response)
        return _body(response) if enveloped else {}


def _token_rejected(response: httpx.Response) -> bool:
    return not response.is_success and from_response(response).token_rejected


def _body(response: httpx.Response) -> Body:
    try:
        envelope = parse_json(response.content)
    except PayloadTooLarge:
        raise
    except ValueError:
        raise ApiError(response.status_code, None, "answer is not JSON") from None
    if not isinstance(envelope, dict) or envelope.get("status") != "ok":
        raise ApiError(response.status_code, None, f"unexpected answer: {str(envelope)[:200]}")
    body = envelope.get("body", {})
    return body if isinstance(body, dict) else {"value": body}
