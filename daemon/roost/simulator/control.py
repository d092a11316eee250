"""The `/_sim/` control surface every simulator front offers to scenario scripts in
another process: `GET /_sim/<read>` returns a view, `POST /_sim/<action>` with a JSON
object of arguments acts on the simulated home. Loopback only, no authentication."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from roost.simulator.http import Request, Response

PREFIX = "/_sim/"

S = TypeVar("S")
Reads = Mapping[str, Callable[[S], object]]
Actions = Mapping[str, Callable[[S, dict[str, Any]], object]]


def handle(
    sim: S, request: Request, reads: Reads[S], actions: Actions[S], version: int
) -> Response:
    name = request.path.removeprefix(PREFIX)
    table: Mapping[str, object] = reads if request.method == "GET" else actions
    if request.method not in ("GET", "POST"):
        return Response(405, {"error": "use GET or POST"})
    if name not in table:
        return Response(404, {"error": f"unknown control {name!r}; known: {', '.join(table)}"})
    try:
        if request.method == "GET":
            return Response(200, reads[name](sim))
        args = request.json() if request.body else {}
        if not isinstance(args, dict):
            raise ValueError("the body must be a JSON object")
        actions[name](sim, args)
    except KeyError as error:
        return Response(404, {"error": str(error.args[0]) if error.args else "not found"})
    except (ValueError, TypeError) as error:
        return Response(400, {"error": str(error)})
    return Response(200, {"ok": True, "version": version})


def arg(args: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """A required argument of the given type (a bool is not taken for a number)."""
    value = args.get(name)
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise ValueError(f"argument {name!r} is missing or of the wrong type")
    return value
