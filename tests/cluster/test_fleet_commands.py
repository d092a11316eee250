"""Fleet commands run by a worker (`Runtime` in cluster mode, on a real PostgreSQL, against
the WWN simulator): the window (nothing before it opens; each setpoint saved at the start
restored when it closes, unless the user changed it), the final outcome of every command
as the vendor and the guards decided it, and a worker that takes a row over mid-step."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from roost.cluster import fleet
from roost.config.settings import Settings
from roost.core.codec import dumps
from roost.simulator.home import SimHome, SimThermostat
from roost.store.postgres import PgStore
from tests.command_stack import (
    ACCOUNT,
    ALARM,
    BEDROOM,
    HOME,
    LIVING,
    CommandStack,
    command_stack,
)

pytestmark = pytest.mark.anyio


def cluster(pg_url: str, worker: str) -> Callable[[Settings], None]:
    def configure(settings: Settings) -> None:
        settings.store.url = pg_url
        settings.cluster.enabled = True
        settings.cluster.worker = worker
        settings.cluster.check_s = 0.2

    return configure


@asynccontextmanager
async def worker(
    tmp_path: Path, pg_url: str, name: str, home: SimHome
) -> AsyncIterator[CommandStack]:
    async with command_stack(tmp_path / name, home=home, configure=cluster(pg_url, name)) as s:
        yield s


async def send(pg_url: str, setting: str, window: fleet.Window | None = None) -> str:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        fleet_id, rows = await fleet.create(
            conn,
            {ACCOUNT: ACCOUNT},
            fleet.Selection(),
            fleet.parse_setting(setting),
            window or fleet.Window(),
        )
    assert rows == 1
    return fleet_id


async def row(pg_url: str, fleet_id: str) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        report = await fleet.status(conn, fleet_id)
    found: dict[str, Any] = report["accounts"][0]
    return found


async def until_row(
    pg_url: str, fleet_id: str, done: Callable[[dict[str, Any]], bool], within: float = 20
) -> dict[str, Any]:
    with anyio.fail_after(within):
        while not done(r := await row(pg_url, fleet_id)):
            await anyio.sleep(0.1)
    return r


def heat(home: SimHome, thermostat: str) -> float | None:
    return home.thermostat(thermostat).target_c


def heat_writes(s: CommandStack) -> list[float]:
    return [
        float(body["target_temperature_c"])
        for _, body in s.cloud.writes
        if "target_temperature_c" in body
    ]


async def test_an_event_starts_when_its_window_opens_and_restores_what_it_saved(
    pg_url: str, tmp_path: Path
) -> None:
    PgStore(pg_url)
    home = SimHome.demo()  # heat mode: living room 20, bedroom 19
    now = datetime.now(UTC)
    window = fleet.Window(now + timedelta(seconds=3), now + timedelta(seconds=9))
    fleet_id = await send(pg_url, "heat_delta=2", window)
    async with worker(tmp_path, pg_url, "w1", home) as s:
        await anyio.sleep(1.5)  # the worker runs rounds; the window has not opened
        assert (await row(pg_url, fleet_id))["state"] == "pending"
        assert heat_writes(s) == []
        started = await until_row(pg_url, fleet_id, lambda r: r["state"] != "pending")
        assert datetime.fromisoformat(started["started_at"]) >= window.starts
        applied = await until_row(pg_url, fleet_id, lambda r: r["state"] != "sending")
        assert applied["state"] == "confirmed", applied  # the devices' echoes
        assert (heat(home, LIVING), heat(home, BEDROOM)) == (22.0, 21.0)
        # the user turns the bedroom down during the event: that stays
        home.set_target(BEDROOM, 17.0)
        home.changed()
        ended = await until_row(pg_url, fleet_id, lambda r: r["restore"] not in ("due", "sending"))
    assert ended["restore"] == "mixed", ended
    assert f"{LIVING}: restored" in ended["restore_detail"]
    assert f"{BEDROOM}: kept (kept the user's change (now 17.0" in ended["restore_detail"]
    assert (heat(home, LIVING), heat(home, BEDROOM)) == (20.0, 17.0)
    assert datetime.fromisoformat(ended["restored_at"]) >= window.ends  # type: ignore[operator]
    assert sorted(heat_writes(s)) == [20.0, 21.0, 22.0]  # two applied, one restored


async def test_every_account_gets_the_vendor_s_final_outcome_or_the_guard_s_refusal(
    pg_url: str, tmp_path: Path
) -> None:
    PgStore(pg_url)
    home = SimHome.demo()
    async with worker(tmp_path, pg_url, "w1", home) as s:
        confirmed = await send(pg_url, "heat=21")
        done = await until_row(pg_url, confirmed, lambda r: r["state"] not in ("pending", SENDING))
        assert done["state"] == "confirmed", done
        assert done["took_s"] is not None
        assert done["took_s"] >= 0
        refused = await send(pg_url, "heat=99")  # past the guards' maximum
        done = await until_row(pg_url, refused, lambda r: r["state"] not in ("pending", SENDING))
        assert done["state"] == "refused", done
        home.set_co(ALARM, "emergency")  # an alarm: no command may start heating
        await s.until(lambda: s.runtime.state.device(ALARM).co == "emergency")  # type: ignore[union-attr]
        during = await send(pg_url, "heat=25")
        done = await until_row(pg_url, during, lambda r: r["state"] not in ("pending", SENDING))
    assert done["state"] == "refused", done
    assert "alarm" in done["detail"]
    assert 25.0 not in heat_writes(s)
    assert 99.0 not in heat_writes(s)


SENDING = fleet.SENDING


async def test_a_row_taken_over_mid_event_is_neither_applied_twice_nor_left_unrestored(
    pg_url: str, tmp_path: Path
) -> None:
    PgStore(pg_url)
    home = SimHome.demo()
    now = datetime.now(UTC)
    window = fleet.Window(now, now + timedelta(seconds=8))
    fleet_id = await send(pg_url, "heat_delta=2", window)
    async with worker(tmp_path, pg_url, "w1", home) as first:
        applied = await until_row(
            pg_url, fleet_id, lambda r: r["state"] not in ("pending", SENDING)
        )
    assert applied["state"] == "confirmed"
    assert applied["worker"] == "w1"
    # w1 is gone mid-event; w2 takes the group over (a newer epoch)
    async with worker(tmp_path, pg_url, "w2", home) as second:
        ended = await until_row(pg_url, fleet_id, lambda r: r["restore"] not in ("due", SENDING))
    assert ended["restore"] == "restored", ended
    assert ended["worker"] == "w2", ended
    assert (heat(home, LIVING), heat(home, BEDROOM)) == (20.0, 19.0)
    assert sorted(heat_writes(first)) == [21.0, 22.0]
    assert sorted(heat_writes(second)) == [19.0, 20.0]  # the restores; no second +2


async def test_a_worker_resumes_a_dead_owner_s_step_sending_only_what_it_had_not_recorded(
    pg_url: str, tmp_path: Path
) -> None:
    """The previous owner wrote the plan and recorded (so sent) the living room's command,
    then died: the new owner sends the bedroom's only, with the planned target."""
    PgStore(pg_url)
    home = SimHome.demo()
    fleet_id = await send(pg_url, "heat_delta=2")
    plan = [
        fleet.Step(f"{fleet_id}:{ACCOUNT}:{LIVING}", LIVING, "heat", 20.0, 22.0).__dict__,
        fleet.Step(f"{fleet_id}:{ACCOUNT}:{BEDROOM}", BEDROOM, "heat", 19.0, 21.0).__dict__,
    ]
    home.set_target(LIVING, 22.0)  # what the dead owner's write did
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE fleet_targets SET state = 'sending', plan = %s, worker = 'w0', epoch = 1,"
            " started_at = now()",
            (dumps(plan),),
        )
        conn.execute(
            "INSERT INTO cluster_commands (id, grp, epoch, worker, account, body)"
            " VALUES (%s, %s, 1, 'w0', %s, '{}')",
            (plan[0]["id"], ACCOUNT, ACCOUNT),
        )
    async with worker(tmp_path, pg_url, "w1", home) as s:
        done = await until_row(pg_url, fleet_id, lambda r: r["state"] != SENDING)
    assert done["state"] == "confirmed", done
    assert "sent by the previous owner" in done["detail"]
    assert heat_writes(s) == [21.0]  # the bedroom's planned target; the living room not again
    assert (heat(home, LIVING), heat(home, BEDROOM)) == (22.0, 21.0)


