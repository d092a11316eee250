"""The store contract (roost.store.interface.StateStore), run against SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from roost.core.codec import event_to_dict
from roost.core.events import AttributeChanged, SetpointChanged
from roost.core.timers import TimerKind, TimerRecord
from roost.providers.base import TokenSet
from roost.store.interface import StateStore
from roost.store.sqlite import JournalEntry, Store
from tests.store_kit import store_fixture  # noqa: F401  (the `store` fixture)

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def test_tokens_round_trip(store: StateStore) -> None:
    assert await store.load_token("a") is None
    tokens = TokenSet("access-1", "refresh-1", NOW + timedelta(hours=1), "read write")
    await store.save_token("a", tokens)
    assert await store.load_token("a") == tokens
    await store.save_token("a", TokenSet("access-2", "refresh-2"))
    assert await store.load_token("a") == TokenSet("access-2", "refresh-2")
    assert await store.load_token("b") is None


async def test_provider_memory_and_meta(store: StateStore) -> None:
    assert await store.memory_get("a", "cursor") is None
    await store.memory_put("a", "cursor", "1")
    await store.memory_put("a", "cursor", "2")
    await store.memory_put("b", "cursor", "x")
    assert await store.memory_get("a", "cursor") == "2"
    assert await store.memory_get("b", "cursor") == "x"
    await store.meta_put("k", "v")
    assert await store.meta_get("k") == "v"
    assert await store.meta_get("missing") is None


async def test_the_outbox_adds_once_comes_due_retries_and_prunes(store: StateStore) -> None:
    payload = {"title": "CO!", "body": "get out", "tags": ["urgent"], "nul": "a\x00b"}
    assert await store.outbox_add("k1", payload, NOW)
    assert not await store.outbox_add("k1", {"other": 1}, NOW)  # the key is the identity
    assert await store.outbox_add("k2", {"title": "later"}, NOW + timedelta(seconds=1))
    due = await store.outbox_due(NOW)
    assert [(e.key, e.payload, e.state, e.attempts) for e in due] == [("k1", payload, "pending", 0)]
    assert due[0].created_at == NOW
    assert due[0].next_attempt_at == NOW
    assert await store.outbox_next_due() == NOW
    # planned beyond the horizon: the wall clock went back, so it is due now
    assert [
        e.key for e in await store.outbox_due(NOW - timedelta(days=1), NOW - timedelta(hours=1))
    ] == ["k1", "k2"]
    await store.outbox_update(
        "k1",
        state="dead",
        attempts=3,
        delivered_to=["json://x"],
        next_attempt_at=NOW,
        last_error="refused",
        finished_at=NOW,
    )
    listed = await store.outbox_list()
    assert [(e.key, e.state, e.attempts, e.delivered_to, e.last_error) for e in listed] == [
        ("k1", "dead", 3, ["json://x"], "refused"),
        ("k2", "pending", 0, [], ""),
    ]
    assert await store.outbox_retry("k1", NOW + timedelta(minutes=1))
    assert not await store.outbox_retry("nope", NOW)
    assert await store.outbox_next_due() == NOW + timedelta(seconds=1)
    await store.outbox_update(
        "k2",
        state="delivered",
        attempts=1,
        delivered_to=[],
        next_attempt_at=NOW,
        finished_at=NOW - timedelta(days=8),
    )
    assert await store.outbox_list(("delivered",)) != []
    assert await store.outbox_prune(NOW - timedelta(days=7)) == 1
    assert [e.key for e in await store.outbox_list(("pending", "dead", "delivered"))] == ["k1"]


async def test_timers_and_rule_state(store: StateStore) -> None:
    await store.timer_put("t1", "rule-a", "hold", NOW, {"n": 1})
    await store.timer_put("t1", "rule-a", "hold", NOW + timedelta(minutes=5), {"n": 2})
    await store.timer_put("t2", "rule-b", "cron", NOW, {})
    assert sorted(await store.timers()) == [
        ("t1", "rule-a", "hold", NOW + timedelta(minutes=5), {"n": 2}),
        ("t2", "rule-b", "cron", NOW, {}),
    ]
    await store.timer_delete("t2")
    await store.timer_delete("unknown")
    assert [t[0] for t in await store.timers()] == ["t1"]
    await store.rule_state_put({"rule-a": {"runs": [1, 2]}, "rule-b": {}})
    await store.rule_state_put({"rule-a": {"runs": [3]}})
    assert await store.rule_states() == {"rule-a": {"runs": [3]}, "rule-b": {}}


async def test_the_engines_timer_view_survives_a_reopen(store: StateStore) -> None:
    timers = store.timer_persistence()
    record = TimerRecord("t1", "rule-a", TimerKind.HOLD, NOW, {"n": 1})
    timers.save(record)
    timers.save(TimerRecord("t2", "rule-a", TimerKind.HOLD, NOW, {}))
    timers.delete("t2")
    timers.close()
    again = store.timer_persistence()
    assert again.load_all() == [record]
    again.close()


async def test_homes_and_change_identities(store: StateStore) -> None:
    await store.home_put("a", {"devices": {"t": {"temp": 21.5}}}, NOW)
    await store.home_put("a", {"devices": {"t": {"temp": 22.0}}}, NOW)
    await store.home_put("b", {"devices": {}}, NOW)
    assert await store.homes() == {"a": {"devices": {"t": {"temp": 22.0}}}, "b": {"devices": {}}}
    store.reserve_versions("a", [("t/temp", 1, 21.5), ("t/mode", 4, "heat")])
    store.reserve_versions("a", [("t/temp", 2, 22.0)])
    await store.flush()
    assert await store.versions("a") == {"t/temp": (2, 22.0), "t/mode": (4, "heat")}
    assert await store.versions("b") == {}


ODD_KEYS = [
    "th\ud800x.mode",  # a lone surrogate: JSON can carry one in a vendor's id
    "nul\x00id.mode",  # PostgreSQL's text holds no NUL
    "\uffffplain.mode",  # starts like PostgreSQL's escaped keys
    "\uffff" + "th\ud800x.mode".encode("utf-8", "surrogatepass").hex(),  # looks escaped
    "caf\u00e9.mode",
]


async def test_change_identities_of_odd_device_ids_are_kept_exactly(store: StateStore) -> None:
    store.reserve_versions("a", [(key, 1, key) for key in ODD_KEYS])
    await store.flush()
    assert await store.versions("a") == {key: (1, key) for key in ODD_KEYS}
    store.reserve_versions("a", [(ODD_KEYS[0], 2, 22.0)])  # the same row again
    await store.flush()
    assert (await store.versions("a"))[ODD_KEYS[0]] == (2, 22.0)
    assert len(await store.versions("a")) == len(ODD_KEYS)


async def test_the_alarms_roost_pushed_itself_are_kept_until_deleted(store: StateStore) -> None:
    assert await store.alarms_pushed() == []
    await store.alarm_pushed_put("a", "hallway", "co")
    await store.alarm_pushed_put("a", "hallway", "co")  # again: still one row
    await store.alarm_pushed_put("a", "hallway", "smoke")
    for device in ODD_KEYS:
        await store.alarm_pushed_put("b", device, "co")
    expected = {("a", "hallway", "co"), ("a", "hallway", "smoke")}
    expected |= {("b", device, "co") for device in ODD_KEYS}
    assert sorted(await store.alarms_pushed()) == sorted(expected)
    await store.alarm_pushed_delete("a", "hallway", "co")
    await store.alarm_pushed_delete("a", "nowhere", "co")  # not there: nothing happens
    for device in ODD_KEYS:
        await store.alarm_pushed_delete("b", device, "co")
    assert await store.alarms_pushed() == [("a", "hallway", "smoke")]


async def test_many_homes_are_saved_in_one_call_and_read_back(store: StateStore) -> None:
    await store.home_put("a", {"v": 0}, NOW)
    await store.homes_put([("a", '{"v": 1}'), ("b", '{"v": 2}'), ("c", '{"v": 3}')], NOW)
    assert await store.homes() == {"a": {"v": 1}, "b": {"v": 2}, "c": {"v": 3}}
    await store.homes_put([], NOW)  # nothing to save: no error
    assert len(await store.homes()) == 3


async def test_the_journal_keeps_order_and_is_pruned_by_age_and_size(store: StateStore) -> None:
    old = [JournalEntry(NOW - timedelta(days=40), "co", "a", {"n": i}) for i in range(3)]
    new = [JournalEntry(NOW - timedelta(minutes=i), "temperature", "a", {"n": i}) for i in range(5)]
    await store.journal_append(old + new)
    await store.journal_append([])
    assert [e.body["n"] for e in await store.journal()] == [0, 1, 2, 0, 1, 2, 3, 4]
    assert [e.body["n"] for e in await store.journal(limit=2)] == [3, 4]
    since = await store.journal_since(NOW - timedelta(minutes=2), ["temperature", "co"])
    assert [e.body["n"] for e in since] == [0, 1, 2]
    assert since[0].at == NOW
    assert since[0].account == "a"
    gone = await store.journal_prune(NOW - timedelta(days=30), keep_rows=4)
    assert gone == 4
    assert [e.body["n"] for e in await store.journal()] == [1, 2, 3, 4]
    assert [e.event for e in await store.journal(event="co")] == []


async def test_journaled_events_read_back_as_their_dicts(store: StateStore) -> None:
    events = [
        AttributeChanged(
            id=f"e{i}", at=NOW - timedelta(seconds=3 - i), account="a", device="t1",
            attribute="humidity", old=None, new=i / 3,
        )
        for i in range(3)
    ] + [
        SetpointChanged(
            id="s", at=NOW, account="b", attribute="heat_setpoint_c", old=20.0, new=math.inf,
        )
    ]  # fmt: skip
    await store.journal_events(events)
    await store.journal_events([])
    entries = await store.journal()
    assert [e.body for e in entries[:3]] == [event_to_dict(e) for e in events[:3]]
    assert [(e.at, e.event, e.account) for e in entries] == [
        (e.at, e.name, e.account) for e in events
    ]
    assert entries[3].body["new"] is None  # strict JSON: not a number there


def test_a_postgres_store_from_a_newer_roost_is_refused(pg_url: str) -> None:
    import psycopg

    from roost.store.postgres import MIGRATIONS, PgStore
    from roost.store.sqlite import StoreError

    PgStore(pg_url)  # migrated
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO roost_schema VALUES (%s)", (len(MIGRATIONS) + 1,))
    with pytest.raises(StoreError, match="newer than this roost"):
        PgStore(pg_url)


def test_an_unreachable_postgres_store_is_a_clear_error() -> None:
    from roost.store.postgres import PgStore
    from roost.store.sqlite import StoreError

    with pytest.raises(StoreError, match="cannot connect to the PostgreSQL store"):
        PgStore("postgresql://roost@127.0.0.1:1/roost?connect_timeout=2")


def test_the_settings_pick_the_store_and_read_its_password_as_a_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from roost.config.load import load_settings
    from roost.config.settings import ConfigError
    from roost.service.stores import open_store
    from roost.store.sqlite import StoreError

    (tmp_path / "pg_password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = tmp_path / "roost.toml"
    config.write_text(
        '[store]\nurl = "postgresql://roost@127.0.0.1:1/roost?connect_timeout=2"\n'
        'password_credential = "pg_password"\n'
    )
    settings = load_settings(config)
    assert settings.store.password is not None
    assert settings.store.password.get_secret_value() == "s3cret"
    with pytest.raises(StoreError, match="PostgreSQL"):
        open_store(settings)  # the URL was taken: it tried that server
    config.write_text('[store]\nurl = "postgresql://roost:s3cret@db/roost"\n')
    with pytest.raises(ConfigError, match="no password in the URL"):
        load_settings(config)
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n')
    assert isinstance(open_store(load_settings(config)), Store)  # SQLite stays the default
