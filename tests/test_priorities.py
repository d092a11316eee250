"""Urgent is urgent: each push service gets a notification's priority in its own terms.

Where a service lets the host be chosen (ntfy, Gotify, Bark), apprise delivers to a real
local HTTP endpoint and the test reads the priority from the request the service would
have received. For the others (hosted APIs), the test checks the URL apprise is given by
letting apprise itself parse it: the priority apprise would send.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from roost.config.settings import SAFE_NOTIFY_SCHEMES
from roost.notify.notifier import Notification, Priority, Target, _send, restrict_schemes
from roost.notify.priorities import SERVICE_PRIORITIES, with_priority
from roost.simulator.http import Request, Response, serve

pytestmark = pytest.mark.anyio

LEVELS = list(Priority)


@pytest.fixture(autouse=True)
def allow_every_mapped_scheme() -> Iterator[None]:
    """apprise's scheme allow-list is process-wide: each daemon sets it from its settings
    (by default without Bark, Join, …), so allow here what the priority table names."""
    restrict_schemes([scheme for schemes in SERVICE_PRIORITIES for scheme in schemes])
    yield
    restrict_schemes(SAFE_NOTIFY_SCHEMES)


async def deliver(url_of: Any, priority: Priority) -> Request:
    """Send one notification through apprise to a local server; the request it made."""
    received: list[Request] = []

    async def handle(request: Request) -> Response:
        received.append(request)
        return Response(200, {"id": 1, "success": True, "code": 200, "message": "ok"})

    async with serve(handle) as server:
        note = Notification("k", "CO!", "get out", priority=priority)
        assert await _send(Target(url_of(server.port)), note)
    (request,) = received
    return request


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (Priority.LOW, "low"),
        (Priority.NORMAL, None),  # ntfy's default: apprise leaves it out
        (Priority.HIGH, "high"),
        (Priority.URGENT, "max"),
    ],
)
async def test_ntfy_receives_its_priority(priority: Priority, expected: str | None) -> None:
    request = await deliver(lambda port: f"ntfy://127.0.0.1:{port}/home", priority)
    sent = request.headers.get("x-priority") or json.loads(request.body).get("priority")
    assert sent == expected


@pytest.mark.parametrize(
    ("priority", "expected"),
    [(Priority.LOW, 0), (Priority.NORMAL, 5), (Priority.HIGH, 8), (Priority.URGENT, 10)],
)
async def test_gotify_receives_its_priority(priority: Priority, expected: int) -> None:
    request = await deliver(lambda port: f"gotify://127.0.0.1:{port}/AbCdEfGhIjKlMnO", priority)
    assert request.path.endswith("/message")
    assert json.loads(request.body)["priority"] == expected


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        (Priority.LOW, "passive"),
        (Priority.NORMAL, "active"),
        (Priority.HIGH, "timeSensitive"),
        (Priority.URGENT, "critical"),
    ],
)
async def test_bark_receives_its_level(priority: Priority, expected: str) -> None:
    request = await deliver(lambda port: f"bark://127.0.0.1:{port}/device-key", priority)
    assert json.loads(request.body)["level"] == expected


# Hosted services (fixed API hosts): what apprise makes of the URL roost gives it, in the
# service's own numbers, for low, normal, high, urgent.
HOSTED = {
    # Pushover: -1 quiet, 0 normal, 1 high (through quiet hours), 2 emergency (repeats)
    "pover": (
        "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
        [-1, 0, 1, 2],
    ),
    "tgram": ("tgram://123456789:abcdefg_hijklmnop/12315544", [True, False, False, False]),
    "join": ("join://abcdefghijklmnopqrstuvwxyz012345/device", [-1, 0, 1, 2]),
    "prowl": ("prowl://abcdefghijklmnopqrstuvwxyz0123456789abcd", [-1, 0, 1, 2]),
    # apprise sends "P{n}"; Opsgenie's P1 is critical
    "opsgenie": ("opsgenie://abcdefghijklmnopqrstuvwxyz0123456789/@user", [5, 3, 2, 1]),
    "psafers": ("psafers://abcdefghijklmnopqrst", [-1, 0, 1, 2]),
    "lametric": (
        "lametric://abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123@192.0.2.3/",
        ["info", "info", "warning", "critical"],
    ),
}


@pytest.mark.parametrize("service", sorted(HOSTED))
def test_a_hosted_service_is_given_its_priority(service: str) -> None:
    import apprise

    url, expected = HOSTED[service]
    got = []
    for priority in LEVELS:
        plugin = apprise.Apprise.instantiate(with_priority(url, priority.value))
        assert plugin is not None, f"apprise refused the {service} URL"
        got.append(plugin.silent if service == "tgram" else plugin.priority)
    assert got == expected


def test_every_mapped_service_has_a_test() -> None:
    tested = {"ntfy", "gotify", "bark", *HOSTED}
    for schemes, _ in SERVICE_PRIORITIES.items():
        assert tested.intersection(schemes), f"{schemes} has no test"


def test_a_priority_written_in_the_url_is_kept() -> None:
    url = "ntfys://ntfy.sh/home?priority=min"
    assert with_priority(url, "urgent") == url
    assert with_priority("ntfys://ntfy.sh/home", "urgent") == "ntfys://ntfy.sh/home?priority=max"
    assert with_priority("json://h/x?a=1", "urgent") == "json://h/x?a=1"  # no priority there
