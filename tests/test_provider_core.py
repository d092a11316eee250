"""What the provider core owns for every vendor: the counters, the encoders' shared checks,
the readers the normalizers share, the HTTP date, and building a provider for the daemon
(on its vendor's shared client, never showing a secret)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from roost.config.load import validated
from roost.core.commands import SetCool, SetFanTimer, SetHeat, SetPresence, SetRange
from roost.core.errors import EncodeError
from roost.core.model import Presence, SmokeCoAlarm, Structure, Thermostat, ThermostatMode
from roost.providers import encoding
from roost.providers.core import counters
from roost.providers.http import http_date, parse_retry_after
from roost.providers.nest_web.provider import NestWebProvider
from roost.providers.nest_wwn.provider import NestWwnProvider
from roost.providers.netatmo.provider import NetatmoProvider
from roost.providers.readers import eco_or, pair, parse_time
from roost.providers.registry import ProviderContext, build_provider, vendor
from roost.providers.sdm.provider import SdmProvider
from roost.providers.tls import client_context
from tests.provider_kit import make

HOME = Structure(id="home", name="Home")
HEAT_ONLY = Thermostat(id="t1", name="Hall", structure_id="home", mode=ThermostatMode.HEAT)
ALARM = SmokeCoAlarm(id="a1", name="Hall", structure_id="home")
SECRET = "a-secret-that-must-not-show"


def test_counters_start_at_zero_and_an_unnamed_one_is_an_error() -> None:
    stats = counters("puts", "malformed")
    stats.puts += 1
    assert (stats.puts, stats.malformed) == (1, 0)
    with pytest.raises(AttributeError):
        stats.put += 1  # a typo must not count into a fresh, silent 0


# --- the encoders' shared checks ------------------------------------------------------------


def test_an_action_on_the_wrong_kind_of_target_is_refused() -> None:
    away = SetPresence(Presence.AWAY)
    assert encoding.on_structure(away, HOME) is HOME
    with pytest.raises(EncodeError, match="applies to a home, not a1"):
        encoding.on_structure(away, ALARM, "home")
    assert encoding.on_thermostat(SetHeat(20.0), HEAT_ONLY) is HEAT_ONLY
    with pytest.raises(EncodeError, match="applies to a thermostat, not home"):
        encoding.on_thermostat(SetHeat(20.0), HOME)


def test_a_mode_the_thermostat_cannot_run_is_refused() -> None:
    encoding.check_mode(ThermostatMode.HEAT, HEAT_ONLY)
    encoding.check_mode(ThermostatMode.OFF, HEAT_ONLY)
    for mode in (ThermostatMode.COOL, ThermostatMode.HEAT_COOL):
        with pytest.raises(EncodeError, match="cannot run in"):
            encoding.check_mode(mode, HEAT_ONLY)


def test_an_unknown_mode_is_refused_not_guessed() -> None:
    assert encoding.known_mode(HEAT_ONLY) is ThermostatMode.HEAT
    with pytest.raises(EncodeError, match="mode is unknown"):
        encoding.known_mode(Thermostat(id="t2", name="x", structure_id="home", mode=None))


def test_setpoints_go_to_the_fields_of_the_mode() -> None:
    fields: encoding.SetpointFields = {
        (SetHeat, ThermostatMode.HEAT): ("target",),
        (SetRange, ThermostatMode.HEAT_COOL): ("low", "high"),
    }
    assert encoding.setpoints(SetHeat(20.5), ThermostatMode.HEAT, fields) == {"target": 20.5}
    both = encoding.setpoints(SetRange(19.0, 24.0), ThermostatMode.HEAT_COOL, fields)
    assert both == {"low": 19.0, "high": 24.0}
    with pytest.raises(EncodeError, match="does not apply in"):
        encoding.setpoints(SetCool(24.0), ThermostatMode.HEAT, fields)


def test_fan_timer_minutes_are_checked() -> None:
    assert encoding.fan_minutes(SetFanTimer(15), True, "t1") == 15
    assert encoding.fan_minutes(SetFanTimer(0), True, "t1", 720) == 0
    with pytest.raises(EncodeError, match="has no fan"):
        encoding.fan_minutes(SetFanTimer(15), False, "t1")
    with pytest.raises(EncodeError, match="0 or more"):
        encoding.fan_minutes(SetFanTimer(-1), True, "t1")
    with pytest.raises(EncodeError, match="0 to 720"):
        encoding.fan_minutes(SetFanTimer(721), True, "t1", 720)


# --- shared readers -------------------------------------------------------------------------


def test_eco_beside_the_mode_reads_the_mode_only_when_eco_is_off() -> None:
    read: list[bool] = []

    def mode() -> ThermostatMode:
        read.append(True)
        return ThermostatMode.COOL

    assert eco_or(True, mode) is ThermostatMode.ECO
    assert eco_or(None, mode) is None  # unknown eco: the mode is unknown too
    assert read == []  # an unused mode is not read (nor noted as a problem)
    assert eco_or(False, mode) is ThermostatMode.COOL
    assert pair(18.0, None) is None
    assert pair(18.0, 24.0) == (18.0, 24.0)


def test_times_and_http_dates_are_aware_or_none() -> None:
    assert parse_time("2026-12-01T10:00:00.123456789Z") == datetime(
        2026, 12, 1, 10, 0, 0, 123456, UTC
    )
    plus_one = parse_time("2026-12-01T11:00:00+01:00")
    assert plus_one == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert plus_one is not None
    assert plus_one.tzinfo is UTC
    assert parse_time("yesterday") is None
    assert parse_time(1733047200) is None
    date = http_date("Tue, 01 Dec 2026 10:00:00 GMT")
    assert date == datetime(2026, 12, 1, 10, tzinfo=timezone(timedelta(0)))
    assert http_date("Tue, 01 Dec 2026 10:00:00 -0000") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert http_date("not a date") is None
    now = datetime(2026, 12, 1, 9, 59, 30, tzinfo=UTC)
    assert parse_retry_after("Tue, 01 Dec 2026 10:00:00 GMT", now=now) == 30.0


# --- building providers ---------------------------------------------------------------------

SETTINGS = {
    "nest_wwn": {"api_url": "http://127.0.0.1:9", "token": SECRET},
    "nest_web": {"api_url": "http://127.0.0.1:9", "email": "a@b.c", "password": SECRET},
    "sdm": {
        "api_url": "http://127.0.0.1:9",
        "project_id": "p",
        "client_id": "c",
        "client_secret": SECRET,
        "refresh_token": SECRET,
        "subscription": "projects/p/subscriptions/s",
    },
    "netatmo": {
        "api_url": "http://127.0.0.1:9",
        "client_id": "c",
        "client_secret": SECRET,
        "refresh_token": SECRET,
    },
}
CLASSES = {
    "nest_wwn": NestWwnProvider,
    "nest_web": NestWebProvider,
    "sdm": SdmProvider,
    "netatmo": NetatmoProvider,
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(SETTINGS))
async def test_the_daemons_providers_of_a_vendor_share_one_client(name: str) -> None:
    context = ProviderContext()
    model = vendor(name).Account
    first, second = (
        build_provider(validated(model, name=account, provider=name, **SETTINGS[name]), context)
        for account in ("one", "two")
    )
    assert isinstance(first, CLASSES[name])
    assert isinstance(second, CLASSES[name])
    assert first._client is second._client is context.http_client(name)
    assert first.write_limits is vendor(name).WRITE_LIMITS
    await first.aclose()
    assert not second._client.is_closed  # the shared client outlives one account
    await context.aclose()
    assert second._client.is_closed


def tls_context_of(client: httpx.AsyncClient) -> ssl.SSLContext:
    pool = client._transport._pool  # type: ignore[attr-defined]
    context: ssl.SSLContext = pool._ssl_context
    return context


@pytest.mark.anyio
async def test_every_vendors_client_and_the_stream_reader_share_one_trust_store() -> None:
    """A context parses its trust store (~0.8 MiB): the process builds one, not one per
    vendor client plus one for the event streams."""
    context = ProviderContext()
    shared = {id(tls_context_of(context.http_client(name))) for name in sorted(SETTINGS)}
    assert shared == {id(client_context())}
    assert client_context().verify_mode == ssl.CERT_REQUIRED
    assert client_context().check_hostname
    await context.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(SETTINGS))
async def test_a_provider_never_shows_a_secret(name: str) -> None:
    async with make(CLASSES[name], name, **SETTINGS[name]) as provider:
        assert SECRET not in repr(provider)
        assert repr(provider) == f"{CLASSES[name].__name__}(account='acct')"
        assert not provider._client.is_closed  # its own client, closed with it
    assert provider._client.is_closed
