"""Fleet commands: one command to many accounts, one durable row per account.

`create` writes a fleet command (its setting, and a window: when it starts and, for an
event, when it ends) and a `pending` row for each selected account (with its group). Each
worker's `FleetRunner` runs the rows of the groups it owns, through the dispatcher (the
normal guards and write limits), every step fenced by the group's epoch:

- start (the window opened): the row's plan (each thermostat's command id, its setpoint
  before and the target) is written, then each command is submitted; the row stays
  `sending` until every command has its final outcome from the dispatcher (confirmed by
  the device's echo, sent without one, refused by a guard, failed, rate limited, ...).
- restore (the window closed): each thermostat still at the target gets its saved
  setpoint back; one the user changed during the event is left as it is ("kept").

A row taken over in the middle of a step (its worker died) resumes from its plan: a
command the previous owner recorded (the fence's `cluster_commands`) was sent and is not
sent again; the others are sent with the same ids and the planned targets (a delta is
never applied twice).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import anyio
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from roost.core.bus import Batch, Bus, Overflow
from roost.core.codec import dumps
from roost.core.commands import Action, Command, FailureReason, SetCool, SetHeat, SetMode, satisfies
from roost.core.events import CommandOutcome, Outcome
from roost.core.inbox import Inbox
from roost.core.model import Thermostat, ThermostatMode
from roost.state.home_state import HomeState
from roost.store import fence

log = structlog.get_logger(__name__)

POLL_S = 1.0
BATCH = 200
DEADLINE = timedelta(minutes=10)
SETTINGS = ("heat", "cool", "mode", "cool_delta", "heat_delta")
UNHEARD_S = DEADLINE.total_seconds() + 300  # every command has its final outcome by then
OUTCOMES_BUFFER = 4096  # batches; the bus drops beyond (never blocking the alarm path)

Submit = Callable[[Command], Awaitable[CommandOutcome]]

NOT_FINAL = frozenset({Outcome.QUEUED, Outcome.SENT})
SENDING = "sending"  # a row's commands are submitted, their final outcomes awaited
APPLIED = frozenset({"confirmed", "sent"})  # what a restore undoes


@dataclass(frozen=True)
class Selection:
    accounts: tuple[str, ...] = ()  # by name
    structure: tuple[str, str] | None = None  # (attribute, value) in the last known state
    tags: tuple[str, ...] = ()  # an account carries every one of them

    def describe(self) -> str:
        parts = []
        if self.accounts:
            parts.append(f"accounts {', '.join(self.accounts)}")
        if self.tags:
            parts.append(f"tagged {', '.join(self.tags)}")
        if self.structure:
            parts.append(f"structure {self.structure[0]}={self.structure[1]}")
        return " and ".join(parts) or "every account"


@dataclass(frozen=True)
class Window:
    """When a fleet command applies: from `starts` (None: at once) until `ends` (None: a
    one-shot, nothing restored)."""

    starts: datetime | None = None
    ends: datetime | None = None


def parse_time(text: str, now: datetime) -> datetime:
    """`HH:MM` (today, in this machine's local time zone) or an ISO datetime with offset."""
    local = now.astimezone()
    try:
        clock = time.fromisoformat(text) if len(text) <= 5 else None
    except ValueError:
        clock = None
    if clock is not None:
        return datetime.combine(local.date(), clock, tzinfo=local.tzinfo)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r}: HH:MM (today, local time) or an ISO datetime with its offset, "
            "e.g. 2026-07-01T16:00+02:00"
        ) from None
    if at.tzinfo is None:
        raise ValueError(f"{text!r}: give the offset (e.g. {text}+02:00), or HH:MM for today")
    return at


def parse_window(starts: str | None, ends: str | None, now: datetime) -> Window:
    """`--from`/`--until` as a window; an until in the past or before from is refused."""
    start = parse_time(starts, now) if starts else None
    end = parse_time(ends, now) if ends else None
    if end is not None:
        if end <= now:
            raise ValueError(f"--until {ends}: {end.isoformat()} is already past")
        if start is not None and end <= start:
            raise ValueError(
                f"--until {ends} is not after --from {starts}"
                f" ({end.isoformat()} <= {start.isoformat()})"
            )
    return Window(start, end)


