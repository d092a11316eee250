"""A dry run's outcome makes its id and context only when read (`DeferredOutcome`): read,
they are what an outcome made at once would hold (the command's causation, an id of the
one sequence), the same every read, unique; in every other way it is that outcome."""

from __future__ import annotations

import dataclasses
import pickle
import re
from datetime import UTC, datetime, timedelta

import pytest

from roost.core.codec import event_json, event_to_dict
from roost.core.commands import (
    RULE_COMMAND_DEADLINE,
    Command,
    DeferredCommand,
    SetHeat,
    plain_command,
    rule_command,
)
from roost.core.events import (
    CommandOutcome,
    Context,
    DeferredOutcome,
    Outcome,
    deferred_outcome,
)
from roost.core.ids import new_id
from roost.state.echo import outcome_at

AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def command() -> Command:
    return Command(
        "c7", "acct", "t1", SetHeat(21.0), AT, AT + timedelta(minutes=5), "warm", "e3", "e1", 2
    )


def deferred() -> CommandOutcome:
    return deferred_outcome(command(), Outcome.DRY_RUN, AT, "s1", "t1", "dry run: guards passed")


def test_its_id_is_one_of_the_sequence_the_same_every_read_and_unique() -> None:
    before, outcome, other, after = new_id(), deferred(), deferred(), new_id()
    assert isinstance(outcome, DeferredOutcome)
    first = outcome.id
    assert first == outcome.id
    assert first is outcome.id
    boot = before[1:].split(".")[0]
    assert re.fullmatch(rf"e{boot}\.\d+", first)
    numbers = [int(i.rsplit(".", 1)[1]) for i in (before, first, other.id, after)]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 4


def test_its_context_is_the_commands_causation() -> None:
    outcome = deferred()
    assert outcome.context == Context("c7", "e1", "warm", False, 2)
    assert outcome.context is outcome.context


def test_it_is_the_outcome_an_eager_one_would_be() -> None:
    outcome = deferred()
    eager = outcome_at(command(), Outcome.DRY_RUN, AT, "s1", "t1", "dry run: guards passed")
    assert type(eager) is CommandOutcome
    same_id = dataclasses.replace(eager, id=outcome.id)
    assert outcome == same_id
    assert same_id == outcome
    assert hash(outcome) == hash(same_id)
    assert outcome != eager  # another id
    assert event_to_dict(outcome) == event_to_dict(same_id)
    assert event_json(outcome) == event_json(same_id)
    assert pickle.loads(pickle.dumps(outcome)) == outcome
    assert dataclasses.replace(outcome, reason="x").reason == "x"


def test_unread_it_is_read_as_any_outcome_when_encoded() -> None:
    """An outcome nobody read yet is journaled with its id and context (made then)."""
    body = event_to_dict(deferred())
    assert body["context"]["causation"] == "c7"
    assert body["id"].startswith("e")
    assert "_number" not in body
    assert "_made_for" not in body


def test_a_rule_command_spells_its_id_once_when_read() -> None:
    before = new_id("c")
    made = rule_command("acct", "t1", SetHeat(21.0), AT, "warm", "e3", "e1", 2, True)
    outcome = deferred_outcome(made, Outcome.DRY_RUN, AT, "s1", "t1", "dry")
    after = new_id("c")
    assert isinstance(made, DeferredCommand)
    assert outcome.command == made.id  # the outcome reads the command's id when read
    assert made.id is made.id
    assert outcome.context.causation == made.id
    numbers = [int(i.rsplit(".", 1)[1]) for i in (before, made.id, outcome.id, after)]
    assert numbers == sorted(numbers)
    assert made.id.startswith("c")
    assert made.deadline == AT + RULE_COMMAND_DEADLINE
    assert made.deadline is made.deadline
    plain = Command(
        made.id, "acct", "t1", SetHeat(21.0), AT, made.deadline, "warm", "e3", "e1", 2, True
    )
    assert made == plain
    assert plain == made
    assert hash(made) == hash(plain)
    assert dataclasses.replace(made, writer=("w", 1)).id == made.id
    assert dataclasses.replace(made, writer=("w", 1)).writer == ("w", 1)


def test_unread_fields_are_made_on_copy_and_pickle() -> None:
    made = rule_command("acct", "t1", SetHeat(21.0), AT, "warm", "e3", "e1", 2, True)
    outcome = deferred_outcome(made, Outcome.DRY_RUN, AT, "s1", "t1", "dry")
    copied = pickle.loads(pickle.dumps(outcome))  # reads every field: makes them
    assert copied == outcome
    assert copied.action == "heat to 21 °C" == outcome.action
    assert pickle.loads(pickle.dumps(made)) == made
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.id = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.id = "x"  # type: ignore[misc]


def test_a_queued_command_is_a_plain_one_with_the_same_fields() -> None:
    made = rule_command("acct", "t1", SetHeat(21.0), AT, "warm", "e3", "e1", 2, False)
    queued = plain_command(made)
    assert type(queued) is Command
    assert dataclasses.astuple(queued) == dataclasses.astuple(made)
    assert plain_command(queued) is queued
