"""A setpoint's text (`SetHeat.describe`, `SetCool.describe`), remembered per value, is the
text its format gives, on the first call and on every later one, whatever the value."""

from __future__ import annotations

import contextlib
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from roost.core import commands
from roost.core.commands import SetCool, SetHeat

ODD: list[Any] = [0.0, -0.0, math.nan, math.inf, -math.inf, 21, 0, True, False, 1e309, 5e-324]


def formatted(value: Any) -> tuple[str, str]:
    """What the texts were before they were remembered: the format itself, every time."""
    return f"heat to {value:g} °C", f"cool to {value:g} °C"


@given(st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(ODD))
def test_a_setpoint_text_is_its_format_first_and_again(value: Any) -> None:
    for _ in range(2):  # the second time from what was remembered, if it was
        assert (SetHeat(value).describe(), SetCool(value).describe()) == formatted(value)


def test_equal_values_with_other_texts_keep_their_own() -> None:
    """0.0 and -0.0 (and 21 and 21.0, 1.0 and True) are one key of a dict."""
    for first, second in [(0.0, -0.0), (-0.0, 0.0), (21.0, 21), (21, 21.0), (1.0, True)]:
        for value in (first, second, first, second):
            assert (SetHeat(value).describe(), SetCool(value).describe()) == formatted(value)


def test_the_remembered_texts_stay_bounded() -> None:
    for i in range(commands._TEXTS_KEPT * 3):
        value = 10.0 + i / 1024
        assert (SetHeat(value).describe(), SetCool(value).describe()) == formatted(value)
    assert len(commands._HEAT_TEXTS) <= commands._TEXTS_KEPT
    assert len(commands._COOL_TEXTS) <= commands._TEXTS_KEPT
    assert len(commands._HEAT_TEXTS) > 0  # they are remembered at all


class _Sent:
    """A `Commander` that keeps what a handle asks for (the protocol a rule's home fills)."""

    def __init__(self) -> None:
        self.actions: list[Any] = []

    async def command(self, target: str, action: Any) -> Any:
        self.actions.append((target, action))


def _sent_by_set_heat(value: Any) -> Any:
    from roost.core.model import Thermostat as State
    from roost.rules.surface import Thermostat

    home = _Sent()
    handle = Thermostat(home, State(id="t1", name="Den", structure_id="s"))
    coroutine = handle.set_heat(value)
    with contextlib.suppress(StopIteration):  # it never waits
        coroutine.send(None)
    [(target, action)] = home.actions
    assert target == "t1"
    return action


@given(st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(ODD))
def test_set_heat_sends_what_its_value_makes_first_and_again(value: Any) -> None:
    """The setter's action (kept per value) is `SetHeat(float(value))`, text included."""
    for _ in range(2):
        action = _sent_by_set_heat(value)
        expected = SetHeat(float(value))
        assert type(action) is SetHeat
        assert action.describe() == expected.describe()
        assert action == expected or (math.isnan(action.celsius) and math.isnan(value))


def test_the_kept_heat_actions_stay_bounded() -> None:
    for i in range(commands._TEXTS_KEPT * 3):
        assert _sent_by_set_heat(12.0 + i / 1024).celsius == 12.0 + i / 1024
    assert 0 < len(commands.HEAT_ACTIONS) <= commands._TEXTS_KEPT
    assert 0.0 not in commands.HEAT_ACTIONS  # ±0.0: one key, two texts