def parse_setting(text: str) -> tuple[str, str]:
    """`heat=19.5`, `cool=24`, `mode=off`, `cool_delta=2`, `heat_delta=-1`."""
    name, sep, value = text.partition("=")
    if not sep or name not in SETTINGS:
        raise ValueError(f"--set {text!r}: one of {', '.join(SETTINGS)} as NAME=VALUE")
    if name == "mode":
        ThermostatMode(value)  # ValueError names a bad mode
    else:
        float(value)
    return name, value


def action_for(setting: tuple[str, str], thermostat: Thermostat) -> Action | None:
    name, value = setting
    if name == "mode":
        return SetMode(ThermostatMode(value))
    if name == "heat":
        return SetHeat(float(value))
    if name == "cool":
        return SetCool(float(value))
    current = thermostat.cool_setpoint_c if name == "cool_delta" else thermostat.heat_setpoint_c
    if current is None:
        return None  # not in a mode with that setpoint: nothing to move
    target = round(current + float(value), 1)
    return SetCool(target) if name == "cool_delta" else SetHeat(target)


def select(tags: Mapping[str, Iterable[str]], selection: Selection) -> list[str]:
    """The accounts (of `tags`: account -> its tags) the selection names, before the
    structure match; a name or tag no account has is an error, not an empty fleet."""
    accounts = sorted(tags)
    if selection.accounts:
        unknown = sorted(set(selection.accounts) - set(tags))
        if unknown:
            raise ValueError(f"unknown accounts: {', '.join(unknown)}")
        accounts = sorted(set(selection.accounts))
    if selection.tags:
        known = {t for ts in tags.values() for t in ts}
        unknown = sorted(set(selection.tags) - known)
        if unknown:
            raise ValueError(f"no account is tagged {', '.join(unknown)}")
        wanted = set(selection.tags)
        accounts = [a for a in accounts if wanted <= set(tags[a])]
    return accounts


async def create(
    conn: psycopg.AsyncConnection[Any],
    groups: dict[str, str],
    selection: Selection,
    setting: tuple[str, str],
    window: Window | None = None,
    tags: Mapping[str, Iterable[str]] | None = None,
) -> tuple[str, int]:
    """Write the fleet command and one pending row per selected account: (id, rows)."""
    window = window or Window()
    accounts = select(tags if tags is not None else dict.fromkeys(groups, ()), selection)
    if selection.structure:
        accounts = await _matching(conn, accounts, *selection.structure)
    if not accounts:
        raise ValueError(f"no account matches {selection.describe()}")
    fleet_id = datetime.now(UTC).strftime("f%Y%m%d%H%M%S-") + secrets.token_hex(2)
    restore = "due" if window.ends is not None else ""
    async with conn.transaction():
        await conn.execute(
            b"INSERT INTO fleet_commands (id, selection, setting, starts_at, ends_at)"
            b" VALUES (%s, %s, %s, coalesce(%s, now()), %s)",
            (fleet_id, selection.describe(), dumps(list(setting)), window.starts, window.ends),
        )
        async with conn.cursor() as cursor:
            await cursor.executemany(
                b"INSERT INTO fleet_targets (fleet, account, grp, restore) VALUES (%s, %s, %s, %s)",
                [(fleet_id, a, groups[a], restore) for a in accounts],
            )
    return fleet_id, len(accounts)


async def _matching(
    conn: psycopg.AsyncConnection[Any], accounts: Sequence[str], attribute: str, value: str
) -> list[str]:
    cursor = await conn.execute(
        b"SELECT account, snapshot FROM home_state WHERE account = ANY(%s)", (list(accounts),)
    )
    found = []
    for account, snapshot in await cursor.fetchall():
        structures = json.loads(snapshot).get("structures", {})
        items = structures.values() if isinstance(structures, dict) else structures
        if any(str(s.get(attribute)) == value for s in items if isinstance(s, dict)):
            found.append(str(account))
    return sorted(found)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


