"""What each page shows, read from the daemon's own objects: the same `status` answer,
trace store, outbox and state the control socket serves (no second source of truth).

Plain data for the templates; no HTTP here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from roost.core.model import AlarmState, Camera, SmokeCoAlarm, Thermostat
from roost.providers.registry import auth_advice
from roost.service.introspect import outbox_row, status
from roost.service.observe import Observer

if TYPE_CHECKING:
    from roost.core.model import Device
    from roost.service.runtime import Runtime


def advice(state: str, provider: str, detail: str) -> str:
    """One line saying what an account's state means for the person looking."""
    if state == "connected":
        return ""
    if state == "auth_failed":
        return "not authorized: " + auth_advice(provider)
    if state == "degraded":
        return f"degraded: {detail}" if detail else "degraded: some values are unusable"
    if state == "disconnected":
        return "the cloud cannot be reached; roost keeps retrying" + (
            f" ({detail})" if detail else ""
        )
    return f"{state}" + (f": {detail}" if detail else "")


@dataclass(frozen=True)
class Alarm:
    account: str
    device: str
    room: str | None
    what: str  # "smoke" or "co"
    state: str


def active_alarms(runtime: Runtime) -> list[Alarm]:
    found = []
    for acc in runtime.state.accounts.values():
        for device in acc.devices.values():
            if not isinstance(device, SmokeCoAlarm):
                continue
            for what in ("smoke", "co"):
                value = getattr(device, what)
                if value is not AlarmState.OK:
                    found.append(Alarm(acc.account, device.name, device.room, what, str(value)))
    return found


def device_summary(device: Device) -> str:
    if isinstance(device, Thermostat):
        parts = [str(device.mode), f"hvac {device.hvac}"]
        if device.ambient_c is not None:
            parts.append(f"{device.ambient_c:.1f} °C")
        setpoints = [s for s in (device.heat_setpoint_c, device.cool_setpoint_c) if s is not None]
        if setpoints:
            parts.append("set " + "–".join(f"{s:.1f}" for s in setpoints) + " °C")
        return ", ".join(parts)
    if isinstance(device, SmokeCoAlarm):
        return f"smoke {device.smoke}, co {device.co}, battery {device.battery}"
    if isinstance(device, Camera):
        return "streaming" if device.streaming else "not streaming"
    return ""


async def home(runtime: Runtime, observer: Observer) -> dict[str, Any]:
    s = await status(runtime, observer)
    for account in s["accounts"]:
        account["advice"] = advice(account["state"], account["provider"], account["detail"])
        acc = runtime.state.accounts.get(account["name"])
        devices = [] if acc is None else sorted(acc.devices.values(), key=lambda d: d.name)
        account["device_rows"] = [
            {
                "name": d.name,
                "room": d.room or "",
                "kind": str(d.kind),
                "online": d.online,
                "summary": device_summary(d),
            }
            for d in devices
        ]
    return s


def rules(runtime: Runtime, per_rule: int = 10) -> list[dict[str, Any]]:
    """Each rule with its latest traces (newest first) and why each did or did not run."""
    engine = runtime.engine
    saved = engine.export_state()
    now = datetime.now(UTC)
    found = []
    for name in sorted(engine.rules):
        rule = engine.rules[name]
        cooldown_left = 0.0
        last = saved.get(name, {}).get("last_run")
        if rule.cooldown_s and last:
            elapsed = (now - datetime.fromisoformat(last)).total_seconds()
            cooldown_left = max(0.0, rule.cooldown_s - elapsed)
        traces = [explain(t.to_json()) for t in engine.traces.latest(name, per_rule)]
        found.append(
            {
                "name": name,
                "description": rule.description,
                "source": rule.source,
                "cooldown_s": rule.cooldown_s,
                "cooldown_left_s": round(cooldown_left),
                "dry_run": rule.dry_run,
                "stats": engine.stats.get(name),
                "traces": list(reversed(traces)),
            }
        )
    return found


def explain(trace: dict[str, Any]) -> dict[str, Any]:
    """A trace with its one-line answer to "why (not)?" under `why`."""
    failing = [c["condition"] for c in trace.get("conditions", []) if not c["ok"]]
    refused = [s for s in trace.get("steps", []) if s["outcome"] == "refused"]
    if refused:
        why = "; ".join(f"refused: {s['what']} ({s['detail']})" for s in refused)
    elif trace["result"] == "skipped" and failing:
        why = f"{trace['reason']}: {failing[0]}"
    else:
        why = trace.get("reason") or ""
    fired = trace["result"] in ("ran", "running", "queued")
    return {**trace, "why": why, "fired": fired}


DELIVERED_SHOWN = 50


async def outbox(runtime: Runtime) -> list[dict[str, Any]]:
    """Given-up entries first, then pending, then the latest delivered ones."""
    open_entries = await runtime.store.outbox_list(("dead", "pending"))
    delivered = (await runtime.store.outbox_list(("delivered",)))[-DELIVERED_SHOWN:]
    rows = [outbox_row(e) for e in open_entries] + [outbox_row(e) for e in reversed(delivered)]
    order = {"dead": 0, "pending": 1, "delivered": 2}
    return sorted(rows, key=lambda r: order.get(str(r["state"]), 3))
