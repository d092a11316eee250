"""The Nest web login of today's Google accounts, against the simulator over loopback.

issue_token URL + browser cookies → Google access token → the auth proxy's issue_jwt → a
Nest JWT used as the session token (PROTOCOLS.md §2.1). The JWT lasts an hour, so the
provider renews it before it ends; when the cookies expire the account is `auth_failed`
with a message that says how to copy them again.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost.core.events import ConnectionState
from roost.core.model import AlarmState
from roost.providers.nest_web.provider import NestWebProvider
from roost.simulator import nest_web
from roost.simulator.home import SimHome
from tests.provider_kit import make
from tests.recording import RecordingSink

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def google_account(
    cookies: str = nest_web.GOOGLE_COOKIES, jwt_lifetime_s: float | None = None
) -> AsyncIterator[tuple[nest_web.NestWebSimulator, RecordingSink, NestWebProvider]]:
    async with nest_web.serve(SimHome.demo(), hold_s=0.2) as sim:
        sim.jwt_lifetime_s = jwt_lifetime_s
        options: dict[str, Any] = {
            "issue_token": sim.issue_token_url(),
            "cookies": cookies,
            "google_api_key": nest_web.GOOGLE_API_KEY,
            "auth_proxy_url": sim.url,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.2,
        }
        async with make(NestWebProvider, "nest_web", api_url=sim.url, **options) as web:
            sink = RecordingSink()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(web.run, sink)
                yield sim, sink, web
                tasks.cancel_scope.cancel()


async def test_a_google_account_logs_in_with_cookies_and_streams_the_home() -> None:
    async with google_account() as (sim, sink, web):
        await sink.wait_for(lambda: bool(sink.snapshots))
        assert sim.jwts_issued == 1
        assert web.stats.logins == 1
        assert ConnectionState.CONNECTED in sink.states
        sim.home.set_co("alarm-hallway", "emergency")
        await sink.wait_for(lambda: sink.latest.devices["alarm-hallway"].co is AlarmState.EMERGENCY)


async def test_the_jwt_is_renewed_before_it_ends() -> None:
    # a JWT of 5 min 2 s is due for renewal 2 s after it is issued (the margin is 5 min)
    async with google_account(jwt_lifetime_s=302) as (sim, sink, _):
        await sink.wait_for(lambda: bool(sink.snapshots))
        await sink.wait_for(lambda: sim.jwts_issued >= 2, limit_s=10)
        assert ConnectionState.AUTH_FAILED not in sink.states


async def test_expired_cookies_are_auth_failed_with_what_to_do() -> None:
    async with google_account(cookies="SID=stale") as (sim, sink, _):
        await sink.wait_for(lambda: ConnectionState.AUTH_FAILED in sink.states)
        assert sim.jwts_issued == 0
        assert "roost auth nest-web" in sink.statuses[-1][1]


async def test_signed_out_mid_session_is_auth_failed_once_the_jwt_is_refused() -> None:
    async with google_account() as (sim, sink, _):
        await sink.wait_for(lambda: bool(sink.snapshots))
        sim.sign_out_google()
        sim.expire_sessions()
        await sink.wait_for(lambda: ConnectionState.AUTH_FAILED in sink.states)


def test_roost_auth_nest_web_explains_checks_and_stores_the_browser_login(
    tmp_path: Path,
) -> None:
    """The command as a user runs it: instructions, two pasted values, a login checked
    against the (simulated) cloud, two 0600 credential files and the settings to add."""

    async def scenario() -> subprocess.CompletedProcess[str]:
        async with nest_web.serve(SimHome.demo(), hold_s=0.2) as sim:
            pasted = f"{sim.issue_token_url()}\n"
            pasted += f"{nest_web.GOOGLE_COOKIES}\n"
            command = [
                sys.executable, "-m", "roost", "auth", "nest-web",
                "--credential-dir", str(tmp_path),
                "--google-api-key", nest_web.GOOGLE_API_KEY,
                "--api-url", sim.url, "--auth-proxy-url", sim.url,
            ]  # fmt: skip
            return await anyio.to_thread.run_sync(
                lambda: subprocess.run(
                    command, input=pasted, capture_output=True, text=True, timeout=60
                )
            )

    done = anyio.run(scenario)
    assert done.returncode == 0, done.stderr
    assert "issueToken" in done.stdout  # the instructions
    assert "logged in: Nest user" in done.stdout
    assert 'issue_token_credential = "nest_web_issue_token"' in done.stdout
    for name in ("nest_web_issue_token", "nest_web_cookies"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "nest_web_cookies").read_text().strip() == nest_web.GOOGLE_COOKIES
