"""Alerts about roost itself that a person must hear, sent like any urgent notification:
an account that lost its authorization stops, and someone has to act; a smoke/CO alarm
reports a state roost cannot read (an unknown value, a wrong type), so no rule's alarm
trigger can fire on it; a smoke/CO alarm no loaded rule reacts to (the alarm rules' file
broken at start, deleted, never written), and its clearing. Alarm notifications fail open.

The alarms roost pushed itself are kept in the store until they clear, so that a clearing
the first snapshot after a restart shows (crash, upgrade, restart) is pushed as well. The
store is written beside the pushes, never before one: a store that fails or hangs costs
that memory (logged and counted), never a push.

`Alerts` taps the bus (`Bus.tap`): every event is looked at as it is published, and only an
event that may need an alert wakes the task that decides and sends it. Its queue has no
bound: such events are rare (an account that fails, a smoke/CO change) and an alert fails
open, it is never dropped or held back.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

import anyio
import structlog

from roost.core.bus import Batch, Bus
from roost.core.events import (
    AccountStatus,
    AttributeChanged,
    CoAlarm,
    ConnectionState,
    DeviceRemoved,
    Event,
    NotificationOutcome,
    SmokeAlarm,
)
from roost.core.model import AlarmState
from roost.notify.alarms import is_alarm
from roost.notify.notifier import Notification, Priority

log = structlog.get_logger(__name__)

_ALARM_ATTRIBUTES = {"smoke": "smoke", "co": "CO"}
# The key of roost's own push for an alarm whose reacting runs all failed (engine/runner).
FAILED_RULE_PUSH = "roost:failed-alarm-rule:"
RECENT_ALARMS = 1024  # alarm events remembered, to know them in their push's outcome
Sounding = tuple[str, str, str]  # an alarm of a device: (account, device, "smoke" | "co")
# A write of the kept alarms may take this long (then it is given up, and counted): a stop
# waits for the queued ones, a hung store must not hold it.
KEEP_WRITE_S = 5.0
# Reading them back at start may take this long: then the start goes on without them (logged
# and counted), as when the read fails; a store that hangs must not hold the alarms back.
KEEP_READ_S = 5.0


class PushedAlarms(Protocol):
    """Where the alarms roost pushed itself are kept until they clear (the store)."""

    async def alarms_pushed(self) -> list[tuple[str, str, str]]: ...

    async def alarm_pushed_put(self, account: str, device: str, alarm: str) -> None: ...

    async def alarm_pushed_delete(self, account: str, device: str, alarm: str) -> None: ...


def alert_for(
    event: Event, reacted: Callable[[Event], bool] = lambda event: True
) -> Notification | None:
    """roost's own urgent push for `event`, if it needs one; `reacted` says whether a
    loaded rule reacts to an event."""
    if isinstance(event, SmokeAlarm | CoAlarm):
        return None if reacted(event) else _unhandled_alarm(event)
    if isinstance(event, AttributeChanged):
        return _unreadable_alarm(event)
    if isinstance(event, AccountStatus) and event.state is ConnectionState.AUTH_FAILED:
        return _urgent(
            event,
            f"roost:auth:{event.account}:{event.id}",
            f"roost: account {event.account!r} lost its authorization",
            f"{event.detail}. roost has stopped this account; the others keep running. "
            "Renew its token and restart roost.",
        )
    return None


def _urgent(event: Event, key: str, title: str, body: str, alarm: bool = False) -> Notification:
    """roost's own urgent push about `event` (`alarm`: never limited, never given up)."""
    return Notification(
        key=key,
        title=title,
        body=body,
        tags=("urgent", "roost"),
        priority=Priority.URGENT,
        created_at=event.at,
        alarm=alarm,
        account=event.account,
    )


def _unhandled_alarm(event: SmokeAlarm | CoAlarm) -> Notification | None:
    why = (
        "No rule of yours reacts to this alarm (is your alarm rule file broken or gone? "
        "see roost's log), so roost sends this itself."
    )
    return alarm_push(event, why, f"roost:unhandled-alarm:{event.id}")


def alarm_push(event: Event, why: str, key: str) -> Notification | None:
    """roost's own push for a smoke/CO alarm above ok (None for anything else): sent when
    no rule's push for it will come."""
    if not isinstance(event, SmokeAlarm | CoAlarm) or not is_alarm(event):
        return None
    if event.new is AlarmState.OK:
        return None
    what = _ALARM_ATTRIBUTES[event.name]
    what = what[0].upper() + what[1:]
    title = f"{what} {event.new} at alarm {event.device!r}"
    return _urgent(event, key, title, f"{what} {event.new}. {why}", alarm=True)


