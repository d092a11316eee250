"""Whatever a vendor puts in an alarm's state, the alarm fails open: a Netatmo smoke/CO
event always sets a state (never ignored), and a WWN alarm state either reads as a state or
makes the attribute unknown, which roost pushes itself (notify/alerts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from roost.core.events import AttributeChanged
from roost.core.model import AlarmState, SmokeCoAlarm
from roost.notify.alerts import alert_for
from roost.providers.nest_wwn.normalize import normalize
from roost.providers.netatmo.timeline import AlarmChange, interpret

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
casings = st.sampled_from(["smoke", "co_detected"]).flatmap(
    lambda kind: st.lists(st.booleans(), min_size=len(kind), max_size=len(kind)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(kind, upper, strict=True))
    )
)


@given(kind=casings, sub_type=json_values)
def test_a_netatmo_alarm_event_always_sets_a_state(kind: str, sub_type: Any) -> None:
    change = interpret({"type": kind, "module_id": "m", "sub_type": sub_type})
    assert isinstance(change, AlarmChange)
    assert change.attribute == ("smoke" if kind.lower() == "smoke" else "co")
    assert isinstance(change.state, AlarmState)


def wwn(co: Any) -> dict[str, Any]:
    alarm = {"device_id": "p1", "structure_id": "s", "name": "Hall", "co_alarm_state": co}
    return {
        "devices": {"smoke_co_alarms": {"p1": alarm}},
        "structures": {"s": {"structure_id": "s", "name": "Home"}},
    }


@given(co=json_values | st.sampled_from(["ok", "warning", "emergency"]).map(str.upper))
def test_a_wwn_alarm_state_is_read_or_pushed_as_unreadable(co: Any) -> None:
    home = normalize(wwn(co), "acct")
    device = home.devices["p1"]
    assert isinstance(device, SmokeCoAlarm)
    if isinstance(co, str) and co.lower() in {s.value for s in AlarmState}:
        assert device.co == AlarmState(co.lower())
        return
    if co is None:
        return  # the key's value missing: the field says nothing
    assert device.co is None
    event = AttributeChanged(
        id="acct/p1.co/2",
        at=datetime.now(UTC),
        account="acct",
        structure="s",
        device="p1",
        old=AlarmState.OK,
        new=device.co,
        attribute="co",
    )
    alert = alert_for(event)
    assert alert is not None
    assert alert.must_go_out
