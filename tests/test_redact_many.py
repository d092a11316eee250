"""The redactor with thousands of known secrets (a daemon with thousands of accounts): the
same text out as with a few, and remembering them one at a time stays cheap."""

from __future__ import annotations

import random
import string
import time

from roost.core.redact import MANY_VALUES, REDACTED, Redactor

ALPHABET = string.ascii_letters + string.digits + "-_./%"


def token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(length))


def test_many_values_redact_exactly_as_one_alternation_does() -> None:
    rng = random.Random(20)
    secrets = [token(rng, rng.randint(6, 30)) for _ in range(MANY_VALUES * 3)]
    secrets += [secrets[0] + "tail", secrets[1][:-1]]  # a longer and a shorter one overlapping
    many = Redactor()
    many.remember(*secrets)
    texts = []
    for _ in range(300):
        parts = [token(rng, rng.randint(0, 12)) for _ in range(4)]
        for i in rng.sample(range(len(secrets)), 3):
            parts.insert(rng.randint(0, len(parts)), secrets[i])
        texts.append(" ".join(parts) if rng.random() < 0.5 else "".join(parts))
    for text in texts:
        mentioned = [s for s in secrets if s in text]
        few = Redactor()
        few.remember(*mentioned)  # few values: the alternation
        assert many.text(text) == few.text(text)
        assert not any(s in many.text(text) for s in mentioned if len(s) >= 6)
    assert REDACTED in many.text(f"x={secrets[0]}tail;")


def test_ten_thousand_accounts_remembered_one_at_a_time_then_used() -> None:
    rng = random.Random(10_000)
    redactor = Redactor()
    tokens = [token(rng, 24) for _ in range(10_000)]
    started = time.process_time()
    for value in tokens:  # as the settings are read: one account's secrets at a time
        redactor.remember(value)
    for value in tokens[::500]:
        assert redactor.text(f"Authorization: {value} …") == f"Authorization: {REDACTED} …"
    # One build of the matcher, not one per value (that took minutes); generous for CI.
    assert time.process_time() - started < 30