def _unreadable_alarm(event: AttributeChanged) -> Notification | None:
    what = _ALARM_ATTRIBUTES.get(event.attribute)
    if what is None or event.device is None or event.new is not None:
        return None
    return _urgent(
        event,
        f"roost:unreadable-alarm:{event.id}",  # the change's identity: once per change
        f"roost cannot read the {what} state of alarm {event.device!r}",
        f"It was {event.old or 'unknown'}; the vendor now sends a value roost does not know. "
        "Check the alarm and the house now. Heating and fans stay refused meanwhile.",
    )


def _may_alert(event: Event) -> bool:
    """Cheap: could `alert_for` make an alert of this event, or is it roost's own alarm push
    going out (read as it is published)."""
    if isinstance(event, AttributeChanged):
        return event.attribute in _ALARM_ATTRIBUTES
    if isinstance(event, NotificationOutcome):
        return event.key.startswith(FAILED_RULE_PUSH)
    return isinstance(event, SmokeAlarm | CoAlarm | AccountStatus | DeviceRemoved)


def _sounding_key(event: Event) -> Sounding | None:
    """Which alarm of which device `event` is about (account, device, smoke or co)."""
    if isinstance(event, SmokeAlarm | CoAlarm):
        name = event.name
    elif isinstance(event, AttributeChanged) and event.attribute in _ALARM_ATTRIBUTES:
        name = event.attribute
    else:
        return None
    return (event.account, event.device or "", name)


def _cleared(event: SmokeAlarm | CoAlarm) -> Notification:
    """roost's own push that an alarm it pushed itself is back to ok."""
    what = _ALARM_ATTRIBUTES[event.name]
    what = what[0].upper() + what[1:]
    return _urgent(
        event,
        f"roost:cleared-alarm:{event.id}",
        f"{what} cleared at alarm {event.device!r}",
        f"{what} reads ok again. roost sent the alarm itself, so it says this too.",
        alarm=True,  # an alarm's level change: never limited, never given up
    )


def _gone(event: DeviceRemoved, alarms: list[str]) -> Notification:
    """roost's own push that an alarm it pushed itself is no longer in the account: nobody
    will hear that it cleared, so the person hears that it cannot be told."""
    what = " and ".join(_ALARM_ATTRIBUTES[name] for name in sorted(alarms, reverse=True))
    return _urgent(
        event,
        f"roost:gone-alarm:{event.id}",
        f"Alarm {event.device!r} is gone from account {event.account!r}",
        f"roost sent its {what} alarm itself; the vendor no longer lists this alarm, so roost "
        "cannot tell you whether it cleared. Check the alarm and the house.",
        alarm=True,
    )


