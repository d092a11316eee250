"""What every simulated cloud (a "front") shares: its home, its faults, its HTTP server,
the `/_sim/` controls that act on the home, and one `serve()`.

A front subclasses `Front`, answers requests in `handle`, and starts what it runs beside
the server (an event publisher, a bucket follower) in `start`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import structlog

from roost.simulator import http
from roost.simulator.control import arg
from roost.simulator.faults import Faults, fail_next_command
from roost.simulator.home import SimHome

log = structlog.get_logger(__name__)

NUMBER = (int, float)


class Front:
    home: SimHome
    faults: Faults
    _server: http.Server | None = None

    async def handle(self, request: http.Request) -> http.Answer:
        raise NotImplementedError

    def start(self, server: http.Server) -> None:
        """Start what runs beside the server (none by default)."""

    @property
    def fail_next(self) -> Callable[..., None]:
        """`fail_next(kind, n, status, body, headers, after_apply)`: see simulator/faults.py."""
        return self.faults.fail_next

    @property
    def server(self) -> http.Server:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not serving; use its serve()")
        return self._server

    @property
    def url(self) -> str:
        return self.server.url


F = TypeVar("F", bound=Front)


@asynccontextmanager
async def serve(front: F, *, physics_interval_s: float | None, port: int) -> AsyncIterator[F]:
    """Serve `front` on 127.0.0.1:port (0 picks a free port), with the home's physics
    running every `physics_interval_s` if given."""
    async with http.serve(front.handle, port=port) as server:
        front._server = server
        front.start(server)
        if physics_interval_s is not None:
            interval = physics_interval_s
            server.start_soon(partial(front.home.run_physics, interval), name="sim physics")
        log.info("simulator listening", front=type(front).__name__, url=server.url)
        yield front


Control = Callable[[Any, dict[str, Any]], object]

HOME_READS: dict[str, Callable[[Any], object]] = {"state": lambda s: s.home.to_dict()}

# The controls that act on the simulated home, the same for every front.
HOME_CONTROLS: dict[str, Control] = {
    "away": lambda s, a: s.home.set_away(arg(a, "structure", str), arg(a, "away", bool)),
    "co": lambda s, a: s.home.set_co(arg(a, "device", str), arg(a, "state", str)),
    "smoke": lambda s, a: s.home.set_smoke(arg(a, "device", str), arg(a, "state", str)),
    "battery": lambda s, a: s.home.set_battery(arg(a, "device", str), arg(a, "state", str)),
    "online": lambda s, a: s.home.set_online(arg(a, "device", str), arg(a, "online", bool)),
    "ambient": lambda s, a: s.home.set_ambient(arg(a, "device", str), arg(a, "c", NUMBER)),
    "camera_event": lambda s, a: s.home.camera_event(
        arg(a, "device", str),
        motion=bool(a.get("motion", True)),
        person=bool(a.get("person", False)),
        sound=bool(a.get("sound", False)),
    ),
    "chime": lambda s, a: s.home.doorbell_chime(arg(a, "device", str)),
    "tick": lambda s, a: s.home.tick(arg(a, "dt_s", NUMBER)),
    "fail_next": fail_next_command,
}
