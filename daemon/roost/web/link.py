"""`roost web-url`: the running daemon answers with the page's address and its action
token as a ready link (Jupyter-style `?token=`), over the owner-only control socket."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.config.settings import WebSettings
from roost.service.control import Handler, Stream
from roost.web.access import ensure_token

if TYPE_CHECKING:
    from roost.service.runtime import Runtime

OFF = 'the web page is off: set [web] listen = "127.0.0.1:8470" in the settings and restart'


def url(settings: WebSettings, token: str) -> str:
    address = settings.address()
    assert address is not None
    host, port = address
    if settings.allowed_hosts:
        host = settings.allowed_hosts[0]
    elif host in ("0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/?token={token}"


def web_commands(runtime: Runtime) -> dict[str, Handler]:
    async def web_url(req: dict[str, Any]) -> dict[str, Any] | Stream:
        settings = runtime.settings.web
        if settings.address() is None:
            return {"error": OFF}
        return {"url": url(settings, ensure_token(runtime.settings.daemon.state_dir))}

    return {"web-url": web_url}
