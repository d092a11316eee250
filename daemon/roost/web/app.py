"""The web page as a handler of roost's own HTTP server (`roost.host.httpserver`): pages
rendered by Jinja2 (autoescaped), live events over SSE, and three token-protected actions.

Safety, in the order a request meets it: the server bounds the head and the body and
cuts off a slow or silent client; the Host header must name this listener (DNS
rebinding); `?token=` is exchanged for an HttpOnly SameSite=Strict cookie and redirected
away (the token leaves the address bar); a POST needs that cookie, the CSRF value of the
page's form and a same-origin Origin; every response carries a strict
Content-Security-Policy (scripts only from /static, no inline script or style).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

import anyio
import jinja2
import structlog

from roost.config.settings import WebSettings
from roost.core.bus import Batch, Overflow
from roost.core.codec import event_to_dict
from roost.core.inbox import Inbox
from roost.core.model import Thermostat
from roost.host.httpserver import Answer, Request, Response, StreamingResponse
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
MAX_HEAD = 16 * 1024  # request line and headers
MAX_FORM = 4096
VIEWER_BUFFER = 256
HISTORY = 300  # journal events a new live viewer starts with
KEEPALIVE_S = 15.0

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cache-control", "no-store"),
)
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def text(status: int, body: str, **headers: str) -> Response:
    return Response(status, body.encode(), {"content-type": "text/plain; charset=utf-8", **headers})


def html(body: str, status: int = 200) -> Response:
    return Response(status, body.encode(), {"content-type": "text/html; charset=utf-8"})


def redirect(target: str, **headers: str) -> Response:
    return Response(303, b"", {"location": target, **headers})


def cookie(request: Request, name: str) -> str | None:
    for part in request.headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


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
        self.streams: set[Inbox[Batch]] = set()
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
        return same(cookie(request, COOKIE), self.session_value)

    def name_of(self, device_id: str) -> str:
        if not device_id:
            return ""
        found = self.runtime.state.find(device_id)
        return found[1].name if found is not None else device_id

    async def page(self, request: Request, template: str, **context: Any) -> Response:
        session = self.has_session(request)
        page = self.templates.get_template(template).render(
            session=session,
            csrf=self.csrf_value if session else "",
            dry_run=self.runtime.dispatcher.dry_run,
            alarms=views.active_alarms(self.runtime),
            path=request.path,
            **context,
        )
        return html(page)


Handler = Callable[[Web, Request], Awaitable[Answer]]


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


async def _gate(web: Web, handler: Handler, request: Request) -> Answer:
    """Token exchange, and (for a remote listener) a session for every page."""
    given = request.query.get("token")
    if given is not None:
        if not same(given, web.token):
            return text(403, "wrong token: run `roost web-url` for a fresh link\n")
        query = parse_qsl(urlsplit(request.target).query, keep_blank_values=True)
        rest = [(k, v) for k, v in query if k != "token"]
        target = request.path + (f"?{urlencode(rest)}" if rest else "")
        session = f"{COOKIE}={web.session_value}; HttpOnly; Path=/; SameSite=Strict"
        return redirect(target, **{"set-cookie": session})
    if web.settings.is_remote() and not web.has_session(request):
        return text(401, "this page needs the link `roost web-url` prints\n")
    return await handler(web, request)


# ---- pages -----------------------------------------------------------------------------


async def home_page(web: Web, request: Request) -> Response:
    return await web.page(request, "home.html", status=await views.home(web.runtime, web.observer))


async def rules_page(web: Web, request: Request) -> Response:
    return await web.page(request, "rules.html", rules=views.rules(web.runtime))


async def outbox_page(web: Web, request: Request) -> Response:
    return await web.page(request, "outbox.html", entries=await views.outbox(web.runtime))


async def live_page(web: Web, request: Request) -> Response:
    q = request.query
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
    period = request.query.get("period", "24h")
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


async def live_stream(web: Web, request: Request) -> Answer:
    if web.viewers >= web.settings.max_live_viewers:
        return text(503, "too many live viewers\n", **{"retry-after": "10"})
    q = request.query
    kind = q.get("kind", "")
    wanted = EventFilter(
        web.runtime, {"event": [kind] if kind else [], "device": q.get("device"),
                      "account": q.get("account")}
    )  # fmt: skip
    web.viewers += 1  # now: the next request must already see the slot taken

    def left() -> None:
        web.viewers -= 1

    headers = {"content-type": "text/event-stream; charset=utf-8"}
    return StreamingResponse(200, _events(web, wanted), headers, done=left)


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


def _form(request: Request) -> dict[str, str] | None:
    """The url-encoded body (the server bounds its size and how long it may take)."""
    if len(request.body) > MAX_FORM:
        return None
    try:
        fields = parse_qs(request.body.decode("utf-8", errors="replace"), max_num_fields=8)
    except ValueError:  # more fields than any of the page's forms has
        return None
    return {k: v[0] for k, v in fields.items()}


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    return origin is None or origin == f"http://{request.headers.get('host', '')}"


def action(run: Callable[[Web, dict[str, str]], Awaitable[str]]) -> Handler:
    """A POST that changes something: session cookie, CSRF value, same origin."""

    async def handler(web: Web, request: Request) -> Answer:
        if not web.has_session(request):
            return await _refused(web, request, "this action needs the link `roost web-url` prints")
        form = _form(request)
        if form is None:
            return text(413, "form too large\n")
        if not same(form.get("csrf"), web.csrf_value) or not _same_origin(request):
            return await _refused(web, request, "the request did not come from this page (CSRF)")
        return redirect(await run(web, form))

    return handler


async def _refused(web: Web, request: Request, why: str) -> Response:
    response = await web.page(request, "refused.html", why=why)
    return Response(403, response.body, response.headers)


async def retry_entry(web: Web, form: dict[str, str]) -> str:
    key = form.get("key", "")
    retried = await web.runtime.store.outbox_retry(key, datetime.now(UTC))
    log.info("web: outbox retry", key=key, retried=retried)
    return "/outbox"


async def reload_rules(web: Web, form: dict[str, str]) -> str:
    from roost.service.systemd import reload

    await reload(web.runtime)
    return "/rules"


async def set_dry_run(web: Web, form: dict[str, str]) -> str:
    on = form.get("dry_run") == "on"
    web.runtime.dispatcher.dry_run = on
    log.warning("web: dry run switched", dry_run=on)
    return "/"


class Page:
    """The page's HTTP handler: host check, static files, then the routes."""

    def __init__(self, web: Web, hosts: frozenset[str]) -> None:
        self.web, self.hosts = web, hosts
        self.static = {
            f"/static/{path.name}": (path.read_bytes(), STATIC_TYPES[path.suffix])
            for path in (HERE / "static").iterdir()
            if path.suffix in STATIC_TYPES
        }

    async def __call__(self, request: Request) -> Answer:
        if request.headers.get("host", "").lower() not in self.hosts:
            return text(421, "unknown host\n")
        routes = ROUTES.get(request.method)
        handler = routes.get(request.path) if routes is not None else None
        if handler is not None:
            return await _gate(self.web, handler, request)
        if request.method == "GET" and request.path in self.static:
            body, kind = self.static[request.path]
            return Response(200, body, {"content-type": kind})
        if any(request.path in other for other in ROUTES.values()):
            return text(405, "method not allowed\n", allow=_allowed(request.path))
        return text(404, "not found\n")


ROUTES: dict[str, dict[str, Handler]] = {
    "GET": {
        "/": home_page,
        "/live": live_page,
        "/live/stream": live_stream,
        "/rules": rules_page,
        "/outbox": outbox_page,
        "/charts": charts_page,
    },
    "POST": {
        "/outbox/retry": action(retry_entry),
        "/reload": action(reload_rules),
        "/dry-run": action(set_dry_run),
    },
}


def _allowed(path: str) -> str:
    return ", ".join(method for method, routes in ROUTES.items() if path in routes)


def create_app(runtime: Runtime, observer: Observer, settings: WebSettings, token: str) -> Page:
    web = Web(runtime, observer, settings, token)
    address = settings.address()
    port = address[1] if address else 0
    return Page(web, allowed_hosts(settings, port))
