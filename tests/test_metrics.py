"""`/metrics` as Prometheus reads it: prometheus_client's own parser finds every family
once, with its type, including build info, process metrics and each account's last event."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from roost import __version__
from roost.service.metrics import render
from roost.service.observe import Observer
from roost.testing.stack import running_stack

pytestmark = pytest.mark.anyio

RULES = Path(__file__).parent.parent / "rules"

FAMILIES = {
    "roost_build_info": "gauge",
    "roost_uptime_seconds": "gauge",
    "roost_events": "counter",
    "roost_bus_dropped": "counter",
    "roost_alarm_memory_errors": "counter",
    "roost_rule_runs": "counter",
    "roost_rule_errors": "counter",
    "roost_rule_timeouts": "counter",
    "roost_rules_loaded": "gauge",
    "roost_commands": "counter",
    "roost_commands_in_flight": "gauge",
    "roost_notifications": "counter",
    "roost_outbox_entries": "gauge",
    "roost_account_connected": "gauge",
    "roost_reconnects": "counter",
    "roost_stream_lag_seconds": "gauge",
    "roost_account_last_event_timestamp_seconds": "gauge",
}
PROCESS = {"process_cpu_seconds": "counter", "process_resident_memory_bytes": "gauge"}


async def test_every_family_parses_once_with_its_type(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path) as stack:
        observer = Observer(stack.runtime.bus)
        await stack.connected()
        stack.home.set_away("structure-home", True)
        with anyio.fail_after(15):
            while observer.commands["confirmed"] < 2 or not observer.accounts:
                await anyio.sleep(0.05)
        text = await render(stack.runtime, observer)

    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a family's samples are split"
    types = {f.name: f.type for f in families}
    for name, kind in {**FAMILIES, **PROCESS}.items():
        assert types.get(name) == kind, name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    (build,) = [s for s in samples if s[0] == "roost_build_info"]
    assert ("version", __version__) in build[1]
    account = (("account", "demo"),)
    assert samples[("roost_account_connected", account)] == 1
    assert time.time() - 60 < samples[("roost_account_last_event_timestamp_seconds", account)]
    assert samples[("roost_commands_total", (("outcome", "confirmed"),))] >= 2
    assert samples[("roost_rule_runs_total", (("rule", "eco_when_away"),))] >= 1
    assert samples[("process_resident_memory_bytes", ())] > 1_000_000
    assert samples[("roost_alarm_memory_errors_total", ())] == 0
