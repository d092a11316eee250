"""A setpoint's text (`SetHeat.describe`, `SetCool.describe`), remembered per value, is the
text its format gives, on the first call and on every later one, whatever the value."""

from __future__ import annotations

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
