"""`roost auth sdm|netatmo|nest` against the simulators' OAuth endpoints: a real `roost`
subprocess prints the URL, the test plays the browser (it follows the vendor's redirect
to roost's loopback listener, or reads the WWN PIN and types it), and the tokens land in
the store, where the daemon then finds them."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import suppress
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.abc import Process, SocketAttribute, SocketStream
from anyio.streams.text import TextReceiveStream

from roost.providers.base import TokenSet
from roost.simulator import nest_wwn, netatmo, sdm
from roost.simulator.home import SimHome
from roost.store.sqlite import Store
from tests.test_service_lifecycle import Notifications, clean_env

pytestmark = pytest.mark.anyio


async def start_auth(*args: str) -> Process:
    return await anyio.open_process([sys.executable, "-m", "roost", "auth", *args], env=clean_env())


async def printed_url(process: Process) -> str:
    """The URL `roost auth` asks the person to open."""
    assert process.stdout is not None
    seen = ""
    with anyio.fail_after(20):
        async for text in TextReceiveStream(process.stdout):
            seen += text
            for line in seen.splitlines():
                if line.strip().startswith("http"):
                    return line.strip()
    raise AssertionError(f"no URL printed: {seen!r}")


async def finish(process: Process) -> tuple[int, str]:
    with anyio.fail_after(20):
        code = await process.wait()
    assert process.stdout is not None
    assert process.stderr is not None
    out = (await process.stdout.receive(65536)).decode() if code == 0 else ""
    return code, out


async def stored(state: Path, account: str) -> TokenSet | None:
    store = Store.open(state)
    try:
        return await store.load_token(account)
    finally:
        store.close()


SDM_ACCOUNT = """
[daemon]
state_dir = "{state}"
rules_dir = "{rules}"

[[accounts]]
name = "villa"
provider = "sdm"
api_url = "{cloud.api_url}"
token_url = "{cloud.token_url}"
pubsub_url = "{cloud.pubsub_url}"
project_id = "{cloud.names.project_id}"
client_id = "{cloud.client_id}"
client_secret = "{cloud.client_secret}"
subscription = "{cloud.subscription.name}"
pull_timeout_s = 5.0
use_stored_tokens = true
"""


async def test_sdm_code_flow_with_pkce_then_the_daemon_uses_the_tokens(tmp_path: Path) -> None:
    state, rules = tmp_path / "state", tmp_path / "rules"
    rules.mkdir()
    async with sdm.serve(SimHome.demo()) as cloud:
        config = tmp_path / "roost.toml"
        config.write_text(SDM_ACCOUNT.format(state=state, rules=rules, cloud=cloud))
        process = await start_auth("sdm", "--config", str(config),
                                   "--authorize-url", cloud.authorize_url)  # fmt: skip
        url = await printed_url(process)
        assert "code_challenge_method=S256" in url
        assert "access_type=offline" in url
        async with httpx.AsyncClient(follow_redirects=True) as browser:
            page = await browser.get(url)  # the consent page redirects to roost's listener
        assert page.status_code == 200
        assert "roost is authorized" in page.text
        code, out = await finish(process)
        assert code == 0, out
        assert "tokens stored for account 'villa'" in out
        assert cloud.code_grants.redeemed == 1
        tokens = await stored(state, "villa")
        assert tokens is not None
        assert tokens.refresh_token == cloud.refresh_token
        assert cloud.refresh_token not in out
        assert tokens.access_token not in out

        # The daemon, with no refresh token in its settings, connects with the stored ones.
        notify = Notifications(tmp_path / "notify.sock")
        async with anyio.create_task_group() as tg:
            tg.start_soon(notify.collect)
            daemon = await anyio.open_process(
                [sys.executable, "-m", "roost", "run", "--config", str(config)],
                env=clean_env() | {"NOTIFY_SOCKET": str(notify.path)},
            )
            try:
                await notify.wait("READY=1")
                ready = next(m for m in notify.texts() if "READY=1" in m)
                assert "1/1 accounts connected" in ready, ready
            finally:
                daemon.send_signal(signal.SIGTERM)
                with anyio.fail_after(20):
                    assert await daemon.wait() == 0
                tg.cancel_scope.cancel()


NETATMO_ACCOUNT = """
[daemon]
state_dir = "{state}"

