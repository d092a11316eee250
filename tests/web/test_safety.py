"""The page's safety rules, against the real page served in-process over loopback by
roost's HTTP server, over a real daemon runtime and its SQLite store: Host check, token exchange,
the session cookie, CSRF and Origin checks on every action, a strict CSP with no inline
script, a remote listener that needs the token for every page, and the token file."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from roost.config.settings import DaemonSettings, Settings, WebSettings
from roost.service.observe import Observer
from roost.service.runtime import Runtime
from roost.web.access import ensure_token, read_token, token_path
from roost.web.app import create_app
from roost.web.link import web_commands
from roost.web.server import listening

pytestmark = pytest.mark.anyio

KEY = "dead-1"
LOCAL = WebSettings(listen="127.0.0.1:8470")


async def _runtime(tmp_path: Path, web: WebSettings) -> Runtime:
    settings = Settings(daemon=DaemonSettings(state_dir=tmp_path, rules_dir=tmp_path), web=web)
    runtime = Runtime(settings, providers=[])
    now = datetime.now(UTC)
    await runtime.store.outbox_add(KEY, {"title": "door open"}, now)
    await runtime.store.outbox_update(
        KEY, state="dead", attempts=3, delivered_to=[], next_attempt_at=now
    )
    return runtime


class Page:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient, token: str) -> None:
        self.runtime, self.client, self.token = runtime, client, token

    async def login(self) -> None:
        response = await self.client.get(f"/?token={self.token}")
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()
        assert response.headers["location"] == "/"  # the token leaves the address bar

    async def csrf(self, path: str = "/outbox") -> str:
        found = re.search(r'name="csrf" value="([^"]*)"', (await self.client.get(path)).text)
        assert found is not None
        return found.group(1)

    async def state_of(self, key: str) -> str:
        entries = await self.runtime.store.outbox_list(("pending", "dead", "delivered"))
        return next(e.state for e in entries if e.key == key)


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    async for p in _page(tmp_path, LOCAL):
        yield p


async def _page(tmp_path: Path, web: WebSettings) -> AsyncIterator[Page]:
    runtime = await _runtime(tmp_path, web)
    token = ensure_token(tmp_path)
    app = create_app(runtime, Observer(runtime.bus), web, token)
    headers = {"host": "127.0.0.1:8470"}  # the address in the settings, not the test's port
    try:
        async with (
            listening(app, web, "127.0.0.1", 0) as server,
            httpx.AsyncClient(base_url=server.url, headers=headers) as client,
        ):
            yield Page(runtime, client, token)
    finally:
        runtime.store.close()


async def test_every_page_has_a_strict_csp_and_no_inline_script(page: Page) -> None:
    for path in ("/", "/live", "/rules", "/outbox", "/charts", "/static/live.js"):
        response = await page.client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        for tag in re.findall(r"<script[^>]*>", response.text):
            assert 'src="/static/' in tag  # scripts are files, never inline


async def test_a_foreign_host_header_is_refused(page: Page) -> None:
    # DNS rebinding: evil.example resolving to 127.0.0.1 must not read the page.
    response = await page.client.get("/", headers={"host": "evil.example:8470"})
    assert response.status_code == 421
    assert "door open" not in response.text


async def test_a_wrong_token_gets_no_cookie(page: Page) -> None:
    response = await page.client.get("/?token=not-the-token")
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


async def test_retry_needs_the_session_cookie(page: Page) -> None:
    response = await page.client.post("/outbox/retry", data={"key": KEY, "csrf": "x"})
    assert response.status_code == 403
    assert await page.state_of(KEY) == "dead"


async def test_retry_needs_the_csrf_value(page: Page) -> None:
    await page.login()
    response = await page.client.post("/outbox/retry", data={"key": KEY, "csrf": "guess"})
    assert response.status_code == 403
    assert await page.state_of(KEY) == "dead"


async def test_retry_refuses_another_origin(page: Page) -> None:
    await page.login()
    csrf = await page.csrf()
    for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"}):
        response = await page.client.post(
            "/outbox/retry", data={"key": KEY, "csrf": csrf}, headers=headers
        )
        assert response.status_code == 403
    assert await page.state_of(KEY) == "dead"


async def test_retry_with_session_csrf_and_origin_works(page: Page) -> None:
    await page.login()
    csrf = await page.csrf()
    response = await page.client.post(
        "/outbox/retry",
        data={"key": KEY, "csrf": csrf},
        headers={"origin": "http://127.0.0.1:8470", "sec-fetch-site": "same-origin"},
    )
    assert response.status_code == 303
    assert await page.state_of(KEY) == "pending"


async def test_dry_run_switch_acts_on_the_daemons_dispatcher(page: Page) -> None:
    await page.login()
    csrf = await page.csrf("/")
    assert page.runtime.dispatcher.dry_run is False
    response = await page.client.post("/dry-run", data={"dry_run": "on", "csrf": csrf})
    assert response.status_code == 303
    assert page.runtime.dispatcher.dry_run is True
    assert "DRY RUN" in (await page.client.get("/")).text


async def test_an_oversized_form_is_refused(page: Page) -> None:
    await page.login()
    csrf = await page.csrf()
    response = await page.client.post("/outbox/retry", data={"key": "k" * 5000, "csrf": csrf})
    assert response.status_code == 413


async def test_a_remote_listener_needs_the_token_to_read(tmp_path: Path) -> None:
    remote = WebSettings(listen="0.0.0.0:8470", allow_remote=True, allowed_hosts=["box.lan"])
    async for p in _page(tmp_path, remote):
        assert (await p.client.get("/outbox")).status_code == 401
        assert (await p.client.get("/live/stream")).status_code == 401
        await p.login()
        assert (await p.client.get("/outbox")).status_code == 200
        box = await p.client.get("/", headers={"host": "box.lan:8470"})
        assert box.status_code == 200


async def test_the_token_file_is_owner_only_and_kept(tmp_path: Path) -> None:
    token = ensure_token(tmp_path)
    mode = stat.S_IMODE(os.stat(token_path(tmp_path)).st_mode)
    assert mode == 0o600
    assert ensure_token(tmp_path) == token  # the link keeps working across restarts
    os.chmod(token_path(tmp_path), 0o644)  # readable by others: no longer a secret
    assert read_token(tmp_path) is None
    assert ensure_token(tmp_path) != token


async def test_the_token_is_never_written_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep me\n")
    token_path(tmp_path).symlink_to(target)
    ensure_token(tmp_path)
    assert target.read_text() == "keep me\n"
    assert not token_path(tmp_path).is_symlink()


async def test_web_url_says_how_to_turn_the_page_on(tmp_path: Path) -> None:
    runtime = await _runtime(tmp_path, WebSettings())
    try:
        answer = await web_commands(runtime)["web-url"]({})
        assert isinstance(answer, dict)
        assert "listen" in answer["error"]
    finally:
        runtime.store.close()
    runtime = await _runtime(tmp_path, LOCAL)
    try:
        answer = await web_commands(runtime)["web-url"]({})
        assert isinstance(answer, dict)
        assert answer["url"] == f"http://127.0.0.1:8470/?token={read_token(tmp_path)}"
    finally:
        runtime.store.close()