def test_a_window_must_end_after_it_starts_and_in_the_future() -> None:
    now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    window = fleet.parse_window("2026-07-01T16:00+00:00", "2026-07-01T18:00+00:00", now)
    assert window.ends is not None
    assert window.starts is not None
    assert window.ends - window.starts == timedelta(hours=2)
    with pytest.raises(ValueError, match="not after --from"):
        fleet.parse_window("2026-07-01T18:00+00:00", "2026-07-01T16:00+00:00", now)
    with pytest.raises(ValueError, match="already past"):
        fleet.parse_window(None, "2026-07-01T11:00+00:00", now)
    with pytest.raises(ValueError, match="offset"):
        fleet.parse_window(None, "2026-07-01T18:00", now)
    with pytest.raises(ValueError, match="HH:MM"):
        fleet.parse_window("4pm", None, now)
    local = fleet.parse_time("16:00", now)
    assert (local.hour, local.minute) == (16, 0)
    assert local.utcoffset() == now.astimezone().utcoffset()
    assert fleet.parse_window(None, None, now) == fleet.Window()  # now, one-shot


def test_selection_by_tags_and_names_is_an_and() -> None:
    tags = {"a": ["enrolled", "east"], "b": ["enrolled"], "c": []}
    assert fleet.select(tags, fleet.Selection(tags=("enrolled",))) == ["a", "b"]
    assert fleet.select(tags, fleet.Selection(tags=("enrolled", "east"))) == ["a"]
    assert fleet.select(tags, fleet.Selection(("b", "c"), tags=("enrolled",))) == ["b"]
    with pytest.raises(ValueError, match="no account is tagged west"):
        fleet.select(tags, fleet.Selection(tags=("west",)))