async def status(conn: psycopg.AsyncConnection[Any], fleet_id: str) -> dict[str, Any]:
    cursor = await conn.execute(
        b"SELECT selection, setting, created_at, starts_at, ends_at FROM fleet_commands"
        b" WHERE id = %s",
        (fleet_id,),
    )
    head = await cursor.fetchone()
    if head is None:
        raise LookupError(f"no fleet command {fleet_id!r}")
    cursor = await conn.execute(
        b"SELECT account, state, detail, worker, started_at, done_at, restore, restore_detail,"
        b" restored_at FROM fleet_targets WHERE fleet = %s ORDER BY account",
        (fleet_id,),
    )
    rows = []
    counts: dict[str, int] = {}
    restores: dict[str, int] = {}
    for r in await cursor.fetchall():
        took = (r[5] - r[4]).total_seconds() if r[4] and r[5] else None
        rows.append(
            {
                "account": r[0],
                "state": r[1],
                "detail": r[2],
                "worker": r[3],
                "started_at": _iso(r[4]),
                "done_at": _iso(r[5]),
                "took_s": round(took, 3) if took is not None else None,
                "restore": r[6],
                "restore_detail": r[7],
                "restored_at": _iso(r[8]),
            }
        )
        counts[r[1]] = counts.get(r[1], 0) + 1
        if r[6]:
            restores[r[6]] = restores.get(r[6], 0) + 1
    return {
        "id": fleet_id,
        "selection": head[0],
        "setting": head[1],
        "created_at": head[2].isoformat(),
        "starts_at": _iso(head[3]),
        "ends_at": _iso(head[4]),
        "counts": counts,
        "restores": restores,
        "accounts": rows,
    }


def final_state(outcome: CommandOutcome) -> str:
    """The vendor's verdict on one command, as a fleet row shows it."""
    if outcome.outcome is Outcome.FAILED:
        if outcome.failure is FailureReason.RATE_LIMITED:
            return "rate_limited"
        if outcome.failure is FailureReason.UNCONFIRMED:
            return "sent"  # the vendor took it; the device never echoed it
        return "failed"
    return str(outcome.outcome)


@dataclass
class Step:
    """One thermostat's part of a row: the command, and (for a window) the undo."""

    id: str
    thermostat: str
    attr: str  # heat, cool or mode
    before: Any
    target: Any
    outcome: str = ""
    reason: str = ""
    restore: str = ""  # '' (not yet), sending, then restored/sent/kept/nothing/refused/...
    restore_reason: str = ""

    def action(self, value: Any) -> Action:
        if self.attr == "mode":
            return SetMode(ThermostatMode(value))
        return SetHeat(float(value)) if self.attr == "heat" else SetCool(float(value))


def plan_of(text: str) -> list[Step]:
    return [Step(**s) for s in json.loads(text)]


def _plan_text(steps: Sequence[Step]) -> str:
    return dumps([s.__dict__ for s in steps])


def _current(thermostat: Thermostat, attr: str) -> Any:
    if attr == "mode":
        return str(thermostat.mode) if thermostat.mode is not None else None
    return thermostat.heat_setpoint_c if attr == "heat" else thermostat.cool_setpoint_c


def _attr(action: Action) -> tuple[str, Any]:
    if isinstance(action, SetMode):
        return "mode", str(action.mode)
    if isinstance(action, SetHeat):
        return "heat", action.celsius
    assert isinstance(action, SetCool)
    return "cool", action.celsius


@dataclass
class _Run:
    """A row whose commands (start or restore) await their final outcomes."""

    fleet: str
    account: str
    group: str
    epoch: int
    phase: str  # start or restore
    steps: list[Step]
    waiting: set[str] = field(default_factory=set)  # command ids
    since: float = field(default_factory=anyio.current_time)


