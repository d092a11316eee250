"""`roost replay EVENTS.jsonl --rules DIR`: what would these rules have done?

The recorded events (see `recorder`) go through the rule set in a sandbox: the clock is
virtual and follows the events' own times, so holds, cooldowns and schedules behave as
they would have; commands are dry runs that pass the real guards; nothing is sent. Each
command and notification the rules would have produced is printed with its time and rule.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from roost.core.codec import CodecError, event_from_json, home_from_dict
from roost.core.events import AttributeChanged, Event, Outcome
from roost.core.model import Home
from roost.engine.traces import Result
from roost.testing.sandbox import SimulatedHome, simulate


class ReplayError(ValueError):
    pass


@dataclass
class Recording:
    home: Home
    events: list[Event]


def read_recording(path: Path) -> Recording:
    """The first recorded home and every event, or ReplayError naming the line."""
    home: Home | None = None
    events: list[Event] = []
    for number, data in _lines(path):
        try:
            if data.get("kind") == "home":
                home = home or home_from_dict(data["home"])
            else:
                events.append(event_from_json(data.get("event", data)))
        except (CodecError, KeyError, TypeError, ValueError) as exc:
            raise ReplayError(f"{path}:{number}: {exc}") from None
    if home is None:
        accounts = {e.account for e in events} or {"replay"}
        home = Home(sorted(accounts)[0])
    return Recording(home, events)


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{path}: cannot read: {exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReplayError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise ReplayError(f"{path}:{number}: each line is a JSON object")
        yield number, data


async def replay(recording: Recording, rules: Path, out: TextIO) -> SimulatedHome:
    """Run the recording through the rules and print what they would have done."""
    start = recording.events[0].at if recording.events else None
    async with simulate(
        rules, recording.home, start=start or "2026-01-01 00:00", apply_commands=False
    ) as sim:
        for event in recording.events:
            await sim.advance(max(0.0, (event.at - sim.clock.now()).total_seconds()))
            _apply(sim, event)
            await sim.emit(event)
        _report(sim, out)
        return sim


def _apply(sim: SimulatedHome, event: Event) -> None:
    """Keep the sandbox's state in step with the recorded changes (without new events)."""
    if not isinstance(event, AttributeChanged):
        return
    target = event.device or event.structure
    account = sim.state.account(event.account)
    entity = account.entity(target) if target else None
    if entity is not None and hasattr(entity, event.attribute):
        updated = dataclasses.replace(entity, **{event.attribute: event.new})
        if target in account.devices:
            account.devices[entity.id] = updated  # type: ignore[assignment]
        else:
            account.structures[entity.id] = updated  # type: ignore[assignment]


def _report(sim: SimulatedHome, out: TextIO) -> None:
    lines: list[tuple[str, str]] = []
    for c in sim.commands:
        at = c.at.isoformat() if c.at else "?"
        shown = c.reason and c.outcome is not Outcome.DRY_RUN
        detail = f" ({c.outcome}: {c.reason})" if shown else f" ({c.outcome})"
        lines.append((at, f"{at}  {c.rule}  command  {c}{detail}"))
    for n in sim.notifications:
        tags = f"  [{', '.join(n.tags)}]" if n.tags else ""
        lines.append(
            (
                n.created_at.isoformat(),
                f"{n.created_at.isoformat()}  {n.rule}  notify  {n.title!r}{tags}",
            )
        )
    for line in sorted(lines):
        print(line[1], file=out)
    skipped = [t for t in sim.traces() if t.result is Result.SKIPPED]
    print(
        f"{len(sim.commands)} command(s), {len(sim.notifications)} notification(s), "
        f"{len(skipped)} trigger(s) stopped by a condition or limit",
        file=out,
    )
