"""Per-room charts from the event journal, drawn as SVG on the server (no chart library,
no script): ambient temperature and set-points as lines, mode and HVAC activity as bands,
and every rule command as a marker on the time axis.

A changed-event carries the value before it (`old`), so a window's first event also tells
the value at the window's start; a thermostat with no event in the window is drawn flat at
its current value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from roost.core.model import Thermostat
from roost.store.sqlite import JournalEntry
from roost.web.text import visible

CHART_EVENTS = ("temperature", "setpoint", "thermostat_mode", "hvac", "command")
PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
MAX_POINTS = 600  # per line: more is thinned (the SVG stays small for a week of readings)

WIDTH, PLOT_H, BAND_H, LEFT, RIGHT, TOP = 760, 200, 14, 44, 12, 10
MODE_CLASS = {"heat": "heat", "cool": "cool", "heat-cool": "heatcool", "eco": "eco", "off": "off"}
HVAC_CLASS = {"heating": "heat", "cooling": "cool", "idle": "off"}

Point = tuple[datetime, Any]


@dataclass
class Series:
    ambient: list[Point] = field(default_factory=list)
    heat: list[Point] = field(default_factory=list)
    cool: list[Point] = field(default_factory=list)
    mode: list[Point] = field(default_factory=list)
    hvac: list[Point] = field(default_factory=list)
    # (when, "rule: action → outcome") for each rule command
    commands: list[tuple[datetime, str]] = field(default_factory=list)


def _add(line: list[Point], at: datetime, old: Any, new: Any, since: datetime) -> None:
    if not line and old is not None:
        line.append((since, old))
    line.append((at, new))


def series_for(thermostat: Thermostat, entries: Iterable[JournalEntry], since: datetime) -> Series:
    """The thermostat's lines from its journal entries (oldest first), `since` to now."""
    s = Series()
    first_at: dict[str, datetime] = {}
    text_of: dict[str, str] = {}
    for e in entries:
        body = e.body
        if body.get("device") != thermostat.id:
            continue
        old, new = body.get("old"), body.get("new")
        if e.event == "temperature":
            _add(s.ambient, e.at, old, new, since)
        elif e.event == "setpoint":
            line = s.heat if body.get("attribute") == "heat_setpoint_c" else s.cool
            _add(line, e.at, old, new, since)
        elif e.event == "thermostat_mode":
            _add(s.mode, e.at, old, new, since)
        elif e.event == "hvac":
            _add(s.hvac, e.at, old, new, since)
        elif e.event == "command" and body.get("rule") and body.get("outcome") != "queued":
            command = str(body.get("command"))
            first_at.setdefault(command, e.at)
            text_of[command] = f"{body['rule']}: {body.get('action')} → {body.get('outcome')}"
    s.commands = sorted((first_at[c], text_of[c]) for c in first_at)
    for line, now in (
        (s.ambient, thermostat.ambient_c),
        (s.heat, thermostat.heat_setpoint_c),
        (s.cool, thermostat.cool_setpoint_c),
        (s.mode, str(thermostat.mode)),
        (s.hvac, str(thermostat.hvac)),
    ):
        if not line and now is not None:
            line.append((since, now))
    return s


def _thin(points: list[Point]) -> list[Point]:
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / MAX_POINTS
    return [points[int(i * step)] for i in range(MAX_POINTS)] + [points[-1]]


class _Axes:
    def __init__(self, since: datetime, until: datetime, low: float, high: float) -> None:
        self.since, self.span = since, max(1.0, (until - since).total_seconds())
        self.low, self.high = low, high
        self.width = WIDTH - LEFT - RIGHT

    def x(self, at: datetime) -> float:
        seconds = min(max(0.0, (at - self.since).total_seconds()), self.span)
        return round(LEFT + self.width * seconds / self.span, 1)

    def y(self, value: float) -> float:
        return round(TOP + PLOT_H * (self.high - value) / (self.high - self.low), 1)


def _numbers(*lines: list[Point]) -> list[float]:
    return [float(v) for line in lines for _, v in line if isinstance(v, int | float)]


