"""The page's pieces without HTTP: settings, causation chains, chart series and SVG,
visible text, and that the default daemon imports none of the web stack."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from markupsafe import Markup

from roost.config.load import load_settings, validated
from roost.config.settings import ConfigError, WebSettings, remote_listeners
from roost.core.model import HvacActivity, Thermostat, ThermostatMode
from roost.store.sqlite import JournalEntry
from roost.web import charts
from roost.web.chains import Chains, event_row
from roost.web.text import visible
from roost.web.views import advice

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


# ---- settings ------------------------------------------------------------------------


def test_the_page_is_off_by_default() -> None:
    assert WebSettings().address() is None


def test_a_network_address_needs_allow_remote(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "roost.toml"
    path.write_text('[web]\nlisten = "0.0.0.0:8470"\n')
    with pytest.raises(ConfigError, match="allow_remote"):
        load_settings(path)
    path.write_text('[web]\nlisten = "0.0.0.0:8470"\nallow_remote = true\n')
    settings = load_settings(path)
    assert settings.web.is_remote()
    assert "web.listen = '0.0.0.0:8470'" in remote_listeners(settings)  # roost check warns


def test_a_bad_listen_value_is_explained() -> None:
    with pytest.raises(ValueError, match="host:port"):
        validated(WebSettings, listen="8470")


def test_each_account_state_says_what_to_do() -> None:
    assert advice("connected", "sdm", "streaming") == ""
    assert "roost auth sdm" in advice("auth_failed", "sdm", "")
    assert "roost auth nest-web" in advice("auth_failed", "nest_web", "")
    assert advice("degraded", "netatmo", "2 values unusable") == "degraded: 2 values unusable"
    assert "retrying" in advice("disconnected", "sdm", "HTTP 503")


# ---- chains ----------------------------------------------------------------------------


def _names(device_id: str) -> str:
    return {"t1": "Living <Room>"}.get(device_id, device_id)


def test_a_commands_chain_runs_from_its_cause_to_its_echo() -> None:
    chains = Chains(_names)
    cause = {"event": "presence", "id": "e1", "at": at(0), "account": "a", "old": "home",
             "new": "away", "structure": "s1"}  # fmt: skip
    assert chains.add(cause) is None
    common = {"event": "command", "command": "c1", "account": "a", "device": "t1",
              "target": "t1", "rule": "eco", "action": "eco on", "cause": "e1"}  # fmt: skip
    chains.add({**common, "id": "o1", "at": at(0.002), "outcome": "queued"})
    chains.add({**common, "id": "o2", "at": at(0.010), "outcome": "sent", "attempt": 1})
    echo = {"event": "thermostat_mode", "id": "e2", "at": at(0.080), "account": "a",
            "device": "t1", "old": "heat", "new": "eco",
            "context": {"causation": "c1", "rule": "eco"}}  # fmt: skip
    chains.add(echo)
    twin = {**echo, "event": "attribute", "id": "e3", "attribute": "mode"}
    chains.add(twin)
    chain = chains.add(
        {**common, "id": "o3", "at": at(0.081), "outcome": "confirmed", "latency_s": 0.071}
    )
    assert chain is not None
    assert chain["cause"]["what"] == "home → away"
    assert chain["rule"] == "eco"
    assert chain["target"] == "Living <Room>"
    assert [s["outcome"] for s in chain["steps"]] == ["queued", "sent", "confirmed"]
    assert [s["after_ms"] for s in chain["steps"]] == [2, 10, 81]
    assert chain["steps"][-1]["latency_ms"] == 71
    assert [e["what"] for e in chain["echo"]] == ["heat → eco"]  # the twin is not repeated
    assert chain["echo"][0]["after_ms"] == 80


def test_a_refused_command_shows_its_guard() -> None:
    chains = Chains(_names)
    refused = {"event": "command", "command": "c2", "id": "o", "at": at(1), "account": "a",
               "outcome": "refused", "guard": "alarm", "reason": "CO warning in the structure",
               "action": "fan on", "rule": "r"}  # fmt: skip
    chain = chains.add(refused)
    assert chain is not None
    assert chain["cause"] is None
    assert chain["steps"][0]["guard"] == "alarm"
    row = event_row({"event": "command", "id": "o", "at": at(1), "account": "a",
                     "outcome": "refused", "guard": "alarm", "action": "fan on",
                     "reason": "CO"}, _names)  # fmt: skip
    assert row["text"] == "fan on: refused by guard alarm (CO)"


def test_an_alarm_row_is_marked() -> None:
    row = event_row({"event": "co", "id": "x", "at": at(0), "account": "a", "device": "t1",
                     "old": "ok", "new": "emergency"}, _names)  # fmt: skip
    assert row["alarm"] is True
    cleared = event_row({"event": "co", "id": "y", "at": at(0), "account": "a", "device": "t1",
                         "old": "warning", "new": "ok"}, _names)  # fmt: skip
    assert cleared["alarm"] is False


# ---- charts ----------------------------------------------------------------------------


def _entry(seconds: float, event: str, **body: object) -> JournalEntry:
    return JournalEntry(T0 + timedelta(seconds=seconds), event, "a", {"device": "t1", **body})


def test_a_series_starts_from_the_first_events_old_value() -> None:
    t = Thermostat(id="t1", name="Hall", structure_id="s", ambient_c=21.0, mode=ThermostatMode.HEAT)
    since = T0 - timedelta(hours=1)
    entries = [
        _entry(10, "temperature", old=19.5, new=20.0),
        _entry(20, "temperature", old=20.0, new=21.0),
        _entry(30, "command", command="c", rule="warm", action="heat 21", outcome="queued"),
        _entry(31, "command", command="c", rule="warm", action="heat 21", outcome="confirmed"),
        _entry(40, "temperature", old=1.0, new=2.0, device="other"),
    ]
    s = charts.series_for(t, entries, since)
    assert [v for _, v in s.ambient] == [19.5, 20.0, 21.0]
    assert s.ambient[0][0] == since
    assert s.mode == [(since, "heat")]  # no event: flat at the current value
    assert s.commands == [(T0 + timedelta(seconds=31), "warm: heat 21 → confirmed")]


def test_the_svg_escapes_cloud_names() -> None:
    t = Thermostat(id="t1", name="x", structure_id="s", ambient_c=20.0, hvac=HvacActivity.HEATING)
    since = T0 - timedelta(hours=24)
    s = charts.series_for(t, [], since)
    svg = charts.render("<script>alert(1)</script>\u202e", s, since, T0, ZoneInfo("UTC"))
    assert isinstance(svg, Markup)
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "\u202e" not in svg
    assert svg.count("<path") == 1


# ---- text ------------------------------------------------------------------------------


def test_control_and_bidi_characters_are_made_visible() -> None:
    assert visible("a\u202eb\x1bc\u2066") == "a\\u202eb\\u001bc\\u2066"
    assert visible("Wohnzimmer 21 °C") == "Wohnzimmer 21 °C"
    assert visible(Markup("<b>ok</b>")) == Markup("<b>ok</b>")


# ---- cost --------------------------------------------------------------------------------


def test_the_default_daemon_does_not_import_the_web_stack() -> None:
    code = (
        "import sys, roost.cli.entry, roost.service.systemd, roost.service.runtime, roost.web.link;"
        "print(sorted(m for m in ('jinja2', 'roost.web.app') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
