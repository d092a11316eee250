"""Fleet commands: one command to many accounts, one durable row per account.

`create` writes a fleet command and a `pending` row for each selected account (with its
group). Each worker's `FleetRunner` takes the pending rows of the groups it owns, sends the
command to the account's thermostats through the dispatcher (the normal guards and write
limits) and records one outcome per account, fenced by the group's epoch. Command ids are
derived from the fleet and the thermostat, so a row taken over after a failover is not
sent twice (the fence records each id once).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from roost.core.codec import dumps
from roost.core.commands import Action, Command, SetCool, SetHeat, SetMode
from roost.core.events import CommandOutcome
from roost.core.model import Thermostat, ThermostatMode
from roost.state.home_state import HomeState
from roost.store import fence

log = structlog.get_logger(__name__)

POLL_S = 1.0
BATCH = 200
DEADLINE = timedelta(minutes=10)
SETTINGS = ("heat", "cool", "mode", "cool_delta", "heat_delta")

Submit = Callable[[Command], Awaitable[CommandOutcome]]


@dataclass(frozen=True)
class Selection:
    accounts: tuple[str, ...] = ()  # by name
    structure: tuple[str, str] | None = None  # (attribute, value) in the last known state

    def describe(self) -> str:
        if self.structure:
            return f"structure {self.structure[0]}={self.structure[1]}"
        return f"accounts {', '.join(self.accounts)}" if self.accounts else "every account"


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


async def create(
    conn: psycopg.AsyncConnection[Any],
    groups: dict[str, str],
    selection: Selection,
    setting: tuple[str, str],
) -> tuple[str, int]:
    """Write the fleet command and one pending row per selected account: (id, rows)."""
    accounts = sorted(groups)
    if selection.accounts:
        unknown = sorted(set(selection.accounts) - set(groups))
        if unknown:
            raise ValueError(f"unknown accounts: {', '.join(unknown)}")
        accounts = sorted(selection.accounts)
    if selection.structure:
        accounts = await _matching(conn, accounts, *selection.structure)
    fleet_id = datetime.now(UTC).strftime("f%Y%m%d%H%M%S-") + secrets.token_hex(2)
    async with conn.transaction():
        await conn.execute(
            b"INSERT INTO fleet_commands (id, selection, setting) VALUES (%s, %s, %s)",
            (fleet_id, selection.describe(), dumps(list(setting))),
        )
        async with conn.cursor() as cursor:
            await cursor.executemany(
                b"INSERT INTO fleet_targets (fleet, account, grp) VALUES (%s, %s, %s)",
                [(fleet_id, a, groups[a]) for a in accounts],
            )
    return fleet_id, len(accounts)


async def _matching(
    conn: psycopg.AsyncConnection[Any], accounts: Sequence[str], attribute: str, value: str
) -> list[str]:
    import json

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


async def status(conn: psycopg.AsyncConnection[Any], fleet_id: str) -> dict[str, Any]:
    cursor = await conn.execute(
        b"SELECT selection, setting, created_at FROM fleet_commands WHERE id = %s", (fleet_id,)
    )
    head = await cursor.fetchone()
    if head is None:
        raise LookupError(f"no fleet command {fleet_id!r}")
    cursor = await conn.execute(
        b"SELECT account, state, detail, worker, done_at FROM fleet_targets"
        b" WHERE fleet = %s ORDER BY account",
        (fleet_id,),
    )
    rows = [
        {
            "account": r[0],
            "state": r[1],
            "detail": r[2],
            "worker": r[3],
            "done_at": r[4].isoformat() if r[4] else None,
        }
        for r in await cursor.fetchall()
    ]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return {
        "id": fleet_id,
        "selection": head[0],
        "setting": head[1],
        "created_at": head[2].isoformat(),
        "counts": counts,
        "accounts": rows,
    }


class FleetRunner:
    """Runs the pending fleet rows of the groups this worker owns."""

    def __init__(
        self,
        pool: Callable[[], Awaitable[AsyncConnectionPool]],
        worker: str,
        epochs: dict[str, int],
        state: HomeState,
        submit: Submit,
        poll_s: float = POLL_S,
    ) -> None:
        self._pool = pool
        self._worker = worker
        self._epochs = epochs  # the worker's live view: group -> epoch
        self._state = state
        self._submit = submit
        self._poll_s = poll_s

    async def run(self) -> None:
        while True:
            try:
                await self.once()
            except psycopg.Error as exc:
                log.warning("fleet commands: the store did not answer", error=str(exc))
            await anyio.sleep(self._poll_s)

    async def once(self) -> int:
        """Run what is pending for the owned groups now; how many rows got an outcome."""
        owned = dict(self._epochs)
        if not owned:
            return 0
        pool = await self._pool()
        async with pool.connection() as conn:
            cursor = await conn.execute(
                b"SELECT t.fleet, t.account, t.grp, f.setting FROM fleet_targets t"
                b" JOIN fleet_commands f ON f.id = t.fleet"
                b" WHERE t.state = 'pending' AND t.grp = ANY(%s) ORDER BY t.fleet LIMIT %s",
                (list(owned), BATCH),
            )
            rows = await cursor.fetchall()
        done = 0
        for fleet_id, account, group, setting in rows:
            epoch = owned.get(group)
            if epoch is None or self._epochs.get(group) != epoch:
                continue  # lost meanwhile: its new owner runs it
            import json

            state, detail = await self._execute(fleet_id, account, tuple(json.loads(setting)))
            try:
                await self._record(pool, fleet_id, account, group, epoch, state, detail)
                done += 1
            except fence.Fenced:
                log.info("fleet row left to the group's new owner", account=account)
        return done

    async def _execute(
        self, fleet_id: str, account: str, setting: tuple[str, ...]
    ) -> tuple[str, str]:
        thermostats = list(self._state.home(account).thermostats())
        if not thermostats:
            return "skipped", "no thermostat known for this account"
        outcomes = []
        now = datetime.now(UTC)
        for thermostat in thermostats:
            action = action_for((setting[0], setting[1]), thermostat)
            if action is None:
                outcomes.append(f"{thermostat.id}: skipped (no such setpoint in this mode)")
                continue
            command = Command(
                id=f"{fleet_id}:{account}:{thermostat.id}",
                account=account,
                target=thermostat.id,
                action=action,
                issued_at=now,
                deadline=now + DEADLINE,
                rule=f"fleet {fleet_id}",
            )
            outcome = await self._submit(command)
            text = f"{thermostat.id}: {outcome.outcome}"
            outcomes.append(text + (f" ({outcome.reason})" if outcome.reason else ""))
        states = {o.split(": ")[1].split(" ")[0] for o in outcomes}
        state = states.pop() if len(states) == 1 else "mixed"
        return state, "; ".join(outcomes)

    async def _record(
        self,
        pool: AsyncConnectionPool,
        fleet_id: str,
        account: str,
        group: str,
        epoch: int,
        state: str,
        detail: str,
    ) -> None:
        async with pool.connection() as conn, conn.transaction():
            await fence.check_epoch(conn, group, epoch)
            await conn.execute(
                b"UPDATE fleet_targets SET state = %s, detail = %s, worker = %s, epoch = %s,"
                b" done_at = now() WHERE fleet = %s AND account = %s AND state = 'pending'",
                (state, detail, self._worker, epoch, fleet_id, account),
            )
