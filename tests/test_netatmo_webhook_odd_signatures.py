"""A webhook whose `X-Netatmo-secret` holds bytes beyond ASCII is a forgery like any
other: 403, counted as rejected. Before the fix `hmac.compare_digest` raised TypeError on a
non-ASCII str, so such a request got a 500 and a "handler failed" line, and was not
counted (an audit of hostile input found it). The receiver listens on loopback."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest

from roost.providers.netatmo.webhook import WebhookReceiver, sign

pytestmark = pytest.mark.anyio

SECRET = "client-secret"
BODY = json.dumps({"push_type": "NCO-co_detected", "home_id": "h"}).encode()


@pytest.mark.parametrize(
    "signature", [b"\xe9", sign(SECRET, BODY).encode() + b"\xff", b"\x80" * 64]
)
async def test_a_signature_beyond_ascii_is_refused_and_counted(signature: bytes) -> None:
    woken: list[object] = []
    receiver = WebhookReceiver(SECRET, woken.append)
    async with anyio.create_task_group() as tg:
        port = await tg.start(receiver.serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{port}/"
        async with httpx.AsyncClient() as client:
            forged = await client.post(url, content=BODY, headers={"X-Netatmo-secret": signature})
            signed = await client.post(
                url, content=BODY, headers={"X-Netatmo-secret": sign(SECRET, BODY)}
            )
        tg.cancel_scope.cancel()
    assert forged.status_code == 403
    assert signed.status_code == 200
    assert (receiver.stats.rejected, receiver.stats.accepted, len(woken)) == (1, 1, 1)
