"""`roost sim`: a simulated vendor cloud (and a notification sink) to try rules against.

It prints — and with `--config-out` writes — a settings file that points `roost run` at
the simulator, and the control URLs that change the simulated home (away, CO, a chime…),
so `run`, `trace`, `events` and `status` can be tried end to end without an account.
Everything listens on 127.0.0.1; the secrets in the snippet are the simulator's own.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

import anyio

from roost.config.settings import AccountSettings
from roost.core.secret import Secret
from roost.providers.accounts import given_fields
from roost.providers.registry import DEMO_VENDOR, VENDORS


def add_command(sub: Any) -> None:
    sim = sub.add_parser(
        "sim",
        help="start a simulated vendor cloud and print the settings that point roost run at it",
    )
    sim.add_argument(
        "--vendor", default=DEMO_VENDOR, help=f"which simulated cloud: {', '.join(VENDORS)}"
    )
    sim.add_argument("--rules", type=Path, default=Path("rules"), help="rule directory to use")
    sim.add_argument("--state-dir", type=Path, help="roost's state directory (default: a temp one)")
    sim.add_argument("--config-out", type=Path, help="also write the settings to this file")
    sim.set_defaults(func=sim_command)


def sim_command(args: argparse.Namespace) -> int:
    from roost.simulator.clouds import VENDORS

    if args.vendor not in VENDORS:
        print(f"no simulator for {args.vendor!r}; one of: {', '.join(VENDORS)}", file=sys.stderr)
        return 2

    async def main() -> None:
        with tempfile.TemporaryDirectory(prefix="roost-sim-") as scratch:
            state = args.state_dir or Path(scratch)
            await run_sim(
                args.vendor, args.rules.resolve(), state.resolve(), sys.stdout, args.config_out
            )

    anyio.run(main)
    return 0


async def run_sim(
    vendor: str, rules_dir: Path, state_dir: Path, out: TextIO, config_out: Path | None
) -> None:
    """Serve until SIGINT/SIGTERM."""
    from roost.simulator.clouds import DEMO_HOMES, VENDORS
    from roost.simulator.home import SimHome
    from roost.simulator.sink import serve_sink

    home = DEMO_HOMES.get(vendor, SimHome.demo)()
    async with (
        VENDORS[vendor](home, 1.0) as (cloud, account),
        serve_sink() as sink,
    ):
        sink.on_receive = lambda p: print(f"sink: [{p.get('type')}] {p.get('title')}", file=out)
        text = settings_text(account, sink.url, rules_dir, state_dir)
        if config_out is not None:
            await anyio.Path(config_out).write_text(text, encoding="utf-8")
        control = f"{_base_url(cloud)}/_sim/"
        print(f"# roost sim: a simulated {vendor} cloud; settings for `roost run`:\n", file=out)
        print(text, file=out)
        print(f"# the simulated home: GET {control}state", file=out)
        print(
            f'# change it: curl -X POST {control}co -d \'{{"device": "…", "state": "warning"}}\'',
            file=out,
        )
        print("# Ctrl-C stops the simulator.", file=out, flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break


def _base_url(cloud: Any) -> str:
    return str(getattr(cloud, "url", None) or cloud.api_url)


def settings_text(account: AccountSettings, sink_url: str, rules_dir: Path, state_dir: Path) -> str:
    """A complete settings file: the daemon's directories, the account, the sink."""
    lines = [
        "[daemon]",
        f"rules_dir = {_toml(str(rules_dir))}",
        f"state_dir = {_toml(str(state_dir))}",
        f"control_socket = {_toml(str(state_dir / 'control.sock'))}",
        "",
        "[[accounts]]",
    ]
    for key, value in given_fields(account).items():
        lines.append(f"{key} = {_toml(value)}")
    lines += ["", "[[notify.targets]]", f"url = {_toml(sink_url)}", ""]
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, Secret):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a TOML basic string
