"""The web page as a Starlette application: pages rendered by Jinja2 (autoescaped), live
events over SSE, and three token-protected actions.

Safety, in the order a request meets it: the Host header must name this listener
(DNS rebinding); `?token=` is exchanged for an HttpOnly SameSite=Strict cookie and
redirected away (the token leaves the address bar); a POST needs that cookie, the CSRF
value of the page's form and a same-origin Origin; every response carries a strict
Content-Security-Policy (scripts only from /static, no inline script or style).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

import anyio
import jinja2
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roost.config.settings import WebSettings
from roost.core.bus import Batch, Overflow
from roost.core.codec import event_to_dict
from roost.core.model import Thermostat
from roost.service.introspect import EventFilter
from roost.service.observe import Observer
from roost.web import charts, views
from roost.web.access import derive, same
from roost.web.chains import Chains, event_row, twin
from roost.web.text import visible

if TYPE_CHECKING:
    from roost.service.runtime import Runtime

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
COOKIE = "roost_session"
MAX_HEAD = 16 * 1024  # request line and headers (h11 bounds an incomplete head the same)
MAX_FORM = 4096
FORM_TIMEOUT_S = 5.0
VIEWER_BUFFER = 256
HISTORY = 300  # journal events a new live viewer starts with
KEEPALIVE_S = 15.0

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class Guard:
    """ASGI middleware: refuse an oversized head and a Host that is not this listener's,
    add the security headers."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str], web: Web) -> None:
        self.app, self.hosts, self.web = app, hosts, web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        if sum(len(k) + len(v) for k, v in headers) + len(scope.get("raw_path") or b"") > MAX_HEAD:
            response = Response("request head too large\n", 431, media_type="text/plain")
            await self._secured(response)(scope, receive, send)
            return
        host = dict(headers).get(b"host", b"").decode("latin-1").lower()
        if host not in self.hosts:
            response = Response("unknown host\n", 421, media_type="text/plain")
            await self._secured(response)(scope, receive, send)
            return
        await self.app(scope, receive, self._with_headers(send))

    def _secured(self, app: ASGIApp) -> ASGIApp:
        async def run(scope: Scope, receive: Receive, send: Send) -> None:
            await app(scope, receive, self._with_headers(send))

        return run

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        return sending


def allowed_hosts(settings: WebSettings, port: int) -> frozenset[str]:
    names = {"localhost", "127.0.0.1", "[::1]", *settings.allowed_hosts}
    address = settings.address()
    if address is not None and address[0] not in ("0.0.0.0", "::"):
        names.add(f"[{address[0]}]" if ":" in address[0] else address[0])
    return frozenset({n.lower() for n in names} | {f"{n.lower()}:{port}" for n in names})


class Web:
    """The page's view of the daemon: the runtime and observer the control socket reads."""

    def __init__(
        self, runtime: Runtime, observer: Observer, settings: WebSettings, token: str
    ) -> None:
        self.runtime, self.observer, self.settings = runtime, observer, settings
        self.session_value = derive(token, "session")
        self.csrf_value = derive(token, "csrf")
        self.token = token
        self.viewers = 0
        self.streams: set[MemoryObjectReceiveStream[Batch]] = set()
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            finalize=visible,
        )
        zone = runtime.settings.daemon.zone()
        self.templates.filters["age"] = age
        self.templates.filters["clock"] = lambda iso: clock(iso, zone)

    def stop(self) -> None:
        """End every live stream (the daemon is stopping): each closes its response."""
        for inbox in list(self.streams):
            inbox.close()

    # ---- sessions ----------------------------------------------------------------

    def has_session(self, request: Request) -> bool:
        return same(request.cookies.get(COOKIE), self.session_value)

    def name_of(self, device_id: str) -> str:
        if not device_id:
            return ""
        found = self.runtime.state.find(device_id)
        return found[1].name if found is not None else device_id

    async def page(self, request: Request, template: str, **context: Any) -> Response:
        session = self.has_session(request)
        html = self.templates.get_template(template).render(
            session=session,
            csrf=self.csrf_value if session else "",
            dry_run=self.runtime.dispatcher.dry_run,
            alarms=views.active_alarms(self.runtime),
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html)


Handler = Callable[[Web, Request], Awaitable[Response]]


