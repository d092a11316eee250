"""core/secret.py and core/checks.py: the daemon's pydantic-free secret and field checks,
as pydantic reads them where settings are validated."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Annotated, ClassVar

import pytest
from pydantic import TypeAdapter, ValidationError

from roost.core.checks import After, Before
from roost.core.secret import Secret


def test_a_secret_never_shows_itself() -> None:
    token = Secret("s3cr3t-token")
    assert "s3cr3t" not in repr(token)
    assert "s3cr3t" not in str(token)
    assert "s3cr3t" not in repr([token])
    assert "s3cr3t" not in f"{token}"
    assert token.get_secret_value() == "s3cr3t-token"


def test_a_secret_survives_pickling_and_compares_by_value() -> None:
    token = Secret("abc")
    copy = pickle.loads(pickle.dumps(token))
    assert copy == token
    assert hash(copy) == hash(token)
    assert copy != Secret("abd")
    assert copy != "abc"


def test_a_secret_is_made_from_a_string_only() -> None:
    with pytest.raises(TypeError):
        Secret(123)  # type: ignore[arg-type]


def _even(value: int) -> int:
    if value % 2:
        raise ValueError("must be even")
    return value


@dataclass(kw_only=True)
class Section:
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}
    token: Secret | None = None
    level: Annotated[str, Before(lambda v: v.lower() if isinstance(v, str) else v)] = "info"
    count: Annotated[int, After(_even)] = 2


def test_pydantic_reads_the_markers_and_the_secret() -> None:
    adapter = TypeAdapter(Section)
    section = adapter.validate_python({"token": "t", "level": "WARNING", "count": "4"})
    assert section == Section(token=Secret("t"), level="warning", count=4)
    assert adapter.dump_python(section, mode="json")["token"] == "**********"
    with pytest.raises(ValidationError, match="must be even"):
        adapter.validate_python({"count": 3})
    with pytest.raises(ValidationError, match="count"):
        adapter.validate_python({"count": "three"})
    with pytest.raises(ValidationError):
        adapter.validate_python({"token": 5})
