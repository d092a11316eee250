"""The `roost` command: run, demo, check."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import anyio
import structlog

from roost import __version__


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roost", description="Rules for cloud smart homes.")
    parser.add_argument("--version", action="version", version=f"roost {__version__}")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the daemon until stopped")
    run.add_argument("--config", type=Path, help="the TOML settings file")
    run.set_defaults(func=_run)

    demo = sub.add_parser("demo", help="a simulated home, the example rules, narrated")
    demo.add_argument("--rules", type=Path, default=Path("rules"), help="rule directory")
    demo.add_argument("--speed", type=float, default=1.0, help="play the scenario N× faster")
    demo.add_argument("--vendor", default="nest_wwn", help="which simulated cloud (nest_wwn, …)")
    demo.set_defaults(func=_demo)

    check = sub.add_parser("check", help="validate the settings and every rule file")
    check.add_argument("--config", type=Path, help="the TOML settings file")
    check.add_argument("--rules", type=Path, help="rule directory (default: from the settings)")
    check.set_defaults(func=_check)

    outbox = sub.add_parser("outbox", help="pending and given-up notifications; retry one")
    outbox.add_argument("--config", type=Path, help="the TOML settings file")
    outbox.add_argument("--json", action="store_true", help="machine-readable output")
    outbox.add_argument("--retry", metavar="KEY", help="send this notification again")
    outbox.set_defaults(func=_outbox)
    return parser


def _settings_or_exit(path: Path | None):  # type: ignore[no-untyped-def]
    from roost.config import ConfigError, load_settings

    try:
        return load_settings(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)


def _run(args: argparse.Namespace) -> int:
    from roost.log import configure_logging
    from roost.runtime import Runtime

    settings = _settings_or_exit(args.config)
    configure_logging(settings.log.level, settings.log.format)
    runtime = Runtime(settings)
    runtime.load_rules()

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(runtime.run)
            with anyio.open_signal_receiver(
                signal.SIGHUP, signal.SIGTERM, signal.SIGINT
            ) as signals:
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        runtime.load_rules()
                        continue
                    structlog.get_logger("roost").info(
                        "stopping", signal=signal.Signals(signum).name
                    )
                    tg.cancel_scope.cancel()
                    return

    anyio.run(serve)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from roost.demo import SCENARIOS
    from roost.demo import main as demo_main
    from roost.log import configure_logging

    configure_logging("error", "console")
    if args.vendor not in SCENARIOS:
        print(
            f"no demo for {args.vendor!r}; choose one of: {', '.join(SCENARIOS)}", file=sys.stderr
        )
        return 2
    if not args.rules.is_dir():
        print(
            f"no rule directory at {args.rules}: run the demo from the repository", file=sys.stderr
        )
        return 1
    return demo_main(args.rules, sys.stdout, args.speed, args.vendor)


def _outbox(args: argparse.Namespace) -> int:
    from roost.outbox import main as outbox_main

    settings = _settings_or_exit(args.config)
    return outbox_main(settings.daemon.state_dir, args.retry, args.json)


def _check(args: argparse.Namespace) -> int:
    from roost.loader import load_directory

    settings = _settings_or_exit(args.config)
    rules_dir = args.rules or settings.daemon.rules_dir
    result = load_directory(rules_dir)
    for error in result.errors:
        print(error, file=sys.stderr)
    print(
        f"{len(result.rules)} rule(s) in {len(result.files)} file(s); {len(result.errors)} error(s)"
    )
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
