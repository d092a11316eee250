"""The `roost` command: run, demo, check, trace, reload, replay, and the others below."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from roost import __version__
from roost.cli.configpath import ConfigPathError, resolve_config
from roost.providers.registry import DEMO_VENDOR as DEFAULT_VENDOR
from roost.providers.registry import VENDORS

STOCK_RULES = Path("rules")  # the example rules, relative to the repository

if TYPE_CHECKING:
    from roost.config.settings import Settings
    from roost.service.runtime import Runtime


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _run_parser() if argv[:1] == ["run"] else _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if "config" in args:
        try:
            args.config = resolve_config(args.config)
        except ConfigPathError as exc:
            print(f"roost: {exc}", file=sys.stderr)
            return 1
    result: int = args.func(args)
    return result


def _top_parser() -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(
        prog="roost",
        description="Rules for cloud smart homes.",
        epilog="Settings: --config FILE, else $ROOST_CONFIG, else /etc/roost/roost.toml.",
    )
    parser.add_argument("--version", action="version", version=f"roost {__version__}")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the daemon until stopped")
    run.add_argument("--config", type=Path, help="the TOML settings file")
    run.set_defaults(func=_run)
    return parser, sub


def _run_parser() -> argparse.ArgumentParser:
    """`roost run` alone: the daemon never imports the other commands' modules (their
    parsers import the simulators, `roost auth`'s OAuth flows, shell completion)."""
    return _top_parser()[0]


def _parser() -> argparse.ArgumentParser:
    import shtab

    from roost.cli import cluster as clustercli
    from roost.cli import rules as rulecli
    from roost.cli import sim as simcli
    from roost.cli import status as statuscli

    parser, sub = _top_parser()
    shtab.add_argument_to(parser, ["--print-completion"], help="print a shell completion script")

    demo = sub.add_parser("demo", help="a simulated home, the example rules, narrated")
    demo.add_argument(
        "--rules",
        type=Path,
        help="rule directory (default: the examples installed with roost; another set is "
        "narrated, not judged)",
    )
    demo.add_argument("--speed", type=float, default=1.0, help="play the scenario N× faster")
    demo.add_argument(
        "--vendor", default=DEFAULT_VENDOR, help=f"which simulated cloud: {', '.join(VENDORS)}"
    )
    demo.set_defaults(func=_demo)

    init = sub.add_parser("init", help="write a starter roost.toml and the example rules")
    init.add_argument("directory", nargs="?", type=Path, default=Path("."), help="default: .")
    init.set_defaults(func=_init)

    rulecli.add_commands(sub)  # check, trace, reload, replay
    statuscli.add_commands(sub)  # status, events, notify-test, auth
    simcli.add_command(sub)  # sim
    clustercli.add_commands(sub)  # fleet, cluster

    outbox = sub.add_parser("outbox", help="pending and given-up notifications; retry one")
    outbox.add_argument("--config", type=Path, help="the TOML settings file")
    outbox.add_argument("--json", action="store_true", help="machine-readable output")
    outbox.add_argument("--retry", metavar="KEY", help="send this notification again")
    outbox.add_argument("--socket", type=Path, help="the control socket (default: from settings)")
    outbox.set_defaults(func=_outbox)

    web_url = sub.add_parser("web-url", help="the web page's link, with its action token")
    statuscli.socket_options(web_url)
    web_url.set_defaults(func=_web_url)
    return parser


def _settings_or_exit(path: Path | None, in_child: bool = False) -> Settings:
    """The settings, or exit 1 with every problem. `in_child`: validated in a child process
    (`roost run`: the daemon never imports pydantic, the loader's ~12 MiB)."""
    from roost.config.settings import ConfigError
    from roost.host.child import ChildFailed, run_in_child

    try:
        if in_child:
            settings: Settings = run_in_child("roost.config.load:load_settings", path)
            return settings
        from roost.config.load import load_settings

        return load_settings(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
    except ChildFailed as exc:
        print(f"roost cannot start: reading the settings failed: {exc}", file=sys.stderr)
    sys.exit(1)


def _runtime_or_exit(settings: Settings) -> Runtime:
    """The daemon, or exit 1 with every reason it cannot honour its configuration."""
    from roost.cli.configpath import ENV as CONFIG_ENV
    from roost.config.settings import unknown_env_overrides
    from roost.engine.loader import check_in_child
    from roost.host import faults
    from roost.notify.notifier import NotifyConfigError
    from roost.service.runtime import Runtime
    from roost.store.sqlite import StoreError

    unknown = [name for name in unknown_env_overrides() if name not in (faults.ENV, CONFIG_ENV)]
    problems = [f"${name}: names no setting (a typo?)" for name in unknown]
    if not settings.daemon.rules_dir.is_dir():
        problems.append(f"daemon.rules_dir: {settings.daemon.rules_dir} is not a directory")
    if not problems:
        try:
            return Runtime(settings, check_rules=check_in_child)  # no pydantic here
        except (NotifyConfigError, StoreError, OSError, ValueError) as exc:
            problems.append(str(exc))
    for problem in problems:
        print(f"roost cannot start: {problem}", file=sys.stderr)
    sys.exit(1)


def _run(args: argparse.Namespace) -> int:
    from roost.host.listeners import raise_fd_limit
    from roost.host.lock import AlreadyRunning, acquire
    from roost.host.log import configure_logging

    settings = _settings_or_exit(args.config, in_child=True)
    configure_logging(settings.log.level, settings.log.format)
    try:
        lock = acquire(settings.daemon.state_dir)  # before anything touches the directory
    except AlreadyRunning as exc:
        print(f"roost cannot start: {exc}", file=sys.stderr)
        return 1
    raise_fd_limit()
    runtime = _runtime_or_exit(settings)
    runtime.load_rules()

    from roost.service.systemd import serve

    try:
        anyio.run(serve, runtime)
    finally:
        lock.release()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from roost.cli.demo import main as demo_main
    from roost.host.log import configure_logging
    from roost.simulator.scenarios import SCENARIOS

    configure_logging("error", "console")
    if args.vendor not in SCENARIOS:
        print(
            f"no demo for {args.vendor!r}; choose one of: {', '.join(SCENARIOS)}", file=sys.stderr
        )
        return 2
    if args.rules is None:
        from roost.cli.starter import example_rules

        with example_rules() as rules:
            return demo_main(rules, sys.stdout, args.speed, args.vendor, True)
    if not args.rules.is_dir():
        print(f"no rule directory at {args.rules}", file=sys.stderr)
        return 1
    stock = args.rules.resolve() == STOCK_RULES.resolve()
    return demo_main(args.rules, sys.stdout, args.speed, args.vendor, stock)


def _init(args: argparse.Namespace) -> int:
    from roost.cli.starter import init

    return init(args.directory, sys.stdout)


def _outbox(args: argparse.Namespace) -> int:
    from roost.cli import status as statuscli
    from roost.cli.outbox import main as outbox_main
    from roost.cli.outbox import through_daemon

    socket = statuscli.socket_path(args.config, args.socket)
    if socket.exists():  # ask the running daemon, which owns the database file
        code = through_daemon(socket, args.retry, args.json, sys.stdout)
        if code is not None:
            return code
    settings = _settings_or_exit(args.config)
    return outbox_main(settings, args.retry, args.json)


def _web_url(args: argparse.Namespace) -> int:
    from roost.cli import status as statuscli

    answer = statuscli.ask(args, {"command": "web-url"})
    if answer is None:
        return 1
    print(answer["url"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
