"""The scopes `roost auth netatmo` asks for cover every endpoint roost writes to, as the
simulator enforces them per endpoint (Netatmo answers 403 code 13 otherwise)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from roost.core.commands import SetPresence
from roost.core.model import Presence
from roost.providers.netatmo import SCOPES as AUTH_SCOPES
from roost.providers.netatmo import encode as netatmo_encode
from roost.providers.netatmo.scopes import SCOPES, WRITE
from roost.simulator import netatmo
from roost.simulator.home import SimHome
from tests.test_netatmo_provider import HOME_ID, command, polling, provider_for

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_endpoint_the_encoder_writes_to_has_its_scope_requested() -> None:
    source = Path(netatmo_encode.__file__).read_text()
    written = set(re.findall(r'Write\(\s*"(\w+)"', source))
    assert written, "the encoder's endpoints were not found"
    assert written <= set(WRITE)
    for endpoint in written:
        needed = netatmo.ENDPOINTS[endpoint][1]
        assert needed & set(SCOPES), endpoint
    assert AUTH_SCOPES.split() == list(SCOPES)


def test_the_readme_lists_the_scopes_roost_asks_for() -> None:
    text = " ".join(README.read_text().split())
    for scope in SCOPES:
        assert scope in text, scope


@pytest.mark.anyio
async def test_presence_works_with_exactly_the_scopes_roost_asks_for() -> None:
    async with (
        netatmo.serve(SimHome.demo(), scopes=SCOPES) as sim,
        polling(sim, provider_for(sim)) as r,
    ):
        result = await r.provider.execute(command(SetPresence(Presence.AWAY), HOME_ID))
        assert result.ok, result
