"""A real `roost run` against any vendor's simulated cloud, pushing to the local sink: the
bed of the outside alarm checks (tests/test_alarm_*.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roost.core.secret import Secret
from roost.providers.accounts import given_fields
from roost.simulator.home import SimHome
from roost.simulator.sink import NotificationSink, serve_sink
from roost.testing.stack import DEMO_HOMES, VENDORS
from tests.faults.harness import RULES, Daemon, wait_for

ALARM = "alarm-hallway"
HOME = "structure-home"
# A rule that raises the heat on a CO emergency: the alarm guard must refuse it.
WARM_UP = """
[[rule]]
name = "warm up"
on = { event = "co", to = "emergency" }
do = [{ action = "thermostat.set_heat", target = "all", celsius = 24 }]
"""


def account_toml(account: Any) -> str:
    lines = ["[[accounts]]"]
    for key, value in given_fields(account).items():
        plain = value.get_secret_value() if isinstance(value, Secret) else value
        lines.append(f"{key} = {json.dumps(plain)}")
    return "\n".join(lines) + "\n"


@dataclass
class VendorBed:
    vendor: str
    home: SimHome
    cloud: Any
    sink: NotificationSink
    daemon: Daemon
    state_dir: Path

    def titles(self) -> list[str]:
        return [str(p.get("title")) for p in self.sink.received]

    def count(self, fragment: str) -> int:
        return sum(fragment in title for title in self.titles())

    async def push(self, fragment: str, before: int, timeout_s: float = 15.0) -> None:
        """Wait for a push whose title holds `fragment`, past the `before` already seen."""
        await wait_for(lambda: self.count(fragment) > before, timeout_s=timeout_s)

    async def start(self) -> None:
        await self.daemon.start()
        await wait_for(lambda: '"state": "connected"' in self.daemon.log(), timeout_s=30)
        await wait_for(lambda: '"event": "ready"' in self.daemon.log(), timeout_s=30)


@asynccontextmanager
async def vendor_bed(
    tmp_path: Path, vendor: str, rules: Path = RULES, extra: str = ""
) -> AsyncIterator[VendorBed]:
    home = DEMO_HOMES.get(vendor, SimHome.demo)()
    async with VENDORS[vendor](home, None) as (cloud, account), serve_sink() as sink:
        config = tmp_path / "roost.toml"
        state_dir = tmp_path / "state"
        config.write_text(
            f'[daemon]\nrules_dir = "{rules}"\nstate_dir = "{state_dir}"\n\n'
            '[log]\nlevel = "info"\nformat = "json"\n\n'
            f'[[notify.targets]]\nurl = "{sink.url}"\n\n' + account_toml(account) + extra
        )
        bed = VendorBed(
            vendor, home, cloud, sink, Daemon(config, tmp_path / "daemon.log"), state_dir
        )
        try:
            yield bed
        finally:
            await bed.daemon.stop()