def age(seconds: float | None, suffix: bool = True) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        text = f"{seconds:.0f} s"
    elif seconds < 7200:
        text = f"{seconds / 60:.0f} min"
    elif seconds < 172800:
        text = f"{seconds / 3600:.1f} h"
    else:
        text = f"{seconds / 86400:.1f} d"
    return f"{text} ago" if suffix else text


def clock(iso: str | None, zone: ZoneInfo) -> str:
    if not iso:
        return ""
    try:
        at = datetime.fromisoformat(iso).astimezone(zone)
    except ValueError:
        return str(iso)
    today = datetime.now(zone).date()
    return at.strftime("%H:%M:%S" if at.date() == today else "%a %d %b %H:%M")


def _gate(web: Web, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Token exchange, and (for a remote listener) a session for every page."""

    async def endpoint(request: Request) -> Response:
        given = request.query_params.get("token")
        if given is not None:
            if not same(given, web.token):
                return Response("wrong token: run `roost web-url` for a fresh link\n", 403)
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(
                COOKIE, web.session_value, httponly=True, samesite="strict", path="/"
            )
            return response
        if web.settings.is_remote() and not web.has_session(request):
            return Response("this page needs the link `roost web-url` prints\n", 401)
        return await handler(web, request)

    return endpoint


# ---- pages -----------------------------------------------------------------------------


async def home_page(web: Web, request: Request) -> Response:
    return await web.page(request, "home.html", status=await views.home(web.runtime, web.observer))


async def rules_page(web: Web, request: Request) -> Response:
    return await web.page(request, "rules.html", rules=views.rules(web.runtime))


async def outbox_page(web: Web, request: Request) -> Response:
    return await web.page(request, "outbox.html", entries=await views.outbox(web.runtime))


async def live_page(web: Web, request: Request) -> Response:
    q = request.query_params
    accounts = sorted(web.runtime.state.accounts)
    devices = sorted({d.name for d in web.runtime.state.devices()})
    return await web.page(
        request,
        "live.html",
        accounts=accounts,
        devices=devices,
        kinds=sorted(_KINDS),
        account=q.get("account", ""),
        device=q.get("device", ""),
        kind=q.get("kind", ""),
    )


async def charts_page(web: Web, request: Request) -> Response:
    period = request.query_params.get("period", "24h")
    if period not in charts.PERIODS:
        period = "24h"
    until = datetime.now(UTC)
    since = until - charts.PERIODS[period]
    entries = await web.runtime.store.journal_since(since, charts.CHART_EVENTS)
    zone = web.runtime.settings.daemon.zone()
    thermostats = [d for d in web.runtime.state.devices() if isinstance(d, Thermostat)]
    drawn = []
    for room, t in charts.rooms(thermostats):
        lines = charts.series_for(t, entries, since)
        drawn.append((room, t.name, charts.render(room, lines, since, until, zone)))
    return await web.page(request, "charts.html", period=period, drawn=drawn)


# ---- live events -----------------------------------------------------------------------

_KINDS = frozenset(
    {"co", "smoke", "command", "temperature", "setpoint", "thermostat_mode", "hvac",
     "presence", "motion", "person", "chime", "sound", "connectivity", "account",
     "notification", "attribute"}
)  # fmt: skip


def _sse(kind: str, data: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()


async def live_stream(web: Web, request: Request) -> Response:
    if web.viewers >= web.settings.max_live_viewers:
        return Response("too many live viewers\n", 503, headers={"retry-after": "10"})
    q = request.query_params
    kind = q.get("kind", "")
    wanted = EventFilter(
        web.runtime, {"event": [kind] if kind else [], "device": q.get("device"),
                      "account": q.get("account")}
    )  # fmt: skip
    return _Viewer(web, _events(web, wanted))


class _Viewer(StreamingResponse):
    """A live stream holding one of the viewer slots from its response until it ends."""

    def __init__(self, web: Web, content: AsyncIterator[bytes]) -> None:
        super().__init__(content, media_type="text/event-stream")
        self.web = web
        web.viewers += 1  # now: the next request must already see the slot taken

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.web.viewers -= 1


async def _events(web: Web, wanted: EventFilter) -> AsyncIterator[bytes]:
    name = f"viewer-web-{id(wanted):x}"
    inbox = web.runtime.bus.subscribe(name, buffer=VIEWER_BUFFER, overflow=Overflow.DROP)
    web.streams.add(inbox)
    chains = Chains(web.name_of)
    try:
        seen: set[str] = set()
        for entry in await web.runtime.store.journal(HISTORY):
            data = {"event": entry.event, **entry.body}
            seen.add(str(data.get("id")))
            for message in _messages(web, chains, data, wanted):
                yield message
        yield _sse("ready", {"history": len(seen)})
        reported = 0
        async with inbox:
            while True:
                batch = None
                with anyio.move_on_after(KEEPALIVE_S):
                    try:
                        batch = await inbox.receive()
                    except (anyio.ClosedResourceError, anyio.EndOfStream):
                        return
                if batch is None:
                    yield b": keep-alive\n\n"
                    continue
                stats = web.runtime.bus.stats().get(name)
                if stats is not None and stats.dropped > reported:
                    yield _sse("dropped", {"count": stats.dropped - reported})
                    reported = stats.dropped
                for event in batch:
                    if event.id in seen:
                        continue
                    for message in _messages(web, chains, event_to_dict(event), wanted):
                        yield message
    finally:
        web.streams.discard(inbox)
        inbox.close()


def _messages(web: Web, chains: Chains, data: dict[str, Any], wanted: EventFilter) -> list[bytes]:
    out = []
    shown = "attribute" in wanted.names or not twin(data)
    if shown and wanted(data):
        out.append(_sse("row", event_row(data, web.name_of)))
    chain = chains.add(data)
    if chain is not None and (not wanted.names or "command" in wanted.names):
        as_command = {"event": "command", "account": chain["account"], "device": chain["device_id"]}
        if wanted(as_command):
            out.append(_sse("chain", chain))
    return out


# ---- actions ---------------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str] | None:
    """The url-encoded body, at most MAX_FORM bytes, read within FORM_TIMEOUT_S."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_FORM:
        return None
    body = b""
    with anyio.move_on_after(FORM_TIMEOUT_S) as scope:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return None
    if scope.cancelled_caught:
        return None
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=8)
    return {k: v[0] for k, v in fields.items()}


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    return origin is None or origin == f"http://{request.headers.get('host', '')}"