def _path(line: list[Point], axes: _Axes, until: datetime) -> str:
    """A step line: each value holds until the next one."""
    parts: list[str] = []
    points = [(at, v) for at, v in _thin(line) if isinstance(v, int | float)]
    for i, (at, value) in enumerate(points):
        y = axes.y(float(value))
        parts.append(f"M{axes.x(at)},{y}" if i == 0 else f"V{y}")
        end = points[i + 1][0] if i + 1 < len(points) else until
        parts.append(f"H{axes.x(end)}")
    return " ".join(parts)


def _band(
    line: list[Point], axes: _Axes, until: datetime, y: float, classes: dict[str, str]
) -> str:
    rects = []
    for i, (at, value) in enumerate(line):
        end = line[i + 1][0] if i + 1 < len(line) else until
        x0, x1 = axes.x(at), axes.x(end)
        if x1 <= x0:
            continue
        css = classes.get(str(value), "off")
        rects.append(
            f'<rect class="band {css}" x="{x0}" y="{y}" width="{round(x1 - x0, 1)}" '
            f'height="{BAND_H}"><title>{escape(visible(str(value)))}</title></rect>'
        )
    return "".join(rects)


def _ticks(since: datetime, until: datetime, zone: ZoneInfo, axes: _Axes) -> list[str]:
    span = until - since
    step = timedelta(hours=3) if span <= timedelta(days=1) else timedelta(days=1)
    local = since.astimezone(zone)
    if step == timedelta(days=1):
        tick = local.replace(hour=0, minute=0, second=0, microsecond=0) + step
        label = "%a"
    else:
        tick = local.replace(minute=0, second=0, microsecond=0)
        tick += timedelta(hours=(3 - tick.hour % 3) % 3 or 3)
        label = "%H:%M"
    out = []
    bottom = TOP + PLOT_H + 2 * BAND_H + 18
    while tick < until:
        x = axes.x(tick)
        out.append(f'<line class="grid" x1="{x}" y1="{TOP}" x2="{x}" y2="{TOP + PLOT_H}"/>')
        out.append(f'<text class="tick" x="{x}" y="{bottom}">{tick.strftime(label)}</text>')
        tick += step
    return out


def render(title: str, s: Series, since: datetime, until: datetime, zone: ZoneInfo) -> Markup:
    """The chart of one room as an inline SVG element (every text escaped)."""
    values = _numbers(s.ambient, s.heat, s.cool)
    low, high = (min(values) - 1, max(values) + 1) if values else (15.0, 25.0)
    axes = _Axes(since, until, low, high)
    height = TOP + PLOT_H + 2 * BAND_H + 26
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(visible(title))}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(visible(title))}</title>",
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{axes.width}" height="{PLOT_H}"/>',
    ]
    step = 1 if high - low <= 10 else 2 if high - low <= 20 else 5
    for degrees in range(int(low) + 1, int(high) + 1):
        if degrees % step:
            continue
        y = axes.y(degrees)
        parts.append(f'<text class="axis" x="{LEFT - 4}" y="{y + 4}">{degrees}°</text>')
    parts += _ticks(since, until, zone, axes)
    for css, line in (("heat", s.heat), ("cool", s.cool), ("ambient", s.ambient)):
        if _numbers(line):
            parts.append(f'<path class="line {css}" d="{_path(line, axes, until)}"/>')
    band_y = TOP + PLOT_H + 4
    parts.append(_band(s.mode, axes, until, band_y, MODE_CLASS))
    parts.append(_band(s.hvac, axes, until, band_y + BAND_H, HVAC_CLASS))
    parts.append(f'<text class="axis" x="{LEFT - 4}" y="{band_y + 11}">mode</text>')
    parts.append(f'<text class="axis" x="{LEFT - 4}" y="{band_y + BAND_H + 11}">hvac</text>')
    for at, text in s.commands:
        x = axes.x(at)
        parts.append(
            f'<g class="command"><line x1="{x}" y1="{TOP}" x2="{x}" y2="{band_y + 2 * BAND_H}"/>'
            f'<circle cx="{x}" cy="{TOP + 4}" r="4"/><title>{escape(visible(text))}</title></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # built above, every outside string escaped


def rooms(runtime_thermostats: Iterable[Thermostat]) -> list[tuple[str, Thermostat]]:
    """(room title, thermostat), by room: a thermostat without a room uses its own name."""
    found = [(t.room or t.name, t) for t in runtime_thermostats]
    return sorted(found, key=lambda pair: (pair[0].lower(), pair[1].name.lower()))