class FleetRunner:
    """Runs the fleet rows of the groups this worker owns."""

    def __init__(
        self,
        pool: Callable[[], Awaitable[AsyncConnectionPool]],
        worker: str,
        epochs: dict[str, int],
        state: HomeState,
        submit: Submit,
        bus: Bus,
        poll_s: float = POLL_S,
    ) -> None:
        self._pool = pool
        self._worker = worker
        self._epochs = epochs  # the worker's live view: group -> epoch
        self._state = state
        self._submit = submit
        self._poll_s = poll_s
        # Overflow DROP: a slow fleet never holds up the bus (and so no alarm).
        self._outcomes: Inbox[Batch] = bus.subscribe(
            "fleet", buffer=OUTCOMES_BUFFER, overflow=Overflow.DROP
        )
        self._runs: dict[tuple[str, str], _Run] = {}  # (fleet, account) -> in flight
        self._by_command: dict[str, _Run] = {}

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch)
            while True:
                try:
                    await self.once()
                except psycopg.Error as exc:
                    log.warning("fleet commands: the store did not answer", error=str(exc))
                await anyio.sleep(self._poll_s)

    async def _watch(self) -> None:
        async for batch in self._outcomes:
            for event in batch:
                if isinstance(event, CommandOutcome) and event.command in self._by_command:
                    self._note(event)

    def _note(self, outcome: CommandOutcome) -> None:
        if outcome.outcome in NOT_FINAL:
            return
        run = self._by_command.pop(outcome.command, None)
        if run is None:
            return
        run.waiting.discard(outcome.command)
        for step in run.steps:
            if run.phase == "start" and step.id == outcome.command:
                step.outcome, step.reason = final_state(outcome), outcome.reason
            elif run.phase == "restore" and _restore_id(step) == outcome.command:
                verdict = final_state(outcome)
                step.restore = "restored" if verdict == "confirmed" else verdict
                step.restore_reason = outcome.reason

    async def once(self) -> int:
        """One round over the owned groups' rows; how many rows got a final outcome."""
        owned = dict(self._epochs)
        self._forget_lost(owned)
        if not owned:
            return 0
        pool = await self._pool()
        done = await self._finish(pool)
        async with pool.connection() as conn:
            cursor = await conn.execute(_DUE, (list(owned), BATCH))
            rows = await cursor.fetchall()
        for fleet_id, account, group, setting, row_state, plan, restore, ended in rows:
            epoch = owned.get(group)
            if epoch is None or self._epochs.get(group) != epoch:
                continue  # lost meanwhile: its new owner runs it
            if (fleet_id, account) in self._runs:
                continue  # in flight here
            try:
                if row_state == "pending" and ended:
                    await self._missed(pool, fleet_id, account, group, epoch)
                    done += 1
                elif row_state == "pending":
                    await self._start(pool, fleet_id, account, group, epoch, setting)
                elif row_state == SENDING:  # taken over mid-start
                    await self._resume(pool, fleet_id, account, group, epoch, "start", plan)
                elif restore == "due":
                    await self._restore(pool, fleet_id, account, group, epoch, plan)
                elif restore == SENDING:  # taken over mid-restore
                    await self._resume(pool, fleet_id, account, group, epoch, "restore", plan)
            except fence.Fenced:
                self._runs.pop((fleet_id, account), None)
                log.info("fleet row left to the group's new owner", account=account)
        return done + await self._finish(pool)

    def _forget_lost(self, owned: dict[str, int]) -> None:
        for key, run in list(self._runs.items()):
            if owned.get(run.group) != run.epoch:
                del self._runs[key]  # its new owner resumes the row from its plan
                for command_id in run.waiting:
                    self._by_command.pop(command_id, None)

    async def _missed(
        self, pool: AsyncConnectionPool, fleet_id: str, account: str, group: str, epoch: int
    ) -> None:
        await self._update(
            pool,
            group,
            epoch,
            b"state = 'missed', detail = 'the window closed before it could start',"
            b" restore = CASE WHEN restore = '' THEN '' ELSE 'nothing' END, done_at = now()",
            (),
            fleet_id,
            account,
            b"state = 'pending'",
        )

    async def _start(
        self,
        pool: AsyncConnectionPool,
        fleet_id: str,
        account: str,
        group: str,
        epoch: int,
        setting_text: str,
    ) -> None:
        name, value = json.loads(setting_text)
        steps: list[Step] = []
        skipped: list[str] = []
        for thermostat in self._state.home(account).thermostats():
            action = action_for((name, value), thermostat)
            if action is None:
                skipped.append(f"{thermostat.id}: skipped (no such setpoint in this mode)")
                continue
            attr, target = _attr(action)
            steps.append(
                Step(
                    f"{fleet_id}:{account}:{thermostat.id}",
                    thermostat.id,
                    attr,
                    _current(thermostat, attr),
                    target,
                )
            )
        if not steps:
            detail = "; ".join(skipped) or "no thermostat known for this account"
            await self._update(
                pool,
                group,
                epoch,
                b"state = 'skipped', detail = %s, done_at = now(), started_at = now(),"
                b" restore = CASE WHEN restore = '' THEN '' ELSE 'nothing' END",
                (detail,),
                fleet_id,
                account,
                b"state = 'pending'",
            )
            return
        # The plan (with each setpoint before) is durable before the first command goes.
        planned = await self._update(
            pool,
            group,
            epoch,
            b"state = 'sending', plan = %s, started_at = now()",
            (_plan_text(steps),),
            fleet_id,
            account,
            b"state = 'pending'",
        )
        if planned:
            await self._send(_Run(fleet_id, account, group, epoch, "start", steps), steps)

    async def _resume(
        self,
        pool: AsyncConnectionPool,
        fleet_id: str,
        account: str,
        group: str,
        epoch: int,
        phase: str,
        plan: str,
    ) -> None:
        """A row taken over mid-step: what the previous owner recorded was sent; the rest
        goes now, with the same ids and the planned values."""
        steps = plan_of(plan)
        run = _Run(fleet_id, account, group, epoch, phase, steps)
        ids = {s.id if phase == "start" else _restore_id(s): s for s in steps}
        if phase == "restore":
            ids = {i: s for i, s in ids.items() if ids[i].restore == SENDING}
        recorded = await _recorded(pool, list(ids))
        todo = []
        for command_id, step in ids.items():
            if command_id not in recorded:
                todo.append(step)
                continue
            shown = self._shows(account, step, step.target if phase == "start" else step.before)
            verdict = "confirmed" if shown else "sent"
            why = "sent by the previous owner before a failover"
            if phase == "start":
                step.outcome, step.reason = verdict, why
            else:
                step.restore = "restored" if shown else "sent"
                step.restore_reason = why
        if phase == "restore":
            # (claims the row for this epoch)
            await self._update(
                pool,
                group,
                epoch,
                b"plan = %s",
                (_plan_text(steps),),
                fleet_id,
                account,
                b"restore = 'sending'",
            )
        await self._send(run, todo)

    async def _restore(
        self,
        pool: AsyncConnectionPool,
        fleet_id: str,
        account: str,
        group: str,
        epoch: int,
        plan: str,
    ) -> None:
        """The window closed: each thermostat still at the target gets its setpoint back."""
        steps = plan_of(plan)
        todo = []
        for step in steps:
            if step.outcome not in APPLIED:
                step.restore, step.restore_reason = "nothing", f"not applied ({step.outcome})"
            elif step.before is None:
                step.restore, step.restore_reason = "nothing", "no setpoint before the event"
            elif not self._shows(account, step, step.target):
                now = self._value(account, step)
                step.restore = "kept"
                step.restore_reason = f"kept the user's change (now {now}, set {step.target})"
            else:
                step.restore = SENDING
                todo.append(step)
        # The decisions are durable before the first restore goes (a failover resumes them).
        decided = await self._update(
            pool,
            group,
            epoch,
            b"restore = 'sending', plan = %s",
            (_plan_text(steps),),
            fleet_id,
            account,
            b"restore = 'due'",
        )
        if decided:
            await self._send(_Run(fleet_id, account, group, epoch, "restore", steps), todo)

    def _value(self, account: str, step: Step) -> Any:
        for thermostat in self._state.home(account).thermostats():
            if thermostat.id == step.thermostat:
                return _current(thermostat, step.attr)
        return None

    def _shows(self, account: str, step: Step, value: Any) -> bool:
        current = self._value(account, step)
        if step.attr == "mode":
            return bool(current == value)
        return value is not None and satisfies(current, float(value))

    async def _send(self, run: _Run, steps: Sequence[Step]) -> None:
        self._runs[(run.fleet, run.account)] = run
        now = datetime.now(UTC)
        commands = []
        for step in steps:
            restoring = run.phase == "restore"
            command = Command(
                id=_restore_id(step) if restoring else step.id,
                account=run.account,
                target=step.thermostat,
                action=step.action(step.before if restoring else step.target),
                issued_at=now,
                deadline=now + DEADLINE,
                rule=f"fleet {run.fleet}" + (" (restore)" if restoring else ""),
            )
            run.waiting.add(command.id)
            self._by_command[command.id] = run
            commands.append(command)
        for command in commands:
            self._note(await self._submit(command))

    async def _finish(self, pool: AsyncConnectionPool) -> int:
        """Record the rows whose commands all have their final outcome."""
        done = 0
        for key, run in list(self._runs.items()):
            if run.waiting and anyio.current_time() - run.since > UNHEARD_S:
                self._unheard(run)
            if run.waiting:
                continue
            try:
                await self._record(pool, run)
                done += 1
            except fence.Fenced:
                log.info("fleet row left to the group's new owner", account=run.account)
            del self._runs[key]  # (a store error above leaves it for the next round)
        return done

    def _unheard(self, run: _Run) -> None:
        """Outcomes the bus dropped (a flood): the row ends, saying so, not stuck."""
        for command_id in run.waiting:
            self._by_command.pop(command_id, None)
            for step in run.steps:
                if run.phase == "start" and step.id == command_id:
                    step.outcome, step.reason = "unknown", "no final outcome heard"
                elif run.phase == "restore" and _restore_id(step) == command_id:
                    step.restore, step.restore_reason = "unknown", "no final outcome heard"
        run.waiting.clear()

    async def _record(self, pool: AsyncConnectionPool, run: _Run) -> None:
        if run.phase == "start":
            states = {s.outcome for s in run.steps}
            detail = "; ".join(
                f"{s.thermostat}: {s.outcome}" + (f" ({s.reason})" if s.reason else "")
                for s in run.steps
            )
            sets = b"state = %s, detail = %s, plan = %s, done_at = now()"
            where = b"state = 'sending'"
        else:
            states = {s.restore for s in run.steps}
            detail = "; ".join(
                f"{s.thermostat}: {s.restore}"
                + (f" ({s.restore_reason})" if s.restore_reason else "")
                for s in run.steps
            )
            sets = b"restore = %s, restore_detail = %s, plan = %s, restored_at = now()"
            where = b"restore = 'sending'"
        state = states.pop() if len(states) == 1 else "mixed"
        params = (state, detail, _plan_text(run.steps))
        await self._update(pool, run.group, run.epoch, sets, params, run.fleet, run.account, where)

    async def _update(
        self,
        pool: AsyncConnectionPool,
        group: str,
        epoch: int,
        sets: bytes,
        params: Sequence[Any],
        fleet_id: str,
        account: str,
        where: bytes,
    ) -> bool:
        """One fenced step of a row: only the group's owner in this epoch writes it (False:
        the row had moved on, nothing written)."""
        async with pool.connection() as conn, conn.transaction():
            await fence.check_epoch(conn, group, epoch)
            cursor = await conn.execute(
                b"UPDATE fleet_targets SET "
                + sets
                + b", worker = %s, epoch = %s WHERE fleet = %s AND account = %s AND "
                + where,
                (*params, self._worker, epoch, fleet_id, account),
            )
            return cursor.rowcount == 1


def _restore_id(step: Step) -> str:
    return f"{step.id}:restore"


async def _recorded(pool: AsyncConnectionPool, ids: list[str]) -> set[str]:
    """Which of these commands a worker recorded (so sent, or about to be) under the fence."""
    if not ids:
        return set()
    async with pool.connection() as conn:
        cursor = await conn.execute(b"SELECT id FROM cluster_commands WHERE id = ANY(%s)", (ids,))
        return {str(r[0]) for r in await cursor.fetchall()}


# The rows with something to do now, in the owned groups: pending ones whose window opened
# (or closed unstarted), ones a dead owner left mid-step, and restores whose window closed.
_DUE = b"""
SELECT t.fleet, t.account, t.grp, f.setting, t.state, t.plan, t.restore,
       f.ends_at IS NOT NULL AND f.ends_at <= now()
FROM fleet_targets t JOIN fleet_commands f ON f.id = t.fleet
WHERE t.grp = ANY(%s) AND (
    (t.state = 'pending' AND f.starts_at <= now())
    OR t.state = 'sending'
    OR (t.restore IN ('due', 'sending') AND f.ends_at <= now() AND t.state <> 'sending')
)
ORDER BY f.starts_at, t.fleet LIMIT %s
"""
