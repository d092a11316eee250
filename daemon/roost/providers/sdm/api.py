"""The Google HTTP calls the SDM provider makes: SDM REST reads and commands, and the Pub/Sub
pull subscription. Every call carries a fresh access token; a 401 invalidates it and the
call is made once more with a new one. Non-2xx answers raise `ApiError`, a call without
an answer `TransportError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from roost.providers.bounds import PayloadTooLarge, parse_json
from roost.providers.http import http_date, transport_error
from roost.providers.oauth import RefreshTokenKeeper
from roost.providers.sdm import SdmAccount
from roost.providers.sdm.errors import ApiError
from roost.providers.sdm.messages import PayloadError, Pulled, parse_pull

REQUEST_TIMEOUT_S = 15.0
REQUEST_TIMEOUT = httpx.Timeout(REQUEST_TIMEOUT_S)


@dataclass(frozen=True)
class Answer:
    body: Any
    server_time: datetime | None  # the `Date` header: Google's clock, to the second


class SdmClient:
    def __init__(
        self, client: httpx.AsyncClient, auth: RefreshTokenKeeper, settings: SdmAccount
    ) -> None:
        self._client = client
        self._auth = auth
        self._api = settings.api_url.rstrip("/")
        self.enterprise = f"enterprises/{settings.project_id}"
        pubsub, subscription = settings.pubsub_url.rstrip("/"), settings.subscription.strip("/")
        self._subscription = f"{pubsub}/{subscription}"

    def device_name(self, device_id: str) -> str:
        return f"{self.enterprise}/devices/{device_id}"

    # -- SDM -------------------------------------------------------------------------------

    async def list_structures(self) -> Answer:
        return await self._call("GET", f"{self._api}/{self.enterprise}/structures")

    async def list_devices(self) -> Answer:
        return await self._call("GET", f"{self._api}/{self.enterprise}/devices")

    async def get_device(self, name: str) -> Answer:
        return await self._call("GET", f"{self._api}/{name}")

    async def execute(self, name: str, body: dict[str, Any]) -> Answer:
        return await self._call("POST", f"{self._api}/{name}:executeCommand", body)

    # -- Pub/Sub ---------------------------------------------------------------------------

    async def pull(self, max_messages: int, timeout_s: float) -> Pulled:
        """A long poll: Pub/Sub answers when messages are there, or empty after a while."""
        answer = await self._call(
            "POST", f"{self._subscription}:pull", {"maxMessages": max_messages}, timeout_s
        )
        return parse_pull(answer.body)

    async def acknowledge(self, ack_ids: list[str]) -> None:
        await self._call("POST", f"{self._subscription}:acknowledge", {"ackIds": ack_ids})

    async def modify_ack_deadline(self, ack_ids: list[str], seconds: int) -> None:
        body = {"ackIds": ack_ids, "ackDeadlineSeconds": seconds}
        await self._call("POST", f"{self._subscription}:modifyAckDeadline", body)

    # -- the call --------------------------------------------------------------------------

    async def _call(
        self, method: str, url: str, body: Any = None, read_timeout_s: float | None = None
    ) -> Answer:
        timeout = REQUEST_TIMEOUT
        if read_timeout_s is not None:
            timeout = httpx.Timeout(REQUEST_TIMEOUT_S, read=read_timeout_s)
        try:
            response = await self._auth.request(
                self._client, method, url, json=body, timeout=timeout, hold_s=read_timeout_s or 0.0
            )
        except httpx.RequestError as exc:
            raise transport_error(exc) from exc
        if not response.is_success:
            raise ApiError.from_response(response)
        return Answer(_json(response), http_date(response.headers.get("date")))


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return {}
    try:
        return parse_json(response.content)
    except PayloadTooLarge as exc:
        raise PayloadError(f"{response.request.url.path}: {exc}") from None
    except ValueError:
        raise PayloadError(f"{response.request.url.path}: the answer is not JSON") from None