[[accounts]]
name = "flat"
provider = "netatmo"
api_url = "{url}"
client_id = "{client_id}"
client_secret = "{secret}"
use_stored_tokens = true
"""


async def test_netatmo_code_flow(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with netatmo.serve(SimHome.demo()) as cloud:
        config = tmp_path / "roost.toml"
        config.write_text(NETATMO_ACCOUNT.format(
            state=state, url=cloud.url, client_id=cloud.client_id, secret=cloud.client_secret
        ))  # fmt: skip
        process = await start_auth("netatmo", "--config", str(config))
        url = await printed_url(process)
        assert url.startswith(cloud.url + "/oauth2/authorize?")
        assert "code_challenge" not in url
        async with httpx.AsyncClient(follow_redirects=True) as browser:
            assert (await browser.get(url)).status_code == 200
        code, out = await finish(process)
        assert code == 0, out
        tokens = await stored(state, "flat")
        assert tokens is not None
        assert tokens.refresh_token == cloud.refresh_token
        assert "read_thermostat" in tokens.scope


async def test_wwn_pin_flow_writes_the_credential(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with nest_wwn.serve(SimHome.demo()) as cloud:
        config = tmp_path / "roost.toml"
        config.write_text(
            f'[daemon]\nstate_dir = "{state}"\n\n[[accounts]]\nname = "house"\n'
            f'provider = "nest_wwn"\napi_url = "{cloud.url}"\ntoken = "c.old"\n'
        )
        secret = tmp_path / "product_secret"
        secret.write_text(nest_wwn.OAUTH_CLIENT_SECRET)
        credential = tmp_path / "credentials" / "nest_house_token"
        process = await start_auth(
            "nest", "--config", str(config), "--client-id", nest_wwn.OAUTH_CLIENT_ID,
            "--client-secret-file", str(secret), "--credential-file", str(credential),
            "--authorize-url", cloud.url + nest_wwn.AUTHORIZE_PATH,
            "--token-url", cloud.url + nest_wwn.ACCESS_TOKEN_PATH,
        )  # fmt: skip
        url = await printed_url(process)
        async with httpx.AsyncClient() as browser:
            page = (await browser.get(url)).text
        pin = page.split("PIN:")[1].strip()
        assert process.stdin is not None
        await process.stdin.send(pin.encode() + b"\n")
        code, out = await finish(process)
        assert code == 0, out
        assert credential.read_text().strip() == cloud.token
        assert oct(credential.stat().st_mode & 0o777) == "0o600"
        tokens = await stored(state, "house")
        assert tokens is not None
        assert tokens.access_token == cloud.token


async def test_a_redirect_with_the_wrong_state_is_refused(tmp_path: Path) -> None:
    async with netatmo.serve(SimHome.demo()) as cloud:
        config = tmp_path / "roost.toml"
        config.write_text(NETATMO_ACCOUNT.format(
            state=tmp_path, url=cloud.url, client_id=cloud.client_id, secret=cloud.client_secret
        ))  # fmt: skip
        process = await start_auth("netatmo", "--config", str(config), "--timeout", "3")
        url = await printed_url(process)
        redirect = httpx.URL(url).params["redirect_uri"]
        async with httpx.AsyncClient() as browser:
            forged = await browser.get(redirect, params={"code": "x", "state": "forged"})
        assert forged.status_code == 400
        with anyio.fail_after(20):
            assert await process.wait() == 1  # it kept waiting for the real answer, then gave up
        assert os.listdir(tmp_path) == ["roost.toml"]  # nothing stored


async def test_a_token_endpoint_that_trickles_its_answer_fails_within_a_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The code exchange has one deadline in all, as every cloud request of the daemon
    has: a token endpoint that sends its headers, then one byte now and then (far inside
    httpx's per-read timeout), ends in a clear error, not a wait without end."""
    from roost.cli import auth

    async def trickle(client: SocketStream) -> None:
        async with client:
            with suppress(anyio.BrokenResourceError, anyio.EndOfStream, OSError):
                await client.receive()
                await client.send(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n{"
                )
                while True:
                    await anyio.sleep(0.05)
                    await client.send(b" ")

    monkeypatch.setattr(auth, "EXCHANGE_DEADLINE_S", 0.5, raising=False)  # 30 s otherwise
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(listener.serve, trickle)
        port = listener.extra(SocketAttribute.local_port)
        flow = auth.Flow(
            "sdm", "home", "http://127.0.0.1/auth", f"http://127.0.0.1:{port}/token", "id", "s"
        )
        request = auth.Request("http://127.0.0.1/auth", "state", "http://127.0.0.1/cb", "")
        with anyio.fail_after(10), pytest.raises(auth.AuthError, match="no whole answer"):
            await auth.exchange(flow, request, "code")
        tg.cancel_scope.cancel()