async def test_a_worker_resumes_a_dead_owner_s_restore_keeping_its_decisions(
    pg_url: str, tmp_path: Path
) -> None:
    """The event is over; the previous owner decided each restore (the study: kept, the user
    had changed it), recorded (so sent) the living room's and died: the new owner sends the
    bedroom's only, and leaves the study as the user set it."""
    PgStore(pg_url)
    home = SimHome.demo()
    home.add(SimThermostat("thermostat-study", "Study", HOME, "Study", target_c=17.0))
    now = datetime.now(UTC)
    fleet_id = await send(pg_url, "heat_delta=2", fleet.Window(now, now + timedelta(seconds=1)))
    base = f"{fleet_id}:{ACCOUNT}:"
    plan = [
        fleet.Step(base + LIVING, LIVING, "heat", 20.0, 22.0, "confirmed", restore=SENDING),
        fleet.Step(base + BEDROOM, BEDROOM, "heat", 19.0, 21.0, "confirmed", restore=SENDING),
        fleet.Step(base + "thermostat-study", "thermostat-study", "heat", 16.0, 18.0,
                   "confirmed", restore="kept", restore_reason="kept the user's change"),
    ]  # fmt: skip
    home.set_target(BEDROOM, 21.0)  # still the event's setpoint
    await anyio.sleep(1.2)  # the window closed
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE fleet_targets SET state = 'confirmed', restore = 'sending', plan = %s,"
            " worker = 'w0', epoch = 1, started_at = now(), done_at = now()",
            (dumps([s.__dict__ for s in plan]),),
        )
        conn.execute(
            "INSERT INTO cluster_commands (id, grp, epoch, worker, account, body)"
            " VALUES (%s, %s, 1, 'w0', %s, '{}')",
            (plan[0].id + ":restore", ACCOUNT, ACCOUNT),
        )
    async with worker(tmp_path, pg_url, "w1", home) as s:
        done = await until_row(pg_url, fleet_id, lambda r: r["restore"] != SENDING)
    assert done["restore"] == "mixed", done
    assert f"{LIVING}: restored (sent by the previous owner" in done["restore_detail"]
    assert f"{BEDROOM}: restored" in done["restore_detail"]
    assert "thermostat-study: kept" in done["restore_detail"]
    assert heat_writes(s) == [19.0]  # the bedroom's saved setpoint; nothing else
    assert (heat(home, LIVING), heat(home, BEDROOM), heat(home, "thermostat-study")) == (
        20.0,
        19.0,
        17.0,
    )


async def test_a_rate_limited_or_refusing_vendor_is_the_row_s_final_outcome(
    pg_url: str, tmp_path: Path
) -> None:
    PgStore(pg_url)
    home = SimHome.demo()
    async with worker(tmp_path, pg_url, "w1", home) as s:
        s.runtime.dispatcher.tuning = replace(s.runtime.dispatcher.tuning, max_attempts=2)
        s.cloud.faults.fail_next("write", 4, 429, headers={"Retry-After": "0.05"})
        limited = await send(pg_url, "heat=21")
        done = await until_row(pg_url, limited, lambda r: r["state"] not in ("pending", SENDING))
        assert done["state"] == "rate_limited", done
        s.cloud.faults.fail_next("write", 2, 400)
        refused = await send(pg_url, "heat=21.5")
        done = await until_row(pg_url, refused, lambda r: r["state"] not in ("pending", SENDING))
    assert done["state"] == "failed", done
    assert "400" in done["detail"] or "Bad Request" in done["detail"], done
