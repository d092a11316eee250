"""A Pub/Sub pull whose answer holds a delivery roost cannot use (no ackId, an ackId that is
not a non-empty string, no message, not an object) beside good ones: the bad one is logged,
counted and skipped, the others are handled. Before, one such entry failed the whole pull,
and since it came again with every pull, no message of the subscription was ever handled.
(SDM has no smoke/CO devices; a doorbell chime stands for the message that must get
through.) Against the SDM simulator over loopback: the provider alone, then the whole
daemon pushing to the sink."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost.core.events import Chime
from roost.testing.stack import running_stack
from tests.test_sdm_provider import DOORBELL, WAIT_S, rig

pytestmark = pytest.mark.anyio

RULES = Path(__file__).parent.parent / "rules"


def _message(payload: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    return {"data": data, "messageId": "odd-1", "publishTime": "2026-01-01T00:00:00.000Z"}


# (entry, whether it can be acknowledged)
ODD = [
    {"message": _message({"eventId": "odd-no-ack", "timestamp": "2026-01-01T00:00:00Z"})},
    {"ackId": 7, "message": _message({"eventId": "odd-int-ack"})},
    {"ackId": "", "message": _message({"eventId": "odd-empty-ack"})},
    {"ackId": None},
    "not an object",
    {"ackId": "odd-ack-without-message"},
]


async def test_an_unusable_delivery_is_skipped_and_the_rest_of_the_pull_handled() -> None:
    async with rig() as r:
        r.sim.subscription.odd_entries = list(ODD)  # beside every delivery from now on
        r.home.doorbell_chime(DOORBELL)
        await r.sink.wait_for(lambda: bool(r.sink.events(Chime)), WAIT_S)
        await r.idle()
        assert r.provider.stats.sessions == 1  # no pull failed: no new session, no resync
        assert r.provider.stats.malformed >= len(ODD)
        # The one with an ackId but no message was acknowledged, so it will not come again.
        assert r.provider.stats.ack_failures == 0


async def test_a_doorbell_push_gets_through_beside_an_unusable_delivery(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path, vendor="sdm") as stack:
        await stack.connected()
        stack.cloud.subscription.odd_entries = list(ODD)
        stack.home.doorbell_chime(DOORBELL)
        with anyio.fail_after(10):
            received = await stack.sink.wait_for(1)
        assert received[0]["title"] == "Someone is at the Front Door"