class Alerts:
    """The alerts the bus carries, from the moment this is made, handed to `notify` by `run`
    in the order they were published. An alarm roost pushed itself (no rule reacts to it,
    its state could not be read, or the runs reacting to it failed) gets roost's own push
    when it is ok again, unless a rule reacts to that; `kept` keeps those alarms across a
    restart (`restore` reads them back)."""

    def __init__(self, bus: Bus, kept: PushedAlarms | None = None) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[Event](math.inf)
        self._pushed: set[Sounding] = set()  # the alarms roost pushed itself, until ok
        self._states: dict[Sounding, AlarmState] = {}  # each alarm's last level
        self._recent: dict[str, Sounding] = {}  # the latest alarm events above ok, by id
        self._kept = kept
        self._changed: list[tuple[bool, Sounding]] = []  # `_pushed`'s, not yet handed over
        self._writes, self._to_write = anyio.create_memory_object_stream[tuple[bool, Sounding]](
            math.inf
        )
        self.keep_errors = 0  # reads and writes of `kept` that failed (each one logged)
        bus.tap("alerts", self.see)

    async def restore(self) -> int:
        """Read back the alarms roost pushed itself before a restart (before the first
        snapshot's events are decided: its clearing may be among them). How many; none if
        the store failed or took over `KEEP_READ_S` (the start goes on without them)."""
        rows = await self._read_kept()
        self._pushed.update(rows)
        return len(rows)

    async def adopt(self, accounts: Collection[str]) -> int:
        """Read again those of `accounts`, which this process now serves (a fleet worker
        that gained them, before it streams them): their last owner may have pushed an
        alarm roost must also say the clearing of. How many."""
        owned = set(accounts)
        rows = [row for row in await self._read_kept() if row[0] in owned]
        self._pushed.difference_update([key for key in self._pushed if key[0] in owned])
        self._pushed.update(rows)
        return len(rows)

    async def _read_kept(self) -> list[Sounding]:
        """The kept alarms; none without a store, or if it failed or took too long (fail
        open: without them, alarms are still pushed)."""
        if self._kept is None:
            return []
        rows: list[Sounding] | None = None
        with anyio.move_on_after(KEEP_READ_S):
            try:
                rows = await self._kept.alarms_pushed()
            except Exception as exc:
                self._keep_failed("read", exc)
                return []
        if rows is None:
            self._keep_failed("read", TimeoutError(f"over {KEEP_READ_S:g} s"))
            return []
        return rows

    def see(self, batch: Batch) -> None:
        for event in batch:
            if _may_alert(event):
                self._send.send_nowait(event)

    async def run(
        self,
        notify: Callable[[Notification], Awaitable[None]],
        reacted: Callable[[Event], bool] = lambda event: True,
    ) -> None:
        """Send each alert; `reacted` says whether a loaded rule reacts to an event."""
        async with anyio.create_task_group() as tg:
            if self._kept is not None:
                tg.start_soon(self._keep, self._kept)
            async for event in self._receive:
                alert = self._decide(event, reacted)
                try:
                    if alert is not None:
                        await notify(alert)
                finally:  # the push is committed first: the store never holds it up
                    self._hand_over()

    def _decide(self, event: Event, reacted: Callable[[Event], bool]) -> Notification | None:
        if isinstance(event, NotificationOutcome):
            self._engine_pushed(event.key)
            return None
        if isinstance(event, DeviceRemoved):
            return self._removed(event, reacted)
        alert = alert_for(event, reacted)
        key = _sounding_key(event)
        if key is None:
            return alert
        if isinstance(event, SmokeAlarm | CoAlarm):
            self._seen(event, key)
        if alert is not None:
            self._remember(key)
            return alert
        cleared = isinstance(event, SmokeAlarm | CoAlarm) and event.new is AlarmState.OK
        if not cleared or key not in self._pushed:
            return None
        self._forget(key)
        assert isinstance(event, SmokeAlarm | CoAlarm)
        return None if reacted(event) else _cleared(event)

    def _removed(
        self, event: DeviceRemoved, reacted: Callable[[Event], bool]
    ) -> Notification | None:
        """A device gone from the account: an alarm of it roost pushed itself can no longer
        clear; roost says so, unless a rule reacts to the removal."""
        gone = [key for key in self._pushed if key[:2] == (event.account, event.device)]
        for key in gone:
            self._forget(key)
        if not gone or reacted(event):
            return None
        return _gone(event, [alarm for _, _, alarm in gone])

    def _seen(self, event: SmokeAlarm | CoAlarm, key: Sounding) -> None:
        self._states[key] = event.new
        if event.new is not AlarmState.OK:
            self._recent[event.id] = key
            if len(self._recent) > RECENT_ALARMS:
                del self._recent[next(iter(self._recent))]

    def _engine_pushed(self, notification_key: str) -> None:
        """roost pushed an alarm whose rules failed (engine/runner): its clearing is roost's
        to push as well, if it still sounds."""
        key = self._recent.get(notification_key.removeprefix(FAILED_RULE_PUSH))
        if key is not None and self._states.get(key, AlarmState.OK) is not AlarmState.OK:
            self._remember(key)

    def _remember(self, key: Sounding) -> None:
        if key not in self._pushed:
            self._pushed.add(key)
            self._changed.append((True, key))

    def _forget(self, key: Sounding) -> None:
        if key in self._pushed:
            self._pushed.discard(key)
            self._changed.append((False, key))

    def _hand_over(self) -> None:
        """`_pushed`'s changes to the task that keeps them (none without a store)."""
        if self._changed and self._kept is not None:
            for change in self._changed:
                self._writes.send_nowait(change)
        self._changed.clear()

    async def _keep(self, kept: PushedAlarms) -> None:
        """Write `_pushed`'s changes to the store in order, beside the pushes; on a stop,
        those still queued too."""
        try:
            async for change in self._to_write:
                await self._write(kept, change)
        finally:
            while True:
                try:
                    change = self._to_write.receive_nowait()
                except anyio.WouldBlock:
                    break
                await self._write(kept, change)

    async def _write(self, kept: PushedAlarms, change: tuple[bool, Sounding]) -> None:
        pushed, (account, device, alarm) = change
        with anyio.move_on_after(KEEP_WRITE_S, shield=True) as scope:  # a stop waits for it
            try:
                if pushed:
                    await kept.alarm_pushed_put(account, device, alarm)
                else:
                    await kept.alarm_pushed_delete(account, device, alarm)
            except Exception as exc:
                self._keep_failed("write", exc, account=account, device=device, alarm=alarm)
        if scope.cancelled_caught:
            self._keep_failed("write", TimeoutError(f"over {KEEP_WRITE_S:g} s"), device=device)

    def _keep_failed(self, what: str, exc: Exception, **where: str) -> None:
        self.keep_errors += 1
        log.error(
            f"alarms roost pushed itself: store {what} failed; a clearing after a restart "
            "may not be pushed by roost",
            error=f"{type(exc).__name__}: {exc}",
            **where,
        )