def action(run: Callable[[Web, dict[str, str]], Awaitable[str]]) -> Handler:
    """A POST that changes something: session cookie, CSRF value, same origin."""

    async def handler(web: Web, request: Request) -> Response:
        if not web.has_session(request):
            return await _refused(web, request, "this action needs the link `roost web-url` prints")
        form = await _form(request)
        if form is None:
            return Response("form too large or too slow\n", 413)
        if not same(form.get("csrf"), web.csrf_value) or not _same_origin(request):
            return await _refused(web, request, "the request did not come from this page (CSRF)")
        back = await run(web, form)
        return RedirectResponse(back, status_code=303)

    return handler


async def _refused(web: Web, request: Request, why: str) -> Response:
    response = await web.page(request, "refused.html", why=why)
    response.status_code = 403
    return response


async def retry_entry(web: Web, form: dict[str, str]) -> str:
    key = form.get("key", "")
    retried = await web.runtime.store.outbox_retry(key, datetime.now(UTC))
    log.info("web: outbox retry", key=key, retried=retried)
    return "/outbox"


async def reload_rules(web: Web, form: dict[str, str]) -> str:
    from roost.service.systemd import reload

    reload(web.runtime)
    return "/rules"


async def set_dry_run(web: Web, form: dict[str, str]) -> str:
    on = form.get("dry_run") == "on"
    web.runtime.dispatcher.dry_run = on
    log.warning("web: dry run switched", dry_run=on)
    return "/"


def create_app(runtime: Runtime, observer: Observer, settings: WebSettings, token: str) -> Guard:
    web = Web(runtime, observer, settings, token)
    address = settings.address()
    port = address[1] if address else 0

    def get(path: str, handler: Handler) -> Route:
        return Route(path, _gate(web, handler), methods=["GET"])

    def post(path: str, handler: Handler) -> Route:
        return Route(path, _gate(web, handler), methods=["POST"])

    app = Starlette(
        routes=[
            get("/", home_page),
            get("/live", live_page),
            get("/live/stream", live_stream),
            get("/rules", rules_page),
            get("/outbox", outbox_page),
            get("/charts", charts_page),
            post("/outbox/retry", action(retry_entry)),
            post("/reload", action(reload_rules)),
            post("/dry-run", action(set_dry_run)),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )
    return Guard(app, allowed_hosts(settings, port), web)
