"""The rule author's reference, generated from the code: `docs/reference.md`.

    .venv/bin/python -m roost.rules.reference > docs/reference.md

Events with their value types, device attributes, TOML actions and their fields, the
notification priorities, and which vendor produces which event (read from each provider
package's code: the device classes and events it builds). A test fails when the file is
stale.
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path
from typing import Any

import roost.providers
from roost.core import model
from roost.core.events import EVENT_TYPES, Changed, Event
from roost.notify.notifier import Priority
from roost.rules import toml_model as rule_model
from roost.rules.triggers import allowed_values

_BASE_FIELDS = {f.name for f in dataclasses.fields(Event)}

# Which device class (or the structure) an event is about: what a vendor must build.
_EVENT_SOURCES: dict[str, tuple[str, ...]] = {
    "presence": ("Presence",),
    "thermostat_mode": ("Thermostat",),
    "temperature": ("Thermostat",),
    "setpoint": ("Thermostat",),
    "hvac": ("Thermostat",),
    "co": ("SmokeCoAlarm",),
    "smoke": ("SmokeCoAlarm",),
    "motion": ("Motion",),
    "person": ("Person",),
    "sound": ("Sound",),
    "chime": ("Chime",),
}
_EVERY_VENDOR = "every vendor"
_ROOST_EVENTS = {"command", "notification", "schedule", "started"}  # roost makes these


def _type_name(hint: Any) -> str:
    text = str(hint) if not isinstance(hint, type) else hint.__name__
    for prefix in (
        "roost.core.model.",
        "roost.core.events.",
        "roost.core.commands.",
        "typing.",
        "datetime.",
    ):
        text = text.replace(prefix, "")
    return text.replace("|", "\\|")  # inside a Markdown table cell


def events_table() -> list[str]:
    lines = [
        "| event | class | to / from values | other fields |",
        "|---|---|---|---|",
    ]
    for name, cls in sorted(EVENT_TYPES.items()):
        values = ", ".join(allowed_values(cls, "new")) if issubclass(cls, Changed) else "—"
        hints = typing.get_type_hints(cls)
        extra = [
            f"`{f.name}`: {_type_name(hints[f.name])}"
            for f in dataclasses.fields(cls)
            if f.name not in _BASE_FIELDS | {"old", "new"}
        ]
        lines.append(f"| `{name}` | `{cls.__name__}` | {values or 'any'} | {'; '.join(extra)} |")
    return lines


def attributes_table() -> list[str]:
    lines = ["| device | attribute | type |", "|---|---|---|"]
    for cls in (model.Structure, model.Thermostat, model.SmokeCoAlarm, model.Camera):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            lines.append(f"| {cls.__name__} | `{f.name}` | {_type_name(hints[f.name])} |")
    return lines


def actions_table() -> list[str]:
    lines = ["| action | fields |", "|---|---|"]
    for action, name in zip(rule_model.ACTIONS, rule_model.ACTION_NAMES, strict=True):
        fields = []
        for f in dataclasses.fields(action):
            if f.name == "action":
                continue
            shown = rule_model.key_of(f.name)
            required = " (required)" if rule_model.required(action, f.name) else ""
            fields.append(f"`{shown}`{required}")
        lines.append(f"| `{name}` | {', '.join(fields)} |")
    return lines


def vendor_table(providers: Path | None = None) -> list[str]:
    root = providers or Path(roost.providers.__file__).parent
    vendors = sorted(p.name for p in root.iterdir() if (p / "normalize.py").is_file())
    names = {vendor: _names_in(root / vendor) for vendor in vendors}
    lines = [f"| event | {' | '.join(vendors)} |", "|---|" + "---|" * len(vendors)]
    for event in sorted(EVENT_TYPES):
        needs = _EVENT_SOURCES.get(event)
        if needs is None:
            every = "roost" if event in _ROOST_EVENTS else _EVERY_VENDOR
            lines.append(f"| `{event}` | " + " | ".join([every] * len(vendors)) + " |")
            continue
        marks = ["yes" if set(needs) & names[v] else "—" for v in vendors]
        lines.append(f"| `{event}` | {' | '.join(marks)} |")
    return lines


def _names_in(package: Path) -> set[str]:
    found: set[str] = set()
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                found.add(node.id)
            elif isinstance(node, ast.Attribute):
                found.add(node.attr)
    return found


def reference() -> str:
    parts = [
        "# Rule reference",
        "",
        "Generated from the code by `python -m roost.rules.reference` (a test fails when stale).",
        "",
        "## Events",
        "",
        "Filter with `to` / `from` on the values shown, and on the other fields by name.",
        "Every event also has `id`, `at`, `account`, `structure`, `device` and `context`.",
        "",
        *events_table(),
        "",
        "## Device and structure attributes",
        "",
        "For conditions (`attribute = ...`), templates (`{device.…}`) and handles.",
        "",
        *attributes_table(),
        "",
        "## TOML actions",
        "",
        *actions_table(),
        "",
        "## Notification priorities",
        "",
        ", ".join(f"`{p.value}`" for p in Priority),
        "",
        "## Which vendor produces which event",
        "",
        *vendor_table(),
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference(), end="")
