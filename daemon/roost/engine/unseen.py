"""Why a rule has never run: was a matching event ever seen? (for `roost trace RULE`)

The answer comes from the event journal in the store: no event of the trigger's kind at
all, events of that kind that did not match the trigger's filters, or a matching event
from before the rule was loaded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from roost.core.codec import CodecError, event_from_dict
from roost.rules.author import Rule
from roost.store.sqlite import JournalEntry

Journal = Callable[[int, str], Awaitable[list[JournalEntry]]]
LOOK_BACK = 1000  # journal entries read per event kind


async def never_ran(rule: Rule, journal: Journal) -> list[str]:
    """One sentence per event trigger of `rule` about what the journal has seen."""
    out = []
    for _, trigger in rule.event_triggers():
        name = trigger.event.name
        entries = await journal(LOOK_BACK, name)
        if not entries:
            out.append(f"no {name!r} event has been seen (the journal keeps recent events)")
            continue
        matching = [e for e in entries if _matches(trigger, e)]
        last = entries[0].at if entries[0].at >= entries[-1].at else entries[-1].at
        if not matching:
            out.append(
                f"{len(entries)} {name!r} event(s) seen, the last at {last:%Y-%m-%d %H:%M:%S} "
                f"UTC, none matching {trigger.describe()}"
            )
        else:
            seen = max(e.at for e in matching)
            out.append(
                f"a matching {name!r} event was seen at {seen:%Y-%m-%d %H:%M:%S} UTC "
                "(before this rule was loaded, or its traces were dropped)"
            )
    return out


def _matches(trigger: object, entry: JournalEntry) -> bool:
    from roost.rules.triggers import Trigger

    try:
        event = event_from_dict({**entry.body, "event": entry.event})
    except (CodecError, KeyError, TypeError, ValueError):
        return False
    return isinstance(trigger, Trigger) and trigger.matches(event)
